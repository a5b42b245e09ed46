"""How the signals of a search are fused into one ranking. Pure: no I/O.

Each signal's scores (BM25 for lexical, cosine similarity for vector) are
min-max normalised over its own candidates, weighted and summed: an episode
found by several signals adds them up. Score fusion keeps how much better the
best lexical match is than the rest, which reciprocal-rank fusion throws away
(on LoCoMo it gave +3 points of recall@10 over RRF with k=60). Hits inside a
time range named in the question gain ``time_boost`` times the best
candidate's score. The default (0.5) is a lift, not a filter: people often
mention in June what happened in May, so the turn that answers "last May" may
itself lie outside May (a boost of 1.0 cost 0.5 points of LoCoMo recall@10).
The adjacent turns of the best hits join with a share of their hit's score,
because an answer often sits in the turn next to the one that matches.

>>> from memagent.types import Signal
>>> fused = fuse({Signal.LEXICAL: [("a", 9.0), ("b", 3.0)], Signal.VECTOR: [("b", 0.8), ("c", 0.4)]},
...              {Signal.LEXICAL: 0.6, Signal.VECTOR: 0.4})
>>> [(item, round(s.score, 2)) for item, s in rank(fused)]
[('a', 0.6), ('b', 0.4), ('c', 0.0)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from memagent.types import Signal


@dataclass
class Scored:
    """A candidate's running score and the signals that found it."""

    score: float = 0.0
    signals: set[Signal] = field(default_factory=set)


def normalise(scores: Sequence[float]) -> list[float]:
    """Min-max to [0, 1]; a lone or all-equal list scores 1."""
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high - low <= 1e-12:
        return [1.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def fuse(found: Mapping[Signal, Sequence[tuple[str, float]]],
         weights: Mapping[Signal, float]) -> dict[str, Scored]:
    """Weighted sum of each signal's min-max-normalised scores."""
    fused: dict[str, Scored] = {}
    for signal, hits in found.items():
        weight = weights.get(signal, 1.0)
        for (item, _), norm in zip(hits, normalise([s for _, s in hits])):
            entry = fused.setdefault(item, Scored())
            entry.score += weight * norm
            entry.signals.add(signal)
    return fused


def boost_in_time(fused: dict[str, Scored], in_range: set[str], boost: float) -> None:
    """Add ``boost`` times the best score to candidates whose event time lies in a queried range."""
    best = max((entry.score for entry in fused.values()), default=0.0)
    for item in in_range:
        if item in fused:
            fused[item].score += boost * best
            fused[item].signals.add(Signal.TIME)


def add_neighbours(fused: dict[str, Scored], neighbours: Mapping[str, Sequence[str]],
                   decay: float) -> None:
    """Give each hit's adjacent turns ``decay`` times the hit's score."""
    gains: dict[str, float] = {}
    for hit, adjacent in neighbours.items():
        for item in adjacent:
            gains[item] = max(gains.get(item, 0.0), fused[hit].score * decay)
    for item, gain in gains.items():
        entry = fused.setdefault(item, Scored())
        entry.score += gain
        entry.signals.add(Signal.NEIGHBOUR)


def apply_feedback(fused: dict[str, Scored], feedback: Mapping[str, float], demote_factor: float) -> None:
    """Scale candidates by their net rating for this kind of question.

    Each net bad rating multiplies the score by ``demote_factor``, each net good one
    by ``2 - demote_factor`` (0.5 and 1.5 by default); at most three count either way.
    """
    for item, net in feedback.items():
        if item in fused and net:
            steps = max(-3.0, min(3.0, net))
            fused[item].score *= (demote_factor ** -steps) if steps < 0 else ((2.0 - demote_factor) ** steps)


def rank(fused: Mapping[str, Scored], k: int | None = None) -> list[tuple[str, Scored]]:
    """Candidates best first (ties broken by id, so results are stable)."""
    ordered = sorted(fused.items(), key=lambda kv: (-kv[1].score, kv[0]))
    return ordered if k is None else ordered[:k]
