"""The examples run offline and show what they promise (examples/chat_agent.py: tests/test_chat_agent.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # the long-running example simulates months (about 25 s)


@pytest.fixture(scope="module")
def long_running(tmp_path_factory) -> str:
    data_dir = tmp_path_factory.mktemp("assistant")
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "long_running_assistant.py"),
                           "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def answers(output: str, user: str, question: str) -> list[tuple[str, str]]:
    """(date, answer) of each time ``user`` asked ``question``, in order."""
    pattern = rf"^\[(\S+)\] {user}: '{re.escape(question)}' -> '(.*)' \(route: \w+\)$"
    return re.findall(pattern, output, flags=re.MULTILINE)


def profile(output: str, user: str, date: str) -> str:
    """The statements printed as ``user``'s profile on ``date``."""
    found = re.search(rf"^profile of {user} on {date}:\n((?:  .*\n)+)", output, flags=re.MULTILINE)
    assert found, f"no profile of {user} on {date}"
    return found.group(1)


def test_knowledge_update_old_value_earlier_new_value_later(long_running):
    lived = dict(answers(long_running, "maya", "Where do I live?"))
    assert lived["2024-02-15"] == "Lisbon" and lived["2024-06-30"] == "Porto"
    worked = dict(answers(long_running, "maya", "Where do I work?"))
    assert worked["2024-02-15"] == "Siemens" and worked["2024-06-30"] == "Spotify"
    early, late = profile(long_running, "maya", "2024-02-01"), profile(long_running, "maya", "2024-06-30")
    assert "Lisbon" in early and "Porto" not in early
    assert "Porto" in late and "Lisbon" not in late
    assert "Maya lives in Lisbon (8 January 2024 to 2 March 2024)" in long_running  # a closed graph fact


def test_a_preference_that_changed_over_time(long_running):
    food = dict(answers(long_running, "maya", "What is my favourite food?"))
    assert food == {"2024-02-15": "grilled sardines", "2024-06-30": "ramen"}
    assert "Maya's favourite food is grilled sardines. (valid 2024-01-20 .. 2024-05-18)" in long_running


def test_the_forget_job_archives_small_talk(long_running):
    archived = re.findall(r"forget job: archive \w+'s episode '(.*?)' \(", long_running)
    small_talk = {"Hi there! How are you today?", "Hey, good morning!", "Haha yes, sounds good.", "Thanks, talk soon!",
                  "Ok, cool.", "Haha nice one.", "Good morning!", "Hello again!", "Thanks, bye!",
                  "Sure, sounds good.", "See you!", "Cool, thanks."}
    assert archived and set(archived) <= small_talk  # facts stay; how soon small talk goes depends on tuning
    assert re.search(r"forget: [1-9]\d* runs, 0 failed", long_running)


def test_users_stay_separate(long_running):
    on_the_day = {user: dict(answers(long_running, user, "Where do I live?"))["2024-06-30"] for user in ("maya", "leo")}
    assert on_the_day == {"maya": "Porto", "leo": "Berlin"}


def test_a_correction_changes_the_next_answer(long_running):
    worked = answers(long_running, "leo", "Where do I work?")
    assert worked == [("2024-07-01", "Zalando"), ("2024-07-03", "Spotify")]
    assert "memories reinforced" in long_running  # the good rating
