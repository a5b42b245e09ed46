"""A per-user, in-process copy of one user's episodes, for exact search and fast reads.

For a user with up to ``exact_search_max_user_rows`` episodes, a cosine search
over a NumPy matrix takes about a millisecond, a BM25 search over the user's
postings (``memagent.store.text``) a fraction of one, and reading an episode by
id microseconds, where each filtered engine query takes ten milliseconds or
more. Each entry belongs to exactly one user and is looked up only by that
user's id. New rows that this process writes are appended to the entry; a
delete drops it; least recently used entries are evicted past ``max_rows``.
Its owner (``memagent.tiers.episodes``) reloads it when the backend's change
token of the user moved.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from memagent.records import Kind
from memagent.store.schema import codec
from memagent.store.text import InvertedIndex
from memagent.types import Episode

# What the cache keeps of each episode row: every column but the vector (kept apart, as a matrix).
COLUMNS = [c.name for c in codec(Kind.EPISODE).columns]


def micros(when: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    delta = when.astimezone(timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class UserIndex:
    """One user's episodes: an Arrow table, positions and (for exact search) vectors."""

    def __init__(self, table: pa.Table, vectors: np.ndarray | None) -> None:
        self.table = table
        self.vectors = vectors
        self.ids: list[str] = table.column("id").to_pylist()
        self.sessions: list[str] = table.column("session_id").to_pylist()
        self.roles: list[str] = table.column("role").to_pylist()
        self.speakers = frozenset(self.roles)
        self.turns = np.asarray(table.column("turn").to_numpy(), dtype=np.int64)
        self.seqs = np.asarray(table.column("seq").to_numpy(), dtype=np.int64)
        self.times_us = np.asarray(table.column("event_time").cast(pa.int64()).to_numpy(), dtype=np.int64)
        self.row_of = {i: n for n, i in enumerate(self.ids)}
        self.at = {(s, int(t)): n for n, (s, t) in enumerate(zip(self.sessions, self.turns))}
        self._episodes: dict[int, Episode] = {}
        self._text: dict[str, InvertedIndex] = {}  # per full-text column, built on first search
        self.version = ""  # the backend's change token this copy is current for (set by its owner)

    @classmethod
    def from_arrow(cls, table: pa.Table, with_vectors: bool) -> UserIndex:
        vectors = _matrix(table.column("vector")) if with_vectors else None
        return cls(table.select(COLUMNS), vectors)

    def append(self, table: pa.Table) -> UserIndex:
        """A new index with ``table``'s rows (those not present yet) added."""
        fresh = [n for n, i in enumerate(table.column("id").to_pylist()) if i not in self.row_of]
        if not fresh:
            return self
        table = table.take(pa.array(fresh, pa.int64()))
        vectors = None
        if self.vectors is not None:
            vectors = np.vstack([self.vectors.reshape(len(self.ids), -1), _matrix(table.column("vector"))]) \
                if len(self.ids) else _matrix(table.column("vector"))
        added = table.select(COLUMNS).cast(self.table.schema)
        grown = UserIndex(pa.concat_tables([self.table, added]), vectors)
        for column, index in self._text.items():  # postings grow in place; this copy reads up to its size
            index.add(added.column(column).to_pylist())
            grown._text[column] = index
        return grown

    def __len__(self) -> int:
        return len(self.ids)

    # --- reads -----------------------------------------------------------------
    def episode(self, episode_id: str) -> Episode | None:
        n = self.row_of.get(episode_id)
        return None if n is None else self.episode_at(n)

    def episode_at(self, n: int) -> Episode:
        """The episode in row ``n``, decoded on first use."""
        if n not in self._episodes:
            row = self.table.slice(n, 1).to_pylist()[0]
            self._episodes[n] = codec(Kind.EPISODE).from_row(row).episode
        return self._episodes[n]

    def ordered_ids(self, session_id: str | None = None) -> list[str]:
        order = np.argsort(self.seqs, kind="stable")
        return [self.ids[n] for n in order if session_id is None or self.sessions[n] == session_id]

    def next_seq(self) -> int:
        return int(self.seqs.max()) + 1 if len(self.ids) else 0

    def session_sizes(self) -> Counter[str]:
        return Counter(self.sessions)

    def id_at(self, session_id: str, turn: int) -> str | None:
        n = self.at.get((session_id, turn))
        return None if n is None else self.ids[n]

    def mask(self, since: datetime | None, until: datetime | None) -> np.ndarray:
        keep = np.ones(len(self.ids), dtype=bool)
        if since is not None:
            keep &= self.times_us >= micros(since)
        if until is not None:
            keep &= self.times_us < micros(until)
        return keep

    def nearest(self, vector: np.ndarray, k: int, keep: np.ndarray) -> list[tuple[str, float]]:
        """Exact cosine top-k among rows where ``keep`` is true (vectors are unit length)."""
        assert self.vectors is not None
        if not len(self.ids) or not keep.any():
            return []
        sims = self.vectors @ vector.astype(np.float32)
        sims[~keep] = -np.inf
        k = min(k, int(keep.sum()))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(self.ids[n], float(sims[n])) for n in top]

    def lexical(self, text: str, k: int, column: str, keep: np.ndarray) -> list[tuple[str, float]]:
        """Ids and BM25 scores of the rows where ``keep`` is true whose ``column`` matches ``text``."""
        index = self._text.get(column)
        if index is None:
            index = self._text[column] = InvertedIndex()
            index.add(self.table.column(column).to_pylist())
        return [(self.ids[n], score) for n, score in index.search(text, k, keep, limit=len(self.ids))]

    def adjacent(self, episode_id: str) -> list[str]:
        """Ids of the turns just before and after an episode in its session."""
        n = self.row_of.get(episode_id)
        if n is None:
            return []
        session, turn = self.sessions[n], int(self.turns[n])
        return [i for i in (self.id_at(session, turn - 1), self.id_at(session, turn + 1)) if i is not None]

    def event_time_us(self, episode_id: str) -> int | None:
        n = self.row_of.get(episode_id)
        return None if n is None else int(self.times_us[n])


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    flat = column.combine_chunks()
    if len(flat) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return np.asarray(flat.values.to_numpy(), dtype=np.float32).reshape(len(flat), -1)


class UserIndexCache:
    """LRU of ``UserIndex`` by user id, bounded by the rows it holds."""

    def __init__(self, max_rows: int = 200_000) -> None:
        self.max_rows = max_rows
        self._entries: OrderedDict[str, UserIndex] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, user_id: str) -> UserIndex | None:
        with self._lock:
            entry = self._entries.get(user_id)
            if entry is not None:
                self._entries.move_to_end(user_id)
            return entry

    def put(self, user_id: str, entry: UserIndex) -> None:
        with self._lock:
            self._entries[user_id] = entry
            self._entries.move_to_end(user_id)
            while len(self._entries) > 1 and sum(len(e) for e in self._entries.values()) > self.max_rows:
                self._entries.popitem(last=False)

    def drop(self, user_ids: set[str] | None = None) -> None:
        """Forget some users (after their rows changed), or everyone."""
        with self._lock:
            if user_ids is None:
                self._entries.clear()
            for user_id in user_ids or ():
                self._entries.pop(user_id, None)
