"""What to consolidate, and how a new statement joins a profile. Pure: no I/O.

``due`` picks the users whose unconsolidated episodes are numerous or old
enough. ``decide`` compares one extracted statement with the subject's
statements: one already absorbed from the same episode (open or closed: a
batch replayed after a crash) is known; a near duplicate in the same category
is merged (evidence united, confidence raised); the same exclusive slot with
another value supersedes every open statement of that slot it contradicts,
which are closed, never overwritten; anything else is new. No decision depends
on the order the statements come in (ties go to the smaller id), so a profile
reloaded from storage in another row order decides as the one in memory did.

>>> from datetime import datetime, timezone
>>> t = datetime(2024, 1, 1, tzinfo=timezone.utc)
>>> due({"ann": (3, t), "bob": (0, None)}, t, min_new=1, max_delay_s=3600)
['ann']
>>> round(raise_confidence(0.6, 0.5), 2)
0.8
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from memagent.types import Candidate, Category, Statement, TextEnum


class Verdict(TextEnum):
    """What consolidation does with a candidate statement."""

    MERGE = "merge"          # the same as an active statement: evidence united
    SUPERSEDE = "supersede"  # contradicts open statements of an exclusive slot: they are closed
    NEW = "new"              # nothing like it yet: added
    KNOWN = "known"          # already absorbed from this very episode: nothing to do


MERGE, SUPERSEDE, NEW, KNOWN = Verdict.MERGE, Verdict.SUPERSEDE, Verdict.NEW, Verdict.KNOWN


@dataclass(frozen=True)
class Decision:
    """What to do with one candidate: ``kind`` and the statement it concerns, if any.

    A SUPERSEDE closes every statement of ``closes`` (sorted ids; ``target`` is the
    latest of them, the value the candidate replaces).
    """

    kind: Verdict
    target: str | None = None
    similarity: float = 0.0
    closes: tuple[str, ...] = ()


def due(pending: Mapping[str, tuple[int, datetime | None]], now: datetime, *,
        min_new: int = 1, max_delay_s: float = 0.0) -> list[str]:
    """Users to consolidate now: at least ``min_new`` new episodes, or any older than ``max_delay_s``."""
    chosen = []
    for user, (count, oldest) in sorted(pending.items()):
        if count <= 0:
            continue
        waited = (now - oldest).total_seconds() if oldest is not None else 0.0
        if count >= min_new or waited >= max_delay_s:
            chosen.append(user)
    return chosen


def raise_confidence(old: float, new: float) -> float:
    """Independent evidence: 1 - (1 - old)(1 - new), capped below certainty."""
    return min(0.99, 1.0 - (1.0 - old) * (1.0 - new))


def decide(candidate: Candidate, vector: np.ndarray, statements: Sequence[Statement],
           vectors: np.ndarray, *, merge_similarity: float = 0.86) -> Decision:
    """Merge, supersede or add ``candidate`` given the subject's statements (open and closed) and their vectors.

    >>> from datetime import datetime, timezone
    >>> t = datetime(2024, 1, 1, tzinfo=timezone.utc)
    >>> old = [Statement(i, "u", "Sam", f"Sam lives in {v}.", Category.LOCATION, 0.8, (f"e{i}",), t,
    ...                  slot="home", value=v) for i, v in (("b", "Braga"), ("a", "Lisbon"))]
    >>> new = Candidate("Sam", "Sam lives in Porto.", Category.LOCATION, 0.8, "e9", "s", t, "home", "Porto")
    >>> vectors = np.eye(3, dtype=np.float32)
    >>> decide(new, vectors[2], old, vectors[:2])
    Decision(kind=<Verdict.SUPERSEDE: 'supersede'>, target='b', similarity=0.0, closes=('a', 'b'))
    >>> decide(new, vectors[2], old[::-1], vectors[1::-1]) == decide(new, vectors[2], old, vectors[:2])
    True
    """
    same = [n for n, s in enumerate(statements)
            if s.subject == candidate.subject and s.category is not Category.SUMMARY]
    if not same:
        return Decision(NEW)
    sims = vectors[same] @ vector
    ranked = sorted(range(len(same)), key=lambda n: (-float(sims[n]), statements[same[n]].id))
    for n in ranked:  # absorbed already, open or closed since: a replayed batch changes nothing
        statement = statements[same[n]]  # (one episode may fill several slots, one statement each)
        if candidate.episode_id in statement.evidence_ids and sims[n] >= merge_similarity \
                and statement.slot == candidate.slot:
            return Decision(KNOWN, statement.id, float(sims[n]))
    ranked = [n for n in ranked if statements[same[n]].valid_to is None]
    if not ranked:
        return Decision(NEW)
    closed = contradicted(candidate, [statements[same[n]] for n in ranked])
    if closed:
        return Decision(SUPERSEDE, closed[-1].id, closes=tuple(sorted(s.id for s in closed)))
    statement, similarity = statements[same[ranked[0]]], float(sims[ranked[0]])
    if similarity >= merge_similarity and statement.category is candidate.category \
            and _norm(statement.value or "") == _norm(candidate.value or ""):
        return Decision(MERGE, statement.id, similarity)
    return Decision(NEW)


def contradicted(candidate: Candidate, active: Sequence[Statement]) -> list[Statement]:
    """The open statements of the candidate's exclusive slot that it contradicts, oldest first
    (by ``valid_from``, then id): another value, valid since no later than the candidate."""
    if candidate.slot is None or not candidate.value:
        return []
    found = [s for s in active if s.valid_to is None and s.slot == candidate.slot and s.value
             and _norm(s.value) != _norm(candidate.value) and s.valid_from <= candidate.event_time]
    return sorted(found, key=lambda s: (s.valid_from, s.id))


def favourite_slot(thing: str) -> str:
    """The slot of a favourite, so that "favourite foods" and "favorite food" are one slot.

    >>> favourite_slot("Foods"), favourite_slot("ice cream")
    ('favourite food', 'favourite ice cream')
    """
    words = [w[:-1] if w.endswith("s") and not w.endswith("ss") and len(w) > 3 else w for w in thing.lower().split()]
    return " ".join(["favourite", *words])


def _norm(value: str) -> str:
    return " ".join(value.lower().split())


def summary_order(vectors: np.ndarray, confidences: Sequence[float]) -> list[int]:
    """Rows ranked for an extractive summary: central to the session and confident first."""
    if not len(confidences):
        return []
    centroid = vectors.mean(axis=0)
    norm = float(np.linalg.norm(centroid)) or 1.0
    score = (vectors @ (centroid / norm)) * np.asarray(confidences, dtype=np.float32)
    return [int(i) for i in np.argsort(-score, kind="stable")]
