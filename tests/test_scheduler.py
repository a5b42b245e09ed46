"""The scheduler: consolidate, forget and maintain jobs, per-user locks, retries, ``memagent serve``."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from memagent import Memory, cli
from memagent.config import Config, ConsolidationSettings, ScheduleSettings
from memagent.errors import ConfigError, MemagentError
from memagent.locks import LeaderLock, LockTimeout, UserLocks
from memagent.records import Kind
from memagent.scheduler import JobError, MemoryScheduler, run_stored_job

STATEMENTS, ENTITIES, RELATIONS = Kind.STATEMENT, Kind.ENTITY, Kind.RELATION

LINES = ("I live in Lisbon.", "My dog Rex loves the beach.", "I work as a nurse at Santa Maria hospital.")
QUIET = ScheduleSettings(consolidate_every_s=3600, forget_every_s=3600, maintain_every_s=3600)


def say(memory: Memory, user: str, *texts: str, when: str = "2024-01-01") -> list[str]:
    return memory.add(user, [{"id": f"{user}-{i}", "role": "Sam", "text": t, "timestamp": when}
                             for i, t in enumerate(texts)], session_id="s1")


def settings(**kw) -> ScheduleSettings:
    return QUIET.model_copy(update=kw)


def settled(scheduler: MemoryScheduler, predicate, timeout: float = 60.0) -> None:
    """Wait until the job stats satisfy ``predicate``; the timeout only stops a hung test."""
    assert scheduler.wait_for(predicate, timeout), f"not reached: {scheduler.stats()}"


def derived_ids(memory: Memory, user: str) -> dict[str, list[str]]:
    return {kind: sorted(memory.backend.scan(kind, user).column("id").to_pylist())
            for kind in (STATEMENTS, ENTITIES, RELATIONS)}


class Concurrency:
    """Wraps a function; records how many calls ran at once, at most.

    The first call sets ``entered`` and holds until ``release`` is set: the test
    decides how long it runs. Later calls run through.
    """

    def __init__(self, func=None) -> None:
        self.func = func
        self.now = self.most = self.calls = 0
        self.lock = threading.Lock()
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, *args, **kwargs):
        with self.lock:
            self.now += 1
            self.calls += 1
            self.most = max(self.most, self.now)
            first = self.calls == 1
        try:
            if first:
                self.entered.set()
                assert self.release.wait(60), "the first call was never released"
            return self.func(*args, **kwargs) if self.func else None
        finally:
            with self.lock:
                self.now -= 1


class WatchedLock:
    """A stand-in for a job's lock that tells when a caller found it taken."""

    def __init__(self) -> None:
        self.lock, self.contended = threading.Lock(), threading.Event()

    def acquire(self, blocking: bool = True) -> bool:
        if self.lock.acquire(blocking=False):
            return True
        self.contended.set()
        return self.lock.acquire() if blocking else False

    def release(self) -> None:
        self.lock.release()


# --- the jobs ------------------------------------------------------------------------
def test_consolidate_job_consolidates_users_with_pending_episodes_once(memory):
    say(memory, "ann", *LINES)
    say(memory, "bob", "My sister Ana lives in Porto.")
    scheduler = MemoryScheduler(memory, QUIET)
    first = scheduler.run_now("consolidate")
    assert first["users"] == 2 and first["episodes"] == 4
    assert memory.pending("ann") == memory.pending("bob") == 0
    assert any("Lisbon" in s.text for s in memory.profile("ann"))
    rows = derived_ids(memory, "ann")
    assert scheduler.run_now("consolidate") == {"users": 0, "locked": 0}  # nothing twice
    assert derived_ids(memory, "ann") == rows
    stats = scheduler.stats()["consolidate"]
    assert stats["runs"] == 2 and stats["failures"] == 0 and stats["last_result"] == {"users": 0, "locked": 0}


def test_consolidation_policy_waits_for_enough_or_old_enough_episodes(tmp_path, embedder, clock):
    config = Config(consolidation=ConsolidationSettings(min_new_episodes=3, max_delay_s=3600))
    with Memory(tmp_path / "d", config=config, embedder=embedder, clock=clock) as memory:
        say(memory, "ann", "I live in Lisbon.")
        scheduler = MemoryScheduler(memory, QUIET)
        assert scheduler.run_now("consolidate")["users"] == 0 and memory.pending("ann") == 1
        clock.now += timedelta(minutes=59)
        assert scheduler.run_now("consolidate")["users"] == 0
        clock.now += timedelta(minutes=2)  # the oldest pending episode is now over an hour old
        assert scheduler.run_now("consolidate")["users"] == 1 and memory.pending("ann") == 0
        say(memory, "bob", *LINES)  # three new episodes: due at once
        assert scheduler.run_now("consolidate")["users"] == 1 and memory.pending("bob") == 0


