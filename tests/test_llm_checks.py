"""A chat model whose replies are schema-valid but wrong cannot make memory worse (issue 18).

The fake model below answers every prompt with well-formed output that is wrong
in one way the issue lists (a wrong subject, a wrong slot, an unsupported value,
an assistant turn's text, a wrong route, an unsupported answer, an abstention
despite evidence); each test checks the error is caught, counted by reason, and
that the profile and the answers stay what the LLM-free path gives.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import pytest
from langchain_core.messages import BaseMessage

from fakes import scripted
from memagent import Memory
from memagent.llm import ChatAdapter, chat_model
from memagent.llm_checks import speaker_states, supported
from memagent.types import Route

LIFE = [  # (date, role, text)
    ("2024-01-10", "Maya", "I live in Lisbon and I work at Acme as a nurse."),
    ("2024-03-05", "Maya", "My sister Ines moved to Porto last week."),
    ("2024-03-06", "Maya", "I love my cat Luna. I have gone vegan."),
    ("2024-04-01", "assistant", "Hello! I'm Nova, your partner in planning, married to the job."),
    ("2024-04-02", "Maya", "Hi there, how are you?"),
]

# What a bad model says about each user turn: schema-valid, wrong in content.
WRONG = {
    "My sister Ines moved": [  # a sibling's city as the user's home
        {"text": "Maya lives in Porto.", "category": "location", "subject": "Maya", "slot": "home",
         "value": "Porto"},
        {"text": "Maya moved to Porto last week.", "category": "event"},
        {"text": "Ines moved to Porto in late February 2024.", "category": "event", "subject": "Ines"}],
    "I love my cat Luna": [  # the pet as her partner, a diet as her job
        {"text": "Maya's partner is Luna.", "category": "relationship", "slot": "partner", "value": "Luna"},
        {"text": "Maya works as a vegan.", "category": "work/education", "slot": "job", "value": "vegan"}],
    "Hi there": [  # invented facts: an unsupported value, a subject the turn never names
        {"text": "Maya is married to Tom.", "category": "relationship", "slot": "partner", "value": "Tom"},
        {"text": "Carlos is Maya's brother.", "category": "relationship", "subject": "Carlos"}],
    "I live in Lisbon": [  # right, but the rules read this slot already
        {"text": "Maya lives in Lisbon.", "category": "location", "slot": "home", "value": "Lisbon"}],
}


def extraction_reply(messages: Sequence[BaseMessage]) -> str:
    user = str(messages[-1].content)
    for start, statements in WRONG.items():
        if start in user:
            return json.dumps({"statements": statements})
    return json.dumps({"statements": []})


def bad_model(answer: str, route: str = "generalization"):
    def respond(messages: Sequence[BaseMessage]) -> str:
        system = str(messages[0].content)
        if "extract durable facts" in system:
            return extraction_reply(messages)
        if "sort questions" in system:
            return json.dumps({"route": route})
        return answer
    return scripted(respond)


def live(memory: Memory) -> None:
    for n, (when, role, text) in enumerate(LIFE):
        memory.add("maya", [{"id": f"m{n}", "role": role, "text": text, "timestamp": when}], session_id=f"s{n}")
    memory.consolidate("maya")


def slots(memory: Memory, at: str) -> dict[str, str]:
    return {s.slot: s.value for s in memory.profile("maya", at=at) if s.slot}


@pytest.fixture
def plain(tmp_path, embedder):
    with Memory(tmp_path / "plain", embedder=embedder) as memory:
        live(memory)
        yield memory


def test_wrong_subjects_slots_values_and_assistant_text_are_caught_and_the_profile_stays(tmp_path, embedder, plain):
    model = bad_model("unused")
    with Memory(tmp_path / "llm", embedder=embedder, llm=model) as memory:
        for n, (when, role, text) in enumerate(LIFE):
            memory.add("maya", [{"id": f"m{n}", "role": role, "text": text, "timestamp": when}], session_id=f"s{n}")
        counts = memory.consolidate("maya")
        # the profile's slots are the rules' ones: Porto did not become her home, Luna not her partner
        assert slots(memory, "2024-12-01") == slots(plain, "2024-12-01")
        assert slots(memory, "2024-12-01")["home"] == "Lisbon"
        found = {s.text for s in memory.profile("maya")}
        assert {"Maya lives in Porto.", "Maya's partner is Luna.", "Maya works as a vegan.",
                "Maya is married to Tom.", "Carlos is Maya's brother.",
                "Maya moved to Porto last week."}.isdisjoint(found)
        assert "Ines moved to Porto in late February 2024." in found  # a true statement about the sister stays
        assert {s.subject for s in memory.profile("maya") if s.text.startswith("Ines")} == {"Ines"}
        ruled = {s.text for s in plain.profile("maya") if s.kind == "statement"}
        assert ruled and ruled <= found  # the rules' statements are all kept
        assert counts["rejected: not said of the speaker"] == 2  # her sister's move, twice
        assert counts["rejected: slot not stated by the speaker"] == 2  # Luna, vegan
        assert counts["rejected: unsupported value"] == 1  # Tom
        assert counts["rejected: subject not in episode"] == 1  # Carlos
        assert counts["rejected: slot read by the rules"] == 1
        assert memory.llm.rejected["slot not stated by the speaker"] == 2
        # the assistant's turn is never sent to the model, and gives no statement by any path
        assert not any("Nova" in str(m.content) for prompt in model.prompts for m in prompt)
        assert counts["llm_calls"] == 4  # the four user turns
        assert not any("Nova" in s.text or "job" in s.text for s in memory.profile("maya"))


def test_a_statement_with_one_bad_field_is_dropped_alone(tmp_path, embedder):
    reply = json.dumps({"statements": [
        {"text": "Maya lives in Lisbon.", "category": "location", "slot": "house", "value": "Lisbon"},
        {"text": "Maya works at Acme as a nurse.", "category": "work/education"}]})
    with Memory(tmp_path / "m", embedder=embedder, llm=scripted(reply)) as memory:
        memory.add("maya", [{"role": "Maya", "text": LIFE[0][2], "timestamp": LIFE[0][0]}])
        counts = memory.consolidate("maya")
        assert counts["rejected: invalid field"] == 1 and counts.get("fallbacks", 0) == 0
        assert counts["candidates"] == 4  # the rules' statements (home, employer, job) and the model's good one


def test_a_slot_the_speaker_states_is_taken_from_the_model(tmp_path, embedder):
    reply = json.dumps({"statements": [{"text": "I settled on Braga as my home.", "category": "location",
                                        "slot": "home", "value": "Braga"}]})
    with Memory(tmp_path / "m", embedder=embedder, llm=scripted(reply)) as memory:
        memory.add("maya", [{"role": "Maya", "text": "We finally settled on Braga as our home this spring!",
                             "timestamp": "2024-05-01"}])
        counts = memory.consolidate("maya")
        assert sum(v for k, v in counts.items() if k.startswith("rejected")) == 0
        assert slots(memory, "2024-06-01") == {"home": "Braga"}
        held = {s.text: s.slot for s in memory.profile("maya") if s.kind == "statement"}
        # the rules' text
        assert held == {"Maya and family finally settled on Braga as Maya's home this spring.": "home"}


def test_a_first_person_statement_is_rewritten_to_stand_alone():
    from datetime import datetime, timezone

    from memagent.extraction_llm import checked
    from memagent.types import Episode

    when = datetime(2024, 5, 1, tzinfo=timezone.utc)
    episode = Episode("e", "u", "s", "Maya", "I adopted a parrot called Kiwi.", when, when)
    found = checked(lambda reason: None, [{"text": "I adopted my parrot Kiwi.", "category": "possession"}],
                    episode, "Maya", [])
    assert [c.text for c in found] == ["Maya adopted Maya's parrot Kiwi."]


@pytest.mark.parametrize("reply, reason", [
    ("Maya's sister is called Beatriz and lives in Madrid.", "unsupported answer"),
    ("Not mentioned in memory.", "abstained despite evidence"),
])
def test_an_unsupported_answer_or_an_abstention_despite_evidence_gives_way_to_the_rules(
        tmp_path, embedder, plain, reply, reason, caplog):
    question = "Where did my sister Ines move to?"
    ruled = plain.ask("maya", question, at="2024-12-01")
    assert "Porto" in ruled.text and ruled.path == "rules"
    with Memory(tmp_path / "llm", embedder=embedder, llm=bad_model(reply, route="extraction")) as memory:
        live(memory)
        with caplog.at_level(logging.WARNING, logger="memagent.llm"):
            answer = memory.ask("maya", question, at="2024-12-01")
        assert answer.text == ruled.text and not answer.abstained and answer.path == "rules"
        assert f"overruled: {reason}" in answer.reason
        assert memory.llm.rejected[f"answer: {reason}"] == 1
        assert any(reason in r.getMessage() for r in caplog.records)


def test_an_answer_missing_the_profile_value_gives_way_and_a_supported_one_stands(tmp_path, embedder):
    with Memory(tmp_path / "llm", embedder=embedder, llm=bad_model("Maya lives in Porto.", "extraction")) as memory:
        live(memory)
        answer = memory.ask("maya", "Where do I live?", at="2024-12-01")
        assert answer.text == "Lisbon" and "misses the profile value" in answer.reason
        system, prompt = (str(m.content) for m in memory.llm.model.prompts[-1])
        assert "<profile>" in prompt and 'home: "Lisbon"' in prompt  # the values valid at `at`
    good = bad_model("Ines moved to Porto in late February 2024.", "extraction")
    with Memory(tmp_path / "good", embedder=embedder, llm=good) as memory:
        live(memory)
        answer = memory.ask("maya", "Where did my sister Ines move to?", at="2024-12-01")
        assert answer.text.startswith("Ines moved to Porto") and answer.path == "llm"
        prompt = str(good.prompts[-1][1].content)
        assert "week of 26 February 2024" in prompt and "last week" not in prompt  # dates resolved for the model


def test_a_date_question_keeps_the_date_the_rules_resolved(tmp_path, embedder, plain):
    question = "When did my sister Ines move to Porto?"
    ruled = plain.ask("maya", question, at="2024-12-01")
    assert ruled.text == "the week before 5 March 2024"  # "last week", said on 5 March 2024
    with Memory(tmp_path / "llm", embedder=embedder, llm=bad_model("5 March 2024", "extraction")) as memory:
        live(memory)  # the model gives the message's date for the date of the move
        answer = memory.ask("maya", question, at="2024-12-01")
        assert answer.text == ruled.text and "the rules resolved the date" in answer.reason


def test_a_wrong_route_from_the_model_does_not_beat_a_clear_cue(tmp_path, embedder):
    with Memory(tmp_path / "llm", embedder=embedder, llm=bad_model("Lisbon", route="generalization")) as memory:
        live(memory)
        answer = memory.ask("maya", "When did my sister Ines move to Porto?", at="2024-12-01")
        assert answer.route is Route.EXTRACTION and memory.llm.rejected["route overruled"] == 1


def test_checks_on_text_support_and_slot_statements():
    assert supported("On 1 March 2024 Sam adopted a beagle.", "Yesterday I adopted a beagle.\n1 March 2024", {"Sam"})
    assert not supported("Sam adopted a beagle in 2019.", "Yesterday I adopted a beagle.", {"Sam"})  # a number
    assert not supported("Sam's husband Tom cooks.", "I cook a lot.", {"Sam"})  # a name
    assert speaker_states("job", "Acme", "Last month I started at Acme, finally.")
    assert speaker_states("partner", "Tom", "I got engaged to Tom!")
    assert not speaker_states("partner", "Luna", "I love my cat Luna.")
    assert not speaker_states("home", "Porto", "I told you my sister moved to Porto.")


def test_warnings_are_rate_limited_per_reason(caplog):
    adapter = ChatAdapter(None)
    with caplog.at_level(logging.WARNING, logger="memagent.llm"):
        for _ in range(50):
            adapter.reject("unsupported text")
        adapter.reject("unsupported value")
    assert adapter.rejected == {"unsupported text": 50, "unsupported value": 1}
    assert len(caplog.records) == 2


def test_a_gguf_model_is_named_with_a_prefix_and_fails_clearly_at_construction(tmp_path, embedder):
    import importlib.util

    from memagent.errors import ConfigError
    from memagent.llm_gguf import GGUFChatModel

    if importlib.util.find_spec("xllamacpp") is None:  # without memagent[gguf] the error says to install it
        with pytest.raises(ConfigError, match=r"memagent\[gguf\]"):
            Memory(tmp_path / "m", embedder=embedder, llm="gguf:/nowhere/model.gguf")
        return
    with pytest.raises(ConfigError, match="no GGUF model file"):
        chat_model("gguf:/nowhere/model.gguf")
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="not a GGUF file"):
        Memory(tmp_path / "m", embedder=embedder, llm=f"gguf:{bogus}")
    assert GGUFChatModel(model_path=str(bogus)).n_threads == 1  # one thread unless told otherwise
