"""``memagent.Client``: the API of ``Memory`` over HTTP, for a server run by ``memagent serve --http``.

The same method names, arguments, results (the dataclasses of ``memagent.types``)
and errors (``UnknownUserError``, ``InvalidInputError``...) as ``Memory``, so an
application switches by changing the line that makes its memory. Each method has
an async twin with an ``a`` in front (``aadd``, ``asearch``, ``aask``...). Errors
of the HTTP layer are ``ServiceError``s: ``AuthenticationError`` (no key or a
wrong one), ``RequestTooLargeError`` (past a server limit; also an
``InvalidInputError``), ``ServiceUnavailableError`` (the server cannot be reached).

>>> from memagent import Client
>>> with Client("http://127.0.0.1:8000", api_key="mk_...") as memory:   # doctest: +SKIP
...     memory.add("alice", "I adopted a dog named Rex")
...     memory.search("alice", "What is my dog called?")[0].episode.text
'I adopted a dog named Rex'
"""

from __future__ import annotations

import builtins
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Concatenate, Generic, ParamSpec, TypeVar
from urllib.parse import quote

import httpx

from memagent.config import RetrievalSettings
from memagent.errors import ImportFormatError, InvalidInputError, MemagentError
from memagent.filters import check_filters
from memagent.policies.forgetting import Decision
from memagent.tiers.episodic import check_id, scope, to_message
from memagent.timeparse import to_datetime
from memagent.types import (
    Answer,
    Entity,
    Episode,
    EpisodeVersion,
    FactHit,
    Page,
    Relation,
    Route,
    SearchHit,
    Signal,
    Statement,
)
from memagent.wire import (
    AnswerOut,
    DecisionOut,
    EntityOut,
    EpisodeOut,
    EpisodeVersionOut,
    FactHitOut,
    FeedbackOut,
    NeighbourOut,
    PageOut,
    PendingOut,
    RelationOut,
    SearchHitOut,
    StatementOut,
    error_from,
)

T = TypeVar("T")
P = ParamSpec("P")
F = TypeVar("F", bound=Callable[..., Any])


class ServiceError(MemagentError):
    """An HTTP error that no ``MemagentError`` of the library stands for; ``status`` and ``code`` say which."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        self.status, self.code = status, code
        super().__init__(message)


class AuthenticationError(ServiceError, PermissionError):
    """The server wants an API key, and got none or an unknown one (401)."""


class RequestTooLargeError(InvalidInputError, ServiceError):
    """A request past one of the server's size limits (413, 414)."""


class ServiceUnavailableError(ServiceError, ConnectionError):
    """The server could not be reached, or did not answer in time."""


