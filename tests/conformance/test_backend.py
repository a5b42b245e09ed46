"""What "a backend works" means: the storage contract's semantics, run against every backend."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from conformance.backends import DIMENSION

from memagent.errors import MemagentError, UnsupportedError
from memagent.records import (
    VECTOR_KINDS,
    EpisodeRecord,
    EvidenceKind,
    Kind,
    Rating,
    Trace,
    TraceEvidence,
    Usage,
    Watermark,
    Weight,
)
from memagent.types import Category, Entity, EpisodeVersion, Relation, Statement

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIMENSION).astype(np.float32)
    return v / np.linalg.norm(v)


def episode(user: str, n: int, text: str = "", day: int = 0) -> EpisodeRecord:
    text = text or f"note number {n}"
    return EpisodeRecord(id=f"e{n}", user_id=user, session_id="s", role="user", text=text,
                         event_time=T0 + timedelta(days=day), ingest_time=T0, seq=n, turn=n,
                         source_id=f"m{n}", metadata={"n": n, "tags": ["a"]}, search_text=f"user: {text}",
                         context_text=f"user: {text}")


def one_of_each(user: str) -> dict[Kind, object]:
    """One record of every kind for ``user``."""
    return {
        Kind.EPISODE: episode(user, 1),
        Kind.STATEMENT: Statement("st1", user, "Ana", "Ana lives in Porto", Category.LOCATION, 0.75, ("e1",),
                                  T0, T0 + timedelta(days=3), "s", "home", "Porto"),
        Kind.ENTITY: Entity("en1", user, "Ana", "person", ("my sister Ana",), ("e1",)),
        Kind.RELATION: Relation("r1", user, "en1", "lives_in", "en2", T0, None, ("e1",), 0.5, "Ana lives in Porto"),
        Kind.WATERMARK: Watermark(f"watermark:{user}", user, 2**40, T0),
        Kind.TRACE: Trace("t1", user, "Where does Ana live?", "extraction", "Porto", False,
                          (TraceEvidence(EvidenceKind.EPISODE, "e1", ("lexical",), True),), ("e1",), T0, 12.5, 40, 0),
        Kind.USAGE: Usage("e1", user, "episode", T0, 0.5, 2, T0, -1.0, {"extraction": -1.0}, True, False, "why"),
        Kind.WEIGHT: Weight(f"{user}\x00route:extraction", user, "route:extraction", 1.25),
        Kind.RATING: Rating("t1\x00e1", user, "e1", "extraction", -1.0, T0),
        Kind.HISTORY: EpisodeVersion("e1\x002", user, "e1", 2, "update", "note one, changed", T0, {"n": 1}),
    }


def put_one(backend, kind, record, seed=0):
    return backend.put(kind, [record], np.stack([unit(seed)]) if kind in VECTOR_KINDS else None)


@pytest.mark.parametrize("kind", list(Kind))
def test_every_kind_round_trips_with_its_vector(backend, kind):
    record = one_of_each("ana")[kind]
    assert put_one(backend, kind, record, seed=3) == 1
    assert backend.get(kind, "ana", [record.id]) == [record]
    table = backend.scan(kind, "ana")
    assert table.num_rows == 1 and backend.count(kind, "ana") == 1
    if kind in VECTOR_KINDS:
        stored = np.asarray(table.column("vector").to_pylist()[0], dtype=np.float32)
        assert np.allclose(stored, unit(3), atol=1e-6)
        assert "vector" not in backend.scan(kind, "ana", vectors=False).column_names


@pytest.mark.parametrize("kind", list(Kind))
def test_one_users_records_are_invisible_to_another(backend, kind):
    mine = one_of_each("ana")[kind]
    theirs = replace(one_of_each("bob")[kind], id=mine.id)  # the same id, another user
    put_one(backend, kind, mine, seed=1)
    put_one(backend, kind, theirs, seed=2)
    assert backend.get(kind, "ana", [mine.id]) == [mine]
    assert backend.get(kind, "bob", [mine.id]) == [theirs]
    assert backend.get(kind, "carol", [mine.id]) == [] and backend.count(kind, "carol") == 0
    assert backend.scan(kind, "ana").column("user_id").to_pylist() == ["ana"]
    assert backend.delete(kind, "ana", [mine.id]) == 1
    assert backend.get(kind, "bob", [mine.id]) == [theirs]


def test_episodes_are_written_once_per_user_and_id(backend):
    batch = [episode("ana", 1), episode("ana", 2), episode("ana", 1, "a repeat inside the batch")]
    assert backend.put(Kind.EPISODE, batch, np.stack([unit(i) for i in range(3)])) == 2
    assert backend.put(Kind.EPISODE, batch[:2], np.stack([unit(9), unit(9)])) == 0  # a retried batch
    assert backend.count(Kind.EPISODE, "ana") == 2
    assert backend.get(Kind.EPISODE, "ana", ["e1"])[0].text == "note number 1"  # the first write stays


def test_episodes_are_replaced_only_when_asked(backend):
    backend.put(Kind.EPISODE, [episode("ana", 1), episode("ana", 2)], np.stack([unit(1), unit(2)]))
    changed = replace(episode("ana", 1, "note one, changed"), seq=7)
    assert backend.put(Kind.EPISODE, [changed], np.stack([unit(5)]), replace=True) == 1
    assert backend.count(Kind.EPISODE, "ana") == 2
    assert backend.get(Kind.EPISODE, "ana", ["e1"])[0].text == "note one, changed"
    assert backend.scan(Kind.EPISODE, "ana").column("id").to_pylist() == ["e2", "e1"]  # seq order
    assert backend.vector_search(Kind.EPISODE, "ana", unit(5), 1)[0][0] == "e1"
    assert backend.text_search(Kind.EPISODE, "ana", "changed", 2) == [("e1", pytest.approx(
        backend.text_search(Kind.EPISODE, "ana", "changed", 2)[0][1]))]


def test_floats_come_back_as_every_backend_stores_them(backend):
    weight = replace(one_of_each("ana")[Kind.WEIGHT], value=1.1)
    backend.put(Kind.WEIGHT, [weight])
    assert backend.get(Kind.WEIGHT, "ana", [weight.id])[0].value == float(np.float32(1.1))


def test_other_kinds_are_replaced_by_id(backend):
    weight = one_of_each("ana")[Kind.WEIGHT]
    backend.put(Kind.WEIGHT, [weight])
    backend.put(Kind.WEIGHT, [replace(weight, value=0.5)])
    assert backend.count(Kind.WEIGHT, "ana") == 1
    assert backend.get(Kind.WEIGHT, "ana", [weight.id])[0].value == 0.5


def test_reads_keep_the_order_asked_and_episodes_scan_in_write_order(backend):
    records = [episode("ana", n) for n in (3, 1, 2)]
    backend.put(Kind.EPISODE, records, np.stack([unit(n) for n in range(3)]))
    assert [e.id for e in backend.get(Kind.EPISODE, "ana", ["e2", "missing", "e3", "e1"])] == ["e2", "e3", "e1"]
    assert backend.scan(Kind.EPISODE, "ana").column("seq").to_pylist() == [1, 2, 3]
    assert backend.users() == ["ana"]


def test_a_batch_with_a_bad_record_writes_nothing(backend):
    backend.put(Kind.EPISODE, [episode("ana", 1)], np.stack([unit(1)]))
    bad_vectors = np.zeros((2, DIMENSION + 1), dtype=np.float32)  # the wrong dimension
    with pytest.raises(MemagentError):
        backend.put(Kind.EPISODE, [episode("ana", 2), episode("ana", 3)], bad_vectors)
    assert backend.count(Kind.EPISODE, "ana") == 1
    with pytest.raises(MemagentError):
        backend.put(Kind.STATEMENT, [one_of_each("ana")[Kind.STATEMENT]], None)  # a vector kind without vectors
    assert backend.count(Kind.STATEMENT, "ana") == 0


def test_deletes_by_id_and_of_a_whole_user_reach_every_kind(backend):
    for user in ("ana", "bob"):
        for kind, record in one_of_each(user).items():
            put_one(backend, kind, record)
    assert backend.delete(Kind.EPISODE, "ana", ["e1", "e1", "unknown"]) == 1
    assert backend.delete(Kind.EPISODE, "ana", []) == 0
    backend.delete_user("ana")
    for kind in Kind:
        assert backend.count(kind, "ana") == 0 and backend.scan(kind, "ana").num_rows == 0
        assert backend.count(kind, "bob") == 1
    assert backend.users() == ["bob"]
    assert backend.text_search(Kind.STATEMENT, "ana", "Porto", 5) == []


def test_full_text_search_ranks_matches_stems_and_stays_per_user(backend):
    texts = ["I went running by the river", "We cooked pasta with tomatoes", "The river was cold and the run long",
             "Dinner was a salad"]
    backend.put(Kind.EPISODE, [episode("ana", n, t) for n, t in enumerate(texts)],
                np.stack([unit(n) for n in range(4)]))
    backend.put(Kind.EPISODE, [episode("bob", 9, "river river river run")], np.stack([unit(9)]))
    hits = backend.text_search(Kind.EPISODE, "ana", "runs river", 10, field="search_text")
    assert {i for i, _ in hits} == {"e0", "e2"}  # "runs" and "running" share a stem; bob is not searched
    assert all(s > 0 for _, s in hits) and hits == sorted(hits, key=lambda h: -h[1])
    assert backend.text_search(Kind.EPISODE, "ana", "pasta", 10)[0][0] == "e1"
    assert backend.text_search(Kind.EPISODE, "ana", "the and", 10) == []  # stop words alone match nothing
    assert backend.text_search(Kind.EPISODE, "ana", "zeppelin", 10) == []
    assert len(backend.text_search(Kind.EPISODE, "ana", "river run pasta salad", 2)) == 2
    with pytest.raises(UnsupportedError):
        backend.text_search(Kind.WEIGHT, "ana", "river", 10)


def test_full_text_search_over_derived_text(backend):
    statement = one_of_each("ana")[Kind.STATEMENT]
    assert backend.text_search(Kind.STATEMENT, "ana", "Porto", 5) == []  # nothing stored yet
    put_one(backend, Kind.STATEMENT, statement)
    assert [i for i, _ in backend.text_search(Kind.STATEMENT, "ana", "Porto", 5)] == [statement.id]
    assert backend.text_search(Kind.STATEMENT, "bob", "Porto", 5) == []


def test_vector_search_is_cosine_best_first_and_per_user(backend):
    vectors = np.stack([unit(n) for n in range(6)])
    backend.put(Kind.EPISODE, [episode("ana", n) for n in range(6)], vectors)
    backend.put(Kind.EPISODE, [episode("bob", 7)], np.stack([unit(4)]))
    hits = backend.vector_search(Kind.EPISODE, "ana", unit(4), 3)
    assert hits[0][0] == "e4" and hits[0][1] == pytest.approx(1.0, abs=1e-4)
    expected = sorted(range(6), key=lambda n: -float(vectors[n] @ unit(4)))[:3]
    assert [i for i, _ in hits] == [f"e{n}" for n in expected]
    assert all(i.startswith("e") and i != "e7" for i, _ in hits)


def test_time_filters_are_half_open_on_event_time(backend):
    backend.put(Kind.EPISODE, [episode("ana", n, f"walk by the lake {n}", day=n) for n in range(5)],
                np.stack([unit(n) for n in range(5)]))
    since, until = T0 + timedelta(days=1), T0 + timedelta(days=3)
    lexical = backend.text_search(Kind.EPISODE, "ana", "lake", 10, since=since, until=until)
    vector = backend.vector_search(Kind.EPISODE, "ana", unit(0), 10, since=since, until=until)
    assert {i for i, _ in lexical} == {i for i, _ in vector} == {"e1", "e2"}
    assert {i for i, _ in backend.vector_search(Kind.EPISODE, "ana", unit(0), 10, until=since)} == {"e0"}


def test_capabilities_are_declared(backend):
    caps = backend.capabilities
    assert isinstance(caps.persistent, bool) and isinstance(caps.shared, bool)
    assert backend.dimension == DIMENSION


def test_what_was_written_is_there_after_reopening_where_the_backend_persists(factory, tmp_path):
    first = factory(tmp_path, DIMENSION)
    if not first.capabilities.persistent:
        pytest.skip("this backend keeps nothing past its process, by design")
    for kind, record in one_of_each("ana").items():
        put_one(first, kind, record)
    first.close()
    again = factory(tmp_path, DIMENSION)
    for kind, record in one_of_each("ana").items():
        assert again.get(kind, "ana", [record.id]) == [record]
    again.close()


@pytest.mark.parametrize("kind", list(Kind))
def test_a_users_version_moves_with_each_commit_of_that_kind_only(backend, kind):
    record = one_of_each("ana")[kind]
    before, other = backend.version("ana", kind), backend.version("bob", kind)
    assert backend.version("ana", kind) == before  # reading changes nothing
    put_one(backend, kind, record)
    after = backend.version("ana", kind)
    assert after != before
    assert backend.version("bob", kind) == other
    if kind is Kind.EPISODE:
        put_one(backend, kind, record)  # an episode already stored: nothing committed
        assert backend.version("ana", kind) == after
    backend.delete(kind, "ana", [record.id])
    assert backend.version("ana", kind) not in (before, after)


def test_deleting_a_user_moves_every_users_version(backend):
    for user in ("ana", "bob"):
        put_one(backend, Kind.EPISODE, episode(user, 1))
    tokens = {user: backend.version(user, Kind.EPISODE) for user in ("ana", "bob")}
    backend.delete_user("ana")
    assert backend.version("ana", Kind.EPISODE) != tokens["ana"]
    assert backend.version("bob", Kind.EPISODE) != tokens["bob"]  # cached copies of anyone reload
    put_one(backend, Kind.EPISODE, episode("ana", 1))
    assert backend.version("ana", Kind.EPISODE) != tokens["ana"]  # a new user with the old id: a new token


def test_a_second_object_on_shared_data_sees_each_commit_without_refresh(factory, tmp_path):
    first = factory(tmp_path, DIMENSION)
    if not first.capabilities.shared:
        pytest.skip("this backend's data lives in one object, by design")
    second = factory(tmp_path, DIMENSION)
    assert second.scan(Kind.EPISODE, "ana").num_rows == 0  # the second one has read, at the old version
    token = second.version("ana", Kind.EPISODE)
    for n in range(3):
        put_one(first, Kind.EPISODE, episode("ana", n, text=f"rowing club {n}"), seed=n)
        assert second.version("ana", Kind.EPISODE) != token
        token = second.version("ana", Kind.EPISODE)
        assert second.count(Kind.EPISODE, "ana") == n + 1
        assert second.put(Kind.EPISODE, [episode("ana", n)], np.stack([unit(n)])) == 0  # its id is known
    assert [i for i, _ in second.vector_search(Kind.EPISODE, "ana", unit(2), 1)] == ["e2"]
    assert {i for i, _ in second.text_search(Kind.EPISODE, "ana", "rowing", 5)} == {"e0", "e1", "e2"}
    put_one(first, Kind.WEIGHT, one_of_each("ana")[Kind.WEIGHT])
    assert second.get(Kind.WEIGHT, "ana", ["ana\x00route:extraction"])
    first.delete_user("ana")  # purges old versions under the second object's feet
    assert second.scan(Kind.EPISODE, "ana").num_rows == 0
    assert second.get(Kind.WEIGHT, "ana", ["ana\x00route:extraction"]) == []
    first.close()
    second.close()
