"""The search workflow: plan -> retrieve -> fuse -> expand.

plan reads the time expressions of the question against the reference time;
retrieve asks LanceDB for full-text (BM25) and vector hits of that user, plus
vector hits inside any time range the question names, the full-text query
running while the question is embedded; fuse merges the scored lists with the
retrieval policy; expand adds the adjacent turns of the best hits.
``Memory.search`` runs it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from memagent.config import RetrievalSettings
from memagent.embeddings import Embedder
from memagent.policies import retrieval as policy
from memagent.store.lance import LanceStore, time_where
from memagent.timeparse import find_time_ranges
from memagent.types import Episode, SearchHit, Signal, TimeRange

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="memagent-search")


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
    found: dict[Signal, list[tuple[str, float]]]
    episodes: dict[str, Episode]
    fused: dict[str, policy.Scored]
    hits: list[SearchHit]


def build_search_graph(store: LanceStore, embedder: Embedder, settings: RetrievalSettings,
                       signals: frozenset[Signal] = frozenset(Signal)) -> Any:
    """Compile the search graph; ``signals`` restricts it (e.g. BM25 only, for baselines)."""
    weights = {Signal.LEXICAL: settings.lexical_weight, Signal.VECTOR: settings.vector_weight,
               Signal.TIME: settings.vector_weight}

    def plan(state: SearchState) -> SearchState:
        use_time = state.get("use_time", True) and Signal.TIME in signals
        ranges = find_time_ranges(state["query"], state["now"]) if use_time else []
        return {"ranges": ranges, "where": time_where(state.get("since"), state.get("until"))}

    def vector_hits(state: SearchState) -> dict[Signal, list[tuple[Episode, float]]]:
        user_id, where, n = state["user_id"], state["where"], settings.candidates
        vector = embedder.embed([state["query"]])[0]
        found = {Signal.VECTOR: store.vector(user_id, vector, n, where)}
        for time_range in state["ranges"]:
            clause = time_where(time_range.start, time_range.end)
            scoped = f"({where}) AND ({clause})" if where else clause
            found.setdefault(Signal.TIME, []).extend(store.vector(user_id, vector, n, scoped))
        return found

    def retrieve(state: SearchState) -> SearchState:
        lexical = None
        if Signal.LEXICAL in signals:
            lexical = _POOL.submit(store.lexical, state["user_id"], state["query"], settings.candidates,
                                   state["where"], settings.lexical_context)
        found = vector_hits(state) if Signal.VECTOR in signals else {}
        if lexical is not None:
            found[Signal.LEXICAL] = lexical.result()
        episodes = {e.id: e for hits in found.values() for e, _ in hits}
        scored = {s: sorted(((e.id, score) for e, score in hits), key=lambda p: -p[1])
                  for s, hits in found.items()}
        return {"found": scored, "episodes": episodes}

    def fuse(state: SearchState) -> SearchState:
        fused = policy.fuse(state["found"], weights)
        in_range = {i for i, e in state["episodes"].items()
                    if any(r.contains(e.event_time) for r in state["ranges"])}
        policy.boost_in_time(fused, in_range, settings.time_boost)
        return {"fused": fused}

    def expand(state: SearchState) -> SearchState:
        fused, episodes = state["fused"], dict(state["episodes"])
        if Signal.NEIGHBOUR in signals and settings.neighbour_hits:
            top = [episodes[i] for i, _ in policy.rank(fused, settings.neighbour_hits)]
            positions = {(e.session_id, e.turn): e.id for e in episodes.values()}
            wanted: dict[str, set[int]] = {}
            for e in top:
                for turn in (e.turn - 1, e.turn + 1):
                    if (e.session_id, turn) not in positions:
                        wanted.setdefault(e.session_id, set()).add(turn)
            for e in store.session_turns(state["user_id"], wanted, state["where"]) if wanted else []:
                episodes[e.id] = e
                positions[(e.session_id, e.turn)] = e.id
            neighbours = {e.id: [positions[p] for p in ((e.session_id, e.turn - 1), (e.session_id, e.turn + 1))
                                 if p in positions] for e in top}
            policy.add_neighbours(fused, neighbours, settings.neighbour_decay)
        hits = [SearchHit(episodes[i], s.score, frozenset(s.signals))
                for i, s in policy.rank(fused, state["k"])]
        return {"hits": hits}

    graph = StateGraph(SearchState)
    for name, node in (("plan", plan), ("retrieve", retrieve), ("fuse", fuse), ("expand", expand)):
        graph.add_node(name, node)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "retrieve")
    graph.add_edge("retrieve", "fuse")
    graph.add_edge("fuse", "expand")
    graph.add_edge("expand", END)
    return graph.compile()
