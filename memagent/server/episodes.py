"""Routes of the episodic tier: add, list, get, update and history, query and delete by metadata,
delete a user or all of them, count, users, export and import."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Annotated
from urllib.parse import unquote

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response

from memagent.errors import ImportFormatError, InvalidInputError
from memagent.memory import Memory
from memagent.portable import read_episodes
from memagent.server.deps import ERRORS, LimitsDep, MemoryDep, SpaceDep, UserDep
from memagent.server.tenants import Namespace
from memagent.timeparse import to_datetime
from memagent.wire import (
    AddRequest,
    CountOut,
    DeletedOut,
    DeleteRequest,
    EpisodeOut,
    EpisodeVersionOut,
    IdsOut,
    PageOut,
    PendingOut,
    QueryRequest,
    ResetOut,
    UpdateRequest,
    UsersOut,
)

router = APIRouter(prefix="/v1", tags=["episodes"], responses=ERRORS)
JSON_LINES = "application/x-ndjson"


@router.post("/users/{user_id}/messages", response_model=IdsOut, summary="Add Messages")
def add(who: UserDep, body: AddRequest, memory: MemoryDep) -> IdsOut:
    """Store messages (one, or a batch in order) and return their episode ids (`Memory.add`).

    A message whose `id` is already stored for the user is not stored again: its
    episode id is returned. A bad message rejects the whole batch before anything is written.
    `infer` consolidates the user before the reply. A scoped user id (`memagent.scope`) stores
    into that agent's or run's memory of the user.
    """
    now = to_datetime(body.now) if body.now is not None else None
    return IdsOut(ids=memory.add(who.internal, body.message_dicts(), body.session_id, now=now, infer=body.infer))


@router.get("/users/{user_id}/episodes", response_model=PageOut)
def list_episodes(who: UserDep, memory: MemoryDep, limit_: LimitsDep,
                  offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1)] = 50,
                  session_id: str | None = None) -> PageOut:
    """A page of the user's episodes in the order they were written (`Memory.list`); `total` counts them all."""
    if limit > limit_.max_page_limit:
        limit = limit_.max_page_limit
    return PageOut.of(memory.list(who.internal, offset, limit, session_id), who.name)


@router.get("/users/{user_id}/episodes/{episode_id}", response_model=EpisodeOut, summary="Get Episode")
def get(who: UserDep, episode_id: str, memory: MemoryDep) -> EpisodeOut:
    """One episode by id (`Memory.get`)."""
    return EpisodeOut.of(memory.get(who.internal, unquote(episode_id)), who.name)


@router.patch("/users/{user_id}/episodes/{episode_id}", response_model=EpisodeOut, summary="Update Episode")
def update(who: UserDep, episode_id: str, body: UpdateRequest, memory: MemoryDep) -> EpisodeOut:
    """Change an episode's text and/or metadata (metadata is replaced whole) and return it as it is now
    (`Memory.update`). The old version stays in `.../history`; a new text is embedded and consolidated again."""
    episode = memory.update(who.internal, unquote(episode_id), text=body.text, metadata=body.metadata, now=body.now)
    return EpisodeOut.of(episode, who.name)


@router.get("/users/{user_id}/episodes/{episode_id}/history", response_model=list[EpisodeVersionOut],
            summary="Episode History")
def history(who: UserDep, episode_id: str, memory: MemoryDep) -> list[EpisodeVersionOut]:
    """Every version of an episode, oldest first: as added, then after each update (`Memory.history`)."""
    return [EpisodeVersionOut.of(v, who.name) for v in memory.history(who.internal, unquote(episode_id))]


@router.post("/users/{user_id}/episodes/query", response_model=list[EpisodeOut], summary="Query Episodes")
def get_all(who: UserDep, memory: MemoryDep, body: QueryRequest | None = None) -> list[EpisodeOut]:
    """The user's episodes in write order, only those whose metadata matches `filters` if given, at most
    `limit` (`Memory.get_all`). An unknown user has none."""
    body = body or QueryRequest()
    return [EpisodeOut.of(e, who.name) for e in memory.get_all(who.internal, body.filters, limit=body.limit)]


@router.post("/users/{user_id}/episodes/delete", response_model=DeletedOut, summary="Delete Episodes")
def delete_all(who: UserDep, body: DeleteRequest, memory: MemoryDep) -> DeletedOut:
    """Delete the user's episodes whose metadata matches `filters`, with what was derived from them, and
    say how many (`Memory.delete_all`). `{"filters": null}` deletes every episode, as `DELETE .../{user_id}`."""
    return DeletedOut(deleted=memory.delete_all(who.internal, body.filters))


@router.delete("/users/{user_id}/episodes/{episode_id}", status_code=204, response_class=Response,
                summary="Delete Episode")
