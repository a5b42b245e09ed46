"""Lifelong operation with an injected clock: archive and fall-back, knowledge updates, feedback."""

from __future__ import annotations

from dataclasses import replace

import pytest

from memagent import InvalidInputError, Memory, TraceNotFoundError
from memagent.policies.forgetting import stability_days
from memagent.records import Kind
from memagent.tiers.usage import item_state

RATINGS, USAGE = Kind.RATING, Kind.USAGE


def add(memory, user, session, when, *texts, role="Sam"):
    return memory.add(user, [{"id": f"{session}-{i}", "role": role, "text": t, "timestamp": when}
                             for i, t in enumerate(texts)], session_id=session)


def test_forget_archives_small_talk_not_facts_and_dry_run_changes_nothing(memory):
    ids = add(memory, "u", "s1", "2023-01-10", "Hey! How are you?", "I work as a nurse at Santa Maria hospital.",
              "Haha yes, sounds good.")
    memory.consolidate("u")
    preview = memory.forget("u", at="2023-12-01")  # dry run by default
    assert {d.item_id for d in preview} == {ids[0], ids[2]}
    assert all("retention" in d.reason for d in preview)
    assert not memory.tiers.usage("u").archived
    memory.forget("u", dry_run=False, at="2023-12-01")
    assert memory.tiers.usage("u").archived == {ids[0], ids[2]}
    assert memory.backend.scan(USAGE, "u").to_pylist()  # persisted
    assert memory.forget("u", dry_run=False, at="2023-12-01") == []  # nothing left to change


def test_archived_memories_come_back_when_nothing_active_matches(memory):
    ids = add(memory, "u", "s1", "2023-01-10", "Hey! How are you doing today?",
              "I work as a nurse at Santa Maria hospital.")
    memory.consolidate("u")
    memory.forget("u", dry_run=False, at="2023-12-01")
    assert ids[0] in memory.tiers.usage("u").archived
    nurse = memory.search("u", "What is my job at the hospital?", k=5, now="2023-12-01")
    assert ids[0] not in [h.episode.id for h in nurse]  # skipped: the active memory answers
    greeting = memory.search("u", "How are you doing today?", k=5, now="2023-12-01")
    assert greeting[0].episode.id == ids[1] or ids[0] in [h.episode.id for h in greeting]
    everything = memory.search("u", "What is my job at the hospital?", k=5, include_archived=True)
    assert ids[0] in [h.episode.id for h in everything]


def test_search_facts_skips_archived_statements_and_graph_facts_unless_asked(memory):
    add(memory, "u", "s1", "2023-01-10", "I work as a nurse at Santa Maria hospital.")
    memory.consolidate("u")
    found = memory.search_facts("u", "Where do I work?", k=5)
    usage = memory.tiers.usage("u")
    assert {usage.records[h.item.id].kind for h in found} == {"statement", "relation"}  # both can be forgotten
    assert {"statement", "relation"} <= {d.kind for d in memory.forget("u", at="2040-01-01")}
    for hit in found:
        usage.put(replace(usage.records[hit.item.id], archived=True))  # as the forgetting job does
        assert hit.item.id not in [h.item.id for h in memory.search_facts("u", "Where do I work?", k=5)]
        assert hit.item.id in [h.item.id for h in memory.search_facts("u", "Where do I work?", k=5,
                                                                         include_archived=True)]


def test_uses_reinforce_so_a_used_memory_outlives_an_unused_one(memory):
    ids = add(memory, "u", "s1", "2023-01-10", "I had pasta for lunch at the office canteen.",
              "I had soup for dinner at the office canteen.")
    memory.consolidate("u")
    for day in ("2023-02-01", "2023-03-01", "2023-04-01"):
        answer = memory.ask("u", "What did I have for lunch at the canteen?", at=day)
        assert ids[0] in answer.episode_ids
    usage = memory.tiers.usage("u").records
    assert usage[ids[0]].accesses >= usage[ids[1]].accesses + 2
    settings = memory.config.forgetting
    assert stability_days(item_state(usage[ids[0]]), settings) > stability_days(item_state(usage[ids[1]]), settings)
    archived = {d.item_id for d in memory.forget("u", at="2028-06-01")}
    assert ids[1] in archived and ids[0] not in archived


