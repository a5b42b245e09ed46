"""``MemagentStore``: a LangGraph ``BaseStore`` whose items are memagent episodes.

A LangGraph agent's long-term store (``graph.compile(store=...)``,
``create_react_agent(..., store=...)``, ``InjectedStore``, LangMem's tools)
can then write into a memagent memory: what the agent saves is searched with
memagent's hybrid ranking and joins the user's profile and graph on
consolidation, and ``Memory.search`` sees it like any other episode.

>>> from memagent import Memory
>>> store = MemagentStore(Memory("/tmp/memagent-doc"))                     # doctest: +SKIP
>>> store.put(("memories", "alice"), "m1", {"content": "Alice is allergic to peanuts"})  # doctest: +SKIP
>>> [i.key for i in store.search(("memories", "alice"), query="what can't she eat?")]  # doctest: +SKIP
['m1']

How items map onto memagent:

- **Namespace -> user.** A namespace is one memagent user scope, so namespaces
  isolate like users do. Its id is the labels joined by ``/``, each label with
  ``%``, ``/`` and control characters escaped as ``%XX`` (``("memories",
  "alice")`` -> ``"memories/alice"``, ``("a/b",)`` -> ``"a%2Fb"``): reversible,
  collision-free, and unchanged for ordinary labels. With ``user_at=i`` the
  label at position ``i`` alone is the user (``("memories", "alice")`` with
  ``user_at=1`` -> ``"alice"``), so the agent's items join the memory of the
  user it chats with; the other labels are kept in the item and keep items
  apart within that user.
- **Item -> episode.** Each item is one episode (role ``user``) in a session of
  its own, with the caller id ``lgstore:<other labels/key, escaped>`` (a digest
  when longer than memagent's id limit), so the key finds it and no item lends
  context or neighbour score to another. The exact value, the key, the
  namespace and the created/updated times sit in ``metadata["langgraph_store"]``.
- **What is searched.** The text of the episode, which memagent embeds and
  indexes: the value's fields named by ``index={"fields": [...]}`` or by
  ``put(..., index=[...])`` (LangGraph paths, joined by newlines; one text per
  item, not one vector per field); by default ``value["content"]`` or
  ``value["text"]`` if it is a non-empty string, else the value as compact
  JSON. ``index=False``, or fields that the value lacks, keep the item out of
  query search (``get``, filters and listing still find it; ``Memory.search``
  sees it, as text, like any episode).
- **Update.** Putting a key again replaces the item and keeps ``created_at``:
  through ``Memory.update`` when the memory has it, else by deleting the
  episode (which removes what consolidation derived from it) and adding the
  new one.
- **Search.** With a query: ``Memory.search`` in every user scope under the
  prefix (archived episodes included: an item lives until it is deleted),
  merged by memagent's score, which is normalised within each scope. Without
  one: newest ``updated_at`` first, like LangGraph's Postgres and SQLite stores
  (``InMemoryStore`` keeps insertion order). ``filter`` is ``memagent.filters``
  on the value. TTL is not supported (``supports_ttl = False``).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import hashlib
import json
import re
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    get_text_at_path,
    validate_op_namespace,
)

from memagent.errors import ConfigError, InvalidInputError, MemagentError, UnsupportedError
from memagent.filters import check_filters, matches
from memagent.memory import Memory
from memagent.tiers.episodic import MAX_ID_CHARS, episode_id
from memagent.timeparse import to_datetime
from memagent.types import Episode

__all__ = ["STORE_KEY", "InvalidNamespace", "MemagentStore", "namespace_of", "user_of"]

STORE_KEY = "langgraph_store"  # the episode metadata key that holds an item
_CALLER = "lgstore:"  # caller (and session) id of an item: this, then its escaped labels and key
_DIGEST = "lgstore#"  # ... or this, then a digest, when the escaped form is too long
_ESCAPE = re.compile(r"[%/\x00-\x1f\x7f]")
_UNESCAPE = re.compile(r"%([0-9A-F]{2})")
P = ParamSpec("P")
R = TypeVar("R")


class InvalidNamespace(InvalidInputError, InvalidNamespaceError):
    """A namespace LangGraph refuses (empty, a label empty or with a period) or memagent cannot hold."""


# --- namespace <-> user id ------------------------------------------------------
def _escape(label: str) -> str:
    return _ESCAPE.sub(lambda m: f"%{ord(m.group()):02X}", label)


def _unescape(text: str) -> str:
    return _UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def user_of(labels: Sequence[str]) -> str:
    """The memagent user id of a namespace (or of one label): labels escaped, joined by ``/``.

    >>> user_of(("memories", "alice")), user_of(("a/b", "c")), user_of(("a", "b/c"))
    ('memories/alice', 'a%2Fb/c', 'a/b%2Fc')
    """
    return "/".join(_escape(label) for label in labels)


def namespace_of(user_id: str) -> tuple[str, ...] | None:
    """The namespace whose id is ``user_id``, or None if no namespace has that id.

    >>> namespace_of("a%2Fb/c"), namespace_of("bob.smith")
    (('a/b', 'c'), None)
    """
    labels = tuple(_unescape(part) for part in user_id.split("/"))
    if any(not label or "." in label for label in labels) or user_of(labels) != user_id:
        return None
    return labels


def _caller_id(labels: Sequence[str], key: str) -> str:
    readable = _CALLER + user_of([*labels, key])
    if len(readable) <= MAX_ID_CHARS:
        return readable
    return _DIGEST + hashlib.sha256(readable.encode("utf-8", "surrogatepass")).hexdigest()


# --- errors -----------------------------------------------------------------------
@contextmanager
def _memagent_errors() -> Iterator[None]:
    """LangGraph's own refusals (a bad namespace, a TTL) as memagent errors of the same builtin kind."""
    try:
        yield
    except MemagentError:
        raise
    except InvalidNamespaceError as exc:
        raise InvalidNamespace(str(exc)) from None
    except NotImplementedError as exc:
        raise UnsupportedError(str(exc)) from None


