"""One API, two ways to reach it: every test runs on ``Memory`` and on ``memagent.Client`` talking
to a live server (uvicorn in a thread) over a ``Memory``; both must behave the same."""

from __future__ import annotations

import asyncio
import inspect
import io
from datetime import datetime, timezone

import pytest
from api_contract import live_server

from memagent import (
    Answer,
    Entity,
    Episode,
    EpisodeNotFoundError,
    EpisodeVersion,
    Evidence,
    FactHit,
    ImportFormatError,
    InvalidInputError,
    Memory,
    Page,
    Relation,
    Route,
    SearchHit,
    Signal,
    Statement,
    TimestampError,
    TraceNotFoundError,
    UnknownUserError,
    scope,
)
from memagent.client import Client
from memagent.policies.forgetting import Decision
from memagent.server.app import create_app

MESSAGES = [
    {"id": "m1", "role": "sam", "text": "I moved to Lisbon last year.", "timestamp": "2024-03-02T10:00:00Z"},
    {"id": "m2", "role": "sam", "text": "My sister Ana works at Google.", "timestamp": "2024-03-02T10:01:00Z"},
    {"id": "m3", "role": "sam", "text": "I adopted a beagle called Rex.", "timestamp": "2024-03-02T10:02:00Z"},
    {"id": "m4", "role": "assistant", "text": "That is lovely! How is Rex?", "timestamp": "2024-03-02T10:03:00Z"},
]
LATER = {"id": "m5", "role": "sam", "text": "We hiked in Sintra with Rex.", "timestamp": "2024-05-10T09:00:00Z"}


@pytest.fixture(params=["memory", "client"])
def api(request, embedder, clock):
    with Memory("memory://", embedder=embedder, clock=clock) as memory:
        if request.param == "memory":
            yield memory
        else:
            with live_server(create_app(memory)) as url, Client(url) as client:
                yield client


@pytest.fixture
def sam(api):
    api.add("sam", MESSAGES, session_id="s1")
    api.add("sam", [LATER], session_id="s2")
    return api


def test_add_returns_ids_and_a_retried_batch_stores_nothing_new(api):
    ids = api.add("sam", MESSAGES, session_id="s1")
    assert len(ids) == 4 and len(set(ids)) == 4
    assert api.add("sam", MESSAGES, session_id="s1") == ids
    assert api.add("sam", "one plain string") and api.count("sam") == 5
    assert api.add("sam", []) == []


def test_get_list_count_users(sam):
    page = sam.list("sam", offset=0, limit=2)
    assert isinstance(page, Page) and page.total == 5 and page.next_offset == 2
    assert [e.text for e in page.items] == [MESSAGES[0]["text"], MESSAGES[1]["text"]]
    last = sam.list("sam", offset=4, limit=2)
    assert last.next_offset is None and [e.source_id for e in last.items] == ["m5"]
    assert [e.source_id for e in sam.list("sam", session_id="s2").items] == ["m5"]
    episode = sam.get("sam", page.items[0].id)
    assert isinstance(episode, Episode) and episode == page.items[0]
    assert episode.user_id == "sam" and episode.role == "sam" and episode.session_id == "s1"
    assert episode.event_time == datetime(2024, 3, 2, 10, 0, tzinfo=timezone.utc)
    assert episode.event_time.utcoffset().total_seconds() == 0
    assert sam.count("sam") == 5 and sam.count("nobody") == 0
    assert sam.users() == ["sam"]


def test_search_hits_carry_episodes_and_signals(sam):
    hits = sam.search("sam", "What is my dog called?", k=3)
    assert hits and all(isinstance(h, SearchHit) for h in hits)
    assert any("Rex" in h.episode.text for h in hits)
    assert all(isinstance(h.signals, frozenset) and all(isinstance(s, Signal) for s in h.signals) for h in hits)
    lexical = sam.search("sam", "beagle", k=3, signals={"lexical"}, use_time=False)
    assert "m3" in [h.episode.source_id for h in lexical[:2]]  # BM25 reads each turn with the one before
    assert all(h.signals <= {Signal.LEXICAL, Signal.NEIGHBOUR} for h in lexical)
    may = sam.search("sam", "Rex", since="2024-05-01", until=datetime(2024, 6, 1, tzinfo=timezone.utc))
    assert [h.episode.source_id for h in may] == ["m5"]
    assert sam.search("nobody", "anything") == []


