"""Locks that every process on one PostgreSQL database shares: PostgreSQL advisory locks.

``AdvisoryUserLocks`` is ``memagent.locks.UserLocks`` with the lock file replaced
by a session-level advisory lock, held on a connection of the backend's lock
pool (a pool of its own, so a holder never waits for a connection that a waiter
holds). ``AdvisoryLeaderLock`` is the scheduler's leader lock: one session-level
advisory lock on a connection of its own. PostgreSQL drops a session's locks
when the session ends, so a process that dies (or loses its connection) never
leaves a user locked, and another instance takes the lead at its next try.

Lock keys are 64-bit digests of the user id (or the leader's name), never the id.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from memagent.errors import LockTimeout, StorageError
from memagent.locks import LeaderLock, UserLocks

if TYPE_CHECKING:
    from memagent.store.postgres import PostgresBackend

log = logging.getLogger(__name__)
_POLL_S = 0.02


def lock_key(name: str) -> int:
    """The advisory lock key of a name: a signed 64-bit digest.

    >>> lock_key("user:alice") == lock_key("user:alice"), lock_key("user:alice") == lock_key("user:bob")
    (True, False)
    """
    return int.from_bytes(hashlib.sha1(name.encode("utf-8", "surrogatepass")).digest()[:8], "big", signed=True)


class AdvisoryUserLocks(UserLocks):
    """Per-user locks across every process and machine on one PostgreSQL database."""

    def __init__(self, backend: PostgresBackend) -> None:  # noqa: D107 - no lock files: no parent __init__
        self.data_dir = backend.name
        self.local = False
        self.directory = None
        self.shared = True
        self._pool = backend.lock_pool

    def _take(self, user_id: str, blocking: bool, deadline: float | None, timeout: float | None) -> Any:
        import psycopg

        key = lock_key(f"user:{user_id}")
        try:
            conn = self._pool.getconn(timeout=None if deadline is None else max(0.001, deadline - time.monotonic()))
        except Exception as exc:  # psycopg_pool.PoolTimeout: every lock connection in use
            if blocking and deadline is not None:
                raise LockTimeout(user_id, timeout or 0.0) from exc
            raise StorageError(f"PostgreSQL at {self.data_dir}: no connection for a lock: {exc}") from exc
        try:
            if blocking and deadline is None:
                conn.execute("SELECT pg_advisory_lock(%s)", (key,))
                return conn, key
            while True:
                taken = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                if taken and taken[0]:
                    return conn, key
                if not blocking:
                    self._pool.putconn(conn)
                    return None
                left = deadline - time.monotonic()  # type: ignore[operator]
                if left <= 0:
                    self._pool.putconn(conn)
                    raise LockTimeout(user_id, timeout or 0.0)
                time.sleep(min(_POLL_S, left))
        except psycopg.Error as exc:
            self._pool.putconn(conn)
            raise StorageError(f"PostgreSQL at {self.data_dir}: cannot lock a user: {exc}") from exc

    def _give(self, held: Any) -> None:
        import psycopg

        conn, key = held
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        except psycopg.Error as exc:  # the session is gone, and its locks with it
            log.warning("PostgreSQL at %s: unlocking a user failed (the session ended): %s", self.data_dir, exc)
        finally:
            self._pool.putconn(conn)


class AdvisoryLeaderLock(LeaderLock):
    """At most one leader among every process on one database (see the module docstring).

    ``held`` is checked against the server at each ``try_acquire``: a leader whose
    connection broke stops leading, and takes the lead again only if it is free.
    """

    def __init__(self, uri: str, name: str = "scheduler") -> None:  # noqa: D107 - no lock file: no parent __init__
        self.uri = uri
        self.key = lock_key(f"leader:{name}")
        self.local = False
        self._conn: Any = None
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return self._conn is not None

    def try_acquire(self) -> bool:
        """``True`` if this object leads now (it did already, or it just took the lock)."""
        import psycopg

        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute("SELECT 1")
                    return True
                except psycopg.Error:
                    log.warning("lost the leader's connection to PostgreSQL; trying to lead again")
                    self._drop()
            try:
                conn = psycopg.connect(self.uri, autocommit=True)
            except psycopg.Error as exc:
                log.warning("cannot reach PostgreSQL to take the lead: %s", exc)
                return False
            try:
                taken = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            except psycopg.Error:
                conn.close()
                return False
            if not (taken and taken[0]):
                conn.close()
                return False
            self._conn = conn
            return True

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()  # the session ends: PostgreSQL drops its advisory locks

    def release(self) -> None:
        """Stop leading (a no-op when not leading)."""
        with self._lock:
            self._drop()
