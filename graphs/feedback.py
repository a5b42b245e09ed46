"""The feedback workflow: load -> rate -> learn -> correct -> write.

load finds the answer's trace; rate adds the rating to the feedback of the
memories the answer used, and keeps it with the rated question's vector and
route, so that a bad rating demotes them for questions like that one only; when
a correction is given, it promotes the memories that agree with it, for such
questions; learn moves the user's signal and route weights a
step towards what worked; correct stores the correction as a pinned,
high-importance episode and consolidates at once, so profile and graph are
revised now (a contradicted statement is closed); write stores usage and weights.
``Memory.feedback`` runs it. Rating an answer again replaces its earlier rating:
each memory's feedback moves by the difference, and the weights learn only once.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TypedDict

import numpy as np
from langgraph.graph import END, START, StateGraph

from memagent.errors import NotFoundError
from memagent.store.derived import RATINGS, TRACES, USAGE, WEIGHTS
from memagent.store.lance import sql_str
from memagent.tiers.usage import Rating, Usage


class TraceNotFoundError(NotFoundError):
    """No answer with that trace id."""

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id
        super().__init__(f"no answer with trace id {trace_id!r}")


class FeedbackState(TypedDict, total=False):
    trace_id: str
    rating: float
    correction: str | None
    role: str
    now: datetime
    trace: dict[str, Any]
    changed: dict[str, Usage]
    vector: np.ndarray
    ratings: list[Rating]
    supports: list[str]
    weights: dict[str, float]
    correction_id: str | None
    previous: dict[str, float]


def build_feedback_graph(memory: Any) -> Any:
    """Compile the feedback graph over a ``Memory``."""
    settings = memory.config.feedback

    def load(state: FeedbackState) -> FeedbackState:
        rows = (memory.derived.tables[TRACES].search().where(f"id = {sql_str(state['trace_id'])}")
                .limit(1).to_list())
        if not rows:
            raise TraceNotFoundError(state["trace_id"])
        return {"trace": rows[0]}

    def rate(state: FeedbackState) -> FeedbackState:
        trace, now, delta = state["trace"], state["now"], state["rating"]
        user_id, route = trace["user_id"], trace["route"]
        usage = memory.tiers.usage(user_id)
        prefix = f"{state['trace_id']}\x00"
        previous = {r.item_id: r.delta for r in usage.ratings if r.id.startswith(prefix)}
        evidence = [e for e in json.loads(trace["evidence"]) if e[0] in ("episode", "statement", "relation")]
        used = [(e[0], e[1]) for e in evidence if len(e) > 3 and e[3]] or [(e[0], e[1]) for e in evidence[:1]]
        changed = _rate(usage, used, route, delta, now, previous)
        ratings = [_rating(state["trace_id"], i, route, delta, now) for _, i in used]
        vector = memory.embedder.embed([trace["question"]])[0]
        agree: list[str] = []
        if state.get("correction") and delta < 0:
            support = memory.search(user_id, f"{trace['question']} {state['correction']}", k=3, now=now,
                                    include_archived=True)
            rated = {i for _, i in used}
            agree = [h.episode.id for h in support if h.episode.id not in rated
                     and not h.episode.metadata.get("correction_of")]
            changed.update(_rate(usage, [("episode", i) for i in agree], route, -delta, now, previous))
            ratings += [_rating(state["trace_id"], i, route, -delta, now) for i in agree]
        return {"changed": changed, "supports": agree, "ratings": ratings, "vector": vector, "previous": previous}

    def learn(state: FeedbackState) -> FeedbackState:
        if state["previous"]:  # this answer was rated before: the weights learnt from it then
            return {"weights": {}}
        trace, step = state["trace"], settings.learning_rate * (1 if state["rating"] > 0 else -1)
        usage = memory.tiers.usage(trace["user_id"])
        evidence = [e for e in json.loads(trace["evidence"]) if e[0] == "episode" and len(e) > 3 and e[3]]
        keys = {f"signal:{s}" for e in evidence for s in (e[2] if len(e) > 2 else [])} | {f"route:{trace['route']}"}
        for key in keys:
            usage.weights[key] = min(settings.max_weight, max(settings.min_weight, usage.weight(key) * (1 + step)))
        return {"weights": {k: usage.weights[k] for k in keys}}

    def correct(state: FeedbackState) -> FeedbackState:
        text = (state.get("correction") or "").strip()
        if not text:
            return {"correction_id": None}
        trace = state["trace"]
        ids = memory.add(trace["user_id"], [{
            "id": f"correction:{state['trace_id']}", "role": state.get("role") or "user", "text": text,
            "timestamp": state["now"], "metadata": {"correction_of": state["trace_id"], "pinned": True,
                                                     "question": trace["question"],
                                                     "supports": state.get("supports", [])}}],
            session_id="corrections", now=state["now"])
        memory.consolidate(trace["user_id"])
        usage = memory.tiers.usage(trace["user_id"])
        usage.note(ids[0], "episode", state["now"], settings.correction_importance, pinned=True)
        promoted = _rate(usage, [("episode", ids[0])], trace["route"], 1.0, state["now"], state["previous"])
        return {"correction_id": ids[0], "changed": {**state["changed"], **promoted},
                "ratings": [*state["ratings"], _rating(state["trace_id"], ids[0], trace["route"], 1.0, state["now"])]}

    def write(state: FeedbackState) -> FeedbackState:
        user_id, route, now = state["trace"]["user_id"], state["trace"]["route"], state["now"]
        ratings = list({r.id: r for r in state["ratings"]}.values())  # one per memory and answer
        changed = dict(state["changed"])
        rated = {r.item_id for r in ratings}
        dropped = [("episode", i) for i in state["previous"] if i not in rated]
        if dropped:  # rated by an earlier rating of this answer, not by this one: undo, keep a zero row
            changed.update(_rate(memory.tiers.usage(user_id), dropped, route, 0.0, now, state["previous"]))
            ratings += [_rating(state["trace_id"], i, route, 0.0, now) for _, i in dropped]
        memory.derived.upsert(USAGE, [u.row(user_id) for u in changed.values()])
        memory.derived.upsert(WEIGHTS, [{"id": f"{user_id}\x00{k}", "user_id": user_id, "key": k, "value": v}
                                        for k, v in state["weights"].items()])
        memory.derived.upsert(RATINGS, [r.row(user_id, state["vector"]) for r in ratings])
        memory.tiers.usage(user_id).add_ratings(ratings, state["vector"])
        return {}

    graph = StateGraph(FeedbackState).add_sequence([
        ("load", load), ("rate", rate), ("learn", learn), ("correct", correct), ("write", write)])
    graph.add_edge(START, "load")
    graph.add_edge("write", END)
    return graph.compile()


def _rate(usage: Any, items: list[tuple[str, str]], route: str, delta: float, now: datetime,
          previous: dict[str, float]) -> dict[str, Usage]:
    """Move each memory's feedback to ``delta`` for this answer: by ``delta`` less what an
    earlier rating of the same answer already gave it."""
    changed: dict[str, Usage] = {}
    for kind, item in dict.fromkeys(items):
        step = delta - previous.get(item, 0.0)
        if step:
            changed.update({u.item_id: u for u in usage.rate([item], {item: kind}, route, step, now)})
    return changed


def _rating(trace_id: str, item_id: str, route: str, delta: float, now: datetime) -> Rating:
    """One memory's rating from one answer: a retried rating replaces it (same id)."""
    return Rating(f"{trace_id}\x00{item_id}", item_id, route, delta, now)
