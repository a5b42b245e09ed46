"""The routing policy and the router, on the project's own labelled questions."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from fakes import scripted
from memagent.llm import ChatAdapter
from memagent.policies import routing
from memagent.routing import Router
from memagent.types import Route

LABELLED = Path(__file__).parent / "data" / "routing_questions.jsonl"


def _load() -> list[dict]:
    with LABELLED.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


@pytest.fixture(scope="module")
def labelled() -> list[dict]:
    return _load()


@pytest.fixture(scope="module")
def router(embedder) -> Router:
    return Router(embedder)


def test_labelled_set_is_large_balanced_and_valid(labelled):
    counts = Counter(row["route"] for row in labelled)
    assert len(labelled) >= 180
    assert set(counts) == {r.value for r in Route}
    assert min(counts.values()) >= 0.25 * len(labelled), counts
    assert all(isinstance(row["temporal"], bool) for row in labelled)
    assert sum(row["temporal"] for row in labelled) >= 20
    assert len({_normal(row["question"]) for row in labelled}) == len(labelled)


def test_prototypes_do_not_overlap_the_labelled_set(labelled):
    prototypes = {_normal(q) for questions in routing.PROTOTYPES.values() for q in questions}
    assert set(routing.PROTOTYPES) == set(Route)
    assert not prototypes & {_normal(row["question"]) for row in labelled}


def test_router_accuracy_on_labelled_set(router, labelled):
    hits, totals, misses = Counter(), Counter(), []
    for row in labelled:
        decision = router.route(row["question"])
        totals[row["route"]] += 1
        if decision.route.value == row["route"]:
            hits[row["route"]] += 1
        else:
            misses.append(f"{row['question']!r}: {decision.route.value} ({decision.reason})")
    accuracy = sum(hits.values()) / len(labelled)
    recall = {route: f"{hits[route]}/{totals[route]}" for route in totals}
    assert accuracy >= 0.90, f"accuracy {accuracy:.3f}, recall {recall}, misses {misses}"


def test_temporal_flag_on_labelled_set(labelled):
    wrong = [row["question"] for row in labelled
             if routing.classify(row["question"]).temporal != row["temporal"]]
    assert len(wrong) <= 0.05 * len(labelled), wrong


@pytest.mark.parametrize(("question", "route", "temporal"), [
    ("When did I adopt Rex?", Route.EXTRACTION, True),
    ("Where did we go last May?", Route.EXTRACTION, True),
    ("Who painted the mural in my kitchen?", Route.EXTRACTION, False),
    ("What kind of books do I like?", Route.ABSTRACTION, False),
    ("How does John usually spend weekends?", Route.ABSTRACTION, False),
    ("What is Melanie's favourite season?", Route.ABSTRACTION, False),
    ("Which city should I visit next?", Route.GENERALIZATION, False),
    ("Would she likely be considered religious?", Route.GENERALIZATION, False),
    ("Can you recommend a podcast for my run tomorrow?", Route.GENERALIZATION, True),
])
def test_policy_alone_on_clear_cases(question, route, temporal):
    decision = routing.classify(question)
    assert (decision.route, decision.temporal) == (route, temporal), decision
    assert decision.reason not in ("prototypes", "default")


def test_policy_without_cues_defaults_to_extraction_or_follows_prototypes():
    assert routing.classify("Tell me about Rex.").route is Route.EXTRACTION
    assert routing.classify("Tell me about Rex.").reason == "default"
    sims = {Route.EXTRACTION: 0.2, Route.ABSTRACTION: 0.7, Route.GENERALIZATION: 0.3}
    decision = routing.classify("Tell me about Rex.", sims)
    assert (decision.route, decision.reason) == (Route.ABSTRACTION, "prototypes")


def test_policy_is_not_fooled_by_a_past_recommendation():
    decision = routing.classify("What restaurant did you recommend to me?")
    assert decision.route is Route.EXTRACTION


class CountingEmbedder:
    """Wraps the real embedder and counts the texts it embeds."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.texts = inner, inner.name, 0

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts):
        self.texts += len(texts)
        return self.inner.embed(texts)


def test_routing_costs_one_embedding_per_question(embedder):
    counting = CountingEmbedder(embedder)
    router = Router(counting)
    router.route("When did I adopt Rex?")
    prototypes = sum(len(q) for q in routing.PROTOTYPES.values())
    assert counting.texts == prototypes + 1
    router.route("What kind of books do I like?")
    router.route("Which city should I visit next?")
    assert counting.texts == prototypes + 3


def router_with(embedder, respond) -> tuple[Router, ChatAdapter]:
    adapter = ChatAdapter(scripted(lambda messages: json.dumps({"route": respond(str(messages[-1].content))})))
    return Router(embedder, adapter), adapter


SURE = ["When did I adopt Rex?", "Where did I park the car yesterday?", "How many cousins does Maya have?",
        "When did Ravi start his company?", "What did I order at the sushi place?", "Who did Alex meet in Rome?"]


def test_the_llm_route_is_one_vote_earned_by_agreeing_where_the_rules_are_sure(embedder):
    unsure = "Tell me about my trip to Lisbon."  # the rules' best two routes are close
    assert Router(embedder).route(unsure).route is Route.EXTRACTION
    assert all(routing.margin(Router(embedder).route(q)) >= routing.LLM_VOTE for q in SURE)
    # a model that agrees with the sure rules earns a vote, and its vote settles the unsure question
    router, adapter = router_with(embedder, lambda q: "generalization" if "Lisbon" in q else "extraction")
    assert router.route(unsure).route is Route.EXTRACTION  # no say before it has agreed with anything
    for question in SURE:
        assert router.route(question).route is Route.EXTRACTION
    decision = router.route(unsure)
    assert (decision.route, decision.reason) == (Route.GENERALIZATION, "llm")
    assert (router.agreed, router.asked) == (len(SURE), len(SURE))
    # a model that routes everything one way never gets a say, and each loss is counted
    router, adapter = router_with(embedder, lambda q: "generalization")
    for question in SURE:
        assert router.route(question).route is Route.EXTRACTION
    assert router.route(unsure).route is Route.EXTRACTION and router.agreed == 0
    assert adapter.rejected["route overruled"] == len(SURE) + 1 and router.fallbacks == 0


@pytest.mark.parametrize("reply", ["I think it is an extraction.", '{"route": "gossip"}', "{}"])
def test_malformed_llm_reply_falls_back(embedder, reply):
    router = Router(embedder, ChatAdapter(scripted(reply)))
    decision = router.route("When did I adopt Rex?")
    assert decision.route is Route.EXTRACTION and decision.reason != "llm"
    assert router.fallbacks == 1
    router.route("What kind of books do I like?")
    assert router.fallbacks == 2


def test_disabled_llm_is_the_llm_free_path(embedder):
    router = Router(embedder, ChatAdapter(None))
    assert router.route("Should I learn the cello?").route is Route.GENERALIZATION
    assert router.fallbacks == 0
