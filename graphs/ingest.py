"""The ingest workflow: validate -> normalise -> embed -> write.

``Memory.add`` runs it. Nothing is written unless every message of the batch
is valid; messages whose caller id is already stored are dropped before they
are embedded; the write is one commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

import numpy as np
from langgraph.graph import END, START, StateGraph

from memagent.deps import Deps
from memagent.tiers import episodic
from memagent.types import Episode, Message


class IngestState(TypedDict, total=False):
    user_id: str
    session_id: str
    now: datetime
    raw: list[Any]
    messages: list[Message]
    episodes: list[Episode]
    vectors: np.ndarray
    ids: list[str]
    next_seq: int


def build_ingest_graph(deps: Deps) -> Any:
    """Compile the ingest graph over one memory's episodes and embedder."""
    store, embedder, config = deps.episodes, deps.embedder, deps.config

    def validate(state: IngestState) -> IngestState:
        messages = [episodic.to_message(m, i) for i, m in enumerate(state["raw"])]
        return {"messages": episodic.validate(messages, config.max_message_chars)}

    def normalise(state: IngestState) -> IngestState:
        user_id, session_id = state["user_id"], state["session_id"]
        next_seq, turns = store.positions(user_id, {session_id})
        built = episodic.build_episodes(user_id, session_id, state["messages"], state["now"],
                                        0, turns[session_id])
        known = store.existing_ids(user_id, [e.id for e in built if e.source_id is not None])
        fresh = episodic.renumber(episodic.dedupe(e for e in built if e.id not in known),
                                  turns[session_id])
        return {"episodes": fresh, "ids": [e.id for e in built], "next_seq": next_seq}

    def embed(state: IngestState) -> IngestState:
        texts = [episodic.index_text(e, config.embed_role) for e in state["episodes"]]
        return {"vectors": embedder.embed(texts)}

    def previous_turns(episodes: list[Episode]) -> dict[tuple[str, int], Episode]:
        """The turn before each episode, from the batch itself or else from the store."""
        known = {(e.session_id, e.turn): e for e in episodes}
        missing: dict[str, set[int]] = {}
        for e in episodes:
            if e.turn > 0 and (e.session_id, e.turn - 1) not in known:
                missing.setdefault(e.session_id, set()).add(e.turn - 1)
        if missing:
            stored = store.session_turns(episodes[0].user_id, missing)
            known.update({(e.session_id, e.turn): e for e in stored})
        return known

    def write(state: IngestState) -> IngestState:
        episodes = state["episodes"]
        if episodes:
            next_seq = state.get("next_seq")
            if next_seq is None:
                next_seq, _ = store.positions(episodes[0].user_id, set())
            before = previous_turns(episodes)
            records = [episodic.to_record(e, next_seq + i, config.embed_role, before.get((e.session_id, e.turn - 1)),
                                          config.context_words) for i, e in enumerate(episodes)]
            store.add(records, state["vectors"])
        return {"ids": state.get("ids") or [e.id for e in episodes]}

    def entry(state: IngestState) -> str:
        return "embed" if "episodes" in state else "validate"

    graph = StateGraph(IngestState)
    graph.add_node("validate", validate)
    graph.add_node("normalise", normalise)
    graph.add_node("embed", embed)
    graph.add_node("write", write)
    graph.add_conditional_edges(START, entry, ["validate", "embed"])
    graph.add_edge("validate", "normalise")
    graph.add_edge("normalise", "embed")
    graph.add_edge("embed", "write")
    graph.add_edge("write", END)
    return graph.compile(name="memagent.ingest")
