"""Episodes on LanceDB: one table per kind of record, every row and query scoped by user.

The ``episodes`` table holds every user's episodes with a ``user_id`` column;
every read filters on it (a B-tree index makes that cheap). Full-text search
uses LanceDB's native inverted index, which also scans rows written after the
last index refresh, so a new episode is found at once. A vector (ANN) index is
built once, when the table grows past ``vector_index_min_rows``; below that,
and for users with few rows, search is exact. Indexes are refreshed
incrementally by ``optimize`` every few writes, never rebuilt per write.

Writes are one LanceDB commit each, so a crash mid-write leaves either the
whole batch or nothing; ids already stored for the user are skipped, so a
retry inserts only what is missing.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import FTS, BTree, IvfPq

from memagent.errors import ConfigError, EmbedderMismatchError, StorageError
from memagent.store.cache import COLUMNS as CACHED_COLUMNS
from memagent.store.cache import UserIndex, UserIndexCache
from memagent.types import Episode

SCHEMA_VERSION = 1
EPISODES = "episodes"
META = "meta"

# Migrations from version N to N+1, applied in order when an older store opens.
MIGRATIONS: dict[int, Any] = {}


def sql_str(value: str) -> str:
    """Quote a string literal for a LanceDB filter."""
    return "'" + value.replace("'", "''") + "'"


def time_where(since: datetime | None = None, until: datetime | None = None) -> str | None:
    """A filter on event time, ``since <= event_time < until``, for aware datetimes."""
    def literal(value: datetime) -> str:
        utc = value.astimezone(timezone.utc).replace(tzinfo=None)
        return f"TIMESTAMP '{utc.isoformat(sep=' ', timespec='microseconds')}'"

    clauses = []
    if since is not None:
        clauses.append(f"event_time >= {literal(since)}")
    if until is not None:
        clauses.append(f"event_time < {literal(until)}")
    return " AND ".join(clauses) or None


def episode_schema(dim: int) -> pa.Schema:
    return pa.schema([
        pa.field("id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("role", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("search_text", pa.string(), nullable=False),
        pa.field("context_text", pa.string(), nullable=False),
        pa.field("event_time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("ingest_time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("turn", pa.int32(), nullable=False),
        pa.field("source_id", pa.string()),
        pa.field("metadata", pa.string(), nullable=False),
        pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
    ])


_META_SCHEMA = pa.schema([pa.field("key", pa.string()), pa.field("value", pa.string())])
class LanceStore:
    """All tables of one data directory (or LanceDB URI).

    >>> store = LanceStore("/tmp/memagent-doc", dimension=384)  # doctest: +SKIP
    """

    def __init__(self, uri: str | Path, dimension: int, embedder_name: str = "",
                 *, vector_index_min_rows: int = 100_000,
                 exact_search_max_user_rows: int = 50_000,
                 optimize_every_writes: int = 50, optimize_every_rows: int = 2000,
                 keep_versions_hours: float = 1.0) -> None:
        self.uri = str(uri)
        self.dimension = dimension
        self.vector_index_min_rows = vector_index_min_rows
        self.exact_search_max_user_rows = exact_search_max_user_rows
        self.optimize_every_writes = optimize_every_writes
        self.optimize_every_rows = optimize_every_rows
        self.keep_versions = timedelta(hours=keep_versions_hours)
        self._lock = threading.RLock()
        self._writes = 0
        self._users = UserIndexCache()
        self._unindexed = 0
        try:
            if "://" not in self.uri:
                Path(self.uri).mkdir(parents=True, exist_ok=True)
            self.db = lancedb.connect(self.uri)
            self._meta = self._open_meta(embedder_name)
            self.episodes = self._open_table(EPISODES, episode_schema(dimension))
        except (OSError, RuntimeError) as exc:
            raise StorageError(f"cannot open LanceDB at {self.uri}: {exc}") from exc

    # --- opening, schema version, embedder dimension -----------------------
    def _table_names(self) -> set[str]:
        result = self.db.list_tables()
        names = getattr(result, "tables", result)
        return set(names)

    def _open_table(self, name: str, schema: pa.Schema) -> Any:
        if name in self._table_names():
            return self.db.open_table(name)
        return self.db.create_table(name, schema=schema, exist_ok=True)

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
        return int(self._meta["schema_version"]) if "schema_version" in self._meta else SCHEMA_VERSION

    # --- writes ---------------------------------------------------------------
    def add(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert, in one commit, the rows whose (user_id, id) is not stored yet; return how many.

        Stored ids are checked against the user's cached copy under the store's
        lock, so a retried or concurrent batch from this process adds nothing twice.
        """
        with self._lock:
            stored = {user: self.user_index(user).row_of for user in {r["user_id"] for r in rows}}
            seen: set[tuple[str, str]] = set()
            fresh = []
            for row in rows:
                key = (row["user_id"], row["id"])
                if key not in seen and row["id"] not in stored[row["user_id"]]:
                    seen.add(key)
                    fresh.append(row)
            if not fresh:
                return 0
            table = pa.Table.from_pylist(fresh, schema=self.episodes.schema)
            self.episodes.add(table)
            self._remember(table)
            self._after_write(len(fresh))
            return len(fresh)

    def _remember(self, table: pa.Table) -> None:
        """Append freshly written rows to the cached copies of their users."""
        users = table.column("user_id").to_pylist()
        for user_id in set(users):
            entry = self._users.get(user_id)
            if entry is not None:
                mask = pa.array([u == user_id for u in users])
                entry = entry.append(table.filter(mask))
                if entry.vectors is not None and len(entry) > self.exact_search_max_user_rows:
                    entry = UserIndex(entry.table, None)  # large now: the ANN index takes over
                self._users.put(user_id, entry)

    def _after_write(self, rows: int) -> None:
        self._writes += 1
        self._unindexed += rows
        if self._writes == 1 and not self._index_names():
            self._create_base_indexes()
        if self._writes % self.optimize_every_writes == 0 or self._unindexed >= self.optimize_every_rows:
            self.optimize()

    def _index_names(self) -> set[str]:
        return {ix.name for ix in self.episodes.list_indices()}

    def _create_base_indexes(self) -> None:
        names = self._index_names()
        for column in ("search_text", "context_text"):
            if f"{column}_idx" not in names:
                self.episodes.create_index(column, config=FTS(with_position=False), replace=False)
        if "user_id_idx" not in names:
            self.episodes.create_index("user_id", config=BTree(), replace=False)

    def optimize(self, cleanup_all: bool = False) -> None:
        """Compact files, refresh indexes incrementally, build the ANN index when due."""
        with self._lock:
            rows = self.episodes.count_rows()
            if rows == 0:
                return
            self._create_base_indexes()
            if "vector_idx" not in self._index_names() and rows >= self.vector_index_min_rows:
                parts = max(1, int(rows ** 0.5))
                self.episodes.create_index("vector", config=IvfPq(distance_type="cosine", num_partitions=parts))
            self._unindexed = 0
            keep = timedelta(0) if cleanup_all else self.keep_versions
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                self.episodes.optimize(cleanup_older_than=keep, delete_unverified=cleanup_all)

    def refresh(self) -> None:
        """See what other processes wrote: move to the table's latest version, drop cached copies."""
        with self._lock:
            self.episodes.checkout_latest()
            self._users.drop()

    def delete(self, user_id: str, ids: Sequence[str]) -> int:
        """Delete episodes of one user by id; return how many existed."""
        with self._lock:
            found = self.existing_ids(user_id, ids)
            if found:
                id_list = ", ".join(sql_str(i) for i in found)
                self.episodes.delete(f"user_id = {sql_str(user_id)} AND id IN ({id_list})")
                self._users.drop({user_id})
            return len(found)

    def delete_user(self, user_id: str) -> int:
        """Remove every row of a user from every table, then purge old versions and indexes."""
        with self._lock:
            count = self.count(user_id)
            self.episodes.delete(f"user_id = {sql_str(user_id)}")
            self._users.drop({user_id})
            self.optimize(cleanup_all=True)
            return count

    # --- reads ----------------------------------------------------------------
    def _user_filter(self, user_id: str, where: str | None = None) -> str:
        base = f"user_id = {sql_str(user_id)}"
        return f"{base} AND ({where})" if where else base

    def count(self, user_id: str, where: str | None = None) -> int:
        return self.episodes.count_rows(self._user_filter(user_id, where))

    def existing_ids(self, user_id: str, ids: Sequence[str]) -> set[str]:
        entry = self.user_index(user_id)
        return {i for i in ids if i in entry.row_of}

    def get(self, user_id: str, ids: Sequence[str]) -> list[Episode]:
        """Episodes of one user by id, in the order asked; unknown ids are skipped."""
        entry = self.user_index(user_id)
        found = (entry.episode(i) for i in ids)
        return [e for e in found if e is not None]

    def positions(self, user_id: str, session_ids: set[str]) -> tuple[int, dict[str, int]]:
        """The next ``seq`` of a user and the next ``turn`` of each session."""
        entry = self.user_index(user_id)
        sizes = entry.session_sizes()
        return entry.next_seq(), {s: sizes.get(s, 0) for s in session_ids}

    def ordered_ids(self, user_id: str, session_id: str | None = None) -> list[str]:
        """Every episode id of a user in the order written."""
        return self.user_index(user_id).ordered_ids(session_id)

    def iter_user(self, user_id: str) -> Iterator[Episode]:
        yield from self.get(user_id, self.ordered_ids(user_id))

    def session_turns(self, user_id: str, wanted: dict[str, set[int]]) -> list[Episode]:
        """Episodes at the given turn numbers of the given sessions."""
        entry = self.user_index(user_id)
        ids = [entry.id_at(s, t) for s, turns in wanted.items() for t in sorted(turns)]
        return self.get(user_id, [i for i in ids if i is not None])

    def users(self) -> list[str]:
        table = self.episodes.search().select(["user_id"]).limit(None).to_arrow()
        return sorted(set(table.column("user_id").to_pylist()))

    # --- search ---------------------------------------------------------------
    def lexical(self, user_id: str, text: str, k: int, where: str | None = None,
                context: bool = True) -> list[tuple[str, float]]:
        """Ids and BM25 scores of one user's full-text hits, best first.

        Over each turn with the turn before it if ``context``, else the turn alone.
        """
        from lancedb.query import MatchQuery

        column = "context_text" if context else "search_text"
        query = (self.episodes.search(MatchQuery(text, column), query_type="fts")
                 .where(self._user_filter(user_id, where), prefilter=True)
                 .select(["id", "_score"]).limit(k))
        return [(r["id"], float(r["_score"])) for r in query.to_list()]

    def user_index(self, user_id: str) -> UserIndex:
        """Positions of a user's episodes, with vectors while exact search is due; cached."""
        entry = self._users.get(user_id)
        if entry is not None:
            return entry
        with self._lock:  # no write may slip between the scan and the put
            entry = self._users.get(user_id)
            if entry is not None:
                return entry
            exact = self.count(user_id) <= self.exact_search_max_user_rows
            columns = CACHED_COLUMNS + (["vector"] if exact else [])
            table = self.episodes.search().where(self._user_filter(user_id)).select(columns).limit(None).to_arrow()
            entry = UserIndex.from_arrow(table, with_vectors=exact)
            self._users.put(user_id, entry)
        return entry

    def vector(self, user_id: str, vector: np.ndarray, k: int, since: datetime | None = None,
               until: datetime | None = None) -> list[tuple[str, float]]:
        """Ids and cosine similarities of a user's nearest episodes, best first.

        Exact (in memory) for users with few rows; the ANN index past that.
        """
        entry = self.user_index(user_id)
        if entry.vectors is not None:
            return entry.nearest(vector, k, entry.mask(since, until))
        query = (self.episodes.search(vector.astype(np.float32), vector_column_name="vector")
                 .distance_type("cosine").where(self._user_filter(user_id, time_where(since, until)), prefilter=True)
                 .select(["id", "_distance"]).limit(k))
        return [(r["id"], 1.0 - float(r["_distance"])) for r in query.to_list()]

    def index_stats(self) -> dict[str, Any]:
        return {ix.name: ix.index_type for ix in self.episodes.list_indices()}
