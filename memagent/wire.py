"""The JSON form of memagent's records and errors, shared by the HTTP server and ``memagent.Client``.

Each ``*Out`` model mirrors one dataclass of ``memagent.types`` field for field.
The server builds it from the dataclass (``EpisodeOut.of(episode, user_id="bob")``
names the user as the caller knows it), the client turns the JSON back into the
dataclass (``.to_type()``), so a ``Client`` returns what ``Memory`` returns.
Request bodies live here too, and ``ERRORS``: the stable error codes and HTTP
statuses of the ``MemagentError`` subclasses.

>>> from datetime import datetime, timezone
>>> from memagent.types import Episode
>>> when = datetime(2024, 3, 2, tzinfo=timezone.utc)
>>> episode = Episode("e1", "acme:bob", "s1", "bob", "I adopted Rex", when, when)
>>> out = EpisodeOut.of(episode, user_id="bob")
>>> out.user_id, EpisodeOut.model_validate_json(out.model_dump_json()).to_type().event_time == when
('bob', True)
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from memagent.answering import EpisodeEvidence
from memagent.config import RetrievalSettings
from memagent.errors import (
    ConfigError,
    EmbedderMismatchError,
    EpisodeNotFoundError,
    ImportFormatError,
    InvalidInputError,
    JobError,
    LockTimeout,
    MemagentError,
    NotFoundError,
    StorageError,
    TimestampError,
    TraceNotFoundError,
    UnknownUserError,
    UnsupportedError,
)
from memagent.policies.forgetting import Action, Decision
from memagent.types import (
    Answer,
    Category,
    Entity,
    Episode,
    EpisodeVersion,
    Evidence,
    FactHit,
    Page,
    Relation,
    Route,
    SearchHit,
    Signal,
    Statement,
)

Stamp = Annotated[str | float | None, Field(
    description="a time: ISO 8601 ('2024-03-02T18:30:00Z'), free text ('8 May 2023') or Unix seconds")]

Filters = Annotated[dict[str, Any] | None, Field(
    description="metadata filters (memagent.filters): {'topic': 'food', 'stars': {'$gte': 4}}; "
                "operators $eq $ne $gt $gte $lt $lte $in $nin $exists")]


def _utc(value: datetime) -> datetime:
    """A parsed datetime with a plain ``datetime.timezone`` (UTC when the offset is zero)."""
    offset = value.utcoffset()
    if offset is None or offset == timedelta(0):
        return value.replace(tzinfo=timezone.utc)
    return value.replace(tzinfo=timezone(offset))


def _maybe_utc(value: datetime | None) -> datetime | None:
    return _utc(value) if value is not None else None


M = TypeVar("M", bound="_Out")


class _Out(BaseModel):
    """A response model read from a dataclass's attributes (``of``) or from JSON."""

    model_config = ConfigDict(from_attributes=True, extra="ignore")

    @classmethod
    def of(cls: type[M], obj: Any, user_id: str | None = None) -> M:
        """The model of ``obj``; ``user_id`` replaces every user id in it (the caller's name of the user)."""
        return cls.model_validate(obj, from_attributes=True, context={"user_id": user_id} if user_id else None)


class _UserScoped(_Out):
    user_id: str = Field(description="the user, as the caller names it")

    @field_validator("user_id")
    @classmethod
    def _caller_name(cls, value: str, info: ValidationInfo) -> str:
        return str((info.context or {}).get("user_id", value))


# --- records --------------------------------------------------------------------

class EpisodeOut(_UserScoped):
    """One stored message or event, as it came."""

    id: str
    session_id: str
    role: str
    text: str
    event_time: datetime
    ingest_time: datetime
    turn: int = 0
    source_id: str | None = Field(None, description="the caller's own message id, if one was given")
    metadata: dict[str, Any] = {}

    def to_type(self) -> Episode:
        return Episode(id=self.id, user_id=self.user_id, session_id=self.session_id, role=self.role,
                       text=self.text, event_time=_utc(self.event_time), ingest_time=_utc(self.ingest_time),
                       turn=self.turn, source_id=self.source_id, metadata=self.metadata)


