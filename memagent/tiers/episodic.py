"""The episodic tier: checking what callers hand in and turning it into stored rows.

Validation happens before anything is embedded or written, so a bad message
in a batch rejects the whole batch and leaves the store as it was.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from memagent.errors import InvalidInputError, TimestampError
from memagent.extraction import image_caption, with_caption
from memagent.records import EpisodeRecord
from memagent.timeparse import to_datetime
from memagent.types import Episode, Message

MAX_ID_CHARS = 256
_NAMESPACE = uuid.UUID("6f1c1b7e-5a43-4c55-9d6a-0b3f6f0e2a11")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
# In message text: tabs and newlines are fine; NUL, ESC (terminal escapes) and lone surrogates are not.
_BAD_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_MESSAGE_KEYS = {
    "text": "text", "content": "text",
    "role": "role", "speaker": "role",
    "timestamp": "timestamp", "time": "timestamp", "created_at": "timestamp",
    "id": "id", "message_id": "id",
    "metadata": "metadata",
}
_LANGCHAIN_ROLES = {"human": "user", "ai": "assistant"}


SCOPE_SEPARATOR = "\x1f"  # a control character: no plain id can contain it, so no scope equals a plain user id
SCOPE_LABELS = ("agent", "run")


def scope(user_id: str, agent_id: str | None = None, run_id: str | None = None) -> str:
    """The id of a user's memory scoped to an agent and/or a run; isolated like another user.

    >>> scope("alice"), scope("alice", agent_id="planner").split(SCOPE_SEPARATOR)
    ('alice', ['alice', 'agent=planner'])
    """
    check_id(user_id)
    parts = [user_id]
    for label, value in zip(SCOPE_LABELS, (agent_id, run_id)):
        if value is not None:
            parts.append(f"{label}={check_id(value, label + '_id')}")
    return SCOPE_SEPARATOR.join(parts)


def check_id(value: object, what: str = "user_id") -> str:
    """Return ``value`` if it is a usable id, else raise ``InvalidInputError``.

    A user id may be a scope (``scope(user, agent_id=..., run_id=...)``); no other id holds control characters.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_ID_CHARS:
        raise InvalidInputError(f"{what} is longer than {MAX_ID_CHARS} characters")
    if what == "user_id" and SCOPE_SEPARATOR in value:
        user, *labels = value.split(SCOPE_SEPARATOR)
        names = [label.partition("=")[0] for label in labels]
        if (not user.strip() or names != [n for n in SCOPE_LABELS if n in names] or len(set(names)) != len(names)
                or any(not label.partition("=")[2].strip() or _CONTROL.search(label) for label in labels)
                or _CONTROL.search(user)):
            raise InvalidInputError(f"user_id {value!r} contains control characters")
        return value
    if _CONTROL.search(value):
        raise InvalidInputError(f"{what} {value!r} contains control characters")
    return value


def to_message(raw: object, index: int = 0) -> Message:
    """Read one message given as a ``Message``, a str, a dict or a LangChain message."""
    if isinstance(raw, Message):
        return raw
    if isinstance(raw, str):
        return Message(text=raw)
    if isinstance(raw, dict):
        return _from_dict(raw, index)
    if hasattr(raw, "content") and hasattr(raw, "type"):  # langchain_core BaseMessage
        return Message(text=_content_text(raw.content), role=_LANGCHAIN_ROLES.get(raw.type, raw.type),
                       id=getattr(raw, "id", None))
    raise InvalidInputError(f"message {index}: expected str, dict, Message or a LangChain "
                            f"message, got {type(raw).__name__}")


def _from_dict(raw: dict[str, Any], index: int) -> Message:
    unknown = set(raw) - set(_MESSAGE_KEYS)
    if unknown:
        raise InvalidInputError(f"message {index}: unknown keys {sorted(unknown)}; "
                                f"allowed: {sorted(_MESSAGE_KEYS)}")
    fields = {_MESSAGE_KEYS[k]: v for k, v in raw.items() if v is not None}
    if "text" not in fields:
        raise InvalidInputError(f"message {index}: no text (give 'text' or 'content')")
    fields["text"] = _content_text(fields["text"])
    if "metadata" in fields and not isinstance(fields["metadata"], dict):
        raise InvalidInputError(f"message {index}: metadata must be a dict")
    return Message(**fields)


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # LangChain multi-part content
        parts = [p if isinstance(p, str) else p.get("text", "") for p in content
                 if isinstance(p, (str, dict))]
        return "\n".join(p for p in parts if p)
    raise InvalidInputError(f"message text must be a string, got {type(content).__name__}")