def test_ask_answers_with_evidence_and_feedback_is_bound_to_its_user(sam):
    answer = sam.ask("sam", "Where does my sister work?", at="2024-06-01")
    assert isinstance(answer, Answer) and isinstance(answer.route, Route)
    assert answer.evidence and all(isinstance(e, Evidence) for e in answer.evidence)
    assert answer.episode_ids and answer.trace_id
    sam.add("eve", "I like tea")
    with pytest.raises(TraceNotFoundError):
        sam.feedback(answer.trace_id, "good", user_id="eve")
    result = sam.feedback(answer.trace_id, "good", user_id="sam")
    assert result["user_id"] == "sam" and result["rated"] >= 1 and result["correction_id"] is None
    assert set(result) == {"user_id", "route", "rated", "correction_id", "weights"}
    corrected = sam.feedback(answer.trace_id, "bad", correction="My sister Ana works at Microsoft now.",
                             user_id="sam")
    assert corrected["correction_id"] and sam.count("sam") == 6
    assert sam.get("sam", corrected["correction_id"]).metadata["pinned"] is True
    forced = sam.ask("sam", "Where does my sister work?", route="abstraction")
    assert forced.route is Route.ABSTRACTION


def test_profile_graph_and_fact_search_after_consolidation(sam):
    assert sam.pending("sam") == 5
    counts = sam.consolidate("sam")
    assert counts["episodes"] == 5 and counts["added"] >= 3
    assert sam.pending_since("sam") == (0, None)
    profile = sam.profile("sam")
    assert profile and all(isinstance(s, Statement) for s in profile)
    assert any(s.text == "Sam moved to Lisbon in 2023." and s.slot == "home" for s in profile)
    assert sam.profile("sam", at="2020-01-01") == []
    me = sam.entity("sam", "Sam")
    assert isinstance(me, Entity) and me.name == "Sam" and sam.entity("sam", "Nobody") is None
    facts = sam.facts("sam", "Sam")
    assert facts and all(isinstance(r, Relation) for r in facts)
    assert "Sam lives in Lisbon" in {r.text for r in facts}
    assert {e.name for _, e in sam.neighbours("sam", "Sam")} >= {"Lisbon", "Ana"}
    assert sam.paths("sam", "Sam", "Lisbon")[0][0].relation == "lives_in"
    hits = sam.search_facts("sam", "Where does Ana work?", k=3)
    assert hits and all(isinstance(h, FactHit) for h in hits)
    assert isinstance(hits[0].item, Statement) and hits[0].episodes[0].source_id == "m2"
    assert any(isinstance(h.item, Relation) for h in hits)
    assert sam.consolidate() == {} or sam.consolidate().get("added", 0) == 0


def test_forget_dry_run_reports_decisions(sam):
    sam.consolidate("sam")
    decisions = sam.forget("sam", at="2027-01-01")
    assert decisions and all(isinstance(d, Decision) and d.changes for d in decisions)
    assert sam.forget("sam", at="2027-01-01") == decisions  # a dry run changed nothing
    assert sam.forget("sam", dry_run=False, at="2027-01-01")
    assert sam.forget("sam", at="2027-01-01") == []


def test_delete_one_episode_and_a_whole_user(sam):
    first = sam.list("sam").items[0]
    sam.delete("sam", first.id)
    with pytest.raises(EpisodeNotFoundError):
        sam.get("sam", first.id)
    with pytest.raises(EpisodeNotFoundError):
        sam.delete("sam", first.id)
    assert sam.delete_user("sam") == 4
    assert sam.users() == [] and sam.delete_user("sam") == 0
    with pytest.raises(UnknownUserError):
        sam.get("sam", "anything")


def test_export_import_round_trip(sam, tmp_path):
    text = sam.export("sam")
    assert isinstance(text, str) and len(text.splitlines()) == 5 and '"user_id": "sam"' in text
    assert sam.export("sam", tmp_path / "sam.jsonl") == 5
    handle = io.StringIO()
    assert sam.export("sam", handle) == 5 and handle.getvalue() == text
    ids = sam.import_(tmp_path / "sam.jsonl", user_id="sam-copy")
    assert len(ids) == 5 and sam.count("sam-copy") == 5
    assert sam.import_(io.StringIO(text), user_id="sam-copy") == []
    assert sam.import_(io.StringIO(text)) == []  # each line's own user: all stored already
    assert sorted(sam.users()) == ["sam", "sam-copy"]
    with pytest.raises(ImportFormatError):
        sam.import_(io.StringIO(text + "not json\n"), user_id="broken")
    assert sam.count("broken") == 0
    with pytest.raises(UnknownUserError):
        sam.export("nobody")
    with pytest.raises(ImportFormatError):
        sam.import_(tmp_path / "missing.jsonl")


