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

The writes are one commit per kind, so a crash may fall between them, and the
caller retries the same rating. A retry counts once: a memory's feedback is
the sum of its ratings (this answer's new ones in place of its stored ones), not
an increment of the stored value; the weights are written with a marker of the
answer in the same commit, before the ratings, so that a retry finds either
the marker or the ratings and learns nothing twice (the marker is deleted once
the ratings are stored); and the episodes that agree with a correction are
chosen among episodes that are not corrections, so storing the correction
does not change them.
"""

from __future__ import annotations

from dataclasses import replace
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
    kinds: dict[str, str]
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


def learned_marker(trace_id: str) -> str:
    """The weight key that says the weights learnt from an answer (written with them, dropped after the ratings)."""
    return f"learned:{trace_id}"


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
        kinds = {i: k for k, i in reversed(used)}
        ratings = [_rating(trace, i, delta, now) for _, i in used]
        correction = state.get("correction")
        texts = [trace.question] + ([f"{trace.question} {correction}"] if correction and delta < 0 else [])
        vectors = deps.embedder.embed(texts)
        agree: list[str] = []
        if len(texts) > 1:  # the episodes that agree with the correction gain, for such questions
            rated = {i for _, i in used}
            plain = deps.episodes.matching(trace.user_id, {"correction_of": {"$exists": False}})
            nearest = deps.episodes.nearest(trace.user_id, vectors[1], 3, allowed=frozenset(plain) - rated)
            agree = [i for i, _ in nearest]
            kinds.update((i, "episode") for i in agree)
            ratings += [_rating(trace, i, -delta, now) for i in agree]
        return {"kinds": kinds, "supports": agree, "ratings": ratings, "vector": vectors[0], "previous": previous}

    def learn(state: FeedbackState) -> FeedbackState:
        trace = state["trace"]
        usage = tiers.usage(trace.user_id)
        if state["previous"] or learned_marker(trace.id) in usage.weights:  # learnt from this answer before
            return {"weights": {}}
        keys = policy.weight_keys(trace.route, [e.signals for e in trace.evidence
                                                if e.kind is EvidenceKind.EPISODE and e.used])
        learned = policy.learn({k: usage.weight(k) for k in keys}, state["rating"], settings.learning_rate,
                               settings.min_weight, settings.max_weight)
        return {"weights": learned}

    def write(state: FeedbackState) -> FeedbackState:
        trace, now, previous = state["trace"], state["now"], state["previous"]
        usage = tiers.usage(trace.user_id)
        ratings = list({r.id: r for r in state["ratings"]}.values())  # one per memory and answer
        rated = {r.item_id for r in ratings}
        kinds = dict(state["kinds"])
        # rated by an earlier rating of this answer, not by this one: undo, keep a zero row
        dropped = [i for i in previous if i not in rated]
        kinds.update((i, "episode") for i in dropped if i not in kinds)
        ratings += [_rating(trace, i, 0.0, now) for i in dropped]
        if state["weights"]:  # with the marker, in one commit: a retry learns nothing twice
            marked = {**state["weights"], learned_marker(trace.id): state["rating"]}
            tiers.write_weights(trace.user_id, marked)
            usage.weights.update(marked)
        tiers.write_usage(_settle(usage, ratings, kinds, now, previous).values())
        tiers.write_ratings(trace.user_id, ratings, state["vector"])
        usage.add_ratings(ratings, state["vector"])
        _drop_marker(deps, usage, trace)
        return {}

    graph = StateGraph(FeedbackState).add_sequence([("load", load), ("rate", rate), ("learn", learn), ("write", write)])
    graph.add_edge(START, "load")
    graph.add_edge("write", END)
    return graph.compile(name="memagent.feedback")


def _drop_marker(deps: Deps, usage: UserUsage, trace: Trace) -> None:
    """The ratings of an answer are stored: they say from now on that its weights were learnt."""
    key = learned_marker(trace.id)
    if key in usage.weights:
        deps.tiers.delete_weights(trace.user_id, [key])
        usage.weights.pop(key, None)


def promote_correction(deps: Deps, trace: Trace, episode_id: str, vector: np.ndarray, now: datetime,
                       previous: dict[str, float]) -> None:
    """After a correction was stored (and consolidated): pin it and rate it up for such questions."""
    usage = deps.tiers.usage(trace.user_id)
    noted = usage.note(episode_id, "episode", now, deps.config.feedback.correction_importance, pinned=True)
    rating = _rating(trace, episode_id, 1.0, now)
    promoted = _settle(usage, [rating], {episode_id: "episode"}, now, previous)
    deps.tiers.write_usage({noted.id: noted, **promoted}.values())
    deps.tiers.write_ratings(trace.user_id, [rating], vector)
    usage.add_ratings([rating], vector)


def _settle(usage: UserUsage, ratings: list[Rating], kinds: dict[str, str], now: datetime,
            previous: dict[str, float]) -> dict[str, Usage]:
    """The usage of each memory rated by ``ratings`` (one answer's), with its feedback the sum of its
    ratings, these in place of the stored ones of the same ids: overall and per route.

    A function of the ratings, not a step added to the stored value, so that a retry after a
    crash between the usage and the ratings writes counts once. A memory rated higher than
    before by this answer is reinforced ``now``.
    """
    fresh = {r.id: r for r in ratings}
    mine = {r.item_id for r in ratings}
    totals: dict[str, dict[str, float]] = {i: {} for i in mine}
    for r in [*(r for r in usage.ratings if r.id not in fresh and r.item_id in mine), *fresh.values()]:
        totals[r.item_id][r.route] = totals[r.item_id].get(r.route, 0.0) + r.delta
    changed: dict[str, Usage] = {}
    for r in fresh.values():
        old = usage.records.get(r.item_id) or Usage(r.item_id, usage.user_id, kinds.get(r.item_id, "episode"), now)
        step = r.delta - previous.get(r.item_id, 0.0)
        routes = totals[r.item_id]
        changed[r.item_id] = usage.put(replace(
            old, feedback=sum(routes.values()), route_feedback={**old.route_feedback, **routes},
            last_reinforced=now if step > 0 else old.last_reinforced))
    return changed


def _rating(trace: Trace, item_id: str, delta: float, now: datetime) -> Rating:
    """One memory's rating from one answer: a retried rating replaces it (same id)."""
    return Rating(f"{trace.id}\x00{item_id}", trace.user_id, item_id, trace.route, delta, now)
