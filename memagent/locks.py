"""Per-user locks shared by every process and thread that opens one data directory.

A lock is ``fcntl.flock`` on ``<data_dir>/.locks/<sha1(user_id)>.lock`` (file names
never hold a raw user id), plus a re-entrant thread lock per user, so one thread may
nest ``hold`` calls and other threads of the process wait like other processes do.
The kernel drops a flock when its holder dies, so a crashed process never leaves a
user locked. On a non-local data directory (a URI such as ``s3://...``) there is no
shared file system: the locks only guard the threads of this process (logged once).

>>> locks = UserLocks("/tmp/memagent-doc")                      # doctest: +SKIP
>>> with locks.hold("alice", blocking=False) as held:           # doctest: +SKIP
...     if held:
...         memory.consolidate("alice")
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

from memagent.errors import LockTimeout

log = logging.getLogger(__name__)

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")  # s3://..., gs://..., db://... (and "s3:/" from a Path)
_POLL_S = 0.02


class _Slot:
    """One lock file's state in this process: the thread lock, the open file, the nesting depth
    and how many ``acquire`` calls use it (held or waiting); unused slots are dropped, so the
    table holds only the users someone is locking now."""

    __slots__ = ("thread_lock", "fd", "depth", "owner", "refs")

    def __init__(self) -> None:
        self.thread_lock = threading.RLock()
        self.fd: Any = None  # what holds the lock across processes: a lock file's descriptor, or a subclass's
        self.depth = 0
        self.owner = 0
        self.refs = 0


_slots: dict[str, _Slot] = {}
_slots_lock = threading.Lock()
_warned: set[str] = set()


def _use(key: str) -> _Slot:
    """The slot of a key, counted as used until the matching ``_unuse``."""
    with _slots_lock:
        slot = _slots.setdefault(key, _Slot())
        slot.refs += 1
        return slot


def _unuse(key: str, slot: _Slot) -> None:
    with _slots_lock:
        slot.refs -= 1
        if slot.refs <= 0 and _slots.get(key) is slot:
            del _slots[key]


def _held(key: str, user_id: str) -> _Slot:
    """The slot of a key the calling thread holds (else ``RuntimeError``)."""
    with _slots_lock:
        slot = _slots.get(key)
    if slot is None or slot.depth <= 0 or slot.owner != threading.get_ident():
        raise RuntimeError(f"the lock of user {user_id!r} is not held by this thread")
    return slot


def _after_fork_in_child() -> None:
    """A forked child holds no lock: close its copies of the parent's lock files."""
    global _slots, _slots_lock
    for slot in _slots.values():
        if isinstance(slot.fd, int):  # a lock file (another kind of holder, e.g. a database session, is left)
            with suppress(OSError):
                os.close(slot.fd)
    _slots, _slots_lock = {}, threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the open file ``fd`` (not removed or replaced since it was opened)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def lock_name(user_id: str) -> str:
    """The lock file name of a user: a digest, never the raw id."""
    return hashlib.sha1(user_id.encode("utf-8")).hexdigest() + ".lock"


