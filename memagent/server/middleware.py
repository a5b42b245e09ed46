"""ASGI middleware: size limits before anything is parsed, ids with ``/`` in paths.

``Limits`` refuses a query string past its limit (414) and a body past its
limit (413) as soon as the ``Content-Length`` says so, or, for a chunked body,
as soon as the bytes read pass it; the app then gets the body already read.
``RawPath`` routes on the path as sent, so a user id may hold ``%2F``
(the route handlers unquote each id). Processes on one data directory read
each other's writes without help from here: the store's change tokens do it
(``memagent.store.versions``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import anyio
import anyio.to_thread

from memagent.server.settings import ServerLimits

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
App = Callable[[Scope, Receive, Send], Any]

IMPORT_PATH = "/v1/import"
_SAFE = "/%:@!$&'()*+,;=-._~"
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_S = 10.0


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": {"code": "too_large", "message": message, "details": {}}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class Limits:
    """Refuse oversized query strings (414) and bodies (413) before the app reads them."""

    def __init__(self, app: App, limits: ServerLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if len(scope.get("query_string", b"")) > self.limits.max_query_string_bytes:
            return await _refuse(send, 414, f"query string longer than {self.limits.max_query_string_bytes} bytes")
        limit = self.limits.max_import_bytes if scope["path"] == IMPORT_PATH else self.limits.max_body_bytes
        headers = dict(scope.get("headers", ()))
        declared = headers.get(b"content-length")
        if declared is not None and not declared.isdigit():
            return await _refuse(send, 400, "bad Content-Length")
        if declared is not None and int(declared) > limit:
            await _drain(receive, 0)
            return await _refuse(send, 413, f"request body larger than {limit} bytes")
        if declared is None and b"transfer-encoding" not in headers:
            return await self.app(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                if message.get("more_body", False):
                    await _drain(receive, size)
                return await _refuse(send, 413, f"request body larger than {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return await self.app(scope, _replay(b"".join(chunks), receive), send)


async def _drain(receive: Receive, read: int) -> None:
    """Read and drop what is left of a refused body, so the client gets to read the refusal:
    up to ``DRAIN_BYTES`` and ``DRAIN_S``; past that the connection closes under it."""
    with anyio.move_on_after(DRAIN_S):
        while read < DRAIN_BYTES:
            message = await receive()
            read += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body", False):
                return


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # the disconnect, when it comes

    return replay


class RawPath:
    """Route on the path as sent (percent-encoded), so that ``%2F`` in an id is not a separator."""

    def __init__(self, app: App, prefix: str = "/v1/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path")
        if scope["type"] == "http" and raw and scope["path"].startswith(self.prefix):
            # in place, since the middleware outside reads the route from it; raw non-ASCII bytes quoted
            scope["path"] = quote(raw.partition(b"?")[0], safe=_SAFE)
        await self.app(scope, receive, send)
