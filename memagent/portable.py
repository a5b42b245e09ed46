"""Export and import of episodes as JSON Lines, one episode per line.

An import file is read and checked whole before anything is written, so a
malformed line (not JSON, NaN or Infinity, nesting too deep, a field of the
wrong type or out of range, a time outside years 1..9999 in UTC, an episode
twice) rejects the file, names the line, and leaves the store as it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from memagent.errors import ImportFormatError, InvalidInputError, MemagentError
from memagent.tiers.episodic import check_id
from memagent.timeparse import to_datetime
from memagent.types import Episode

FORMAT = "memagent.episode/1"
MAX_TURN = 2**31 - 1  # turns are stored as 32-bit integers
_REQUIRED = {"id": str, "user_id": str, "session_id": str, "role": str, "text": str,
             "event_time": str, "ingest_time": str}


def dump_lines(episodes: Iterable[Episode]) -> Iterator[str]:
    """One JSON line per episode, each tagged with the format version."""
    for episode in episodes:
        data = episode.to_json()
        data["format"] = FORMAT
        yield json.dumps(data, ensure_ascii=False, sort_keys=True)


def read_episodes(source: str | Path | IO[str], max_chars: int,
                  user_id: str | None = None) -> list[Episode]:
    """Parse and check a whole export file; ``user_id`` re-homes every episode."""
    if user_id is not None:
        check_id(user_id)
    if isinstance(source, (str, Path)):
        name = str(source)
        try:
            with open(source, encoding="utf-8") as handle:
                lines = handle.readlines()
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: a NUL in the path
            raise ImportFormatError(name[:200], 0, f"cannot read file: {exc}") from None
    elif callable(getattr(source, "readlines", None)):
        name = str(getattr(source, "name", "<stream>"))
        try:
            lines = source.readlines()
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ImportFormatError(name, 0, f"cannot read: {exc}") from None
    else:
        raise InvalidInputError(f"source must be a path or a text stream, not {type(source).__name__}")
    for number, line in enumerate(lines, start=1):
        if not isinstance(line, str):
            raise ImportFormatError(name, number, "not text: open the file in text mode (encoding='utf-8')")
    episodes: list[Episode] = []
    first_line: dict[tuple[str, str], int] = {}
    for number, line in enumerate(lines, start=1):
        if line.strip():
            episode = _parse_line(line, name, number, max_chars, user_id)
            key = (episode.user_id, episode.id)
            if key in first_line:
                raise ImportFormatError(name, number, f"episode {episode.id!r} of user {episode.user_id!r} "
                                                      f"is on line {first_line[key]} already")
            first_line[key] = number
            episodes.append(episode)
    return episodes


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_line(line: str, name: str, number: int, max_chars: int, user_id: str | None) -> Episode:
    try:
        data: Any = json.loads(line, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(name, number, f"not JSON: {exc.msg}") from None
    except (RecursionError, ValueError) as exc:
        raise ImportFormatError(name, number, f"not JSON this store reads: {str(exc) or 'nested too deeply'}") from None
    if not isinstance(data, dict):
        raise ImportFormatError(name, number, "a line must be a JSON object")
    if data.get("format", FORMAT) != FORMAT:
        raise ImportFormatError(name, number, f"unknown format {data.get('format')!r}")
    for key, kind in _REQUIRED.items():
        if not isinstance(data.get(key), kind):
            raise ImportFormatError(name, number, f"field {key!r} missing or not a {kind.__name__}")
    try:
        text = data["text"].strip()
        if not text or len(text) > max_chars:
            raise ImportFormatError(name, number, "text is empty or longer than max_message_chars")
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise ImportFormatError(name, number, "metadata must be an object")
        turn = data.get("turn", 0)
        if not isinstance(turn, int) or isinstance(turn, bool) or not 0 <= turn <= MAX_TURN:
            raise ImportFormatError(name, number, f"field 'turn' must be an integer from 0 to {MAX_TURN}")
        source_id = data.get("source_id")
        if source_id is not None:
            source_id = check_id(source_id, "source_id")
        return Episode(
            id=check_id(data["id"], "id"), user_id=check_id(user_id or data["user_id"]),
            session_id=check_id(data["session_id"], "session_id"), role=check_id(data["role"], "role"),
            text=text, event_time=to_datetime(data["event_time"]),
            ingest_time=to_datetime(data["ingest_time"]), turn=turn,
            source_id=source_id, metadata=metadata,
        )
    except ImportFormatError:
        raise
    except (MemagentError, TypeError, ValueError) as exc:
        raise ImportFormatError(name, number, str(exc)) from None
