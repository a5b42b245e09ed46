"""The search workflow: plan -> retrieve -> fuse -> expand.

plan reads the time expressions of the question against the reference time;
retrieve asks LanceDB for full-text (BM25) and vector hits of that user, plus
vector hits inside any time range the question names, plus the profile
statements and graph facts nearest to the question, each standing for its
evidence episodes ("fact-key expansion"); fuse merges the scored lists with the
retrieval policy; expand adds the adjacent turns of the best hits.
``Memory.search`` runs it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

import numpy as np

from langgraph.graph import END, START, StateGraph

from memagent.config import RetrievalSettings
from memagent.embeddings import Embedder
from memagent.policies import retrieval as policy
from memagent.store.cache import micros
from memagent.store.lance import LanceStore, time_where
from memagent.tiers.cache import DerivedTiers
from memagent.timeparse import find_time_ranges
from memagent.types import SearchHit, Signal, TimeRange


def _inside(when_us: int | None, bounds: list[tuple[int | None, int | None]]) -> bool:
    """Whether a time (µs since epoch) lies in any half-open ``[start, end)``; None = open."""
    if when_us is None:
        return False
    return any((start is None or when_us >= start) and (end is None or when_us < end) for start, end in bounds)


class SearchState(TypedDict, total=False):
    user_id: str
    query: str
    k: int
    now: datetime
    since: datetime | None
    until: datetime | None
    use_time: bool
    where: str | None
    ranges: list[TimeRange]
    vector: np.ndarray
    found: dict[Signal, list[tuple[str, float]]]
    route: str | None
    include_archived: bool
    hidden: set[str]
    fused: dict[str, policy.Scored]
    hits: list[SearchHit]


def build_search_graph(store: LanceStore, embedder: Embedder, settings: RetrievalSettings,
                       signals: frozenset[Signal] = frozenset(Signal), tiers: DerivedTiers | None = None,
                       fallback_min_similarity: float = 0.3, demote_factor: float = 0.5,
                       similar_question: float = 0.7) -> Any:
    """Compile the search graph; ``signals`` restricts it (e.g. BM25 only, for baselines).

    With ``tiers``, archived memories are skipped unless the best active vector hit is
    less similar than ``fallback_min_similarity`` (then everything is searched), and
    each memory's ratings for questions like this one (same route, cosine similarity
    at least ``similar_question``) scale its score (``demote_factor`` per net bad
    rating, ``2 - demote_factor`` per net good one).
    """
    weights = {Signal.LEXICAL: settings.lexical_weight, Signal.VECTOR: settings.vector_weight,
               Signal.TIME: settings.vector_weight, Signal.FACT: settings.fact_weight}
    use_facts = tiers is not None and Signal.FACT in signals and settings.fact_candidates > 0

    def plan(state: SearchState) -> SearchState:
        use_time = state.get("use_time", True) and Signal.TIME in signals
        ranges = find_time_ranges(state["query"], state["now"]) if use_time else []
        return {"ranges": ranges, "where": time_where(state.get("since"), state.get("until"))}

    def vector_hits(state: SearchState, vector: np.ndarray) -> dict[Signal, list[tuple[str, float]]]:
        user_id, n = state["user_id"], settings.candidates
        since, until = state.get("since"), state.get("until")
        found = {Signal.VECTOR: store.vector(user_id, vector, n, since, until)}
        for r in state["ranges"]:
            start = max(r.start, since) if since else r.start
            end = min(r.end, until) if until else r.end
            found.setdefault(Signal.TIME, []).extend(store.vector(user_id, vector, n, start, end))
        return found

    def retrieve(state: SearchState) -> SearchState:
        # One after the other: on a small CPU, the embedder and LanceDB running side by
        # side slow each other down more than they overlap.
        vector = embedder.embed([state["query"]])[0] if Signal.VECTOR in signals or use_facts else None
        found = vector_hits(state, vector) if Signal.VECTOR in signals else {}
        hidden = hidden_ids(state, found.get(Signal.VECTOR, []))
        if use_facts:
            found[Signal.FACT] = fact_hits(state, vector, hidden)
        if Signal.LEXICAL in signals:
            found[Signal.LEXICAL] = store.lexical(state["user_id"], state["query"], settings.candidates,
                                                  state["where"], settings.lexical_context)
        return {"found": {signal: [(i, v) for i, v in hits if i not in hidden] for signal, hits in found.items()},
                "hidden": hidden, "vector": vector}

    def hidden_ids(state: SearchState, vector_found: list[tuple[str, float]]) -> set[str]:
        """Archived memories to skip: none with include_archived, or when nothing active matches."""
        if tiers is None or state.get("include_archived"):
            return set()
        archived = tiers.usage(state["user_id"]).archived
        if not archived:
            return set()
        best = max((v for i, v in vector_found if i not in archived), default=-1.0)
        return set() if vector_found and best < fallback_min_similarity else set(archived)

    def fact_hits(state: SearchState, vector: np.ndarray, hidden: set[str]) -> list[tuple[str, float]]:
        """Episodes behind the derived items nearest to the question, with the item's similarity."""
        hits = derived_hits(tiers, state["user_id"], vector, settings.fact_candidates, hidden)
        best: dict[str, float] = {}
        for item, sim in hits:
            for episode_id in item.evidence_ids:
                best[episode_id] = max(best.get(episode_id, -1.0), sim)
        if state.get("since") or state.get("until"):
            index = store.user_index(state["user_id"])
            bounds = [(micros(state["since"]) if state.get("since") else None,
                       micros(state["until"]) if state.get("until") else None)]
            best = {i: s for i, s in best.items() if _inside(index.event_time_us(i), bounds)}
        return sorted(best.items(), key=lambda kv: -kv[1])

    def fuse(state: SearchState) -> SearchState:
        learned = tiers.usage(state["user_id"]) if tiers is not None else None
        tuned = {s: w * (learned.weight(f"signal:{s.value}") if learned else 1.0) for s, w in weights.items()}
        fused = policy.fuse(state["found"], tuned)
        if learned is not None and state.get("route") and state.get("vector") is not None:
            rated = learned.rated_like(state["vector"], state["route"], similar_question)
            policy.apply_feedback(fused, rated, demote_factor)
        if state["ranges"]:
            index = store.user_index(state["user_id"])
            bounds = [(micros(r.start), micros(r.end)) for r in state["ranges"]]
            in_range = {i for i in fused if _inside(index.event_time_us(i), bounds)}
            policy.boost_in_time(fused, in_range, settings.time_boost)
        return {"fused": fused}

    def expand(state: SearchState) -> SearchState:
        fused = state["fused"]
        index = store.user_index(state["user_id"])
        if Signal.NEIGHBOUR in signals and settings.neighbour_hits:
            bounds = [(micros(state["since"]) if state.get("since") else None,
                       micros(state["until"]) if state.get("until") else None)]
            hidden = state.get("hidden", set())
            neighbours = {i: [j for j in index.adjacent(i) if _inside(index.event_time_us(j), bounds) and j not in hidden]
                          for i, _ in policy.rank(fused, settings.neighbour_hits)}
            policy.add_neighbours(fused, neighbours, settings.neighbour_decay)
        # a correction the user gave stands for the memories that agree with it
        supports = {i: [j for j in index.episode(i).metadata.get("supports", []) if j in index.row_of]
                    for i, _ in policy.rank(fused, settings.neighbour_hits) if index.episode(i) is not None}
        policy.add_neighbours(fused, {i: js for i, js in supports.items() if js}, 0.9)
        hits = []
        for i, scored in policy.rank(fused, state["k"]):
            episode = index.episode(i)
            if episode is not None:
                hits.append(SearchHit(episode, scored.score, frozenset(scored.signals)))
        return {"hits": hits}

    graph = StateGraph(SearchState).add_sequence([
        ("plan", plan), ("retrieve", retrieve), ("fuse", fuse), ("expand", expand)])
    graph.add_edge(START, "plan")
    graph.add_edge("expand", END)
    return graph.compile()


def derived_hits(tiers: DerivedTiers, user_id: str, vector: np.ndarray, k: int,
                 hidden: set[str] = frozenset()) -> list[tuple[Any, float]]:
    """The ``k`` profile statements and graph relations of a user nearest to ``vector``.

    Session summaries are left out: they point at whole sessions, not at the turn
    that holds an answer. So are ``hidden`` (archived) items.
    """
    profile, graph = tiers.get(user_id)
    items: list[Any] = [s for s in profile.statements if s.kind == "statement" and s.id not in hidden]
    rows = [profile.row_of[s.id] for s in items]
    matrices = [profile.vectors[rows]] if rows else []
    relations = [r for r in graph.relations.values() if r.id in graph.relation_vectors and r.id not in hidden]
    if relations:
        items += relations
        matrices.append(np.vstack([graph.relation_vectors[r.id] for r in relations]))
    if not items:
        return []
    sims = np.vstack(matrices) @ vector.astype(np.float32)
    top = np.argsort(-sims, kind="stable")[:k]
    return [(items[n], float(sims[n])) for n in top]
