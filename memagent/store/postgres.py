"""``PostgresBackend``: the storage contract on PostgreSQL with pgvector, shared by many processes and machines.

Chosen by URL: ``Memory("postgresql://user:password@host/db")`` (needs
``memagent[postgres]``: psycopg 3 with its pool, and pgvector's adapter; the
server needs the ``vector`` extension). One table per record kind,
``memagent_<kind>``, keyed by ``(user_id, id)``, with a ``tenant`` column (the
part of the user id before ``:``, what the HTTP server's tenants prefix) and a
``seq_no`` identity column for write order. Every ``put`` is one transaction:

* episodes: ``INSERT ... ON CONFLICT DO NOTHING``, so a caller id is stored once
  whichever process or machine retries it; other kinds (and ``replace``) upsert;
* the user's change token (``memagent_versions``, from one database sequence)
  moves in the same transaction, so every instance sees a commit at its next
  read (read committed: no ``refresh``).

Search, per user:

* vectors: pgvector's cosine distance, exact while the user has at most
  ``exact_max_rows`` rows (a scan of that user's rows only); past that, through
  an HNSW index with pgvector's iterative scan, so the user filter never starves
  the result. The index is built (concurrently, in the background) once a table
  holds ``vector_index_min_rows`` rows and some user has more than
  ``exact_max_rows``: before that no search would use it, and every write would
  pay for its upkeep;
* full text: PostgreSQL's text search (a GIN-indexed ``tsvector``) over the same
  analysed terms as every other backend (``memagent.store.text.tokens``: folded,
  stemmed, stop words out), ranked by the same Okapi BM25 in SQL, so fused
  rankings match the embedded store's.

PostgreSQL text cannot hold NUL, which some internal ids use as a separator:
text values are escaped reversibly (``\\x1e`` is the escape character; neither
character can come from a caller, both are refused in user input).

Schema versions live in ``memagent_meta`` (with the vector dimension and the
embedder); opening runs missing migrations under an advisory lock.

>>> backend = PostgresBackend("postgresql://localhost/memagent", dimension=384)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from memagent.config import redacted
from memagent.errors import (
    ConfigError,
    EmbedderMismatchError,
    InvalidInputError,
    MemagentError,
    StorageError,
    UnsupportedError,
)
from memagent.locks import LeaderLock, UserLocks
from memagent.records import TEXT_FIELDS, VECTOR_KINDS, Kind
from memagent.store.base import Backend, Capabilities, Hits, retried
from memagent.store.pg_locks import AdvisoryLeaderLock, AdvisoryUserLocks
from memagent.store.pg_schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    bootstrap,
    column_sql,
    table,
    terms_column,
    tsv_column,
)
from memagent.store.schema import codec, schema, to_rows
from memagent.store.text import K1, B, tokens

log = logging.getLogger(__name__)

RETRIES = 8
_BACKOFF_S, _BACKOFF_MAX_S = 0.02, 1.0
_RETRYABLE = {"40001", "40P01"}  # serialization failure, deadlock detected
_ESCAPED = re.compile("\x1e([01])")
_OPEN_LOCK = 0x6D656D6167656E74  # "memagent": the advisory lock that serializes schema creation


def escape(value: str) -> str:
    """A text value PostgreSQL can store: NUL and the escape character itself escaped (reversible).

    >>> escape("a\\x00b"), unescape(escape("a\\x00b\\x1e0"))
    ('a\\x1e0b', 'a\\x00b\\x1e0')
    """
    if "\x00" not in value and "\x1e" not in value:
        return value
    return value.replace("\x1e", "\x1e1").replace("\x00", "\x1e0")


def unescape(value: str) -> str:
    if "\x1e" not in value:
        return value
    return _ESCAPED.sub(lambda m: "\x00" if m[1] == "0" else "\x1e", value)


def _each(convert: Callable[[str], str], value: Any) -> Any:
    """``convert`` applied to a text value, or to each item of a list of texts; other values as they are."""
    if isinstance(value, str):
        return convert(value)
    if isinstance(value, list) and value and isinstance(value[0], str):
        return [convert(v) for v in value]
    return value


def vector_texts(vectors: Sequence[np.ndarray]) -> list[str]:
    """Vectors in pgvector's text form, with every float32 exactly (9 significant digits).

    >>> vector_texts([np.array([0.5, -1.0, 1e-8], dtype=np.float32)])
    ['[0.5,-1,9.99999994e-09]']
    """
    buffer = io.StringIO()
    np.savetxt(buffer, np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1), fmt="%.9g", delimiter=",")
    return [f"[{line}]" for line in buffer.getvalue().splitlines()]


def _psycopg_errors() -> tuple[type[BaseException], ...]:
    import psycopg  # present: PostgresBackend refused to open without it

    return (psycopg.Error, OSError)


def _transient(exc: BaseException) -> str | None:
    """Why an engine error is worth a retry (a deadlock, a serialization failure, a lost connection), else ``None``."""
    import psycopg

    code = getattr(exc, "sqlstate", None)
    if code in _RETRYABLE:
        return str(code)
    return "connection" if isinstance(exc, psycopg.OperationalError) else None


_wrapped = retried("PostgreSQL", _psycopg_errors, _transient, attempts=RETRIES,
                   backoff=(_BACKOFF_S, _BACKOFF_MAX_S))


class PostgresBackend(Backend):
    """Every record kind in PostgreSQL tables; see the module docstring."""

    capabilities = Capabilities(persistent=True, shared=True, ann_index=True)

    def __init__(self, uri: str, dimension: int, embedder_name: str = "", *, pool_size: int = 8,
                 lock_pool_size: int = 16, vector_index_min_rows: int = 100_000, exact_max_rows: int = 50_000,
                 hnsw_m: int = 16, hnsw_ef_construction: int = 64, hnsw_ef_search: int = 100) -> None:
        try:
            import psycopg
            from pgvector.psycopg import register_vector
            from psycopg_pool import ConnectionPool
        except ImportError as exc:
            raise ConfigError(f"a postgresql:// store needs memagent[postgres] ({exc.name} is missing)") from exc
        self.uri = uri
        self.name = redacted(uri)
        self.dimension = dimension
        self.vector_index_min_rows = vector_index_min_rows
        self.exact_max_rows = exact_max_rows
        self.hnsw = (hnsw_m, hnsw_ef_construction, hnsw_ef_search)
        self.retries: Counter[str] = Counter()
        self._indexed: set[Kind] = set()
        self._building: dict[Kind, threading.Thread] = {}
        self._index_lock = threading.Lock()
        try:
            with psycopg.connect(uri, autocommit=True) as conn:
                self._meta = self._open_schema(conn, embedder_name)

            def configure(conn: Any) -> None:
                register_vector(conn)
                conn.execute("SET TIME ZONE 'UTC'")

            self.pool = ConnectionPool(uri, min_size=1, max_size=pool_size, kwargs={"autocommit": True},
                                       configure=configure, open=True, name="memagent")
            self.lock_pool = ConnectionPool(uri, min_size=0, max_size=lock_pool_size, kwargs={"autocommit": True},
                                            open=True, name="memagent-locks")
            self._indexed = self._vector_indexes()
        except MemagentError:
            raise
        except (psycopg.Error, OSError) as exc:
            raise StorageError(f"cannot open PostgreSQL at {self.name}: {exc}") from exc

    # --- opening: schema, migrations, dimension ---------------------------------------
    def _open_schema(self, conn: Any, embedder_name: str) -> dict[str, str]:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_OPEN_LOCK,))
            for statement in bootstrap(self.dimension):
                conn.execute(statement)
            meta = {k: v for k, v in conn.execute("SELECT key, value FROM memagent_meta").fetchall()}
            if not meta:
                meta = {"schema_version": str(SCHEMA_VERSION), "dimension": str(self.dimension),
                        "embedder": embedder_name, "epoch": "0"}
                with conn.cursor() as cur:
                    cur.executemany("INSERT INTO memagent_meta (key, value) VALUES (%s, %s)", list(meta.items()))
                return meta
            if int(meta["dimension"]) != self.dimension:
                raise EmbedderMismatchError(int(meta["dimension"]), self.dimension, meta.get("embedder", ""))
            version = int(meta["schema_version"])
            if version > SCHEMA_VERSION:
                raise ConfigError(f"database {self.name} has memagent schema version {version}; "
                                  f"this memagent reads up to {SCHEMA_VERSION}: upgrade memagent")
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step]:
                    conn.execute(statement)
                conn.execute("UPDATE memagent_meta SET value = %s WHERE key = 'schema_version'", (str(step + 1),))
                meta["schema_version"] = str(step + 1)
            return meta

    @property
    def schema_version(self) -> int:
        return int(self._meta["schema_version"])

    def _vector_indexes(self) -> set[Kind]:
        with self.pool.connection() as conn:
            names = {r[0] for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'memagent\\_%%\\_hnsw'").fetchall()}
        return {k for k in VECTOR_KINDS if f"{table(k)}_hnsw" in names}

    # --- writes ----------------------------------------------------------------------
    @_wrapped
    def put(self, kind: Kind, records: Sequence[Any], vectors: np.ndarray | None = None, *,
            replace: bool = False) -> int:
        rows = to_rows(kind, records, vectors)  # converted whole before anything is sent
        if not rows:
            return 0
        for row in rows:
            if not row.get("id") or not row.get("user_id"):
                raise InvalidInputError(f"{kind.value}: every record needs an id and a user_id")
            if kind in VECTOR_KINDS and len(row["vector"]) != self.dimension:
                raise InvalidInputError(f"{kind.value}: vectors must have {self.dimension} dimensions")
        keep_first = kind is Kind.EPISODE and not replace
        unique: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:  # one row per key: the first of repeats (episodes) or the last (replacements)
            key = (row["user_id"], row["id"])
            if not (keep_first and key in unique):
                unique[key] = row
        names = [c.name for c in codec(kind).columns] + (["vector"] if kind in VECTOR_KINDS else [])
        fields = TEXT_FIELDS.get(kind, ())
        lengths = [f"{terms_column(f)}_len" for f in fields]
        staged = names + [terms_column(f) for f in fields] + lengths  # the analysed terms travel as text
        stored = names + [tsv_column(f) for f in fields] + lengths  # ... and are stored as a tsvector
        built = names + [f"to_tsvector('simple', {terms_column(f)})" for f in fields] + lengths
        values = []
        if kind in VECTOR_KINDS:  # pgvector's text form, formatted by NumPy in one pass (not float by float)
            for row, text in zip(unique.values(), vector_texts([r["vector"] for r in unique.values()])):
                row["vector"] = text
        for row in unique.values():
            analysed = [tokens(row.get(f) or "") for f in fields]
            values.append([_each(escape, row[n]) for n in names] + [" ".join(t) for t in analysed]
                          + [len(t) for t in analysed])
        name = table(kind)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in stored if c not in ("id", "user_id"))
        conflict = "DO NOTHING" if keep_first else f"DO UPDATE SET {updates}"
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(f"CREATE TEMP TABLE stage ({', '.join(column_sql(kind, c, self.dimension) for c in staged)})"
                         " ON COMMIT DROP")
            with conn.cursor() as cur:
                with cur.copy(f"COPY stage ({', '.join(staged)}) FROM STDIN") as copy:
                    for value in values:
                        copy.write_row(value)
                cur.execute(f"INSERT INTO {name} ({', '.join(stored)}) SELECT {', '.join(built)} FROM stage "
                            f"ORDER BY ctid ON CONFLICT (user_id, id) {conflict} RETURNING user_id")
                returned = [u for (u,) in cur.fetchall()]
            self._bump(conn, kind, set(returned))
            written = len(returned)
        self._after_write(kind, {u for u, _ in unique})
        return written

    def _bump(self, conn: Any, kind: Kind, users: set[str]) -> None:
        """New change tokens for these users' rows of a kind (in the write's transaction)."""
        if users:
            conn.execute("INSERT INTO memagent_versions (user_id, kind, token) "
                         "SELECT u, %s, nextval('memagent_change') FROM unnest(%s::text[]) AS u "
                         "ON CONFLICT (user_id, kind) DO UPDATE SET token = EXCLUDED.token",
                         (kind.value, sorted(users)))

    def _after_write(self, kind: Kind, users: set[str] | None = None) -> None:
        """Start building the HNSW index when a search would use it: once the table holds
        ``vector_index_min_rows`` rows and a user of ``users`` (any user, if ``None``) has more than
        ``exact_max_rows``. It is built in the background: writes go on."""
        if kind not in VECTOR_KINDS or kind in self._indexed or self._building.get(kind):
            return
        try:
            with self.pool.connection() as conn:
                estimate = conn.execute("SELECT reltuples FROM pg_class WHERE relname = %s",
                                        (table(kind),)).fetchone()
                if not estimate or estimate[0] < self.vector_index_min_rows:
                    return
                if users is None:
                    big = conn.execute(f"SELECT 1 FROM {table(kind)} GROUP BY user_id HAVING count(*) > %s "
                                       "LIMIT 1", (self.exact_max_rows,)).fetchone()
                else:
                    big = any(self._count(conn, kind, u) > self.exact_max_rows for u in users)
        except Exception as exc:  # noqa: BLE001 - upkeep must never fail the write that triggered it
            log.warning("PostgreSQL at %s: cannot size %s for its vector index: %s", self.name, kind.value, exc)
            return
        if big:
            with self._index_lock:
                if self._building.get(kind) or kind in self._indexed:
                    return
                self._building[kind] = thread = threading.Thread(
                    target=self._build_logged, args=(kind,), name=f"memagent-hnsw-{kind.value}", daemon=True)
            thread.start()

    def _build_logged(self, kind: Kind) -> None:
        try:
            self.build_vector_index(kind)
        except Exception as exc:  # noqa: BLE001 - logged; the next write or optimize tries again
            log.warning("PostgreSQL at %s: building the vector index of %s failed: %s", self.name, kind.value, exc)
        finally:
            self._building.pop(kind, None)

    def build_vector_index(self, kind: Kind) -> None:
        """Build the HNSW index of a vector kind now, without blocking writes (``CREATE INDEX CONCURRENTLY``).

        Normally started in the background once the table holds ``vector_index_min_rows`` rows.
        An index a failed build left invalid is dropped and built again.
        """
        m, ef_construction, _ = self.hnsw
        name = f"{table(kind)}_hnsw"
        with self.pool.connection() as conn:
            valid = conn.execute("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                 "WHERE c.relname = %s", (name,)).fetchone()
            if valid is not None and not valid[0]:
                conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            conn.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table(kind)} "
                         f"USING hnsw (vector vector_cosine_ops) WITH (m = {int(m)}, "
                         f"ef_construction = {int(ef_construction)})")
        self._indexed.add(kind)

    @_wrapped
    def delete(self, kind: Kind, user_id: str, ids: Sequence[str] | None = None) -> int:
        with self.pool.connection() as conn, conn.transaction():
            if ids is None:
                cur = conn.execute(f"DELETE FROM {table(kind)} WHERE user_id = %s", (escape(user_id),))
            else:
                cur = conn.execute(f"DELETE FROM {table(kind)} WHERE user_id = %s AND id = ANY(%s)",
                                   (escape(user_id), [escape(i) for i in dict.fromkeys(ids)]))
            gone = max(cur.rowcount, 0)
            if gone:
                self._bump(conn, kind, {escape(user_id)})
            return gone

    @_wrapped
    def delete_user(self, user_id: str) -> None:
        """Every kind's rows of the user and its change tokens, in one transaction; then ``purge``."""
        with self.pool.connection() as conn, conn.transaction():
            for kind in Kind:
                conn.execute(f"DELETE FROM {table(kind)} WHERE user_id = %s", (escape(user_id),))
            conn.execute("DELETE FROM memagent_versions WHERE user_id = %s", (escape(user_id),))
            # every user's token moves (the contract: any in-process copy reloads after a delete_user)
            conn.execute("UPDATE memagent_meta SET value = nextval('memagent_change')::text WHERE key = 'epoch'")
        self.purge()

    # --- reads ----------------------------------------------------------------------
    @_wrapped
    def version(self, user_id: str, kind: Kind) -> str:
        with self.pool.connection() as conn:
            found = conn.execute("SELECT (SELECT value FROM memagent_meta WHERE key = 'epoch'), (SELECT token "
                                 "FROM memagent_versions WHERE user_id = %s AND kind = %s)",
                                 (escape(user_id), kind.value)).fetchone()
        return f"{found[0]}/{found[1] or 0}" if found else "0/0"

    def _select(self, kind: Kind, vectors: bool) -> tuple[list[str], str]:
        names = [c.name for c in codec(kind).columns] + (["vector"] if vectors and kind in VECTOR_KINDS else [])
        return names, ", ".join(names)

    @_wrapped
    def get(self, kind: Kind, user_id: str, ids: Sequence[str]) -> list[Any]:
        if not ids:
            return []
        names, listed = self._select(kind, vectors=False)
        with self.pool.connection() as conn:
            rows = conn.execute(f"SELECT {listed} FROM {table(kind)} WHERE user_id = %s AND id = ANY(%s)",
                                (escape(user_id), [escape(i) for i in dict.fromkeys(ids)]), binary=True).fetchall()
        make = codec(kind).from_row
        found = {r.id: r for r in (make({n: _each(unescape, v) for n, v in zip(names, row)}) for row in rows)}
        return [found[i] for i in ids if i in found]

    @_wrapped
    def scan(self, kind: Kind, user_id: str, *, vectors: bool = True) -> pa.Table:
        names, listed = self._select(kind, vectors)
        order = "seq" if kind is Kind.EPISODE else "seq_no"
        with self.pool.connection() as conn, conn.cursor(binary=True) as cur:
            rows = cur.execute(f"SELECT {listed} FROM {table(kind)} WHERE user_id = %s ORDER BY {order}",
                               (escape(user_id),)).fetchall()
        target = schema(kind, self.dimension)
        if not (vectors and kind in VECTOR_KINDS):
            target = pa.schema([f for f in target if f.name != "vector"])
        columns = list(zip(*rows)) if rows else [()] * len(names)
        arrays = []
        for name, values in zip(names, columns):
            field = target.field(name)
            if name == "vector":
                flat = np.asarray([getattr(v, "to_numpy", lambda v=v: v)() for v in values],
                                  dtype=np.float32).reshape(-1)
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), self.dimension))
            else:
                arrays.append(pa.array([_each(unescape, v) for v in values], field.type))
        return pa.Table.from_arrays(arrays, schema=target)

    @_wrapped
    def count(self, kind: Kind, user_id: str) -> int:
        with self.pool.connection() as conn:
            return self._count(conn, kind, user_id)

    @staticmethod
    def _count(conn: Any, kind: Kind, user_id: str) -> int:
        found = conn.execute(f"SELECT count(*) FROM {table(kind)} WHERE user_id = %s", (escape(user_id),)).fetchone()
        return int(found[0]) if found else 0

    @_wrapped
    def users(self) -> list[str]:
        with self.pool.connection() as conn:
            rows = conn.execute(f"SELECT v.user_id FROM memagent_versions v WHERE v.kind = %s AND EXISTS "
                                f"(SELECT 1 FROM {table(Kind.EPISODE)} e WHERE e.user_id = v.user_id)",
                                (Kind.EPISODE.value,)).fetchall()
        return sorted(unescape(u) for (u,) in rows)

    def _time_sql(self, kind: Kind, since: datetime | None, until: datetime | None) -> tuple[str, list[Any]]:
        if since is None and until is None:
            return "", []
        if kind is not Kind.EPISODE:
            raise UnsupportedError(f"{kind.value} have no event time to filter on")
        sql, params = "", list[Any]()
        if since is not None:
            sql, params = sql + " AND event_time >= %s", params + [since]
        if until is not None:
            sql, params = sql + " AND event_time < %s", params + [until]
        return sql, params

    @_wrapped
    def text_search(self, kind: Kind, user_id: str, text: str, k: int, *, field: str | None = None,
                    since: datetime | None = None, until: datetime | None = None) -> Hits:
        column = self.text_field(kind, field)
        terms = list(dict.fromkeys(tokens(text)))
        if not terms or k < 1:
            return []
        when, params = self._time_sql(kind, since, until)
        tsv, length = tsv_column(column), f"{terms_column(column)}_len"
        query = " | ".join(f"'{t}'" for t in terms)  # analysed terms are letters and digits only
        sql = (f"WITH docs AS (SELECT id, {tsv} AS tsv, {length}::float8 AS dl FROM {table(kind)} "
               f"WHERE user_id = %s{when}), "
               "stats AS (SELECT count(*)::float8 AS n, coalesce(avg(dl), 0)::float8 AS avgdl FROM docs), "
               "hits AS (SELECT d.id, d.dl, u.lexeme, coalesce(array_length(u.positions, 1), 1)::float8 AS tf "
               "FROM docs d, unnest(d.tsv) AS u WHERE d.tsv @@ %s::tsquery AND u.lexeme = ANY(%s)), "
               "df AS (SELECT lexeme, count(*)::float8 AS df FROM hits GROUP BY lexeme) "
               "SELECT h.id, sum(ln(1 + (s.n - df.df + 0.5) / (df.df + 0.5)) * h.tf * (%s + 1) / "
               "(h.tf + %s * (1 - %s + %s * h.dl / CASE WHEN s.avgdl > 0 THEN s.avgdl ELSE 1 END))) AS score "
               "FROM hits h JOIN df USING (lexeme) CROSS JOIN stats s GROUP BY h.id "
               "ORDER BY score DESC, h.id LIMIT %s")
        with self.pool.connection() as conn:
            rows = conn.execute(sql, [escape(user_id), *params, query, terms, K1, K1, B, B, k]).fetchall()
        return [(unescape(i), float(s)) for i, s in rows if s > 0]

    @_wrapped
    def vector_search(self, kind: Kind, user_id: str, vector: np.ndarray, k: int, *,
                      since: datetime | None = None, until: datetime | None = None) -> Hits:
        if kind not in VECTOR_KINDS:
            raise UnsupportedError(f"{kind.value} have no vectors")
        if k < 1:
            return []
        when, params = self._time_sql(kind, since, until)
        query = np.asarray(vector, dtype=np.float32)
        with self.pool.connection() as conn, conn.transaction():
            approximate = kind in self._indexed and self._count(conn, kind, user_id) > self.exact_max_rows
            if approximate:  # the HNSW index, scanned on until k rows of this user pass the filter
                conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                conn.execute(f"SET LOCAL hnsw.ef_search = {max(int(self.hnsw[2]), int(k))}")
                distance = "vector <=> %s"
            else:  # exact: an expression no index serves, so the user's rows are all compared
                distance = "(vector <=> %s) + 0"
            rows = conn.execute(
                f"SELECT id, d FROM (SELECT id, {distance} AS d FROM {table(kind)} WHERE user_id = %s{when} "
                f"ORDER BY {distance} LIMIT %s) AS best ORDER BY d, id",
                [query, escape(user_id), *params, query, k]).fetchall()
        return [(unescape(i), 1.0 - float(d)) for i, d in rows]

    # --- upkeep -----------------------------------------------------------------------
    @_wrapped
    def optimize(self) -> None:
        """Update PostgreSQL's statistics, then build the vector indexes that are due (in the background)."""
        with self.pool.connection() as conn:
            for kind in Kind:
                conn.execute(f"ANALYZE {table(kind)}")
        for kind in VECTOR_KINDS:
            self._after_write(kind)

    @_wrapped
    def purge(self) -> None:
        """``VACUUM`` every table: deleted rows leave the heap and the indexes for reuse.

        The bytes of freed space and of the write-ahead log are overwritten later, not at once;
        ``VACUUM FULL`` (a table rewrite, with an exclusive lock) is the operator's tool for that.
        """
        with self.pool.connection() as conn:
            for kind in Kind:
                conn.execute(f"VACUUM {table(kind)}")
            conn.execute("VACUUM memagent_versions")

    def close(self) -> None:
        for thread in list(self._building.values()):
            thread.join()  # an index build finishes (or fails) before the pool goes
        for pool in (getattr(self, "pool", None), getattr(self, "lock_pool", None)):
            if pool is not None:
                pool.close()

    @_wrapped
    def stats(self) -> dict[str, Any]:
        with self.pool.connection() as conn:
            sizes = dict(conn.execute(
                "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
                "WHERE relname LIKE 'memagent\\_%%' AND relkind = 'r'").fetchall())
        return {"backend": "postgres", "vector_indexes": sorted(k.value for k in self._indexed),
                "bytes": sum(sizes.values()), "tables": sizes, "retries": dict(self.retries)}

    # --- locks shared with every instance on this database ---------------------------
    def user_locks(self) -> UserLocks:
        return AdvisoryUserLocks(self)

    def leader_lock(self, name: str = "scheduler") -> LeaderLock:
        return AdvisoryLeaderLock(self.uri, name)
