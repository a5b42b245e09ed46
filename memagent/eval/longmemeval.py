"""LongMemEval (S, M and oracle files share one format): question haystacks and their gold ids.

Each item has ``question_id``, ``question_type``, ``question``, ``answer``,
``question_date``, ``haystack_session_ids``, ``haystack_dates``,
``haystack_sessions`` (lists of turns with ``role``, ``content`` and, on
evidence turns, ``has_answer``) and ``answer_session_ids``. Ids ending in
``_abs`` are abstention questions. A turn's corpus id is
``<session id>_<turn number from 1>``, as in the official retrieval code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from memagent.errors import InvalidInputError
from memagent.eval import read_json_list
from memagent.timeparse import to_datetime

QUESTION_TYPES = ("single-session-user", "single-session-assistant", "single-session-preference",
                  "multi-session", "temporal-reasoning", "knowledge-update")


@dataclass
class Haystack:
    question_id: str
    question_type: str
    question: str
    answer: str
    question_date: datetime
    sessions: list[tuple[str, datetime, list[dict[str, Any]]]]
    answer_session_ids: list[str]
    answer_turn_ids: list[str]

    @property
    def abstention(self) -> bool:
        return self.question_id.endswith("_abs")

    @property
    def corpus_turn_ids(self) -> list[str]:
        return [t["id"] for _, _, turns in self.sessions for t in turns]


def turn_id(session_id: str, index: int) -> str:
    return f"{session_id}_{index + 1}"


def load(path: str | Path) -> list[Haystack]:
    """Read a LongMemEval-format file."""
    data = read_json_list(path, "LongMemEval", "questions")
    try:
        return [_haystack(item) for item in data]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInputError(f"{path}: not in LongMemEval format: {exc}") from None


def _haystack(item: dict[str, Any]) -> Haystack:
    sessions, answer_turns = [], []
    for sid, date, turns in zip(item["haystack_session_ids"], item["haystack_dates"], item["haystack_sessions"]):
        when = to_datetime(date)
        kept = []
        for index, turn in enumerate(turns):
            tid = turn_id(sid, index)
            if turn.get("has_answer"):
                answer_turns.append(tid)
            if str(turn.get("content", "")).strip():
                kept.append({"id": tid, "role": turn["role"], "text": turn["content"], "timestamp": when})
        sessions.append((sid, when, kept))
    return Haystack(str(item["question_id"]), item["question_type"], item["question"], str(item["answer"]),
                    to_datetime(item["question_date"]), sessions, list(item.get("answer_session_ids", [])),
                    answer_turns)
