"""What every route handler is given: the ``Memory``, the caller's namespace (from its API key),
the user it names (inside the caller's tenant), the limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import Depends, Path, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from memagent.errors import InvalidInputError
from memagent.memory import Memory
from memagent.server.keys import KeyRing
from memagent.server.settings import ServerLimits
from memagent.server.tenants import Namespace
from memagent.wire import ErrorOut

_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer <key>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key: `X-API-Key: <key>`")

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text} for status, text in (
        (401, "no API key, or an unknown one (`unauthorized`)"),
        (404, "unknown user, episode or trace (`unknown_user`, `episode_not_found`, `trace_not_found`)"),
        (409, "the user is locked by a long-running job (`locked`): retry"),
        (413, "request body too large (`too_large`)"),
        (422, "invalid input (`invalid_input`, `invalid_timestamp`, `invalid_import`)"),
        (503, "the storage engine failed (`storage_error`)"),
    )
}


async def memory(request: Request) -> Memory:
    found = request.app.state.memory
    if found is None:
        raise HTTPException(503, "the memory is not open")
    return found


async def limits(request: Request) -> ServerLimits:
    return request.app.state.limits


async def namespace(request: Request, bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
                    header: Annotated[str | None, Depends(_header)]) -> Namespace:
    """The caller's namespace: its key's tenant, or every user on a server without keys."""
    keys: KeyRing | None = request.app.state.keys
    if keys is None:
        space = Namespace(None)
    else:
        key = bearer.credentials if bearer is not None else header
        tenant = keys.tenant_of(key) if key else None
        if tenant is None:
            raise HTTPException(401, "a valid API key is required (Authorization: Bearer <key>, or X-API-Key)",
                                headers={"WWW-Authenticate": "Bearer"})
        space = Namespace(tenant)
    request.state.namespace = space
    return space


@dataclass(frozen=True)
class Who:
    """The user a request names: ``internal`` for ``Memory``, ``name`` as the caller knows it."""

    internal: str
    name: str


async def user(user_id: Annotated[str, Path(description="the user, as your application names it")],
               space: Annotated[Namespace, Depends(namespace)]) -> Who:
    """The user a request names, inside the caller's tenant. Another tenant's user is a user this
    tenant does not have: reads find nothing (404 where ``Memory`` raises ``UnknownUserError``)."""
    name = unquote(user_id)
    return Who(space.inside(name), name)


def check_text(text: str, what: str, limit: ServerLimits) -> str:
    if len(text) > limit.max_text_chars:
        raise InvalidInputError(f"{what} has {len(text)} characters; this server's max_text_chars is "
                                f"{limit.max_text_chars}")
    return text


def check_k(k: int, limit: ServerLimits) -> int:
    if k > limit.max_k:
        raise InvalidInputError(f"k={k} is above this server's max_k={limit.max_k}")
    return k


MemoryDep = Annotated[Memory, Depends(memory)]
LimitsDep = Annotated[ServerLimits, Depends(limits)]
SpaceDep = Annotated[Namespace, Depends(namespace)]
UserDep = Annotated[Who, Depends(user)]
