"""Plain records that every layer shares: messages in, episodes stored, hits out."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar


class Signal(str, Enum):
    """Which retrieval signal put a hit in the result list."""

    LEXICAL = "lexical"
    VECTOR = "vector"
    TIME = "time"
    NEIGHBOUR = "neighbour"


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
