"""The search workflow: plan -> retrieve -> fuse -> expand.

plan reads the time expressions of the question against the reference time;
retrieve asks the backend for full-text (BM25) and vector hits of that user, plus
vector hits inside any time range the question names, plus the profile
statements and graph facts nearest to the question, each standing for its
evidence episodes ("fact-key expansion"); fuse merges the scored lists with the
retrieval policy and lifts the hits in a queried time range; expand adds the
adjacent turns of the best hits, then lifts what the speaker the question names
said.
``Memory.search`` runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypedDict

import numpy as np
from langgraph.graph import END, START, StateGraph

from memagent.config import RetrievalSettings
from memagent.deps import Deps
from memagent.policies import retrieval as policy
from memagent.store.cache import micros
from memagent.tiers.cache import DerivedTiers
from memagent.timeparse import find_time_ranges
from memagent.types import SearchHit, Signal, TimeRange


def _inside(when_us: int | None, bounds: Sequence[tuple[int | None, int | None]]) -> bool:
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
    settings: RetrievalSettings
    ranges: list[TimeRange]
    vector: np.ndarray | None  # the query's embedding; given by a caller that has it already
    found: dict[Signal, list[tuple[str, float]]]
    route: str | None
    include_archived: bool
    hidden: frozenset[str]
    allowed: frozenset[str] | None  # only these episodes may be hits (a metadata filter's matches)
    fused: dict[str, policy.Scored]
    hits: list[SearchHit]


def build_search_graph(deps: Deps, signals: frozenset[Signal] = frozenset(Signal)) -> Any:
    """Compile the search graph; ``signals`` restricts it (e.g. BM25 only, for baselines).

    The ranking settings come with each request (``settings``, default: the
    config's). Archived memories are skipped unless nothing active matches
    (``policies.retrieval.hidden_by_archive``); each memory's ratings for
    questions like this one (same route, similar wording) scale its score.
    """
    store, tiers = deps.episodes, deps.tiers
    feedback, forgetting = deps.config.feedback, deps.config.forgetting

    def plan(state: SearchState) -> SearchState:
        use_time = state.get("use_time", True) and Signal.TIME in signals
        ranges = find_time_ranges(state["query"], state["now"]) if use_time else []
        return {"ranges": ranges, "settings": state.get("settings") or deps.config.retrieval}

    def vector_hits(state: SearchState, vector: np.ndarray) -> dict[Signal, list[tuple[str, float]]]:
        user_id, n = state["user_id"], state["settings"].candidates
        since, until, allowed = state.get("since"), state.get("until"), state.get("allowed")
        found = {Signal.VECTOR: store.nearest(user_id, vector, n, since, until, allowed)}
        for r in state["ranges"]:
            start = max(r.start, since) if since else r.start
            end = min(r.end, until) if until else r.end
            found.setdefault(Signal.TIME, []).extend(store.nearest(user_id, vector, n, start, end, allowed))
        return found

    def retrieve(state: SearchState) -> SearchState:
        settings = state["settings"]
        use_facts = Signal.FACT in signals and settings.fact_candidates > 0
        vector = state.get("vector")
        if vector is None and (Signal.VECTOR in signals or use_facts):
            vector = deps.embedder.embed([state["query"]])[0]
        # (vector is not None whenever VECTOR or FACT hits are wanted: the checks are for mypy)
        found = vector_hits(state, vector) if Signal.VECTOR in signals and vector is not None else {}
        hidden = frozenset() if state.get("include_archived") else policy.hidden_by_archive(
            tiers.usage(state["user_id"]).archived, found.get(Signal.VECTOR, []), forgetting.fallback_min_similarity)
        if use_facts and vector is not None:
            found[Signal.FACT] = fact_hits(state, vector, hidden)
        if Signal.LEXICAL in signals:
            found[Signal.LEXICAL] = store.lexical(state["user_id"], state["query"], settings.candidates,
                                                  state.get("since"), state.get("until"), settings.lexical_context,
                                                  state.get("allowed"))
        allowed = state.get("allowed")
        if allowed is not None:  # derived facts point at episodes the filter may not allow
            hidden = hidden | frozenset(i for hits in found.values() for i, _ in hits if i not in allowed)
        return {"found": {signal: [(i, v) for i, v in hits if i not in hidden] for signal, hits in found.items()},
                "hidden": hidden, "vector": vector}

    def fact_hits(state: SearchState, vector: np.ndarray, hidden: frozenset[str]) -> list[tuple[str, float]]:
        """Episodes behind the derived items nearest to the question, with the item's similarity."""
        hits = derived_hits(tiers, state["user_id"], vector, state["settings"].fact_candidates, hidden)
        best: dict[str, float] = {}
        for item, sim in hits:
            for episode_id in item.evidence_ids:
                best[episode_id] = max(best.get(episode_id, -1.0), sim)
        since, until = state.get("since"), state.get("until")
        if since or until:
            index = store.index(state["user_id"])
            bounds = [(micros(since) if since else None, micros(until) if until else None)]
            best = {i: s for i, s in best.items() if _inside(index.event_time_us(i), bounds)}
        return sorted(best.items(), key=lambda kv: -kv[1])

    def fuse(state: SearchState) -> SearchState:
        settings, learned = state["settings"], tiers.usage(state["user_id"])
        weights = {Signal.LEXICAL: settings.lexical_weight, Signal.VECTOR: settings.vector_weight,
                   Signal.TIME: settings.vector_weight, Signal.FACT: settings.fact_weight}
        tuned = {s: w * learned.weight(f"signal:{s.value}") for s, w in weights.items()}
        fused = policy.fuse(state["found"], tuned)
        route, vector = state.get("route"), state.get("vector")
        if route and vector is not None:
            rated = learned.rated_like(vector, route, feedback.similar_question)
            fused = policy.apply_feedback(fused, rated, feedback.demote_factor)
        if state["ranges"]:
            index = store.index(state["user_id"])
            bounds = [(micros(r.start), micros(r.end)) for r in state["ranges"]]
            in_range = {i for i in fused if _inside(index.event_time_us(i), bounds)}
            fused = policy.boost_in_time(fused, in_range, settings.time_boost)
        return {"fused": fused}

    def expand(state: SearchState) -> SearchState:
        fused, settings, allowed = state["fused"], state["settings"], state.get("allowed")
        index = store.index(state["user_id"])
        if Signal.NEIGHBOUR in signals and settings.neighbour_hits:
            since, until = state.get("since"), state.get("until")
            bounds = [(micros(since) if since else None, micros(until) if until else None)]
            hidden = state.get("hidden", frozenset())
            neighbours = {i: [j for j in index.adjacent(i)
                              if _inside(index.event_time_us(j), bounds) and j not in hidden
                              and (allowed is None or j in allowed)]
                          for i, _ in policy.rank(fused, settings.neighbour_hits)}
            fused = policy.add_neighbours(fused, neighbours, settings.neighbour_decay)
        # a correction the user gave stands for the memories that agree with it
        supports = {i: [j for j in supported.metadata.get("supports", []) if j in index.row_of
                        and (allowed is None or j in allowed)]
                    for i, _ in policy.rank(fused, settings.neighbour_hits)
                    if (supported := index.episode(i)) is not None}
        fused = policy.add_neighbours(fused, {i: js for i, js in supports.items() if js}, settings.support_decay)
        if Signal.SPEAKER in signals and settings.speaker_boost:
            speaker = policy.named_speaker(state["query"], index.speakers)
            if speaker is not None:
                said = {i for i in fused if (n := index.row_of.get(i)) is not None and index.roles[n] == speaker}
                fused = policy.boost(fused, said, settings.speaker_boost, Signal.SPEAKER)
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
    return graph.compile(name="memagent.search")


def derived_hits(tiers: DerivedTiers, user_id: str, vector: np.ndarray, k: int,
                 hidden: frozenset[str] | set[str] = frozenset()) -> list[tuple[Any, float]]:
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
