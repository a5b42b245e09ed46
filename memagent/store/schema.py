"""Arrow schemas and row conversions, derived from the record classes of ``memagent.records``.

A field's Python type decides its column: ``str`` a string, ``int`` an int32
(``Int64`` an int64), ``float`` a float32, ``bool``, ``datetime`` a UTC
timestamp, an ``Enum`` its value, ``tuple[str, ...]`` a list of strings, and
a ``dict`` or a tuple of records JSON text. ``X | None`` is nullable. Kinds in
``VECTOR_KINDS`` get a fixed-size ``vector`` column of the store's dimension.

>>> from memagent.records import Kind
>>> [f.name for f in schema(Kind.WEIGHT, 384)]
['id', 'user_id', 'key', 'value']
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from enum import Enum
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa

from memagent.errors import InvalidInputError
from memagent.records import RECORD_TYPES, VECTOR_KINDS, Kind

TIMESTAMP = pa.timestamp("us", tz="UTC")
Convert = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def _json_dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _json_load(value: str | None) -> Any:
    return json.loads(value) if value else {}


@dataclasses.dataclass(frozen=True)
class Column:
    """How one field is stored: its Arrow type, nullability and the two conversions."""

    name: str
    type: pa.DataType
    nullable: bool
    encode: Convert = _same
    decode: Convert = _same


def _column(name: str, hint: Any) -> Column:
    nullable = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable, hint = True, args[0]
    if typing.get_origin(hint) is typing.Annotated:
        base, *marks = typing.get_args(hint)
        return Column(name, pa.int64() if "int64" in marks else pa.int32(), nullable, decode=_int) \
            if base is int else _column(name, base)
    simple = {str: pa.string(), int: pa.int32(), float: pa.float32(), bool: pa.bool_()}
    if hint in simple:
        if hint is float:  # stored as float32 by every backend, so every backend reads the same value back
            return Column(name, simple[hint], nullable, encode=_float32, decode=_float)
        return Column(name, simple[hint], nullable, decode=_int if hint is int else _same)
    if hint is datetime:
        return Column(name, TIMESTAMP, nullable, decode=_aware)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return Column(name, pa.string(), nullable, encode=lambda v: v.value, decode=hint)
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        if item is str:
            return Column(name, pa.list_(pa.string()), nullable, encode=list, decode=lambda v: tuple(v or ()))
        return Column(name, pa.string(), nullable, encode=lambda v: json.dumps([x.to_json() for x in v]),
                      decode=lambda v: tuple(item.from_json(x) for x in json.loads(v or "[]")))
    if typing.get_origin(hint) is dict or hint is dict:
        return Column(name, pa.string(), nullable, encode=_json_dump, decode=_json_load)
    raise TypeError(f"no column type for field {name!r}: {hint!r}")


def _int(value: Any) -> Any:
    return None if value is None else int(value)


def _float(value: Any) -> Any:
    return None if value is None else float(value)


def _float32(value: Any) -> float:
    return float(np.float32(value))


class Codec:
    """The columns of one record class, and rows to and from its instances."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        hints = typing.get_type_hints(cls, include_extras=True)
        self.columns = [_column(f.name, hints[f.name]) for f in dataclasses.fields(cls)]

    def schema(self, dimension: int | None) -> pa.Schema:
        fields = [pa.field(c.name, c.type, nullable=c.nullable or c.name not in ("id", "user_id"))
                  for c in self.columns]
        if dimension is not None:
            fields.append(pa.field("vector", pa.list_(pa.float32(), dimension), nullable=False))
        return pa.schema(fields)

    def to_row(self, record: Any) -> dict[str, Any]:
        return {c.name: None if (v := getattr(record, c.name)) is None else c.encode(v) for c in self.columns}

    def from_row(self, row: dict[str, Any]) -> Any:
        return self.cls(**{c.name: None if (v := row.get(c.name)) is None else c.decode(v)
                           for c in self.columns if c.name in row})


@cache
def codec(kind: Kind) -> Codec:
    return Codec(RECORD_TYPES[kind])


def schema(kind: Kind, dimension: int) -> pa.Schema:
    """The Arrow schema of a kind's table in a store of ``dimension``-sized vectors."""
    return codec(kind).schema(dimension if kind in VECTOR_KINDS else None)


def to_rows(kind: Kind, records: Iterable[Any], vectors: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Rows of records (with their vectors, for kinds that have them)."""
    rows = [codec(kind).to_row(r) for r in records]
    if kind in VECTOR_KINDS:
        if vectors is None or len(vectors) != len(rows):
            raise InvalidInputError(f"{kind.value}: {len(rows)} records need as many vectors")
        for row, vector in zip(rows, np.asarray(vectors, dtype=np.float32)):
            row["vector"] = vector
    return rows


def to_table(kind: Kind, rows: Sequence[dict[str, Any]], target: pa.Schema) -> pa.Table:
    """Rows as an Arrow table of ``target`` (a table's own schema, so older tables keep theirs)."""
    return pa.Table.from_pylist(list(rows), schema=target)


def from_table(kind: Kind, table: pa.Table) -> list[Any]:
    """The records of a table's rows (the vector column, if any, is ignored)."""
    columns = [c for c in table.column_names if c != "vector"]
    make = codec(kind).from_row
    return [make(row) for row in table.select(columns).to_pylist()]


def stack_vectors(vectors: Sequence[np.ndarray], dimension: int) -> np.ndarray:
    """Vectors as one ``(n, dimension)`` float32 matrix, ``(0, dimension)`` when there are none."""
    return np.vstack(vectors).astype(np.float32) if len(vectors) else np.zeros((0, dimension), dtype=np.float32)


def vectors_of(table: pa.Table, dimension: int) -> np.ndarray:
    """The vector column of a table as an ``(n, dimension)`` float32 matrix."""
    if "vector" not in table.column_names or table.num_rows == 0:
        return np.zeros((0, dimension), dtype=np.float32)
    flat = table.column("vector").combine_chunks()
    return np.asarray(flat.values.to_numpy(), dtype=np.float32).reshape(len(flat), -1)
