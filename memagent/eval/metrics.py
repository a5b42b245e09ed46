"""Metric functions, each matching its benchmark's own definition.

LoCoMo QA (snap-research/locomo, ``task_eval/evaluation.py``):
answers and predictions are normalised (lower case, punctuation removed, the
words a/an/the/and removed, commas removed, whitespace collapsed), Porter-stemmed
(NLTK), and compared by token F1. Category 1 (multi-hop) splits both on commas
and averages, over the gold parts, the best F1 of any predicted part; category 3
keeps the gold answer before the first ';'; category 5 (adversarial) scores 1
when the prediction says "no information available" or "not mentioned".

LongMemEval retrieval (xiaowu0162/LongMemEval, ``src/retrieval/eval_utils.py``):
recall_any@k, recall_all@k and ndcg_any@k over a ranking of the corpus, and the
session-level variant that maps turn ids to session ids and widens k until k
distinct sessions are covered.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the|and)\b")
_PUNCTUATION = set(string.punctuation)
_STEMMER = None


def distinct(ids: Sequence[str]) -> list[str]:
    """The ids in order, each once."""
    return list(dict.fromkeys(ids))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile by nearest rank (index rounded), or None for no values.

    >>> percentile([5.0, 1.0, 3.0], 0.5)
    3.0
    """
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def recall_at_k(retrieved: Sequence[str], gold: Sequence[str], k: int) -> float:
    """Share of gold ids among the top ``k`` distinct retrieved ids.

    >>> recall_at_k(["a", "a", "b", "c"], ["b", "z"], 2)
    0.5
    """
    if not gold:
        raise ValueError("recall needs at least one gold id")
    top = set(distinct(retrieved)[:k])
    return sum(1 for g in set(gold) if g in top) / len(set(gold))


# --- LoCoMo QA ------------------------------------------------------------------
def normalize_answer(text: str) -> str:
    """LoCoMo's normalisation: commas, case, punctuation, a/an/the/and, whitespace."""
    text = str(text).replace(",", "").lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _stems(text: str) -> list[str]:
    global _STEMMER
    if _STEMMER is None:
        from nltk.stem import PorterStemmer

        _STEMMER = PorterStemmer()
    return [_STEMMER.stem(word) for word in normalize_answer(text).split()]


def token_f1(prediction: str, gold: str) -> float:
    """Token F1 of stemmed, normalised tokens (LoCoMo's ``f1_score``).

    >>> round(token_f1("She painted a sunrise", "a painted sunrise"), 3)
    0.8
    """
    predicted, expected = _stems(prediction), _stems(gold)
    same = sum((Counter(predicted) & Counter(expected)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def gold_recall(prediction: str, gold: str) -> float:
    """Share of the gold answer's stemmed tokens that the prediction contains (each counted as often
    as it occurs): the recall half of ``token_f1``, which does not punish an answer for quoting the
    whole sentence the gold span came from.

    >>> gold_recall("I moved to Lisbon in May, after the wedding", "Lisbon")
    1.0
    >>> gold_recall("No information available", "three")
    0.0
    """
    predicted, expected = _stems(prediction), _stems(gold)
    if not expected:
        return 0.0
    return sum((Counter(predicted) & Counter(expected)).values()) / len(expected)


def multi_answer_f1(prediction: str, gold: str) -> float:
    """Category 1: mean over comma-separated gold parts of the best F1 of any predicted part."""
    predictions = [p.strip() for p in str(prediction).split(",")]
    golds = [g.strip() for g in str(gold).split(",")]
    return sum(max(token_f1(p, g) for p in predictions) for g in golds) / len(golds)


def locomo_qa_score(prediction: str, gold: object, category: int) -> float:
    """LoCoMo's per-question QA score under its category's rule."""
    prediction = str(prediction)
    if category == 5:
        said = prediction.lower()
        return 1.0 if "no information available" in said or "not mentioned" in said else 0.0
    answer = str(gold)
    if category == 3:
        answer = answer.split(";")[0].strip()
    if category == 1:
        return multi_answer_f1(prediction, answer)
    if category in (2, 3, 4):
        return token_f1(prediction, answer)
    raise ValueError(f"unknown LoCoMo category {category!r}")


# --- LongMemEval retrieval ---------------------------------------------------------
def _dcg(relevances: Sequence[float], k: int) -> float:
    top = list(relevances)[:k]
    if not top:
        return 0.0
    # as in the official script: the second item is divided by log2(2) = 1, the third by log2(3)
    return top[0] + sum(rel / math.log2(i) for i, rel in enumerate(top[1:], start=2))


def longmemeval_retrieval(ranking: Sequence[int], correct: Sequence[str], corpus_ids: Sequence[str],
                          k: int) -> tuple[float, float, float]:
    """(recall_any@k, recall_all@k, ndcg_any@k); ``ranking`` indexes ``corpus_ids``, best first."""
    recalled = {corpus_ids[i] for i in ranking[:k]}
    recall_any = float(any(doc in recalled for doc in correct))
    recall_all = float(all(doc in recalled for doc in correct))
    relevances = [1.0 if doc in correct else 0.0 for doc in corpus_ids]
    ideal = _dcg(sorted(relevances, reverse=True), k)
    actual = _dcg([relevances[i] for i in ranking[:k]], k)
    return recall_any, recall_all, (actual / ideal if ideal else 0.0)


def session_of(turn_id: str) -> str:
    """LongMemEval turn ids are ``<session id>_<turn number>``."""
    return "_".join(turn_id.split("_")[:-1])


def longmemeval_session_retrieval(ranking: Sequence[int], correct_turns: Sequence[str],
                                  corpus_turn_ids: Sequence[str], k: int) -> tuple[float, float, float]:
    """Turn rankings scored at session level, k widened until k distinct sessions are in."""
    correct = sorted({session_of(t) for t in correct_turns})
    corpus = [session_of(t) for t in corpus_turn_ids]
    effective = k
    while effective <= len(corpus) and len({corpus[i] for i in ranking[:effective]}) < k:
        effective += 1
    return longmemeval_retrieval(ranking, correct, corpus, effective)


_WORDS = re.compile(r"\w+|[^\w\s]")


def bleu1(prediction: str, gold: str) -> float:
    """BLEU-1 of a prediction against one reference, as the mem0 line of LoCoMo harnesses reports it.

    NLTK's ``sentence_bleu`` with weights (1, 0, 0, 0) and smoothing method 1, on
    lower-cased tokens. Those harnesses split words with NLTK's ``word_tokenize``,
    which needs the punkt data files; this uses the regex ``\\w+|[^\\w\\s]`` instead,
    which splits the same way on plain words, numbers and punctuation.

    >>> bleu1("Paris in May", "paris in may")
    1.0
    """
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    predicted = _WORDS.findall(str(prediction).lower())
    expected = _WORDS.findall(str(gold).lower())
    if not predicted or not expected:
        return 0.0
    return float(sentence_bleu([expected], predicted, weights=(1, 0, 0, 0),
                               smoothing_function=SmoothingFunction().method1))
