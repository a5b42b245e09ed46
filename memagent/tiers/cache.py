"""One user's derived tiers in memory (profile, graph, usage), loaded lazily from the backend.

Entries are keyed by user id only and built from that user's rows only;
consolidation updates them in place under the user's lock; a delete drops them.
Writes go through the ``write_*`` methods, so that what is cached and what is
stored change together.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone

import numpy as np

from memagent.policies.deletion import RemovalPlan
from memagent.records import Kind, Rating, Usage, Watermark, Weight
from memagent.store.base import Backend
from memagent.store.schema import stack_vectors
from memagent.tiers.knowledge import UserGraph
from memagent.tiers.profile import UserProfile
from memagent.tiers.usage import UserUsage
from memagent.types import Relation


def watermark_id(user_id: str) -> str:
    return f"watermark:{user_id}"


class DerivedTiers:
    """LRU of users' ``UserProfile``, ``UserGraph`` and ``UserUsage``, plus a lock per user."""

    def __init__(self, backend: Backend, max_users: int = 128) -> None:
        self.backend = backend
        self.dimension = backend.dimension
        self.max_users = max_users
        self._entries: OrderedDict[str, tuple[UserProfile, UserGraph]] = OrderedDict()
        self._usage: OrderedDict[str, UserUsage] = OrderedDict()
        self._locks: dict[str, threading.RLock] = {}
        self._lock = threading.Lock()

    def lock(self, user_id: str) -> threading.RLock:
        """The lock held while a user's derived tiers change."""
        with self._lock:
            return self._locks.setdefault(user_id, threading.RLock())

    def get(self, user_id: str) -> tuple[UserProfile, UserGraph]:
        with self._lock:
            entry = self._entries.get(user_id)
            if entry is not None:
                self._entries.move_to_end(user_id)
                return entry
        scan = self.backend.scan
        profile = UserProfile.from_arrow(user_id, scan(Kind.STATEMENT, user_id), self.dimension)
        graph = UserGraph.from_arrow(user_id, scan(Kind.ENTITY, user_id), scan(Kind.RELATION, user_id),
                                     self.dimension)
        with self._lock:
            entry = self._entries.setdefault(user_id, (profile, graph))
            while len(self._entries) > self.max_users:
                self._entries.popitem(last=False)
        return entry

    def usage(self, user_id: str) -> UserUsage:
        """The user's usage records (importance, uses, feedback, archive flags) and weights."""
        with self._lock:
            entry = self._usage.get(user_id)
            if entry is not None:
                self._usage.move_to_end(user_id)
                return entry
        scan = self.backend.scan
        loaded = UserUsage.from_arrow(user_id, scan(Kind.USAGE, user_id), scan(Kind.WEIGHT, user_id),
                                      scan(Kind.RATING, user_id), self.dimension)
        with self._lock:
            entry = self._usage.setdefault(user_id, loaded)
            while len(self._usage) > self.max_users:
                self._usage.popitem(last=False)
        return entry

    def profile(self, user_id: str) -> UserProfile:
        return self.get(user_id)[0]

    def graph(self, user_id: str) -> UserGraph:
        return self.get(user_id)[1]

    def drop(self, user_id: str | None = None) -> None:
        with self._lock:
            if user_id is None:
                self._entries.clear()
                self._usage.clear()
            else:
                self._entries.pop(user_id, None)
                self._usage.pop(user_id, None)

    # --- writes: the cached copy already holds the change; the backend gets it now --------
    def write_statements(self, user_id: str, ids: Iterable[str]) -> None:
        records, vectors = self.profile(user_id).records(sorted(set(ids)))
        self.backend.put(Kind.STATEMENT, records, vectors)

    def write_entities(self, user_id: str, ids: Iterable[str]) -> None:
        records, vectors = self.graph(user_id).entity_records(sorted(set(ids)))
        self.backend.put(Kind.ENTITY, records, vectors)

    def write_relations(self, user_id: str, relations: Sequence[Relation]) -> None:
        records, vectors = self.graph(user_id).relation_records(relations)
        self.backend.put(Kind.RELATION, records, vectors)

    def write_usage(self, usage: Iterable[Usage]) -> None:
        self.backend.put(Kind.USAGE, list(usage))

    def write_weights(self, user_id: str, weights: dict[str, float]) -> None:
        self.backend.put(Kind.WEIGHT, [Weight(f"{user_id}\x00{k}", user_id, k, v) for k, v in weights.items()])

    def write_ratings(self, user_id: str, ratings: Sequence[Rating], vector: np.ndarray) -> None:
        self.backend.put(Kind.RATING, list(ratings), np.tile(np.asarray(vector, np.float32), (len(ratings), 1)))

    # --- the consolidation watermark -------------------------------------------------
    def watermark(self, user_id: str) -> int:
        """The last episode ``seq`` consolidated for a user; -1 if none."""
        found = self.backend.get(Kind.WATERMARK, user_id, [watermark_id(user_id)])
        return int(found[0].seq) if found else -1

    def set_watermark(self, user_id: str, seq: int) -> None:
        self.backend.put(Kind.WATERMARK, [Watermark(watermark_id(user_id), user_id, seq,
                                                    datetime.now(timezone.utc))])

    # --- deleting episodes: apply a plan of policies.deletion ------------------------
    def apply_removal(self, user_id: str, plan: RemovalPlan) -> None:
        """Rewrite and delete the derived items a removal plan names; drop their usage and ratings."""
        profile, graph = self.get(user_id)
        backend = self.backend
        backend.put(Kind.STATEMENT, plan.statements,
                    stack_vectors([profile.vector(s.id) for s in plan.statements], self.dimension))
        backend.delete(Kind.STATEMENT, user_id, plan.drop_statements)
        backend.put(Kind.ENTITY, plan.entities,
                    stack_vectors([graph.entity_vectors[e.id] for e in plan.entities], self.dimension))
        backend.delete(Kind.ENTITY, user_id, plan.drop_entities)
        backend.put(Kind.RELATION, *graph.relation_records(plan.relations))
        backend.delete(Kind.RELATION, user_id, plan.drop_relations)
        gone = sorted(plan.gone)
        backend.delete(Kind.USAGE, user_id, gone)  # nothing of them stays behind
        backend.delete(Kind.RATING, user_id, self.usage(user_id).drop_ratings(set(gone)))
        self.drop(user_id)
