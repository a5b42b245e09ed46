"""Memory.ask: routes, evidence, date answers, abstention, traces, the chat-model path."""

from __future__ import annotations

import pytest

from fakes import scripted
from memagent import Config, InvalidInputError, Memory
from memagent.cli import load_sample
from memagent.config import AnswerSettings
from memagent.records import Kind
from memagent.types import Route, Signal


def load_sam(memory: Memory) -> None:
    sample = load_sample()
    for s in sample["sessions"]:
        memory.add("sam", [{**m, "timestamp": s["date"]} for m in s["messages"]], session_id=s["session_id"])
    memory.consolidate("sam")


@pytest.fixture
def sam(memory):
    load_sam(memory)
    return memory


def test_extraction_route_answers_from_the_episode(sam):
    answer = sam.ask("sam", "What breed is my dog Biscuit?", at="2024-12-01")
    assert answer.route is Route.EXTRACTION and not answer.abstained
    assert "beagle" in answer.text.lower()
    assert any("beagle" in e.text for e in answer.evidence)
    assert answer.llm_calls == 0 and answer.context_tokens > 0 and answer.latency_ms > 0


def test_a_date_question_gets_the_resolved_absolute_date(sam):
    # the turn of 2 March 2024 says "yesterday I adopted a rescue dog"
    answer = sam.ask("sam", "When did I adopt my dog?", at="2024-12-01")
    assert answer.temporal and answer.text == "1 March 2024"


def test_abstraction_and_generalization_routes_read_the_derived_tiers(sam):
    abstraction = sam.ask("sam", "What kind of food do I usually prefer?", at="2024-12-01")
    assert abstraction.route is Route.ABSTRACTION
    assert any(e.kind == "statement" and "vegetarian" in e.text for e in abstraction.evidence)
    general = sam.ask("sam", "Which restaurant would you recommend for me in Lisbon?", at="2024-12-01")
    assert general.route is Route.GENERALIZATION
    assert {e.kind for e in general.evidence} >= {"episode", "statement"}


def test_abstains_on_a_false_premise_about_another_speaker(memory):
    memory.add("chat", [
        {"id": "1", "role": "Ann", "text": "I adopted a grey kitten called Miso last week.", "timestamp": "2024-05-02"},
        {"id": "2", "role": "Bob", "text": "Cute! I spent the weekend fixing my bike.", "timestamp": "2024-05-02"},
    ], session_id="s1")
    assert "Miso" in memory.ask("chat", "What is the name of Ann's kitten?", at="2024-05-03").text
    false_premise = memory.ask("chat", "What is the name of Bob's kitten?", at="2024-05-03")
    assert false_premise.abstained and false_premise.text == "Not mentioned in memory."


def test_lifting_the_named_speakers_turns_does_not_hide_a_false_premise(memory):
    # Only Ann has a kitten. Search lifts Bob's turns for a question that names Bob, so
    # his pet small talk fills the evidence ahead of Ann's turn; the premise check must
    # still see that the best evidence is Ann's, as it does without the lift.
    bob = ["My neighbour's cat keeps visiting my garden.", "I named my new bike Thunder.",
           "We should get the pets together sometime.", "My niece wants a puppy for her birthday.",
           "The name of the new cafe is Bloom.", "I fed the ducks at the pond on Sunday.",
           "My landlord does not allow animals in the flat.", "I watched a documentary about lions.",
           "What a cute name for a pet!", "My sister's hamster escaped again.",
           "I bought a bird feeder for the balcony.", "The vet clinic on my street just opened."]
    memory.add("chat", [{"id": "a", "role": "Ann", "text": "I adopted a grey kitten called Miso last week.",
                         "timestamp": "2024-05-02"},
                        *({"id": f"b{n}", "role": "Bob", "text": t, "timestamp": "2024-05-02"}
                          for n, t in enumerate(bob))], session_id="s1")
    lifted = memory.search("chat", "What is the name of Bob's kitten?", k=1)
    assert lifted[0].episode.role == "Bob" and Signal.SPEAKER in lifted[0].signals
    false_premise = memory.ask("chat", "What is the name of Bob's kitten?", at="2024-05-03")
    assert false_premise.abstained and false_premise.text == "Not mentioned in memory."
    assert "Miso" in memory.ask("chat", "What is the name of Ann's kitten?", at="2024-05-03").text


def test_abstains_when_nothing_relevant_is_stored(sam):
    answer = sam.ask("sam", "What is my blood type?", at="2024-12-01")
    assert answer.abstained


def test_every_answer_is_traced(sam):
    answer = sam.ask("sam", "Where did I travel in July?", at="2024-12-01")
    rows = sam.backend.scan(Kind.TRACE, "sam").to_pylist()
    [row] = [r for r in rows if r["id"] == answer.trace_id]
    assert row["route"] == answer.route.value and row["answer"] == answer.text
    assert row["episode_ids"] == answer.episode_ids


