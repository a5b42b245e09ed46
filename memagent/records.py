"""What the storage contract stores: one dataclass per kind of record, defined once.

Every backend derives its schema and its conversions from these classes
(``memagent.store.schema``), so adding a field means editing one class. A
record always carries ``id`` and ``user_id``: every read and write of a
backend is scoped by user. The kinds that carry an embedding are listed in
``VECTOR_KINDS``; their vectors travel beside the records, row for row.

>>> Kind.STATEMENT.value, Kind.STATEMENT in VECTOR_KINDS
('statements', True)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Annotated, Any

from memagent.types import Entity, Episode, EpisodeVersion, Relation, Statement, TextEnum

Int64 = Annotated[int, "int64"]  # an integer column wider than the default int32


class Kind(TextEnum):
    """A kind of stored record; its value is the table (or collection) name."""

    EPISODE = "episodes"
    STATEMENT = "statements"
    ENTITY = "entities"
    RELATION = "relations"
    WATERMARK = "watermarks"
    TRACE = "traces"
    USAGE = "usage"
    WEIGHT = "weights"
    RATING = "ratings"
    HISTORY = "history"


@dataclass(frozen=True)
class EpisodeRecord:
    """An episode as stored: the episode plus its write order and indexed texts.

    ``search_text`` is the turn as indexed (with its speaker), ``context_text``
    the turn with the one before it, for full-text search in context.
    """

    id: str
    user_id: str
    session_id: str
    role: str
    text: str
    event_time: datetime
    ingest_time: datetime
    seq: Int64
    turn: int
    source_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    search_text: str = ""
    context_text: str = ""

    @property
    def episode(self) -> Episode:
        return Episode(id=self.id, user_id=self.user_id, session_id=self.session_id, role=self.role,
                       text=self.text, event_time=self.event_time, ingest_time=self.ingest_time,
                       turn=self.turn, source_id=self.source_id, metadata=self.metadata)


@dataclass(frozen=True)
class Watermark:
    """The last episode ``seq`` consolidated for a user."""

    id: str
    user_id: str
    seq: Int64
    updated_at: datetime


class EvidenceKind(TextEnum):
    """What an answer's evidence item is."""

    EPISODE = "episode"
    STATEMENT = "statement"
    SUMMARY = "summary"
    RELATION = "relation"


@dataclass(frozen=True)
class TraceEvidence:
    """One evidence item of a traced answer: what it was, the signals that found it,
    and whether the answer's text came from it (``used``)."""

    kind: EvidenceKind
    id: str
    signals: tuple[str, ...] = ()
    used: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "id": self.id, "signals": list(self.signals), "used": self.used}

    @classmethod
    def from_json(cls, data: Any) -> TraceEvidence:
        """Read one item; the positional form ``[kind, id, signals, used]`` of older traces too."""
        if isinstance(data, list):
            data = dict(zip(("kind", "id", "signals", "used"), data))
        return cls(EvidenceKind(data["kind"]), str(data["id"]), tuple(data.get("signals") or ()),
                   bool(data.get("used", False)))


@dataclass(frozen=True)
class Trace:
    """One answered question, kept so that feedback can refer to it by ``id``."""

    id: str
    user_id: str
    question: str
    route: str
    answer: str
    abstained: bool
    evidence: tuple[TraceEvidence, ...]
    episode_ids: tuple[str, ...]
    asked_at: datetime
    latency_ms: float
    context_tokens: int
    llm_calls: int


@dataclass(frozen=True)
class Usage:
    """How one memory (episode, statement or relation) has been used, for forgetting."""

    id: str
    user_id: str
    kind: str
    created: datetime
    importance: float = 0.0
    accesses: int = 0
    last_reinforced: datetime | None = None
    feedback: float = 0.0
    route_feedback: dict[str, float] = field(default_factory=dict)
    pinned: bool = False
    archived: bool = False
    reason: str = ""

    @property
    def item_id(self) -> str:
        return self.id


@dataclass(frozen=True)
class Rating:
    """One rating of one memory, for the question (its vector) and route of the rated answer."""

    id: str
    user_id: str
    item_id: str
    route: str
    delta: float
    rated_at: datetime


@dataclass(frozen=True)
class Weight:
    """One learned per-user weight (``signal:lexical``, ``route:abstraction``...)."""

    id: str
    user_id: str
    key: str
    value: float


RECORD_TYPES: dict[Kind, type] = {
    Kind.EPISODE: EpisodeRecord, Kind.STATEMENT: Statement, Kind.ENTITY: Entity, Kind.RELATION: Relation,
    Kind.WATERMARK: Watermark, Kind.TRACE: Trace, Kind.USAGE: Usage, Kind.WEIGHT: Weight, Kind.RATING: Rating,
    Kind.HISTORY: EpisodeVersion,
}
VECTOR_KINDS = frozenset({Kind.EPISODE, Kind.STATEMENT, Kind.ENTITY, Kind.RELATION, Kind.RATING})
# Columns with a full-text index, per kind.
TEXT_FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.EPISODE: ("search_text", "context_text"), Kind.STATEMENT: ("text",), Kind.RELATION: ("text",),
}


def record_json(record: Any) -> str:
    """A record as one JSON line (for logs and debugging)."""
    return json.dumps(asdict(record), default=str, sort_keys=True)
