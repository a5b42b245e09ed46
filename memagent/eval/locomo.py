"""LoCoMo (``locomo10.json`` format): conversations, questions, clean evidence ids.

Categories, by the dataset's own ids (many papers swap them):
1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop, 5 adversarial.

A turn that shared an image keeps its text as said; the image's caption
(``blip_caption``) goes into the turn's metadata under ``IMAGE_CAPTION``.

>>> clean_evidence(["D8:6; D9:17", "D:11:26", "D30:05", "D"], {"D8:6", "D9:17", "D11:26", "D30:5"})
['D8:6', 'D9:17', 'D11:26', 'D30:5']
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from memagent.errors import InvalidInputError
from memagent.eval import read_json_list
from memagent.extraction import IMAGE_CAPTION
from memagent.timeparse import to_datetime

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
_SESSION_KEY = re.compile(r"^session_(\d+)$")
_EVIDENCE = re.compile(r"D:?(\d+):0*(\d+)")


@dataclass
class Question:
    question: str
    answer: Any
    category: int
    evidence: list[str]
    adversarial_answer: str | None = None


@dataclass
class Session:
    session_id: str
    date: datetime
    turns: list[dict[str, Any]]


@dataclass
class Conversation:
    sample_id: str
    speakers: tuple[str, str]
    sessions: list[Session]
    questions: list[Question] = field(default_factory=list)

    @property
    def dia_ids(self) -> set[str]:
        return {t["id"] for s in self.sessions for t in s.turns}

    @property
    def reference_time(self) -> datetime:
        """The day after the last session: when the questions are asked."""
        return max(s.date for s in self.sessions) + timedelta(days=1)


def clean_evidence(raw: Iterable[str], known: set[str]) -> list[str]:
    """Split, normalise ("D:11:26" -> "D11:26", "D30:05" -> "D30:5") and keep ids naming a turn."""
    cleaned: list[str] = []
    for item in raw:
        for match in _EVIDENCE.finditer(str(item)):
            dia_id = f"D{int(match.group(1))}:{int(match.group(2))}"
            if dia_id in known and dia_id not in cleaned:
                cleaned.append(dia_id)
    return cleaned


def turn_message(turn: dict[str, Any]) -> dict[str, Any] | None:
    """A turn as a message for ``Memory.add``, the caption of a shared image in its metadata;
    None for a turn without text."""
    text = str(turn.get("text", "")).strip()
    if not text:
        return None
    metadata = {"dia_id": turn["dia_id"]}
    caption = str(turn.get("blip_caption") or "").strip()
    if caption:
        metadata[IMAGE_CAPTION] = caption
    return {"id": turn["dia_id"], "role": turn["speaker"], "text": text, "metadata": metadata}


def load(path: str | Path) -> list[Conversation]:
    """Read a LoCoMo-format file."""
    data = read_json_list(path, "LoCoMo", "conversations")
    try:
        return [_conversation(item, index) for index, item in enumerate(data)]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInputError(f"{path}: not in LoCoMo format: {exc!r}") from None


def _conversation(item: dict[str, Any], index: int) -> Conversation:
    conv = item["conversation"]
    sessions = []
    for key in sorted((k for k in conv if _SESSION_KEY.match(k)), key=lambda k: int(k.split("_")[1])):
        turns = [m for m in map(turn_message, conv[key]) if m is not None]
        if turns:
            date = to_datetime(conv[f"{key}_date_time"])
            sessions.append(Session(key, date, [{**t, "timestamp": date} for t in turns]))
    result = Conversation(str(item.get("sample_id", index)), (conv.get("speaker_a", ""), conv.get("speaker_b", "")), sessions)
    known = result.dia_ids
    result.questions = [Question(q["question"], q.get("answer", q.get("adversarial_answer")), int(q["category"]),
                                 clean_evidence(q.get("evidence", []), known), q.get("adversarial_answer"))
                        for q in item.get("qa", [])]
    return result