def test_forget_job_runs_for_every_user_under_the_user_lock(memory, monkeypatch):
    say(memory, "ann", "I live in Lisbon.")
    say(memory, "bob", "I live in Porto.")
    scheduler = MemoryScheduler(memory, QUIET)
    seen = []

    def forget(user_id: str, dry_run: bool = False) -> dict[str, int]:
        busy = []  # another thread must find the user's lock taken
        probe = threading.Thread(target=lambda: busy.append(not UserLocks(memory.backend.uri).acquire(user_id, False)))
        probe.start()
        probe.join()
        seen.append((user_id, dry_run, busy[0]))
        return {"archived": 2}

    monkeypatch.setattr(memory, "forget", forget, raising=False)
    assert scheduler.run_now("forget") == {"users": 2, "locked": 0, "archived": 4}
    assert seen == [("ann", False, True), ("bob", False, True)]
    monkeypatch.setattr(memory, "forget", None, raising=False)  # a Memory without forgetting
    assert scheduler.run_now("forget")["unavailable"] == 1


def test_maintain_job_optimizes_and_unknown_jobs_are_refused(memory, monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "optimize", lambda: calls.append(1))
    scheduler = MemoryScheduler(memory, QUIET)
    scheduler.run_now("maintain")
    assert calls == [1]
    with pytest.raises(ValueError):
        scheduler.run_now("dance")


# --- no overlap -----------------------------------------------------------------------
def test_a_slow_job_never_overlaps_itself(memory, monkeypatch):
    slow = Concurrency()
    monkeypatch.setattr(memory, "optimize", slow)
    scheduler = MemoryScheduler(memory, settings(maintain_every_s=0.05))
    job_lock = WatchedLock()
    monkeypatch.setitem(scheduler._job_locks, "maintain", job_lock)
    extra_results = []
    extra = threading.Thread(target=lambda: extra_results.append(scheduler.run_now("maintain")))
    with scheduler:
        try:
            assert slow.entered.wait(60)  # a scheduled run holds the job until released
            settled(scheduler, lambda s: s["maintain"]["skipped"] >= 1)  # runs due meanwhile were not started
            extra.start()  # run_now waits its turn
            assert job_lock.contended.wait(60)
            assert slow.calls == 1
        finally:
            slow.release.set()
        extra.join(60)
        settled(scheduler, lambda s: s["maintain"]["runs"] >= 3)
    assert extra_results == [{"optimized": 1}]
    assert slow.most == 1 and slow.calls >= 3
    assert scheduler.stats()["maintain"]["failures"] == 0


def test_two_schedulers_racing_on_one_user_never_consolidate_at_once(tmp_path, embedder, monkeypatch):
    with Memory(tmp_path / "d", embedder=embedder) as a, Memory(tmp_path / "d", embedder=embedder) as b:
        say(a, "ann", *LINES)
        tracker = Concurrency(lambda real, user: real(user))
        for memory in (a, b):
            monkeypatch.setattr(memory, "consolidate", lambda user, real=memory.consolidate: tracker(real, user))
        first, second = MemoryScheduler(a, QUIET), MemoryScheduler(b, QUIET)
        results = []
        running = threading.Thread(target=lambda: results.append(first.run_now("consolidate")))
        running.start()
        try:
            assert tracker.entered.wait(60)  # the first scheduler is consolidating ann
            assert second.run_now("consolidate") == {"users": 0, "locked": 1}  # so the second finds her locked
        finally:
            tracker.release.set()
            running.join(60)
        assert [r["users"] for r in results] == [1] and tracker.most == 1 and tracker.calls == 1
        b.refresh()
        assert b.pending("ann") == 0
        assert second.run_now("consolidate") == {"users": 0, "locked": 0}  # and then done


