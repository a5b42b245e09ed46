"""The forgetting curve: decay arithmetic, reinforcement, demotion, guards, restore, importance."""

from __future__ import annotations

import doctest
import math
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from memagent.config import ForgettingSettings
from memagent.policies import forgetting
from memagent.policies.forgetting import (
    ARCHIVE,
    KEEP,
    RESTORE,
    ItemState,
    decide,
    half_life_days,
    importance_of_episode,
    importance_of_statement,
    retention,
    stability_days,
)
from memagent.types import Category

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
SETTINGS = ForgettingSettings()


def days(n: float) -> datetime:
    return T0 + timedelta(days=n)


def item(**kw) -> ItemState:
    return ItemState(kw.pop("item_id", "e1"), kw.pop("kind", "episode"), kw.pop("created", T0), **kw)


def test_doctests():
    assert doctest.testmod(forgetting).failed == 0


def test_retention_halves_at_stability_times_ln2():
    plain = item(importance=0.0)
    stability = stability_days(plain, SETTINGS)
    assert stability == pytest.approx(SETTINGS.base_days)
    half = stability * math.log(2)
    assert half_life_days(plain, SETTINGS) == pytest.approx(half)
    assert retention(plain, T0 + timedelta(days=half), SETTINGS) == pytest.approx(0.5)
    assert retention(plain, T0 + timedelta(days=2 * half), SETTINGS) == pytest.approx(0.25)
    assert retention(plain, T0, SETTINGS) == 1.0
    assert retention(plain, T0 - timedelta(days=3), SETTINGS) == 1.0  # an event in the future does not decay


def test_importance_raises_stability_linearly():
    assert stability_days(item(importance=1.0), SETTINGS) == pytest.approx(
        SETTINGS.base_days * (1 + SETTINGS.importance_gain))
    assert stability_days(item(importance=2.0), SETTINGS) == stability_days(item(importance=1.0), SETTINGS)


def test_reinforcement_raises_and_bad_feedback_lowers_stability():
    base = stability_days(item(), SETTINGS)
    used = stability_days(item(accesses=2), SETTINGS)
    liked = stability_days(item(feedback=1.0), SETTINGS)
    disliked = stability_days(item(feedback=-1.0), SETTINGS)
    assert used == pytest.approx(base * (1 + SETTINGS.reinforcement_gain) ** 2)
    assert liked == pytest.approx(base * (1 + SETTINGS.reinforcement_gain))
    assert disliked == pytest.approx(base / (1 + SETTINGS.demotion))
    assert math.isfinite(stability_days(item(accesses=10**6), SETTINGS))  # capped, no overflow


def test_decay_counts_from_last_reinforcement():
    stale = item(importance=0.0)
    reinforced = replace(stale, last_reinforced=days(190), accesses=1)
    assert retention(stale, days(200), SETTINGS) < 0.01
    assert retention(reinforced, days(200), SETTINGS) > 0.8


def test_small_talk_is_archived_after_a_few_months_but_content_is_kept():
    small_talk = item(item_id="hi", importance=importance_of_episode("Bye! Take care!"))
    fact = item(item_id="fact", importance=importance_of_episode("I moved to Lisbon last spring", ["location"]))
    plain = item(item_id="plain", importance=importance_of_episode(
        "The team's new coach wants us to run drills every morning before practice, which is tough but it helps."))
    early = {d.item_id: d.action for d in decide([small_talk, fact, plain], days(40), SETTINGS)}
    late = {d.item_id: d.action for d in decide([small_talk, fact, plain], days(120), SETTINGS)}
    later = {d.item_id: d.action for d in decide([small_talk, fact, plain], days(250), SETTINGS)}
    assert early == {"hi": KEEP, "fact": KEEP, "plain": KEEP}
    assert late == {"hi": ARCHIVE, "fact": KEEP, "plain": KEEP}
    assert later == {"hi": ARCHIVE, "fact": KEEP, "plain": KEEP}


def test_pinned_closed_and_young_items_are_never_archived():
    weak = dict(importance=0.0, feedback=-5.0)
    items = [item(item_id="pinned", pinned=True, **weak),
             item(item_id="closed", kind="statement", closed=True, **weak),
             item(item_id="young", created=days(1000 - 3), **weak),
             item(item_id="old", **weak)]
    decisions = {d.item_id: d for d in decide(items, days(1000), SETTINGS)}
    assert {k: d.action for k, d in decisions.items()} == {
        "pinned": KEEP, "closed": KEEP, "young": KEEP, "old": ARCHIVE}
    assert all(d.retention < SETTINGS.archive_below for k, d in decisions.items())
    assert "pinned" in decisions["pinned"].reason
    assert "closed" in decisions["closed"].reason
    assert "younger than 14" in decisions["young"].reason


def test_archived_item_is_restored_after_reinforcement_and_stays_archived_otherwise():
    archived = item(importance=0.0, archived=True)
    still = decide([archived], days(300), SETTINGS)[0]
    used = decide([replace(archived, last_reinforced=days(299), accesses=1)], days(300), SETTINGS)[0]
    assert (still.action, still.changes) == (KEEP, False)
    assert "stays archived" in still.reason
    assert (used.action, used.changes) == (RESTORE, True)
    assert decide([replace(archived, pinned=True)], days(300), SETTINGS)[0].action == RESTORE


def test_reasons_are_readable():
    decision = decide([item(importance=0.1)], days(300), SETTINGS)[0]
    assert decision.action == ARCHIVE
    assert decision.reason == (f"retention {decision.retention:.2f} < 0.15 after 300 days since the event; "
                               "importance 0.10, 0 uses")
    kept = decide([item(importance=0.5, accesses=1, feedback=2, last_reinforced=days(10))], days(40), SETTINGS)[0]
    assert kept.reason.startswith("retention 0.98 >= 0.15 after 30 days since last use;")
    assert kept.reason.endswith("importance 0.50, 1 use, feedback +2")


def test_disabled_or_zero_threshold_archives_nothing():
    items = [item(item_id=str(n), importance=0.0) for n in range(3)] + [item(item_id="a", archived=True)]
    off = decide(items, days(5000), ForgettingSettings(enabled=False))
    assert {d.action for d in off} == {KEEP}
    zero = decide(items, days(5000), ForgettingSettings(archive_below=0.0))
    assert [d.action for d in zero] == [KEEP, KEEP, KEEP, RESTORE]


def test_settings_can_be_any_object_with_the_fields():
    plain = SimpleNamespace(**SETTINGS.model_dump())
    assert decide([item()], days(400), plain) == decide([item()], days(400), SETTINGS)


def test_importance_of_small_talk_fact_and_request():
    small_talk = importance_of_episode("Haha, thanks! Talk soon!")
    event = importance_of_episode("I went to a concert on Friday with some friends", [Category.EVENT])
    identity = importance_of_episode("I'm a nurse", [Category.IDENTITY])
    request = importance_of_episode("Remember that my daughter is allergic to peanuts")
    assert small_talk < 0.05
    assert 0.3 < event < identity <= 1.0
    assert request == 1.0
    assert importance_of_episode("I can't remember where I put it") < 0.2
    long_plain = importance_of_episode(" ".join(["word"] * 80))
    assert long_plain == pytest.approx(forgetting.LENGTH_WEIGHT)
    assert importance_of_statement(Category.HEALTH, 0.9) > importance_of_statement(Category.EVENT, 0.9)
    assert importance_of_statement("no-such-category", 1.0) == forgetting.DEFAULT_CATEGORY_WEIGHT
    assert importance_of_statement(Category.IDENTITY, 1.7) == 1.0
