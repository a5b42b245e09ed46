"""``LanceBackend``: the storage contract on a LanceDB directory (or URI), the embedded default.

One table per kind of record (``memagent.records.Kind``), every row with a
``user_id`` column that every query filters on (a B-tree index keeps that
cheap). Full-text search uses LanceDB's native inverted index, which also
scans rows written after the last index refresh, so a new row is found at
once. A vector (ANN) index is built once a table grows past
``vector_index_min_rows``; below that, search is exact, and so is the search of
a user with at most ``exact_max_rows`` rows (the user filter picks that user's
rows first: an ANN index over every user's rows would trade that user's recall
for nothing). Indexes are refreshed
incrementally every few writes, never rebuilt per write, in a background
thread (``background_upkeep``), so that no write waits for it.

A batch is one LanceDB commit, so a crash mid-write leaves all of it or none
of it. An episode batch is checked against the ids the user has stored, under
the backend's lock, so a retried batch adds nothing twice. Every
LanceDB or Arrow error surfaces as ``StorageError``.

Many processes may open one directory. After each commit the backend replaces
the user's change token (``memagent.store.versions``); a read first compares
the token of its user and kind with the last one this object saw and, if it
changed, checks the table's latest version out, so it sees every write
committed before it, by any process, without ``refresh``. A commit that loses a
race with another process's commit, and a read whose table version was purged
under it (``delete_user``, maintenance), are retried inside the call with
backoff (after checking out the latest version); the caller sees the result or,
past the retries, a ``StorageError``. Retrying a write is safe: episodes are
inserted only if absent, every other kind is upserted by id.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.index import FTS, BTree, IvfPq

from memagent.errors import ConfigError, EmbedderMismatchError, MemagentError, StorageError
from memagent.locks import StripedLocks, UserLocks, directory_lock
from memagent.records import TEXT_FIELDS, VECTOR_KINDS, Kind
from memagent.store.base import Backend, Capabilities, Hits, retried
from memagent.store.schema import codec, from_table, schema, to_rows, to_table
from memagent.store.versions import LocalVersions, VersionFiles

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
META = "meta"
_META_SCHEMA = pa.schema([pa.field("key", pa.string()), pa.field("value", pa.string())])
# Migrations from version N to N+1, applied in order when an older store opens.
MIGRATIONS: dict[int, Callable[[Any], None]] = {}


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


RETRIES = 10
_DELETE_CHUNK = 10_000  # row addresses per delete commit
_SHRED_USERS = 256  # users whose rows one rewrite commit moves
_SHRED_WAIT_S = 10.0  # how long a rewrite waits for busy users' locks
_BACKOFF_S = 0.005
_BACKOFF_MAX_S = 0.5
_CONFLICT = ("conflict", "retryable")  # a commit that lost a race with another one
_VANISHED = ("not found", "no such file")  # a table version purged under a reader


def _retry_reason(exc: BaseException) -> str | None:
    text = str(exc).lower()
    if any(word in text for word in _CONFLICT):
        return "conflict"
    if any(word in text for word in _VANISHED):
        return "vanished"
    return None


def _checkout_after_retry(backend: LanceBackend) -> None:
    with suppress(OSError, RuntimeError, ValueError):
        backend._checkout_all()


# Commit conflicts and vanished versions are retried; every other engine error is a StorageError.
_wrapped = retried("LanceDB", lambda: (OSError, RuntimeError, ValueError, pa.ArrowException), _retry_reason,
                   attempts=RETRIES, backoff=(_BACKOFF_S, _BACKOFF_MAX_S), after=_checkout_after_retry)


class LanceBackend(Backend):
    """Every record kind of one data directory (or LanceDB URI) in LanceDB tables.

    >>> backend = LanceBackend("/tmp/memagent-doc", dimension=384)  # doctest: +SKIP
    """

    capabilities = Capabilities(persistent=True, shared=True, ann_index=True)

    def __init__(self, uri: str | Path, dimension: int, embedder_name: str = "", *,
                 vector_index_min_rows: int = 100_000, exact_max_rows: int = 50_000, optimize_every_writes: int = 50,
                 optimize_every_rows: int = 2000, keep_versions_hours: float = 1.0,
                 background_upkeep: bool = True, change_tokens: int = 100_000,
                 cache_bytes: tuple[int, int] | None = (64 * 2**20, 32 * 2**20)) -> None:
        self.uri = str(uri)
        self.name = self.uri  # how messages name this store
        self.dimension = dimension
        self.vector_index_min_rows = vector_index_min_rows
        self.exact_max_rows = exact_max_rows
        self.optimize_every_writes = optimize_every_writes
        self.optimize_every_rows = optimize_every_rows
        self.keep_versions = timedelta(hours=keep_versions_hours)
        self._lock = threading.RLock()  # index bookkeeping and creation
        self._view_lock = threading.RLock()  # which table versions this object has checked out
        self._writing = StripedLocks()  # one user's check-then-write is one step; other users go on
        self._user_locks = UserLocks(self.uri)  # every process's per-user locks, for rewriting other users' rows
        self._holed: dict[Kind, set[int]] = {}  # data files whose deleted rows a busy user kept from a rewrite
        self.background_upkeep = background_upkeep
        self._optimizing = threading.Lock()  # one optimize at a time
        self._upkeep_due = threading.Event()
        self._upkeep_thread: threading.Thread | None = None
        self._closing = False
        self._writes = 0
        self._unindexed = 0
        self._indexed: set[Kind] = set()
        self._versions = VersionFiles(self.uri) if "://" not in self.uri else LocalVersions()
        # the last token of each user and kind this object saw (least recently used dropped first)
        self._seen: OrderedDict[tuple[str, Kind], str] = OrderedDict()
        self._seen_max = change_tokens
        self._epoch = ""
        self.retries: Counter[str] = Counter()
        try:
            if "://" not in self.uri:
                Path(self.uri).mkdir(parents=True, exist_ok=True)
            session = None if cache_bytes is None else lancedb.Session(
                index_cache_size_bytes=cache_bytes[0], metadata_cache_size_bytes=cache_bytes[1])
            self.session = session  # LanceDB's caches: ``session.size_bytes()``
            self.db = lancedb.connect(self.uri, session=session)
            with directory_lock(self.uri, "open"):  # two processes opening a new directory: one creates it
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
    def put(self, kind: Kind, records: Sequence[Any], vectors: np.ndarray | None = None, *,
            replace: bool = False) -> int:
        rows = to_rows(kind, records, vectors)
        if not rows:
            return 0
        table = self.tables[kind]
        data = to_table(kind, rows, table.schema)
        users = set(data.column("user_id").to_pylist())
        with self._writing.hold(users):
            for user_id in users:
                self._fresh(user_id, kind)  # ids another process stored are seen, and not written twice
            if kind is Kind.EPISODE and not replace:
                data = self._unseen(data)
                if data.num_rows:
                    table.add(data)
                written = data.num_rows
            else:
                (table.merge_insert(["user_id", "id"]).when_matched_update_all().when_not_matched_insert_all()
                 .execute(data))
                written = data.num_rows
            for user_id in set(data.column("user_id").to_pylist()) if written else ():
                self._changed(user_id, kind)
            self._after_write(kind, written)
            return written

    # --- change tokens: what other processes committed -----------------------------
    def _changed(self, user_id: str, kind: Kind) -> None:
        """After this object's commit: a new token, and this object's view is current for it."""
        self._see((user_id, kind), self._versions.bump(user_id, kind).partition("/")[2])

    def _see(self, key: tuple[str, Kind], value: str) -> None:
        with self._view_lock:
            self._seen[key] = value
            self._seen.move_to_end(key)
            while len(self._seen) > self._seen_max:
                self._seen.popitem(last=False)

    def _checkout_all(self) -> None:
        with self._view_lock:
            for table in self.tables.values():
                table.checkout_latest()

    def _fresh(self, user_id: str, kind: Kind) -> str:
        """The user's token of a kind; check the latest table version out if it moved since last seen."""
        token = self._versions.token(user_id, kind)
        epoch, _, value = token.partition("/")
        with self._view_lock:
            if epoch != self._epoch:  # a user was deleted somewhere: every table may have moved
                self._checkout_all()
                self._epoch = epoch
            if value != self._seen.get((user_id, kind), ""):
                self.tables[kind].checkout_latest()
                self._see((user_id, kind), value)
        return token

    @_wrapped
    def version(self, user_id: str, kind: Kind) -> str:
        return self._fresh(user_id, kind)

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
        """Index upkeep after a commit; a failure here is logged, never the write's failure."""
        try:
            self._upkeep_after(kind, rows)
        except (MemagentError, OSError, RuntimeError, ValueError, pa.ArrowException) as exc:
            log.warning("LanceDB at %s: index upkeep after a write failed (retried later): %s", self.uri, exc)

    def _upkeep_after(self, kind: Kind, rows: int) -> None:
        due = False
        with self._lock:
            if kind not in self._indexed:
                self._create_base_indexes(kind)
            if kind is Kind.EPISODE:
                self._writes += 1
                self._unindexed += rows
                if self._writes % self.optimize_every_writes == 0 or self._unindexed >= self.optimize_every_rows:
                    self._unindexed = 0
                    due = True
        if due:
            self._request_upkeep()

    def _create_base_indexes(self, kind: Kind) -> None:
        if not self.tables[kind].count_rows():
            return
        self._build_indexes(kind, rebuild=False)
        self._indexed.add(kind)

    def _build_indexes(self, kind: Kind, rebuild: bool) -> None:
        """The full-text indexes of a kind's text columns and the user id index: the missing ones
        built, or (``rebuild``) the existing ones built again from the live rows."""
        table = self.tables[kind]
        names = {ix.name for ix in table.list_indices()}
        for column in TEXT_FIELDS.get(kind, ()):
            if (f"{column}_idx" in names) == rebuild:
                table.create_index(column, config=FTS(with_position=False), replace=rebuild)
        if ("user_id_idx" in names) == rebuild:
            table.create_index("user_id", config=BTree(), replace=rebuild)

    @_wrapped
    def delete(self, kind: Kind, user_id: str, ids: Sequence[str] | None = None) -> int:
        where = f"user_id = {sql_str(user_id)}"
        if ids is not None:
            ids = list(dict.fromkeys(ids))
            if not ids:
                return 0
            where += f" AND id IN ({', '.join(sql_str(i) for i in ids)})"
        with self._writing.hold([user_id]):
            self._fresh(user_id, kind)
            count, fragments = self._delete_where(kind, where)
            if count:
                self._changed(user_id, kind)
                self._holed.setdefault(kind, set()).update(fragments)
            return count

    @_wrapped
    def _delete_where(self, kind: Kind, where: str) -> tuple[int, set[int]]:
        """Delete the rows ``where`` selects by their row addresses, so that the filter (which
        names the user) never reaches the table's transaction files; return how many and the
        data files (fragment ids) that held them."""
        table = self.tables[kind]
        deleted, fragments = 0, set[int]()
        for _ in range(RETRIES):
            found = table.search().where(where).select(["_rowaddr"]).limit(None).to_arrow().column("_rowaddr")
            addresses = found.to_pylist()
            if not addresses:
                return deleted, fragments
            for start in range(0, len(addresses), _DELETE_CHUNK):
                table.delete(f"_rowaddr IN ({', '.join(map(str, addresses[start:start + _DELETE_CHUNK]))})")
            deleted += len(addresses)  # a compaction may have moved some meanwhile: look again
            fragments |= {address >> 32 for address in addresses}
            deleted -= table.count_rows(where)
        raise StorageError(f"LanceDB at {self.uri}: rows kept moving while they were deleted")

    def delete_user(self, user_id: str) -> None:
        """Remove every row of a user and every trace of it on disk.

        The rows are deleted by row address (a ``user_id = ...`` predicate would stay
        in the table's transaction files); the data files that held them are
        rewritten without them, the indexes of those tables are rebuilt, and old
        versions are cleaned up. Rewriting other users' rows takes their locks without
        waiting, retried with backoff: rows of a user busy throughout stay in their old
        file, which the next ``delete_user`` of that table rewrites (logged).
        """
        holed = {kind: fragments for kind in Kind if (fragments := self._delete_rows(kind, user_id))}
        if not holed:
            return  # nothing of the user was stored (or deleted here before): no file holds it
        self._versions.drop_user(user_id)
        with self._view_lock:
            for key in [k for k in self._seen if k[0] == user_id]:
                del self._seen[key]
        for kind, fragments in holed.items():
            self._shred(kind, fragments)
        self._reindex(list(Kind))  # an index also keeps ids of rows deleted before, by ``delete``
        self.purge()

    def _delete_rows(self, kind: Kind, user_id: str) -> set[int]:
        """Delete a user's rows of one kind; return the data files (fragment ids) that held any
        row this process deleted (now or before, by ``delete``)."""
        with self._writing.hold([user_id]):
            self._fresh(user_id, kind)
            count, fragments = self._delete_where(kind, f"user_id = {sql_str(user_id)}")
            if count:
                self._changed(user_id, kind)
            return fragments | self._holed.pop(kind, set())

    def _shred(self, kind: Kind, fragments: set[int]) -> None:
        """Rewrite the live rows of these data files elsewhere, so the files (and the deleted rows in them) go.

        A file that a compaction rewrote meanwhile no longer exists (its id is never
        reused): nothing of it is selected. Each group of users is moved in one commit
        under their locks, so no concurrent write of theirs is overwritten with an
        older copy.
        """
        table = self.tables[kind]
        table.checkout_latest()
        where = " OR ".join(f"(_rowaddr >= {f << 32} AND _rowaddr < {(f + 1) << 32})" for f in sorted(fragments))
        users = sorted(set(table.search().where(where).select(["user_id"]).limit(None).to_arrow()
                           .column("user_id").to_pylist()))
        for start in range(0, len(users), _SHRED_USERS):
            group = users[start:start + _SHRED_USERS]
            if not self._move(kind, group, where):
                self._holed.setdefault(kind, set()).update(fragments)
                log.warning("LanceDB at %s: %d busy users kept %s data files with deleted rows; the next "
                            "delete_user rewrites them", self.uri, len(group), kind.value)

    @_wrapped
    def _move(self, kind: Kind, users: list[str], where: str) -> bool:
        """Rewrite these users' rows selected by ``where`` in one commit, holding their locks; False if busy."""
        table = self.tables[kind]
        deadline = time.monotonic() + _SHRED_WAIT_S
        pause = 0.02
        while True:
            with ExitStack() as held:
                if all(held.enter_context(self._user_locks.hold(u, blocking=False)) for u in users):
                    held.enter_context(self._writing.hold(users))
                    table.checkout_latest()
                    listed = ", ".join(sql_str(u) for u in users)
                    rows = table.search().where(f"({where}) AND user_id IN ({listed})").limit(None).to_arrow()
                    if rows.num_rows:
                        table.merge_insert(["user_id", "id"]).when_matched_update_all().execute(rows)
                        for user in users:
                            self._changed(user, kind)
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(0.5, pause * 2)

    @_wrapped
    def _reindex(self, kinds: list[Kind]) -> None:
        """Rebuild the user id and full-text indexes of these tables from their live rows."""
        with self._lock:
            for kind in kinds:
                self._build_indexes(kind, rebuild=True)

    # --- reads ----------------------------------------------------------------
    def _where(self, user_id: str, since: datetime | None = None, until: datetime | None = None) -> str:
        base = f"user_id = {sql_str(user_id)}"
        extra = time_where(since, until)
        return f"{base} AND ({extra})" if extra else base

    @_wrapped
    def get(self, kind: Kind, user_id: str, ids: Sequence[str]) -> list[Any]:
        if not ids:
            return []
        self._fresh(user_id, kind)
        id_list = ", ".join(sql_str(i) for i in dict.fromkeys(ids))
        columns = [c.name for c in codec(kind).columns]
        table = (self.tables[kind].search().where(f"user_id = {sql_str(user_id)} AND id IN ({id_list})")
                 .select(columns).limit(None).to_arrow())
        found = {r.id: r for r in from_table(kind, table)}
        return [found[i] for i in ids if i in found]

    @_wrapped
    def scan(self, kind: Kind, user_id: str, *, vectors: bool = True) -> pa.Table:
        self._fresh(user_id, kind)
        columns = [c.name for c in codec(kind).columns] + (["vector"] if vectors and kind in VECTOR_KINDS else [])
        table = (self.tables[kind].search().where(f"user_id = {sql_str(user_id)}").select(columns)
                 .limit(None).to_arrow())
        if kind is Kind.EPISODE and table.num_rows:
            table = table.take(pc.sort_indices(table, [("seq", "ascending")]))
        return table

    @_wrapped
    def count(self, kind: Kind, user_id: str) -> int:
        self._fresh(user_id, kind)
        return int(self.tables[kind].count_rows(f"user_id = {sql_str(user_id)}"))

    @_wrapped
    def users(self) -> list[str]:
        with self._view_lock:
            self.tables[Kind.EPISODE].checkout_latest()
        table = self.tables[Kind.EPISODE].search().select(["user_id"]).limit(None).to_arrow()
        return sorted(set(table.column("user_id").to_pylist()))

    @_wrapped
    def text_search(self, kind: Kind, user_id: str, text: str, k: int, *, field: str | None = None,
                    since: datetime | None = None, until: datetime | None = None) -> Hits:
        from lancedb.query import MatchQuery

        column = self.text_field(kind, field)
        self._fresh(user_id, kind)
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
        self._fresh(user_id, kind)
        table = self.tables[kind]
        query = (table.search(np.asarray(vector, dtype=np.float32), vector_column_name="vector")
                 .distance_type("cosine").where(self._where(user_id, since, until), prefilter=True)
                 .select(["id", "_distance"]).limit(k))
        if (kind is Kind.EPISODE and table.count_rows() >= self.vector_index_min_rows  # an ANN index may exist
                and table.count_rows(f"user_id = {sql_str(user_id)}") <= self.exact_max_rows):
            query = query.bypass_vector_index()
        return [(r["id"], 1.0 - float(r["_distance"])) for r in query.to_list()]

    # --- upkeep ---------------------------------------------------------------------
    @_wrapped
    def refresh(self) -> None:
        self._checkout_all()

    @_wrapped
    def optimize(self, cleanup_all: bool = False) -> None:
        """Compact files, refresh indexes incrementally, build the ANN index when due.

        Writes of other threads go on meanwhile (a compaction commits like any
        other write; a lost race is retried).
        """
        with self._optimizing:
            with self._lock:
                episodes = self.tables[Kind.EPISODE]
                rows = episodes.count_rows()
                if rows and "vector_idx" not in self.stats() and rows >= self.vector_index_min_rows:
                    parts = max(1, int(rows ** 0.5))
                    episodes.create_index("vector", config=IvfPq(distance_type="cosine", num_partitions=parts))
                self._unindexed = 0
                for kind in self.tables:
                    if kind not in self._indexed:
                        self._create_base_indexes(kind)
            keep = timedelta(0) if cleanup_all else self.keep_versions
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                for table in self.tables.values():
                    # delete_unverified stays False: files no version references yet may belong to
                    # another process's commit in progress, and deleting them would corrupt it.
                    table.optimize(cleanup_older_than=keep, delete_unverified=False)

    # --- index upkeep in a background thread --------------------------------------------
    def _request_upkeep(self) -> None:
        """Optimize soon: in the upkeep thread (started on first use), or now if upkeep is in the foreground."""
        if not self.background_upkeep:
            self.optimize()
            return
        with self._lock:
            if self._upkeep_thread is None or not self._upkeep_thread.is_alive():
                self._upkeep_thread = threading.Thread(target=self._upkeep_loop, name="memagent-lance-upkeep",
                                                       daemon=True)
                self._upkeep_thread.start()
        self._upkeep_due.set()

    def _upkeep_loop(self) -> None:
        while True:
            self._upkeep_due.wait()
            if self._closing:
                return
            self._upkeep_due.clear()
            try:
                self.optimize()
            except MemagentError as exc:
                log.warning("LanceDB at %s: background index upkeep failed (retried later): %s", self.uri, exc)

    def close(self) -> None:
        """Stop the upkeep thread (after the optimize it may be running)."""
        self._closing = True
        self._upkeep_due.set()
        thread = self._upkeep_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def purge(self) -> None:
        self.optimize(cleanup_all=True)

    def stats(self) -> dict[str, Any]:
        return {ix.name: ix.index_type for ix in self.tables[Kind.EPISODE].list_indices()}
