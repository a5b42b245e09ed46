"""Many OS processes on one data directory: exactly-once writes, unique positions, reads that
see every committed write without ``refresh``, and readers that survive another user's delete.

Each runs on a LanceDB directory and on a PostgreSQL database (``tests/pg_server.py``).
Children are spawned interpreters (``tests/multiprocess_workers.py``) with their own
``Memory``; the parent keeps one open too, cached, and checks each batch a child
acknowledges at once. The slow variant runs more processes and batches.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from typing import Any

import pytest

from fakes import HashEmbedder
from memagent import Memory
from memagent.records import Kind
from memagent.store import LanceBackend
from multiprocess_workers import message, opener, reader, writer
from pg_server import database

USER = "ana"


def plan(writers: int, batches: int, size: int) -> list[list[list[str]]]:
    """Each writer's batches: its own ids, and every other batch one that all writers send
    (a batch retried from another process)."""
    out = []
    for w in range(writers):
        mine = []
        for b in range(batches):
            mine.append([f"w{w}-{b}-{j}" for j in range(size)])
            if b % 2 == 0:
                mine.append([f"shared-{b}-{j}" for j in range(size)])
        out.append(mine)
    return out


def run(data: str, writers: int, readers: int, batches: int, size: int, reads: int, deletes: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    plans = plan(writers, batches, size)
    expected = {key for mine in plans for batch in mine for key in batch}
    with Memory(data, embedder=HashEmbedder()) as memory:
        memory.add(USER, [message("seed", 0)], session_id="s")
        assert memory.count(USER) == 1  # the parent's copy is cached from here on
        children = [ctx.Process(target=writer, args=(data, USER, mine, queue)) for mine in plans]
        children += [ctx.Process(target=reader, args=(data, USER, reads, queue)) for _ in range(readers)]
        for child in children:
            child.start()
        events: Counter[str] = Counter()
        problems: list[Any] = []
        done = deleted = 0
        while done < len(children):
            kind, payload = queue.get(timeout=300)
            events[kind] += 1
            if kind == "done":
                done += 1
            elif kind == "added":
                # read-your-writes across processes: the parent's cached memory sees the batch at once
                keys, ids = payload
                assert [memory.get(USER, i).source_id for i in ids] == keys
                if deleted < deletes:  # another user's delete purges table versions under every reader
                    memory.add("bob", [message(f"b{deleted}", deleted)])
                    assert memory.delete_user("bob") == 1
                    deleted += 1
            else:
                problems.append((kind, payload))
        for child in children:
            child.join(timeout=60)
            assert child.exitcode == 0
        assert problems == []
        assert events["added"] == sum(len(mine) for mine in plans)
        episodes = memory.list(USER, limit=100_000).items
        keys = [e.source_id for e in episodes]
        assert len(keys) == len(set(keys)) == len(expected) + 1  # each message stored exactly once
        assert set(keys) == expected | {"seed"}
        table = memory.backend.scan(Kind.EPISODE, USER, vectors=False)
        seqs = table.column("seq").to_pylist()
        assert len(set(seqs)) == len(seqs) and seqs == sorted(seqs)  # unique, in write order
        turns = list(zip(table.column("session_id").to_pylist(), table.column("turn").to_pylist()))
        assert len(set(turns)) == len(turns)
        assert memory.users() == [USER] and deleted == deletes
    with Memory(data, embedder=HashEmbedder()) as fresh:
        assert fresh.count(USER) == len(expected) + 1


@pytest.fixture(params=["lance", "postgres"])
def data(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """The shared data: a LanceDB directory, or a database on the test PostgreSQL server."""
    return str(tmp_path / "data") if request.param == "lance" else database(tmp_path)


def test_processes_writing_and_reading_one_user_store_each_message_once(data):
    run(data, writers=3, readers=1, batches=6, size=4, reads=40, deletes=3)


@pytest.mark.slow
def test_many_processes_writing_and_reading_one_user_store_each_message_once(data):
    run(data, writers=6, readers=2, batches=25, size=8, reads=300, deletes=10)


def test_processes_opening_a_new_data_directory_at_once_all_open_it(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    queue, barrier = ctx.Queue(), ctx.Barrier(4)
    folders = [str(tmp_path / f"d{n}") for n in range(4)]
    children = [ctx.Process(target=opener, args=(folders, barrier, queue)) for _ in range(4)]
    for child in children:
        child.start()
    results = [queue.get(timeout=300) for _ in range(len(children) * len(folders))]
    for child in children:
        child.join(timeout=60)
    assert [r for r in results if r[0] != "opened"] == []
    for folder in folders:  # one store each, whole: its meta once, every table
        backend = LanceBackend(folder, 8)
        assert backend.db.open_table("meta").count_rows() == 3 and len(backend.tables) == len(Kind)  # written once
        backend.close()
