"""The consolidation workflow, one batch per run: load -> extract -> embed -> absorb -> link -> summarise -> write.

load takes the user's next episodes past the watermark (in write order);
extract turns each into statements (the chat model if one is set, validated,
else or on bad output the rule extractor, the fallback counted); absorb folds
them into the profile (merge, supersede, add) and link into the knowledge
graph; summarise rewrites the extractive summary of each session touched;
write upserts every row the batch touched and only then moves the watermark.

The writes are one commit per kind (statements, entities, relations, usage,
then the watermark), not one for all, so a crash may fall between any two of
them; the batch then runs again from the same watermark, over what was
committed, and must come out as if it had run once. It does: ids are
deterministic; a candidate or triple whose episode is in the evidence already
is known, changes nothing and closes nothing, yet its rows are written again
(so that usage the crashed run never wrote is written now); summaries are
rebuilt from the profile; and no decision depends on the order rows come back
from storage. ``Memory.consolidate`` runs it until no episode is left.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime
from typing import Any, TypedDict

import numpy as np
from langgraph.graph import END, START, StateGraph

from memagent.deps import Deps
from memagent.extraction import NON_USER_ROLES, extract, speaker_name
from memagent.extraction_llm import llm_extract
from memagent.policies import forgetting
from memagent.policies.forgetting import Decision, episode_importance, importance_of_statement, relation_importance
from memagent.records import Usage
from memagent.tiers.profile import UserProfile
from memagent.tiers.usage import UserUsage, item_state
from memagent.types import Candidate, Category, Episode, Relation


class MaintainState(TypedDict, total=False):
    user_id: str
    episodes: list[Episode]
    last_seq: int
    candidates: list[Candidate]
    vectors: np.ndarray
    statements: set[str]
    entities: set[str]
    relations: dict[str, Relation]
    counts: Counter[str]


def build_consolidate_graph(deps: Deps) -> Any:
    """Compile the consolidation graph (one batch of one user per invocation)."""
    store, tiers, embedder, llm = deps.episodes, deps.tiers, deps.embedder, deps.llm
    settings = deps.config.consolidation

    def load(state: MaintainState) -> MaintainState:
        user_id = state["user_id"]
        mark = tiers.watermark(user_id)
        index = store.index(user_id)
        order = np.argsort(index.seqs, kind="stable")
        fresh = [n for n in order if index.seqs[n] > mark][:settings.batch_episodes]
        episodes = [index.episode_at(int(n)) for n in fresh]
        last = int(index.seqs[fresh[-1]]) if fresh else mark
        return {"episodes": episodes, "last_seq": last, "counts": Counter(episodes=len(episodes))}

    def has_work(state: MaintainState) -> str:
        return "extract" if state["episodes"] else END

    def extract_node(state: MaintainState) -> MaintainState:
        counts, candidates = state["counts"], []
        for episode in state["episodes"]:
            ruled = extract(episode)
            found = None
            if llm.enabled and episode.role.lower() not in NON_USER_ROLES:
                rejected: Counter[str] = Counter()
                found = llm_extract(llm, episode, speaker_name(episode), ruled, rejected)
                counts["llm_calls"] += 1
                counts.update({f"rejected: {reason}": n for reason, n in rejected.items()})
                if found is None:
                    counts["fallbacks"] += 1
            candidates += ruled if found is None else found
        counts["candidates"] = len(candidates)
        return {"candidates": candidates, "counts": counts}

    def embed(state: MaintainState) -> MaintainState:
        texts = [c.text for c in state["candidates"]]
        return {"vectors": embedder.embed(texts) if texts else np.zeros((0, embedder.dimension), np.float32)}

    def absorb(state: MaintainState) -> MaintainState:
        profile = tiers.profile(state["user_id"])
        changed = profile.absorb(state["candidates"], state["vectors"], settings.merge_similarity)
        counts = state["counts"]
        counts.update(Counter(v for v in changed.values() if v != "known"))
        return {"statements": set(changed), "counts": counts}

    def link(state: MaintainState) -> MaintainState:
        graph = tiers.graph(state["user_id"])
        names = {(t.subject, "person") for c in state["candidates"] for t in c.triples}
        names |= {(t.object, t.object_type) for c in state["candidates"] for t in c.triples}
        unknown = sorted(n for n in names if graph.resolve(n[0], n[1], lambda *_: None) is None)
        vectors = dict(zip(unknown, embedder.embed([n for n, _ in unknown]))) if unknown else {}
        entities: set[str] = set()
        relations: dict[str, Relation] = {}

        def entity(name: str, kind: str, evidence: str) -> str:
            vector = vectors.get((name, kind))
            known = graph.resolve(name, kind, lambda *_: graph.nearest_entity(
                vector, kind, settings.entity_similarity) if vector is not None else None)
            if vector is None and known is not None:
                vector = graph.entity_vectors[known]
            assert vector is not None, f"entity {name!r} is neither known nor embedded"
            made = graph.upsert_entity(name, kind, evidence, vector, known)
            entities.add(made.id)
            return made.id

        for c in state["candidates"]:
            for t in c.triples:
                source = entity(t.subject, "person", c.episode_id)
                target = entity(t.object, t.object_type, c.episode_id)
                for r in graph.relate(t, source, target, c.event_time, c.episode_id, c.confidence):
                    relations[r.id] = r
        counts = state["counts"]
        counts["entities_touched"], counts["relations_touched"] = len(entities), len(relations)
        return {"entities": entities, "relations": relations, "counts": counts}

    def summarise(state: MaintainState) -> MaintainState:
        user_id, profile = state["user_id"], tiers.profile(state["user_id"])
        changed = set(state["statements"])
        for session_id in dict.fromkeys(e.session_id for e in state["episodes"]):
            ids = store.ordered_ids(user_id, session_id)
            first = store.get(user_id, ids[:1])
            made = (profile.summarise(session_id, ids, first[0].event_time, settings.summary_sentences)
                    if first else None)
            if made is not None:
                changed.add(made[0].id)
        return {"statements": changed}

    def write(state: MaintainState) -> MaintainState:
        user_id = state["user_id"]
        profile, graph = tiers.get(user_id)
        tiers.write_statements(user_id, state["statements"])
        tiers.write_entities(user_id, state["entities"])
        fresh = [r for r in state["relations"].values() if r.id not in graph.relation_vectors]
        if fresh:
            graph.relation_vectors.update(zip((r.id for r in fresh), embedder.embed([r.text for r in fresh])))
        tiers.write_relations(user_id, list(state["relations"].values()))
        tiers.write_usage(note_importance(tiers.usage(user_id), state, profile))
        tiers.set_watermark(user_id, state["last_seq"])
        return {}

    graph = StateGraph(MaintainState).add_node("load", load).add_sequence([
        ("extract", extract_node), ("embed", embed), ("absorb", absorb), ("link", link), ("summarise", summarise),
        ("write", write)])
    graph.add_edge(START, "load")
    graph.add_conditional_edges("load", has_work, ["extract", END])
    graph.add_edge("write", END)
    return graph.compile(name="memagent.consolidate")


def note_importance(usage: UserUsage, state: MaintainState, profile: UserProfile) -> list[Usage]:
    """How much each episode of the batch and each new statement and graph fact matters, for forgetting."""
    categories: dict[str, list[Category]] = {}
    for c in state["candidates"]:
        categories.setdefault(c.episode_id, []).append(c.category)
    changed = []
    for e in state["episodes"]:
        importance, pinned = episode_importance(e.text, bool(e.metadata.get("pinned")), categories.get(e.id, []))
        changed.append(usage.note(e.id, "episode", e.event_time, importance, pinned))
    for statement_id in state["statements"]:
        s = profile.get(statement_id)
        if s is not None and s.kind == "statement":
            importance = importance_of_statement(s.category, s.confidence)
            changed.append(usage.note(s.id, "statement", s.valid_from, importance))
    for r in state["relations"].values():
        importance = relation_importance(usage.records[i].importance for i in r.evidence_ids if i in usage.records)
        changed.append(usage.note(r.id, "relation", r.valid_from, importance))
    return changed


class ForgetState(TypedDict, total=False):
    user_id: str
    now: datetime
    dry_run: bool
    decisions: list[Decision]


def build_forget_graph(deps: Deps) -> Any:
    """Compile the forgetting graph: assess -> apply (skipped on a dry run).

    assess builds each memory's state (importance, uses, feedback, whether a
    statement is closed) and asks the forgetting policy; apply writes the archive
    flags that change. Closed statements and relations are history: never archived.
    """
    tiers, settings = deps.tiers, deps.config.forgetting

    def assess(state: ForgetState) -> ForgetState:
        usage, profile = tiers.usage(state["user_id"]), tiers.profile(state["user_id"])
        graph = tiers.graph(state["user_id"])
        closed = {s.id for s in profile.statements if s.valid_to is not None}
        closed |= {r.id for r in graph.relations.values() if r.valid_to is not None}
        items = [item_state(u, closed=u.id in closed) for u in usage.records.values()]
        return {"decisions": forgetting.decide(items, state["now"], settings)}

    def should_apply(state: ForgetState) -> str:
        return END if state.get("dry_run") else "apply"

    def apply(state: ForgetState) -> ForgetState:
        usage = tiers.usage(state["user_id"])
        changed = [usage.put(replace(usage.records[d.item_id], archived=d.action == forgetting.ARCHIVE,
                                     reason=d.reason))
                   for d in state["decisions"] if d.changes]
        tiers.write_usage(changed)
        return {}

    graph = StateGraph(ForgetState)
    graph.add_node("assess", assess)
    graph.add_node("apply", apply)
    graph.add_edge(START, "assess")
    graph.add_conditional_edges("assess", should_apply, ["apply", END])
    graph.add_edge("apply", END)
    return graph.compile(name="memagent.forget")
