"""Background upkeep of one ``Memory``: consolidate, forget and maintain on a schedule.

Every APScheduler import of memagent lives in this module (APScheduler 3.x).

- **consolidate** (``consolidate_every_s``, first run at start): ``Memory.refresh()``,
  then each user due by ``policies.consolidation.due`` is consolidated under the
  user's cross-process lock; a user locked by another process or thread is skipped
  (it is picked up on a later run).
- **forget** (``forget_every_s``): ``Memory.forget(user, dry_run=False)`` for each
  user, under the same lock.
- **maintain** (``maintain_every_s``): ``Memory.optimize()``.

Many processes may run a scheduler on one data directory (the workers of
``memagent serve --http --workers N``, an app beside ``memagent serve``): only
the leader runs scheduled jobs (``memagent.locks.LeaderLock``, taken at the
first run it can get and kept until ``stop``); the others count those runs as
``not_leader`` and try to lead again at each one, so when the leader dies another
takes over within one interval. ``run_now`` runs wherever it is called.

A job never runs twice at once (``max_instances=1``, ``coalesce=True`` and a lock
per job, which also covers retries and ``run_now``); one worker thread runs the
jobs one after another. A failing job is logged with its traceback and retried
after ``backoff_s``, doubling up to ``backoff_max_s``, at most ``max_retries``
times (one-off jobs), then waits for its next regular run; nothing a job raises
stops the scheduler. ``stats()`` counts runs, failures, skipped runs, retries and
the last error of each job; ``wait_for`` blocks until they satisfy a condition
(checked after each run is fully handled, its retry scheduled), so callers and
tests wait for runs without polling.

Job stores: ``job_store="memory"`` (the default) or a SQLAlchemy URL (the ``sql``
extra), which keeps next run times and pending retries across restarts. Stored
jobs name a module-level function and plain arguments (this scheduler's key and
the job name); the live ``MemoryScheduler`` is found in a registry of this process.

>>> with MemoryScheduler(memory) as scheduler:                   # doctest: +SKIP
...     scheduler.run_now("consolidate")
{'users': 1, 'episodes': 3, ...}
>>> scheduler.wait_for(lambda stats: stats["maintain"]["runs"] >= 1, timeout=600)  # doctest: +SKIP
True
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from memagent.config import Config, ScheduleSettings
from memagent.errors import ConfigError, InvalidInputError, JobError
from memagent.locks import LeaderLock, UserLocks
from memagent.policies.consolidation import due

log = logging.getLogger(__name__)

JOBS = ("consolidate", "forget", "maintain")
SQL_EXTRA = 'pip install "memagent[sql]"'
_ENTRY = "memagent.scheduler:run_stored_job"  # what a job store holds: a textual reference

_registry: dict[str, MemoryScheduler] = {}
_registry_lock = threading.Lock()


class _Located(Protocol):
    @property
    def uri(self) -> str: ...
    def user_locks(self) -> UserLocks: ...
    def leader_lock(self, name: str = ...) -> LeaderLock: ...


class MaintainedMemory(Protocol):
    """What the scheduler uses of the memory it maintains; ``memagent.Memory`` is one.

    ``backend.uri`` is the data directory of the user locks; ``forget`` may be missing or ``None``: the forget
    job then does nothing. ``config`` gives ``schedule`` and ``consolidation``.
    """

    @property
    def config(self) -> Config: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
    @property
    def backend(self) -> _Located: ...

    def users(self) -> list[str]: ...
    def pending_since(self, user_id: str) -> tuple[int, datetime | None]: ...
    def consolidate(self, user_id: str) -> Mapping[str, Any]: ...
    def forget(self, user_id: str, dry_run: bool = ...) -> Any: ...
    def refresh(self) -> None: ...
    def optimize(self) -> None: ...


class _Busy(Exception):
    """The job is running already; this run is skipped."""


@dataclass
class JobStats:
    """Counters of one job since the scheduler was made."""

    runs: int = 0                  # runs that finished, failed ones included
    failures: int = 0
    skipped: int = 0               # runs not started: the job was still running
    not_leader: int = 0            # scheduled runs left to the scheduler of another process, which leads
    retries: int = 0               # retry runs scheduled after failures
    consecutive_failures: int = 0
    last_error: str | None = None
    last_started: datetime | None = None
    last_duration_s: float | None = None
    last_result: dict[str, Any] | None = None


def run_stored_job(key: str, name: str, attempt: int = 0) -> None:
    """What every stored job calls: run job ``name`` of the scheduler registered as ``key``."""
    with _registry_lock:
        owner = _registry.get(key)
    if owner is None:
        log.warning("job %s of scheduler %s: no such scheduler runs in this process; skipped", name, key)
        return
    owner._scheduled(name, attempt)


def _job_store(url: str) -> Any:
    if url == "memory":
        from apscheduler.jobstores.memory import MemoryJobStore

        return MemoryJobStore()
    if "://" not in url:
        raise ConfigError(f'job_store must be "memory" or a SQLAlchemy URL such as sqlite:///jobs.db, got {url!r}')
    try:
        import sqlalchemy  # noqa: F401
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    except ImportError:
        raise ConfigError(f"job_store {url!r} needs SQLAlchemy: install the sql extra ({SQL_EXTRA})") from None
    try:
        return SQLAlchemyJobStore(url=url, tablename="memagent_jobs")
    except Exception as exc:  # a malformed URL or a missing database driver
        raise ConfigError(f"cannot use job_store {url!r}: {exc}") from exc


class MemoryScheduler:
    """Runs the consolidate, forget and maintain jobs of one ``Memory`` in a background thread.

    ``settings`` default to ``memory.config.schedule``; ``clock`` (default
    ``memory.clock``) gives "now" for the consolidation policy and the stats.
    """

    def __init__(self, memory: MaintainedMemory, settings: ScheduleSettings | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.memory = memory
        self.settings = settings if settings is not None else memory.config.schedule
        self.clock = clock or memory.clock
        uri = str(memory.backend.uri)
        self.locks = memory.backend.user_locks()
        self.leader = memory.backend.leader_lock()
        where = str(Path(uri).resolve()) if self.locks.local else uri
        digest = hashlib.sha1(where.encode("utf-8")).hexdigest()[:12]
        self.persistent = self.settings.job_store != "memory"
        # Stored jobs find their scheduler by key after a restart; in memory, keys are per instance.
        self.key = digest if self.persistent else f"{digest}-{id(self):x}"
        self._jobs: dict[str, Callable[[], dict[str, Any]]] = {
            "consolidate": self._consolidate, "forget": self._forget, "maintain": self._maintain}
        self._intervals = {"consolidate": self.settings.consolidate_every_s,
                           "forget": self.settings.forget_every_s,
                           "maintain": self.settings.maintain_every_s}
        self._stats = {name: JobStats() for name in JOBS}
        self._stats_lock = threading.Lock()
        self._settled = threading.Condition()  # notified when a run is fully handled
        self._settled_stats = self.stats()
        self._job_locks = {name: threading.Lock() for name in JOBS}
        self._state_lock = threading.Lock()
        self._scheduler: Any = None
        self._warned_forget = False
        if self.persistent:
            _job_store(self.settings.job_store)  # fail now, not at start, when SQLAlchemy is missing

    # --- lifetime ---------------------------------------------------------------
    @property
    def running(self) -> bool:
        scheduler = self._scheduler
        return scheduler is not None and scheduler.running

    def start(self) -> None:
        """Start the jobs in a background thread; a second call does nothing."""
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        with self._state_lock:
            if self._scheduler is not None:
                return
            scheduler = BackgroundScheduler(
                jobstores={"default": _job_store(self.settings.job_store)},
                executors={"default": ThreadPoolExecutor(max_workers=1)},
                job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
                timezone=timezone.utc)
            scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES)
            with _registry_lock:
                if self.key in _registry:
                    raise ConfigError("another scheduler with a persistent job store already runs for "
                                      f"{self.locks.data_dir} in this process")
                _registry[self.key] = self
            try:
                scheduler.start(paused=True)
                self._scheduler = scheduler
                now = datetime.now(timezone.utc)
                for name in JOBS:
                    self._ensure_job(scheduler, name, now)
                scheduler.resume()
            except BaseException:
                self._scheduler = None
                if scheduler.running:
                    scheduler.shutdown(wait=False)
                with _registry_lock:
                    _registry.pop(self.key, None)
                raise
        log.info("scheduler started for %s: consolidate every %g s, forget every %g s, maintain every %g s",
                 self.locks.data_dir, *self._intervals.values())

    def _ensure_job(self, scheduler: Any, name: str, now: datetime) -> None:
        job_id = f"{self.key}:{name}"
        interval = timedelta(seconds=self._intervals[name])
        stored = scheduler.get_job(job_id)
        if stored is not None and getattr(stored.trigger, "interval", None) == interval:
            return  # a persistent store keeps its next run time across restarts
        first = now if name == "consolidate" else now + interval
        scheduler.add_job(_ENTRY, "interval", seconds=self._intervals[name], args=[self.key, name],
                          id=job_id, name=f"memagent {name}", next_run_time=first, replace_existing=True)

    def stop(self, wait: bool = True) -> None:
        """Stop the jobs; ``wait`` for a running one to finish. A second call does nothing."""
        with self._state_lock:
            scheduler, self._scheduler = self._scheduler, None
        if scheduler is None:
            return
        try:
            scheduler.shutdown(wait=wait)
        finally:
            self.leader.release()
            with _registry_lock:
                if _registry.get(self.key) is self:
                    del _registry[self.key]
        log.info("scheduler stopped for %s", self.locks.data_dir)

    def __enter__(self) -> MemoryScheduler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- running jobs -------------------------------------------------------------
    def run_now(self, job_name: str) -> dict[str, Any]:
        """Run a job in the calling thread (after a running instance of it ends); return its counts.

        Counted in ``stats()``; a failure is raised, not retried.
        """
        if job_name not in self._jobs:
            raise InvalidInputError(f"unknown job {job_name!r}; one of {list(JOBS)}")
        try:
            return self._run(job_name, blocking=True)
        finally:
            self._settle()

    def _scheduled(self, name: str, attempt: int) -> None:
        """A run started by APScheduler: never raises; a failure schedules a retry. Leaders only."""
        if not self.leader.try_acquire():
            with self._stats_lock:
                self._stats[name].not_leader += 1
            self._settle()
            return
        try:
            self._run(name, blocking=False)
        except _Busy:
            return
        except Exception:
            self._retry(name, attempt + 1)
        finally:
            self._settle()

    def _run(self, name: str, blocking: bool) -> dict[str, Any]:
        lock = self._job_locks[name]
        if not lock.acquire(blocking=blocking):
            with self._stats_lock:
                self._stats[name].skipped += 1
            log.info("job %s is still running; this run is skipped", name)
            raise _Busy(name)
        try:
            with self._stats_lock:
                self._stats[name].last_started = self.clock()
            start = time.monotonic()
            try:
                result = self._jobs[name]()
            except Exception as exc:
                with self._stats_lock:
                    stats = self._stats[name]
                    stats.runs += 1
                    stats.failures += 1
                    stats.consecutive_failures += 1
                    stats.last_error = f"{type(exc).__name__}: {exc}"
                    stats.last_duration_s = time.monotonic() - start
                log.error("job %s failed: %s", name, exc, exc_info=not isinstance(exc, JobError))
                raise
            with self._stats_lock:
                stats = self._stats[name]
                stats.runs += 1
                stats.consecutive_failures = 0
                stats.last_duration_s = time.monotonic() - start
                stats.last_result = dict(result)
            log.info("job %s done in %.2f s: %s", name, time.monotonic() - start, result)
            return result
        finally:
            lock.release()

    def _retry(self, name: str, attempt: int) -> None:
        settings = self.settings
        if attempt > settings.max_retries:
            log.error("job %s failed again after %d retries; it waits for its next regular run",
                      name, settings.max_retries)
            return
        delay = min(settings.backoff_s * 2 ** (attempt - 1), settings.backoff_max_s)
        scheduler = self._scheduler
        if scheduler is None or not scheduler.running:
            return
        scheduler.add_job(_ENTRY, "date", run_date=datetime.now(timezone.utc) + timedelta(seconds=delay),
                          args=[self.key, name, attempt], id=f"{self.key}:{name}:retry",
                          name=f"memagent {name} retry {attempt}", replace_existing=True)
        with self._stats_lock:
            self._stats[name].retries += 1
        log.warning("job %s: retry %d of %d in %.1f s", name, attempt, settings.max_retries, delay)

    def _on_skipped(self, event: Any) -> None:
        """APScheduler did not start a run because the job was still running."""
        prefix = f"{self.key}:"
        if event.job_id.startswith(prefix):
            name = event.job_id[len(prefix):].split(":")[0]
            if name in self._stats:
                with self._stats_lock:
                    self._stats[name].skipped += 1
                self._settle()

    # --- reading the state --------------------------------------------------------
    def stats(self) -> dict[str, dict[str, Any]]:
        """Per job: runs, failures, skipped, retries, consecutive_failures, last_error, last_* ."""
        with self._stats_lock:
            return {name: asdict(stats) for name, stats in self._stats.items()}

    def wait_for(self, predicate: Callable[[dict[str, dict[str, Any]]], bool],
                 timeout: float | None = None) -> bool:
        """Block until ``predicate(stats)`` holds; ``False`` if ``timeout`` seconds pass first.

        ``stats`` is what ``stats()`` returned after the last fully handled run (a
        failed scheduled run's retry is scheduled by then) or skipped run.
        """
        with self._settled:
            return self._settled.wait_for(lambda: predicate(self._settled_stats), timeout)

    def _settle(self) -> None:
        with self._settled:
            self._settled_stats = self.stats()
            self._settled.notify_all()

    def next_runs(self) -> dict[str, datetime | None]:
        """When each job (or its pending retry) runs next; empty when stopped."""
        scheduler = self._scheduler
        if scheduler is None:
            return {}
        found: dict[str, datetime | None] = {}
        for job in scheduler.get_jobs():
            if job.id.startswith(f"{self.key}:"):
                found[job.id[len(self.key) + 1:]] = job.next_run_time
        return found

    def summary(self) -> str:
        """One line: runs, failures and skipped runs of each job."""
        parts = []
        for name, s in self.stats().items():
            text = f"{name}: {s['runs']} runs, {s['failures']} failed, {s['skipped']} skipped"
            if s["last_error"]:
                text += f" (last error: {s['last_error']})"
            parts.append(text)
        return "; ".join(parts)

    # --- the jobs -------------------------------------------------------------------
    def _consolidate(self) -> dict[str, Any]:
        memory = self.memory
        memory.refresh()
        settings = memory.config.consolidation
        pending = {user: memory.pending_since(user) for user in memory.users()}
        chosen = due(pending, self.clock(), min_new=settings.min_new_episodes, max_delay_s=settings.max_delay_s)
        return self._per_user("consolidate", chosen, memory.consolidate)

    def _forget(self) -> dict[str, Any]:
        forget = getattr(self.memory, "forget", None)
        if forget is None:
            if not self._warned_forget:
                self._warned_forget = True
                log.warning("Memory.forget is not available; the forget job does nothing")
            return {"users": 0, "unavailable": 1}
        self.memory.refresh()
        return self._per_user("forget", self.memory.users(), lambda user: forget(user, dry_run=False))

    def _maintain(self) -> dict[str, Any]:
        self.memory.optimize()
        return {"optimized": 1}

    def _per_user(self, name: str, users: list[str], work: Callable[[str], Any]) -> dict[str, Any]:
        """``work(user)`` for each user whose lock is free; other users go on when one fails."""
        totals: Counter[str] = Counter(users=0, locked=0)
        errors: dict[str, Exception] = {}
        for user in users:
            with self.locks.hold(user, blocking=False) as held:
                if not held:
                    totals["locked"] += 1  # another process or thread works on this user
                    continue
                try:
                    result = work(user)
                except Exception as exc:
                    errors[user] = exc
                    log.error("job %s failed for a user", name, exc_info=True)
                    continue
            totals["users"] += 1
            if isinstance(result, Mapping):
                totals.update({k: v for k, v in result.items() if isinstance(v, int) and not isinstance(v, bool)})
            elif isinstance(result, list):  # forget: the decisions that changed something
                totals.update(str(getattr(d, "action", "changed")) for d in result)
        if errors:
            first = next(iter(errors.values()))
            raise JobError(f"{name} failed for {len(errors)} of {len(users)} users "
                           f"(first: {type(first).__name__}: {first})") from first
        return dict(totals)