def test_knowledge_update_current_answer_and_answer_at_a_date_in_between(memory):
    add(memory, "u", "s1", "2023-01-15", "I live in Lisbon with my partner.")
    add(memory, "u", "s2", "2023-09-20", "We moved to Porto last week, the flat is lovely.")
    memory.consolidate("u")
    assert memory.ask("u", "Where do I live?", at="2024-01-10").text == "Porto"
    assert memory.ask("u", "Where do I live?", at="2023-05-01").text == "Lisbon"


def test_a_changed_favourite_closes_the_old_one_and_answers_by_date(memory):
    add(memory, "u", "s1", "2023-01-15", "My favourite food is sushi, I could eat it every day.")
    add(memory, "u", "s2", "2023-06-20", "Honestly, my favorite food is ramen now.")
    memory.consolidate("u")
    assert memory.ask("u", "What is my favourite food?", at="2023-09-01").text == "ramen"
    assert memory.ask("u", "What's my favorite food?", at="2023-03-01").text == "sushi"
    now = [s for s in memory.profile("u", at="2023-09-01") if s.slot == "favourite food"]
    assert [s.value for s in now] == ["ramen"]
    [old] = [s for s in memory.profile("u", at="2023-03-01") if s.slot == "favourite food"]
    assert old.value == "sushi" and old.valid_to is not None


def test_a_superseded_home_stays_evidence_for_other_questions(memory):
    [lisbon] = add(memory, "u", "s1", "2023-01-15", "I live in Lisbon, right by the beach where I learned to surf.")
    add(memory, "u", "s2", "2023-09-20", "We moved to Porto last week, the flat is lovely.")
    memory.consolidate("u")
    assert lisbon not in memory.ask("u", "Where do I live?", at="2024-01-10").episode_ids
    assert lisbon in memory.ask("u", "Where did I learn to surf?", at="2024-01-10").episode_ids


def test_an_update_answers_in_the_place_of_what_it_updates(memory):
    # "medicine" is nowhere near "studying" in meaning; the sentence it replaces is
    add(memory, "u", "s1", "2023-02-20", "I'm studying for a law degree at King's College.")
    add(memory, "u", "s2", "2023-04-01", "I swapped my morning runs for evening yoga classes.")
    add(memory, "u", "s3", "2023-10-01", "I dropped law and switched to medicine.")
    memory.consolidate("u")
    assert "medicine" in memory.ask("u", "What am I studying?", at="2024-01-10").text
    assert "law" in memory.ask("u", "What was I studying?", at="2023-06-01").text


def test_a_short_statement_naming_a_thing_is_evidence_and_its_replacement_answers_now(memory):
    add(memory, "u", "s1", "2023-03-12", "I have an iPhone 12.")
    add(memory, "u", "s2", "2023-10-21", "I upgraded to a Pixel 8.")
    memory.consolidate("u")
    assert "iPhone" in memory.ask("u", "What phone did I have?", at="2023-08-01").text
    assert "Pixel" in memory.ask("u", "What phone do I have?", at="2024-01-10").text


def test_a_later_count_of_the_same_thing_updates_the_earlier_one(memory):
    add(memory, "u", "s1", "2023-04-02", "I've spotted 27 bird species on my walks so far this year.")
    add(memory, "u", "s2", "2023-08-20", "Great news, I've spotted 32 bird species on my walks this year.")
    memory.consolidate("u")
    assert "32" in memory.ask("u", "How many bird species have I spotted?", at="2023-09-01").text
    assert "27" in memory.ask("u", "How many bird species had I spotted?", at="2023-05-01").text


def test_advice_keeps_a_move_that_mentions_a_relative(memory):
    add(memory, "u", "s1", "2023-05-02", "I live in Rosario with my family.")
    add(memory, "u", "s2", "2024-02-10", "We moved to Córdoba for my wife's job.")
    memory.consolidate("u")
    answer = memory.ask("u", "Recommend a restaurant for a family dinner.", at="2024-08-01")
    assert answer.reason == "profile constraints"
    assert "Córdoba" in answer.text and "Rosario" not in answer.text