# --- per-user locks -------------------------------------------------------------------
HOLDER = """
import sys
from memagent.locks import UserLocks
with UserLocks(sys.argv[1]).hold(sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_the_user_lock_excludes_another_process_and_skips_the_user(memory):
    user = "ann@example.com"
    say(memory, user, "I live in Lisbon.")
    data = memory.backend.uri
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, data, user], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        locks = UserLocks(data)
        with locks.hold(user, blocking=False) as held:
            assert held is False
        with pytest.raises(LockTimeout) as caught, locks.hold(user, timeout=0.2):
            pass
        assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, MemagentError)
        with locks.hold("bob", blocking=False) as held:  # other users are free
            assert held is True
        scheduler = MemoryScheduler(memory, QUIET)
        assert scheduler.run_now("consolidate") == {"users": 0, "locked": 1}
        assert memory.pending(user) == 1
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert scheduler.run_now("consolidate")["users"] == 1 and memory.pending(user) == 0
    names = os.listdir(Path(data) / ".locks")
    assert hashlib.sha1(user.encode()).hexdigest() + ".lock" in names
    assert not any("ann" in name for name in names)  # no raw user id on disk


def test_user_locks_are_reentrant_in_a_thread_and_exclusive_between_threads(tmp_path):
    locks = UserLocks(tmp_path)
    other = UserLocks(tmp_path)  # a second instance over the same directory shares the state
    got = []
    with locks.hold("ann"):
        with locks.hold("ann", blocking=False) as again:
            assert again is True
        probe = threading.Thread(target=lambda: got.append(other.acquire("ann", blocking=False)))
        probe.start()
        probe.join()
        assert got == [False]
    with other.hold("ann", blocking=False) as held:  # released by the outer exit only
        assert held is True


def test_remote_data_dirs_fall_back_to_process_locks(caplog):
    with caplog.at_level(logging.WARNING, logger="memagent.locks"):
        locks = UserLocks("s3://bucket/memory-test")
    assert not locks.local and "not local" in caplog.text
    got = []
    with locks.hold("ann"):
        probe = threading.Thread(target=lambda: got.append(locks.acquire("ann", blocking=False)))
        probe.start()
        probe.join()
    assert got == [False]


# --- failures and retries ---------------------------------------------------------------
def test_a_failing_job_is_retried_with_backoff_and_the_scheduler_keeps_running(memory, monkeypatch, caplog):
    calls = []
    real = memory.refresh

    def flaky() -> None:
        calls.append(1)
        if len(calls) <= 3:
            raise OSError("storage away")
        real()

    monkeypatch.setattr(memory, "refresh", flaky)
    # Retries far in the future: the test runs each one itself, as its stored job would when due.
    scheduler = MemoryScheduler(memory, settings(backoff_s=100, backoff_max_s=200, max_retries=5))
    before = datetime.now(timezone.utc)
    with caplog.at_level(logging.INFO, logger="memagent.scheduler"), scheduler:  # the first run fails
        for attempt, delay in enumerate((100, 200, 200), start=1):  # doubled, then capped at 200
            settled(scheduler, lambda s, n=attempt: s["consolidate"]["retries"] == n)
            after = datetime.now(timezone.utc)
            retry_at = scheduler.next_runs()["consolidate:retry"]
            assert before + timedelta(seconds=delay) <= retry_at <= after + timedelta(seconds=delay)
            before = datetime.now(timezone.utc)
            run_stored_job(scheduler.key, "consolidate", attempt)  # the retry; the last one succeeds
        assert scheduler.running
    stats = scheduler.stats()["consolidate"]
    assert stats["runs"] == 4 and len(calls) == 4
    assert stats["failures"] == 3 and stats["retries"] == 3 and stats["consecutive_failures"] == 0
    assert stats["last_error"] == "OSError: storage away"
    assert "retry 1 of 5 in 100.0 s" in caplog.text and "retry 3 of 5 in 200.0 s" in caplog.text
    assert any(r.exc_info and "storage away" in str(r.exc_info[1]) for r in caplog.records)  # with traceback


def test_retries_stop_after_max_retries(memory, monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "refresh", lambda: (calls.append(1), 1 / 0))
    scheduler = MemoryScheduler(memory, settings(backoff_s=0.02, max_retries=2))
    with scheduler:  # the retries run when due, by the scheduler
        settled(scheduler, lambda s: s["consolidate"]["consecutive_failures"] >= 3)
        assert "consolidate:retry" not in scheduler.next_runs()  # no retry pending
        assert set(scheduler.next_runs()) == {"consolidate", "forget", "maintain"}
        assert scheduler.running
    assert len(calls) == 3  # the run and two retries; then it waits for its next regular run
    stats = scheduler.stats()["consolidate"]
    assert stats["consecutive_failures"] == 3 and stats["retries"] == 2


def test_a_job_killed_mid_write_and_rerun_leaves_no_duplicates(tmp_path, embedder, monkeypatch):
    with Memory(tmp_path / "clean", embedder=embedder) as clean:
        say(clean, "u", *LINES)
        MemoryScheduler(clean, QUIET).run_now("consolidate")
        expected = derived_ids(clean, "u")
    with Memory(tmp_path / "crash", embedder=embedder) as memory:
        say(memory, "u", *LINES)
        real, failed = memory.backend.put, []

        def failing(kind, records, vectors=None):
            if kind == RELATIONS and not failed:
                failed.append(kind)
                raise OSError("disk full")
            return real(kind, records, vectors)

        monkeypatch.setattr(memory.backend, "put", failing)
        scheduler = MemoryScheduler(memory, settings(backoff_s=0.05))
        with scheduler:  # the first run fails mid-write; its retry finishes the work
            settled(scheduler, lambda s: s["consolidate"]["runs"] >= 2)
        stats = scheduler.stats()["consolidate"]
        assert failed and stats["failures"] == 1 and stats["consecutive_failures"] == 0
        assert "disk full" in stats["last_error"]
        assert derived_ids(memory, "u") == expected and memory.pending("u") == 0


def test_run_now_raises_the_failure_of_a_user_and_does_the_others(memory, monkeypatch):
    say(memory, "ann", "I live in Lisbon.")
    say(memory, "bob", "I live in Porto.")
    real = memory.consolidate

    def consolidate(user):
        if user == "ann":
            raise RuntimeError("bad user data")
        return real(user)

    monkeypatch.setattr(memory, "consolidate", consolidate)
    scheduler = MemoryScheduler(memory, QUIET)
    with pytest.raises(JobError, match="1 of 2 users"):
        scheduler.run_now("consolidate")
    assert memory.pending("ann") == 1 and memory.pending("bob") == 0
    assert scheduler.stats()["consolidate"]["failures"] == 1


# --- lifetime -------------------------------------------------------------------------------
def test_start_and_stop_are_idempotent_and_stop_waits_for_the_running_job(memory, monkeypatch):
    started, stopping, finished = threading.Event(), threading.Event(), threading.Event()
    real, real_shutdown = memory.refresh, BackgroundScheduler.shutdown

    def held_refresh() -> None:
        started.set()
        assert stopping.wait(60)  # the job runs on until stop() is shutting the scheduler down
        real()
        finished.set()

    def shutdown(self, *args, **kwargs):
        stopping.set()
        return real_shutdown(self, *args, **kwargs)

    monkeypatch.setattr(memory, "refresh", held_refresh)
    monkeypatch.setattr(BackgroundScheduler, "shutdown", shutdown)
    scheduler = MemoryScheduler(memory, QUIET)
    assert not scheduler.running
    scheduler.start()
    scheduler.start()
    assert scheduler.running and set(scheduler.next_runs()) == {"consolidate", "forget", "maintain"}
    assert started.wait(10)
    scheduler.stop()
    assert finished.is_set() and not scheduler.running  # the running job ended first
    scheduler.stop()
    assert scheduler.next_runs() == {}
    with scheduler:  # and it starts again
        assert scheduler.running
    assert not scheduler.running


def test_sql_job_store_is_named_in_a_clear_error_when_sqlalchemy_is_missing(memory, monkeypatch):
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    with pytest.raises(ConfigError, match=r"memagent\[sql\]"):
        MemoryScheduler(memory, settings(job_store="sqlite:///jobs.db"))
    with pytest.raises(ConfigError, match="SQLAlchemy URL"):
        MemoryScheduler(memory, settings(job_store="postgres"))


def test_sql_job_store_runs_stored_jobs_and_keeps_next_run_times(memory, tmp_path):
    pytest.importorskip("sqlalchemy")
    say(memory, "ann", "I live in Lisbon.")
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    scheduler = MemoryScheduler(memory, settings(job_store=url))
    with scheduler:
        settled(scheduler, lambda s: s["consolidate"]["runs"] >= 1)
        forget_at = scheduler.next_runs()["forget"]
    assert memory.pending("ann") == 0
    again = MemoryScheduler(memory, settings(job_store=url))  # a restart: same key, stored jobs
    assert again.key == scheduler.key
    with again:
        assert again.next_runs()["forget"] == forget_at


# --- memagent serve -----------------------------------------------------------------------
def test_serve_once_runs_each_job_and_exits(tmp_path, embedder, capsys, monkeypatch):
    data = tmp_path / "d"
    with Memory(data, embedder=embedder) as memory:
        say(memory, "ann", *LINES)
        monkeypatch.setattr(Memory, "forget", lambda self, user_id, dry_run=False: {"archived": 0}, raising=False)
    assert cli.main(["--data-dir", str(data), "serve", "--once"]) == 0
    out = capsys.readouterr().out
    assert "consolidate: 1 runs, 0 failed" in out and "maintain: 1 runs, 0 failed" in out
    with Memory(data, embedder=embedder) as memory:
        assert memory.pending("ann") == 0 and memory.profile("ann")
    assert cli.main(["--data-dir", str(data), "serve", "--once", "--consolidate-every", "-1"]) == 2


@pytest.mark.slow
def test_serve_stops_cleanly_on_sigterm_and_its_work_is_persisted(tmp_path, embedder):
    data = tmp_path / "d"
    with Memory(data, embedder=embedder) as memory:
        say(memory, "ann", *LINES)
    out = open(tmp_path / "out.txt", "w+")  # noqa: SIM115 (the server writes to it while the test runs)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "memagent.cli", "--data-dir", str(data), "serve",
                               "--consolidate-every", "0.5"], stdout=out, stderr=subprocess.PIPE, text=True, env=env)
    log_lines, consolidated = [], threading.Event()

    def read_log() -> None:  # the server's log, to its end; a finished consolidate run is logged
        for line in server.stderr:
            log_lines.append(line)
            if "job consolidate done" in line:
                consolidated.set()
        consolidated.set()  # the server ended: stop waiting

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    try:
        assert consolidated.wait(120), "".join(log_lines)
        assert server.poll() is None and any("job consolidate done" in line for line in log_lines), "".join(log_lines)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        reader.join(60)
    text = Path(out.name).read_text()
    assert "SIGINT or SIGTERM stops" in text and "memagent serve: done; consolidate:" in text
    assert " 0 failed" in text
    with Memory(data, embedder=embedder) as reopened:
        assert reopened.pending("ann") == 0
        assert any("Lisbon" in s.text for s in reopened.profile("ann"))


def test_one_scheduler_leads_among_those_on_one_data_dir_and_another_takes_over(tmp_path, embedder):
    data = tmp_path / "data"
    fast = settings(consolidate_every_s=0.2)
    with Memory(data, embedder=embedder) as first, Memory(data, embedder=embedder) as second:
        say(first, "sam", *LINES)
        one, two = MemoryScheduler(first, fast), MemoryScheduler(second, fast)
        one.start()
        settled(one, lambda s: s["consolidate"]["runs"] >= 1)
        two.start()
        settled(two, lambda s: s["consolidate"]["not_leader"] >= 2)
        settled(one, lambda s: s["consolidate"]["runs"] >= 3)
        assert two.stats()["consolidate"]["runs"] == 0  # the jobs ran in one process only
        assert one.stats()["consolidate"]["not_leader"] == 0
        one.stop()  # the leader goes (a dead process drops its flock the same way)
        settled(two, lambda s: s["consolidate"]["runs"] >= 1, timeout=30)
        assert first.profile("sam") and second.profile("sam")  # each sees what the leader consolidated
        two.stop()


@pytest.mark.slow
def test_a_killed_leader_process_is_replaced_by_another_one(tmp_path, embedder):
    data = tmp_path / "data"
    with Memory(data, embedder=embedder) as memory:
        say(memory, "sam", *LINES)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    leader = subprocess.Popen([sys.executable, "-m", "memagent.cli", "--data-dir", str(data), "serve",
                               "--consolidate-every", "0.3"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert "consolidate every" in leader.stdout.readline()
        lock = LeaderLock(data)
        deadline = datetime.now() + timedelta(seconds=60)
        while lock.try_acquire():  # until the server leads, this test's lock may win: give it back
            lock.release()
            assert datetime.now() < deadline, "the server never took the leader lock"
            threading.Event().wait(0.1)
        with Memory(data, embedder=embedder) as memory:
            follower = MemoryScheduler(memory, settings(consolidate_every_s=0.3))
            follower.start()
            settled(follower, lambda s: s["consolidate"]["not_leader"] >= 2)
            leader.send_signal(signal.SIGKILL)
            leader.wait(timeout=30)
            settled(follower, lambda s: s["consolidate"]["runs"] >= 1, timeout=30)
            follower.stop()
    finally:
        if leader.poll() is None:
            leader.kill()
