"""``Memory``: the one entry point. It runs the graphs over one data directory.

>>> from memagent import Memory
>>> with Memory("/tmp/memagent-doc") as memory:                    # doctest: +SKIP
...     memory.add("alice", [{"role": "alice", "text": "I adopted a dog named Rex",
...                           "timestamp": "2023-05-08T10:00:00Z", "id": "m1"}])
...     [hit.episode.text for hit in memory.search("alice", "When did I get my dog?")]
['I adopted a dog named Rex']
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from memagent.config import Config, RetrievalSettings
from memagent.embeddings import Embedder, SentenceTransformerEmbedder
from memagent.errors import EpisodeNotFoundError, InvalidInputError, UnknownUserError
from memagent.portable import dump_lines, read_episodes
from memagent.store.lance import LanceStore
from memagent.tiers.episodic import check_id
from memagent.timeparse import to_datetime
from memagent.types import Episode, Page, SearchHit, Signal

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Memory:
    """A persistent, multi-user memory in one data directory (or LanceDB URI).

    ``data_dir`` overrides ``config.data_dir``; ``embedder`` replaces the one
    named by the config; ``clock`` gives "now" (inject one in tests and
    simulations).
    """

    def __init__(self, data_dir: str | Path | None = None, *, config: Config | None = None,
                 embedder: Embedder | None = None, clock: Clock = _utc_now) -> None:
        config = config or Config()
        if data_dir is not None:
            config = config.model_copy(update={"data_dir": Path(data_dir)})
        self.config = config
        self.clock = clock
        self.embedder = embedder or SentenceTransformerEmbedder(config.embedder_path)
        storage = config.storage
        self.store = LanceStore(
            config.data_dir, self.embedder.dimension, getattr(self.embedder, "name", ""),
            vector_index_min_rows=storage.vector_index_min_rows,
            exact_search_max_user_rows=storage.exact_search_max_user_rows,
            optimize_every_writes=storage.optimize_every_writes,
            optimize_every_rows=storage.optimize_every_rows,
            keep_versions_hours=storage.keep_versions_hours,
        )
        self._graphs: dict[Any, Any] = {}
        self._lock = threading.Lock()

    # --- graphs ---------------------------------------------------------------
    def _graph(self, key: Any, build: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._graphs:
                self._graphs[key] = build()
            return self._graphs[key]

    def _ingest(self, state: dict[str, Any]) -> list[str]:
        from memagent.graphs.ingest import build_ingest_graph

        graph = self._graph("ingest", lambda: build_ingest_graph(self.store, self.embedder, self.config))
        return graph.invoke(state)["ids"]

    # --- writing ----------------------------------------------------------------
    def add(self, user_id: str, messages: Any, session_id: str | None = None, *,
            now: datetime | None = None) -> list[str]:
        """Store messages (a batch, or one) in the order given; return their episode ids.

        A message is a str, a ``Message``, a dict (``text``/``content``,
        ``role``/``speaker``, ``timestamp``, ``id``, ``metadata``) or a LangChain
        message. One with an ``id`` already stored for this user is not stored
        again; its existing episode id is returned. A bad message rejects the
        whole batch before anything is written.
        """
        check_id(user_id)
        session_id = check_id(session_id, "session_id") if session_id is not None else "default"
        batch = list(messages) if isinstance(messages, (list, tuple)) else [messages]
        if not batch:
            return []
        if len(batch) > self.config.max_batch:
            raise InvalidInputError(f"{len(batch)} messages in one call; max_batch is {self.config.max_batch}")
        return self._ingest({"user_id": user_id, "session_id": session_id, "raw": batch,
                             "now": to_datetime(now) if now is not None else self.clock()})

    def import_(self, source: str | Path | IO[str], user_id: str | None = None,
                batch_size: int = 500, progress: Callable[[int], None] | None = None) -> list[str]:
        """Load a JSON Lines export; the file is checked whole before anything is written.

        Episodes keep their ids, so importing the same file twice stores nothing new.
        """
        episodes = read_episodes(source, self.config.max_message_chars, user_id)
        ids: list[str] = []
        for start in range(0, len(episodes), batch_size):
            chunk = self._fresh(episodes[start:start + batch_size])
            for user in dict.fromkeys(e.user_id for e in chunk):
                ids += self._ingest({"episodes": [e for e in chunk if e.user_id == user]})
            if progress:
                progress(min(batch_size, len(episodes) - start))
        return ids

    def _fresh(self, episodes: Sequence[Episode]) -> list[Episode]:
        known: set[tuple[str, str]] = set()
        for user in {e.user_id for e in episodes}:
            ids = [e.id for e in episodes if e.user_id == user]
            known |= {(user, i) for i in self.store.existing_ids(user, ids)}
        return [e for e in episodes if (e.user_id, e.id) not in known]

    def delete(self, user_id: str, episode_id: str) -> None:
        """Delete one episode; raise ``EpisodeNotFoundError`` if it does not exist."""
        self._require_user(user_id)
        if not self.store.delete(user_id, [episode_id]):
            raise EpisodeNotFoundError(user_id, episode_id)

    def delete_user(self, user_id: str) -> int:
        """Remove everything of a user from every table and index; return the episode count."""
        check_id(user_id)
        return self.store.delete_user(user_id)

    # --- reading ----------------------------------------------------------------
    def search(self, user_id: str, query: str, k: int = 10, since: Any = None, until: Any = None,
               *, now: Any = None, signals: Iterable[Signal | str] | None = None,
               use_time: bool = True, retrieval: RetrievalSettings | None = None) -> list[SearchHit]:
        """The ``k`` best episodes of a user for ``query``, each with the signals that found it.

        ``since``/``until`` bound event time (``since <= t < until``). Time
        expressions in the query ("last May", "two weeks ago") are resolved
        against ``now`` (default: the clock; pass the question's date) and boost
        episodes in that range. ``signals`` restricts retrieval, e.g.
        ``{"lexical"}`` for BM25 alone; ``retrieval`` overrides the configured
        ranking settings for this call. An unknown user has no hits.
        """
        check_id(user_id)
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("query must be a non-empty string")
        if not isinstance(k, int) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        chosen = frozenset(Signal(s) for s in signals) if signals is not None else frozenset(Signal)
        from memagent.graphs.search import build_search_graph

        settings = retrieval or self.config.retrieval
        graph = self._graph(("search", chosen, settings), lambda: build_search_graph(
            self.store, self.embedder, settings, chosen))
        state = {"user_id": user_id, "query": query.strip(), "k": k, "use_time": use_time,
                 "now": to_datetime(now) if now is not None else self.clock(),
                 "since": to_datetime(since) if since is not None else None,
                 "until": to_datetime(until) if until is not None else None}
        return graph.invoke(state)["hits"]

    def get(self, user_id: str, episode_id: str) -> Episode:
        """One episode by id; ``UnknownUserError`` or ``EpisodeNotFoundError`` if absent."""
        self._require_user(user_id)
        found = self.store.get(user_id, [episode_id])
        if not found:
            raise EpisodeNotFoundError(user_id, episode_id)
        return found[0]

    def list(self, user_id: str, offset: int = 0, limit: int = 50,
             session_id: str | None = None) -> Page[Episode]:
        """A page of a user's episodes in the order they were written."""
        check_id(user_id)
        if offset < 0 or limit < 1:
            raise InvalidInputError("offset must be >= 0 and limit >= 1")
        ids = self.store.ordered_ids(user_id, session_id)
        page = self.store.get(user_id, ids[offset:offset + limit])
        next_offset = offset + limit if offset + limit < len(ids) else None
        return Page(items=page, total=len(ids), offset=offset, next_offset=next_offset)

    def count(self, user_id: str) -> int:
        """How many episodes a user has."""
        return self.store.count(check_id(user_id))

    def users(self) -> list[str]:
        """Every user with at least one episode."""
        return self.store.users()

    def export(self, user_id: str, destination: str | Path | IO[str] | None = None) -> str | int:
        """Write a user's episodes as JSON Lines; return the text if no destination, else the count."""
        self._require_user(user_id)
        lines = dump_lines(self.store.iter_user(user_id))
        if destination is None:
            return "".join(line + "\n" for line in lines)
        count = 0
        handle = open(destination, "w", encoding="utf-8") if isinstance(destination, (str, Path)) else destination
        try:
            for line in lines:
                handle.write(line + "\n")
                count += 1
        finally:
            if isinstance(destination, (str, Path)):
                handle.close()
        return count

    def _require_user(self, user_id: str) -> None:
        if self.store.count(check_id(user_id)) == 0:
            raise UnknownUserError(user_id)

    # --- upkeep and lifetime ----------------------------------------------------
    def optimize(self) -> None:
        """Compact storage and refresh indexes now (also done every few writes)."""
        self.store.optimize()

    def close(self) -> None:
        """Release the graphs; the data directory stays as it is."""
        self._graphs.clear()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- async: the same code, run in a worker thread ---------------------------
    async def aadd(self, user_id: str, messages: Any, session_id: str | None = None, **kw: Any) -> list[str]:
        return await asyncio.to_thread(self.add, user_id, messages, session_id, **kw)

    async def asearch(self, user_id: str, query: str, k: int = 10, **kw: Any) -> list[SearchHit]:
        return await asyncio.to_thread(self.search, user_id, query, k, **kw)
