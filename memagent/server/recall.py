"""Routes that read and shape memory: search, ask, feedback, profile, graph, consolidate, forget."""

from __future__ import annotations

import json
from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from memagent.errors import InvalidInputError
from memagent.memory import Memory
from memagent.server.deps import ERRORS, LimitsDep, MemoryDep, SpaceDep, UserDep, Who, check_k, check_text
from memagent.server.settings import ServerLimits
from memagent.server.tenants import Namespace
from memagent.types import Route, Signal
from memagent.wire import (
    AnswerOut,
    AskRequest,
    DecisionOut,
    EntityOut,
    FactHitOut,
    FactSearchRequest,
    FeedbackOut,
    FeedbackRequest,
    ForgetRequest,
    NeighbourOut,
    OpenFeedbackRequest,
    RelationOut,
    SearchHitOut,
    SearchRequest,
    StatementOut,
)

router = APIRouter(prefix="/v1", responses=ERRORS)
At = Annotated[str | None, Query(description="a time (ISO 8601 or free text); default: now")]


# --- search and answers ---------------------------------------------------------------

def _search(memory: Memory, who: Who, body: SearchRequest, limit: ServerLimits) -> list[SearchHitOut]:
    hits = memory.search(who.internal, check_text(body.query, "query", limit), check_k(body.k, limit),
                         body.since, body.until, now=body.now, signals=body.signals, use_time=body.use_time,
                         retrieval=body.retrieval, include_archived=body.include_archived, route=body.route,
                         filters=body.filters)
    return [SearchHitOut.of(h, who.name) for h in hits]


def _json_filters(text: str | None) -> dict[str, Any] | None:
    """The ``filters`` query parameter: a JSON object, or none."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        raise InvalidInputError(f"filters must be a JSON object, got {text[:60]!r}") from None
    if not isinstance(value, dict):
        raise InvalidInputError(f"filters must be a JSON object, got {type(value).__name__}")
    return value


@router.post("/users/{user_id}/search", response_model=list[SearchHitOut], tags=["recall"])
def search(who: UserDep, body: SearchRequest, memory: MemoryDep, limit: LimitsDep) -> list[SearchHitOut]:
    """The `k` best episodes for a query, each with the signals that found it (`Memory.search`).

    Time expressions in the query ("last May") are read against `now`; `since`/`until`
    bound event time; `filters` keeps only episodes whose metadata matches. An unknown user has no hits.
    """
    return _search(memory, who, body, limit)


@router.get("/users/{user_id}/search", response_model=list[SearchHitOut], tags=["recall"],
            summary="Search (query string)")
def search_get(who: UserDep, memory: MemoryDep, limit: LimitsDep,
               q: Annotated[str, Query(description="the query")], k: int = 10,
               since: At = None, until: At = None, now: At = None,
               signals: Annotated[list[Signal] | None, Query()] = None, use_time: bool = True,
               include_archived: bool = False, route: Route | None = None,
               filters: Annotated[str | None, Query(description='metadata filters as a JSON object: '
                                                    '{"topic": "food", "stars": {"$gte": 4}}')] = None
               ) -> list[SearchHitOut]:
    """`POST .../search` with its arguments in the query string (no `retrieval` settings; `filters` as JSON)."""
    body = SearchRequest(query=q, k=k, since=since, until=until, now=now, signals=signals, use_time=use_time,
                         include_archived=include_archived, route=route, filters=_json_filters(filters))
    return _search(memory, who, body, limit)


@router.post("/users/{user_id}/ask", response_model=AnswerOut, tags=["recall"])
def ask(who: UserDep, body: AskRequest, memory: MemoryDep, limit: LimitsDep) -> AnswerOut:
    """Answer a question from the user's memory, by route, with evidence and a trace id (`Memory.ask`).

    Without a chat model the answer is extractive, or "Not mentioned in memory." when
    evidence is weak (`abstained`). Pass `trace_id` to `.../feedback` to rate it.
    """
    answer = memory.ask(who.internal, check_text(body.question, "question", limit), body.at, route=body.route)
    return AnswerOut.of(answer)


def _feedback(memory: Memory, body: FeedbackRequest, internal: str | None, space: Namespace) -> FeedbackOut:
    result = memory.feedback(body.trace_id, body.rating, body.correction, role=body.role, at=body.at,
                             user_id=internal)
    return FeedbackOut.of(result, space.outside(result["user_id"]))


@router.post("/users/{user_id}/feedback", response_model=FeedbackOut, tags=["feedback"])
def feedback(who: UserDep, body: FeedbackRequest, memory: MemoryDep, space: SpaceDep) -> FeedbackOut:
    """Rate an answer of this user by its trace id (`Memory.feedback`); a trace of another user is 404.

    Good reinforces the memories the answer used, bad demotes them for that kind of
    question; a `correction` is stored as a pinned episode and revises profile and graph.
    """
    return _feedback(memory, body, who.internal, space)


@router.post("/feedback", response_model=FeedbackOut, tags=["feedback"], summary="Feedback (user in the body)")
def feedback_any(body: OpenFeedbackRequest, memory: MemoryDep, space: SpaceDep) -> FeedbackOut:
    """`.../users/{user_id}/feedback` with the user in the body; without `user_id` (only on a server
    without API keys) the trace is looked up over every user."""
    if body.user_id is None and space.tenant is not None:
        raise InvalidInputError("user_id is required on a server with API keys")
    internal = space.inside(body.user_id) if body.user_id is not None else None
    return _feedback(memory, FeedbackRequest(**body.model_dump(exclude={"user_id"})), internal, space)


@router.delete("/users/{user_id}/feedback", status_code=204, response_class=Response, tags=["feedback"])
def reset_feedback(who: UserDep, memory: MemoryDep) -> Response:
    """Forget what the user's feedback taught: weights, ratings, feedback strength (`Memory.reset_feedback`)."""
    memory.reset_feedback(who.internal)
    return Response(status_code=204)


