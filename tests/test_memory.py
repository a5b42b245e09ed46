"""The Memory API with the real embedder, on every backend: the in-memory one and a real LanceDB
in a temp dir (tests about reopening a data directory use LanceDB alone)."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import numpy as np
import pytest

from memagent import (
    EmbedderMismatchError,
    EpisodeNotFoundError,
    ImportFormatError,
    InvalidInputError,
    MemagentError,
    Memory,
    Message,
    Signal,
    TimestampError,
    UnknownUserError,
)
from memagent.records import Kind
from memagent.store import InMemoryBackend, LanceBackend
from pg_server import database

UTC = timezone.utc


@pytest.fixture(params=["lance", "memory", "postgres"])
def memory(request, tmp_path, embedder, clock):
    backend = InMemoryBackend(embedder.dimension) if request.param == "memory" else None
    data = database(tmp_path) if request.param == "postgres" else tmp_path / "data"
    with Memory(data, embedder=embedder, clock=clock, backend=backend) as mem:
        yield mem


def chat(prefix: str = "m", day: int = 8) -> list[dict]:
    when = f"2023-05-{day:02d}T10:00:00Z"
    return [
        {"id": f"{prefix}1", "role": "alice", "text": "I adopted a beagle named Rex yesterday", "timestamp": when},
        {"id": f"{prefix}2", "role": "bob", "text": "Congrats! What does he like to eat?", "timestamp": when},
        {"id": f"{prefix}3", "role": "alice", "text": "Mostly carrots and peanut butter", "timestamp": when},
    ]


def test_add_returns_ids_in_order_and_stores_everything(memory):
    ids = memory.add("alice", chat(), session_id="s1")
    assert len(ids) == 3 and len(set(ids)) == 3
    page = memory.list("alice")
    assert [e.id for e in page.items] == ids
    assert [e.turn for e in page.items] == [0, 1, 2]
    first = memory.get("alice", ids[0])
    assert first.text == "I adopted a beagle named Rex yesterday"
    assert first.role == "alice" and first.session_id == "s1" and first.source_id == "m1"
    assert first.event_time == datetime(2023, 5, 8, 10, tzinfo=UTC)
    assert first.ingest_time.tzinfo is not None


def test_accepts_strings_message_objects_and_langchain_messages(memory):
    from langchain_core.messages import AIMessage, HumanMessage

    ids = memory.add("u", ["plain text", Message(text="typed", role="user"),
                           HumanMessage(content="from langchain", id="lc1"), AIMessage(content="reply")])
    roles = [memory.get("u", i).role for i in ids]
    assert roles == ["user", "user", "user", "assistant"]
    assert memory.get("u", ids[2]).source_id == "lc1"


def test_readding_same_caller_ids_does_not_duplicate(memory):
    first = memory.add("alice", chat(), session_id="s1")
    again = memory.add("alice", chat(), session_id="s1")
    assert again == first
    assert memory.count("alice") == 3
    mixed = memory.add("alice", chat()[:1] + [{"id": "new", "role": "alice", "text": "another fact"}], "s1")
    assert mixed[0] == first[0]
    assert memory.count("alice") == 4
    assert memory.get("alice", mixed[1]).turn == 3  # numbering continues, no gap


def test_persists_across_reopen(tmp_path, embedder):
    data = tmp_path / "data"
    with Memory(data, embedder=embedder) as mem:
        ids = mem.add("alice", chat(), session_id="s1")
    with Memory(data, embedder=embedder) as reopened:
        assert reopened.count("alice") == 3
        assert reopened.get("alice", ids[1]).text.startswith("Congrats")
        hits = reopened.search("alice", "what is the name of the dog?", now="2023-06-01")
        assert hits[0].episode.id == ids[0]


def test_users_never_see_each_other(memory):
    memory.add("alice", chat("a"), session_id="s1")
    memory.add("bob", [{"id": "b1", "role": "bob", "text": "My secret hobby is beekeeping with a beagle"}])
    for hit in memory.search("alice", "beekeeping hobby", k=10):
        assert hit.episode.user_id == "alice"
    assert all(h.episode.user_id == "bob" for h in memory.search("bob", "beagle Rex carrots", k=10))
    assert memory.list("bob").total == 1
    exported = [json.loads(line) for line in memory.export("alice").splitlines()]
    assert {row["user_id"] for row in exported} == {"alice"}
    bob_id = memory.list("bob").items[0].id
    with pytest.raises(EpisodeNotFoundError):
        memory.get("alice", bob_id)
    with pytest.raises(EpisodeNotFoundError):
        memory.delete("alice", bob_id)
    assert memory.count("bob") == 1


def test_same_caller_id_for_two_users_is_two_episodes(memory):
    a = memory.add("alice", [{"id": "shared", "text": "alice's text"}])
    b = memory.add("bob", [{"id": "shared", "text": "bob's text"}])
    assert a != b
    assert memory.get("bob", b[0]).text == "bob's text"


def test_delete_user_leaves_no_row_in_any_table_or_index(memory):
    memory.add("alice", chat(), session_id="s1")
    memory.add("carol", [{"id": "c1", "text": "zygomorphic xylophone secret"}])
    assert memory.search("carol", "zygomorphic xylophone", signals={"lexical"})
    assert memory.delete_user("carol") == 1
    assert all(memory.backend.count(kind, "carol") == 0 for kind in Kind)
    # nothing of carol left in the full-text index, whoever asks
    for user in ("carol", "alice"):
        assert not any("zygomorphic" in h.episode.text for h in memory.search(user, "zygomorphic xylophone", k=10))
    if isinstance(memory.backend, LanceBackend):
        table = memory.backend.tables[Kind.EPISODE]
        all_text = table.search().select(["text"]).limit(None).to_arrow().column("text").to_pylist()
        assert not any("zygomorphic" in t for t in all_text)
        # old table versions that still held the rows are purged
        assert all(len(t.list_versions()) == 1 for t in memory.backend.tables.values())
    with pytest.raises(UnknownUserError):
        memory.get("carol", "c1")
    assert memory.count("alice") == 3


def test_delete_one_episode(memory):
    ids = memory.add("alice", chat(), session_id="s1")
    memory.delete("alice", ids[1])
    assert [e.id for e in memory.list("alice").items] == [ids[0], ids[2]]
    with pytest.raises(EpisodeNotFoundError):
        memory.delete("alice", ids[1])


def test_list_pages(memory):
    ids = memory.add("alice", [f"message number {i}" for i in range(7)])
    first = memory.list("alice", offset=0, limit=3)
    assert first.total == 7 and first.next_offset == 3
    last = memory.list("alice", offset=6, limit=3)
    assert [e.id for e in last.items] == ids[6:] and last.next_offset is None


def test_since_until_filter_event_time(memory):
    memory.add("alice", chat("a", day=1), session_id="s1")
    memory.add("alice", chat("b", day=20), session_id="s2")
    hits = memory.search("alice", "beagle", since="2023-05-10", k=10)
    assert hits and all(h.episode.event_time >= datetime(2023, 5, 10, tzinfo=UTC) for h in hits)
    hits = memory.search("alice", "beagle", until="2023-05-10", k=10)
    assert hits and all(h.episode.event_time < datetime(2023, 5, 10, tzinfo=UTC) for h in hits)


def test_time_expression_in_query_boosts_that_period(memory):
    memory.add("alice", [{"id": "old", "text": "I went hiking with Joe", "timestamp": "2023-03-10"}], "s1")
    memory.add("alice", [{"id": "new", "text": "I went hiking with Ana", "timestamp": "2023-05-12"}], "s2")
    memory.add("alice", [{"id": "other", "text": "My sister collects stamps", "timestamp": "2023-05-20"}], "s3")
    hits = memory.search("alice", "Where did I go hiking last May?", now="2023-07-01")
    assert hits[0].episode.source_id == "new"
    assert Signal.TIME in hits[0].signals
    plain = memory.search("alice", "Where did I go hiking?", now="2023-07-01")
    assert all(Signal.TIME not in h.signals for h in plain)


def test_what_the_named_speaker_said_is_lifted(memory):
    memory.add("conv", [
        {"role": "Caroline", "text": "Remember when Melanie camped at the lake with me? Melanie loved camping."},
        {"role": "Melanie", "text": "My pottery class starts on Monday."},
        {"role": "Caroline", "text": "My new job starts on Monday too."},
        {"role": "Melanie", "text": "This summer we took the kids to the mountains and slept in a tent."},
    ], session_id="s1")
    question = "Where has Melanie camped?"
    plain = memory.search("conv", question, k=4, signals=[s for s in Signal if s is not Signal.SPEAKER])
    lifted = memory.search("conv", question, k=4)
    assert plain[0].episode.role == "Caroline" and lifted[0].episode.role == "Melanie"
    before = {h.episode.id: h.score for h in plain}
    for hit in lifted:  # Melanie's turns gain half the best score; Caroline's keep theirs
        melanie = hit.episode.role == "Melanie"
        gain = config_boost(memory) * plain[0].score if melanie else 0.0
        assert hit.score == pytest.approx(before[hit.episode.id] + gain)
        assert (Signal.SPEAKER in hit.signals) == melanie
    both = memory.search("conv", "Did Caroline and Melanie go camping?", k=4)
    assert all(Signal.SPEAKER not in h.signals for h in both)  # two speakers named: no lift
    off = memory.config.retrieval.model_copy(update={"speaker_boost": 0.0})
    assert [h.score for h in memory.search("conv", question, k=4, retrieval=off)] == [h.score for h in plain]


def config_boost(memory) -> float:
    assert memory.config.retrieval.speaker_boost > 0
    return memory.config.retrieval.speaker_boost


def test_a_turns_full_text_context_holds_only_the_end_of_the_turn_before(memory):
    long_turn = "Tromso has the northern lights in winter " + "and many other things to see " * 20 + "like reindeer"
    memory.add("alice", [{"id": "q", "role": "assistant", "text": long_turn},
                         {"id": "r", "role": "alice", "text": "I would love that."}], session_id="s1")
    rows = {r["source_id"]: r for r in memory.backend.scan(Kind.EPISODE, "alice", vectors=False).to_pylist()}
    words = memory.config.context_words
    assert words > 0 and rows["q"]["context_text"] == rows["q"]["search_text"]
    tail = " ".join(rows["q"]["search_text"].split()[-words:])
    assert rows["r"]["context_text"] == f"{tail} {rows['r']['search_text']}"
    only_bm25 = {"signals": [Signal.LEXICAL], "use_time": False}
    found = {h.episode.source_id for h in memory.search("alice", "reindeer", k=5, **only_bm25)}
    assert found == {"q", "r"}  # the reply stands next to what it answers
    found = {h.episode.source_id for h in memory.search("alice", "Tromso northern lights", k=5, **only_bm25)}
    assert found == {"q"}  # but a long turn's start does not bury the reply's own words


def test_hits_report_signals_and_neighbours(memory):
    memory.add("alice", [
        {"role": "bob", "text": "What did you name the new puppy?"},
        {"role": "alice", "text": "Biscuit, after my favourite snack."},
        {"role": "bob", "text": "Cute. How is work going?"},
        {"role": "alice", "text": "Busy with quarterly reports."},
    ], session_id="s1")
    hits = memory.search("alice", "What did you name the new puppy?", k=4)
    assert {Signal.LEXICAL, Signal.VECTOR} <= hits[0].signals
    answer = next(h for h in hits if h.episode.text.startswith("Biscuit"))
    assert Signal.NEIGHBOUR in answer.signals


def test_unknown_user(memory):
    assert memory.search("nobody", "anything") == []
    assert memory.list("nobody").total == 0
    with pytest.raises(UnknownUserError) as info:
        memory.get("nobody", "x")
    assert isinstance(info.value, LookupError) and isinstance(info.value, MemagentError)
    with pytest.raises(UnknownUserError):
        memory.export("nobody")


@pytest.mark.parametrize("bad, error", [
    ([{"text": "   "}], InvalidInputError),
    ([{"text": "x" * 40_000}], InvalidInputError),
    ([{"text": "fine", "timestamp": "not a date"}], TimestampError),
    ([{"text": "fine", "colour": "red"}], InvalidInputError),
    ([{"text": "fine", "metadata": {"x": object()}}], InvalidInputError),
    ([42], InvalidInputError),
])
def test_bad_messages_reject_the_batch_and_keep_stored_data(memory, bad, error):
    memory.add("alice", chat(), session_id="s1")
    before = [e.id for e in memory.list("alice").items]
    with pytest.raises(error):
        memory.add("alice", [{"text": "a good message"}] + bad)
    assert [e.id for e in memory.list("alice").items] == before


@pytest.mark.parametrize("user", ["", "  ", "a\x00b", "x" * 300, None])
def test_bad_user_ids(memory, user):
    with pytest.raises(InvalidInputError):
        memory.add(user, ["hello"])


def test_quotes_in_ids_are_not_sql(memory):
    user = "o'brien' OR '1'='1"
    memory.add(user, [{"id": "it's", "text": "tricky quotes"}])
    memory.add("alice", ["not visible"])
    assert [h.episode.user_id for h in memory.search(user, "visible quotes", k=10)] == [user]


def test_export_import_roundtrip_is_idempotent(memory, tmp_path):
    ids = memory.add("alice", chat(), session_id="s1")
    path = tmp_path / "alice.jsonl"
    assert memory.export("alice", path) == 3
    assert memory.import_(path, user_id="alice2") == ids
    assert memory.import_(path, user_id="alice2") == []
    copied = memory.list("alice2").items
    assert [e.text for e in copied] == [e.text for e in memory.list("alice").items]
    assert [e.turn for e in copied] == [0, 1, 2]
    assert memory.search("alice2", "dog's name")[0].episode.user_id == "alice2"


@pytest.mark.parametrize("content", [
    "not json\n",
    '{"id": "x"}\n',
    '[1, 2]\n',
    '{"id":"a","user_id":"u","session_id":"s","role":"r","text":"t","event_time":"nope","ingest_time":"2023-01-01"}\n',
])
def test_malformed_import_writes_nothing(memory, content):
    memory.add("alice", chat(), session_id="s1")
    good = memory.export("alice")
    with pytest.raises(ImportFormatError):
        memory.import_(io.StringIO(good.replace('"alice"', '"dave"') + content))
    assert memory.users() == ["alice"]


class TinyEmbedder:
    """A deterministic 8-dimensional embedder: the other-dimension case."""

    name = "tiny"
    dimension = 8

    def embed(self, texts):
        return np.ones((len(texts), 8), dtype=np.float32) / np.sqrt(8)


def test_switching_embedder_dimension_fails_clearly(tmp_path, embedder):
    data = tmp_path / "data"
    with Memory(data, embedder=embedder) as mem:
        mem.add("alice", ["keep me"])
    with pytest.raises(EmbedderMismatchError, match="384-dimensional"):
        Memory(data, embedder=TinyEmbedder())
    with Memory(data, embedder=embedder) as mem:
        assert mem.count("alice") == 1


def test_async_wrappers(memory):
    import asyncio

    async def go():
        await memory.aadd("alice", chat(), session_id="s1")
        return await memory.asearch("alice", "dog name")

    assert asyncio.run(go())[0].episode.user_id == "alice"


def test_warm_embeds_the_routing_prototypes_so_the_first_question_does_not(tmp_path, embedder, monkeypatch):
    texts: list[str] = []
    real = embedder.embed

    def counting(batch):
        texts.extend(batch)
        return real(batch)

    monkeypatch.setattr(embedder, "embed", counting)
    with Memory(tmp_path / "cold", embedder=embedder) as cold:
        cold.ask("u", "Where do I live?")
        first = len(texts)
    texts.clear()
    with Memory(tmp_path / "warm", embedder=embedder) as warm:
        warm.warm()
        warmed = len(texts)
        texts.clear()
        warm.ask("u", "Where do I live?")
    assert warmed > 10 and len(texts) < first - 10  # the prototypes moved from the question to warm()
