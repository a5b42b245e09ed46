"""The LLM-free extractor: small talk, pronouns, dates, categories, slots, triples."""

from __future__ import annotations

import doctest
from datetime import datetime, timezone

import numpy as np
import pytest

from memagent import extraction
from memagent.extraction import (
    IMAGE_CAPTION,
    extract,
    image_caption,
    is_small_talk,
    refine_categories,
    resolve_dates,
    rewrite_pronouns,
    split_sentences,
)
from memagent.types import Category, Episode, Triple

WHEN = datetime(2023, 5, 8, 13, 56, tzinfo=timezone.utc)  # a Monday


def episode(text: str, role: str = "Caroline", **metadata) -> Episode:
    return Episode("D1:3", "u1", "s1", role, text, WHEN, WHEN, source_id="D1:3", metadata=metadata)


def texts(text: str, role: str = "Caroline", **metadata) -> list[str]:
    return [c.text for c in extract(episode(text, role, **metadata))]


def test_docstring_examples_run():
    assert doctest.testmod(extraction).failed == 0


def test_yesterday_becomes_the_day_before_the_event_time():
    [cand] = extract(episode("I went to a support group yesterday."))
    assert "7 May 2023" in cand.text
    assert "yesterday" not in cand.text
    assert cand.subject == "Caroline" and cand.episode_id == "D1:3" and cand.event_time == WHEN


@pytest.mark.parametrize(("phrase", "expected"), [
    ("last week", "in the week of 1 May 2023"),
    ("last month", "in April 2023"),
    ("last year", "in 2022"),
    ("two weeks ago", "around 24 April 2023"),
    ("last Friday", "on 5 May 2023"),
    ("in 2019", "in 2019"),
])
def test_relative_dates_become_absolute(phrase, expected):
    assert resolve_dates(f"I started pottery {phrase}.", episode("x")) == f"I started pottery {expected}."


def test_pronouns_become_the_speakers_name_with_third_person_verbs():
    assert rewrite_pronouns("I'm a nurse and I love my job.", "Caroline") == \
        "Caroline is a nurse and Caroline loves Caroline's job."
    assert rewrite_pronouns("I go running and I've got a dog.", "Jon") == "Jon goes running and Jon has got a dog."
    assert rewrite_pronouns("I really watch it. I went out and I could rest.", "Jon") == \
        "Jon really watches it. Jon went out and Jon could rest."
    assert rewrite_pronouns("Mel and I love it; it made me happy.", "Jon") == "Mel and Jon love it; it made Jon happy."


def test_generic_user_role_uses_the_callers_name_or_the_user():
    assert texts("I live in Porto with my cat.", role="user", name="Ana") == ["Ana lives in Porto with Ana's cat."]
    assert texts("I live in Porto with my cat.", role="user")[0].startswith("The user lives in Porto")


def test_you_becomes_the_addressee_named_in_the_turn():
    [text] = texts("Thanks, Melanie! I can't wait to see your pottery project.")
    assert text == "Caroline can't wait to see Melanie's pottery project."


@pytest.mark.parametrize("text", [
    "Hey! How are you?",
    "Thanks, that's so sweet of you!",
    "Hey Mel! Good to see you! How have you been?",
    "Wow, that's so cool! You're amazing.",
    "Let me know how it goes!",
    "I love it!",
])
def test_small_talk_yields_nothing(text):
    assert extract(episode(text)) == []


@pytest.mark.parametrize("role", ["assistant", "AI", "system", "tool"])
def test_assistant_turns_yield_nothing(role):
    assert extract(episode("I went to Paris yesterday and I love my sister Ana.", role=role)) == []


def test_a_question_keeps_its_declarative_clause():
    assert texts("FYI, I finished another pottery project - want to see a pic?") == \
        ["Caroline finished another pottery project."]


def test_sentences_split_without_breaking_abbreviations():
    assert split_sentences("I saw Dr. Lee today. It went well!\nBye") == \
        ["I saw Dr. Lee today.", "It went well!", "Bye"]
    assert is_small_talk("Thanks so much!") and not is_small_talk("I adopted a puppy.")
    # a short statement that names a thing is kept; a name said to the listener is not one
    assert not is_small_talk("I have an iPhone 12.") and is_small_talk("I totally agree, Maria!")


@pytest.mark.parametrize(("text", "category"), [
    ("I hate crowded places and loud bars.", Category.DISLIKE),
    ("I love painting landscapes on weekends.", Category.PREFERENCE),
    ("My sister Ana visited me with her kids.", Category.RELATIONSHIP),
    ("I got a new job at the hospital downtown.", Category.WORK),
    ("I'm planning to run a marathon in the fall.", Category.GOAL),
    ("I hurt my knee and saw a doctor.", Category.HEALTH),
    ("I adopted a puppy from the shelter.", Category.POSSESSION),
    ("I went to a concert at the stadium.", Category.EVENT),
])
def test_categories_for_clear_cases(text, category):
    assert extract(episode(text))[0].category is category


def test_hedged_statements_get_lower_confidence():
    plain = extract(episode("I adopted a puppy from the shelter."))[0]
    hedged = extract(episode("I think I might adopt a puppy from the shelter."))[0]
    assert 0 <= hedged.confidence < plain.confidence <= 1


