"""How each memory of a user has been used: importance, uses, feedback, archive flag; and
the user's learned ranking weights.

One ``Usage`` per episode, statement or relation, written at consolidation (its
importance), on every answer that uses it (a use), on every rating (feedback,
overall and per route) and by the forgetting job (archived or not, and why).
``UserUsage`` holds one user's records and weights in memory; the caller
writes the records it changed.

Ratings are also kept one by one, each with the vector of the question that was
rated: a bad rating demotes a memory for questions like the rated one (same
route, similar wording), not for every question it might answer.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np
import pyarrow as pa

from memagent.policies.forgetting import ItemState
from memagent.records import Kind, Rating, Usage
from memagent.store.schema import from_table, vectors_of


def item_state(usage: Usage, closed: bool = False) -> ItemState:
    """What the forgetting policy needs to know of one memory's usage."""
    return ItemState(usage.id, usage.kind, usage.created, usage.last_reinforced, usage.accesses,
                     usage.importance, usage.feedback, usage.pinned, closed, usage.archived)


class UserUsage:
    """One user's usage records, ratings and learned weights."""

    def __init__(self, user_id: str, records: dict[str, Usage], weights: dict[str, float],
                 ratings: list[Rating] | None = None, rating_vectors: np.ndarray | None = None) -> None:
        self.user_id = user_id
        self.records = records
        self.weights = weights
        self.archived = {i for i, u in records.items() if u.archived}
        self.ratings: list[Rating] = list(ratings or [])
        self.rating_vectors = rating_vectors if rating_vectors is not None else np.zeros((0, 0), dtype=np.float32)

    @classmethod
    def from_arrow(cls, user_id: str, usage: pa.Table, weights: pa.Table, ratings: pa.Table,
                   dimension: int) -> UserUsage:
        records = {u.id: u for u in from_table(Kind.USAGE, usage)}
        learned = {w.key: float(w.value) for w in from_table(Kind.WEIGHT, weights)}
        return cls(user_id, records, learned, from_table(Kind.RATING, ratings), vectors_of(ratings, dimension))

    def add_ratings(self, ratings: list[Rating], vector: np.ndarray) -> None:
        """Keep ratings given for one question (``vector``); one with a known id replaces it."""
        fresh = {r.id for r in ratings}
        keep = [i for i, r in enumerate(self.ratings) if r.id not in fresh]
        old = self.rating_vectors[keep] if keep else np.zeros((0, len(vector)), dtype=np.float32)
        self.ratings = [self.ratings[i] for i in keep] + list(ratings)
        self.rating_vectors = np.vstack([old, np.tile(np.asarray(vector, dtype=np.float32), (len(ratings), 1))])

    def drop_ratings(self, item_ids: set[str] | None = None) -> list[str]:
        """Forget the ratings of ``item_ids`` (all when None); return their ids."""
        keep = [i for i, r in enumerate(self.ratings) if item_ids is not None and r.item_id not in item_ids]
        kept = set(keep)
        gone = [r.id for i, r in enumerate(self.ratings) if i not in kept]
        self.ratings = [self.ratings[i] for i in keep]
        self.rating_vectors = self.rating_vectors[keep] if keep else np.zeros((0, 0), dtype=np.float32)
        return gone

    def rated_like(self, vector: np.ndarray, route: str | None, min_similarity: float) -> dict[str, float]:
        """Each memory's net rating over the rated questions of ``route`` at least
        ``min_similarity`` similar to ``vector`` (any route when ``route`` is None)."""
        if not self.ratings:
            return {}
        similar = self.rating_vectors @ np.asarray(vector, dtype=np.float32) >= min_similarity
        net: dict[str, float] = {}
        for rating, close in zip(self.ratings, similar):
            if close and (route is None or rating.route == route):
                net[rating.item_id] = net.get(rating.item_id, 0.0) + rating.delta
        return net

    def put(self, usage: Usage) -> Usage:
        self.records[usage.item_id] = usage
        (self.archived.add if usage.archived else self.archived.discard)(usage.item_id)
        return usage

    def note(self, item_id: str, kind: str, created: datetime, importance: float, pinned: bool = False) -> Usage:
        """Record a new memory's importance; a known one keeps its uses and feedback."""
        old = self.records.get(item_id)
        if old is None:
            return self.put(Usage(item_id, self.user_id, kind, created, importance, pinned=pinned))
        return self.put(replace(old, importance=max(old.importance, importance), pinned=old.pinned or pinned))

    def used(self, item_ids: list[str], kinds: dict[str, str], now: datetime) -> list[Usage]:
        """Count one use of each memory (it went into an answer)."""
        changed = []
        for i in dict.fromkeys(item_ids):
            old = self._get(i, kinds.get(i, "episode"), now)
            changed.append(self.put(replace(old, accesses=old.accesses + 1, last_reinforced=now)))
        return changed

    def rate(self, item_ids: list[str], kinds: dict[str, str], route: str, delta: float, now: datetime) -> list[Usage]:
        """Add ``delta`` to the feedback of each memory, overall and for ``route``."""
        changed = []
        for i in dict.fromkeys(item_ids):
            old = self._get(i, kinds.get(i, "episode"), now)
            per_route = {**old.route_feedback, route: old.route_feedback.get(route, 0.0) + delta}
            changed.append(self.put(replace(old, feedback=old.feedback + delta, route_feedback=per_route,
                                            last_reinforced=now if delta > 0 else old.last_reinforced)))
        return changed

    def _get(self, item_id: str, kind: str, now: datetime) -> Usage:
        return self.records.get(item_id) or Usage(item_id, self.user_id, kind or "episode", now)

    def route_feedback(self, route: str) -> dict[str, float]:
        """Each rated memory's feedback for one route."""
        return {i: u.route_feedback[route] for i, u in self.records.items() if u.route_feedback.get(route)}

    def weight(self, key: str) -> float:
        return self.weights.get(key, 1.0)
