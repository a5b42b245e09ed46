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
When the question names one of the memory's speakers ("Where has Melanie
camped?"), what that speaker said gains ``speaker_boost`` times the best score,
after the neighbours are added (a reply next to the other speaker's question
keeps its place): on LoCoMo, 98 % of the evidence of such questions is said by
the speaker named, yet only 61 % of the top 10 were. The boost of 0.5 was chosen
by leave-one-conversation-out (0.4 or 0.5 in every fold): multi-hop recall@10
40.3 -> 48.1, no category lower.
The adjacent turns of the best hits join with a share of their hit's score,
because an answer often sits in the turn next to the one that matches.

>>> from memagent.types import Signal
>>> fused = fuse({Signal.LEXICAL: [("a", 9.0), ("b", 3.0)], Signal.VECTOR: [("b", 0.8), ("c", 0.4)]},
...              {Signal.LEXICAL: 0.6, Signal.VECTOR: 0.4})
>>> [(item, round(s.score, 2)) for item, s in rank(fused)]
[('a', 0.6), ('b', 0.4), ('c', 0.0)]
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from memagent.types import Signal

Fused = dict[str, "Scored"]


@dataclass(frozen=True)
class Scored:
    """A candidate's score and the signals that found it."""

    score: float = 0.0
    signals: frozenset[Signal] = frozenset()

    def plus(self, gain: float, signal: Signal) -> Scored:
        return Scored(self.score + gain, self.signals | {signal})


def normalise(scores: Sequence[float]) -> list[float]:
    """Min-max to [0, 1]; a lone or all-equal list scores 1."""
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high - low <= 1e-12:
        return [1.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def fuse(found: Mapping[Signal, Sequence[tuple[str, float]]], weights: Mapping[Signal, float]) -> Fused:
    """Weighted sum of each signal's min-max-normalised scores."""
    fused: Fused = {}
    for signal, hits in found.items():
        weight = weights.get(signal, 1.0)
        for (item, _), norm in zip(hits, normalise([s for _, s in hits])):
            fused[item] = fused.get(item, Scored()).plus(weight * norm, signal)
    return fused


def boost(fused: Mapping[str, Scored], chosen: Collection[str], share: float, signal: Signal) -> Fused:
    """Add ``share`` times the best score to the ``chosen`` candidates, marked with ``signal``."""
    best = max((entry.score for entry in fused.values()), default=0.0)
    return {item: entry.plus(share * best, signal) if item in chosen else entry for item, entry in fused.items()}


def boost_in_time(fused: Mapping[str, Scored], in_range: Collection[str], share: float) -> Fused:
    """Add ``share`` times the best score to candidates whose event time lies in a queried range."""
    return boost(fused, in_range, share, Signal.TIME)


def named_speaker(query: str, speakers: Collection[str]) -> str | None:
    """The one speaker whose name the query says, or None (no name, or several).

    Only roles that are names count (they start with a capital letter), so the
    usual "user" and "assistant" never match; a name matches as a whole word.

    >>> named_speaker("Where has Melanie camped?", {"Melanie", "Caroline"})
    'Melanie'
    >>> print(named_speaker("When did Caroline meet Melanie?", {"Melanie", "Caroline"}))
    None
    >>> print(named_speaker("What did the user say?", {"user", "assistant"}))
    None
    """
    named = [s for s in speakers if s[:1].isupper() and re.search(rf"(?<!\w){re.escape(s)}(?!\w)", query)]
    return named[0] if len(named) == 1 else None


def add_neighbours(fused: Mapping[str, Scored], neighbours: Mapping[str, Sequence[str]], decay: float) -> Fused:
    """Give each hit's adjacent turns ``decay`` times the hit's score."""
    gains: dict[str, float] = {}
    for hit, adjacent in neighbours.items():
        for item in adjacent:
            gains[item] = max(gains.get(item, 0.0), fused[hit].score * decay)
    out = dict(fused)
    for item, gain in gains.items():
        out[item] = out.get(item, Scored()).plus(gain, Signal.NEIGHBOUR)
    return out


def apply_feedback(fused: Mapping[str, Scored], feedback: Mapping[str, float], demote_factor: float) -> Fused:
    """Scale candidates by their net rating for this kind of question.

    Each net bad rating multiplies the score by ``demote_factor``, each net good one
    by ``2 - demote_factor`` (0.5 and 1.5 by default); at most three count either way.
    """
    out = dict(fused)
    for item, net in feedback.items():
        if item in out and net:
            steps = max(-3.0, min(3.0, net))
            factor = (demote_factor ** -steps) if steps < 0 else ((2.0 - demote_factor) ** steps)
            out[item] = replace(out[item], score=out[item].score * factor)
    return out


def hidden_by_archive(archived: Collection[str], vector_hits: Sequence[tuple[str, float]],
                      min_similarity: float) -> frozenset[str]:
    """Which archived memories a search skips: all of them, unless nothing active matches.

    When the best vector hit that is not archived is less similar than
    ``min_similarity``, the archive is searched too (it hides nothing): a memory
    that stopped mattering comes back when it is the only thing that answers.

    >>> sorted(hidden_by_archive({"old"}, [("new", 0.8), ("old", 0.9)], 0.3))
    ['old']
    >>> hidden_by_archive({"old"}, [("new", 0.1), ("old", 0.9)], 0.3)
    frozenset()
    """
    if not archived:
        return frozenset()
    best = max((v for i, v in vector_hits if i not in archived), default=-1.0)
    return frozenset() if vector_hits and best < min_similarity else frozenset(archived)


def rank(fused: Mapping[str, Scored], k: int | None = None) -> list[tuple[str, Scored]]:
    """Candidates best first (ties broken by id, so results are stable)."""
    ordered = sorted(fused.items(), key=lambda kv: (-kv[1].score, kv[0]))
    return ordered if k is None else ordered[:k]
