"""Consolidation: profile statements and the knowledge graph, built from episodes."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest

from crash_worker import SESSIONS, dump, messages
from fakes import scripted
from memagent import Memory
from memagent.records import Kind
from memagent.tiers.knowledge import UserGraph
from memagent.tiers.profile import UserProfile
from memagent.types import Candidate, Category, Entity, Signal, Statement, Triple

STATEMENTS, ENTITIES, RELATIONS, USAGE = Kind.STATEMENT, Kind.ENTITY, Kind.RELATION, Kind.USAGE


def say(memory: Memory, user: str, session: str, when: str, *texts: str, role: str = "Sam") -> list[str]:
    messages = [{"id": f"{session}-{i}", "role": role, "text": t, "timestamp": when} for i, t in enumerate(texts)]
    return memory.add(user, messages, session_id=session)


def texts(memory: Memory, user: str, **kw) -> list[str]:
    return [s.text for s in memory.profile(user, **kw) if s.kind == "statement"]


def test_statements_stand_alone_with_absolute_dates_and_evidence(memory):
    ids = say(memory, "u", "s1", "2023-05-08T13:56:00Z", "Hey! How are you?",
              "I went to a support group yesterday and it was so powerful.")
    counts = memory.consolidate("u")
    assert counts["episodes"] == 2
    [statement] = [s for s in memory.profile("u") if s.kind == "statement"]
    assert "7 May 2023" in statement.text and statement.text.startswith("Sam")
    assert statement.evidence_ids == (ids[1],)  # the small talk gave nothing
    [summary] = [s for s in memory.profile("u") if s.kind == "summary"]
    assert summary.category is Category.SUMMARY and set(summary.evidence_ids) == set(ids)


def test_consolidation_is_incremental_and_idempotent(memory):
    say(memory, "u", "s1", "2024-03-02", "I adopted a beagle called Biscuit last week.")
    first = memory.consolidate("u")
    rows = memory.backend.scan(STATEMENTS, "u").num_rows
    assert memory.consolidate("u") == {"episodes": 0} and memory.pending("u") == 0
    assert memory.backend.scan(STATEMENTS, "u").num_rows == rows
    say(memory, "u", "s2", "2024-04-02", "I started learning the piano in March.")
    assert memory.pending("u") == 1
    second = memory.consolidate("u")
    assert first["episodes"] == 1 and second["episodes"] == 1
    assert any("piano" in t for t in texts(memory, "u")) and any("Biscuit" in t for t in texts(memory, "u"))


def test_near_duplicates_merge_with_united_evidence(memory):
    a = say(memory, "u", "s1", "2024-01-10", "I love hiking in the mountains with my friends.")
    b = say(memory, "u", "s2", "2024-02-10", "I really love hiking in the mountains with my friends!")
    memory.consolidate("u")
    hiking = [s for s in memory.profile("u") if s.kind == "statement" and "hiking" in s.text]
    assert len(hiking) == 1
    assert set(hiking[0].evidence_ids) == {a[0], b[0]}
    assert hiking[0].confidence > 0.85


def test_contradiction_closes_the_old_statement_and_graph_edge(memory):
    say(memory, "u", "s1", "2023-01-15", "I live in Lisbon with my partner.")
    say(memory, "u", "s2", "2023-09-01", "We moved to Porto last month.")
    memory.consolidate("u")
    homes = {s.value: s for s in memory.profile("u", at="2024-01-01") if s.slot == "home"}
    assert "Porto" in homes and "Lisbon" not in homes
    before = {s.value for s in memory.profile("u", at="2023-05-01") if s.slot == "home"}
    assert before == {"Lisbon"}
    closed = [s for s in memory.tiers.profile("u").statements if s.value == "Lisbon"]
    assert closed[0].valid_to is not None  # closed, not overwritten or deleted
    now = {memory.tiers.graph("u").entities[r.target].name for r in memory.facts("u", "Sam")
           if r.relation == "lives_in"}
    then = {memory.tiers.graph("u").entities[r.target].name for r in memory.facts("u", "Sam", at="2023-05-01")
            if r.relation == "lives_in"}
    assert now == {"Porto"} and then == {"Lisbon"}


def test_entity_resolution_one_node_for_ana(memory):
    say(memory, "u", "s1", "2024-05-01", "My sister Ana is visiting me next week.",
        "Ana's birthday party is on Saturday and I baked a cake.", "I had lunch with Ana at the harbour.")
    memory.consolidate("u")
    graph = memory.tiers.graph("u")
    anas = [e for e in graph.entities.values() if e.name.lower().startswith("ana")]
    assert len(anas) == 1
    assert memory.entity("u", "Ana's").id == memory.entity("u", "my sister Ana").id == anas[0].id
    relations = {(r.relation, graph.entities[r.target].name) for r in memory.facts("u", "Sam")}
    assert ("has_sister", "Ana") in relations
    assert any(other.id == anas[0].id for _, other in memory.neighbours("u", "Sam"))
    assert memory.paths("u", "Sam", "Ana")[0][0].relation in {"has_sister", "mentions"}


def test_a_crash_mid_write_then_rerun_leaves_no_duplicates_and_no_gaps(tmp_path, embedder, monkeypatch):
    lines = ("I live in Lisbon.", "My dog Rex loves the beach.", "I work as a nurse at Santa Maria hospital.")
    with Memory(tmp_path / "clean", embedder=embedder) as clean:
        say(clean, "u", "s1", "2024-01-01", *lines)
        clean.consolidate("u")
        expected = {kind: sorted(clean.backend.scan(kind, "u").column("id").to_pylist())
                    for kind in (STATEMENTS, ENTITIES, RELATIONS)}
    with Memory(tmp_path / "crash", embedder=embedder) as memory:
        say(memory, "u", "s1", "2024-01-01", *lines)
        real = memory.backend.put

        def failing(kind, records, vectors=None):
            if kind == RELATIONS:
                raise OSError("disk full")
            return real(kind, records, vectors)

        monkeypatch.setattr(memory.backend, "put", failing)
        with pytest.raises(OSError):
            memory.consolidate("u")
        assert memory.pending("u") == 3  # the watermark did not move
        monkeypatch.setattr(memory.backend, "put", real)
        memory.consolidate("u")
        got = {kind: sorted(memory.backend.scan(kind, "u").column("id").to_pylist())
               for kind in (STATEMENTS, ENTITIES, RELATIONS)}
        assert got == expected
        assert memory.pending("u") == 0


def test_users_never_share_graph_nodes_or_statements(memory):
    say(memory, "alice", "s1", "2024-01-01", "My sister Ana lives in Lisbon.", role="Alice")
    say(memory, "bob", "s1", "2024-01-01", "My sister Ana lives in Lisbon.", role="Bob")
    memory.consolidate()
    ga, gb = memory.tiers.graph("alice"), memory.tiers.graph("bob")
    assert not set(ga.graph.nodes) & set(gb.graph.nodes)
    for graph, user in ((ga, "alice"), (gb, "bob")):
        assert all(graph.entities[n].user_id == user for n in graph.graph.nodes)
        assert all(r.user_id == user for r in graph.relations.values())
    assert all(h.item.user_id == "bob" for h in memory.search_facts("bob", "Who is Ana?"))
    assert memory.tiers.profile("alice").statements[0].subject == "Alice"


def test_derived_items_are_searchable_and_map_back_to_episodes(memory):
    ids = say(memory, "u", "s1", "2024-03-02", "I work from home as a data analyst at Northwind.",
              "The weather was grey all day.")
    memory.consolidate("u")
    found = memory.search_facts("u", "What is Sam's job?", k=3)
    assert any("analyst" in f.item.text for f in found[:2])  # the statement, maybe after the works_at fact
    assert [e.id for e in found[0].episodes] == [ids[0]]
    hits = memory.search("u", "What is Sam's job?", k=2)
    assert hits[0].episode.id == ids[0] and Signal.FACT in hits[0].signals
    plain = memory.search("u", "What is Sam's job?", k=2, signals={"lexical", "vector"})
    assert all(Signal.FACT not in h.signals for h in plain)


def test_deleting_episodes_and_users_reaches_the_derived_tiers(memory):
    ids = say(memory, "u", "s1", "2024-03-02", "My dog Rex loves the beach.", "I work as a nurse in Porto.")
    memory.consolidate("u")
    memory.delete("u", ids[0])
    assert not any("Rex" in t for t in texts(memory, "u"))
    assert ids[0] not in memory.backend.scan(USAGE, "u").column("id").to_pylist()
    assert all(ids[0] not in r.evidence_ids for r in memory.tiers.graph("u").relations.values())
    memory.delete_user("u")
    for kind in (STATEMENTS, ENTITIES, RELATIONS):
        assert memory.backend.scan(kind, "u").num_rows == 0
    assert memory.profile("u") == []


def test_llm_extraction_is_validated_merged_with_the_rules_and_falls_back_counted(tmp_path, embedder):
    good = json.dumps({"statements": [{"text": "Sam owns a beagle named Biscuit.", "category": "possession",
                                       "confidence": 0.9}]})
    with Memory(tmp_path / "good", embedder=embedder, llm=scripted(good)) as memory:
        say(memory, "u", "s1", "2024-03-02", "Yesterday I adopted a beagle, Biscuit.")
        counts = memory.consolidate("u")
        assert counts["llm_calls"] == 1 and counts.get("fallbacks", 0) == 0
        found = texts(memory, "u")  # the model's statement joins the rules' one, it does not replace it
        assert "Sam owns a beagle named Biscuit." in found and any("1 March 2024" in t for t in found)
        prompt = memory.llm.model.prompts[0][1].content
        assert "Yesterday I adopted a beagle" in prompt and "a JSON string" in prompt
    one_bad = json.dumps({"statements": [{"text": "x", "category": "astrology"},
                                         {"text": "Sam has a beagle called Biscuit.", "category": "possession"}]})
    with Memory(tmp_path / "one_bad", embedder=embedder, llm=scripted(one_bad)) as memory:
        say(memory, "u", "s1", "2024-03-02", "Yesterday I adopted a beagle, Biscuit.")
        counts = memory.consolidate("u")  # one bad field drops that statement, not the episode
        assert counts.get("fallbacks", 0) == 0 and counts["rejected: invalid field"] == 1
        assert "Sam has a beagle called Biscuit." in texts(memory, "u")
    with Memory(tmp_path / "bad", embedder=embedder, llm=scripted("Sure! Sam adopted a dog.")) as memory:
        say(memory, "u", "s1", "2024-03-02", "Yesterday I adopted a beagle, Biscuit.")
        counts = memory.consolidate("u")
        assert counts["fallbacks"] == 1 and memory.llm.failures == 1 and memory.llm.rejected["invalid reply"] == 1
        assert any("1 March 2024" in t for t in texts(memory, "u"))  # the rules took over


# --- issue 15: the same episodes give the same rows, whatever the row order and wherever a run crashed ---
T0, T1, T2 = (datetime(2023, 6, 1, tzinfo=timezone.utc), datetime(2024, 1, 10, tzinfo=timezone.utc),
              datetime(2024, 5, 1, tzinfo=timezone.utc))


def home(sid: str, city: str, when: datetime, evidence: str) -> Statement:
    return Statement(sid, "u", "Sam", f"Sam lives in {city}.", Category.LOCATION, 0.85, (evidence,), when,
                     session_id="s", slot="home", value=city)


def test_a_new_value_of_a_slot_closes_the_same_statements_whatever_the_row_order(embedder):
    # Braga (2023) was told after Lisbon (2024): both are open, and Berlin contradicts both.
    rows = [home("a", "Lisbon", T1, "e1"), home("b", "Braga", T0, "e2")]
    vectors = embedder.embed([r.text for r in rows])
    move = Candidate("Sam", "Sam lives in Berlin.", Category.LOCATION, 0.85, "e3", "s", T2, "home", "Berlin")
    outcomes = []
    for order in ([0, 1], [1, 0]):
        profile = UserProfile("u", [rows[n] for n in order], vectors[order])
        profile.absorb([move], embedder.embed([move.text]), 0.86)
        outcomes.append(sorted(profile.statements, key=lambda s: s.id))
    assert outcomes[0] == outcomes[1]
    assert {s.value: s.valid_to for s in outcomes[0]} == {"Lisbon": T2, "Braga": T2, "Berlin": None}


def test_a_summary_reads_in_turn_order_whatever_the_row_order(embedder):
    texts = ["Sam loves hiking in the mountains.", "Sam works at Acme.", "Sam's favourite food is sushi."]
    rows = [Statement(f"id{9 - n}", "u", "Sam", t, Category.PREFERENCE, 0.85, (f"e{n}",), T1, session_id="s")
            for n, t in enumerate(texts)]
    vectors = embedder.embed(texts)
    made = []
    for order in ([0, 1, 2], [2, 0, 1], [1, 2, 0]):
        profile = UserProfile("u", [rows[n] for n in order], vectors[order])
        summary, vector = profile.summarise("s", ["e0", "e1", "e2"], T1, 3)
        made.append((summary.text, vector.tobytes()))
    assert len(set(made)) == 1
    assert made[0][0] == "Session of 10 January 2024: " + " ".join(texts)


def test_a_replayed_triple_closes_no_edge_again():
    graph = UserGraph("u", [], np.zeros((0, 4), np.float32), [], np.zeros((0, 4), np.float32))
    vector = np.eye(4, dtype=np.float32)
    names = (("Sam", "person"), ("Lisbon", "place"), ("Porto", "place"))
    sam, lisbon, porto = (graph.upsert_entity(name, kind, "e1", vector[n], None).id
                          for n, (name, kind) in enumerate(names))
    for _ in range(2):  # the batch, then the same batch again after a crash: both moves at one time
        graph.relate(Triple("Sam", "lives_in", "Lisbon", "place", True), sam, lisbon, T1, "e1", 0.8)
        graph.relate(Triple("Sam", "lives_in", "Porto", "place", True), sam, porto, T1, "e2", 0.8)
    assert {graph.entities[r.target].name for r in graph.relations.values() if r.valid_to is None} == {"Porto"}


def test_equally_near_entities_resolve_to_one_of_them_whatever_the_row_order():
    entities = [Entity(i, "u", name, "person") for i, name in (("b", "Ann"), ("a", "Anne"))]
    same = np.tile(np.eye(4, dtype=np.float32)[:1], (2, 1))
    for order in ([0, 1], [1, 0]):
        graph = UserGraph("u", [entities[n] for n in order], same, [], np.zeros((0, 4), np.float32))
        assert graph.nearest_entity(same[0], "person", 0.5) == ("a", pytest.approx(1.0))


def fill(memory: Memory) -> None:
    for session in SESSIONS:
        memory.add(session[0], messages(session), session_id=session[1], now=T2)


@pytest.mark.parametrize("failing", [RELATIONS, Kind.WATERMARK])
def test_a_batch_rerun_after_a_crash_between_its_writes_leaves_the_rows_of_a_clean_run(tmp_path, embedder,
                                                                                        monkeypatch, failing):
    with Memory(tmp_path / "clean", embedder=embedder) as clean:
        fill(clean)
        clean.consolidate()
        expected = dump(clean)
    with Memory(tmp_path / "crash", embedder=embedder) as memory:
        fill(memory)
        real = memory.backend.put

        def crashing(kind, records, vectors=None, **kw):
            if kind == failing and records[0].user_id == "sam":  # the rows before it are committed, the watermark not
                raise OSError("killed")
            return real(kind, records, vectors, **kw)

        monkeypatch.setattr(memory.backend, "put", crashing)
        with pytest.raises(OSError):
            memory.consolidate()
        monkeypatch.setattr(memory.backend, "put", real)
    with Memory(tmp_path / "crash", embedder=embedder) as reopened:  # a fresh copy of every tier
        reopened.consolidate()
        assert dump(reopened) == expected
