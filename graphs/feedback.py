"""The feedback workflow: load -> rate -> learn -> write; then the correction, if any.

load finds the answer's trace (of the given user only); rate adds the rating to
the feedback of the memories the answer used, and keeps it with the rated
question's vector and route, so that a bad rating demotes them for questions
like that one only; when a correction is given, it promotes the episodes
nearest to the question and its correction, for such questions; learn moves
the user's signal and route weights a step towards what worked
(``policies.feedback``); write stores usage, weights and ratings.
``Memory.feedback`` runs it, then stores the correction as a pinned episode,
consolidates, and calls ``promote_correction``: no graph runs another graph.
Rating an answer again replaces its earlier rating: each memory's feedback
moves by the difference, and the weights learn only once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

import numpy as np
from langgraph.graph import END, START, StateGraph

from memagent.deps import Deps
from memagent.errors import TraceNotFoundError
from memagent.policies import feedback as policy
from memagent.records import EvidenceKind, Kind, Rating, Trace, Usage
from memagent.tiers.usage import UserUsage

RATED_KINDS = (EvidenceKind.EPISODE, EvidenceKind.STATEMENT, EvidenceKind.RELATION)


class FeedbackState(TypedDict, total=False):
    trace_id: str
    user_id: str | None
    rating: float
    correction: str | None
    now: datetime
    trace: Trace
    changed: dict[str, Usage]
    vector: np.ndarray
    ratings: list[Rating]
    supports: list[str]
    weights: dict[str, float]
    previous: dict[str, float]


def find_trace(deps: Deps, trace_id: str, user_id: str | None) -> Trace:
    """The trace of an answer: of ``user_id`` only when given (else of whichever user has it)."""
    users = [user_id] if user_id is not None else deps.backend.users()
    for user in users:
        found = deps.backend.get(Kind.TRACE, user, [trace_id])
        if found:
            return found[0]
    raise TraceNotFoundError(trace_id)


def build_feedback_graph(deps: Deps) -> Any:
    """Compile the feedback graph over a memory's dependencies."""
    settings, tiers = deps.config.feedback, deps.tiers

    def load(state: FeedbackState) -> FeedbackState:
        return {"trace": find_trace(deps, state["trace_id"], state.get("user_id"))}

    def rate(state: FeedbackState) -> FeedbackState:
        trace, now, delta = state["trace"], state["now"], state["rating"]
        usage = tiers.usage(trace.user_id)
        prefix = f"{trace.id}\x00"
        previous = {r.item_id: r.delta for r in usage.ratings if r.id.startswith(prefix)}
        evidence = [e for e in trace.evidence if e.kind in RATED_KINDS]
        used = [(e.kind.value, e.id) for e in evidence if e.used] or [(e.kind.value, e.id) for e in evidence[:1]]
        changed = _rate(usage, used, trace.route, delta, now, previous)
        ratings = [_rating(trace, i, delta, now) for _, i in used]
        correction = state.get("correction")
        texts = [trace.question] + ([f"{trace.question} {correction}"] if correction and delta < 0 else [])
        vectors = deps.embedder.embed(texts)
        agree: list[str] = []
        if len(texts) > 1:  # the episodes that agree with the correction gain, for such questions
            rated = {i for _, i in used}
            nearest = deps.episodes.nearest(trace.user_id, vectors[1], 3 + len(rated))
            episodes = deps.episodes.get(trace.user_id, [i for i, _ in nearest if i not in rated])
            agree = [e.id for e in episodes if not e.metadata.get("correction_of")][:3]
            changed.update(_rate(usage, [("episode", i) for i in agree], trace.route, -delta, now, previous))
            ratings += [_rating(trace, i, -delta, now) for i in agree]
        return {"changed": changed, "supports": agree, "ratings": ratings, "vector": vectors[0], "previous": previous}

    def learn(state: FeedbackState) -> FeedbackState:
        if state["previous"]:  # this answer was rated before: the weights learnt from it then
            return {"weights": {}}
        trace = state["trace"]
        keys = policy.weight_keys(trace.route, [e.signals for e in trace.evidence
                                                if e.kind is EvidenceKind.EPISODE and e.used])
        usage = tiers.usage(trace.user_id)
        learned = policy.learn({k: usage.weight(k) for k in keys}, state["rating"], settings.learning_rate,
                               settings.min_weight, settings.max_weight)
        usage.weights.update(learned)
        return {"weights": learned}

    def write(state: FeedbackState) -> FeedbackState:
        trace, now = state["trace"], state["now"]
        ratings = list({r.id: r for r in state["ratings"]}.values())  # one per memory and answer
        changed = dict(state["changed"])
        rated = {r.item_id for r in ratings}
        dropped = [("episode", i) for i in state["previous"] if i not in rated]
        if dropped:  # rated by an earlier rating of this answer, not by this one: undo, keep a zero row
            changed.update(_rate(tiers.usage(trace.user_id), dropped, trace.route, 0.0, now, state["previous"]))
            ratings += [_rating(trace, i, 0.0, now) for _, i in dropped]
        tiers.write_usage(changed.values())
        tiers.write_weights(trace.user_id, state["weights"])
        tiers.write_ratings(trace.user_id, ratings, state["vector"])
        tiers.usage(trace.user_id).add_ratings(ratings, state["vector"])
        return {}

    graph = StateGraph(FeedbackState).add_sequence([("load", load), ("rate", rate), ("learn", learn), ("write", write)])
    graph.add_edge(START, "load")
    graph.add_edge("write", END)
    return graph.compile(name="memagent.feedback")


def promote_correction(deps: Deps, trace: Trace, episode_id: str, vector: np.ndarray, now: datetime,
                       previous: dict[str, float]) -> None:
    """After a correction was stored (and consolidated): pin it and rate it up for such questions."""
    usage = deps.tiers.usage(trace.user_id)
    noted = usage.note(episode_id, "episode", now, deps.config.feedback.correction_importance, pinned=True)
    promoted = _rate(usage, [("episode", episode_id)], trace.route, 1.0, now, previous)
    deps.tiers.write_usage({noted.id: noted, **promoted}.values())
    rating = _rating(trace, episode_id, 1.0, now)
    deps.tiers.write_ratings(trace.user_id, [rating], vector)
    usage.add_ratings([rating], vector)


def _rate(usage: UserUsage, items: list[tuple[str, str]], route: str, delta: float, now: datetime,
          previous: dict[str, float]) -> dict[str, Usage]:
    """Move each memory's feedback to ``delta`` for this answer: by ``delta`` less what an
    earlier rating of the same answer already gave it."""
    changed: dict[str, Usage] = {}
    for kind, item in dict.fromkeys(items):
        step = delta - previous.get(item, 0.0)
        if step:
            changed.update({u.id: u for u in usage.rate([item], {item: kind}, route, step, now)})
    return changed


def _rating(trace: Trace, item_id: str, delta: float, now: datetime) -> Rating:
    """One memory's rating from one answer: a retried rating replaces it (same id)."""
    return Rating(f"{trace.id}\x00{item_id}", trace.user_id, item_id, trace.route, delta, now)