class EpisodeVersionOut(_UserScoped):
    """One version of an episode's text and metadata: version 1 as added, then one per update."""

    id: str
    episode_id: str
    version: int
    event: str = Field(description="add or update")
    text: str
    at: datetime = Field(description="when this version was made")
    metadata: dict[str, Any] = {}

    def to_type(self) -> EpisodeVersion:
        return EpisodeVersion(id=self.id, user_id=self.user_id, episode_id=self.episode_id, version=self.version,
                              event=self.event, text=self.text, at=_utc(self.at), metadata=self.metadata)


class SearchHitOut(_Out):
    """An episode found by search, its fused score and the signals that found it."""

    episode: EpisodeOut
    score: float
    signals: list[Signal] = Field([], description="lexical, vector, time, neighbour, fact")

    @field_validator("signals", mode="before")
    @classmethod
    def _sorted(cls, value: Any) -> Any:
        return sorted(value, key=str) if isinstance(value, (set, frozenset)) else value

    def to_type(self) -> SearchHit:
        return SearchHit(episode=self.episode.to_type(), score=self.score, signals=frozenset(self.signals))


class PageOut(_Out):
    """One page of a user's episodes; pass ``next_offset`` back as ``offset`` for the next one."""

    items: list[EpisodeOut]
    total: int = Field(description="how many episodes the listing has in all")
    offset: int
    next_offset: int | None

    def to_type(self) -> Page[Episode]:
        return Page(items=[e.to_type() for e in self.items], total=self.total, offset=self.offset,
                    next_offset=self.next_offset)


class StatementOut(_UserScoped):
    """A time-valid profile statement (or session summary) with its evidence episodes."""

    id: str
    kind: Literal["statement", "summary"] = "statement"
    subject: str
    text: str
    category: Category
    confidence: float
    evidence_ids: list[str]
    valid_from: datetime
    valid_to: datetime | None = None
    session_id: str = ""
    slot: str | None = None
    value: str | None = None

    def to_type(self) -> Statement:
        return Statement(id=self.id, user_id=self.user_id, subject=self.subject, text=self.text,
                         category=self.category, confidence=self.confidence,
                         evidence_ids=tuple(self.evidence_ids), valid_from=_utc(self.valid_from),
                         valid_to=_maybe_utc(self.valid_to), session_id=self.session_id, slot=self.slot,
                         value=self.value)


class EntityOut(_UserScoped):
    """A node of the user's knowledge graph; ``aliases`` are the surface forms seen."""

    id: str
    name: str
    type: str
    aliases: list[str] = []
    evidence_ids: list[str] = []

    def to_type(self) -> Entity:
        return Entity(id=self.id, user_id=self.user_id, name=self.name, type=self.type,
                      aliases=tuple(self.aliases), evidence_ids=tuple(self.evidence_ids))


class RelationOut(_UserScoped):
    """A typed, time-valid edge between two entities (by entity id), with its evidence."""

    id: str
    source: str
    relation: str
    target: str
    valid_from: datetime
    valid_to: datetime | None = None
    evidence_ids: list[str] = []
    confidence: float = 0.5
    text: str = ""

    def to_type(self) -> Relation:
        return Relation(id=self.id, user_id=self.user_id, source=self.source, relation=self.relation,
                        target=self.target, valid_from=_utc(self.valid_from), valid_to=_maybe_utc(self.valid_to),
                        evidence_ids=tuple(self.evidence_ids), confidence=self.confidence, text=self.text)


class NeighbourOut(_Out):
    """A valid relation of an entity with the entity at its other end."""

    relation: RelationOut
    entity: EntityOut

    def to_type(self) -> tuple[Relation, Entity]:
        return self.relation.to_type(), self.entity.to_type()


class FactHitOut(_Out):
    """A profile statement or graph relation found by search, with the episodes behind it."""

    item: StatementOut | RelationOut
    score: float
    episodes: list[EpisodeOut]

    def to_type(self) -> FactHit:
        return FactHit(item=self.item.to_type(), score=self.score, episodes=[e.to_type() for e in self.episodes])


class EvidenceOut(_Out):
    """One memory an answer rests on: an episode, or a derived item with its source episodes."""

    kind: str = Field(description="episode, statement, summary or relation")
    id: str
    text: str
    score: float
    episode_ids: list[str]
    role: str = ""
    event_time: datetime | None = None
    signals: list[str] = []
    image_caption: str | None = Field(None, description="an episode's shared image, as described (episodes only)")

    def to_type(self) -> Evidence:
        fields: dict[str, Any] = {"kind": self.kind, "id": self.id, "text": self.text, "score": self.score,
                                  "episode_ids": tuple(self.episode_ids), "role": self.role,
                                  "event_time": _maybe_utc(self.event_time), "signals": tuple(self.signals)}
        if self.image_caption is None:
            return Evidence(**fields)
        return EpisodeEvidence(**fields, image_caption=self.image_caption)