class UserLocks:
    """Exclusive per-user locks over one data directory (local path or URI)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = str(data_dir)
        self.local = not _URI.match(self.data_dir)
        self.directory = Path(self.data_dir) / ".locks" if self.local else None
        self.shared = self.directory is not None  # excludes other processes, not only this one's threads
        if not self.local and not self.data_dir.startswith("memory://") and self.data_dir not in _warned:
            _warned.add(self.data_dir)
            log.warning("data directory %s is not local: per-user locks only guard this process's threads; "
                        "run one scheduler for it", self.data_dir)

    def path(self, user_id: str) -> Path | None:
        """The lock file of a user (``None`` on a non-local data directory)."""
        return self.directory / lock_name(user_id) if self.directory is not None else None

    def _key(self, user_id: str) -> str:
        path = self.path(user_id)
        return str(path.resolve()) if path is not None else f"{self.data_dir}\0{user_id}"

    def acquire(self, user_id: str, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take a user's lock; ``False`` if busy and not ``blocking``; ``LockTimeout`` past ``timeout``."""
        deadline = time.monotonic() + timeout if blocking and timeout is not None else None
        key = self._key(user_id)
        slot = _use(key)
        try:
            if not blocking:
                taken = slot.thread_lock.acquire(blocking=False)
            else:
                taken = slot.thread_lock.acquire(
                    timeout=-1 if deadline is None else max(0.0, deadline - time.monotonic()))
        except BaseException:
            _unuse(key, slot)
            raise
        if not taken:
            _unuse(key, slot)
            if blocking:
                raise LockTimeout(user_id, timeout or 0.0)
            return False
        if slot.depth:  # this thread holds it already: nest
            slot.depth += 1
            return True
        try:
            if self.shared:
                slot.fd = self._take(user_id, blocking, deadline, timeout)
                if slot.fd is None:
                    slot.thread_lock.release()
                    _unuse(key, slot)
                    return False
            slot.depth, slot.owner = 1, threading.get_ident()
            return True
        except BaseException:
            slot.thread_lock.release()
            _unuse(key, slot)
            raise

    def _take(self, user_id: str, blocking: bool, deadline: float | None, timeout: float | None) -> Any:
        """Take the lock across processes: what holds it, ``None`` when busy and not ``blocking``."""
        return self._lock_file(user_id, blocking, deadline, timeout)

    def _give(self, held: Any) -> None:
        """Give back what ``_take`` returned."""
        try:
            fcntl.flock(held, fcntl.LOCK_UN)
        finally:
            os.close(held)

    def _lock_file(self, user_id: str, blocking: bool, deadline: float | None, timeout: float | None) -> int | None:
        path = self.path(user_id)
        assert path is not None
        while True:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                if not self._flock(fd, user_id, blocking, deadline, timeout):
                    os.close(fd)
                    return None
                if _same_file(fd, path):
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for a curious operator
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # removed (``discard``) while we waited: lock the fresh file

    @staticmethod
    def _flock(fd: int, user_id: str, blocking: bool, deadline: float | None, timeout: float | None) -> bool:
        if blocking and deadline is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return True
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if not blocking:
                    return False
                left = deadline - time.monotonic()  # type: ignore[operator]
                if left <= 0:
                    raise LockTimeout(user_id, timeout or 0.0) from None
                time.sleep(min(_POLL_S, left))

    def discard(self, user_id: str) -> None:
        """Remove a user's lock file (``delete_user``); the calling thread must hold the lock.

        Whoever waits on the removed file finds it gone once it gets the lock and
        takes a fresh one, so the lock stays exclusive.
        """
        _held(self._key(user_id), user_id)
        path = self.path(user_id)
        if path is not None:
            with suppress(FileNotFoundError):
                path.unlink()

    def release(self, user_id: str) -> None:
        """Give back one ``acquire`` of the calling thread."""
        key = self._key(user_id)
        slot = _held(key, user_id)
        slot.depth -= 1
        try:
            if slot.depth == 0:
                slot.owner = 0
                if slot.fd is not None:
                    held, slot.fd = slot.fd, None
                    self._give(held)
        finally:
            slot.thread_lock.release()
            _unuse(key, slot)

    @contextmanager
    def hold(self, user_id: str, blocking: bool = True, timeout: float | None = None) -> Iterator[bool]:
        """Hold a user's lock for a block; yields ``True``, or ``False`` when busy and not ``blocking``.

        Blocking (the default) waits, up to ``timeout`` seconds if given, then
        raises ``LockTimeout``. Re-entrant within a thread.
        """
        if not self.acquire(user_id, blocking, timeout):
            yield False
            return
        try:
            yield True
        finally:
            self.release(user_id)


class LeaderLock:
    """At most one holder among every process (and object) on one data directory: the leader.

    ``fcntl.flock`` on ``<data_dir>/.locks/<name>.leader``, taken without waiting
    and kept until ``release`` (or the holder's death: the kernel drops it, so
    another process takes over at its next ``try_acquire``). Two objects of one
    process exclude each other too (a flock belongs to an open file). On a
    non-local data directory every object leads (logged by ``UserLocks``).

    >>> leader = LeaderLock("/tmp/memagent-doc")       # doctest: +SKIP
    >>> leader.try_acquire()                           # doctest: +SKIP
    True
    """

    def __init__(self, data_dir: str | Path, name: str = "scheduler") -> None:
        self.local = not _URI.match(str(data_dir))
        self.path = Path(data_dir) / ".locks" / f"{name}.leader" if self.local else None
        self._fd: int | None = None
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return self._fd is not None or not self.local

    def try_acquire(self) -> bool:
        """``True`` if this object leads now (it did already, or it just took the lock)."""
        with self._lock:
            if self.held:
                return True
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._fd = fd
            return True

    def release(self) -> None:
        """Stop leading (a no-op when not leading)."""
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                finally:
                    os.close(fd)


@contextmanager
def directory_lock(data_dir: str | Path, name: str) -> Iterator[None]:
    """Hold ``<data_dir>/.locks/<name>.lock`` exclusively (waiting for it) for a block; every process
    on the data directory waits its turn. A no-op on a non-local data directory (a URI).
    ``LanceBackend`` opens a directory under it, so two processes never create its tables at once."""
    if _URI.match(str(data_dir)):
        yield
        return
    path = Path(data_dir) / ".locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the file drops the flock


class StripedLocks:
    """In-process locks of users, striped by hash: one user's steps are one step for this
    process's threads, while other users' go on. ``hold`` takes the stripes of several users
    in one order, so two holders of overlapping users cannot deadlock. Re-entrant."""

    def __init__(self, stripes: int = 64) -> None:
        self._stripes = [threading.RLock() for _ in range(stripes)]

    @contextmanager
    def hold(self, users: Iterable[str]) -> Iterator[None]:
        with ExitStack() as held:
            for stripe in sorted({hash(user) % len(self._stripes) for user in users}):
                held.enter_context(self._stripes[stripe])
            yield