@pytest.mark.parametrize(("text", "slot", "value"), [
    ("I live in Lisbon with two roommates.", "home", "Lisbon"),
    ("We moved to New York last month.", "home", "New York"),
    ("I work at Google as a data analyst.", "employer", "Google"),
    ("I'm a high school teacher now.", "job", "high school teacher"),
    ("I'm married to Tom and we have two kids.", "partner", "Tom"),
    ("I broke up with my boyfriend last week.", "partner", "single"),
    ("My favourite food these days is ramen, honestly.", "favourite food", "ramen"),
    ("My favourite food now is ramen.", "favourite food", "ramen"),
    ("I think jazz is my favorite music.", "favourite music", "jazz"),
    ("My favourite TV show is Severance.", "favourite tv show", "Severance"),
    ("Harry Potter is my favorite book.", "favourite book", "Harry Potter"),
    ("Oh, my new favorite bands are The Beths and Wet Leg.", "favourite band", "The Beths and Wet Leg"),
])
def test_slots_for_exclusive_attributes(text, slot, value):
    cand = extract(episode(text))[0]
    assert (cand.slot, cand.value) == (slot, value)


def test_a_favourite_is_a_preference_but_a_favourite_part_of_something_is_no_slot():
    food = extract(episode("My favourite food is sushi."))[0]
    assert (food.category, food.slot) == (Category.PREFERENCE, "favourite food")
    assert extract(episode("My favorite part is the ending, it made me cry."))[0].slot is None
    assert extract(episode("She is my favourite cousin, we talk every week."))[0].slot is None


def test_no_slot_without_a_clear_pattern():
    cand = extract(episode("I'm a huge fan of jazz records."))[0]
    assert cand.slot is None and cand.value is None


def test_slot_statements_are_not_merged_with_neighbours():
    cands = extract(episode("I adopted a puppy last week. I live in Lisbon now."))
    assert [c.slot for c in cands] == [None, "home"]


def test_triples_for_kin_pets_places_and_likes():
    [cand] = extract(episode("My sister Ana and my dog Rex came along. I love painting."))
    assert Triple("Caroline", "has_sister", "Ana", "person") in cand.triples
    assert Triple("Caroline", "has_pet", "Rex", "pet") in cand.triples
    assert Triple("Caroline", "likes", "painting", "activity") in cand.triples
    assert not any(t.relation == "mentions" and t.object in ("Ana", "Rex") for t in cand.triples)


def test_functional_triples_and_mentions():
    [home] = extract(episode("I live in Lisbon."))
    assert home.triples == (Triple("Caroline", "lives_in", "Lisbon", "place", True),)
    [trip] = extract(episode("Last summer I went to Paris and saw the Eiffel Tower."))
    assert Triple("Caroline", "visited", "Paris", "place") in trip.triples
    assert Triple("Caroline", "mentions", "Eiffel Tower", "thing") in trip.triples
    [partner] = extract(episode("I'm dating Sam from my pottery class."))
    assert Triple("Caroline", "dating", "Sam", "person", True) in partner.triples


def test_refine_categories_moves_only_clear_event_leftovers():
    cands = extract(episode("I went to the park. I adopted a puppy.")) or []
    event = extract(episode("I went over there with them."))[0]
    assert event.category is Category.EVENT
    labels = [Category.EVENT, Category.HEALTH]
    protos = np.eye(2, dtype=np.float32)
    near_health = np.array([[0.2, 0.9]], dtype=np.float32)
    ambiguous = np.array([[0.7, 0.72]], dtype=np.float32)
    assert refine_categories([event], near_health, protos, labels)[0].category is Category.HEALTH
    assert refine_categories([event], ambiguous, protos, labels)[0].category is Category.EVENT
    assert refine_categories(cands[:0], np.zeros((0, 2)), protos, labels) == []


def test_a_preposition_before_the_expression_is_kept_once():
    assert resolve_dates("I've run since last month.", episode("x")) == "I've run since April 2023."
    assert resolve_dates("In the past week I slept well.", episode("x")) == \
        "In the week before 8 May 2023 I slept well."


def test_lower_case_i_and_negations_are_rewritten():
    assert rewrite_pronouns("i'm curious and i don't mind. I haven't been.", "Jon") == \
        "Jon is curious and Jon doesn't mind. Jon hasn't been."


def test_sentence_openers_are_not_mentions_but_possessive_names_are():
    [cand] = extract(episode("Ana's party was fun and I baked a cake. Here's my cake, it's from Lidl."))
    mentions = [t.object for t in cand.triples if t.relation == "mentions"]
    assert mentions == ["Ana", "Lidl"]


def test_a_shared_images_caption_is_read_from_metadata_and_makes_no_statement():
    said = "I finished my first painting last week. I'm so proud of it."
    plain = extract(episode(said))
    with_image = extract(episode(said, **{IMAGE_CAPTION: "a painting of a sunset over the sea"}))
    assert plain and [c.text for c in with_image] == [c.text for c in plain]
    assert all("sunset" not in c.text and "sunset" not in str(c.triples) for c in with_image)
    assert extract(episode("Look!", **{IMAGE_CAPTION: "a photo of my dog Rex at the beach"})) == []
    assert image_caption(episode(said, **{IMAGE_CAPTION: "  a sunset  "})) == "a sunset"
    assert image_caption(episode(said)) == "" and image_caption(episode(said, **{IMAGE_CAPTION: 3})) == ""