class AnswerOut(_Out):
    """An answer with its route, evidence, cost and the trace id that feedback refers to."""

    text: str
    route: Route
    evidence: list[EvidenceOut]
    abstained: bool = Field(description="True when memory did not hold the answer")
    trace_id: str
    latency_ms: float
    context_tokens: int
    llm_calls: int
    temporal: bool = False
    reason: str = ""
    episode_ids: list[str] = Field([], description="source episodes of the evidence, best first, each once")

    def to_type(self) -> Answer:
        return Answer(text=self.text, route=self.route, evidence=[e.to_type() for e in self.evidence],
                      abstained=self.abstained, trace_id=self.trace_id, latency_ms=self.latency_ms,
                      context_tokens=self.context_tokens, llm_calls=self.llm_calls, temporal=self.temporal,
                      reason=self.reason)


class DecisionOut(_Out):
    """What forgetting does (or would do) with one memory, and why."""

    item_id: str
    kind: str
    action: Action
    retention: float
    stability: float
    reason: str

    def to_type(self) -> Decision:
        return Decision(item_id=self.item_id, kind=self.kind, action=self.action, retention=self.retention,
                        stability=self.stability, reason=self.reason)


class FeedbackOut(_UserScoped):
    """What a rating changed: the memories rated, the correction's episode id, the weights learnt."""

    route: str
    rated: int
    correction_id: str | None = None
    weights: dict[str, float] = {}


class PendingOut(BaseModel):
    """How many episodes wait for consolidation, and when the oldest of them was stored."""

    pending: int
    oldest: datetime | None = None


class IdsOut(BaseModel):
    """Episode ids, in the order of the messages or lines given."""

    ids: list[str]


class CountOut(BaseModel):
    count: int


class DeletedOut(BaseModel):
    """How many episodes were deleted."""

    deleted: int


class ResetOut(BaseModel):
    """How many users were deleted, with everything they had."""

    users_deleted: int


class UsersOut(BaseModel):
    """Every user with at least one episode (of the caller's tenant), sorted."""

    users: list[str]


class Health(BaseModel):
    """The server is up; ``pid`` names the process (of ``--workers N``) that answered."""

    status: Literal["ok"] = "ok"
    version: str
    pid: int


# --- requests -------------------------------------------------------------------

class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageIn(_In):
    """One message; the same keys as ``Memory.add`` reads from a dict."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    text: str = Field(validation_alias=AliasChoices("text", "content"), description="the message ('content' too)")
    role: str | None = Field("user", validation_alias=AliasChoices("role", "speaker"), description="the speaker")
    timestamp: Stamp = Field(None, validation_alias=AliasChoices("timestamp", "time", "created_at"))
    id: str | int | None = Field(None, validation_alias=AliasChoices("id", "message_id"),
                                 description="your message id: re-adding it stores nothing new")
    metadata: dict[str, Any] | None = Field(None, description="your own ids and data, stored as given")

    def to_dict(self) -> dict[str, Any]:
        """The message as ``Memory.add`` reads a dict (a ``None`` is a field not given)."""
        given = {"text": self.text, "role": self.role, "timestamp": self.timestamp, "id": self.id,
                 "metadata": self.metadata}
        return {key: value for key, value in given.items() if value is not None}


class AddRequest(_In):
    """Messages to store in order; a bad one rejects the whole batch before anything is written."""

    messages: list[MessageIn | str] | MessageIn | str
    session_id: str | None = None
    now: Stamp = Field(None, description="the time of messages without a timestamp (default: now)")
    infer: bool = Field(False, description="consolidate the user at once: profile and graph follow before the reply")

    def message_dicts(self) -> list[dict[str, Any] | str]:
        batch = self.messages if isinstance(self.messages, list) else [self.messages]
        return [m.to_dict() if isinstance(m, MessageIn) else m for m in batch]


class SearchRequest(_In):
    """A search of one user's episodes (``Memory.search``)."""

    query: str
    k: int = Field(10, description="how many hits")
    since: Stamp = Field(None, description="event time lower bound (inclusive)")
    until: Stamp = Field(None, description="event time upper bound (exclusive)")
    now: Stamp = Field(None, description="what 'last May', 'two weeks ago' are read against (default: now)")
    signals: list[Signal] | None = Field(None, description="restrict retrieval, e.g. ['lexical']")
    use_time: bool = True
    retrieval: RetrievalSettings | None = Field(None, description="ranking settings for this call")
    include_archived: bool = False
    route: Route | None = Field(None, description="apply the feedback given on answers of this route")
    filters: Filters = None


