"""What to archive: a spaced-repetition forgetting curve over one user's memories. Pure: no I/O.

Each item (episode, profile statement or graph relation) has a *stability* S in
days, and its *retention* decays from the last time it was reinforced (used in
an answer or rated good), or from its event time if it never was::

    S = base_days * (1 + importance_gain * importance)
                  * (1 + reinforcement_gain) ** reinforcements
                  / (1 + demotion) ** negatives
    R = exp(-elapsed_days / S)

``reinforcements`` is the number of uses plus the positive part of the summed
feedback, ``negatives`` the negative part. R halves every ``S * ln 2`` days;
an item is archived once R falls below ``archive_below``, that is after
``S * ln(1 / archive_below)`` days. Archiving hides an item from ordinary
search (search falls back to archived items when nothing active matches);
it never deletes. Pinned items (an explicit "remember this", a correction),
closed statements (superseded versions: history) and items younger than
``min_age_days`` are never archived. An archived item whose retention is back
above the threshold (it was used or rated good since) is restored.

With the defaults (30 days, gain 25, threshold 0.15: ln(1/0.15) = 1.9) small
talk that yielded nothing (importance ~0) is archived after ~57 days (~160 days
for a longer greeting, importance 0.075), a turn of 20 plain words (importance
0.15) after ~270 days, one that yielded an event (~0.45) after ~700 days, an
identity fact (1.0) after ~4 years; each use multiplies these by 1.5.
``benchmarks/locomo_lifelong.py`` measures the share archived and the recall it costs.

>>> from datetime import datetime, timezone
>>> from types import SimpleNamespace
>>> s = SimpleNamespace(enabled=True, base_days=10.0, importance_gain=0.0, reinforcement_gain=0.5,
...                     demotion=1.0, archive_below=0.15, min_age_days=0.0)
>>> t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
>>> item = ItemState("e1", "episode", t0)
>>> [d.action.value for d in decide([item], datetime(2024, 3, 1, tzinfo=timezone.utc), s)]
['archive']
>>> round(retention(item, datetime(2024, 1, 11, tzinfo=timezone.utc), s), 3)
0.368
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from memagent.types import Category, TextEnum


class Knobs(Protocol):
    """The forgetting settings the policy reads (``memagent.config.ForgettingSettings``)."""

    @property
    def enabled(self) -> bool: ...
    @property
    def base_days(self) -> float: ...
    @property
    def importance_gain(self) -> float: ...
    @property
    def reinforcement_gain(self) -> float: ...
    @property
    def demotion(self) -> float: ...
    @property
    def archive_below(self) -> float: ...
    @property
    def min_age_days(self) -> float: ...

class Action(TextEnum):
    """What forgetting does with one memory."""

    ARCHIVE = "archive"
    KEEP = "keep"
    RESTORE = "restore"


ARCHIVE, KEEP, RESTORE = Action.ARCHIVE, Action.KEEP, Action.RESTORE
MAX_REINFORCEMENTS = 50.0  # caps the exponent: 1.5 ** 50 days is forever already
_DAY_S = 86_400.0

# How much a profile statement of each category matters, in [0, 1]. Who the user
# is, their health and their people change rarely and matter for years; events
# and summaries are what ordinary forgetting is for.
CATEGORY_WEIGHTS: dict[str, float] = {
    Category.IDENTITY.value: 1.0,
    Category.HEALTH.value: 1.0,
    Category.RELATIONSHIP.value: 0.9,
    Category.WORK.value: 0.8,
    Category.LOCATION.value: 0.8,
    Category.GOAL.value: 0.6,
    Category.POSSESSION.value: 0.5,
    Category.PREFERENCE.value: 0.5,
    Category.DISLIKE.value: 0.5,
    Category.HABIT.value: 0.5,
    Category.EVENT.value: 0.35,
    Category.SUMMARY.value: 0.3,
}
DEFAULT_CATEGORY_WEIGHT = 0.35  # an unknown category weighs like an event
LENGTH_WEIGHT = 0.3  # the most that length alone adds to an episode's importance
LENGTH_WORDS = 40  # ... reached at this many words (a long, substantive turn)

# An explicit request to keep something: "please remember ...", "can you note ...",
# or a sentence that opens with the request and goes on about the speaker ("Remember
# that my PIN ...", "Don't forget: ..."). "I remember that day" and advice such as
# "remember that anything is possible" are not requests.
_REQUEST = r"(?:remember|memori[sz]e|note|keep in mind|don['’]?t forget|do not forget|never forget)"
REMEMBER = re.compile(
    rf"\bplease\s+{_REQUEST}\b|\b(?:can|could|would|will)\s+you\s+(?:please\s+)?{_REQUEST}\b|"
    rf"(?:^|[.!?]\s+){_REQUEST}\s+(?:that\s+)?(?:i|i['’]m|i['’]ve|my)\b|"
    rf"(?:^|[.!?]\s+){_REQUEST}\s*(?:this\s*)?:|\bmake a note\b|\bfor (?:the|your) records?\b", re.I)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’]*")


@dataclass(frozen=True)
class ItemState:
    """What the policy needs to know about one memory; times are event times.

    ``feedback`` is the sum of ratings (+ good, - bad); ``pinned`` marks an
    explicit "remember this" or a correction, ``closed`` a superseded statement.
    """

    item_id: str
    kind: str  # "episode", "statement" or "relation"
    created: datetime
    last_reinforced: datetime | None = None
    accesses: int = 0
    importance: float = 0.0
    feedback: float = 0.0
    pinned: bool = False
    closed: bool = False
    archived: bool = False

    @property
    def reinforcements(self) -> float:
        return min(MAX_REINFORCEMENTS, max(0, self.accesses) + max(0.0, self.feedback))

    @property
    def negatives(self) -> float:
        return min(MAX_REINFORCEMENTS, max(0.0, -self.feedback))


@dataclass(frozen=True)
class Decision:
    """What to do with one item: ``action`` is "archive", "keep" or "restore"."""

    item_id: str
    kind: str
    action: Action
    retention: float
    stability: float
    reason: str

    @property
    def changes(self) -> bool:
        """True when the store must write something (archive or restore)."""
        return self.action != KEEP


def stability_days(item: ItemState, settings: Knobs) -> float:
    """Days for retention to fall to 1/e: grows with importance and use, shrinks with bad ratings."""
    importance = min(1.0, max(0.0, item.importance))
    return (settings.base_days * (1.0 + settings.importance_gain * importance)
            * (1.0 + settings.reinforcement_gain) ** item.reinforcements
            / (1.0 + settings.demotion) ** item.negatives)


def elapsed_days(item: ItemState, now: datetime) -> float:
    """Days since the last reinforcement, or since the event; never negative."""
    since = item.last_reinforced or item.created
    return max(0.0, (now - since).total_seconds() / _DAY_S)


def retention(item: ItemState, now: datetime, settings: Knobs) -> float:
    """``exp(-elapsed / stability)``: 1 when fresh, 1/e after one stability."""
    stability = stability_days(item, settings)
    if stability <= 0:
        return 0.0
    return math.exp(-elapsed_days(item, now) / stability)


def half_life_days(item: ItemState, settings: Knobs) -> float:
    """Days for retention to halve: ``stability * ln 2``."""
    return stability_days(item, settings) * math.log(2.0)


def decide(items: Iterable[ItemState], now: datetime, settings: Knobs) -> list[Decision]:
    """Archive, keep or restore each item, with its retention and a readable reason."""
    return [_decide_one(item, now, settings) for item in items]


def _decide_one(item: ItemState, now: datetime, settings: Knobs) -> Decision:
    stability = stability_days(item, settings)
    kept = retention(item, now, settings)

    def result(action: Action, reason: str) -> Decision:
        return Decision(item.item_id, item.kind, action, kept, stability, reason)

    restore_or_keep = RESTORE if item.archived else KEEP
    if not settings.enabled:
        return result(KEEP, "forgetting is disabled")
    if item.pinned:
        return result(restore_or_keep, "pinned: never archived")
    if item.closed:
        return result(restore_or_keep, "closed statement: history is never archived")
    summary = _summary(item, now, kept, settings)
    if kept >= settings.archive_below:
        return result(restore_or_keep, summary.replace(" ? ", " >= "))
    if item.archived:
        return result(KEEP, summary.replace(" ? ", " < ") + "; stays archived")
    age = (now - item.created).total_seconds() / _DAY_S
    if age < settings.min_age_days:
        return result(KEEP, f"{age:.0f} days old, younger than {settings.min_age_days:g}: never archived")
    return result(ARCHIVE, summary.replace(" ? ", " < "))


def _summary(item: ItemState, now: datetime, kept: float, settings: Knobs) -> str:
    days = elapsed_days(item, now)
    since = "since last use" if item.last_reinforced else "since the event"
    uses = f"{item.accesses} use" + ("" if item.accesses == 1 else "s")
    text = (f"retention {kept:.2f} ? {settings.archive_below:.2f} after {days:.0f} days {since}; "
            f"importance {item.importance:.2f}, {uses}")
    return text + (f", feedback {item.feedback:+g}" if item.feedback else "")


# --- importance --------------------------------------------------------------

def asks_to_remember(text: str) -> bool:
    """True for explicit "remember that ..." / "don't forget ..." / "for the record" phrasing.

    >>> [asks_to_remember(t) for t in ("Please remember that my PIN is 4321", "Remember: I'm vegan",
    ...  "I remember that day!", "Remember that anything is possible.", "Can you note my new address?")]
    [True, True, False, False, True]
    """
    return REMEMBER.search(text) is not None


def category_weight(category: Category | str) -> float:
    """How much a statement of this category matters (``CATEGORY_WEIGHTS``)."""
    key = category.value if isinstance(category, Category) else str(category)
    return CATEGORY_WEIGHTS.get(key, DEFAULT_CATEGORY_WEIGHT)


def importance_of_episode(text: str, categories: Sequence[Category | str] = ()) -> float:
    """An episode's importance in [0, 1], from what it yielded, its phrasing and its length.

    1.0 for an explicit request to remember. Otherwise the noisy-or of the
    weights of the statements it yielded (two events: 1 - 0.65**2 = 0.58) and
    of its length (``LENGTH_WEIGHT`` at ``LENGTH_WORDS`` words, linear below).
    Small talk yields no statement and is short: about 0.

    >>> importance_of_episode("Hi! How are you?")
    0.03
    >>> importance_of_episode("I'm a nurse in Porto", ["work/education"])
    0.8075
    >>> importance_of_episode("Remember that my sister's name is Ana")
    1.0
    """
    if asks_to_remember(text):
        return 1.0
    words = len(_WORD.findall(text))
    forgotten = 1.0 - LENGTH_WEIGHT * min(1.0, words / LENGTH_WORDS)
    for category in categories:
        forgotten *= 1.0 - category_weight(category)
    return round(1.0 - forgotten, 4)


def importance_of_statement(category: Category | str, confidence: float) -> float:
    """A statement's importance: its category weight times its confidence, in [0, 1].

    >>> importance_of_statement(Category.IDENTITY, 0.9), importance_of_statement("event", 0.5)
    (0.9, 0.175)
    """
    return round(category_weight(category) * min(1.0, max(0.0, confidence)), 4)


def episode_importance(text: str, pinned: bool, categories: Sequence[Category | str] = ()) -> tuple[float, bool]:
    """An episode's importance and whether it is pinned: an explicit "remember this" (or a
    caller's pin) pins it at full importance; else its statements' categories and length decide.

    >>> episode_importance("Please remember that my PIN is 4321", False)
    (1.0, True)
    """
    pinned = pinned or asks_to_remember(text)
    return (1.0 if pinned else importance_of_episode(text, categories)), pinned


def relation_importance(evidence_importances: Iterable[float]) -> float:
    """A graph fact matters as much as the most important turn that said it."""
    return max(evidence_importances, default=0.0)
