"""The episodic tier over any backend: writes, reads by position, and search, with a per-user copy.

For a user with up to ``exact_search_max_user_rows`` episodes, ``Episodes``
keeps an in-process copy (``UserIndex``: ids, positions, times, texts and
vectors), so a cosine or BM25 search takes about a millisecond and reading an
episode by id microseconds, where each filtered engine query takes ten
milliseconds or more. Past that size the backend's own searches (an ANN index
where it has one) take over.

The copy holds the backend's change token of the user's episodes
(``Backend.version``) from when it was read. Every read compares it with the
current token first, so a write committed by another process since then (or a
``delete_user`` anywhere) makes the copy reload: reads see every committed
write without ``refresh``. A write holds the user's cross-process lock
(``memagent.locks``) from the id check to the cache update, so ids, turns and
``seq`` numbers stay unique across processes and the copy stays exact.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from memagent.filters import matches
from memagent.locks import StripedLocks, UserLocks
from memagent.records import EpisodeRecord, Kind
from memagent.store.base import Backend, Hits
from memagent.store.cache import UserIndex, UserIndexCache
from memagent.store.schema import schema, to_rows, to_table
from memagent.types import Episode


class Episodes:
    """One backend's episodes, with cached per-user indexes. Every call is scoped by user."""

    def __init__(self, backend: Backend, exact_search_max_user_rows: int = 50_000,
                 cache_max_rows: int = 200_000, locks: UserLocks | None = None) -> None:
        self.backend = backend
        self.locks = locks or UserLocks(backend.uri)
        self.exact_search_max_user_rows = exact_search_max_user_rows
        self._users = UserIndexCache(cache_max_rows)
        self._held = StripedLocks()  # per user: other users' reads and writes go on meanwhile
        self._schema = schema(Kind.EPISODE, backend.dimension)

    # --- writes ---------------------------------------------------------------
    def add(self, records: Sequence[EpisodeRecord], vectors: np.ndarray) -> int:
        """Store records whose (user, id) is new, in one commit; return how many were stored."""
        if not records:
            return 0
        users = sorted({r.user_id for r in records})
        with ExitStack() as held:
            for user in users:  # in one order, so two writers of the same users cannot deadlock
                held.enter_context(self.locks.hold(user))
            with self._held.hold(users):  # the check and the write are one step
                known = {user: self.index(user).row_of for user in users}
                keep = [n for n, r in enumerate(records) if r.id not in known[r.user_id]]
                if not keep:
                    return 0
                fresh = [records[n] for n in keep]
                written = self.backend.put(Kind.EPISODE, fresh, vectors[keep])
                self._remember(to_table(Kind.EPISODE, to_rows(Kind.EPISODE, fresh, vectors[keep]), self._schema))
                return written

    def _remember(self, table: pa.Table) -> None:
        """Append freshly written rows to the cached copies of their users."""
        users = table.column("user_id").to_pylist()
        for user_id in set(users):
            entry = self._users.get(user_id)
            if entry is not None:
                entry = entry.append(table.filter(pa.array([u == user_id for u in users])))
                if entry.vectors is not None and len(entry) > self.exact_search_max_user_rows:
                    entry = UserIndex(entry.table, None)  # large now: the backend's search takes over
                entry.version = self.backend.version(user_id, Kind.EPISODE)  # the copy is current: our commit
                self._users.put(user_id, entry)

    def replace(self, user_id: str, records: Sequence[EpisodeRecord], vectors: np.ndarray) -> int:
        """Overwrite stored episodes of one user (same ids) in one commit: ``Memory.update``."""
        with self.locks.hold(user_id), self._held.hold([user_id]):
            written = self.backend.put(Kind.EPISODE, records, vectors, replace=True)
            self._users.drop({user_id})
            return written

    def vectors(self, user_id: str, ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of a user's episodes, row for row with ``ids`` (all must exist)."""
        entry = self.index(user_id)
        if entry.vectors is None:
            entry = UserIndex.from_arrow(self.backend.scan(Kind.EPISODE, user_id, vectors=True), with_vectors=True)
        assert entry.vectors is not None
        return entry.vectors[[entry.row_of[i] for i in ids]]

    def delete(self, user_id: str, ids: Sequence[str]) -> int:
        """Delete episodes of one user by id; return how many existed."""
        with self._held.hold([user_id]):
            found = [i for i in ids if i in self.index(user_id).row_of]
            count = self.backend.delete(Kind.EPISODE, user_id, found) if found else 0
            self._users.drop({user_id})
            return count

    def forget_user(self, user_id: str) -> None:
        """Drop the cached copy of a user (after the backend deleted them)."""
        self._users.drop({user_id})

    def refresh(self) -> None:
        """Drop every cached copy (reads check other processes' writes anyway; this frees memory)."""
        self._users.drop()

    # --- reads ----------------------------------------------------------------
    def index(self, user_id: str) -> UserIndex:
        """Positions of a user's episodes, with vectors while exact search is due; cached."""
        token = self.backend.version(user_id, Kind.EPISODE)
        entry = self._users.get(user_id)
        if entry is not None and entry.version == token:
            return entry
        with self._held.hold([user_id]):  # no write of this process may slip between the scan and the put
            entry = self._users.get(user_id)
            token = self.backend.version(user_id, Kind.EPISODE)
            if entry is None or entry.version != token:
                exact = self.backend.count(Kind.EPISODE, user_id) <= self.exact_search_max_user_rows
                entry = UserIndex.from_arrow(self.backend.scan(Kind.EPISODE, user_id, vectors=exact),
                                             with_vectors=exact)
                entry.version = token  # read before the scan: a later commit reloads again
                self._users.put(user_id, entry)
        return entry

    def count(self, user_id: str) -> int:
        return len(self.index(user_id))

    def existing_ids(self, user_id: str, ids: Sequence[str]) -> set[str]:
        entry = self.index(user_id)
        return {i for i in ids if i in entry.row_of}

    def get(self, user_id: str, ids: Sequence[str]) -> list[Episode]:
        """Episodes of one user by id, in the order asked; unknown ids are skipped."""
        entry = self.index(user_id)
        found = (entry.episode(i) for i in ids)
        return [e for e in found if e is not None]

    def positions(self, user_id: str, session_ids: set[str]) -> tuple[int, dict[str, int]]:
        """The next ``seq`` of a user and the next ``turn`` of each session."""
        entry = self.index(user_id)
        sizes = entry.session_sizes()
        return entry.next_seq(), {s: sizes.get(s, 0) for s in session_ids}

    def ordered_ids(self, user_id: str, session_id: str | None = None) -> list[str]:
        """Every episode id of a user in the order written."""
        return self.index(user_id).ordered_ids(session_id)

    def matching(self, user_id: str, filters: Mapping[str, Any]) -> list[str]:
        """Ids of a user's episodes whose metadata matches ``filters`` (``memagent.filters``), in write order."""
        entry = self.index(user_id)
        metadata = entry.table.column("metadata").to_pylist()
        chosen = {entry.ids[n] for n, raw in enumerate(metadata) if matches(json.loads(raw) if raw else {}, filters)}
        return [i for i in entry.ordered_ids() if i in chosen]

    def iter_user(self, user_id: str) -> Iterator[Episode]:
        yield from self.get(user_id, self.ordered_ids(user_id))

    def session_turns(self, user_id: str, wanted: dict[str, set[int]]) -> list[Episode]:
        """Episodes at the given turn numbers of the given sessions."""
        entry = self.index(user_id)
        ids = [entry.id_at(s, t) for s, turns in wanted.items() for t in sorted(turns)]
        return self.get(user_id, [i for i in ids if i is not None])

    def speakers(self, user_id: str) -> set[str]:
        """The speaker names (roles) of a user's episodes."""
        table = self.index(user_id).table
        return set(table.column("role").unique().to_pylist()) if table.num_rows else set()

    def users(self) -> list[str]:
        return self.backend.users()

    # --- search ---------------------------------------------------------------
    def lexical(self, user_id: str, text: str, k: int, since: datetime | None = None,
                until: datetime | None = None, context: bool = True, allowed: frozenset[str] | None = None) -> Hits:
        """Ids and BM25 scores of one user's hits, over each turn with the one before it if ``context``:
        over the in-process postings while the user is small, the backend's index past that.
        ``allowed`` (ids) restricts the hits, e.g. to episodes whose metadata matches a filter."""
        column = "context_text" if context else "search_text"
        entry = self.index(user_id)
        if entry.vectors is not None:
            return entry.lexical(text, k, column, self._keep(entry, since, until, allowed))
        return _only(allowed, k, lambda n: self.backend.text_search(
            Kind.EPISODE, user_id, text, n, field=column, since=since, until=until))

    def nearest(self, user_id: str, vector: np.ndarray, k: int, since: datetime | None = None,
                until: datetime | None = None, allowed: frozenset[str] | None = None) -> Hits:
        """Ids and cosine similarities of a user's nearest episodes: exact in memory while the
        user is small, the backend's search past that. ``allowed`` as for ``lexical``."""
        entry = self.index(user_id)
        if entry.vectors is not None:
            return entry.nearest(vector, k, self._keep(entry, since, until, allowed))
        return _only(allowed, k, lambda n: self.backend.vector_search(
            Kind.EPISODE, user_id, vector, n, since=since, until=until))

    @staticmethod
    def _keep(entry: UserIndex, since: datetime | None, until: datetime | None,
              allowed: frozenset[str] | None) -> np.ndarray:
        keep = entry.mask(since, until)
        if allowed is not None:
            keep &= np.fromiter((i in allowed for i in entry.ids), dtype=bool, count=len(entry.ids))
        return keep


def _only(allowed: frozenset[str] | None, k: int, search: Callable[[int], Hits]) -> Hits:
    """The backend's best ``k`` hits among ``allowed``: asked for more, up to every allowed row, until ``k`` pass."""
    if allowed is None:
        return search(k)
    wanted = k
    while True:
        hits = search(wanted)
        kept = [(i, s) for i, s in hits if i in allowed]
        if len(kept) >= k or len(hits) < wanted:
            return kept[:k]
        wanted *= 4
