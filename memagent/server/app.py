"""The ASGI app: ``create_app(memory)`` around a live ``Memory``, ``app_from_env()`` for uvicorn workers.

``memagent serve --http`` runs ``uvicorn.run("memagent.server.app:app_from_env",
factory=True, workers=N)``: each worker builds the app from the environment
the command set, opens its own ``Memory`` on the data directory when it starts
(the lifespan, never at import), runs the schedule beside it, and closes it at
shutdown.

>>> from memagent import Memory                                   # doctest: +SKIP
>>> app = create_app(Memory("memory://"))                         # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8000)                 # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from memagent.config import Config, ScheduleSettings
from memagent.errors import ConfigError
from memagent.llm import chat_model
from memagent.memory import Memory
from memagent.presets import load_preset
from memagent.server import episodes, errors, inspector, recall
from memagent.server.keys import ENV_KEYS, KeyRing
from memagent.server.middleware import Limits, RawPath
from memagent.server.settings import ServerLimits
from memagent.wire import Health

log = logging.getLogger("memagent.server")

DESCRIPTION = """memagent's `Memory` over HTTP: every operation of the library, with the same
arguments and results (`memagent.Client` is the Python client).

Send an API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`. User ids
are those of your tenant: another tenant's users are, for you, users that do not
exist. A user id may name an agent's or a run's memory of a user (`memagent.scope`:
`alice%1Fagent%3Dplanner` is `alice`, agent `planner`); it stays inside your tenant
like any user id. Errors are `{"error": {"code": "...", "message": "..."}}` with a stable code.
"""

ENV_DATA_DIR = "MEMAGENT_DATA_DIR"
ENV_HOST = "MEMAGENT_HOST"
ENV_KEYS_FILE = "MEMAGENT_KEYS_FILE"
ENV_CONFIG = "MEMAGENT_CONFIG"  # a preset name or TOML file (memagent --config); empty: the defaults
ENV_LLM = "MEMAGENT_LLM"  # a chat model (memagent --llm): gguf:/path/model.gguf or provider:model; empty: none
ENV_SCHEDULE = "MEMAGENT_SCHEDULE"  # "0": no schedule; otherwise ScheduleSettings as JSON, or "1"


def is_loopback(host: str) -> bool:
    """Whether a bind address reaches only this machine (127.0.0.0/8, ::1, localhost)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def create_app(memory: Memory | Callable[[], Memory], keys: KeyRing | None = None,
               limits: ServerLimits | None = None, *, schedule: ScheduleSettings | bool = False) -> FastAPI:
    """The HTTP API over ``memory``: a live ``Memory`` (left open: the caller owns it), or a
    function that opens one when the app starts and is closed when it stops.

    ``keys``: the API keys and their tenants; ``None`` serves without keys or tenant
    prefixes (bind it to loopback only). ``schedule`` runs ``memory.start()`` while the
    app runs. Several server processes may share one data directory: each reads what
    the others committed (the store's change tokens, ``memagent.store.versions``).
    """
    limits = limits or ServerLimits()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = None
        if app.state.memory is None:
            assert callable(memory)
            opened = app.state.memory = await anyio.to_thread.run_sync(memory)
        if keys is None:
            log.warning("memagent server: no API keys: every caller reaches every user (loopback only)")
        else:
            log.info("memagent server: %d keys of %d tenants", len(keys), len(keys.tenants))
        live: Memory = app.state.memory
        await anyio.to_thread.run_sync(live.warm)  # the model and the routing prototypes, before the first request
        if schedule:
            live.start(schedule if isinstance(schedule, ScheduleSettings) else None)
        try:
            yield
        finally:
            if schedule:
                await anyio.to_thread.run_sync(live.stop)
            if opened is not None:
                await anyio.to_thread.run_sync(opened.close)
                app.state.memory = None

    app = FastAPI(title="memagent", version=_version(), description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.memory = memory if isinstance(memory, Memory) else None
    app.state.keys = keys
    app.state.limits = limits
    errors.install(app)
    app.include_router(episodes.router)
    app.include_router(recall.router)
    app.include_router(inspector.router)
    app.add_api_route("/healthz", _health, methods=["GET"], response_model=Health, tags=["service"],
                      summary="Health", description="Whether the server is up; needs no API key.")
    _docs(app)
    app.add_middleware(RawPath)  # innermost of the three
    app.add_middleware(Limits, limits=limits)
    return app


def _version() -> str:
    from memagent import __version__

    return __version__


async def _health() -> Health:
    return Health(version=_version(), pid=os.getpid())


def _docs(app: FastAPI) -> None:
    """Swagger UI at /docs: offline from the swagger-ui-bundle-v2 package when it is installed
    (Swagger UI 5, which reads OpenAPI 3.1), else from a CDN."""
    assets: dict[str, Any] = {}
    bundle = _swagger_ui()
    if bundle is not None:
        app.mount("/docs/assets", StaticFiles(directory=bundle), name="docs-assets")
        assets = {"swagger_js_url": "/docs/assets/swagger-ui-bundle.js",
                  "swagger_css_url": "/docs/assets/swagger-ui.css",
                  "swagger_favicon_url": "/docs/assets/favicon-32x32.png"}

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="memagent API", **assets)

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)


def _swagger_ui() -> Path | None:
    """The folder of an installed Swagger UI 5 or later (the module ``swagger_ui_bundle``), if any."""
    try:
        bundle = Path(str(importlib.import_module("swagger_ui_bundle").swagger_ui_path))
    except (ImportError, AttributeError):
        return None
    major = bundle.name.removeprefix("swagger-ui-").partition(".")[0]
    if not (major.isdigit() and int(major) >= 5 and (bundle / "swagger-ui-bundle.js").exists()):
        return None  # Swagger UI 4 cannot read FastAPI's OpenAPI 3.1
    return bundle


def app_from_env(environ: Mapping[str, str] | None = None) -> FastAPI:
    """The app that ``memagent serve --http`` runs in each uvicorn worker, built from the
    environment it set: ``MEMAGENT_DATA_DIR``, ``MEMAGENT_CONFIG``, ``MEMAGENT_LLM``, ``MEMAGENT_HOST``,
    ``MEMAGENT_KEYS_FILE``, ``MEMAGENT_API_KEYS``, ``MEMAGENT_SCHEDULE`` and the limits (``MEMAGENT_MAX_*``)."""
    env = os.environ if environ is None else environ
    data_dir = env.get(ENV_DATA_DIR, "memagent-data")
    keys = load_keys(env.get(ENV_KEYS_FILE) or None, env.get(ENV_KEYS) or None)
    host = env.get(ENV_HOST, "127.0.0.1")
    if keys is None and not is_loopback(host):
        raise ConfigError(f"serving {host} without API keys: give --keys FILE (or {ENV_KEYS}), or bind 127.0.0.1")
    given = env.get(ENV_SCHEDULE, "0")
    schedule: ScheduleSettings | bool = given not in ("", "0")
    if given.startswith("{"):
        schedule = ScheduleSettings.model_validate_json(given)
    config = load_preset(env[ENV_CONFIG]) if env.get(ENV_CONFIG) else Config()
    llm = env.get(ENV_LLM) or None
    if llm is not None:
        chat_model(llm)  # a bad model fails here, before the app serves
    return create_app(lambda: Memory(data_dir, config=config, llm=llm), keys, ServerLimits.from_env(env),
                      schedule=schedule)


def load_keys(path: str | Path | None, env: str | None) -> KeyRing | None:
    """The key ring of a keys file and/or an ``MEMAGENT_API_KEYS`` value; ``None`` when neither is given."""
    if path is None and env is None:
        return None
    return KeyRing.load(path, env)
