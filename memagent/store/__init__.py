"""Storage: one contract (``Backend``), several engines.

``open_backend`` picks the engine from the data directory: ``"memory://"`` is
the in-memory backend (nothing persists), ``postgresql://...`` (or
``postgres://...``) a PostgreSQL database with pgvector (``memagent[postgres]``,
``PostgresBackend``), anything else a LanceDB directory or URI (the embedded
default).
"""

from __future__ import annotations

from memagent.config import Config
from memagent.store.base import Backend, Capabilities
from memagent.store.lance import SCHEMA_VERSION, LanceBackend
from memagent.store.memory import InMemoryBackend

MEMORY_URI = "memory://"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")

__all__ = ["Backend", "Capabilities", "InMemoryBackend", "LanceBackend", "MEMORY_URI", "POSTGRES_SCHEMES",
           "SCHEMA_VERSION", "open_backend"]


def open_backend(config: Config, dimension: int, embedder_name: str = "") -> Backend:
    """The backend ``config.data_dir`` names, opened for vectors of ``dimension``."""
    uri = str(config.data_dir)
    if uri.startswith(MEMORY_URI):
        return InMemoryBackend(dimension, uri)
    storage = config.storage
    if uri.startswith(POSTGRES_SCHEMES):
        from memagent.store.postgres import PostgresBackend

        return PostgresBackend(uri, dimension, embedder_name, pool_size=storage.postgres_pool_size,
                               lock_pool_size=2 * storage.postgres_pool_size,
                               vector_index_min_rows=storage.vector_index_min_rows,
                               exact_max_rows=storage.exact_search_max_user_rows, hnsw_m=storage.hnsw_m,
                               hnsw_ef_construction=storage.hnsw_ef_construction,
                               hnsw_ef_search=storage.hnsw_ef_search)
    return LanceBackend(uri, dimension, embedder_name,
                        vector_index_min_rows=storage.vector_index_min_rows,
                        exact_max_rows=storage.exact_search_max_user_rows,
                        optimize_every_writes=storage.optimize_every_writes,
                        optimize_every_rows=storage.optimize_every_rows,
                        keep_versions_hours=storage.keep_versions_hours,
                        background_upkeep=storage.background_upkeep,
                        change_tokens=config.caches.change_tokens,
                        cache_bytes=(config.caches.lance_index_bytes, config.caches.lance_metadata_bytes))
