"""The local GGUF chat model, with a real model file: set MEMAGENT_TEST_GGUF=/path/model.gguf.

No model ships with memagent and none is downloaded, so CI skips this file; run it with a
small instruction-tuned GGUF model and ``pip install "memagent[gguf]"``.
"""

from __future__ import annotations

import os

import pytest
from pydantic import BaseModel

from memagent import Memory
from memagent.llm import chat_model

MODEL = os.environ.get("MEMAGENT_TEST_GGUF")
pytestmark = pytest.mark.skipif(not MODEL or not os.path.isfile(MODEL),
                                reason="set MEMAGENT_TEST_GGUF to a GGUF model file to run")


class City(BaseModel):
    city: str


@pytest.fixture(scope="module")
def model():
    pytest.importorskip("xllamacpp")
    return chat_model(f"gguf:{MODEL}")


def test_text_and_grammar_constrained_structured_output(model):
    reply = model.invoke("Reply with one word: the capital of France.")
    assert "paris" in str(reply.content).lower()
    city = model.with_structured_output(City).invoke("Which city is the capital of Italy? Reply in JSON.")
    assert isinstance(city, City) and city.city.strip()


def test_a_memory_runs_on_the_local_model_and_its_checks(tmp_path, embedder, model):
    with Memory(tmp_path / "m", embedder=embedder, llm=model) as memory:
        memory.add("maya", [{"role": "Maya", "text": "I live in Lisbon and I adopted a cat called Luna yesterday.",
                             "timestamp": "2024-03-02"},
                            {"role": "assistant", "text": "Lovely! I'm your assistant, Nova."}])
        counts = memory.consolidate("maya")
        assert counts["llm_calls"] == 1  # the user turn only
        assert {s.slot: s.value for s in memory.profile("maya") if s.slot}.get("home") == "Lisbon"
        answer = memory.ask("maya", "What is my cat called?", at="2024-04-01")
        assert "Luna" in answer.text and answer.path in ("llm", "rules") and answer.llm_calls == 2
