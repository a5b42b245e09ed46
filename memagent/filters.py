"""Metadata filters: one small language shared by ``Memory`` and the LangGraph store.

A filter is a mapping from a key to a value (equality) or to one operator:

>>> matches({"topic": "food", "stars": 4}, {"topic": "food", "stars": {"$gte": 3}})
True
>>> matches({"topic": "food"}, {"topic": {"$in": ["work", "travel"]}})
False

Keys may be dotted paths into nested mappings (``"place.city"``). Operators:
``$eq $ne $gt $gte $lt $lte $in $nin $exists``. All the keys of a filter must
match (an AND). A missing key matches only ``$ne``, ``$nin`` and
``{"$exists": False}``. Values that cannot be compared (a string with a number)
do not match rather than raise. A malformed filter raises
``InvalidInputError`` from ``check_filters``, before anything is read.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from memagent.errors import InvalidInputError

__all__ = ["OPERATORS", "check_filters", "matches"]

_MISSING = object()

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le,
}
OPERATORS = frozenset({"$eq", "$ne", "$in", "$nin", "$exists", *_ORDER})


def check_filters(filters: object) -> dict[str, Any]:
    """Return ``filters`` as a dict if it is a well-formed filter, else raise ``InvalidInputError``."""
    if filters is None:
        return {}
    if not isinstance(filters, Mapping):
        raise InvalidInputError(f"filters must be a mapping of metadata keys, got {type(filters).__name__}")
    for key, condition in filters.items():
        if not isinstance(key, str) or not key or key.startswith("$"):
            raise InvalidInputError(f"filter keys must be metadata keys (non-empty, no leading $), got {key!r}")
        if isinstance(condition, Mapping) and any(isinstance(op, str) and op.startswith("$") for op in condition):
            if len(condition) != 1:
                raise InvalidInputError(f"filter on {key!r} must have exactly one operator, got {list(condition)}")
            [(op, value)] = condition.items()
            if op not in OPERATORS:
                raise InvalidInputError(f"unknown filter operator {op!r} on {key!r}; use one of {sorted(OPERATORS)}")
            if op in ("$in", "$nin") and not isinstance(value, (list, tuple, set, frozenset)):
                raise InvalidInputError(f"{op} on {key!r} needs a list, got {type(value).__name__}")
            if op == "$exists" and not isinstance(value, bool):
                raise InvalidInputError(f"$exists on {key!r} needs true or false, got {value!r}")
    return dict(filters)


def _lookup(data: Mapping[str, Any], path: str) -> Any:
    value: Any = data
    if path in data:
        return data[path]
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _holds(value: Any, condition: Any) -> bool:
    if not (isinstance(condition, Mapping) and len(condition) == 1 and next(iter(condition)) in OPERATORS):
        return value is not _MISSING and value == condition
    [(op, expected)] = condition.items()
    if op == "$exists":
        return (value is not _MISSING) == expected
    if op == "$ne":
        return value is _MISSING or value != expected
    if op == "$nin":
        return value is _MISSING or value not in expected
    if value is _MISSING:
        return False
    if op == "$eq":
        return bool(value == expected)
    if op == "$in":
        return value in expected
    try:
        return bool(_ORDER[op](value, expected))
    except TypeError:
        return False


def matches(data: Mapping[str, Any], filters: Mapping[str, Any] | None) -> bool:
    """Whether ``data`` (an episode's metadata, a store item's value) satisfies every key of ``filters``."""
    return all(_holds(_lookup(data, key), condition) for key, condition in (filters or {}).items())
