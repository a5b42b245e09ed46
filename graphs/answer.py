"""The answer workflow: route -> retrieve -> assemble -> answer -> trace.

route classifies the question (extraction, abstraction, generalization; is it
about time?); retrieve reads the tiers as the route's plan says: episodes by
hybrid search (with profile statements weighing more for abstraction and
generalization), profile statements and summaries, and for generalization the
graph facts of the entities the question names; assemble keeps what fits the
token budget, in the route's order; answer is the LLM-free answer (a profile
slot's value, else extractive) or a chat model's grounded reply, checked: a
reply the rules' best sentences for the question do not support, an abstention
where the rules found an answer, or one that misses the profile's current value
gives way to the LLM-free answer, and ``Answer.reason`` says which path answered; trace stores the
question, route, evidence and answer under an id that feedback can refer to.
``Memory.ask`` runs it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, TypedDict

import numpy as np
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.pregel import Pregel

from memagent import answering
from memagent.deps import Deps
from memagent.embeddings import TextVectors
from memagent.extraction import NON_USER_ROLES, with_caption
from memagent.graphs.search import derived_hits
from memagent.policies import answering as policy
from memagent.policies.routing import RouteDecision, reweighted
from memagent.records import EvidenceKind, Kind, Trace, TraceEvidence
from memagent.routing import Router
from memagent.types import Answer, Evidence, Relation, Route, SearchHit, Signal, Statement

GENERIC_ROLES = NON_USER_ROLES | {"user", "human"}
# Relatives whose facts are the user's own slots ("Who is my wife?" asks the user's partner).
PARTNER_KIN = frozenset({"husband", "wife", "partner", "spouse", "boyfriend", "girlfriend", "fiance"})
SUPERSEDE_WINDOW = 10  # how many of the best sentences an update is looked for among


class AnswerState(TypedDict, total=False):
    user_id: str
    question: str
    now: datetime
    forced: Route
    started: float
    vector: np.ndarray  # the question's embedding: computed once, read by every step
    decision: RouteDecision
    hits: list[Evidence]
    derived: list[Evidence]
    derived_vectors: dict[str, np.ndarray]
    relatives: set[str]  # the names of the relatives the question asks about ("my sister" -> Marta)
    premise: list[Evidence]  # when the question names a speaker: the evidence found without lifting their turns
    used: list[Evidence]
    context: str
    tokens: int
    text: str
    abstained: bool
    reason: str
    llm_calls: int
    sources: list[str]
    support: list[str]  # what a chat model's answer must be backed by: the rules' best sentences
    constraints: list[Statement]  # for an advice question: the profile statements the advice must respect
    answer: Answer


def build_answer_graph(deps: Deps, router: Router, search: Pregel, sentences: TextVectors) -> Any:
    """Compile the answer graph over a memory's dependencies, a ``Router``, the compiled
    search graph and a per-user cache of sentence vectors."""
    settings, tiers, embedder, llm = deps.config.answer, deps.tiers, deps.embedder, deps.llm
    counter = answering.TokenCounter()

    def route(state: AnswerState) -> AnswerState:
        started = time.perf_counter()
        vector = embedder.embed([state["question"]])[0]
        learned = tiers.usage(state["user_id"])
        weights = {r: learned.weight(f"route:{r.value}") for r in Route}
        decision = reweighted(router.route(state["question"], vector), weights, state.get("forced"))
        return {"decision": decision, "started": started, "vector": vector}

    def retrieve(state: AnswerState, config: RunnableConfig) -> AnswerState:
        user_id, question, decision, now = state["user_id"], state["question"], state["decision"], state["now"]
        plan = policy.PLANS[decision.route]
        tuned = deps.config.retrieval.model_copy(update={"fact_weight": plan.fact_weight})
        profile = tiers.profile(user_id)
        valid = [profile.statements[n] for n in profile.active(now)]
        closed, stale = policy.superseded(profile.statements, valid, now, policy.slot_asked(question))
        relatives = relatives_of(user_id, question)
        query = " ".join([question, *sorted(relatives)])  # "my sister" is Marta: her sentences may not say "sister"
        found: list[SearchHit] = search.invoke({
            "user_id": user_id, "query": query, "k": plan.episodes + len(stale), "now": now, "use_time": True,
            "settings": tuned, "vector": state["vector"], "route": decision.route.value,
            "until": now + timedelta(days=1)}, config)["hits"]  # config: its run nests under this one
        hits = [h for h in found if h.episode.id not in stale][:plan.episodes]
        episodes: list[Evidence] = [answering.episode_evidence(h) for h in hits]
        premise: list[Evidence] = []
        if tuned.speaker_boost and any(Signal.SPEAKER in h.signals for h in found):
            # Search lifts the named speaker's turns, which would hide a false premise ("What did
            # Melanie paint?" when Caroline painted): the premise is judged on the unlifted ranking.
            unlifted = search.invoke({
                "user_id": user_id, "query": query, "k": plan.episodes + len(stale), "now": now,
                "use_time": True, "settings": tuned.model_copy(update={"speaker_boost": 0.0}),
                "vector": state["vector"], "route": decision.route.value, "until": now + timedelta(days=1)},
                config)["hits"]
            premise.extend(answering.episode_evidence(h) for h in unlifted if h.episode.id not in stale)
            del premise[plan.episodes:]
        archived = tiers.usage(user_id).archived
        facts = derived_hits(tiers, user_id, state["vector"], 2 * (plan.statements + plan.graph_facts), archived)
        chosen = [(f, s) for f, s in facts if not isinstance(f, Relation)][:plan.statements]
        chosen += [(f, s) for f, s in facts if isinstance(f, Relation)][:plan.graph_facts]
        derived = [_evidence(f, score) for f, score in chosen if f.id not in closed
                   and (f.valid_from is None or f.valid_from <= now)]
        if plan.graph_facts:
            graph = tiers.graph(user_id)
            seen = {e.id for e in derived} | archived
            named = answering.names_in(question, [e.name for e in graph.entities.values()])
            for entity in (e for e in graph.entities.values() if e.name.lower() in named):
                for relation in graph.facts(entity.id)[:plan.graph_facts]:
                    if relation.id not in seen:
                        seen.add(relation.id)
                        derived.append(_evidence(relation, 0.0))
        return {"hits": episodes, "derived": derived, "derived_vectors": _vectors_of(deps, user_id, derived),
                "relatives": relatives, "premise": premise}

    def assemble(state: AnswerState) -> AnswerState:
        # Episodes by retrieval rank, then derived items: on LoCoMo, putting statements first
        # cost 6 points of evidence recall@10 on multi-hop questions. The route acts through
        # the weight of facts in the episode ranking and how many statements are read.
        used, context, tokens = answering.assemble(state["hits"] + state["derived"], settings.context_tokens, counter)
        return {"used": used, "context": context, "tokens": tokens}

    def answer(state: AnswerState) -> AnswerState:
        ruled = rules_answer(state)
        if not (llm.enabled and state["used"]):
            return ruled
        profile = tiers.profile(state["user_id"])
        current = [profile.statements[n] for n in profile.active(state["now"])]
        lines = answering.profile_lines(current)
        lines += answering.constraint_lines(ruled.get("constraints", []))  # the advice must respect them
        system, prompt = answering.grounded_prompt(
            state["question"], answering.dated_context(state["used"]), state["decision"].route, state["now"], lines)
        reply = llm.text(system, prompt)
        if reply is None:
            return {**ruled, "reason": f"{ruled['reason']} (the chat model failed)"}
        reply = reply.strip()
        overruled = answering.overrule(reply, ruled, state["question"], state["decision"].route,
                                       state["decision"].temporal, state["now"])
        if overruled is not None:
            llm.reject(f"answer: {overruled}")
            return {**ruled, "llm_calls": 1, "reason": f"{ruled['reason']} (chat model overruled: {overruled})"}
        return {"text": reply, "abstained": answering.is_abstention(reply), "reason": "chat model",
                "llm_calls": 1, "sources": [e.id for e in state["used"][:3]], "used": state["used"]}

    def rules_answer(state: AnswerState) -> AnswerState:
        """The LLM-free answer: a profile slot's current value, else the best extractive sentence."""
        question, decision, user_id = state["question"], state["decision"], state["user_id"]
        speakers = deps.episodes.speakers(user_id)  # read once: people asked about, and whom advice binds
        people = {p for p in speakers if p.lower() not in GENERIC_ROLES}
        named = answering.names_in(question, people)
        profile = tiers.profile(user_id)
        known = people | {s.subject for s in profile.statements}
        kin = policy.kin_asked(question)
        someone_else = policy.names_someone_else(question, known) or (kin is not None and kin not in PARTNER_KIN)
        slot = None if someone_else else policy.slot_asked(question)
        relatives = state.get("relatives", set())  # read from the graph once, by retrieve
        named |= {n.lower() for n in relatives}
        valid = [profile.statements[n] for n in profile.active(state["now"])]
        current = policy.slot_value(valid, slot, named)
        if current is not None:
            return {"text": current.value or "", "abstained": False, "reason": f"profile: {current.slot}",
                    "llm_calls": 0, "sources": [current.id, *current.evidence_ids],
                    "used": [_evidence(current, 1.0), *state["used"]], "support": [current.text]}
        if decision.route is Route.GENERALIZATION and policy.asks_advice(question) and not someone_else:
            # "Suggest a dinner recipe": with no chat model, what any advice must respect
            bounds = advice_bounds(state, valid, speakers)
            if bounds:
                return {"text": answering.constraints_answer(bounds), "abstained": False,
                        "reason": "profile constraints", "llm_calls": 0, "sources": [s.id for s in bounds],
                        "support": [s.text for s in bounds], "constraints": bounds}
        # Sentences are matched to the question without its names: who said what is
        # weighed apart (speaker_first, about), so a sentence that merely names the
        # person asked about does not outrank the one that answers.
        nameless = answering.without_names(question, people)
        ranked = answering.ranked_sentences(nameless, state["used"][:settings.answer_evidence],
                                            decision.temporal, lambda q, texts: similarity(user_id, q, texts))
        if not ranked:
            return {"text": answering.NOT_IN_MEMORY, "abstained": True, "reason": "no evidence", "llm_calls": 0,
                    "support": []}
        support = answering.support_of(ranked[:policy.SUPPORT_SENTENCES], decision.temporal)
        best = best_similarity(state)
        stop, reason = policy.abstain(best_similarity=best, min_similarity=settings.min_similarity,
                                      about_named=answering.about(premise_ranked(state, nameless, ranked), named,
                                                                  policy.SPEAKER_MARGIN, people),
                                      named=named)
        if stop:
            return {"text": answering.NOT_IN_MEMORY, "abstained": True, "reason": reason, "llm_calls": 0,
                    "support": support}
        ranked = answering.speaker_first(ranked, named, policy.SPEAKER_MARGIN, people)
        if relatives:  # "Where does my sister live?": what is said of her, not of the user
            ranked = answering.naming(ranked, relatives) or ranked
        now_asked = policy.asks_current(question) and not (decision.temporal and answering.asks_date(question))
        if now_asked:  # about now: an earlier sentence that a later one updates does not answer
            head = [sentence for _, sentence, _ in ranked[:SUPERSEDE_WINDOW]]
            ranked = answering.drop_superseded(ranked, sentences.get(user_id, head), policy.SUPERSEDED_SIMILARITY,
                                               SUPERSEDE_WINDOW)
        # the relatives asked about count as words of the question: "Where did my sister live?" is not "Marta"
        asked = " ".join([question, *sorted(relatives)])
        text, item = answering.extractive(asked, decision.route, ranked, decision.temporal, current=now_asked,
                                          now=state["now"])
        return {"text": text, "abstained": False, "reason": "extractive", "llm_calls": 0,
                "sources": [item.id] if item is not None else [], "support": support}

    def advice_bounds(state: AnswerState, valid: list[Statement], speakers: Iterable[str]) -> list[Statement]:
        """What advice to the memory's ``speakers`` (not assistants) must respect, of the statements ``valid`` now."""
        users = {p for p in speakers if p.lower() not in NON_USER_ROLES}
        return policy.advice_constraints(valid, [e.id for e in state["derived"]], users)

    def relatives_of(user_id: str, question: str) -> set[str]:
        """The names of the relatives a question asks about through the user ("my sister" -> Marta),
        read from the knowledge graph's kin relations (``has_sister``)."""
        kin = policy.kin_asked(question)
        if kin is None:
            return set()
        graph = tiers.graph(user_id)
        relations = {"has_" + kin.replace(" ", "_"), "has_" + kin.split()[-1]}  # "my best friend Zoe": has_friend
        return {graph.entities[r.target].name for r in graph.relations.values()
                if r.relation in relations and r.target in graph.entities}

    def premise_ranked(state: AnswerState, nameless: str, ranked: list[tuple[float, str, Evidence]]
                       ) -> list[tuple[float, str, Evidence]]:
        """The sentences whose speaker the false-premise check weighs: those of the unlifted evidence
        where search lifted a named speaker's turns, else the answer's own ``ranked``."""
        premise = state.get("premise")
        if not premise:
            return ranked
        return answering.ranked_sentences(nameless, (premise + state["derived"])[:settings.answer_evidence],
                                          state["decision"].temporal,
                                          lambda q, texts: similarity(state["user_id"], q, texts))

    def best_similarity(state: AnswerState) -> float:
        """How close the best of the top evidence is to the question (stored vectors where they
        are the text's own, the sentence cache for episode texts)."""
        top = state["hits"][:3] + state["derived"][:2]
        if not top:
            return 0.0
        known = state["derived_vectors"]
        texts = {e.id: with_caption(e.text, answering.caption_of(e)) for e in top if e.id not in known}
        missing = list(dict.fromkeys(texts.values()))
        fresh = dict(zip(missing, sentences.get(state["user_id"], missing))) if missing else {}
        matrix = np.vstack([known[e.id] if e.id in known else fresh[texts[e.id]] for e in top])
        return float((matrix @ state["vector"]).max())

    def similarity(user_id: str, question: str, texts: list[str]) -> list[float]:
        vectors = sentences.get(user_id, [question, *texts])
        return [float(x) for x in vectors[1:] @ vectors[0]]

    def trace(state: AnswerState) -> AnswerState:
        decision, sources, user_id = state["decision"], set(state.get("sources", [])), state["user_id"]
        result = Answer(text=state["text"], route=decision.route, evidence=state["used"],
                        abstained=state["abstained"], trace_id=str(uuid.uuid4()),
                        latency_ms=(time.perf_counter() - state["started"]) * 1000,
                        context_tokens=state["tokens"],
                        llm_calls=state["llm_calls"] + int(llm.enabled),  # + the routing call
                        temporal=decision.temporal, reason=state["reason"])
        evidence = tuple(TraceEvidence(EvidenceKind(e.kind), e.id, e.signals, e.id in sources) for e in result.evidence)
        deps.backend.put(Kind.TRACE, [Trace(
            id=result.trace_id, user_id=user_id, question=state["question"], route=decision.route.value,
            answer=result.text, abstained=result.abstained, evidence=evidence, episode_ids=tuple(result.episode_ids),
            asked_at=state["now"], latency_ms=result.latency_ms, context_tokens=result.context_tokens,
            llm_calls=result.llm_calls)])
        if not result.abstained:  # a use reinforces the memories the answer came from
            usage = tiers.usage(user_id)
            items = [e for e in result.evidence if e.kind in ("episode", "statement", "relation") and e.id in sources]
            tiers.write_usage(usage.used([e.id for e in items], {e.id: e.kind for e in items}, state["now"]))
        return {"answer": result}

    nodes: list[tuple[str, Any]] = [
        ("route", route), ("retrieve", retrieve), ("assemble", assemble), ("answer", answer), ("trace", trace)]
    graph = StateGraph(AnswerState).add_sequence(nodes)
    graph.add_edge(START, "route")
    graph.add_edge("trace", END)
    return graph.compile(name="memagent.ask")


def _vectors_of(deps: Deps, user_id: str, derived: list[Evidence]) -> dict[str, np.ndarray]:
    """The stored vectors of derived evidence (each is the embedding of that item's text)."""
    profile, graph = deps.tiers.get(user_id)
    found = {}
    for e in derived:
        if e.id in profile.row_of:
            found[e.id] = profile.vector(e.id)
        elif e.id in graph.relation_vectors:
            found[e.id] = graph.relation_vectors[e.id]
    return found


def _evidence(item: Statement | Relation, score: float) -> Evidence:
    kind = item.kind if isinstance(item, Statement) else "relation"
    role = item.subject if isinstance(item, Statement) else ""
    return Evidence(kind, item.id, item.text, score, tuple(item.evidence_ids), role, item.valid_from)
