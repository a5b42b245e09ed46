"""Metric functions pinned to the benchmarks' official definitions, on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from memagent.eval.metrics import (
    locomo_qa_score,
    longmemeval_retrieval,
    longmemeval_session_retrieval,
    multi_answer_f1,
    normalize_answer,
    token_f1,
)


def test_normalisation():
    # rule: lower-case, drop commas and punctuation, drop a/an/the/and, collapse spaces
    assert normalize_answer("The Cat, and  a DOG!") == "cat dog"
    assert normalize_answer("7 May, 2023") == "7 may 2023"


def test_token_f1_uses_stems():
    # rule: tokens are Porter-stemmed before matching ("painted" ~ "paint", "sunrises" ~ "sunrise")
    assert token_f1("painted sunrises", "paint a sunrise") == 1.0
    # 2 shared of 3 predicted and 2 gold tokens: P = 2/3, R = 1, F1 = 0.8
    assert token_f1("went to Paris", "Paris trip went") == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))
    assert token_f1("nothing", "something else") == 0.0


def test_category_1_mean_partial_f1_over_comma_separated_gold():
    # rule: split both on ',', mean over gold parts of the best F1 of any predicted part
    assert multi_answer_f1("hiking, pottery", "pottery, hiking, camping") == pytest.approx(2 / 3)
    assert locomo_qa_score("hiking, pottery", "pottery, hiking, camping", 1) == pytest.approx(2 / 3)


def test_category_3_scores_the_part_before_semicolon():
    # rule: for category 3 the gold answer is cut at the first ';'
    assert locomo_qa_score("psychology", "Psychology; counseling certification", 3) == 1.0
    assert locomo_qa_score("psychology", "Psychology; counseling certification", 4) < 1.0


def test_category_5_needs_an_abstention_phrase():
    # rule: correct when the prediction contains "no information available" or "not mentioned"
    assert locomo_qa_score("That is not mentioned in the conversation.", "blue", 5) == 1.0
    assert locomo_qa_score("No information available", "blue", 5) == 1.0
    assert locomo_qa_score("blue", "blue", 5) == 0.0


def test_categories_2_and_4_plain_f1_and_unknown_category():
    assert locomo_qa_score("7 May 2023", "7 May, 2023", 2) == 1.0
    with pytest.raises(ValueError):
        locomo_qa_score("x", "y", 9)


def test_longmemeval_recall_any_all_and_ndcg():
    corpus = ["s1_1", "s1_2", "s2_1", "s3_1"]
    correct = ["s2_1", "s3_1"]
    ranking = [2, 0, 1, 3]  # s2_1 first, s3_1 last
    any_, all_, ndcg = longmemeval_retrieval(ranking, correct, corpus, k=2)
    assert (any_, all_) == (1.0, 0.0)
    # rule: DCG = rel1 + sum_{i>=2} rel_i / log2(i); ideal over the whole corpus = 1 + 1/log2(2) = 2
    assert ndcg == pytest.approx(1.0 / 2.0)
    _, all4, ndcg4 = longmemeval_retrieval(ranking, correct, corpus, k=4)
    assert all4 == 1.0
    assert ndcg4 == pytest.approx((1 + 1 / math.log2(4)) / 2)


def test_longmemeval_session_level_widens_k_to_distinct_sessions():
    corpus = ["a_1", "a_2", "a_3", "b_1", "c_1"]
    ranking = [0, 1, 2, 3, 4]
    # rule: k=2 distinct sessions needs the first 4 turns (a, a, a, b), so session b is recalled
    any_, all_, _ = longmemeval_session_retrieval(ranking, ["b_1"], corpus, k=2)
    assert (any_, all_) == (1.0, 1.0)
    any_, _, _ = longmemeval_session_retrieval(ranking, ["c_1"], corpus, k=2)
    assert any_ == 0.0
