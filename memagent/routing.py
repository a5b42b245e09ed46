"""The router: embeds a question, measures it against each route's prototypes, asks the policy.

The prototype questions (``memagent.policies.routing.PROTOTYPES``) are embedded
once per router, on first use, so routing a question costs one embedding of
that question. An optional chat model's choice is one more signal: it adds up
to ``policy.LLM_VOTE`` to its route's score, so it decides where the rules are
unsure and a clear cue still stands; the vote is scaled by how often the model
agreed with the rules where they were sure (``policy.vote_weight``), so a model
that routes everything one way gets no say. A choice that loses is counted as
``route overruled`` on the adapter. When its reply does not validate, the
LLM-free decision stands and ``fallbacks`` counts it.

>>> from memagent.embeddings import default_embedder
>>> Router(default_embedder()).route("Should I visit Porto or Seville?").route.value  # doctest: +SKIP
'generalization'
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from memagent.embeddings import Embedder
from memagent.llm import ChatAdapter
from memagent.policies import routing as policy
from memagent.policies.routing import RouteDecision
from memagent.types import Route

SYSTEM = (
    "You sort questions a user asks their personal assistant, which keeps a memory of the "
    "user's past conversations. Choose one route:\n"
    "- extraction: the answer is an explicit fact stated in past messages "
    "(an event, a name, a place, a date, an amount).\n"
    "- abstraction: the answer must be inferred from many messages: preferences, traits, "
    "habits, opinions, patterns.\n"
    "- generalization: the answer combines personal facts with world knowledge: "
    "recommendations, advice, hypotheticals, likelihoods."
)


class RouteChoice(BaseModel):
    """What the chat model is asked to return."""

    route: Route = Field(description="extraction, abstraction or generalization")


class Router:
    """Routes questions with an embedder and, optionally, a chat model."""

    def __init__(self, embedder: Embedder, llm: ChatAdapter | Any | None = None) -> None:
        self.embedder = embedder
        self.llm = llm if isinstance(llm, ChatAdapter) or llm is None else ChatAdapter(llm)
        self.fallbacks = 0
        self.agreed = self.asked = 0  # the model's choices where the rules were sure
        self._prototypes: dict[Route, np.ndarray] | None = None
        self._lock = threading.Lock()

    def prototype_vectors(self) -> dict[Route, np.ndarray]:
        """Each route's prototype embeddings, computed once in one batch."""
        with self._lock:
            if self._prototypes is None:
                routes = list(policy.PROTOTYPES)
                texts = [q for route in routes for q in policy.PROTOTYPES[route]]
                vectors = np.asarray(self.embedder.embed(texts), dtype=np.float32)
                bounds = np.cumsum([0] + [len(policy.PROTOTYPES[r]) for r in routes])
                self._prototypes = {r: vectors[bounds[i]:bounds[i + 1]] for i, r in enumerate(routes)}
            return self._prototypes

    def similarities(self, question: str, vector: np.ndarray | None = None) -> dict[Route, float]:
        """The question's best cosine similarity with each route's prototypes.

        ``vector`` is the question's embedding when the caller has it already."""
        prototypes = self.prototype_vectors()
        if vector is None:
            vector = np.asarray(self.embedder.embed([question]), dtype=np.float32)[0]
        return {route: float(np.max(rows @ vector)) for route, rows in prototypes.items()}

    def route(self, question: str, vector: np.ndarray | None = None) -> RouteDecision:
        """The route for ``question``: the rules' scores with the chat model's vote added."""
        decision = policy.classify(question, self.similarities(question, vector))
        if self.llm is None or not self.llm.enabled:
            return decision
        choice = self.llm.structured(RouteChoice, SYSTEM, f"Question: {question}")
        if choice is None:
            self.fallbacks += 1
            return decision
        with self._lock:
            if policy.margin(decision) >= policy.LLM_VOTE:
                self.asked += 1
                self.agreed += int(choice.route is decision.route)
            weight = policy.vote_weight(self.agreed, self.asked)
        voted = policy.with_vote(decision, choice.route, weight)
        if voted.route is not choice.route:
            self.llm.reject("route overruled")
        return voted
