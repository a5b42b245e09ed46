"""The LLM-free answer forms: dates stated as precisely as the evidence is, spans, false premises,
the caption of a shared image."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from memagent.answering import (
    about,
    asks_list,
    candidate_sentences,
    date_answer,
    episode_evidence,
    evidence_line,
    extractive,
    ranked_sentences,
    span_answer,
    without_names,
)
from memagent.extraction import IMAGE_CAPTION
from memagent.types import Episode, Evidence, Route, SearchHit

SAID = datetime(2023, 7, 15, 18, 0, tzinfo=timezone.utc)  # a Saturday


def said(text: str, role: str = "Ann", when: datetime = SAID) -> Evidence:
    return Evidence("episode", text[:8], text, 1.0, (text[:8],), role, when)


@pytest.mark.parametrize("sentence, expected", [
    ("Yesterday I ran my first 10k.", "14 July 2023"),
    ("I went to the adoption meeting last Friday.", "the Friday before 15 July 2023"),
    ("Last week I gave a talk at a school.", "the week before 15 July 2023"),
    ("We went biking last weekend.", "the weekend before 15 July 2023"),
    ("Two weeks ago I won the tournament.", "two weeks before 15 July 2023"),
    ("We are hosting a party next weekend.", "the weekend after 15 July 2023"),
    ("I got my tattoo a few years ago.", "a few years ago (around 2020)"),
    ("Last month I hurt my knee.", "June 2023"),
    ("Last year I moved to Porto.", "2022"),
    ("I adopted a kitten.", "15 July 2023"),
])
def test_a_date_answer_is_as_precise_as_the_evidence_and_anchored_to_when_it_was_said(sentence, expected):
    assert date_answer(sentence, said(sentence)) == expected


@pytest.mark.parametrize("question, sentence, expected", [
    ("What workshop did Ann attend?", "I went to an LGBTQ+ counseling workshop and it was enlightening.",
     "LGBTQ+ counseling workshop"),
    ("What did Ann donate to the shelter?", "I donated my old car to the shelter I volunteer at.", "old car"),
    ("What book is Ann reading?", 'I am reading "The Lean Startup" for my business.', "The Lean Startup"),
    ("What breed is Ann's dog Biscuit?", "Yesterday I adopted a dog, a three-year-old beagle called Biscuit.",
     "three-year-old beagle"),
    ("Which country is Ann's grandma from?", "A gift from my grandma in my home country, Sweden.", "Sweden"),
    ("How many people came to Ann's party?", "There were 7 people that came, and most want to come again.", "7"),
    ("What are the ingredients of Ann's ice cream?", "It has coconut milk, vanilla extract, sugar, and salt.",
     "coconut milk, vanilla extract, sugar, salt"),
])
def test_a_span_answer_keeps_what_the_question_did_not_say(question, sentence, expected):
    assert span_answer(question, sentence) == expected


def test_questions_asking_for_several_things():
    assert asks_list("What books has John read?") and asks_list("What are Ann's hobbies?")
    assert not asks_list("What book is John reading?") and not asks_list("What is Ann's job?")


def test_an_abstraction_answer_joins_spans_only_when_several_things_are_asked():
    ranked = [(1.0, "I play the violin every evening.", said("a")), (0.9, "I took up the clarinet too.", said("b"))]
    several, _ = extractive("What instruments does Ann play?", Route.ABSTRACTION, ranked, False)
    one, _ = extractive("What instrument does Ann play best?", Route.ABSTRACTION, ranked, False)
    assert "," in several and "," not in one


def test_names_are_taken_out_of_the_question_for_matching():
    question = "What did Caroline's sister paint for Mel?"
    assert without_names(question, ["Caroline", "Mel"]) == "What did sister paint for ?"


def test_a_reaction_to_someone_else_does_not_make_the_story_the_speakers_own():
    # Bob ran the race; Ann only reacted to it, calling him by a short form of his name
    ranked = [(1.0, "That charity race sounds great, Rob!", said("x", "Ann")),
              (0.9, "I ran a charity race for mental health.", said("y", "Robert"))]
    assert not about(ranked, {"ann"}, 0.1, ["Ann", "Robert"])
    assert about(ranked, {"robert"}, 0.1, ["Ann", "Robert"])
    own = [(1.0, "I ran a charity race for mental health.", said("z", "Ann"))] + ranked
    assert about(own, {"ann"}, 0.1, ["Ann", "Robert"])


def shared(text: str, caption: str, role: str = "Ann") -> Evidence:
    episode = Episode("e1", "u1", "s1", role, text, SAID, SAID, metadata={IMAGE_CAPTION: caption})
    return episode_evidence(SearchHit(episode, 1.0))


def test_a_shared_images_caption_answers_a_question_about_the_photo():
    item = shared("Look what I made for the fair yesterday!", "a clay bowl with a blue glaze")
    assert item.text == "Look what I made for the fair yesterday!"  # the text stays what was said
    ranked = ranked_sentences("What did Ann share a photo of?", [item], False)
    assert ranked[0][1] == "A clay bowl with a blue glaze."
    text, source = extractive("What did Ann share a photo of?", Route.EXTRACTION, ranked, False)
    assert "clay bowl" in text and source is item


def test_a_caption_is_read_only_for_a_question_about_a_photo_and_shown_to_a_chat_model():
    item = shared("I made this for the fair.", "a clay bowl with a blue glaze")
    assert all("bowl" not in s for s in candidate_sentences(item))
    assert all("bowl" not in s for _, s, _ in ranked_sentences("What did Ann make for the fair?", [item], False))
    assert "a clay bowl with a blue glaze" in evidence_line(item)
    plain = said("I made this for the fair.")
    assert candidate_sentences(plain, captions=True) == ["I made this for the fair."]
    assert evidence_line(plain).endswith('Ann: "I made this for the fair."')


def test_memory_answers_a_question_about_a_shared_photo_from_its_caption(memory):
    memory.add("ann", [
        {"role": "Ann", "text": "I had a lovely weekend at the studio with my sister.", "timestamp": SAID},
        {"role": "Ben", "text": "Nice! What did you do there?", "timestamp": SAID},
        {"role": "Ann", "text": "Look what I made!", "timestamp": SAID,
         "metadata": {IMAGE_CAPTION: "a photo of a clay bowl with a blue glaze"}},
    ], session_id="s1")
    memory.consolidate("ann")
    answer = memory.ask("ann", "What did Ann share a photo of?", at="2023-07-20")
    assert "clay bowl" in answer.text


def _ranked(*told: tuple[str, datetime]) -> list[tuple[float, str, Evidence]]:
    return [(1.0 - n / 10, text, said(text, when=when)) for n, (text, when) in enumerate(told)]


def test_which_came_first_is_read_from_the_dates_of_the_tellings():
    ranked = _ranked(("I joined the Marketing Professionals group on LinkedIn.",
                      datetime(2023, 5, 20, tzinfo=timezone.utc)),
                     ("Yesterday I joined a book club called Page Turners!", datetime(2023, 5, 2, tzinfo=timezone.utc)))
    question = "Which group did I join first, 'Page Turners' or 'Marketing Professionals'?"
    assert extractive(question, Route.EXTRACTION, ranked, temporal=True)[0] == "Page Turners"
    later = "Which group did I join most recently, 'Page Turners' or 'Marketing Professionals'?"
    assert extractive(later, Route.EXTRACTION, ranked, temporal=True)[0] == "Marketing Professionals"
    same_day = _ranked(("I joined Page Turners and Marketing Professionals.", SAID))
    assert extractive(question, Route.EXTRACTION, same_day, temporal=True)[0] != "Page Turners"  # not told apart
    told_back = _ranked(("I met Mark at the gym yesterday.", SAID),
                        ("A few months ago I met Tom at a charity event.", SAID))  # the telling's own time counts
    assert extractive("Who did I meet first, Mark or Tom?", Route.EXTRACTION, told_back, temporal=True)[0] == "Tom"
    # the answer graph appends the names of relatives asked about after the question
    asked = "Who did I meet first, Mark or Tom? Marta"
    assert extractive(asked, Route.EXTRACTION, told_back, temporal=True)[0] == "Tom"


@pytest.mark.parametrize("question, expected", [
    ("How many days ago did I attend the Maundy Thursday service?", "5 days ago"),
    ("How many days passed between the day I attended the Maundy Thursday service and the day I "
     "planted tomatoes?", "14 days"),  # "last night" was 6 April
    ("How many weeks had passed since I attended the Maundy Thursday service when I planted tomatoes?", "2 weeks"),
    ("How many days before I planted tomatoes did I attend the Maundy Thursday service?", "14 days"),
])
def test_how_long_ago_or_apart_is_counted_in_the_unit_asked(question, expected):
    ranked = _ranked(("I planted tomatoes in the garden today.", datetime(2023, 4, 20, 9, tzinfo=timezone.utc)),
                     ("Last night I attended the Maundy Thursday service at church.",
                      datetime(2023, 4, 7, 9, tzinfo=timezone.utc)))
    now = datetime(2023, 4, 11, 12, tzinfo=timezone.utc)
    assert extractive(question, Route.EXTRACTION, ranked, temporal=True, now=now)[0] == expected


def test_two_events_told_the_same_day_with_no_time_of_their_own_get_no_count():
    ranked = _ranked(("I bought running shoes.", SAID), ("One of my shoelaces broke.", SAID))
    question = "How many days had passed since I bought running shoes when my shoelaces broke?"
    assert "days" not in extractive(question, Route.EXTRACTION, ranked, temporal=True, now=SAID)[0]
