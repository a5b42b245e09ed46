"""The inspector: a page at ``/ui`` that shows one user's memory, and the JSON it reads
that the main API does not serve, under ``/v1/inspect``.

The page (``static/inspector.html``, ``.js`` and ``.css``: plain JS, no framework,
nothing fetched from another host) is public like any static file; what it shows
comes from JSON routes behind the API keys, scoped to the caller's tenant like every
other route. It lists users, episodes and search hits through the main API
(``/v1/users``, ``.../episodes``, ``.../search``) and reads here what only it needs:
an overview of the user, the profile with its history (closed statements with their
validity intervals), the knowledge graph as nodes and edges at a date, what
forgetting archived (or would archive) and why, and the ratings and corrections.
Unlike the main API, these routes answer 404 ``unknown_user`` for a user with no
episodes, which is what another tenant's user is.

>>> from fastapi import FastAPI
>>> app = FastAPI()
>>> app.include_router(router)      # create_app does this
>>> [path for path in app.openapi()["paths"]][:2]
['/v1/inspect/users/{user_id}', '/v1/inspect/users/{user_id}/profile']
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from memagent.errors import UnknownUserError
from memagent.memory import Memory
from memagent.records import Kind, Rating, Trace, Usage
from memagent.server.deps import ERRORS, LimitsDep, MemoryDep, UserDep, Who
from memagent.timeparse import to_datetime
from memagent.types import Statement
from memagent.wire import DecisionOut, EntityOut, EpisodeOut, RelationOut, StatementOut

STATIC = Path(__file__).parent / "static"
ASSETS = {"inspector.js": "text/javascript", "inspector.css": "text/css"}
CORRECTIONS = "corrections"  # the session Memory.feedback stores corrections in
# The page loads only its own files and talks only to this server; nothing inline runs.
HEADERS = {"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                      "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}
At = Annotated[str | None, Query(description="a time (ISO 8601 or free text); default: now")]
Limit = Annotated[int, Query(ge=1, description="the most items of each list (capped at max_page_limit)")]

router = APIRouter()
api = APIRouter(prefix="/v1/inspect", tags=["inspector"], responses=ERRORS)


# --- the page -------------------------------------------------------------------------

@router.get("/ui", include_in_schema=False)
async def page() -> FileResponse:
    """The inspector page; it asks for an API key when the server needs one."""
    return FileResponse(STATIC / "inspector.html", media_type="text/html", headers=HEADERS)


@router.get("/ui/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    """The page's script and style sheet (only those: no other file of the package is served)."""
    if name not in ASSETS:
        raise HTTPException(404, f"no inspector asset {name!r}")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=HEADERS)


# --- response models -------------------------------------------------------------------

class OverviewOut(BaseModel):
    """How much of each tier a user has."""

    user_id: str
    episodes: int
    sessions: dict[str, int] = Field(description="episodes per session")
    pending: int = Field(description="episodes not consolidated yet")
    statements: int = Field(description="profile statements and summaries, closed ones included")
    open_statements: int
    entities: int
    relations: int
    archived: int = Field(description="memories the forgetting policy archived")
    ratings: int
    corrections: int


class ProfileItemOut(BaseModel):
    """A statement of the profile's history, and where it stands at the date asked."""

    statement: StatementOut
    valid: bool = Field(description="valid at `at`: valid_from <= at < valid_to")
    archived: bool
    closed_by: str | None = Field(None, description="the statement that replaced this one (same subject and slot)")


class ProfileAtOut(BaseModel):
    """Every profile statement with its validity interval, marked valid or not at ``at``."""

    user_id: str
    at: datetime
    statements: list[ProfileItemOut]


class NodeOut(BaseModel):
    entity: EntityOut
    degree: int = Field(description="edges of this picture at this node")


class EdgeOut(BaseModel):
    relation: RelationOut
    archived: bool