def validate(messages: Sequence[Message], max_chars: int) -> list[Message]:
    """Check every message; raise on the first bad one, naming its position."""
    checked = []
    for index, message in enumerate(messages):
        text = message.text.strip() if isinstance(message.text, str) else message.text
        if not isinstance(text, str) or not text:
            raise InvalidInputError(f"message {index}: text is empty")
        if len(text) > max_chars:
            raise InvalidInputError(f"message {index}: text has {len(text)} characters, "
                                    f"more than max_message_chars={max_chars}")
        check_id(message.role, f"message {index}: role")
        if _BAD_TEXT.search(text):
            raise InvalidInputError(f"message {index}: text contains NUL, escape or other control characters, "
                                    "or lone surrogates")
        if message.id is not None and not isinstance(message.id, (str, int)) or isinstance(message.id, bool):
            raise InvalidInputError(f"message {index}: id must be a string (or an integer), "
                                    f"got {type(message.id).__name__}")
        if message.id is not None:
            check_id(str(message.id), f"message {index}: id")
        try:
            encoded = json.dumps(message.metadata, allow_nan=False, ensure_ascii=False)
            encoded.encode("utf-8")
        except (TypeError, ValueError, RecursionError, UnicodeEncodeError) as exc:
            raise InvalidInputError(f"message {index}: metadata is not plain JSON (no NaN, no lone surrogates, "
                                    f"not nested too deep): {exc}") from None
        if len(encoded) > max_chars:
            raise InvalidInputError(f"message {index}: metadata has {len(encoded)} characters as JSON, "
                                    f"more than max_message_chars={max_chars}")
        if message.timestamp is not None:
            try:
                to_datetime(message.timestamp)
            except TimestampError as exc:
                raise TimestampError(message.timestamp, f"message {index}: {exc}") from None
        checked.append(Message(text=text, role=message.role.strip(), timestamp=message.timestamp,
                               id=None if message.id is None else str(message.id),
                               metadata=dict(message.metadata)))
    return checked


def episode_id(user_id: str, source_id: str | None) -> str:
    """Stable id for a caller's message id (so re-adding it is a no-op), else random."""
    if source_id is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_NAMESPACE, f"{user_id}\x1f{source_id}"))


def dedupe(episodes: Iterable[Episode]) -> list[Episode]:
    """Drop later episodes that repeat an earlier id of the same batch."""
    seen: set[str] = set()
    kept = []
    for episode in episodes:
        if episode.id not in seen:
            seen.add(episode.id)
            kept.append(episode)
    return kept


def renumber(episodes: Sequence[Episode], first_turn: int) -> list[Episode]:
    """Give episodes consecutive session turn numbers from ``first_turn``."""
    return [replace(e, turn=first_turn + i) for i, e in enumerate(episodes)]


def build_episodes(user_id: str, session_id: str, messages: Sequence[Message], now: datetime,
                   next_seq: int, next_turn: int) -> list[Episode]:
    """Episodes for validated messages, numbered in the order given."""
    now = to_datetime(now)
    episodes = []
    for offset, message in enumerate(messages):
        event_time = to_datetime(message.timestamp) if message.timestamp is not None else now
        episodes.append(Episode(
            id=episode_id(user_id, message.id), user_id=user_id, session_id=session_id,
            role=message.role, text=message.text,
            event_time=event_time.astimezone(timezone.utc), ingest_time=now.astimezone(timezone.utc),
            turn=next_turn + offset, source_id=message.id, metadata=message.metadata,
        ))
    return episodes


def index_text(episode: Episode, with_role: bool) -> str:
    """The text that is embedded and full-text indexed for an episode: what was said, with the
    caption of an image it shared (``metadata[IMAGE_CAPTION]``), after its speaker if ``with_role``."""
    text = with_caption(episode.text, image_caption(episode))
    return f"{episode.role}: {text}" if with_role else text


def to_record(episode: Episode, seq: int, with_role: bool, previous: Episode | None,
              context_words: int) -> EpisodeRecord:
    """The stored form of an episode; ``previous`` is the turn before it in its session, whose
    last ``context_words`` words go before the episode's own text in its full-text context.

    Only the end of the previous turn: a long assistant turn before a short question
    would otherwise bury the question's own words (LongMemEval), while on short chat
    turns a few words carry what the reply refers to (LoCoMo).
    """
    own = index_text(episode, with_role)
    tail = index_text(previous, with_role).split()[-context_words:] if previous is not None and context_words else []
    context = " ".join([*tail, own])
    return EpisodeRecord(
        id=episode.id, user_id=episode.user_id, session_id=episode.session_id, role=episode.role,
        text=episode.text, event_time=episode.event_time, ingest_time=episode.ingest_time, seq=seq,
        turn=episode.turn, source_id=episode.source_id, metadata=episode.metadata,
        search_text=own, context_text=context)
