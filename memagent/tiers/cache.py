"""One user's derived tiers in memory (profile, graph, usage), loaded lazily from the backend.

Entries are keyed by user id only and built from that user's rows only;
consolidation updates them in place under the user's lock; a delete drops them.
Writes go through the ``write_*`` methods, so that what is cached and what is
stored change together; each holds the user's cross-process lock
(``memagent.locks``). An entry remembers the backend's change tokens of its
kinds (``Backend.version``) and reloads when one moved, that is when another
process committed a write of the user, or deleted someone.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone

import numpy as np

from memagent.locks import UserLocks
from memagent.policies.deletion import RemovalPlan
from memagent.records import Kind, Rating, Usage, Watermark, Weight
from memagent.store.base import Backend
from memagent.store.schema import stack_vectors
from memagent.tiers.knowledge import UserGraph
from memagent.tiers.profile import UserProfile
from memagent.tiers.usage import UserUsage
from memagent.types import Relation

PROFILE_KINDS = (Kind.STATEMENT, Kind.ENTITY, Kind.RELATION)
USAGE_KINDS = (Kind.USAGE, Kind.WEIGHT, Kind.RATING)
_LOCK_STRIPES = 64


def _weight_id(user_id: str, key: str) -> str:
    return f"{user_id}\x00{key}"


def watermark_id(user_id: str) -> str:
    return f"watermark:{user_id}"


class DerivedTiers:
    """LRU of users' ``UserProfile``, ``UserGraph`` and ``UserUsage``, plus a lock per user."""

    def __init__(self, backend: Backend, max_users: int = 128, locks: UserLocks | None = None) -> None:
        self.backend = backend
        self.dimension = backend.dimension
        self.max_users = max_users
        self.locks = locks or UserLocks(backend.uri)
        self._entries: OrderedDict[str, tuple[UserProfile, UserGraph]] = OrderedDict()
        self._usage: OrderedDict[str, UserUsage] = OrderedDict()
        self._tokens: dict[tuple[str, Kind], str] = {}  # the change token each cached kind was read at
        self._locks = [threading.RLock() for _ in range(_LOCK_STRIPES)]  # fixed: never grows with users
        self._lock = threading.Lock()

    def _current(self, user_id: str, kinds: tuple[Kind, ...]) -> dict[Kind, str]:
        return {kind: self.backend.version(user_id, kind) for kind in kinds}

    def _is_current(self, user_id: str, tokens: dict[Kind, str]) -> bool:
        return all(self._tokens.get((user_id, kind)) == token for kind, token in tokens.items())

    def _wrote(self, user_id: str, kind: Kind) -> None:
        """After this process's commit of a kind: the cached copy, which holds the change, is current."""
        with self._lock:
            if (user_id, kind) in self._tokens:
                self._tokens[(user_id, kind)] = self.backend.version(user_id, kind)

    def lock(self, user_id: str) -> threading.RLock:
        """The lock held while a user's derived tiers change (one of a fixed set: users share
        stripes, which is safe as no holder takes a second user's lock inside one)."""
        return self._locks[zlib.crc32(user_id.encode("utf-8", "surrogatepass")) % _LOCK_STRIPES]

    def get(self, user_id: str) -> tuple[UserProfile, UserGraph]:
        tokens = self._current(user_id, PROFILE_KINDS)
        with self._lock:
            entry = self._entries.get(user_id)
            if entry is not None and self._is_current(user_id, tokens):
                self._entries.move_to_end(user_id)
                return entry
        scan = self.backend.scan
        profile = UserProfile.from_arrow(user_id, scan(Kind.STATEMENT, user_id), self.dimension)
        graph = UserGraph.from_arrow(user_id, scan(Kind.ENTITY, user_id), scan(Kind.RELATION, user_id),
                                     self.dimension)
        with self._lock:
            entry = self._entries.get(user_id)
            if entry is None or not self._is_current(user_id, tokens):
                entry = self._entries[user_id] = (profile, graph)
                self._tokens.update({(user_id, kind): token for kind, token in tokens.items()})
            self._entries.move_to_end(user_id)
            while len(self._entries) > self.max_users:
                self._forget(self._entries.popitem(last=False)[0], PROFILE_KINDS)
        return entry

    def usage(self, user_id: str) -> UserUsage:
        """The user's usage records (importance, uses, feedback, archive flags) and weights."""
        tokens = self._current(user_id, USAGE_KINDS)
        with self._lock:
            entry = self._usage.get(user_id)
            if entry is not None and self._is_current(user_id, tokens):
                self._usage.move_to_end(user_id)
                return entry
        scan = self.backend.scan
        loaded = UserUsage.from_arrow(user_id, scan(Kind.USAGE, user_id), scan(Kind.WEIGHT, user_id),
                                      scan(Kind.RATING, user_id), self.dimension)
        with self._lock:
            entry = self._usage.get(user_id)
            if entry is None or not self._is_current(user_id, tokens):
                entry = self._usage[user_id] = loaded
                self._tokens.update({(user_id, kind): token for kind, token in tokens.items()})
            self._usage.move_to_end(user_id)
            while len(self._usage) > self.max_users:
                self._forget(self._usage.popitem(last=False)[0], USAGE_KINDS)
        return entry

    def _forget(self, user_id: str, kinds: tuple[Kind, ...]) -> None:
        for kind in kinds:
            self._tokens.pop((user_id, kind), None)

    def profile(self, user_id: str) -> UserProfile:
        return self.get(user_id)[0]

    def graph(self, user_id: str) -> UserGraph:
        return self.get(user_id)[1]

    def drop(self, user_id: str | None = None) -> None:
        with self._lock:
            if user_id is None:
                self._entries.clear()
                self._usage.clear()
                self._tokens.clear()
            else:
                self._entries.pop(user_id, None)
                self._usage.pop(user_id, None)
                self._forget(user_id, PROFILE_KINDS + USAGE_KINDS)

    # --- writes: the cached copy already holds the change; the backend gets it now --------
    def _put(self, kind: Kind, user_id: str, records: Sequence[object], vectors: np.ndarray | None = None) -> None:
        with self.locks.hold(user_id):
            self.backend.put(kind, records, vectors)
            self._wrote(user_id, kind)

    def write_statements(self, user_id: str, ids: Iterable[str]) -> None:
        records, vectors = self.profile(user_id).records(sorted(set(ids)))
        self._put(Kind.STATEMENT, user_id, records, vectors)

    def write_entities(self, user_id: str, ids: Iterable[str]) -> None:
        records, vectors = self.graph(user_id).entity_records(sorted(set(ids)))
        self._put(Kind.ENTITY, user_id, records, vectors)

    def write_relations(self, user_id: str, relations: Sequence[Relation]) -> None:
        records, vectors = self.graph(user_id).relation_records(relations)
        self._put(Kind.RELATION, user_id, records, vectors)

    def write_usage(self, usage: Iterable[Usage]) -> None:
        records = list(usage)
        for user_id in sorted({u.user_id for u in records}):
            self._put(Kind.USAGE, user_id, [u for u in records if u.user_id == user_id])

    def write_weights(self, user_id: str, weights: dict[str, float]) -> None:
        self._put(Kind.WEIGHT, user_id, [Weight(_weight_id(user_id, k), user_id, k, v) for k, v in weights.items()])

    def delete_weights(self, user_id: str, keys: Iterable[str]) -> None:
        with self.locks.hold(user_id):
            self.backend.delete(Kind.WEIGHT, user_id, [_weight_id(user_id, k) for k in keys])
            self._wrote(user_id, Kind.WEIGHT)

    def write_ratings(self, user_id: str, ratings: Sequence[Rating], vector: np.ndarray) -> None:
        self._put(Kind.RATING, user_id, list(ratings), np.tile(np.asarray(vector, np.float32), (len(ratings), 1)))

    # --- the consolidation watermark -------------------------------------------------
    def watermark(self, user_id: str) -> int:
        """The last episode ``seq`` consolidated for a user; -1 if none."""
        found = self.backend.get(Kind.WATERMARK, user_id, [watermark_id(user_id)])
        return int(found[0].seq) if found else -1

    def set_watermark(self, user_id: str, seq: int) -> None:
        self._put(Kind.WATERMARK, user_id, [Watermark(watermark_id(user_id), user_id, seq, datetime.now(timezone.utc))])

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
