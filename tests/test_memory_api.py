"""The API people expect of a memory (as mem0 has it): update with history, get_all and
delete_all with metadata filters, filtered search, agent and run scopes, ``infer``,
``reset``, and an async twin of every public method. Real embedder, LanceDB in tmp_path."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from memagent import EpisodeNotFoundError, InvalidInputError, Memory, UnknownUserError
from memagent.records import Kind
from memagent.tiers.episodic import SCOPE_SEPARATOR, scope


def _add(memory, user, items):
    return memory.add(user, [{"text": t, "id": i, "metadata": m} for i, t, m in items], session_id="s")


@pytest.fixture
def filled(memory):
    _add(memory, "ana", [("m1", "I love spicy ramen", {"topic": "food", "stars": 5}),
                         ("m2", "My manager is called Rui", {"topic": "work", "stars": 3}),
                         ("m3", "I had sushi in Lisbon", {"topic": "food", "stars": 2, "place": {"city": "Lisbon"}}),
                         ("m4", "I run every morning", {})])
    return memory


def test_update_text_keeps_history_reindexes_and_reconsolidates(filled, clock):
    memory = filled
    [first] = memory.get_all("ana", {"topic": "work"})
    memory.consolidate("ana")
    assert memory.pending("ana") == 0
    later = clock.now.replace(year=clock.now.year + 1)
    updated = memory.update("ana", first.id, text="My manager is called Marta", now=later)

    assert (updated.id, updated.text, updated.metadata) == (first.id, "My manager is called Marta", first.metadata)
    assert (updated.session_id, updated.turn, updated.event_time) == (first.session_id, first.turn, first.event_time)
    versions = memory.history("ana", first.id)
    assert [(v.version, v.event, v.text) for v in versions] == [
        (1, "add", "My manager is called Rui"), (2, "update", "My manager is called Marta")]
    assert versions[1].at == later and versions[0].at == first.ingest_time
    assert memory.count("ana") == 4
    assert first.id in [h.episode.id for h in memory.search("ana", "Marta", k=2, signals={"lexical"})]
    # neither the episode nor the next turn's indexed context (the turn before it) holds the old words
    assert memory.search("ana", "Rui", k=4, signals={"lexical"}) == []
    assert memory.pending("ana") == 1  # read again by consolidation
    memory.consolidate("ana")
    assert memory.pending("ana") == 0


def test_update_metadata_only_and_errors(filled):
    memory = filled
    [ramen] = memory.get_all("ana", {"stars": 5})
    same = memory.update("ana", ramen.id, metadata={"topic": "food", "stars": 4})
    assert same.text == ramen.text and same.metadata == {"topic": "food", "stars": 4}
    assert memory.get_all("ana", {"stars": 5}) == []
    assert memory.search("ana", "spicy ramen", k=1)[0].episode.metadata["stars"] == 4
    assert [v.metadata.get("stars") for v in memory.history("ana", ramen.id)] == [5, 4]
    assert memory.update("ana", ramen.id, metadata={"topic": "food", "stars": 4}) == same  # no change, no version
    assert len(memory.history("ana", ramen.id)) == 2
    with pytest.raises(InvalidInputError):
        memory.update("ana", ramen.id)
    with pytest.raises(InvalidInputError):
        memory.update("ana", ramen.id, text="  ")
    with pytest.raises(InvalidInputError):
        memory.update("ana", ramen.id, metadata={"bad": float("nan")})
    with pytest.raises(EpisodeNotFoundError):
        memory.update("ana", "nope", text="x")
    with pytest.raises(UnknownUserError):
        memory.history("nobody", ramen.id)
    assert memory.history("ana", memory.get_all("ana", {"topic": {"$exists": False}})[0].id)[0].event == "add"


def test_an_update_interrupted_before_the_episode_is_written_duplicates_nothing_on_retry(filled, monkeypatch):
    memory = filled
    [ramen] = memory.get_all("ana", {"stars": 5})
    real = memory.episodes.replace

    def crash(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(memory.episodes, "replace", crash)
    with pytest.raises(RuntimeError):
        memory.update("ana", ramen.id, text="I love mild ramen")
    assert memory.get("ana", ramen.id).text == "I love spicy ramen"
    assert [v.text for v in memory.history("ana", ramen.id)] == ["I love spicy ramen"]
    monkeypatch.setattr(memory.episodes, "replace", real)
    memory.update("ana", ramen.id, text="I love mild ramen")
    assert [v.version for v in memory.history("ana", ramen.id)] == [1, 2]
    assert len(memory.backend.scan(Kind.HISTORY, "ana")) == 2


def test_get_all_and_filters(filled):
    memory = filled
    texts = lambda episodes: [e.text for e in episodes]  # noqa: E731
    assert texts(memory.get_all("ana")) == ["I love spicy ramen", "My manager is called Rui",
                                            "I had sushi in Lisbon", "I run every morning"]
    assert texts(memory.get_all("ana", {"topic": "food"})) == ["I love spicy ramen", "I had sushi in Lisbon"]
    assert texts(memory.get_all("ana", {"stars": {"$gte": 3}})) == ["I love spicy ramen", "My manager is called Rui"]
    assert texts(memory.get_all("ana", {"place.city": "Lisbon"})) == ["I had sushi in Lisbon"]
    assert texts(memory.get_all("ana", {"topic": {"$nin": ["food"]}})) == ["My manager is called Rui",
                                                                          "I run every morning"]
    assert texts(memory.get_all("ana", limit=1)) == ["I love spicy ramen"]
    assert memory.get_all("nobody") == []
    bad_filters = ({"stars": {"$near": 3}}, {"$or": []}, {"topic": {"$in": "food"}}, ["topic"],
                   {"a": {"$gt": 1, "$lt": 2}})
    for bad in bad_filters:
        with pytest.raises(InvalidInputError):
            memory.get_all("ana", bad)


def test_search_with_filters_keeps_only_matching_episodes(filled):
    memory = filled
    unfiltered = memory.search("ana", "what food do I like?", k=4)
    assert {h.episode.id for h in unfiltered} >= {e.id for e in memory.get_all("ana", {"topic": "food"})}
    hits = memory.search("ana", "what food do I like?", k=4, filters={"topic": "work"})
    assert [h.episode.text for h in hits] == ["My manager is called Rui"]
    hits = memory.search("ana", "sushi", k=4, filters={"stars": {"$lt": 5}, "topic": "food"})
    assert [h.episode.text for h in hits] == ["I had sushi in Lisbon"]
    assert memory.search("ana", "ramen", k=4, filters={"topic": "sport"}) == []
    with pytest.raises(InvalidInputError):
        memory.search("ana", "ramen", filters={"topic": {"$regex": "f"}})


def test_filtered_search_past_the_in_process_copy_uses_the_backend(tmp_path, embedder, clock):
    from memagent.config import Config, StorageSettings

    config = Config(storage=StorageSettings(exact_search_max_user_rows=5))
    with Memory(tmp_path / "big", config=config, embedder=embedder, clock=clock) as memory:
        memory.add("bo", [{"text": f"note {n} about the garden", "metadata": {"n": n}} for n in range(30)])
        assert memory.episodes.index("bo").vectors is None  # the backend searches now
        hits = memory.search("bo", "garden", k=3, filters={"n": {"$in": [3, 17, 29]}})
        assert sorted(h.episode.metadata["n"] for h in hits) == [3, 17, 29]


def test_delete_all_with_filters_cascades_and_without_deletes_the_user(filled):
    memory = filled
    [ramen] = memory.get_all("ana", {"stars": 5})
    memory.update("ana", ramen.id, text="I love mild ramen")
    assert memory.delete_all("ana", {"topic": "food"}) == 2
    assert [e.text for e in memory.get_all("ana")] == ["My manager is called Rui", "I run every morning"]
    assert memory.backend.scan(Kind.HISTORY, "ana").num_rows == 0  # deleted means its versions too
    assert memory.delete_all("ana", {"topic": "food"}) == 0
    assert memory.delete_all("ana") == 2
    assert memory.users() == []


def test_agent_and_run_scopes_isolate_like_users(memory):
    memory.add("ana", ["I prefer window seats"], agent_id="travel")
    memory.add("ana", ["My budget is 200 euros"], agent_id="travel", run_id="trip-1")
    memory.add("ana", ["I am allergic to nuts"])
    assert [h.episode.text for h in memory.search("ana", "seats", k=5, agent_id="travel")] == ["I prefer window seats"]
    assert [e.text for e in memory.get_all("ana", agent_id="travel", run_id="trip-1")] == ["My budget is 200 euros"]
    assert [e.text for e in memory.get_all("ana")] == ["I am allergic to nuts"]
    assert sorted(memory.users()) == sorted(["ana", scope("ana", "travel"), scope("ana", "travel", "trip-1")])
    assert memory.count(scope("ana", agent_id="travel")) == 1  # the scope id works with every method
    assert memory.delete_all("ana", agent_id="travel") == 1
    assert memory.count("ana") == 1 and memory.count(scope("ana", "travel", "trip-1")) == 1
    for bad in ("ana" + SCOPE_SEPARATOR + "x=1", "ana" + SCOPE_SEPARATOR + "run=1" + SCOPE_SEPARATOR + "agent=2",
                SCOPE_SEPARATOR + "agent=x"):
        with pytest.raises(InvalidInputError):
            memory.add(bad, ["hi"])
    with pytest.raises(InvalidInputError):
        memory.add("ana", ["hi"], agent_id="")


def test_add_with_infer_consolidates_at_once(memory):
    memory.add("cy", ["I live in Porto."], infer=False)
    assert memory.pending("cy") == 1
    memory.add("cy", ["My sister Ana lives in Braga."], infer=True)
    assert memory.pending("cy") == 0
    assert any("Porto" in s.text for s in memory.profile("cy"))


def test_reset_removes_every_user(filled):
    filled.add("bo", ["hello"])
    assert filled.reset() == 2
    assert filled.users() == [] and filled.get_all("ana") == []


def test_every_public_method_has_an_async_twin_that_gives_the_same_result(filled):
    memory = filled
    public = {name for name, value in inspect.getmembers(Memory, inspect.isfunction)
              if not name.startswith("_") and not name.startswith("a") or name in ("ask", "add")}
    local = {"start", "stop", "warm", "refresh", "optimize", "speakers", "similarity", "describe", "pending_since",
             "search_facts"}
    for name in public - local:
        twin = getattr(Memory, "a" + name, None)
        assert twin is not None and inspect.iscoroutinefunction(twin), name

    async def run():
        hits = await memory.asearch("ana", "ramen", k=1, filters={"topic": "food"})
        episodes = await memory.aget_all("ana", {"topic": "work"})
        updated = await memory.aupdate("ana", episodes[0].id, metadata={"topic": "job"})
        answer = await memory.aask("ana", "Who is my manager?")
        return hits, updated, answer, await memory.acount("ana"), await memory.ahistory("ana", episodes[0].id)

    hits, updated, answer, count, versions = asyncio.run(run())
    assert hits[0].episode.text == memory.search("ana", "ramen", k=1, filters={"topic": "food"})[0].episode.text
    assert updated.metadata == {"topic": "job"} and count == 4 and len(versions) == 2
    assert answer.text == memory.ask("ana", "Who is my manager?").text
    assert Memory.aupdate.__doc__.startswith("Async form of ``update``")


# --- models by name or object (item 6) ---------------------------------------------------------

def test_a_model_string_is_made_by_init_chat_model_at_construction(tmp_path, embedder, monkeypatch):
    import langchain.chat_models

    from fakes import scripted
    from memagent import ConfigError

    with pytest.raises(ConfigError, match="langchain-ollama|ollama"):
        Memory(tmp_path / "a", embedder=embedder, llm="ollama:llama3.2")  # the provider package is missing
    with pytest.raises(ConfigError, match="unknown-provider|provider"):
        Memory(tmp_path / "a", embedder=embedder, llm="unknown-provider:model")
    for bad in ("  ", 42, object()):
        with pytest.raises(ConfigError):
            Memory(tmp_path / "a", embedder=embedder, llm=bad)
    made = []
    fake = scripted("Rex")
    monkeypatch.setattr(langchain.chat_models, "init_chat_model", lambda spec: made.append(spec) or fake)
    with Memory(tmp_path / "b", embedder=embedder, llm="openai:gpt-4o-mini") as memory:
        assert made == ["openai:gpt-4o-mini"] and memory.llm.model is fake


def test_without_langchain_a_model_string_says_which_extra_to_install(tmp_path, embedder, monkeypatch):
    import builtins

    from memagent import ConfigError

    real = builtins.__import__

    def no_langchain(name, *args, **kwargs):
        if name.startswith("langchain.") or name == "langchain":
            raise ImportError("No module named 'langchain'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_langchain)
    with pytest.raises(ConfigError, match=r"memagent\[llm\]"):
        Memory(tmp_path / "a", embedder=embedder, llm="openai:gpt-4o-mini")


def test_any_langchain_embeddings_is_an_embedder(tmp_path, clock):
    from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

    from memagent import ConfigError

    class Counting(Embeddings):
        def __init__(self) -> None:
            self.inner, self.calls = DeterministicFakeEmbedding(size=24), 0

        def embed_documents(self, texts):
            self.calls += 1
            return [[3 * x for x in v] for v in self.inner.embed_documents(texts)]  # not unit length

        def embed_query(self, text):
            return self.embed_documents([text])[0]

    embeddings = Counting()
    with Memory(tmp_path / "d", embedder=embeddings, clock=clock) as memory:
        assert memory.embedder.dimension == 24
        memory.add("ana", ["I adopted a dog named Rex", "I work at a bakery"])
        assert memory.search("ana", "I adopted a dog named Rex", k=1)[0].episode.text == "I adopted a dog named Rex"
        vector = memory.embedder.embed(["anything"])[0]
        assert abs(float(vector @ vector) - 1.0) < 1e-5 and embeddings.calls >= 2
    with pytest.raises(ConfigError):
        Memory(tmp_path / "e", embedder=object())


def test_the_embedder_device_is_configurable(tmp_path):
    from memagent import ConfigError
    from memagent.config import Config

    with pytest.raises(ConfigError, match="on device 'no-such-device'"):
        Memory(tmp_path / "f", config=Config(embedder_device="no-such-device"))  # the model loads on it
    with Memory(tmp_path / "g", config=Config(embedder_device="cpu")) as memory:
        assert memory.embedder.device == "cpu" and memory.embedder.dimension == 384
