"""Metric functions, each matching its benchmark's own definition."""

from __future__ import annotations

from collections.abc import Sequence


def distinct(ids: Sequence[str]) -> list[str]:
    """The ids in order, each once."""
    seen: set[str] = set()
    return [i for i in ids if not (i in seen or seen.add(i))]


def recall_at_k(retrieved: Sequence[str], gold: Sequence[str], k: int) -> float:
    """Share of gold ids among the top ``k`` distinct retrieved ids.

    >>> recall_at_k(["a", "a", "b", "c"], ["b", "z"], 2)
    0.5
    """
    if not gold:
        raise ValueError("recall needs at least one gold id")
    top = set(distinct(retrieved)[:k])
    return sum(1 for g in set(gold) if g in top) / len(set(gold))
