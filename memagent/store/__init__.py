"""Storage engines. LanceDB is the one engine: embedded by default, a URI to scale."""

from memagent.store.lance import SCHEMA_VERSION, LanceStore

__all__ = ["LanceStore", "SCHEMA_VERSION"]
