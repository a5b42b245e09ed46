"""memagent as a service: the HTTP API (FastAPI), its tenants and keys, and the inspector page.

``create_app(memory, keys=None, limits=None)`` builds the ASGI app over a live
``Memory``; ``memagent serve --http`` runs ``app.app_from_env`` in uvicorn workers.
"""

from __future__ import annotations

from memagent.server.keys import KeyRing
from memagent.server.settings import ServerLimits

__all__ = ["KeyRing", "ServerLimits", "create_app"]


def __getattr__(name: str) -> object:
    if name == "create_app":  # FastAPI is imported when the app is wanted, not with the settings
        from memagent.server.app import create_app

        return create_app
    raise AttributeError(f"module 'memagent.server' has no attribute {name!r}")
