"""Storage: one contract (``Backend``), several engines.

``open_backend`` picks the engine from the data directory: ``"memory://"`` is
the in-memory backend (nothing persists), anything else a LanceDB directory or
URI (the embedded default).
"""

from __future__ import annotations

from memagent.config import Config
from memagent.store.base import Backend, Capabilities
from memagent.store.lance import SCHEMA_VERSION, LanceBackend
from memagent.store.memory import InMemoryBackend

MEMORY_URI = "memory://"

__all__ = ["Backend", "Capabilities", "InMemoryBackend", "LanceBackend", "MEMORY_URI", "SCHEMA_VERSION",
           "open_backend"]


def open_backend(config: Config, dimension: int, embedder_name: str = "") -> Backend:
    """The backend ``config.data_dir`` names, opened for vectors of ``dimension``."""
    uri = str(config.data_dir)
    if uri.startswith(MEMORY_URI):
        return InMemoryBackend(dimension, uri)
    storage = config.storage
    return LanceBackend(uri, dimension, embedder_name,
                        vector_index_min_rows=storage.vector_index_min_rows,
                        optimize_every_writes=storage.optimize_every_writes,
                        optimize_every_rows=storage.optimize_every_rows,
                        keep_versions_hours=storage.keep_versions_hours,
                        background_upkeep=storage.background_upkeep,
                        change_tokens=config.caches.change_tokens,
                        cache_bytes=(config.caches.lance_index_bytes, config.caches.lance_metadata_bytes))
