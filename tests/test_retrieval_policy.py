import pytest

from memagent.policies.retrieval import add_neighbours, boost, boost_in_time, fuse, named_speaker, normalise, rank
from memagent.types import Signal

W = {Signal.LEXICAL: 0.6, Signal.VECTOR: 0.4}


def test_normalise_min_max():
    assert normalise([4.0, 2.0, 3.0]) == [1.0, 0.0, 0.5]
    assert normalise([0.7]) == [1.0]
    assert normalise([]) == []


def test_fusion_sums_weighted_normalised_scores_and_records_signals():
    fused = fuse({Signal.LEXICAL: [("a", 10.0), ("b", 6.0), ("c", 2.0)],
                  Signal.VECTOR: [("b", 0.9), ("d", 0.5)]}, W)
    assert fused["a"].score == pytest.approx(0.6)
    assert fused["b"].score == pytest.approx(0.6 * 0.5 + 0.4 * 1.0)
    assert fused["d"].score == pytest.approx(0.0)
    assert fused["b"].signals == {Signal.LEXICAL, Signal.VECTOR}
    assert [i for i, _ in rank(fused)][:2] == ["b", "a"]


def test_weights_change_the_order():
    found = {Signal.LEXICAL: [("a", 1.0)], Signal.VECTOR: [("c", 0.5)]}
    assert rank(fuse(found, {Signal.LEXICAL: 2.0, Signal.VECTOR: 1.0}), 1)[0][0] == "a"
    assert rank(fuse(found, {Signal.LEXICAL: 1.0, Signal.VECTOR: 2.0}), 1)[0][0] == "c"


def test_time_boost_adds_a_share_of_the_best_score_and_marks():
    fused = fuse({Signal.VECTOR: [("a", 0.9), ("b", 0.5), ("c", 0.1)]}, W)
    fused = boost_in_time(fused, {"b", "missing"}, 1.0)
    assert fused["b"].score == pytest.approx(0.4 * 0.5 + 0.4)
    assert rank(fused, 1)[0][0] == "b"
    assert Signal.TIME in fused["b"].signals and "missing" not in fused


def test_a_speaker_is_named_by_a_whole_capitalised_name_and_alone():
    speakers = {"Tim", "John", "user", "assistant"}
    assert named_speaker("Which city has Tim visited?", speakers) == "Tim"
    assert named_speaker("What did Timothy say?", speakers) is None  # not a whole word
    assert named_speaker("Did Tim see John?", speakers) is None  # two speakers named
    assert named_speaker("What did the user and the assistant say?", speakers) is None  # roles, not names
    assert named_speaker("What is tim's job?", speakers) is None  # names are matched as written
    assert named_speaker("What is Tim's job?", speakers) == "Tim"


def test_speaker_boost_lifts_the_chosen_by_a_share_of_the_best():
    fused = fuse({Signal.VECTOR: [("a", 0.9), ("b", 0.5), ("c", 0.1)]}, W)
    lifted = boost(fused, {"c"}, 0.75, Signal.SPEAKER)
    assert lifted["c"].score == pytest.approx(0.75 * 0.4) and Signal.SPEAKER in lifted["c"].signals
    assert lifted["a"] == fused["a"] and rank(lifted)[1][0] == "c"


def test_neighbours_get_a_share_of_their_hit():
    fused = fuse({Signal.VECTOR: [("a", 0.9), ("b", 0.5), ("c", 0.1)]}, W)
    fused = add_neighbours(fused, {"a": ["n1", "b"]}, 0.5)
    assert fused["n1"].score == pytest.approx(0.4 * 0.5)
    assert fused["n1"].signals == {Signal.NEIGHBOUR}
    assert fused["b"].score == pytest.approx(0.4 * 0.5 + 0.4 * 0.5)
    assert rank(fused, 1)[0][0] == "a"


def test_ranking_policies_return_new_rankings_and_leave_their_inputs_alone():
    from memagent.policies.retrieval import apply_feedback

    fused = fuse({Signal.VECTOR: [("a", 0.9), ("b", 0.5)]}, W)
    before = dict(fused)
    boosted = boost_in_time(fused, {"b"}, 1.0)
    grown = add_neighbours(fused, {"a": ["n"]}, 0.5)
    demoted = apply_feedback(fused, {"a": -1.0}, 0.5)
    assert fused == before and "n" not in fused
    assert boosted["b"].score > fused["b"].score and "n" in grown and demoted["a"].score < fused["a"].score