def test_errors_are_the_same_classes(sam):
    with pytest.raises(InvalidInputError):
        sam.search("sam", "   ")
    with pytest.raises(InvalidInputError):
        sam.search("sam", "dog", k=0)
    with pytest.raises(InvalidInputError):
        sam.add("", "hello")
    with pytest.raises(InvalidInputError):
        sam.add("sam", {"text": "hi", "colour": "red"})
    with pytest.raises(TimestampError):
        sam.add("sam", {"text": "hi", "timestamp": "not a time at all"})
    with pytest.raises(InvalidInputError):
        sam.feedback("some-trace", "meh", user_id="sam")
    with pytest.raises(InvalidInputError):
        sam.ask("sam", "Where do I live?", route="sideways")
    with pytest.raises(InvalidInputError):
        sam.list("sam", offset=-1)
    with pytest.raises(TraceNotFoundError):
        sam.feedback("no-such-trace", "good", user_id="sam")
    with pytest.raises(ValueError):  # InvalidInputError is a ValueError...
        sam.search("sam", "")
    with pytest.raises(LookupError):  # ... and the not-found errors LookupErrors
        sam.get("nobody", "x")


def test_update_changes_an_episode_and_keeps_its_history(sam):
    old = sam.list("sam").items[2]
    updated = sam.update("sam", old.id, text="I adopted a poodle called Rex.", metadata={"topic": "pets"},
                         now="2024-06-02T08:00:00Z")
    assert isinstance(updated, Episode) and updated == sam.get("sam", old.id)
    assert (updated.text, updated.metadata) == ("I adopted a poodle called Rex.", {"topic": "pets"})
    assert (updated.id, updated.session_id, updated.role, updated.event_time) == (
        old.id, old.session_id, old.role, old.event_time)
    assert "m3" in [h.episode.source_id for h in sam.search("sam", "poodle", k=2, signals={"lexical"})]
    assert sam.update("sam", old.id, metadata={}).metadata == {}
    assert sam.update("sam", old.id, metadata={}) == sam.get("sam", old.id)  # no change: no new version
    versions = sam.history("sam", old.id)
    assert all(isinstance(v, EpisodeVersion) and (v.user_id, v.episode_id) == ("sam", old.id) for v in versions)
    assert [(v.version, v.event, v.text, v.metadata) for v in versions] == [
        (1, "add", old.text, {}), (2, "update", updated.text, {"topic": "pets"}), (3, "update", updated.text, {})]
    assert versions[1].at == datetime(2024, 6, 2, 8, tzinfo=timezone.utc)
    assert [v.version for v in sam.history("sam", sam.list("sam").items[0].id)] == [1]
    with pytest.raises(InvalidInputError):
        sam.update("sam", old.id)
    with pytest.raises(EpisodeNotFoundError):
        sam.update("sam", "no-such-episode", text="x")
    with pytest.raises(EpisodeNotFoundError):
        sam.history("sam", "no-such-episode")
    with pytest.raises(UnknownUserError):
        sam.update("nobody", old.id, text="x")
    with pytest.raises(UnknownUserError):
        sam.history("nobody", old.id)


NOTES = [{"id": "f1", "text": "We had sushi in Porto.", "metadata": {"topic": "food", "stars": 5}},
         {"id": "f2", "text": "I cooked ramen at home.", "metadata": {"topic": "food", "stars": 3}},
         {"id": "w1", "text": "Standup moved to nine.", "metadata": {"topic": "work", "place": {"city": "Porto"}}},
         "A note without metadata."]


def _sources(episodes):
    return [e.source_id for e in episodes]


