"""Import files are checked whole: one bad line anywhere writes nothing, names its line, and
leaves what was stored readable; times must fit years 1..9999 in UTC everywhere."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from memagent import Memory
from memagent.errors import ImportFormatError, InvalidInputError, TimestampError


def line(n: int, **changes: object) -> str:
    data = {"format": "memagent.episode/1", "id": f"e{n}", "user_id": "alice", "session_id": "s", "role": "alice",
            "text": f"note number {n}", "event_time": "2024-01-01T10:00:00+00:00",
            "ingest_time": "2024-01-01T10:00:00+00:00", "turn": n, "source_id": f"m{n}", "metadata": {}}
    data.update(changes)
    return json.dumps(data)


@pytest.fixture
def memory(embedder):
    with Memory("memory://", embedder=embedder) as mem:
        mem.add("alice", [{"id": "kept", "text": "I keep my bike in the shed.", "timestamp": "2024-01-01"}])
        yield mem


@pytest.mark.parametrize("bad", [
    {"turn": 2**40}, {"turn": -1}, {"turn": 1.5}, {"turn": True}, {"source_id": 7},
    {"event_time": "9999-12-31T23:59:59-14:00"}, {"event_time": "0001-01-01T00:00:00+01:00"},
    {"event_time": "2024-01-01\x00"}, {"event_time": "2024-01-01" + "x" * 100_000},
    {"text": None}, {"text": "x" * 40_000}, {"metadata": ["not", "an", "object"]}, {"user_id": ""},
])
def test_a_bad_line_late_in_a_file_writes_nothing_and_names_its_line(memory, bad):
    lines = [line(n) for n in range(600)]
    lines[549] = line(549, **bad)
    with pytest.raises(ImportFormatError, match="line 550"):
        memory.import_(io.StringIO("\n".join(lines)))
    assert memory.count("alice") == 1  # only what was there before
    assert memory.search("alice", "bike")[0].episode.source_id == "kept"
    assert "kept" in memory.export("alice")


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a": NaN}', '{"a": Infinity}'])
def test_json_this_store_cannot_hold_is_refused(memory, text):
    with pytest.raises(ImportFormatError, match="line 2"):
        memory.import_(io.StringIO(line(0) + "\n" + text))
    assert memory.count("alice") == 1


def test_an_episode_twice_in_one_file_is_refused_with_both_lines(memory):
    with pytest.raises(ImportFormatError, match="line 3: .*line 1 already"):
        memory.import_(io.StringIO("\n".join([line(0), line(1), line(0)])))
    assert memory.count("alice") == 1


@pytest.mark.parametrize("when", [
    "9999-12-31T23:59:59-14:00", datetime.max.replace(tzinfo=timezone(timedelta(hours=-14))),
    datetime.min.replace(tzinfo=timezone(timedelta(hours=14))), "2024-01-01\x00", "\ud800", float("nan"),
])
def test_times_outside_the_storable_range_are_refused_at_every_entry(memory, when):
    with pytest.raises(TimestampError):
        memory.add("alice", [{"text": "late note", "timestamp": when}])
    with pytest.raises(InvalidInputError):
        memory.ask("alice", "Where is my bike?", at=when)
    with pytest.raises(InvalidInputError):
        memory.search("alice", "bike", now=when)
    assert memory.count("alice") == 1
    assert memory.list("alice").total == 1