def test_bad_feedback_with_a_correction_changes_the_next_answer(memory):
    add(memory, "u", "s1", "2023-03-01", "I live in Lisbon.", "My favourite dish is bacalhau.")
    memory.consolidate("u")
    first = memory.ask("u", "Where do I live?", at="2023-06-01")
    assert first.text == "Lisbon"
    report = memory.feedback(first.trace_id, "bad", correction="I live in Braga now.", role="Sam", at="2023-06-02")
    assert report["correction_id"] and report["weights"][f"route:{first.route.value}"] < 1.0
    second = memory.ask("u", "Where do I live?", at="2023-06-03")
    assert second.text == "Braga"
    closed = [s for s in memory.tiers.profile("u").statements if s.value == "Lisbon"]
    assert closed and closed[0].valid_to is not None  # the profile was revised at once
    usage = memory.tiers.usage("u").records
    assert usage[report["correction_id"]].pinned
    again = memory.feedback(first.trace_id, "bad", correction="I live in Braga now.", role="Sam", at="2023-06-02")
    assert again["correction_id"] == report["correction_id"]  # a retried correction is not stored twice


def test_good_feedback_reinforces_and_weights_reset(memory):
    add(memory, "u", "s1", "2023-03-01", "My dog Rex loves the beach.")
    memory.consolidate("u")
    answer = memory.ask("u", "What does my dog love?", at="2023-04-01")
    before = memory.tiers.usage("u").records[answer.episode_ids[0]].feedback
    report = memory.feedback(answer.trace_id, True)
    assert memory.tiers.usage("u").records[answer.episode_ids[0]].feedback == before + 1
    assert all(w > 1.0 for w in report["weights"].values())
    memory.reset_feedback("u")
    assert memory.tiers.usage("u").weights == {}
    assert all(not u.route_feedback and not u.feedback for u in memory.tiers.usage("u").records.values())


def test_rating_an_answer_again_replaces_the_earlier_rating(memory):
    add(memory, "u", "s1", "2023-03-01", "My dog Rex loves the beach.", "My cat Tom sleeps all day.")
    answer = memory.ask("u", "What does my dog love?", at="2023-04-01")
    top = answer.episode_ids[0]
    first = memory.feedback(answer.trace_id, "bad")
    again = memory.feedback(answer.trace_id, "bad")  # a retry
    usage = memory.tiers.usage("u")
    assert usage.records[top].feedback == -1 and again["weights"] == {} and first["weights"]
    assert sum(r.delta for r in usage.ratings if r.item_id == top) == -1
    memory.feedback(answer.trace_id, "good")  # the user changed their mind
    usage = memory.tiers.usage("u")
    assert usage.records[top].feedback == 1
    vector = memory.embedder.embed(["What does my dog love?"])[0]
    assert usage.rated_like(vector, answer.route.value, 0.7) == {top: 1.0}


def test_bad_ratings_demote_a_memory_for_that_route_only(memory):
    ids = add(memory, "u", "s1", "2023-03-01", "I went hiking in the Alps in May.",
              "I went hiking in the Andes in June.")
    memory.consolidate("u")
    answer = memory.ask("u", "Where did I go hiking?", at="2023-07-01", route="extraction")
    top = answer.episode_ids[0]
    memory.feedback(answer.trace_id, "bad")
    after = memory.search("u", "Where did I go hiking?", k=2, route="extraction")
    assert after[0].episode.id != top
    other_route = memory.search("u", "Where did I go hiking?", k=2, route="abstraction")
    assert other_route[0].episode.id == top
    assert set(ids) == {h.episode.id for h in after}


def test_a_bad_rating_demotes_for_questions_like_the_rated_one_and_survives_a_reopen(tmp_path, memory, embedder):
    add(memory, "u", "s1", "2023-03-01", "I went hiking in the Alps in May.", "I went hiking in the Andes in June.",
        "I love to travel to the Alps and the Andes every winter.")
    memory.consolidate("u")
    unrelated = "Where do I like to travel?"
    before = [h.episode.id for h in memory.search("u", unrelated, k=3, route="extraction")]
    answer = memory.ask("u", "Where did I go hiking?", at="2023-07-01", route="extraction")
    top = answer.episode_ids[0]
    memory.feedback(answer.trace_id, "bad")
    similar = "Where did I go hiking last spring?"
    assert memory.search("u", similar, k=3, route="extraction")[0].episode.id != top
    assert [h.episode.id for h in memory.search("u", unrelated, k=3, route="extraction")] == before
    with Memory(tmp_path / "data", embedder=embedder) as reopened:  # ratings are stored with the user
        assert reopened.search("u", similar, k=3, route="extraction")[0].episode.id != top
        reopened.reset_feedback("u")
        assert reopened.search("u", similar, k=3, route="extraction")[0].episode.id == top
        assert reopened.tiers.usage("u").ratings == []