def test_get_all_and_delete_all_by_metadata(api):
    api.add("sam", NOTES)
    everything = api.get_all("sam")
    assert all(isinstance(e, Episode) for e in everything) and _sources(everything) == ["f1", "f2", "w1", None]
    assert _sources(api.get_all("sam", {"topic": "food"})) == ["f1", "f2"]
    assert _sources(api.get_all("sam", {"stars": {"$gte": 4}})) == ["f1"]
    assert _sources(api.get_all("sam", {"topic": {"$in": {"work", "travel"}}})) == ["w1"]  # a set, sent as a list
    assert _sources(api.get_all("sam", {"place.city": "Porto"})) == ["w1"]
    assert _sources(api.get_all("sam", {"topic": {"$exists": False}})) == [None]
    assert _sources(api.get_all("sam", limit=2)) == ["f1", "f2"]
    assert _sources(api.get_all("sam", {"topic": "food"}, limit=1)) == ["f1"]
    assert api.get_all("nobody") == [] and api.get_all("sam", {"topic": "travel"}) == []
    for bad in ({"stars": {"$near": 4}}, {"topic": {"$in": "food"}}, {"$topic": 1}, ["topic"]):
        with pytest.raises(InvalidInputError):
            api.get_all("sam", bad)
        with pytest.raises(InvalidInputError):
            api.delete_all("sam", bad)
    for bad_limit in (0, -1, True):
        with pytest.raises(InvalidInputError):
            api.get_all("sam", limit=bad_limit)
    assert api.delete_all("sam", {"topic": "travel"}) == 0
    assert api.delete_all("sam", {"topic": "food"}) == 2
    assert _sources(api.get_all("sam")) == ["w1", None] and api.count("sam") == 2
    assert api.delete_all("nobody", {"topic": "food"}) == 0
    assert api.delete_all("sam") == 2 and api.users() == []


def test_search_keeps_only_episodes_matching_the_filters(api):
    api.add("sam", NOTES)
    food = api.search("sam", "Where did we eat sushi?", k=4, filters={"topic": "food"})
    assert food and {h.episode.source_id for h in food} <= {"f1", "f2"} and food[0].episode.source_id == "f1"
    work = api.search("sam", "Where did we eat sushi?", filters={"topic": "work"})
    assert {h.episode.source_id for h in work} <= {"w1"}
    assert api.search("sam", "sushi", filters={"topic": "travel"}) == []
    with pytest.raises(InvalidInputError):
        api.search("sam", "sushi", filters={"stars": {"$gte": 1, "$lte": 5}})


def test_add_with_infer_consolidates_at_once(api):
    api.add("sam", MESSAGES, session_id="s1", infer=True)
    assert api.pending("sam") == 0 and any(s.slot == "home" for s in api.profile("sam"))
    api.add("sam", [LATER], session_id="s2")
    assert api.pending("sam") == 1


def test_agent_and_run_scopes_are_memories_of_their_own(api):
    planner = scope("sam", agent_id="planner")
    [seat] = api.add("sam", "I prefer window seats on long flights.", agent_id="planner")
    [trip] = api.add("sam", "Booked the Lisbon trip for May.", agent_id="planner", run_id="r1")
    api.add("sam", "I like jazz.")
    assert (api.count("sam"), api.count(planner), api.count(scope("sam", "planner", "r1"))) == (1, 1, 1)
    assert sorted(api.users()) == sorted(["sam", planner, scope("sam", "planner", "r1")])
    [episode] = api.get_all("sam", agent_id="planner")
    assert (episode.id, episode.user_id) == (seat, planner) and api.get(planner, seat) == episode
    assert _sources(api.get_all("sam", agent_id="planner", run_id="r1")) == [None]
    assert [h.episode.id for h in api.search("sam", "Which seats do I prefer?", agent_id="planner")] == [seat]
    assert seat not in [h.episode.id for h in api.search("sam", "Which seats do I prefer?")]
    assert api.ask("sam", "Which seats do I prefer?", agent_id="planner").episode_ids[0] == seat
    assert api.get_all("sam", run_id="r1") == []  # a run without its agent is another scope
    assert api.delete_all("sam", agent_id="planner") == 1 and api.count(planner) == 0
    assert api.get("sam", api.get_all("sam")[0].id).text == "I like jazz."
    assert api.get(scope("sam", "planner", "r1"), trip).text == "Booked the Lisbon trip for May."
    with pytest.raises(InvalidInputError):
        api.add("sam", "hello", agent_id="")