_HTTP_ERRORS: dict[int, type[ServiceError]] = {401: AuthenticationError, 413: RequestTooLargeError,
                                               414: RequestTooLargeError}


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer: what each method builds, sync and async alike."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _sync(build: Callable[Concatenate[Client, P], Call[T]]) -> Callable[Concatenate[Client, P], T]:
    """The method that sends what ``build`` makes and returns what it reads."""
    @functools.wraps(build)
    def run(self: Client, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._send(build(self, *args, **kwargs))

    return _named(run, build, "", "{}")


def _async(build: Callable[Concatenate[Client, P], Call[T]]) -> Callable[Concatenate[Client, P], Awaitable[T]]:
    """The async twin of ``_sync(build)``, named with an ``a`` in front."""
    @functools.wraps(build)
    async def run(self: Client, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._asend(build(self, *args, **kwargs))

    return _named(run, build, "a", "Awaitable[{}]")


def _named(run: F, build: Callable[..., Any], prefix: str, returns: str) -> F:
    """Name ``run`` after ``build`` and show its signature with the result type, not the ``Call``."""
    run.__name__ = run.__qualname__ = prefix + build.__name__.lstrip("_")
    signature = inspect.signature(build)
    result = str(signature.return_annotation)
    result = result[len("Call["):-1] if result.startswith("Call[") else result
    run.__signature__ = signature.replace(return_annotation=returns.format(result))  # type: ignore[attr-defined]
    return run


def _user(user_id: str, agent_id: str | None = None, run_id: str | None = None) -> str:
    """A user id, or its scope of an agent and/or a run (``memagent.scope``), as one path segment
    (``/``, ``.`` and the scope's separator escaped too)."""
    return _segment(scope(user_id, agent_id, run_id))


def _segment(value: str) -> str:
    return quote(value, safe="").replace(".", "%2E")


def _stamp(value: Any) -> str | None:
    """A time as the server reads it: strings as given (parsed there like here), the rest as ISO 8601."""
    if value is None or isinstance(value, str):
        return value
    return to_datetime(value).isoformat()


def _message(raw: Any, index: int) -> dict[str, Any] | str:
    if isinstance(raw, str):
        return raw
    message = to_message(raw, index)
    return {"text": message.text, "role": message.role, "timestamp": _stamp(message.timestamp), "id": message.id,
            "metadata": message.metadata}


def _route(route: Route | str | None) -> str | None:
    return route.value if isinstance(route, Route) else route


def _filters(filters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Metadata filters as JSON, checked here as ``Memory`` checks them (the sets of ``$in`` become lists)."""
    return {key: _plain(value) for key, value in check_filters(filters).items()} if filters is not None else None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (builtins.list, tuple, set, frozenset)):
        return [_plain(item) for item in value]
    return value


def _json(response: httpx.Response) -> Any:
    return response.json()


def _none(response: httpx.Response) -> None:
    return None


def _raise(response: httpx.Response) -> None:
    """Raise the error an error response stands for."""
    try:
        body = response.json()["error"]
        code, message, details = str(body["code"]), str(body["message"]), body.get("details") or {}
    except (ValueError, KeyError, TypeError):
        code, message, details = "", response.text[:300] or response.reason_phrase, {}
    found = error_from(code, message, details)
    if found is not None:
        raise found
    kind = _HTTP_ERRORS.get(response.status_code, ServiceUnavailableError if response.status_code in (502, 503, 504)
                            else ServiceError)
    raise kind(f"{response.status_code} {code or response.reason_phrase}: {message}", response.status_code, code)


class Client:
    """A memagent server's ``Memory`` API: ``Client(url, api_key=None, timeout=30.0)``.

    Sync methods share one connection pool; the ``a``-methods share one async pool
    (made on first use). Close with ``close()`` / ``await aclose()``, or use
    ``with`` / ``async with``. ``headers`` adds HTTP headers to every request.
    """

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0, *,
                 headers: dict[str, str] | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._headers = {**(headers or {}), **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
        self._http: httpx.Client | None = None
        self._ahttp: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # --- transport: the only code that differs between sync and async ------------------
    def _request(self, call: Call[Any]) -> dict[str, Any]:
        return {"method": call.method, "url": call.path, "params": call.params, "json": call.json,
                "content": call.content, "headers": call.headers or None}

    def _read(self, call: Call[T], response: httpx.Response) -> T:
        if response.is_error:
            _raise(response)
        return call.read(response)

    def _send(self, call: Call[T]) -> T:
        if self._http is None:
            self._http = httpx.Client(base_url=self.url, headers=self._headers, timeout=self.timeout)
        try:
            response = self._http.request(**self._request(call))
        except httpx.TransportError as exc:
            raise ServiceUnavailableError(f"memagent server {self.url}: {exc}") from exc
        return self._read(call, response)

    async def _asend(self, call: Call[T]) -> T:
        if self._ahttp is None:
            self._ahttp = httpx.AsyncClient(base_url=self.url, headers=self._headers, timeout=self.timeout)
        try:
            response = await self._ahttp.request(**self._request(call))
        except httpx.TransportError as exc:
            raise ServiceUnavailableError(f"memagent server {self.url}: {exc}") from exc
        return self._read(call, response)

    def close(self) -> None:
        """Close the sync connection pool (the async one: ``aclose``)."""
        if self._http is not None:
            self._http.close()
            self._http = None

    async def aclose(self) -> None:
        """Close both connection pools."""
        self.close()
        if self._ahttp is not None:
            await self._ahttp.aclose()
            self._ahttp = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- writing ------------------------------------------------------------------------
    def _add(self, user_id: str, messages: Any, session_id: str | None = None, *,
             now: datetime | None = None, infer: bool = False, agent_id: str | None = None,
             run_id: str | None = None) -> Call[builtins.list[str]]:
        """Store messages (a batch, or one) in the order given; return their episode ids (``Memory.add``).
        ``infer`` consolidates at once; ``agent_id``/``run_id`` store into that scope of the user."""
        batch = builtins.list(messages) if isinstance(messages, (builtins.list, tuple)) else [messages]
        body = {"messages": [_message(m, n) for n, m in enumerate(batch)], "session_id": session_id,
                "now": _stamp(now), "infer": infer}
        return Call("POST", f"/v1/users/{_user(user_id, agent_id, run_id)}/messages", lambda r: r.json()["ids"],
                    json=body)

    def _import_(self, source: str | Path | IO[str], user_id: str | None = None, batch_size: int = 500,
                 progress: Callable[[int], None] | None = None) -> Call[builtins.list[str]]:
        """Load a JSON Lines export, checked whole by the server before anything is written (``Memory.import_``).

        Without ``user_id`` each line goes to the user it names (inside your tenant)."""
        try:
            text = Path(source).read_text(encoding="utf-8") if isinstance(source, (str, Path)) else source.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ImportFormatError(getattr(source, "name", str(source)), 0, f"cannot read file: {exc}") from None
        lines = sum(1 for line in text.split("\n") if line.strip())

        def read(response: httpx.Response) -> builtins.list[str]:
            if progress:
                progress(lines)
            return builtins.list(response.json()["ids"])

        params = {"batch_size": batch_size, **({"user_id": check_id(user_id)} if user_id is not None else {})}
        return Call("POST", "/v1/import", read, params=params, content=text.encode("utf-8"),
                    headers={"Content-Type": "application/x-ndjson"})

    def _delete(self, user_id: str, episode_id: str) -> Call[None]:
        """Delete one episode; ``EpisodeNotFoundError`` if it does not exist (``Memory.delete``)."""
        return Call("DELETE", f"/v1/users/{_user(user_id)}/episodes/{_segment(episode_id)}", _none)

    def _delete_all(self, user_id: str, filters: Mapping[str, Any] | None = None, *,
                    agent_id: str | None = None, run_id: str | None = None) -> Call[int]:
        """Delete a user's (or scope's) episodes whose metadata matches ``filters`` (every one when None);
        return how many (``Memory.delete_all``)."""
        return Call("POST", f"/v1/users/{_user(user_id, agent_id, run_id)}/episodes/delete", _deleted,
                    json={"filters": _filters(filters)})

    def _reset(self) -> Call[int]:
        """Delete every user (of your tenant); return how many there were (``Memory.reset``)."""
        return Call("DELETE", "/v1/users", lambda r: int(r.json()["users_deleted"]), params={"confirm": True})

    def _update(self, user_id: str, episode_id: str, *, text: str | None = None,
                metadata: Mapping[str, Any] | None = None, now: Any = None) -> Call[Episode]:
        """Change an episode's text and/or metadata (replaced whole); return it as it is now (``Memory.update``)."""
        body = {"text": text, "metadata": dict(metadata) if metadata is not None else None, "now": _stamp(now)}
        return Call("PATCH", f"/v1/users/{_user(user_id)}/episodes/{_segment(episode_id)}", _episode, json=body)

    def _history(self, user_id: str, episode_id: str) -> Call[builtins.list[EpisodeVersion]]:
        """Every version of an episode, oldest first (``Memory.history``)."""
        return Call("GET", f"/v1/users/{_user(user_id)}/episodes/{_segment(episode_id)}/history",
                    lambda r: [EpisodeVersionOut.model_validate(v).to_type() for v in r.json()])

    def _delete_user(self, user_id: str) -> Call[int]:
        """Remove everything of a user; return the episode count (``Memory.delete_user``)."""
        return Call("DELETE", f"/v1/users/{_user(user_id)}", _deleted)

    # --- derived tiers ------------------------------------------------------------------
    def _consolidate(self, user_id: str | None = None) -> Call[dict[str, int]]:
        """Consolidate one user now, or every user (of your tenant) (``Memory.consolidate``)."""
        path = f"/v1/users/{_user(user_id)}/consolidate" if user_id is not None else "/v1/consolidate"
        return Call("POST", path, _json)

    def _pending(self, user_id: str) -> Call[int]:
        """How many of a user's episodes wait for consolidation (``Memory.pending``)."""
        return Call("GET", f"/v1/users/{_user(user_id)}/pending", lambda r: int(r.json()["pending"]))

    def _pending_since(self, user_id: str) -> Call[tuple[int, datetime | None]]:
        """How many episodes wait, and when the oldest was stored (``Memory.pending_since``)."""
        def read(response: httpx.Response) -> tuple[int, datetime | None]:
            out = PendingOut.model_validate(response.json())
            return out.pending, out.oldest

        return Call("GET", f"/v1/users/{_user(user_id)}/pending", read)

    def _profile(self, user_id: str, at: Any = None) -> Call[builtins.list[Statement]]:
        """A user's profile statements and session summaries valid at ``at`` (``Memory.profile``)."""
        return Call("GET", f"/v1/users/{_user(user_id)}/profile",
                    lambda r: [StatementOut.model_validate(s).to_type() for s in r.json()],
                    params=_params(at=_stamp(at)))

    def _entity(self, user_id: str, name: str) -> Call[Entity | None]:
        """The graph entity a name denotes, if any (``Memory.entity``)."""
        def read(response: httpx.Response) -> Entity | None:
            data = response.json()
            return EntityOut.model_validate(data).to_type() if data is not None else None

        return Call("GET", f"/v1/users/{_user(user_id)}/entity", read, params={"name": name})

    def _facts(self, user_id: str, entity: str, at: Any = None) -> Call[builtins.list[Relation]]:
        """Relations of an entity valid at ``at`` (default: the open ones) (``Memory.facts``)."""
        return Call("GET", f"/v1/users/{_user(user_id)}/facts", _relations,
                    params=_params(entity=entity, at=_stamp(at)))

    def _neighbours(self, user_id: str, entity: str, at: Any = None) -> Call[builtins.list[tuple[Relation, Entity]]]:
        """Each valid relation of an entity with the entity at its other end (``Memory.neighbours``)."""
        return Call("GET", f"/v1/users/{_user(user_id)}/neighbours",
                    lambda r: [NeighbourOut.model_validate(n).to_type() for n in r.json()],
                    params=_params(entity=entity, at=_stamp(at)))

    def _paths(self, user_id: str, source: str, target: str,
               max_hops: int = 3) -> Call[builtins.list[builtins.list[Relation]]]:
        """Chains of current relations linking two entities, shortest first (``Memory.paths``)."""
        return Call("GET", f"/v1/users/{_user(user_id)}/paths",
                    lambda r: [[RelationOut.model_validate(x).to_type() for x in path] for path in r.json()],
                    params={"source": source, "target": target, "max_hops": max_hops})

    def _search_facts(self, user_id: str, query: str, k: int = 10, *,
                      include_archived: bool = False) -> Call[builtins.list[FactHit]]:
        """Profile statements and graph facts nearest to ``query`` (``Memory.search_facts``)."""
        return Call("POST", f"/v1/users/{_user(user_id)}/facts/search",
                    lambda r: [FactHitOut.model_validate(h).to_type() for h in r.json()],
                    json={"query": query, "k": k, "include_archived": include_archived})

    # --- reading ------------------------------------------------------------------------
    def _search(self, user_id: str, query: str, k: int = 10, since: Any = None, until: Any = None, *,
                now: Any = None, signals: Iterable[Signal | str] | None = None, use_time: bool = True,
                retrieval: RetrievalSettings | None = None, include_archived: bool = False,
                route: Route | str | None = None, filters: Mapping[str, Any] | None = None,
                agent_id: str | None = None, run_id: str | None = None) -> Call[builtins.list[SearchHit]]:
        """The ``k`` best episodes of a user (or scope) for ``query``, each with its signals, only those
        whose metadata matches ``filters`` if given (``Memory.search``)."""
        body = {"query": query, "k": k, "since": _stamp(since), "until": _stamp(until), "now": _stamp(now),
                "signals": [str(getattr(s, "value", s)) for s in signals] if signals is not None else None,
                "use_time": use_time, "retrieval": retrieval.model_dump(mode="json") if retrieval else None,
                "include_archived": include_archived, "route": _route(route), "filters": _filters(filters)}
        return Call("POST", f"/v1/users/{_user(user_id, agent_id, run_id)}/search",
                    lambda r: [SearchHitOut.model_validate(h).to_type() for h in r.json()], json=body)

    def _ask(self, user_id: str, question: str, at: Any = None, *, route: Route | str | None = None,
             agent_id: str | None = None, run_id: str | None = None) -> Call[Answer]:
        """Answer a question from the user's (or scope's) memory, with evidence and a trace id (``Memory.ask``)."""
        return Call("POST", f"/v1/users/{_user(user_id, agent_id, run_id)}/ask",
                    lambda r: AnswerOut.model_validate(r.json()).to_type(),
                    json={"question": question, "at": _stamp(at), "route": _route(route)})

    def _feedback(self, trace_id: str, rating: Any, correction: str | None = None, *, role: str = "user",
                  at: Any = None, user_id: str | None = None) -> Call[dict[str, Any]]:
        """Rate an answer by its trace id (``Memory.feedback``); pass ``user_id`` (required by a server
        with API keys): a trace id of another user is then unknown (``TraceNotFoundError``)."""
        body = {"trace_id": trace_id, "rating": rating, "correction": correction, "role": role, "at": _stamp(at)}
        path = f"/v1/users/{_user(user_id)}/feedback" if user_id is not None else "/v1/feedback"
        return Call("POST", path, lambda r: FeedbackOut.model_validate(r.json()).model_dump(), json=body)

    def _reset_feedback(self, user_id: str) -> Call[None]:
        """Forget what a user's feedback taught (``Memory.reset_feedback``)."""
        return Call("DELETE", f"/v1/users/{_user(user_id)}/feedback", _none)

    def _forget(self, user_id: str, dry_run: bool = True, at: Any = None) -> Call[builtins.list[Decision]]:
        """Apply the forgetting policy; ``dry_run`` only says what would change (``Memory.forget``)."""
        return Call("POST", f"/v1/users/{_user(user_id)}/forget",
                    lambda r: [DecisionOut.model_validate(d).to_type() for d in r.json()],
                    json={"dry_run": dry_run, "at": _stamp(at)})

    def _get(self, user_id: str, episode_id: str) -> Call[Episode]:
        """One episode by id; ``UnknownUserError`` or ``EpisodeNotFoundError`` if absent (``Memory.get``)."""
        return Call("GET", f"/v1/users/{_user(user_id)}/episodes/{_segment(episode_id)}", _episode)

    def _list(self, user_id: str, offset: int = 0, limit: int = 50,
              session_id: str | None = None) -> Call[Page[Episode]]:
        """A page of a user's episodes in the order written (``Memory.list``); a server caps ``limit``
        at its ``max_page_limit``: follow ``next_offset``."""
        if offset < 0 or limit < 1:
            raise InvalidInputError("offset must be >= 0 and limit >= 1")
        return Call("GET", f"/v1/users/{_user(user_id)}/episodes",
                    lambda r: PageOut.model_validate(r.json()).to_type(),
                    params=_params(offset=offset, limit=limit, session_id=session_id))

    def _get_all(self, user_id: str, filters: Mapping[str, Any] | None = None, *, limit: int | None = None,
                 agent_id: str | None = None, run_id: str | None = None) -> Call[builtins.list[Episode]]:
        """A user's (or scope's) episodes in write order, those whose metadata matches ``filters`` if given,
        at most ``limit``; an unknown user has none (``Memory.get_all``)."""
        return Call("POST", f"/v1/users/{_user(user_id, agent_id, run_id)}/episodes/query",
                    lambda r: [EpisodeOut.model_validate(e).to_type() for e in r.json()],
                    json={"filters": _filters(filters), "limit": limit})

    def _count(self, user_id: str) -> Call[int]:
        """How many episodes a user has (``Memory.count``)."""
        return Call("GET", f"/v1/users/{_user(user_id)}/count", lambda r: int(r.json()["count"]))

    def _users(self) -> Call[builtins.list[str]]:
        """Every user with at least one episode (of your tenant) (``Memory.users``)."""
        return Call("GET", "/v1/users", lambda r: builtins.list(r.json()["users"]))

    def _export(self, user_id: str, destination: str | Path | IO[str] | None = None) -> Call[str | int]:
        """A user's episodes as JSON Lines: the text if no destination, else the count (``Memory.export``)."""
        def read(response: httpx.Response) -> str | int:
            text = response.text
            if destination is None:
                return text
            if isinstance(destination, (str, Path)):
                Path(destination).write_text(text, encoding="utf-8")
            else:
                destination.write(text)
            return sum(1 for line in text.split("\n") if line)

        return Call("GET", f"/v1/users/{_user(user_id)}/export", read)

    def _health(self) -> Call[dict[str, Any]]:
        """The server's health and version (``GET /healthz``)."""
        return Call("GET", "/healthz", _json)

    add, aadd = _sync(_add), _async(_add)
    import_, aimport_ = _sync(_import_), _async(_import_)
    delete, adelete = _sync(_delete), _async(_delete)
    delete_all, adelete_all = _sync(_delete_all), _async(_delete_all)
    reset, areset = _sync(_reset), _async(_reset)
    update, aupdate = _sync(_update), _async(_update)
    history, ahistory = _sync(_history), _async(_history)
    delete_user, adelete_user = _sync(_delete_user), _async(_delete_user)
    consolidate, aconsolidate = _sync(_consolidate), _async(_consolidate)
    pending, apending = _sync(_pending), _async(_pending)
    pending_since, apending_since = _sync(_pending_since), _async(_pending_since)
    profile, aprofile = _sync(_profile), _async(_profile)
    entity, aentity = _sync(_entity), _async(_entity)
    facts, afacts = _sync(_facts), _async(_facts)
    neighbours, aneighbours = _sync(_neighbours), _async(_neighbours)
    paths, apaths = _sync(_paths), _async(_paths)
    search_facts, asearch_facts = _sync(_search_facts), _async(_search_facts)
    search, asearch = _sync(_search), _async(_search)
    ask, aask = _sync(_ask), _async(_ask)
    feedback, afeedback = _sync(_feedback), _async(_feedback)
    reset_feedback, areset_feedback = _sync(_reset_feedback), _async(_reset_feedback)
    forget, aforget = _sync(_forget), _async(_forget)
    get, aget = _sync(_get), _async(_get)
    get_all, aget_all = _sync(_get_all), _async(_get_all)
    list, alist = _sync(_list), _async(_list)
    count, acount = _sync(_count), _async(_count)
    users, ausers = _sync(_users), _async(_users)
    export, aexport = _sync(_export), _async(_export)
    health, ahealth = _sync(_health), _async(_health)


def _params(**given: Any) -> dict[str, Any]:
    """Query parameters without the ``None`` ones."""
    return {k: v for k, v in given.items() if v is not None}


def _episode(response: httpx.Response) -> Episode:
    return EpisodeOut.model_validate(response.json()).to_type()


def _deleted(response: httpx.Response) -> int:
    return int(response.json()["deleted"])


def _relations(response: httpx.Response) -> builtins.list[Relation]:
    return [RelationOut.model_validate(r).to_type() for r in response.json()]


__all__ = ["Client", "ServiceError", "AuthenticationError", "RequestTooLargeError", "ServiceUnavailableError"]
