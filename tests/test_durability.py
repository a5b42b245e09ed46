"""A failure mid-write loses nothing committed and a retry duplicates nothing."""

from __future__ import annotations

import pytest

from memagent import Memory, Signal
from memagent.errors import StorageError
from memagent.records import Kind


class FailingEmbedder:
    """The real embedder, made to fail on chosen calls (a crash mid-ingest)."""

    def __init__(self, real, fail_on: set[int]) -> None:
        self.real, self.fail_on, self.calls = real, fail_on, 0
        self.name = real.name

    @property
    def dimension(self) -> int:
        return self.real.dimension

    def embed(self, texts):
        self.calls += 1
        if self.calls in self.fail_on:
            raise RuntimeError("simulated crash while embedding")
        return self.real.embed(texts)


def batch(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"m{i}", "role": "ana", "text": f"fact number {i} about Ana's garden"} for i in range(start, n)]


def test_crash_while_embedding_then_retry(tmp_path, embedder):
    flaky = FailingEmbedder(embedder, fail_on={2})
    with Memory(tmp_path / "d", embedder=flaky) as memory:
        first = memory.add("ana", batch(5), session_id="s")
        with pytest.raises(RuntimeError):
            memory.add("ana", batch(10), session_id="s")
        assert memory.count("ana") == 5
        again = memory.add("ana", batch(10), session_id="s")
        assert again[:5] == first
        assert memory.count("ana") == 10
        assert [e.turn for e in memory.list("ana").items] == list(range(10))


def test_failed_storage_write_leaves_store_and_cache_consistent(tmp_path, embedder, monkeypatch):
    with Memory(tmp_path / "d", embedder=embedder) as memory:
        memory.add("ana", batch(3), session_id="s")
        table = memory.backend.tables[Kind.EPISODE]

        def broken_add(*args, **kwargs):
            raise OSError("disk full")

        monkeypatch.setattr(table, "add", broken_add)
        with pytest.raises(StorageError, match="disk full"):
            memory.add("ana", batch(6), session_id="s")
        monkeypatch.undo()
        assert memory.count("ana") == 3
        assert len(memory.episodes.index("ana")) == 3
        memory.add("ana", batch(6), session_id="s")
    with Memory(tmp_path / "d", embedder=embedder) as reopened:
        assert reopened.count("ana") == 6
        assert sorted(e.source_id for e in reopened.list("ana").items) == [f"m{i}" for i in range(6)]


def test_new_episode_is_searchable_at_once_by_every_signal(memory):
    memory.add("ana", ["I water the roses every morning", "The tomatoes need more sun"], session_id="s")
    memory.search("ana", "roses")  # builds the in-process copy
    memory.add("ana", ["My neighbour gave me a lemon tree"], session_id="s")
    hits = memory.search("ana", "lemon tree from the neighbour", k=1)
    assert hits[0].episode.text == "My neighbour gave me a lemon tree"
    assert {Signal.LEXICAL, Signal.VECTOR} <= hits[0].signals
