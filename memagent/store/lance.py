"""``LanceBackend``: the storage contract on a LanceDB directory (or URI), the embedded default.

One table per kind of record (``memagent.records.Kind``), every row with a
``user_id`` column that every query filters on (a B-tree index keeps that
cheap). Full-text search uses LanceDB's native inverted index, which also
scans rows written after the last index refresh, so a new row is found at
once. A vector (ANN) index is built once a table grows past
``vector_index_min_rows``; below that, search is exact. Indexes are refreshed
incrementally every few writes, never rebuilt per write.

A batch is one LanceDB commit, so a crash mid-write leaves all of it or none
of it. An episode batch is checked against the ids the user has stored, under
the backend's lock, so a retried batch adds nothing twice. Every
LanceDB or Arrow error surfaces as ``StorageError``.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.index import FTS, BTree, IvfPq

from memagent.errors import ConfigError, EmbedderMismatchError, MemagentError, StorageError
from memagent.records import TEXT_FIELDS, VECTOR_KINDS, Kind
from memagent.store.base import Backend, Capabilities, Hits
from memagent.store.schema import codec, from_table, schema, to_rows, to_table

SCHEMA_VERSION = 1
META = "meta"
_META_SCHEMA = pa.schema([pa.field("key", pa.string()), pa.field("value", pa.string())])
# Migrations from version N to N+1, applied in order when an older store opens.
MIGRATIONS: dict[int, Callable[[Any], None]] = {}
F = TypeVar("F", bound=Callable[..., Any])


def sql_str(value: str) -> str:
    """Quote a string literal for a LanceDB filter."""
    return "'" + value.replace("'", "''") + "'"


def _literal(value: datetime) -> str:
    utc = value.astimezone(timezone.utc).replace(tzinfo=None)
    return f"TIMESTAMP '{utc.isoformat(sep=' ', timespec='microseconds')}'"


def time_where(since: datetime | None = None, until: datetime | None = None) -> str | None:
    """A filter on event time, ``since <= event_time < until``, for aware datetimes."""
    clauses = []
    if since is not None:
        clauses.append(f"event_time >= {_literal(since)}")
    if until is not None:
        clauses.append(f"event_time < {_literal(until)}")
    return " AND ".join(clauses) or None


def _wrapped(method: F) -> F:
    """Re-raise engine errors of a backend call as ``StorageError`` (memagent's own pass through)."""
    @functools.wraps(method)
    def call(self: LanceBackend, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except MemagentError:
            raise
        except (OSError, RuntimeError, ValueError, pa.ArrowException) as exc:
            raise StorageError(f"LanceDB at {self.uri}: {method.__name__} failed: {exc}") from exc
    return call  # type: ignore[return-value]


class LanceBackend(Backend):
    """Every record kind of one data directory (or LanceDB URI) in LanceDB tables.

    >>> backend = LanceBackend("/tmp/memagent-doc", dimension=384)  # doctest: +SKIP
    """

    capabilities = Capabilities(persistent=True, shared=True, ann_index=True)

    def __init__(self, uri: str | Path, dimension: int, embedder_name: str = "", *,
                 vector_index_min_rows: int = 100_000, optimize_every_writes: int = 50,
                 optimize_every_rows: int = 2000, keep_versions_hours: float = 1.0) -> None:
        self.uri = str(uri)
        self.dimension = dimension
        self.vector_index_min_rows = vector_index_min_rows
        self.optimize_every_writes = optimize_every_writes
        self.optimize_every_rows = optimize_every_rows
        self.keep_versions = timedelta(hours=keep_versions_hours)
        self._lock = threading.RLock()
        self._writes = 0
        self._unindexed = 0
        self._indexed: set[Kind] = set()
        try:
            if "://" not in self.uri:
                Path(self.uri).mkdir(parents=True, exist_ok=True)
            self.db = lancedb.connect(self.uri)
            self._meta = self._open_meta(embedder_name)
            self.tables = {kind: self._open_table(kind.value, schema(kind, dimension)) for kind in Kind}
        except MemagentError:
            raise
        except (OSError, RuntimeError, ValueError, pa.ArrowException) as exc:
            raise StorageError(f"cannot open LanceDB at {self.uri}: {exc}") from exc

    # --- opening, schema version, embedder dimension -----------------------
    def _open_table(self, name: str, target: pa.Schema) -> Any:
        result = self.db.list_tables()
        if name in set(getattr(result, "tables", result)):
            return self.db.open_table(name)
        return self.db.create_table(name, schema=target, exist_ok=True)

    def _open_meta(self, embedder_name: str) -> dict[str, str]:
        table = self._open_table(META, _META_SCHEMA)
        meta = {r["key"]: r["value"] for r in table.search().limit(None).to_list()}
        if not meta:
            meta = {"schema_version": str(SCHEMA_VERSION), "dimension": str(self.dimension),
                    "embedder": embedder_name}
            table.add([{"key": k, "value": v} for k, v in meta.items()])
            return meta
        stored_dim = int(meta["dimension"])
        if stored_dim != self.dimension:
            raise EmbedderMismatchError(stored_dim, self.dimension, meta.get("embedder", ""))
        version = int(meta["schema_version"])
        if version > SCHEMA_VERSION:
            raise ConfigError(f"data directory {self.uri} has schema version {version}; "
                              f"this memagent reads up to {SCHEMA_VERSION}: upgrade memagent")
        for step in range(version, SCHEMA_VERSION):
            MIGRATIONS[step](self.db)
            table.update(where="key = 'schema_version'", values={"value": str(step + 1)})
        return meta

    @property
    def schema_version(self) -> int:
        return int(self._meta.get("schema_version", SCHEMA_VERSION))

    # --- writes ---------------------------------------------------------------
    @_wrapped
    def put(self, kind: Kind, records: Sequence[Any], vectors: np.ndarray | None = None) -> int:
        rows = to_rows(kind, records, vectors)
        if not rows:
            return 0
        table = self.tables[kind]
        data = to_table(kind, rows, table.schema)
        with self._lock:
            if kind is Kind.EPISODE:
                data = self._unseen(data)
                if data.num_rows:
                    table.add(data)
                written = data.num_rows
            else:
                (table.merge_insert(["user_id", "id"]).when_matched_update_all().when_not_matched_insert_all()
                 .execute(data))
                written = data.num_rows
            self._after_write(kind, written)
            return written

    def _unseen(self, data: pa.Table) -> pa.Table:
        """The rows of an episode batch whose (user_id, id) is not stored yet (first of repeats)."""
        keys = list(zip(data.column("user_id").to_pylist(), data.column("id").to_pylist()))
        stored: set[tuple[str, str]] = set()
        for user in dict.fromkeys(u for u, _ in keys):
            ids = ", ".join(sql_str(i) for u, i in keys if u == user)
            found = (self.tables[Kind.EPISODE].search().where(f"user_id = {sql_str(user)} AND id IN ({ids})")
                     .select(["id"]).limit(None).to_arrow())
            stored |= {(user, i) for i in found.column("id").to_pylist()}
        keep = []
        for n, key in enumerate(keys):
            if key not in stored:
                stored.add(key)
                keep.append(n)
        return data.take(pa.array(keep, pa.int64())) if len(keep) < len(keys) else data

    def _after_write(self, kind: Kind, rows: int) -> None:
        if kind not in self._indexed:
            self._create_base_indexes(kind)
        if kind is Kind.EPISODE:
            self._writes += 1
            self._unindexed += rows
            if self._writes % self.optimize_every_writes == 0 or self._unindexed >= self.optimize_every_rows:
                self.optimize()

    def _create_base_indexes(self, kind: Kind) -> None:
        table = self.tables[kind]
        if not table.count_rows():
            return
        names = {ix.name for ix in table.list_indices()}
        for column in TEXT_FIELDS.get(kind, ()):
            if f"{column}_idx" not in names:
                table.create_index(column, config=FTS(with_position=False), replace=False)
        if "user_id_idx" not in names:
            table.create_index("user_id", config=BTree(), replace=False)
        self._indexed.add(kind)

    @_wrapped
    def delete(self, kind: Kind, user_id: str, ids: Sequence[str] | None = None) -> int:
        where = f"user_id = {sql_str(user_id)}"
        with self._lock:
            if ids is not None:
                ids = list(dict.fromkeys(ids))
                if not ids:
                    return 0
                where += f" AND id IN ({', '.join(sql_str(i) for i in ids)})"
            table = self.tables[kind]
            count = table.count_rows(where)
            if count:
                table.delete(where)
            return count

    # --- reads ----------------------------------------------------------------
    def _where(self, user_id: str, since: datetime | None = None, until: datetime | None = None) -> str:
        base = f"user_id = {sql_str(user_id)}"
        extra = time_where(since, until)
        return f"{base} AND ({extra})" if extra else base

    @_wrapped
    def get(self, kind: Kind, user_id: str, ids: Sequence[str]) -> list[Any]:
        if not ids:
            return []
        id_list = ", ".join(sql_str(i) for i in dict.fromkeys(ids))
        columns = [c.name for c in codec(kind).columns]
        table = (self.tables[kind].search().where(f"user_id = {sql_str(user_id)} AND id IN ({id_list})")
                 .select(columns).limit(None).to_arrow())
        found = {r.id: r for r in from_table(kind, table)}
        return [found[i] for i in ids if i in found]

    @_wrapped
    def scan(self, kind: Kind, user_id: str, *, vectors: bool = True) -> pa.Table:
        columns = [c.name for c in codec(kind).columns] + (["vector"] if vectors and kind in VECTOR_KINDS else [])
        table = (self.tables[kind].search().where(f"user_id = {sql_str(user_id)}").select(columns)
                 .limit(None).to_arrow())
        if kind is Kind.EPISODE and table.num_rows:
            table = table.take(pc.sort_indices(table, [("seq", "ascending")]))
        return table

    @_wrapped
    def count(self, kind: Kind, user_id: str) -> int:
        return int(self.tables[kind].count_rows(f"user_id = {sql_str(user_id)}"))

    @_wrapped
    def users(self) -> list[str]:
        table = self.tables[Kind.EPISODE].search().select(["user_id"]).limit(None).to_arrow()
        return sorted(set(table.column("user_id").to_pylist()))

    @_wrapped
    def text_search(self, kind: Kind, user_id: str, text: str, k: int, *, field: str | None = None,
                    since: datetime | None = None, until: datetime | None = None) -> Hits:
        from lancedb.query import MatchQuery

        column = self.text_field(kind, field)
        if kind not in self._indexed:
            self._create_base_indexes(kind)
            if kind not in self._indexed:  # an empty table has no index yet: nothing matches
                return []
        # lancedb declares MatchQuery's options as pydantic.Field(default, kw_only=True),
        # which mypy reads as required arguments.
        match = MatchQuery(text, column)  # type: ignore[call-arg]
        query = (self.tables[kind].search(match, query_type="fts")
                 .where(self._where(user_id, since, until), prefilter=True).select(["id", "_score"]).limit(k))
        return [(r["id"], float(r["_score"])) for r in query.to_list()]

    @_wrapped
    def vector_search(self, kind: Kind, user_id: str, vector: np.ndarray, k: int, *,
                      since: datetime | None = None, until: datetime | None = None) -> Hits:
        query = (self.tables[kind].search(np.asarray(vector, dtype=np.float32), vector_column_name="vector")
                 .distance_type("cosine").where(self._where(user_id, since, until), prefilter=True)
                 .select(["id", "_distance"]).limit(k))
        return [(r["id"], 1.0 - float(r["_distance"])) for r in query.to_list()]

    # --- upkeep ---------------------------------------------------------------------
    @_wrapped
    def refresh(self) -> None:
        with self._lock:
            for table in self.tables.values():
                table.checkout_latest()

    @_wrapped
    def optimize(self, cleanup_all: bool = False) -> None:
        """Compact files, refresh indexes incrementally, build the ANN index when due."""
        with self._lock:
            episodes = self.tables[Kind.EPISODE]
            rows = episodes.count_rows()
            if rows and "vector_idx" not in self.stats() and rows >= self.vector_index_min_rows:
                parts = max(1, int(rows ** 0.5))
                episodes.create_index("vector", config=IvfPq(distance_type="cosine", num_partitions=parts))
            self._unindexed = 0
            keep = timedelta(0) if cleanup_all else self.keep_versions
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                for kind, table in self.tables.items():
                    if kind not in self._indexed:
                        self._create_base_indexes(kind)
                    table.optimize(cleanup_older_than=keep, delete_unverified=cleanup_all)

    def purge(self) -> None:
        self.optimize(cleanup_all=True)

    def stats(self) -> dict[str, Any]:
        return {ix.name: ix.index_type for ix in self.tables[Kind.EPISODE].list_indices()}
