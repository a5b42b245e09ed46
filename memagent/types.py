"""Plain records that every layer shares: messages in, episodes stored, hits out."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar


class TextEnum(str, Enum):
    """A str-valued enum that prints as its value on every Python (``f"{Action.KEEP}"`` is "keep")."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Signal(str, Enum):
    """Which retrieval signal put a hit in the result list."""

    LEXICAL = "lexical"
    VECTOR = "vector"
    TIME = "time"
    NEIGHBOUR = "neighbour"
    FACT = "fact"  # a profile statement or graph fact whose evidence is this episode
    SPEAKER = "speaker"  # said by the one speaker the question names ("Where has Melanie camped?")


@dataclass(frozen=True)
class Message:
    """One message as a caller hands it to ``Memory.add``.

    ``id`` is the caller's own message id: re-adding a message with the same id
    stores nothing new. ``timestamp`` may be a datetime, an ISO string or a
    Unix time; ``None`` means "now".
    """

    text: str
    role: str = "user"
    timestamp: Any = None
    id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Episode:
    """One stored message or event of one user, as it came."""

    id: str
    user_id: str
    session_id: str
    role: str
    text: str
    event_time: datetime
    ingest_time: datetime
    turn: int = 0
    source_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601)."""
        data = asdict(self)
        data["event_time"] = self.event_time.isoformat()
        data["ingest_time"] = self.ingest_time.isoformat()
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class EpisodeVersion:
    """One version of an episode's text and metadata: what ``Memory.history`` lists.

    Version 1 is the episode as added (``event="add"``); each ``Memory.update``
    adds the next (``event="update"``), at the time it was made.
    """

    id: str
    user_id: str
    episode_id: str
    version: int
    event: str
    text: str
    at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


@dataclass(frozen=True)
class SearchHit:
    """An episode found by search, its fused score and the signals that found it."""

    episode: Episode
    score: float
    signals: frozenset[Signal] = frozenset()

    @property
    def signal_names(self) -> list[str]:
        return sorted(s.value for s in self.signals)


@dataclass(frozen=True)
class TimeRange:
    """A half-open interval of event time ``[start, end)`` named in a query."""

    start: datetime
    end: datetime
    expression: str = ""

    def contains(self, when: datetime) -> bool:
        return self.start <= when < self.end


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; pass ``next_offset`` back to get the next one."""

    items: list[T]
    total: int
    offset: int
    next_offset: int | None


# --- derived tiers: profile statements and the knowledge graph --------------

class Category(str, Enum):
    """What a profile statement is about."""

    IDENTITY = "identity"
    LOCATION = "location"
    WORK = "work/education"
    RELATIONSHIP = "relationship"
    PREFERENCE = "preference"
    DISLIKE = "dislike"
    HABIT = "habit"
    GOAL = "goal"
    HEALTH = "health"
    POSSESSION = "possession"
    EVENT = "event"
    SUMMARY = "summary"


@dataclass(frozen=True)
class Triple:
    """A typed relation read from one statement: ``Caroline -[has_sister]-> Ana``.

    ``object_type`` is one of person, pet, place, organisation, activity, thing.
    ``functional`` relations hold one object at a time (lives_in, works_at,
    partner_of): a new object closes the old edge.
    """

    subject: str
    relation: str
    object: str
    object_type: str = "thing"
    functional: bool = False


@dataclass(frozen=True)
class Candidate:
    """A statement extracted from one episode, before it is merged into the profile.

    ``slot``/``value`` name an exclusive attribute (``home`` = ``Porto``): a later
    candidate with the same subject and slot and another value contradicts it.
    """

    subject: str
    text: str
    category: Category
    confidence: float
    episode_id: str
    session_id: str
    event_time: datetime
    slot: str | None = None
    value: str | None = None
    triples: tuple[Triple, ...] = ()


@dataclass(frozen=True)
class Statement:
    """One time-valid profile statement (or session summary) with its evidence episodes."""

    id: str
    user_id: str
    subject: str
    text: str
    category: Category
    confidence: float
    evidence_ids: tuple[str, ...]
    valid_from: datetime
    valid_to: datetime | None = None
    session_id: str = ""
    slot: str | None = None
    value: str | None = None

    @property
    def kind(self) -> str:
        return "summary" if self.category is Category.SUMMARY else "statement"

    def valid_at(self, when: datetime) -> bool:
        return _valid(self.valid_from, self.valid_to, when)


def _valid(valid_from: datetime, valid_to: datetime | None, when: datetime) -> bool:
    """Whether ``when`` lies in ``[valid_from, valid_to)``; an open end is still valid."""
    return valid_from <= when and (valid_to is None or when < valid_to)


@dataclass(frozen=True)
class Entity:
    """A node of a user's knowledge graph; ``aliases`` are the surface forms seen."""

    id: str
    user_id: str
    name: str
    type: str
    aliases: tuple[str, ...] = ()
    evidence_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Relation:
    """A typed, time-valid edge between two entities of one user, with its evidence."""

    id: str
    user_id: str
    source: str
    relation: str
    target: str
    valid_from: datetime
    valid_to: datetime | None = None
    evidence_ids: tuple[str, ...] = ()
    confidence: float = 0.5
    text: str = ""

    def valid_at(self, when: datetime) -> bool:
        return _valid(self.valid_from, self.valid_to, when)


@dataclass(frozen=True)
class FactHit:
    """A profile statement or graph relation found by search, with the episodes behind it."""

    item: Statement | Relation
    score: float
    episodes: list[Episode]


class Route(str, Enum):
    """How directly a question's answer lies in the user's memory."""

    EXTRACTION = "extraction"          # an explicit fact: episodic search
    ABSTRACTION = "abstraction"        # inferred from many records: the profile first
    GENERALIZATION = "generalization"  # personal facts plus world knowledge


@dataclass(frozen=True)
class Evidence:
    """One memory an answer rests on: an episode, or a derived item with its source episodes."""

    kind: str  # "episode", "statement", "summary" or "relation"
    id: str
    text: str
    score: float
    episode_ids: tuple[str, ...]
    role: str = ""
    event_time: datetime | None = None
    signals: tuple[str, ...] = ()


@dataclass(frozen=True)
class Answer:
    """What ``Memory.ask`` returns: the answer with its route, evidence and cost."""

    text: str
    route: Route
    evidence: list[Evidence]
    abstained: bool
    trace_id: str
    latency_ms: float
    context_tokens: int
    llm_calls: int
    temporal: bool = False
    reason: str = ""

    @property
    def path(self) -> str:
        """Which path produced the text: ``"llm"`` (a chat model's reply that passed the checks)
        or ``"rules"`` (the LLM-free answer; ``reason`` says why, and whether a reply was overruled)."""
        return "llm" if self.reason == "chat model" else "rules"

    @property
    def episode_ids(self) -> list[str]:
        """Source episodes of the evidence, best first, each once."""
        return list(dict.fromkeys(i for e in self.evidence for i in e.episode_ids))
