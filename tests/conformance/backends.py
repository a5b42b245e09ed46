"""The backends the conformance suite runs against: add one factory here and the suite runs on it.

A factory takes a folder (for backends that persist) and the vector dimension,
and returns an open backend; calling it again on the same folder reopens the
same data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from memagent.store import InMemoryBackend, LanceBackend
from memagent.store.base import Backend
from pg_server import database

DIMENSION = 8
Factory = Callable[[Path, int], Backend]

FACTORIES: dict[str, Factory] = {
    "memory": lambda folder, dim: InMemoryBackend(dim),
    "lance": lambda folder, dim: LanceBackend(folder / "lance", dim),
    "postgres": lambda folder, dim: _postgres(folder, dim),
}


def _postgres(folder: Path, dim: int) -> Backend:
    from memagent.store.postgres import PostgresBackend

    return PostgresBackend(database(folder), dim, pool_size=2, lock_pool_size=4)