def test_reset_deletes_every_user(sam):
    sam.add("eve", "I like tea", agent_id="tea-bot")
    assert sam.reset() == 2 and sam.users() == []
    assert sam.reset() == 0
    with pytest.raises(UnknownUserError):
        sam.get("sam", "anything")


def test_async_forms(sam):
    async def run():
        ids = await sam.aadd("sam", [{"id": "m9", "text": "I play the cello.", "role": "sam"}])
        hits = await sam.asearch("sam", "cello", k=1)
        episode = await sam.aupdate("sam", ids[0], metadata={"topic": "music"})
        changed = (episode, await sam.ahistory("sam", ids[0]), await sam.aget_all("sam", {"topic": "music"}),
                   await sam.adelete_all("sam", {"topic": "music"}), await sam.areset())
        return ids, hits, changed

    ids, hits, (episode, versions, found, deleted, users) = asyncio.run(run())  # one loop: one async pool
    assert hits[0].episode.id == ids[0]
    assert episode.metadata == {"topic": "music"} and len(versions) == 2 and found == [episode]
    assert (deleted, users) == (1, 1)


# Methods of Memory that a Client does not have, and why.
EMBEDDED_ONLY = {
    "refresh": "reads other processes' writes into this process's caches; a server does it itself",
    "optimize": "compacts the server's storage: an operator's job, not a caller's",
    "start": "runs the schedule in this process; a server is started with its schedule (serve --http)",
    "stop": "stops the schedule that start() runs",
    "similarity": "a property of the embedder in this process, not of stored memory",
    "describe": "formats a Relation the caller already holds; not served over HTTP (yet)",
    "speakers": "not served over HTTP (yet)",
    "warm": "loads the model into this process; a server's workers warm themselves as they start",
}
CLIENT_ONLY = {"health": "the server's health; an embedded Memory has no server"}


def _public(cls):
    return {name: value for name, value in vars(cls).items() if not name.startswith("_") and callable(value)}


def _parameters(function):
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_client_methods_have_the_signatures_of_memory():
    memory, client = _public(Memory), _public(Client)
    mirrored = {name for name, value in memory.items() if not inspect.iscoroutinefunction(value)}
    assert set(EMBEDDED_ONLY) <= mirrored and not set(EMBEDDED_ONLY) & set(client)
    for name in sorted(mirrored - set(EMBEDDED_ONLY)):
        assert name in client, f"Client has no {name}"
        assert _parameters(client[name]) == _parameters(memory[name]), name
        if "a" + name in memory:
            assert _parameters(client["a" + name]) == _parameters(memory["a" + name]), "a" + name
    extra = {name for name, value in client.items() if not inspect.iscoroutinefunction(value)} - mirrored
    assert extra == set(CLIENT_ONLY)


def test_every_client_method_has_its_async_twin():
    client = _public(Client)
    for name, value in client.items():
        if not inspect.iscoroutinefunction(value):
            twin = client.get("a" + name)
            assert twin is not None and inspect.iscoroutinefunction(twin), f"Client has no async a{name}"
            assert _parameters(twin) == _parameters(value), name


def test_memory_and_client_give_equal_results(embedder, clock):
    """The same calls on a Memory and on a Client over another Memory return equal records."""
    def script(api):
        api.add("sam", MESSAGES, session_id="s1")
        api.add("sam", [LATER], session_id="s2")
        api.consolidate("sam")
        answer = api.ask("sam", "Where does my sister work?", at="2024-06-01")
        first = api.list("sam").items[0].id
        api.update("sam", first, metadata={"topic": "home"}, now="2024-06-02")
        return {"history": api.history("sam", first), "home": api.get_all("sam", {"topic": "home"}),
                "filtered": api.search("sam", "Lisbon", filters={"topic": {"$ne": "home"}}),
                "search": api.search("sam", "Where does Ana work?", k=4, now="2024-06-01"),
                "page": api.list("sam", limit=3), "profile": api.profile("sam"), "facts": api.facts("sam", "Sam"),
                "fact_hits": api.search_facts("sam", "dog", k=3), "export": api.export("sam"),
                "answer": (answer.text, answer.route, answer.evidence, answer.abstained)}

    with Memory("memory://", embedder=embedder, clock=clock) as memory:
        direct = script(memory)
    with Memory("memory://", embedder=embedder, clock=clock) as memory, \
            live_server(create_app(memory)) as url, Client(url) as client:
        remote = script(client)
    assert remote == direct