class UpdateRequest(_In):
    """A change to one episode (``Memory.update``); the old version stays in its history."""

    text: str | None = Field(None, description="the new text (embedded and consolidated again)")
    metadata: dict[str, Any] | None = Field(None, description="the new metadata, replacing the old whole")
    now: Stamp = Field(None, description="when the change is made (default: now)")


class QueryRequest(_In):
    """A user's episodes in write order, those whose metadata matches ``filters`` (``Memory.get_all``)."""

    filters: Filters = None
    limit: int | None = Field(None, ge=1, strict=True, description="at most this many (default: every match)")


class DeleteRequest(_In):
    """A delete of a user's episodes whose metadata matches ``filters``; none: all (``Memory.delete_all``)."""

    filters: Filters = None


class FactSearchRequest(_In):
    """A search of one user's profile statements and graph facts (``Memory.search_facts``)."""

    query: str
    k: int = 10
    include_archived: bool = False


class AskRequest(_In):
    """A question answered from one user's memory (``Memory.ask``)."""

    question: str
    at: Stamp = Field(None, description="when the question is asked (default: now)")
    route: Route | None = Field(None, description="force a route instead of the routing policy")


class FeedbackRequest(_In):
    """A rating of an answer by its trace id (``Memory.feedback``)."""

    trace_id: str
    rating: bool | float | str = Field(description="true/false, 'good'/'bad', or a number in [-1, 1]")
    correction: str | None = Field(None, description="the right answer, stored as a pinned episode")
    role: str = "user"
    at: Stamp = None


class OpenFeedbackRequest(FeedbackRequest):
    """A rating with the user in the body; ``user_id`` may be left out only on a server without keys."""

    user_id: str | None = None


class ForgetRequest(_In):
    """A run of the forgetting policy (``Memory.forget``); ``dry_run`` only reports."""

    dry_run: bool = True
    at: Stamp = None


# --- errors ---------------------------------------------------------------------

class ErrorBody(BaseModel):
    code: str = Field(description="a stable code: unknown_user, invalid_input, too_large, unauthorized...")
    message: str
    details: dict[str, Any] = {}


class ErrorOut(BaseModel):
    """Every error response: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorBody


# Most specific first: an error takes the code of the first class it is an instance of.
ERRORS: tuple[tuple[type[MemagentError], str, int], ...] = (
    (TimestampError, "invalid_timestamp", 422),
    (ImportFormatError, "invalid_import", 422),
    (InvalidInputError, "invalid_input", 422),
    (UnknownUserError, "unknown_user", 404),
    (EpisodeNotFoundError, "episode_not_found", 404),
    (TraceNotFoundError, "trace_not_found", 404),
    (NotFoundError, "not_found", 404),
    (EmbedderMismatchError, "embedder_mismatch", 500),
    (ConfigError, "config_error", 422),
    (UnsupportedError, "unsupported", 501),
    (LockTimeout, "locked", 409),
    (JobError, "job_failed", 500),
    (StorageError, "storage_error", 503),
    (MemagentError, "error", 500),
)
DETAILS = ("user_id", "episode_id", "trace_id", "timeout")


def error_code(exc: MemagentError) -> tuple[str, int]:
    """The stable code and HTTP status of an error."""
    return next((code, status) for kind, code, status in ERRORS if isinstance(exc, kind))


def error_from(code: str, message: str, details: dict[str, Any] | None = None) -> MemagentError | None:
    """The ``MemagentError`` an error response stands for (``None`` for codes of the HTTP layer)."""
    kind = next((k for k, c, _ in ERRORS if c == code), None)
    if kind is None:
        return None
    exc = kind.__new__(kind)
    Exception.__init__(exc, message)  # the subclasses' own __init__ build a message from ids
    for name in DETAILS:
        if details and name in details:
            setattr(exc, name, details[name])
    return exc
