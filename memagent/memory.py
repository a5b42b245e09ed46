"""``Memory``: the one entry point. It validates, then delegates to the workflows (graphs)
over one backend: a LanceDB directory by default, any ``memagent.store.Backend``.

>>> from memagent import Memory
>>> with Memory("/tmp/memagent-doc") as memory:                    # doctest: +SKIP
...     memory.add("alice", [{"role": "alice", "text": "I adopted a dog named Rex",
...                           "timestamp": "2023-05-08T10:00:00Z", "id": "m1"}])
...     [hit.episode.text for hit in memory.search("alice", "When did I get my dog?")]
['I adopted a dog named Rex']
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import re
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import IO, Any, Concatenate, ParamSpec, TypeVar

import numpy as np

from memagent.config import Config, RetrievalSettings
from memagent.deps import Deps
from memagent.embeddings import Embedder, SentenceTransformerEmbedder, TextVectors, as_embedder
from memagent.errors import EpisodeNotFoundError, InvalidInputError, UnknownUserError
from memagent.filters import check_filters
from memagent.llm import ChatAdapter, chat_model
from memagent.policies.deletion import plan_removal
from memagent.portable import dump_lines, read_episodes
from memagent.records import Kind
from memagent.routing import Router
from memagent.store import open_backend
from memagent.store.base import Backend
from memagent.tiers import episodic
from memagent.tiers.cache import DerivedTiers
from memagent.tiers.episodes import Episodes
from memagent.tiers.episodic import SCOPE_SEPARATOR, check_id, scope
from memagent.tiers.revisions import Revisions
from memagent.timeparse import to_datetime
from memagent.types import (
    Answer,
    Entity,
    Episode,
    EpisodeVersion,
    FactHit,
    Message,
    Page,
    Relation,
    Route,
    SearchHit,
    Signal,
    Statement,
)

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _rating(rating: Any) -> float:
    """A rating as +1 or -1 (numbers keep their size, clamped to [-1, 1])."""
    words = {"good": 1.0, "up": 1.0, "yes": 1.0, "correct": 1.0, "bad": -1.0, "down": -1.0, "no": -1.0, "wrong": -1.0}
    if isinstance(rating, bool):
        return 1.0 if rating else -1.0
    if isinstance(rating, str) and rating.strip().lower() in words:
        return words[rating.strip().lower()]
    if isinstance(rating, (int, float)) and rating == rating and rating != 0:
        return max(-1.0, min(1.0, float(rating)))
    raise InvalidInputError(f"rating must be good/bad, True/False or a non-zero number in [-1, 1], got {rating!r}")


def _when(value: Any, default: Clock) -> datetime:
    return to_datetime(value) if value is not None else default()


E = TypeVar("E", bound=Enum)
MAX_QUERY_CHARS = 8000  # a question or query; longer is a document, not a question


def _text(value: Any, what: str, max_chars: int = MAX_QUERY_CHARS) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{what} must be a non-empty string")
    if len(value) > max_chars:
        raise InvalidInputError(f"{what} has {len(value)} characters; at most {max_chars}")
    if _BAD_CHARS.search(value):
        raise InvalidInputError(f"{what} contains control characters or lone surrogates")
    return value.strip()


_BAD_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def _count(value: Any, what: str, low: int = 1) -> int:
    """An integer argument (not a bool) of at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInputError(f"{what} must be an integer >= {low}, got {value!r}")
    return value


def _choice(kind: type[E], value: Any, what: str) -> E:
    try:
        return kind(value)
    except ValueError:
        raise InvalidInputError(f"unknown {what} {value!r}; one of {[m.value for m in kind]}") from None


def _write_lines(handle: IO[str], lines: Iterable[str]) -> int:
    count = 0
    for line in lines:
        handle.write(line + "\n")
        count += 1
    return count


P = ParamSpec("P")
R = TypeVar("R")