class GraphOut(BaseModel):
    """The knowledge graph at a date: entities with a relation valid then (and those with none ever)."""

    user_id: str
    at: datetime | None = Field(None, description="null: the relations open now")
    nodes: list[NodeOut]
    edges: list[EdgeOut]
    truncated: bool = Field(description="nodes were left out past `limit` (the least connected ones)")


class ItemOut(BaseModel):
    """One memory as forgetting sees it: its text, usage and the policy's last reason."""

    item_id: str
    kind: str
    text: str
    reason: str
    importance: float
    accesses: int
    feedback: float
    pinned: bool
    created: datetime
    last_reinforced: datetime | None = None


class PlannedOut(BaseModel):
    """What a run of forgetting at ``at`` would change, with the memory's text."""

    decision: DecisionOut
    text: str


class ForgettingOut(BaseModel):
    user_id: str
    at: datetime
    archived: list[ItemOut] = Field(description="archived memories, newest first, with the reason")
    archived_total: int
    restored: list[ItemOut] = Field(description="memories archived once and restored since, with the reason")
    planned: list[PlannedOut] = Field(description="what forgetting would archive or restore at `at` (a dry run)")


class RatedItemOut(BaseModel):
    item_id: str
    kind: str
    text: str
    delta: float = Field(description="+ reinforced, - demoted for questions like this one")


class RatedAnswerOut(BaseModel):
    """One rated answer: its question (from the answer's trace) and the memories the rating moved."""

    trace_id: str
    question: str
    answer: str
    route: str
    asked_at: datetime | None = None
    rated_at: datetime
    items: list[RatedItemOut]


class CorrectionOut(BaseModel):
    """A correction the user gave (a pinned episode) and the answer it corrected."""

    episode: EpisodeOut
    trace_id: str | None = None
    question: str = ""
    answer: str | None = Field(None, description="the corrected answer, while its trace is kept")


class FeedbackLogOut(BaseModel):
    user_id: str
    answers: list[RatedAnswerOut] = Field(description="rated answers, last rated first")
    corrections: list[CorrectionOut] = Field(description="newest first")
    weights: dict[str, float] = Field(description="the user's learned signal and route weights")


# --- helpers ------------------------------------------------------------------------

def _known(memory: Memory, who: Who) -> None:
    if memory.count(who.internal) == 0:
        raise UnknownUserError(who.internal)


def _at(at: str | None, memory: Memory) -> datetime:
    return to_datetime(at) if at is not None else memory.clock()


def _cap(limit: int, most: int) -> int:
    return min(limit, most)


def _texts(memory: Memory, user_id: str, ids: Iterable[str]) -> dict[str, str]:
    """The text of each memory (episode, statement or relation) by id; unknown ids are left out."""
    wanted = set(ids)
    profile, graph = memory.tiers.get(user_id)
    found = {s.id: s.text for s in profile.statements if s.id in wanted}
    found |= {i: r.text or f"{r.source} {r.relation} {r.target}" for i, r in graph.relations.items() if i in wanted}
    rest = [i for i in wanted if i not in found]
    found |= {e.id: e.text for e in memory.episodes.get(user_id, rest)}
    return found


def _closed_by(statements: list[Statement]) -> dict[str, str]:
    """For each closed statement, the one that opened when it closed (same subject and slot)."""
    opened = {(s.subject, s.slot, s.valid_from): s.id for s in statements if s.slot}
    return {s.id: opened[(s.subject, s.slot, s.valid_to)] for s in statements
            if s.slot and s.valid_to is not None and (s.subject, s.slot, s.valid_to) in opened}


def _item(usage: Usage, text: str) -> ItemOut:
    return ItemOut(item_id=usage.id, kind=usage.kind, text=text, reason=usage.reason, importance=usage.importance,
                   accesses=usage.accesses, feedback=usage.feedback, pinned=usage.pinned, created=usage.created,
                   last_reinforced=usage.last_reinforced)


