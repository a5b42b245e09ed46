"""LanceDB storage: the ANN index path, schema versions."""

from __future__ import annotations

import pytest

from memagent import Config, ConfigError, Memory, StorageSettings
from memagent.records import Kind
from memagent.store.lance import SCHEMA_VERSION


@pytest.mark.slow
def test_vector_index_is_built_once_and_ann_search_stays_per_user(tmp_path, embedder):
    storage = StorageSettings(vector_index_min_rows=256, exact_search_max_user_rows=0, optimize_every_writes=1000)
    config = Config(data_dir=tmp_path / "d", storage=storage)
    topics = ["cooking pasta", "training for a marathon", "repairing a bicycle", "learning the violin"]
    with Memory(config=config, embedder=embedder) as memory:
        for user in ("u1", "u2"):
            memory.add(user, [f"{user} note {i}: today I spent the evening {topics[i % 4]}" for i in range(150)])
        assert "vector_idx" not in memory.backend.stats()
        memory.optimize()
        assert "vector_idx" in memory.backend.stats()
        built = []
        table = memory.backend.tables[Kind.EPISODE]
        original = table.create_index
        table.create_index = lambda *a, **k: built.append(a) or original(*a, **k)
        memory.add("u1", ["one more note about the violin"])
        memory.optimize()
        assert built == []  # later writes refresh the index incrementally, never rebuild it
        assert table.index_stats("vector_idx").num_unindexed_rows == 0
        assert memory.episodes.index("u1").vectors is None  # above the exact-search size
        hits = memory.search("u2", "playing a string instrument", k=10, signals={"vector"})
        assert hits and all(h.episode.user_id == "u2" for h in hits)
        assert "violin" in hits[0].episode.text


def test_schema_version_is_stored_and_a_newer_one_refused(tmp_path, embedder):
    with Memory(tmp_path / "d", embedder=embedder) as memory:
        assert memory.backend.schema_version == SCHEMA_VERSION
        memory.add("u", ["kept"])
        meta = memory.backend.db.open_table("meta")
        meta.update(where="key = 'schema_version'", values={"value": str(SCHEMA_VERSION + 1)})
    with pytest.raises(ConfigError, match="schema version"):
        Memory(tmp_path / "d", embedder=embedder)


def test_an_engine_error_surfaces_as_storage_error_and_names_the_store(tmp_path, embedder):
    import shutil

    from memagent import StorageError

    with Memory(tmp_path / "d", embedder=embedder) as memory:
        memory.add("u", ["kept"])
        shutil.rmtree(tmp_path / "d" / "episodes.lance" / "data")  # the engine's files vanish underneath
        with pytest.raises(StorageError, match="LanceDB at"):
            memory.backend.scan(Kind.EPISODE, "u")


def test_memory_uri_picks_the_in_memory_backend(embedder):
    from memagent.store import InMemoryBackend

    with Memory("memory://", embedder=embedder) as memory:
        assert isinstance(memory.backend, InMemoryBackend) and not memory.backend.capabilities.persistent
        memory.add("u", ["I adopted a beagle called Rex"])
        assert memory.search("u", "beagle")[0].episode.text == "I adopted a beagle called Rex"


def test_with_an_ann_index_a_small_users_vector_search_is_still_exact(tmp_path):
    from datetime import datetime, timezone

    import numpy as np

    from memagent.records import EpisodeRecord
    from memagent.store import LanceBackend

    rng = np.random.default_rng(3)
    backend = LanceBackend(tmp_path / "d", 16, vector_index_min_rows=256, exact_max_rows=1000,
                           background_upkeep=False)
    when = datetime(2024, 1, 1, tzinfo=timezone.utc)
    matrices = {u: rng.normal(size=(300, 16)).astype(np.float32) for u in ("u1", "u2")}
    for user, matrix in matrices.items():
        backend.put(Kind.EPISODE, [EpisodeRecord(id=f"{user}-{n}", user_id=user, session_id="s", role="user",
                                                 text="t", event_time=when, ingest_time=when, seq=n, turn=n)
                                   for n in range(300)], matrix)
    backend.optimize()
    assert "vector_idx" in backend.stats()
    mine = matrices["u1"] / np.linalg.norm(matrices["u1"], axis=1, keepdims=True)
    for _ in range(10):
        query = rng.normal(size=16).astype(np.float32)
        truth = {f"u1-{i}" for i in np.argsort(-(mine @ (query / np.linalg.norm(query))))[:10]}
        hits = backend.vector_search(Kind.EPISODE, "u1", query, 10)
        assert {i for i, _ in hits} == truth  # the exact ten, not an approximation (an ANN index loses some)
    backend.close()
