"""The answer workflow: route -> retrieve -> assemble -> answer -> trace.

route classifies the question (extraction, abstraction, generalization; is it
about time?); retrieve reads the tiers as the route's plan says: episodes by
hybrid search (with profile statements weighing more for abstraction and
generalization), profile statements and summaries, and for generalization the
graph facts of the entities the question names; assemble keeps what fits the
token budget, in the route's order; answer is extractive, or a chat model's
grounded reply (falling back to extractive if the call fails); trace stores the
question, route, evidence and answer under an id that feedback can refer to.
``Memory.ask`` runs it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from memagent import answering
from memagent.extraction import NON_USER_ROLES
from memagent.policies import answering as policy
from memagent.policies.routing import RouteDecision
from memagent.store.derived import TRACES, USAGE
from memagent.types import Answer, Evidence, Relation, Route, Statement


GENERIC_ROLES = NON_USER_ROLES | {"user", "human"}


class AnswerState(TypedDict, total=False):
    user_id: str
    question: str
    now: datetime
    forced: Route
    started: float
    decision: RouteDecision
    hits: list[Evidence]
    derived: list[Evidence]
    used: list[Evidence]
    context: str
    tokens: int
    text: str
    abstained: bool
    reason: str
    llm_calls: int
    sources: list[str]
    answer: Answer


def build_answer_graph(memory: Any, router: Any) -> Any:
    """Compile the answer graph over a ``Memory`` and a ``Router``."""
    settings = memory.config.answer
    counter = answering.TokenCounter()

    def route(state: AnswerState) -> AnswerState:
        started = time.perf_counter()
        decision = router.route(state["question"])
        if state.get("forced") is not None and state["forced"] is not decision.route:
            decision = replace(decision, route=state["forced"], reason="forced by the caller")
        elif decision.reason != "llm":  # routes this user rated badly weigh less
            learned = memory.tiers.usage(state["user_id"])
            weighted = {r: score * learned.weight(f"route:{r.value}") for r, score in decision.scores.items()}
            best = max(weighted, key=weighted.get, default=decision.route)
            if weighted and weighted[best] > weighted.get(decision.route, 0.0):
                decision = replace(decision, route=best, reason="learned from feedback")
        return {"decision": decision, "started": started}

    def retrieve(state: AnswerState) -> AnswerState:
        user_id, question, decision = state["user_id"], state["question"], state["decision"]
        plan = policy.PLANS[decision.route]
        tuned = memory.config.retrieval.model_copy(update={"fact_weight": plan.fact_weight})
        superseded, stale = _superseded(memory.tiers.profile(user_id), state["now"], policy.slot_asked(question))
        hits = memory.search(user_id, question, k=plan.episodes + len(stale), now=state["now"], retrieval=tuned,
                             route=decision.route, until=state["now"] + timedelta(days=1))
        hits = [h for h in hits if h.episode.id not in stale][:plan.episodes]
        episodes = [Evidence("episode", h.episode.id, h.episode.text, h.score, (h.episode.id,), h.episode.role,
                             h.episode.event_time, tuple(h.signal_names)) for h in hits]
        facts = memory.search_facts(user_id, question, k=2 * (plan.statements + plan.graph_facts))
        chosen = [f for f in facts if not isinstance(f.item, Relation)][:plan.statements]
        chosen += [f for f in facts if isinstance(f.item, Relation)][:plan.graph_facts]
        derived = [_evidence(f.item, f.score) for f in chosen if f.item.id not in superseded
                   and (f.item.valid_from is None or f.item.valid_from <= state["now"])]
        if plan.graph_facts:
            graph = memory.tiers.graph(user_id)
            seen = {e.id for e in derived} | memory.tiers.usage(user_id).archived
            named = answering.names_in(question, [e.name for e in graph.entities.values()])
            for entity in (e for e in graph.entities.values() if e.name.lower() in named):
                for relation in graph.facts(entity.id)[:plan.graph_facts]:
                    if relation.id not in seen:
                        seen.add(relation.id)
                        derived.append(_evidence(relation, 0.0))
        return {"hits": episodes, "derived": derived}

    def assemble(state: AnswerState) -> AnswerState:
        hits, derived = state["hits"], state["derived"]
        # Episodes by retrieval rank, then derived items: on LoCoMo, putting statements first
        # cost 6 points of evidence recall@10 on multi-hop questions. The route acts through
        # the weight of facts in the episode ranking and how many statements are read.
        ordered = hits + derived
        used, context, tokens = answering.assemble(ordered, settings.context_tokens, counter)
        return {"used": used, "context": context, "tokens": tokens}

    def answer(state: AnswerState) -> AnswerState:
        question, decision = state["question"], state["decision"]
        if memory.llm.enabled and state["used"]:
            system, user = answering.grounded_prompt(question, state["context"], decision.route, state["now"])
            reply = memory.llm.text(system, user)
            if reply is not None:
                reply = reply.strip()
                return {"text": reply, "abstained": reply.startswith(answering.NOT_IN_MEMORY.rstrip(".")),
                        "reason": "chat model", "llm_calls": 1, "sources": [e.id for e in state["used"][:3]]}
        people = {p for p in memory.speakers(state["user_id"]) if p.lower() not in GENERIC_ROLES}
        named = answering.names_in(question, people)
        profile = memory.tiers.profile(state["user_id"])
        known = people | {s.subject for s in profile.statements}
        slot = None if _names_someone_else(question, known) else policy.slot_asked(question)
        current = _slot_value(profile, slot, named, state["now"])
        if current is not None:
            return {"text": current.value, "abstained": False, "reason": f"profile: {current.slot}", "llm_calls": 0,
                    "sources": [current.id, *current.evidence_ids],
                    "used": [_evidence(current, 1.0), *state["used"]]}
        # Sentences are matched to the question without its names: who said what is
        # weighed apart (speaker_first, about), so a sentence that merely names the
        # person asked about does not outrank the one that answers.
        ranked = answering.ranked_sentences(answering.without_names(question, people),
                                            state["used"][:settings.answer_evidence],
                                            decision.temporal, sentence_similarity)
        if not ranked:
            return {"text": answering.NOT_IN_MEMORY, "abstained": True, "reason": "no evidence", "llm_calls": 0}
        top = [e.text for e in state["hits"][:3] + state["derived"][:2]]
        vectors = memory.embedder.embed([question, *top])
        similarity = float((vectors[1:] @ vectors[0]).max()) if top else 0.0
        stop, reason = policy.abstain(best_similarity=similarity, min_similarity=settings.min_similarity,
                                      about_named=answering.about(ranked, named, policy.SPEAKER_MARGIN, people),
                                      named=named)
        if stop:
            return {"text": answering.NOT_IN_MEMORY, "abstained": True, "reason": reason, "llm_calls": 0}
        ranked = answering.speaker_first(ranked, named, policy.SPEAKER_MARGIN, people)
        text, item = answering.extractive(question, decision.route, ranked, decision.temporal)
        return {"text": text, "abstained": False, "reason": "extractive", "llm_calls": 0,
                "sources": [item.id] if item is not None else []}

    def sentence_similarity(question: str, sentences: list[str]) -> list[float]:
        vectors = memory.embedder.embed([question, *sentences])
        return [float(x) for x in vectors[1:] @ vectors[0]]

    def trace(state: AnswerState) -> AnswerState:
        decision, sources = state["decision"], set(state.get("sources", []))
        result = Answer(text=state["text"], route=decision.route, evidence=state["used"],
                        abstained=state["abstained"], trace_id=str(uuid.uuid4()),
                        latency_ms=(time.perf_counter() - state["started"]) * 1000,
                        context_tokens=state["tokens"],
                        llm_calls=state["llm_calls"] + int(memory.llm.enabled),  # + the routing call
                        temporal=decision.temporal, reason=state["reason"])
        memory.derived.upsert(TRACES, [{
            "id": result.trace_id, "user_id": state["user_id"], "question": state["question"],
            "route": decision.route.value, "answer": result.text, "abstained": result.abstained,
            "evidence": json.dumps([[e.kind, e.id, list(e.signals), e.id in sources] for e in result.evidence]),
            "episode_ids": result.episode_ids,
            "asked_at": state["now"], "latency_ms": result.latency_ms, "context_tokens": result.context_tokens,
            "llm_calls": result.llm_calls}])
        if not result.abstained:  # a use reinforces the memories the answer came from
            usage = memory.tiers.usage(state["user_id"])
            items = [e for e in result.evidence if e.kind in ("episode", "statement", "relation") and e.id in sources]
            changed = usage.used([e.id for e in items], {e.id: e.kind for e in items}, state["now"])
            memory.derived.upsert(USAGE, [u.row(state["user_id"]) for u in changed])
        return {"answer": result}

    graph = StateGraph(AnswerState).add_sequence([
        ("route", route), ("retrieve", retrieve), ("assemble", assemble), ("answer", answer), ("trace", trace)])
    graph.add_edge(START, "route")
    graph.add_edge("trace", END)
    return graph.compile()


def _slot_value(profile: Any, slot: str | None, named: set[str], now: datetime) -> Statement | None:
    """The statement holding the asked-for exclusive attribute at ``now`` (the latest one)."""
    if slot is None:
        return None
    valid = [profile.statements[n] for n in profile.active(now)]
    found = [s for s in valid if s.slot == slot and s.value and (not named or s.subject.lower() in named)]
    return max(found, key=lambda s: s.valid_from, default=None)


def _superseded(profile: Any, now: datetime, slot: str | None) -> tuple[set[str], set[str]]:
    """Statements closed by ``now``, and, for a question about an exclusive ``slot``, the
    episodes that only its closed statements rest on.

    "I live in Lisbon" stops being evidence for "where do I live?" once "we moved to
    Porto" closed it; asked at a date before the move, it still is. For other
    questions the episode stays evidence: it may say more than the old address.
    """
    closed = [s for s in profile.statements if s.slot and s.valid_to is not None and s.valid_to <= now]
    if not closed:
        return set(), set()
    still = {i for n in profile.active(now) if profile.statements[n].kind == "statement"
             for i in profile.statements[n].evidence_ids}
    return {s.id for s in closed}, {i for s in closed if s.slot == slot for i in s.evidence_ids if i not in still}


def _evidence(item: Statement | Relation, score: float) -> Evidence:
    kind = item.kind if isinstance(item, Statement) else "relation"
    role = item.subject if isinstance(item, Statement) else ""
    return Evidence(kind, item.id, item.text, score, tuple(item.evidence_ids), role, item.valid_from)


def _names_someone_else(question: str, people: set[str]) -> bool:
    """Whether the question names (past its first word) someone who is neither a speaker nor
    the subject of a statement: "Where does Ana live?" is not about the user's own home."""
    known = {p.lower() for p in people} | {"i"}
    return any(m.group(1).lower() not in known for m in re.finditer(r"\b([A-Z][a-z]+)(?:'s|’s)?\b", question)
               if m.start() > 0)