def _translated(method: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _memagent_errors():
            return method(*args, **kwargs)
    return wrapper


def _atranslated(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _memagent_errors():
            return await method(*args, **kwargs)
    return wrapper


# --- items ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Entry:
    """An item as read from its episode."""

    episode_id: str
    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    indexed: bool

    @classmethod
    def read(cls, episode: Episode) -> _Entry | None:
        data = episode.metadata.get(STORE_KEY)
        if not isinstance(data, dict):
            return None
        return cls(episode.id, tuple(data["namespace"]), data["key"], data["value"],
                   datetime.fromisoformat(data["created_at"]), datetime.fromisoformat(data["updated_at"]),
                   bool(data["indexed"]))

    def item(self) -> Item:
        return Item(namespace=self.namespace, key=self.key, value=copy.deepcopy(self.value),
                    created_at=self.created_at, updated_at=self.updated_at)

    def hit(self, score: float | None = None) -> SearchItem:
        return SearchItem(self.namespace, self.key, copy.deepcopy(self.value), self.created_at,
                          self.updated_at, score)


def _compact(value: Mapping[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def item_text(value: Mapping[str, Any], fields: Sequence[str] | None) -> tuple[str, bool]:
    """The text memagent indexes for a value, and whether query search may find it.

    ``fields`` None: ``content`` or ``text`` if a non-empty string, else the
    value as compact JSON. Named fields: their texts joined by newlines; none
    present, and the item is kept out of query search (its text is its JSON).

    >>> item_text({"content": "Alice likes tea", "tags": ["drink"]}, None)
    ('Alice likes tea', True)
    >>> item_text({"title": "Tea", "body": {"note": "green"}}, ["title", "body.note"])[0].splitlines()
    ['Tea', 'green']
    >>> item_text({"stars": 4}, ["title"])
    ('{"stars":4}', False)
    """
    if fields is None:
        for name in ("content", "text"):
            text = value.get(name)
            if isinstance(text, str) and text.strip():
                return text, True
        return _compact(value), True
    texts = [t for path in fields for t in get_text_at_path(value, path) if t.strip()]
    return ("\n".join(texts), True) if texts else (_compact(value), False)


def _namespace_matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    part = namespace[:len(path)] if condition.match_type == "prefix" else namespace[len(namespace) - len(path):]
    return all(p == "*" or p == n for p, n in zip(path, part))


def _page(value: object, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInputError(f"{what} must be an integer >= {low}, got {value!r}")
    return value


def _check_value(value: object) -> None:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidInputError(f"a store value must be a mapping with string keys (or None to delete), "
                                f"got {type(value).__name__}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"a store value must be plain JSON (no NaN, not nested too deep): {exc}") from None


def _check(op: Op) -> None:
    """Refuse a malformed op before any op of its batch runs."""
    with _memagent_errors():
        validate_op_namespace(op)
    if isinstance(op, (GetOp, PutOp)) and not isinstance(op.key, str):
        raise InvalidInputError(f"a store key must be a string, got {type(op.key).__name__}")
    if isinstance(op, PutOp):
        if not op.namespace:
            raise InvalidNamespace("Namespace cannot be empty.")
        if op.ttl is not None:
            raise UnsupportedError("MemagentStore does not support TTL (supports_ttl is False); pass ttl=None")
        if op.value is not None:
            _check_value(op.value)
        if op.index is not None and op.index is not False and (
                isinstance(op.index, str) or not all(isinstance(f, str) for f in op.index)):
            raise InvalidInputError(f"index must be False, None or a list of field paths, got {op.index!r}")
    elif isinstance(op, SearchOp):
        check_filters(op.filter)
        _page(op.limit, "limit", 0)
        _page(op.offset, "offset", 0)
        if op.query is not None and not isinstance(op.query, str):
            raise InvalidInputError(f"query must be a string, got {type(op.query).__name__}")
    elif isinstance(op, ListNamespacesOp):
        _page(op.limit, "limit", 0)
        _page(op.offset, "offset", 0)
        if op.max_depth is not None:
            _page(op.max_depth, "max_depth", 1)
    elif not isinstance(op, GetOp):
        raise InvalidInputError(f"unknown store operation {type(op).__name__}")


class MemagentStore(BaseStore):
    """A LangGraph ``BaseStore`` over a memagent ``Memory`` (see the module docstring for the mapping).

    ``index``: ``{"fields": [...]}``, the value paths whose text is indexed
    (LangGraph's path syntax; ``"$"`` is the whole value); memagent's own
    embedder embeds it, so no ``embed`` or ``dims`` is taken. ``user_at``: the
    position of the namespace label that is the memagent user (default: the
    whole namespace is the user). Bad namespaces raise ``InvalidNamespace``
    (a ``memagent.InvalidInputError`` and LangGraph's ``InvalidNamespaceError``),
    a TTL ``UnsupportedError``.
    """

    supports_ttl = False

    def __init__(self, memory: Memory, *, index: Mapping[str, Any] | None = None, user_at: int | None = None) -> None:
        if index is not None and (set(index) - {"fields"} or not isinstance(index.get("fields", []), list)):
            raise ConfigError(f"MemagentStore index takes only 'fields' (a list of paths; memagent's embedder "
                              f"does the embedding), got {dict(index)!r}")
        if user_at is not None:
            _page(user_at, "user_at", 0)
        self.memory = memory
        self.user_at = user_at
        self.index_config = {"fields": list(index.get("fields") or ["$"])} if index is not None else None

    # --- where items live --------------------------------------------------------
    def _address(self, namespace: tuple[str, ...], key: str) -> tuple[str, str]:
        """The memagent user and the caller id of an item."""
        if self.user_at is None:
            return user_of(namespace), _caller_id((), key)
        if len(namespace) <= self.user_at:
            raise InvalidNamespace(f"namespace {namespace} has no label at user_at={self.user_at}")
        rest = namespace[:self.user_at] + namespace[self.user_at + 1:]
        return user_of(namespace[self.user_at:self.user_at + 1]), _caller_id(rest, key)

    def _scopes(self, prefix: tuple[str, ...]) -> list[str]:
        """The users that may hold items under a namespace prefix."""
        users = self.memory.users()
        if self.user_at is None:
            return [u for u in users if (ns := namespace_of(u)) is not None and ns[:len(prefix)] == prefix]
        if len(prefix) > self.user_at:
            wanted = user_of(prefix[self.user_at:self.user_at + 1])
            return [u for u in users if u == wanted]
        return users

    def _entries(self, user_id: str) -> list[_Entry]:
        """Every item stored in one user scope (episodes in the store's own sessions)."""
        index = self.memory.episodes.index(user_id)
        ids = [i for i, s in zip(index.ids, index.sessions) if s.startswith((_CALLER, _DIGEST))]
        found = (_Entry.read(e) for e in self.memory.episodes.get(user_id, ids))
        return [e for e in found if e is not None]

    def _find(self, user_id: str, caller_id: str) -> _Entry | None:
        found = self.memory.episodes.get(user_id, [episode_id(user_id, caller_id)])
        return _Entry.read(found[0]) if found else None

    # --- the two abstract methods ------------------------------------------------
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ops in the order given (a get after a put of the same batch sees it).

        Every op is checked before the first one runs, so a malformed op leaves the store as it was.
        """
        ops = list(ops)
        for op in ops:
            _check(op)
        return [self._run(op) for op in ops]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """``batch`` in a worker thread, so the event loop keeps running meanwhile."""
        return await asyncio.to_thread(self.batch, list(ops))

    def _run(self, op: Op) -> Result:
        if isinstance(op, GetOp):
            user_id, caller_id = self._address(op.namespace, op.key)
            entry = self._find(user_id, caller_id)
            return entry.item() if entry is not None else None
        if isinstance(op, PutOp):
            self._put(op)
            return None
        if isinstance(op, SearchOp):
            return self._search(op)
        assert isinstance(op, ListNamespacesOp)
        return self._list_namespaces(op)

    # --- writes --------------------------------------------------------------------
    def _put(self, op: PutOp) -> None:
        user_id, caller_id = self._address(op.namespace, op.key)
        with self.memory.locks.hold(user_id):  # the check and the write are one step
            old = self._find(user_id, caller_id)
            if op.value is None:
                if old is not None:
                    self.memory.delete(user_id, old.episode_id)
                return
            now = to_datetime(self.memory.clock())
            value = dict(op.value)
            fields = op.index if op.index else self.index_config["fields"] if self.index_config else None
            text, indexed = item_text(value, fields)
            indexed = indexed and op.index is not False
            metadata = {STORE_KEY: {
                "namespace": list(op.namespace), "key": op.key, "value": value, "indexed": indexed,
                "created_at": (old.created_at if old else now).isoformat(), "updated_at": now.isoformat()}}
            update = getattr(self.memory, "update", None)  # Memory.update keeps the episode and its history
            if old is not None and callable(update):
                update(user_id, old.episode_id, text=text, metadata=metadata)
                return
            if old is not None:
                self.memory.delete(user_id, old.episode_id)  # add() would keep the stored episode of this caller id
            self.memory.add(user_id, [{"role": "user", "text": text, "id": caller_id, "timestamp": now,
                                       "metadata": metadata}], session_id=caller_id, now=now)

    # --- reads ---------------------------------------------------------------------
    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix, filters = tuple(op.namespace_prefix), check_filters(op.filter)
        if op.limit == 0:
            return []
        if op.query:
            ranked = [pair for user in self._scopes(prefix)
                      for pair in self._ranked(user, op.query, prefix, filters, op.offset + op.limit)]
            ranked.sort(key=lambda pair: -pair[0])
            return [entry.hit(score) for score, entry in ranked[op.offset:op.offset + op.limit]]
        listed = [e for user in self._scopes(prefix) for e in self._entries(user)
                  if e.namespace[:len(prefix)] == prefix and matches(e.value, filters)]
        listed.sort(key=lambda e: e.updated_at, reverse=True)
        return [e.hit() for e in listed[op.offset:op.offset + op.limit]]

    def _ranked(self, user_id: str, query: str, prefix: tuple[str, ...], filters: dict[str, Any],
                want: int) -> list[tuple[float, _Entry]]:
        """The best ``want`` items of one user scope for ``query``, asking memagent for more hits
        while filters, other namespaces or the user's other episodes leave too few."""
        total, settings = self.memory.count(user_id), self.memory.config.retrieval
        k = max(2 * want, 10)
        while True:
            wider = settings.model_copy(update={"candidates": min(1000, max(settings.candidates, k))})
            hits = self.memory.search(user_id, query, k=k, include_archived=True, retrieval=wider)
            kept = [(hit.score, entry) for hit in hits if (entry := _Entry.read(hit.episode)) is not None
                    and entry.indexed and entry.namespace[:len(prefix)] == prefix and matches(entry.value, filters)]
            if len(kept) >= want or len(hits) < k or k >= total:
                return kept[:want]
            k = min(4 * k, total)

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        found: set[tuple[str, ...]] = set()
        for user_id in self.memory.users():
            if self.user_at is None:
                namespace = namespace_of(user_id)
                if namespace is not None and self._entries(user_id):
                    found.add(namespace)
            else:
                found.update(e.namespace for e in self._entries(user_id))
        conditions = op.match_conditions or ()
        kept = {ns[:op.max_depth] if op.max_depth else ns for ns in found
                if all(_namespace_matches(c, ns) for c in conditions)}
        return sorted(kept)[op.offset:op.offset + op.limit]

    # --- LangGraph's public methods, raising memagent's errors -------------------
    get = _translated(BaseStore.get)
    search = _translated(BaseStore.search)
    put = _translated(BaseStore.put)
    delete = _translated(BaseStore.delete)
    list_namespaces = _translated(BaseStore.list_namespaces)
    aget = _atranslated(BaseStore.aget)
    asearch = _atranslated(BaseStore.asearch)
    aput = _atranslated(BaseStore.aput)
    adelete = _atranslated(BaseStore.adelete)
    alist_namespaces = _atranslated(BaseStore.alist_namespaces)