def delete(who: UserDep, episode_id: str, memory: MemoryDep) -> Response:
    """Delete one episode, and what was derived only from it (`Memory.delete`)."""
    memory.delete(who.internal, unquote(episode_id))
    return Response(status_code=204)


@router.delete("/users/{user_id}", response_model=DeletedOut)
def delete_user(who: UserDep, memory: MemoryDep) -> DeletedOut:
    """Remove everything of the user from every tier, table and index (`Memory.delete_user`)."""
    return DeletedOut(deleted=memory.delete_user(who.internal))


@router.delete("/users", response_model=ResetOut, summary="Delete All Users")
def reset(space: SpaceDep, memory: MemoryDep,
          confirm: Annotated[bool, Query(description="must be true: every user is deleted")] = False) -> ResetOut:
    """Delete every user (`Memory.reset`), with API keys every user of your tenant only, and say how many
    there were. Refused (422) without `confirm=true`."""
    if not confirm:
        raise InvalidInputError("DELETE /v1/users deletes every user: pass confirm=true")
    if space.tenant is None:
        return ResetOut(users_deleted=memory.reset())
    mine = [user for user in memory.users() if space.owns(user)]
    for user in mine:
        memory.delete_user(user)
    return ResetOut(users_deleted=len(mine))


@router.get("/users/{user_id}/count", response_model=CountOut)
def count(who: UserDep, memory: MemoryDep) -> CountOut:
    """How many episodes the user has (`Memory.count`)."""
    return CountOut(count=memory.count(who.internal))


@router.get("/users/{user_id}/pending", response_model=PendingOut)
def pending(who: UserDep, memory: MemoryDep) -> PendingOut:
    """How many episodes wait for consolidation, and when the oldest was stored (`Memory.pending_since`)."""
    waiting, oldest = memory.pending_since(who.internal)
    return PendingOut(pending=waiting, oldest=oldest)


@router.get("/users", response_model=UsersOut)
def users(space: SpaceDep, memory: MemoryDep) -> UsersOut:
    """Every user with at least one episode (`Memory.users`); with API keys, those of your tenant."""
    return UsersOut(users=space.users(memory.users()))


@router.get("/users/{user_id}/export", response_class=Response,
            responses={200: {"content": {JSON_LINES: {}}, "description": "one episode per line"}})
def export(who: UserDep, memory: MemoryDep, space: SpaceDep) -> Response:
    """The user's episodes as JSON Lines, the format `POST /v1/import` reads (`Memory.export`)."""
    text = memory.export(who.internal)
    assert isinstance(text, str)
    if space.tenant is not None:
        text = "".join(_renamed(line, who.name) + "\n" for line in text.split("\n") if line)
    return Response(text, media_type=JSON_LINES)


def _renamed(line: str, user_id: str) -> str:
    data = json.loads(line)
    data["user_id"] = user_id
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


class _Body(io.StringIO):
    name = "request body"


@router.post("/import", response_model=IdsOut,
             openapi_extra={"requestBody": {"required": True, "content": {JSON_LINES: {"schema": {"type": "string"}}}}})
async def import_(request: Request, memory: MemoryDep, space: SpaceDep, limit: LimitsDep,
                  user_id: Annotated[str | None, Query(description="store every line under this user")] = None,
                  batch_size: Annotated[int, Query(ge=1, le=10_000)] = 500) -> IdsOut:
    """Load a JSON Lines export (`Memory.import_`); the body is checked whole before anything is written.

    Episodes keep their ids, so importing the same lines twice stores nothing new.
    With `user_id` every line goes to that user; without it each line goes to the
    user it names, inside your tenant when the server has API keys.
    """
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportFormatError("request body", 0, f"not UTF-8: {exc}") from None
    target = space.inside(user_id) if user_id is not None else None
    ids = await anyio.to_thread.run_sync(_import, memory, space, text, target, batch_size)
    return IdsOut(ids=ids)


def _import(memory: Memory, space: Namespace, text: str, target: str | None, batch_size: int) -> list[str]:
    if target is not None or space.tenant is None:
        return memory.import_(_Body(text), user_id=target, batch_size=batch_size)
    lines = [line for line in _Body(text).readlines() if line.strip()]  # as read_episodes splits them
    episodes = read_episodes(_Body(text), memory.config.max_message_chars)  # the whole body, before writing
    groups: dict[str, list[str]] = {}
    for line, episode in zip(lines, episodes):
        groups.setdefault(space.inside(episode.user_id), []).append(line)
    return [i for internal, mine in groups.items() for i in _lines(memory, mine, internal, batch_size)]


def _lines(memory: Memory, lines: Iterable[str], user_id: str, batch_size: int) -> list[str]:
    return memory.import_(_Body("".join(lines)), user_id=user_id, batch_size=batch_size)
