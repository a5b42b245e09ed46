"""Every error as ``{"error": {"code": ..., "message": ...}}``: memagent's own (by ``wire.ERRORS``),
FastAPI's validation errors (``invalid_input``), HTTP errors (``unauthorized``, ``too_large``,
``not_found``...), and anything unexpected (``internal``, 500, logged with its traceback)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from memagent.errors import MemagentError
from memagent.server.tenants import Namespace
from memagent.wire import DETAILS, error_code

log = logging.getLogger("memagent.server")

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "too_large",
              414: "too_large", 415: "unsupported_media_type", 422: "invalid_input", 429: "too_many_requests"}


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": details or {}}},
                        status_code=status, headers=headers)


def _namespace(request: Request) -> Namespace:
    found = getattr(request.state, "namespace", None)
    return found if isinstance(found, Namespace) else Namespace(None)


async def memagent_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MemagentError)
    code, status = error_code(exc)
    space = _namespace(request)
    details = {}
    for name in DETAILS:
        value = getattr(exc, name, None)
        if isinstance(value, str) and name == "user_id" and space.owns(value):
            value = space.outside(value)
        if isinstance(value, (str, int, float)):
            details[name] = value
    if status >= 500:
        log.warning("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return error_response(status, code, space.message(str(exc)), details)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors()[:5]:
        if error.get("type") == "json_invalid":
            problems.append(f"the body is not valid JSON ({error.get('ctx', {}).get('error', 'decode error')})")
            continue
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        problems.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
    return error_response(422, "invalid_input", "; ".join(problems) or "invalid request")


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return error_response(exc.status_code, code, message, headers=dict(exc.headers or {}))


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", "internal server error (logged on the server)")


def install(app: FastAPI) -> None:
    """Register the handlers on an app."""
    app.add_exception_handler(MemagentError, memagent_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