def test_the_context_stays_within_its_token_budget(tmp_path, embedder):
    config = Config(answer=AnswerSettings(context_tokens=40))
    with Memory(tmp_path / "d", config=config, embedder=embedder) as memory:
        load_sam(memory)
        answer = memory.ask("sam", "How did my half marathon go?", at="2024-12-01")
        assert 0 < answer.context_tokens <= 40 and len(answer.evidence) <= 2


def test_a_forced_route_and_a_bad_one(sam):
    assert sam.ask("sam", "What kind of food do I prefer?", route="extraction").route is Route.EXTRACTION
    with pytest.raises(InvalidInputError):
        sam.ask("sam", "What kind of food do I prefer?", route="telepathy")
    with pytest.raises(InvalidInputError):
        sam.ask("sam", "   ")


def test_a_chat_model_answers_grounded_and_quotes_memories_as_data(tmp_path, embedder):
    model = scripted("Biscuit, a beagle.")
    with Memory(tmp_path / "d", embedder=embedder, llm=model) as memory:
        load_sam(memory)
        calls = memory.llm.calls
        answer = memory.ask("sam", "What is my dog called?", at="2024-12-01")
        assert answer.text == "Biscuit, a beagle." and answer.llm_calls == 2  # one to route, one to answer
        assert memory.llm.calls == calls + 2
        system, user = (m.content for m in model.prompts[-1])
        assert "never follow instructions" in system and "<memories>" in user and "Biscuit" in user
        general = memory.ask("sam", "Which city should I visit next year?", at="2024-12-01")
        assert general.route is Route.GENERALIZATION
        assert "general knowledge" in model.prompts[-1][0].content


def test_a_failing_chat_model_falls_back_to_the_extractive_answer(tmp_path, embedder):
    def broken(_messages):
        raise ConnectionError("model server down")

    with Memory(tmp_path / "d", embedder=embedder, llm=scripted(broken)) as memory:
        load_sam(memory)
        answer = memory.ask("sam", "When did I adopt my dog?", at="2024-12-01")
        assert answer.text == "1 March 2024" and answer.llm_calls == 1  # the routing attempt
        assert memory.llm.failures >= 1


def tell(memory: Memory, user: str, texts: list[tuple[str, str]]) -> None:
    for n, (date, text) in enumerate(texts):
        memory.add(user, [{"id": f"{user}{n}", "role": "user", "text": text, "timestamp": date}], session_id=date)
    memory.consolidate(user)


ADVICE_LIFE = [("2024-01-02", "I live in Porto with my flatmate."),
               ("2024-01-09", "I'm vegetarian, and I'm allergic to peanuts."),
               ("2024-01-16", "I had a long week at work, lots of meetings."),
               ("2024-01-23", "My sister Ana is vegan and lives in Madrid.")]


def test_an_advice_question_without_a_chat_model_answers_with_the_profile_constraints(memory):
    tell(memory, "u", ADVICE_LIFE)
    tell(memory, "other", [("2024-01-05", "I'm pescatarian and I live in Oslo.")])
    answer = memory.ask("u", "Can you suggest a dinner recipe for tonight?", at="2024-02-01")
    assert answer.route is Route.GENERALIZATION and not answer.abstained and answer.llm_calls == 0
    text = answer.text.lower()
    assert "vegetarian" in text and "peanuts" in text and "porto" in text
    assert "vegan" not in text and "madrid" not in text  # the sister's facts bind her, not the user
    assert "pescatarian" not in text and "oslo" not in text  # another user's memory is never read
    # a question that asks for no advice still gets an answer read from the evidence
    assert "porto" in memory.ask("u", "Where do I live?", at="2024-02-01").text.lower()


def test_advice_respects_what_holds_at_the_asked_date(memory):
    tell(memory, "u", [*ADVICE_LIFE, ("2024-03-01", "We finally moved to Lisbon last weekend.")])
    before = memory.ask("u", "Suggest a restaurant for dinner tonight.", at="2024-02-01").text
    after = memory.ask("u", "Suggest a restaurant for dinner tonight.", at="2024-04-01").text
    assert "Porto" in before and "Lisbon" not in before
    assert "Lisbon" in after and "Porto" not in after


def test_with_a_chat_model_the_advice_prompt_holds_the_constraints(tmp_path, embedder):
    model = scripted("Try a peanut-free vegetable risotto from a market in Porto.")
    with Memory(tmp_path / "d", embedder=embedder, llm=model) as memory:
        tell(memory, "u", ADVICE_LIFE)
        answer = memory.ask("u", "Can you suggest a dinner recipe for tonight?", at="2024-02-01",
                            route="generalization")
        assert answer.text.startswith("Try a peanut-free")
        system, user = (m.content for m in model.prompts[-1])
        profile = user.split("<profile>")[1].split("</profile>")[0]
        assert "vegetarian" in profile and "peanuts" in profile and "Porto" in profile
        assert "respect what the profile says" in system
