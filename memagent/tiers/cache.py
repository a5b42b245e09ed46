"""One user's derived tiers in memory: the profile and the graph, loaded lazily.

Entries are keyed by user id only and built from that user's rows only;
consolidation updates them in place under the user's lock; a delete drops them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from memagent.store.derived import ENTITIES, RATINGS, RELATIONS, STATEMENTS, USAGE, WEIGHTS, DerivedStore
from memagent.tiers.knowledge import UserGraph
from memagent.tiers.profile import UserProfile
from memagent.tiers.usage import UserUsage


class DerivedTiers:
    """LRU of users' ``UserProfile`` and ``UserGraph``, plus a lock per user."""

    def __init__(self, store: DerivedStore, dimension: int, max_users: int = 128) -> None:
        self.store = store
        self.dimension = dimension
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
        profile = UserProfile.from_arrow(user_id, self.store.rows(STATEMENTS, user_id), self.dimension)
        graph = UserGraph.from_arrow(user_id, self.store.rows(ENTITIES, user_id), self.store.rows(RELATIONS, user_id))
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
        loaded = UserUsage.from_arrow(user_id, self.store.rows(USAGE, user_id), self.store.rows(WEIGHTS, user_id),
                                      self.store.rows(RATINGS, user_id))
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