def _corrections(memory: Memory, who: Who, limit: int) -> list[EpisodeOut]:
    total = memory.list(who.internal, 0, 1, CORRECTIONS).total
    if not total:
        return []
    page = memory.list(who.internal, max(0, total - limit), limit, CORRECTIONS)
    return [EpisodeOut.of(e, who.name) for e in reversed(page.items) if "correction_of" in e.metadata]


def _answers(ratings: list[Rating], traces: dict[str, Trace], kinds: dict[str, str],
             texts: dict[str, str], limit: int) -> list[RatedAnswerOut]:
    by_trace: dict[str, list[Rating]] = {}
    for rating in ratings:
        by_trace.setdefault(rating.id.partition("\x00")[0], []).append(rating)
    answers = []
    for trace_id, given in by_trace.items():
        trace = traces.get(trace_id)
        answers.append(RatedAnswerOut(
            trace_id=trace_id, question=trace.question if trace else "", answer=trace.answer if trace else "",
            route=given[0].route, asked_at=trace.asked_at if trace else None,
            rated_at=max(r.rated_at for r in given),
            items=[RatedItemOut(item_id=r.item_id, kind=kinds.get(r.item_id, "episode"),
                                text=texts.get(r.item_id, ""), delta=r.delta) for r in given]))
    return sorted(answers, key=lambda a: a.rated_at, reverse=True)[:limit]


# --- the JSON the page reads -------------------------------------------------------------

@api.get("/users/{user_id}", response_model=OverviewOut)
def overview(who: UserDep, memory: MemoryDep) -> OverviewOut:
    """How many episodes (per session), statements, entities, relations, archived memories,
    ratings and corrections the user has."""
    _known(memory, who)
    profile, graph = memory.tiers.get(who.internal)
    usage = memory.tiers.usage(who.internal)
    sessions = memory.episodes.index(who.internal).session_sizes()
    return OverviewOut(user_id=who.name, episodes=memory.count(who.internal), sessions=dict(sorted(sessions.items())),
                       pending=memory.pending(who.internal), statements=len(profile.statements),
                       open_statements=sum(s.valid_to is None for s in profile.statements),
                       entities=len(graph.entities), relations=len(graph.relations), archived=len(usage.archived),
                       ratings=len(usage.ratings), corrections=sessions.get(CORRECTIONS, 0))


@api.get("/users/{user_id}/profile", response_model=ProfileAtOut)
def profile_history(who: UserDep, memory: MemoryDep, at: At = None) -> ProfileAtOut:
    """Every profile statement and summary, closed ones included, each with its validity
    interval and whether it held at `at` (default: now). `/v1/users/{user_id}/profile`
    gives only those that held."""
    _known(memory, who)
    when = _at(at, memory)
    with memory.tiers.lock(who.internal):
        statements = list(memory.tiers.profile(who.internal).statements)
    archived = memory.tiers.usage(who.internal).archived
    closed_by = _closed_by(statements)
    ordered = sorted(statements, key=lambda s: (s.kind == "summary", s.valid_from, s.text))
    return ProfileAtOut(user_id=who.name, at=when, statements=[
        ProfileItemOut(statement=StatementOut.of(s, who.name), valid=s.valid_at(when), archived=s.id in archived,
                       closed_by=closed_by.get(s.id)) for s in ordered])