def _twin(method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]:
    """The async form of a method: the same code, run in a worker thread so the event loop never blocks."""

    @functools.wraps(method)
    async def twin(self: Any, *args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(method, self, *args, **kwargs)

    twin.__name__ = twin.__qualname__ = f"a{method.__name__}"
    twin.__doc__ = f"Async form of ``{method.__name__}`` (run in a worker thread).\n\n{method.__doc__ or ''}"
    return twin


def _one_run(name: str) -> Callable[[Callable[Concatenate[Any, P], R]], Callable[Concatenate[Any, P], R]]:
    """A method that runs several workflows, traced as one run (``memagent.feedback``...): the
    graphs it invokes nest under it in LangSmith or any LangChain tracer, instead of each being a root."""

    def wrap(method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
        @functools.wraps(method)
        def run(self: Any, *args: P.args, **kwargs: P.kwargs) -> R:
            from langchain_core.runnables import RunnableLambda

            step: RunnableLambda[Any, R] = RunnableLambda(lambda _: method(self, *args, **kwargs), name=name)
            return step.invoke(None)

        return run

    return wrap


class Memory:
    """A persistent, multi-user memory over one backend.

    ``data_dir`` (a directory, a LanceDB URI or a ``postgresql://`` URL; ``"memory://"`` for the in-memory
    backend) overrides ``config.data_dir``; ``backend`` replaces both with any
    ``memagent.store.Backend``; ``embedder`` replaces the one named by the
    config (or is any LangChain ``Embeddings``); ``llm`` is an optional LangChain
    chat model, or a ``"provider:model"`` string for ``init_chat_model`` (needs
    ``memagent[llm]``), used to extract, route and answer (validated; the rules
    take over on bad output); ``clock`` gives
    "now" (inject one in tests and simulations).
    """

    def __init__(self, data_dir: str | Path | None = None, *, config: Config | None = None,
                 embedder: Embedder | Any | None = None, llm: Any | None = None, clock: Clock = _utc_now,
                 backend: Backend | None = None) -> None:
        config = config or Config()
        if data_dir is not None:
            config = config.model_copy(update={"data_dir": data_dir if "://" in str(data_dir) else Path(data_dir)})
        self.config = config
        self.clock = clock
        self.embedder = as_embedder(embedder) if embedder is not None else SentenceTransformerEmbedder(
            config.embedder_path, device=config.embedder_device)
        self.backend = backend or open_backend(config, self.embedder.dimension, getattr(self.embedder, "name", ""))
        self.locks = self.backend.user_locks()
        self.episodes = Episodes(self.backend, config.storage.exact_search_max_user_rows,
                                 cache_max_rows=config.caches.episode_rows, locks=self.locks)
        self.tiers = DerivedTiers(self.backend, max_users=config.caches.derived_users, locks=self.locks)
        self.llm = ChatAdapter(chat_model(llm))
        self.deps = Deps(self.backend, self.episodes, self.tiers, self.embedder, config, self.llm)
        self.sentences = TextVectors(self.embedder, config.answer.sentence_cache)
        self.revisions = Revisions(self.backend)
        self._scheduler: Any = None
        self._graphs: dict[Any, Any] = {}
        self._lock = threading.RLock()  # a graph may be built while another one is

    # --- graphs ---------------------------------------------------------------
    def _graph(self, key: Any, build: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._graphs:
                self._graphs[key] = build()
            return self._graphs[key]

    def _router(self) -> Router:
        router: Router = self._graph("router", lambda: Router(self.embedder, self.llm))
        return router

    def warm(self) -> None:
        """Load the embedder and embed the routing prototypes now rather than in the first
        question (a server's workers call this as they start, before taking requests);
        embedding the prototypes is what loads the model."""
        self._router().prototype_vectors()

    def _ingest(self, state: dict[str, Any]) -> list[str]:
        from memagent.graphs.ingest import build_ingest_graph

        graph = self._graph("ingest", lambda: build_ingest_graph(self.deps))
        user_id = state["user_id"] if "user_id" in state else state["episodes"][0].user_id
        with self.locks.hold(user_id):  # ids, turns and seq numbers are read and written as one step
            return graph.invoke(state)["ids"]

    def _search_graph(self, signals: frozenset[Signal] = frozenset(Signal)) -> Any:
        from memagent.graphs.search import build_search_graph

        return self._graph(("search", signals), lambda: build_search_graph(self.deps, signals))

    # --- writing ----------------------------------------------------------------
    @_one_run("memagent.add")
    def add(self, user_id: str, messages: Any, session_id: str | None = None, *,
            now: datetime | None = None, infer: bool = False, agent_id: str | None = None,
            run_id: str | None = None) -> list[str]:
        """Store messages (a batch, or one) in the order given; return their episode ids.

        A message is a str, a ``Message``, a dict (``text``/``content``,
        ``role``/``speaker``, ``timestamp``, ``id``, ``metadata``) or a LangChain
        message. One with an ``id`` already stored for this user is not stored
        again; its existing episode id is returned. A bad message rejects the
        whole batch before anything is written. ``infer`` consolidates the user at
        once (profile and graph follow before this returns). ``agent_id`` and
        ``run_id`` store into that scope of the user (``memagent.scope``).
        """
        user_id = scope(user_id, agent_id, run_id)
        session_id = check_id(session_id, "session_id") if session_id is not None else "default"
        batch = list(messages) if isinstance(messages, (list, tuple)) else [messages]
        if not batch:
            return []
        if len(batch) > self.config.max_batch:
            raise InvalidInputError(f"{len(batch)} messages in one call; max_batch is {self.config.max_batch}")
        ids = self._ingest({"user_id": user_id, "session_id": session_id, "raw": batch,
                            "now": _when(now, self.clock)})
        if infer:
            self.consolidate(user_id)
        return ids

    @_one_run("memagent.import")
    def import_(self, source: str | Path | IO[str], user_id: str | None = None,
                batch_size: int = 500, progress: Callable[[int], None] | None = None) -> list[str]:
        """Load a JSON Lines export; the file is checked whole before anything is written.

        Episodes keep their ids, so importing the same file twice stores nothing new.
        """
        _count(batch_size, "batch_size")
        episodes = read_episodes(source, self.config.max_message_chars, user_id)
        ids: list[str] = []
        for start in range(0, len(episodes), batch_size):
            chunk = episodes[start:start + batch_size]
            for user in dict.fromkeys(e.user_id for e in chunk):
                mine = [e for e in chunk if e.user_id == user]
                known = self.episodes.existing_ids(user, [e.id for e in mine])
                fresh = [e for e in mine if e.id not in known]
                if fresh:
                    ids += self._ingest({"episodes": fresh})
            if progress:
                progress(min(batch_size, len(episodes) - start))
        return ids

    def delete(self, user_id: str, episode_id: str) -> None:
        """Delete one episode, its history and what was derived from it alone;
        raise ``EpisodeNotFoundError`` if it does not exist."""
        self._require_user(user_id)
        check_id(episode_id, "episode_id")
        with self.locks.hold(user_id), self.tiers.lock(user_id):
            if not self.episodes.delete(user_id, [episode_id]):
                raise EpisodeNotFoundError(user_id, episode_id)
            self._unlearn(user_id, {episode_id}, deleted=True)

    def _unlearn(self, user_id: str, episode_ids: set[str], *, deleted: bool) -> None:
        """Drop what the profile and graph derived from these episodes (and, if ``deleted``, their history)."""
        profile, graph = self.tiers.get(user_id)
        plan = plan_removal(episode_ids, profile.statements, list(graph.entities.values()),
                            list(graph.relations.values()))
        self.tiers.apply_removal(user_id, plan)
        if deleted:
            self.backend.delete(Kind.HISTORY, user_id, self.revisions.ids_of(user_id, episode_ids))
        self.sentences.drop(user_id)

    def delete_all(self, user_id: str, filters: Mapping[str, Any] | None = None, *,
                   agent_id: str | None = None, run_id: str | None = None) -> int:
        """Delete a user's (or scope's) episodes whose metadata matches ``filters`` (every one,
        as ``delete_user``, when None), with what was derived from them; return how many."""
        user_id = scope(user_id, agent_id, run_id)
        if filters is None:
            return self.delete_user(user_id)
        chosen = check_filters(filters)
        with self.locks.hold(user_id), self.tiers.lock(user_id):
            ids = self.episodes.matching(user_id, chosen)
            if not ids:
                return 0
            count = self.episodes.delete(user_id, ids)
            self._unlearn(user_id, set(ids), deleted=True)
            return count

    def reset(self) -> int:
        """Delete every user of this memory, from every tier; return how many users there were."""
        users = self.users()
        for user in users:
            self.delete_user(user)
        return len(users)

    @_one_run("memagent.update")
    def update(self, user_id: str, episode_id: str, *, text: str | None = None,
               metadata: Mapping[str, Any] | None = None, now: Any = None) -> Episode:
        """Change an episode's text and/or metadata (metadata is replaced whole); the old
        version stays in ``history``. Return the episode as it is now.

        A new text is embedded and indexed again, what consolidation derived from
        the old text is dropped, and the episode waits for consolidation again.
        Its id, session, speaker and event time stay.
        """
        self._require_user(user_id)
        check_id(episode_id, "episode_id")
        if text is None and metadata is None:
            raise InvalidInputError("update needs a text, a metadata mapping, or both")
        when = _when(now, self.clock)
        [checked] = episodic.validate([Message(text=text if text is not None else "-", metadata=dict(
            metadata if metadata is not None else {}))], self.config.max_message_chars)
        with self.locks.hold(user_id), self.tiers.lock(user_id):
            current = self.get(user_id, episode_id)
            changed = replace(current, text=checked.text if text is not None else current.text,
                              metadata=checked.metadata if metadata is not None else current.metadata)
            if changed == current:
                return current
            self.revisions.record(current, changed, when)
            rewritten = text is not None and changed.text != current.text
            self._rewrite(changed, rewritten)
            if rewritten:
                self._unlearn(user_id, {episode_id}, deleted=False)
        return self.get(user_id, episode_id)

    def _rewrite(self, episode: Episode, rewritten: bool) -> None:
        """Store a changed episode over the old one: re-embedded, and with a new ``seq`` (so consolidation
        reads it again) when its text changed; the next turn's indexed context follows."""
        index = self.episodes.index(episode.user_id)
        seq = index.next_seq() if rewritten else int(index.seqs[index.row_of[episode.id]])
        role = self.config.embed_role
        around = {e.turn: e for e in self.episodes.session_turns(
            episode.user_id, {episode.session_id: {episode.turn - 1, episode.turn + 1}})}
        before, after = around.get(episode.turn - 1), around.get(episode.turn + 1)
        records = [episodic.to_record(episode, seq, role, before, self.config.context_words)]
        vectors = (self.embedder.embed([episodic.index_text(episode, role)]) if rewritten
                   else self.episodes.vectors(episode.user_id, [episode.id]))
        if rewritten and after is not None:
            next_seq = int(index.seqs[index.row_of[after.id]])
            records.append(episodic.to_record(after, next_seq, role, episode, self.config.context_words))
            vectors = np.vstack([vectors, self.episodes.vectors(episode.user_id, [after.id])])
        self.episodes.replace(episode.user_id, records, vectors)

    def history(self, user_id: str, episode_id: str) -> builtins.list[EpisodeVersion]:
        """Every version of an episode, oldest first: as added, then after each ``update``."""
        current = self.get(user_id, episode_id)
        return self.revisions.versions(current)

    def delete_user(self, user_id: str) -> int:
        """Remove everything of a user from every tier, table, index, cache and lock file, with the
        user's agent and run scopes (a scope id deletes that scope alone); return the episode count."""
        check_id(user_id)
        scopes = [] if SCOPE_SEPARATOR in user_id else \
            [u for u in self.users() if u.startswith(user_id + SCOPE_SEPARATOR)]
        return sum(self._delete_one_user(u) for u in [*scopes, user_id])

    def _delete_one_user(self, user_id: str) -> int:
        with self.locks.hold(user_id), self.tiers.lock(user_id):
            count = self.episodes.count(user_id)
            self.backend.delete_user(user_id)
            self.episodes.forget_user(user_id)
            self.tiers.drop(user_id)
            self.sentences.drop(user_id)
            self.locks.discard(user_id)
            return count

    # --- derived tiers: consolidation, profile, knowledge graph -----------------
    @_one_run("memagent.consolidate")
    def consolidate(self, user_id: str | None = None) -> dict[str, int]:
        """Turn the episodes added since the last run into profile statements and graph facts.

        Incremental (from each user's watermark), idempotent (a second run adds
        nothing) and safe to interrupt (a rerun after a crash neither duplicates
        nor skips). ``None`` consolidates every user. Returns counts: episodes,
        candidates, added, merged, closed, entities/relations touched, and
        ``llm_calls``/``fallbacks`` when a chat model is set.
        """
        from memagent.graphs.maintain import build_consolidate_graph

        graph = self._graph("consolidate", lambda: build_consolidate_graph(self.deps))
        users = [check_id(user_id)] if user_id is not None else self.users()
        total: Counter[str] = Counter()
        for user in users:
            with self.locks.hold(user), self.tiers.lock(user):
                while True:
                    try:
                        out = graph.invoke({"user_id": user})
                    except BaseException:
                        self.tiers.drop(user)  # memory may hold changes that were never written
                        raise
                    total.update(out["counts"])
                    if not out["episodes"]:
                        break
        return dict(total)

    def pending(self, user_id: str) -> int:
        """How many of a user's episodes wait for consolidation."""
        return self.pending_since(user_id)[0]

    def pending_since(self, user_id: str) -> tuple[int, datetime | None]:
        """How many of a user's episodes wait for consolidation, and when the oldest was stored."""
        index = self.episodes.index(check_id(user_id))
        waiting = index.seqs > self.tiers.watermark(user_id)
        if not waiting.any():
            return 0, None
        ingest = index.table.column("ingest_time").to_pylist()
        oldest = min(t for t, w in zip(ingest, waiting) if w)
        return int(waiting.sum()), oldest if oldest.tzinfo else oldest.replace(tzinfo=timezone.utc)

    def profile(self, user_id: str, at: Any = None) -> list[Statement]:
        """A user's profile statements and session summaries valid at ``at`` (default: now)."""
        check_id(user_id)
        profile = self.tiers.profile(user_id)
        found = [profile.statements[n] for n in profile.active(_when(at, self.clock))]
        return sorted(found, key=lambda s: (s.kind == "summary", s.valid_from, s.text))

    def entity(self, user_id: str, name: str) -> Entity | None:
        """The graph entity a name denotes ("Ana", "my sister Ana", "Ana's"), if any."""
        return self.tiers.graph(check_id(user_id)).find(_text(name, "name"))

    def facts(self, user_id: str, entity: str, at: Any = None) -> list[Relation]:
        """Relations of an entity valid at ``at`` (default: currently open ones)."""
        graph = self.tiers.graph(check_id(user_id))
        found = graph.find(_text(entity, "entity"))
        return graph.facts(found.id, to_datetime(at) if at is not None else None) if found else []

    def neighbours(self, user_id: str, entity: str, at: Any = None) -> list[tuple[Relation, Entity]]:
        """Each valid relation of an entity with the entity at its other end."""
        graph = self.tiers.graph(check_id(user_id))
        found = graph.find(_text(entity, "entity"))
        return graph.neighbours(found.id, to_datetime(at) if at is not None else None) if found else []

    def paths(self, user_id: str, source: str, target: str, max_hops: int = 3) -> list[list[Relation]]:
        """Chains of current relations linking two entities, shortest first."""
        graph = self.tiers.graph(check_id(user_id))
        a, b = graph.find(source), graph.find(target)
        return graph.paths(a.id, b.id, max_hops) if a and b else []

    def describe(self, user_id: str, relation: Relation) -> str:
        """A relation as text, with its validity: "Sam lives in Lisbon (since 2 March 2024)"."""
        check_id(user_id)
        span = f"since {relation.valid_from:%-d %B %Y}"
        if relation.valid_to is not None:
            span = f"{relation.valid_from:%-d %B %Y} to {relation.valid_to:%-d %B %Y}"
        return f"{relation.text} ({span})"

    def search_facts(self, user_id: str, query: str, k: int = 10, *,
                     include_archived: bool = False) -> list[FactHit]:
        """Profile statements and graph facts nearest to ``query``, each with its source
        episodes. Archived statements and facts are skipped unless ``include_archived``."""
        from memagent.graphs.search import derived_hits

        check_id(user_id)
        _count(k, "k")
        vector = self.embedder.embed([_text(query, "query")])[0]
        hidden = set() if include_archived else self.tiers.usage(user_id).archived
        return [FactHit(item, score, self.episodes.get(user_id, list(item.evidence_ids)))
                for item, score in derived_hits(self.tiers, user_id, vector, k, hidden)]

    # --- reading ----------------------------------------------------------------
    def search(self, user_id: str, query: str, k: int = 10, since: Any = None, until: Any = None,
               *, now: Any = None, signals: Iterable[Signal | str] | None = None,
               use_time: bool = True, retrieval: RetrievalSettings | None = None,
               include_archived: bool = False, route: Route | str | None = None,
               filters: Mapping[str, Any] | None = None, agent_id: str | None = None,
               run_id: str | None = None) -> list[SearchHit]:
        """The ``k`` best episodes of a user for ``query``, each with the signals that found it.

        ``since``/``until`` bound event time (``since <= t < until``). Time
        expressions in the query ("last May", "two weeks ago") are resolved
        against ``now`` (default: the clock; pass the question's date) and boost
        episodes in that range. ``signals`` restricts retrieval, e.g.
        ``{"lexical"}`` for BM25 alone; ``retrieval`` overrides the configured
        ranking settings for this call. Archived memories are skipped unless
        ``include_archived`` or nothing active matches well. ``route`` applies the
        feedback given on answers of that route. ``filters`` keeps only episodes whose
        metadata matches (``memagent.filters``: ``{"topic": "food", "stars": {"$gte": 4}}``).
        ``agent_id``/``run_id`` search that scope (``memagent.scope``). An unknown user has no hits.
        """
        user_id = scope(user_id, agent_id, run_id)
        query = _text(query, "query")
        _count(k, "k")
        chosen = frozenset(_choice(Signal, s, "signal") for s in signals) if signals is not None else frozenset(Signal)
        state = {"user_id": user_id, "query": query, "k": k, "use_time": use_time,
                 "now": _when(now, self.clock), "settings": retrieval or self.config.retrieval,
                 "since": to_datetime(since) if since is not None else None,
                 "until": to_datetime(until) if until is not None else None,
                 "include_archived": include_archived,
                 "route": _choice(Route, route, "route").value if route else None}
        if filters is not None:
            state["allowed"] = frozenset(self.episodes.matching(user_id, check_filters(filters)))
        return self._search_graph(chosen).invoke(state)["hits"]

    def ask(self, user_id: str, question: str, at: Any = None, *, route: Route | str | None = None,
            agent_id: str | None = None, run_id: str | None = None) -> Answer:
        """Answer a question from the user's memory, by route, with evidence and a trace id.

        ``at`` is when the question is asked (default: the clock); relative times in
        the question are read against it. ``route`` forces a route instead of the
        routing policy. No chat model: an extractive answer, or "Not mentioned in
        memory." when the evidence is weak.

        >>> memory.ask("sam", "When did I adopt Biscuit?").text   # doctest: +SKIP
        '1 March 2024'
        """
        user_id = scope(user_id, agent_id, run_id)
        from memagent.graphs.answer import build_answer_graph

        graph = self._graph("answer", lambda: build_answer_graph(
            self.deps, self._router(), self._search_graph(), self.sentences))
        state: dict[str, Any] = {"user_id": user_id, "question": _text(question, "question"),
                                 "now": _when(at, self.clock)}
        if route is not None:
            try:
                state["forced"] = Route(route)
            except ValueError:
                raise InvalidInputError(f"unknown route {route!r}; one of {[r.value for r in Route]}") from None
        return graph.invoke(state)["answer"]

    @_one_run("memagent.feedback")
    def feedback(self, trace_id: str, rating: Any, correction: str | None = None, *,
                 role: str = "user", at: Any = None, user_id: str | None = None) -> dict[str, Any]:
        """Rate an answer by its trace id: good reinforces the memories it used, bad demotes them
        for that kind of question; a ``correction`` is stored as a pinned episode and
        revises profile and graph at once. The user's signal and route weights adapt.

        ``rating``: True/False, "good"/"bad", or a number in [-1, 1] (its sign counts).
        ``user_id`` binds the rating to that user: a trace id of another user is
        unknown (``TraceNotFoundError``). Pass it; without it the trace is looked up
        over every user.

        >>> answer = memory.ask("sam", "Where do I live?")                     # doctest: +SKIP
        >>> memory.feedback(answer.trace_id, "bad", correction="I live in Porto now.", user_id="sam")  # doctest: +SKIP
        """
        from memagent.graphs.feedback import build_feedback_graph, promote_correction

        delta = _rating(rating)
        if correction is not None:
            correction = _text(correction, "correction")
        graph = self._graph("feedback", lambda: build_feedback_graph(self.deps))
        now = _when(at, self.clock)
        out = graph.invoke({"trace_id": check_id(trace_id, "trace_id"), "rating": delta, "correction": correction,
                            "now": now, "user_id": check_id(user_id) if user_id is not None else None})
        trace, rated = out["trace"], {r.item_id for r in out["ratings"] if r.delta}
        correction_id = None
        if correction:
            correction_id = self.add(trace.user_id, [{
                "id": f"correction:{trace.id}", "role": role or "user", "text": correction, "timestamp": now,
                "metadata": {"correction_of": trace.id, "pinned": True, "question": trace.question,
                             "supports": out["supports"]}}], session_id="corrections", now=now)[0]
            self.consolidate(trace.user_id)
            with self.locks.hold(trace.user_id), self.tiers.lock(trace.user_id):
                promote_correction(self.deps, trace, correction_id, out["vector"], now, out["previous"])
            rated.add(correction_id)
        return {"user_id": trace.user_id, "route": trace.route, "rated": len(rated),
                "correction_id": correction_id, "weights": out["weights"]}

    def reset_feedback(self, user_id: str) -> None:
        """Forget what a user's feedback taught: learned weights, ratings, and the feedback
        counted into each memory's strength (uses and importance stay)."""
        check_id(user_id)
        with self.locks.hold(user_id), self.tiers.lock(user_id):
            usage = self.tiers.usage(user_id)
            self.backend.delete(Kind.WEIGHT, user_id, [f"{user_id}\x00{k}" for k in usage.weights])
            self.tiers.write_usage(replace(u, route_feedback={}, feedback=0.0) for u in usage.records.values()
                                   if u.route_feedback or u.feedback)
            self.backend.delete(Kind.RATING, user_id, usage.drop_ratings())
            self.tiers.drop(user_id)

    def forget(self, user_id: str, dry_run: bool = True, at: Any = None) -> list[Any]:
        """Apply the forgetting policy to a user: archive what stopped mattering, restore what
        matters again. ``dry_run`` (the default) only says what would change and why.

        Archived memories are not deleted: search skips them unless nothing active
        matches or ``include_archived=True``. Returns the policy's decisions that change something.
        """
        from memagent.graphs.maintain import build_forget_graph

        check_id(user_id)
        graph = self._graph("forget", lambda: build_forget_graph(self.deps))
        with self.locks.hold(user_id), self.tiers.lock(user_id):
            out = graph.invoke({"user_id": user_id, "now": _when(at, self.clock), "dry_run": dry_run})
        return [d for d in out["decisions"] if d.changes]

    def speakers(self, user_id: str) -> set[str]:
        """The speaker names (roles) in a user's episodes."""
        return self.episodes.speakers(check_id(user_id))

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two texts under the memory's embedder."""
        va, vb = self.embedder.embed([a, b])
        return float(va @ vb)

    def get(self, user_id: str, episode_id: str) -> Episode:
        """One episode by id; ``UnknownUserError`` or ``EpisodeNotFoundError`` if absent."""
        self._require_user(user_id)
        found = self.episodes.get(user_id, [check_id(episode_id, "episode_id")])
        if not found:
            raise EpisodeNotFoundError(user_id, episode_id)
        return found[0]

    # From here on, a bare ``list`` in this class's annotations is this method (for mypy): write builtins.list.
    def list(self, user_id: str, offset: int = 0, limit: int = 50,
             session_id: str | None = None) -> Page[Episode]:
        """A page of a user's episodes in the order they were written."""
        check_id(user_id)
        _count(offset, "offset", 0)
        _count(limit, "limit")
        ids = self.episodes.ordered_ids(user_id, session_id)
        page = self.episodes.get(user_id, ids[offset:offset + limit])
        next_offset = offset + limit if offset + limit < len(ids) else None
        return Page(items=page, total=len(ids), offset=offset, next_offset=next_offset)

    def get_all(self, user_id: str, filters: Mapping[str, Any] | None = None, *, limit: int | None = None,
                agent_id: str | None = None, run_id: str | None = None) -> builtins.list[Episode]:
        """A user's (or scope's) episodes in write order, only those whose metadata matches
        ``filters`` if given, at most ``limit``; an unknown user has none."""
        user_id = scope(user_id, agent_id, run_id)
        chosen = check_filters(filters)
        if limit is not None:
            _count(limit, "limit")
        ids = self.episodes.matching(user_id, chosen) if chosen else self.episodes.ordered_ids(user_id)
        return self.episodes.get(user_id, ids[:limit])

    def count(self, user_id: str) -> int:
        """How many episodes a user has."""
        return self.episodes.count(check_id(user_id))

    def users(self) -> builtins.list[str]:
        """Every user with at least one episode."""
        return self.episodes.users()

    def export(self, user_id: str, destination: str | Path | IO[str] | None = None) -> str | int:
        """Write a user's episodes as JSON Lines; return the text if no destination, else the count."""
        self._require_user(user_id)
        lines = dump_lines(self.episodes.iter_user(user_id))
        if destination is None:
            return "".join(line + "\n" for line in lines)
        if isinstance(destination, (str, Path)):
            try:
                handle = open(destination, "w", encoding="utf-8")  # noqa: SIM115 - closed below
            except (OSError, ValueError, UnicodeError) as exc:  # ValueError: a NUL in the path
                raise InvalidInputError(f"destination: cannot write {str(destination)[:200]!r}: {exc}") from None
            with handle:
                return _write_lines(handle, lines)
        if not callable(getattr(destination, "write", None)):
            raise InvalidInputError(f"destination must be a path or a text stream, not {type(destination).__name__}")
        return _write_lines(destination, lines)

    def _require_user(self, user_id: str) -> None:
        if self.episodes.count(check_id(user_id)) == 0:
            raise UnknownUserError(user_id)

    # --- upkeep and lifetime ----------------------------------------------------
    def refresh(self) -> None:
        """See rows that other processes wrote to the same data directory since this one opened it."""
        self.backend.refresh()
        self.episodes.refresh()
        self.tiers.drop()

    def optimize(self) -> None:
        """Compact storage and refresh indexes now (also done every few writes)."""
        self.backend.optimize()

    def start(self, settings: Any = None) -> Any:
        """Run consolidation, forgetting and maintenance in the background (APScheduler).

        ``settings`` (a ``ScheduleSettings``) defaults to ``config.schedule``. Returns the
        ``MemoryScheduler``; ``stop()`` or leaving ``with Memory(...)`` stops it cleanly.
        """
        from memagent.scheduler import MemoryScheduler

        if self._scheduler is None:
            self._scheduler = MemoryScheduler(self, settings)
        self._scheduler.start()
        return self._scheduler

    def stop(self, wait: bool = True) -> None:
        """Stop the background jobs (waiting for a running one); nothing is lost."""
        if self._scheduler is not None:
            self._scheduler.stop(wait=wait)

    def close(self) -> None:
        """Stop background jobs and release the graphs; the data stays as it is."""
        self.stop()
        self._graphs.clear()
        self.backend.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- async: the same code, run in a worker thread ---------------------------
    aadd = _twin(add)
    aimport_ = _twin(import_)
    adelete = _twin(delete)
    adelete_all = _twin(delete_all)
    adelete_user = _twin(delete_user)
    areset = _twin(reset)
    aupdate = _twin(update)
    ahistory = _twin(history)
    aconsolidate = _twin(consolidate)
    apending = _twin(pending)
    aprofile = _twin(profile)
    aentity = _twin(entity)
    afacts = _twin(facts)
    aneighbours = _twin(neighbours)
    apaths = _twin(paths)
    asearch_facts = _twin(search_facts)
    asearch = _twin(search)
    aask = _twin(ask)
    afeedback = _twin(feedback)
    areset_feedback = _twin(reset_feedback)
    aforget = _twin(forget)
    aget = _twin(get)
    aget_all = _twin(get_all)
    alist = _twin(list)
    acount = _twin(count)
    ausers = _twin(users)
    aexport = _twin(export)
    aclose = _twin(close)