def test_deleting_the_only_evidence_of_a_graph_fact_deletes_its_usage_and_ratings(memory):
    [said] = add(memory, "u", "s1", "2023-01-10", "I work as a nurse at Santa Maria hospital.")
    memory.consolidate("u")
    [relation] = [h.item for h in memory.search_facts("u", "Where do I work?", k=5) if not hasattr(h.item, "kind")]
    answer = memory.ask("u", "Who do I work for?", at="2023-02-01", route="generalization")
    memory.feedback(answer.trace_id, "good")
    assert relation.id in memory.tiers.usage("u").records
    memory.delete("u", said)
    usage = memory.tiers.usage("u")
    assert relation.id not in usage.records and not usage.ratings
    assert not memory.backend.scan(USAGE, "u").num_rows and not memory.backend.scan(RATINGS, "u").num_rows


def test_a_favourite_question_about_something_else_or_someone_else_is_not_the_users_favourite(memory):
    add(memory, "u", "s1", "2023-01-15", "My favourite food is sushi.", "My friend Ana cooks great ramen.")
    memory.consolidate("u")
    assert memory.ask("u", "What is my favourite food?", at="2023-02-01").text == "sushi"
    for question in ("What is Ana's favourite food?", "What restaurant serves my favourite food?"):
        assert memory.ask("u", question, at="2023-02-01").reason != "profile: favourite food"


def test_deleting_a_rated_episode_deletes_its_ratings_and_no_other_users(memory):
    for user in ("u", "v"):
        add(memory, user, "s1", "2023-03-01", "I went hiking in the Alps in May.",
            "I went hiking in the Andes in June.")
        answer = memory.ask(user, "Where did I go hiking?", at="2023-07-01", route="extraction")
        memory.feedback(answer.trace_id, "bad")
    rated = {r.item_id for r in memory.tiers.usage("u").ratings}
    assert rated
    for item in rated:
        memory.delete("u", item)
    assert not {r.item_id for r in memory.tiers.usage("u").ratings} & rated
    assert not memory.backend.scan(RATINGS, "u").num_rows
    assert memory.backend.scan(RATINGS, "v").num_rows == len(memory.tiers.usage("v").ratings) > 0


def test_feedback_rejects_bad_input(memory):
    with pytest.raises(TraceNotFoundError):
        memory.feedback("no-such-trace", "good")
    add(memory, "u", "s1", "2023-03-01", "My dog Rex loves the beach.")
    answer = memory.ask("u", "What does my dog love?")
    for bad in (0, "meh", None, float("nan")):
        with pytest.raises(InvalidInputError):
            memory.feedback(answer.trace_id, bad)
    with pytest.raises(InvalidInputError):
        memory.feedback(answer.trace_id, "bad", correction="   ")


def test_feedback_bound_to_a_user_cannot_rate_or_correct_another_users_answer(memory):
    add(memory, "a", "s1", "2023-03-01", "I live in Lisbon.")
    add(memory, "b", "s1", "2023-03-01", "I live in Oslo.")
    memory.consolidate()
    answer = memory.ask("a", "Where do I live?", at="2023-06-01")
    before = {kind: memory.backend.scan(kind, "b").num_rows for kind in Kind}
    with pytest.raises(TraceNotFoundError):
        memory.feedback(answer.trace_id, "bad", correction="I live in Rome now.", user_id="b")
    assert {kind: memory.backend.scan(kind, "b").num_rows for kind in Kind} == before
    assert memory.ask("b", "Where do I live?", at="2023-06-02").text == "Oslo"
    assert memory.feedback(answer.trace_id, "good", user_id="a")["user_id"] == "a"