@api.get("/users/{user_id}/graph", response_model=GraphOut)
def graph_at(who: UserDep, memory: MemoryDep, limits: LimitsDep, at: At = None, limit: Limit = 150) -> GraphOut:
    """The knowledge graph as nodes and edges: the relations valid at `at` (default: the open
    ones) and their entities, plus entities that never had a relation; the `limit` best
    connected nodes."""
    _known(memory, who)
    when = to_datetime(at) if at is not None else None
    with memory.tiers.lock(who.internal):
        graph = memory.tiers.graph(who.internal)
        entities, relations = dict(graph.entities), list(graph.relations.values())
    valid = [r for r in relations if (r.valid_to is None if when is None else r.valid_at(when))]
    related = {end for r in relations for end in (r.source, r.target)}
    degree = dict.fromkeys((i for i in entities if i not in related), 0)
    for r in valid:
        for end in (r.source, r.target):
            degree[end] = degree.get(end, 0) + 1
    kept = sorted((i for i in degree if i in entities), key=lambda i: (-degree[i], entities[i].name))
    kept = kept[:_cap(limit, limits.max_page_limit)]
    shown = set(kept)
    archived = memory.tiers.usage(who.internal).archived
    return GraphOut(user_id=who.name, at=when, truncated=len(kept) < len(degree),
                    nodes=[NodeOut(entity=EntityOut.of(entities[i], who.name), degree=degree[i]) for i in kept],
                    edges=[EdgeOut(relation=RelationOut.of(r, who.name), archived=r.id in archived)
                           for r in valid if r.source in shown and r.target in shown])


@api.get("/users/{user_id}/forgetting", response_model=ForgettingOut)
def forgetting(who: UserDep, memory: MemoryDep, limits: LimitsDep, at: At = None, limit: Limit = 200
               ) -> ForgettingOut:
    """What the forgetting policy archived, and restored, with its reasons; and what a run at
    `at` (default: now) would change: a dry run, nothing is written."""
    _known(memory, who)
    limit = _cap(limit, limits.max_page_limit)
    when = _at(at, memory)
    planned = sorted(memory.forget(who.internal, dry_run=True, at=when), key=lambda d: d.retention)[:limit]
    records = list(memory.tiers.usage(who.internal).records.values())
    archived = sorted((u for u in records if u.archived), key=lambda u: u.created, reverse=True)
    restored = sorted((u for u in records if not u.archived and u.reason), key=lambda u: u.created, reverse=True)
    texts = _texts(memory, who.internal, [u.id for u in archived[:limit] + restored[:limit]] +
                   [d.item_id for d in planned])
    return ForgettingOut(user_id=who.name, at=when, archived_total=len(archived),
                         archived=[_item(u, texts.get(u.id, "")) for u in archived[:limit]],
                         restored=[_item(u, texts.get(u.id, "")) for u in restored[:limit]],
                         planned=[PlannedOut(decision=DecisionOut.of(d), text=texts.get(d.item_id, ""))
                                  for d in planned])


@api.get("/users/{user_id}/feedback", response_model=FeedbackLogOut)
def feedback_log(who: UserDep, memory: MemoryDep, limits: LimitsDep, limit: Limit = 100) -> FeedbackLogOut:
    """The rated answers with the memories each rating moved, the corrections with the
    answers they corrected, and the weights the user's feedback taught."""
    _known(memory, who)
    limit = _cap(limit, limits.max_page_limit)
    usage = memory.tiers.usage(who.internal)
    ratings = list(usage.ratings)
    corrections = _corrections(memory, who, limit)
    trace_ids = {r.id.partition("\x00")[0] for r in ratings} | {str(c.metadata["correction_of"]) for c in corrections}
    traces = {t.id: t for t in memory.backend.get(Kind.TRACE, who.internal, sorted(trace_ids))}
    kinds = {i: u.kind for i, u in usage.records.items()}
    texts = _texts(memory, who.internal, [r.item_id for r in ratings])
    out = []
    for c in corrections:
        trace = traces.get(str(c.metadata["correction_of"]))
        out.append(CorrectionOut(episode=c, trace_id=str(c.metadata["correction_of"]),
                                 question=str(c.metadata.get("question", "")), answer=trace.answer if trace else None))
    return FeedbackLogOut(user_id=who.name, answers=_answers(ratings, traces, kinds, texts, limit), corrections=out,
                          weights=dict(sorted(usage.weights.items())))


router.include_router(api)