# --- profile and knowledge graph ------------------------------------------------------

@router.get("/users/{user_id}/profile", response_model=list[StatementOut], tags=["profile and graph"])
def profile(who: UserDep, memory: MemoryDep, at: At = None) -> list[StatementOut]:
    """The user's profile statements and session summaries valid at `at` (`Memory.profile`)."""
    return [StatementOut.of(s, who.name) for s in memory.profile(who.internal, at)]


@router.get("/users/{user_id}/entity", response_model=EntityOut | None, tags=["profile and graph"])
def entity(who: UserDep, memory: MemoryDep, name: Annotated[str, Query(description="'Ana', 'my sister Ana'")]
           ) -> EntityOut | None:
    """The graph entity a name denotes, or `null` (`Memory.entity`)."""
    found = memory.entity(who.internal, name)
    return EntityOut.of(found, who.name) if found is not None else None


@router.get("/users/{user_id}/facts", response_model=list[RelationOut], tags=["profile and graph"])
def facts(who: UserDep, memory: MemoryDep, entity: Annotated[str, Query(description="an entity's name")],
          at: At = None) -> list[RelationOut]:
    """Relations of an entity valid at `at`; default: the open ones (`Memory.facts`)."""
    return [RelationOut.of(r, who.name) for r in memory.facts(who.internal, entity, at)]


@router.get("/users/{user_id}/neighbours", response_model=list[NeighbourOut], tags=["profile and graph"])
def neighbours(who: UserDep, memory: MemoryDep, entity: Annotated[str, Query()], at: At = None
               ) -> list[NeighbourOut]:
    """Each valid relation of an entity with the entity at its other end (`Memory.neighbours`)."""
    return [NeighbourOut(relation=RelationOut.of(r, who.name), entity=EntityOut.of(e, who.name))
            for r, e in memory.neighbours(who.internal, entity, at)]


@router.get("/users/{user_id}/paths", response_model=list[list[RelationOut]], tags=["profile and graph"])
def paths(who: UserDep, memory: MemoryDep, source: str, target: str,
          max_hops: Annotated[int, Query(ge=1, le=6)] = 3) -> list[list[RelationOut]]:
    """Chains of current relations linking two entities, shortest first (`Memory.paths`)."""
    return [[RelationOut.of(r, who.name) for r in path]
            for path in memory.paths(who.internal, source, target, max_hops)]


def _search_facts(memory: Memory, who: Who, body: FactSearchRequest, limit: ServerLimits) -> list[FactHitOut]:
    hits = memory.search_facts(who.internal, check_text(body.query, "query", limit), check_k(body.k, limit),
                               include_archived=body.include_archived)
    return [FactHitOut.of(h, who.name) for h in hits]


@router.post("/users/{user_id}/facts/search", response_model=list[FactHitOut], tags=["profile and graph"])
def search_facts(who: UserDep, body: FactSearchRequest, memory: MemoryDep, limit: LimitsDep) -> list[FactHitOut]:
    """Profile statements and graph facts nearest to a query, with their source episodes (`Memory.search_facts`)."""
    return _search_facts(memory, who, body, limit)


@router.get("/users/{user_id}/facts/search", response_model=list[FactHitOut], tags=["profile and graph"],
            summary="Search Facts (query string)")
def search_facts_get(who: UserDep, memory: MemoryDep, limit: LimitsDep, q: str, k: int = 10,
                     include_archived: bool = False) -> list[FactHitOut]:
    """`POST .../facts/search` with its arguments in the query string."""
    return _search_facts(memory, who, FactSearchRequest(query=q, k=k, include_archived=include_archived), limit)


# --- maintenance ----------------------------------------------------------------------

@router.post("/users/{user_id}/consolidate", response_model=dict[str, int], tags=["maintenance"])
def consolidate(who: UserDep, memory: MemoryDep) -> dict[str, int]:
    """Turn the user's new episodes into profile statements and graph facts now (`Memory.consolidate`)."""
    return memory.consolidate(who.internal)


@router.post("/consolidate", response_model=dict[str, int], tags=["maintenance"], summary="Consolidate All")
def consolidate_all(memory: MemoryDep, space: SpaceDep) -> dict[str, int]:
    """Consolidate every user (of your tenant, with API keys) now (`Memory.consolidate()`)."""
    if space.tenant is None:
        return memory.consolidate()
    total: Counter[str] = Counter()
    for name in space.users(memory.users()):
        total.update(memory.consolidate(space.inside(name)))
    return dict(total)


@router.post("/users/{user_id}/forget", response_model=list[DecisionOut], tags=["maintenance"])
def forget(who: UserDep, memory: MemoryDep, body: ForgetRequest | None = None) -> list[DecisionOut]:
    """Apply the forgetting policy: archive what stopped mattering, restore what matters again
    (`Memory.forget`). `dry_run` (the default) only says what would change and why."""
    body = body or ForgetRequest()
    return [DecisionOut.of(d) for d in memory.forget(who.internal, body.dry_run, body.at)]
