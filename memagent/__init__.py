"""memagent: lifelong, personal, LLM-optional memory for LLM assistants.

>>> from memagent import Memory                      # doctest: +SKIP
>>> memory = Memory("./memagent-data")               # doctest: +SKIP
>>> memory.add("alice", "I adopted a dog named Rex")  # doctest: +SKIP
>>> memory.search("alice", "What is my dog called?")[0].episode.text  # doctest: +SKIP
'I adopted a dog named Rex'
>>> memory.consolidate("alice"); memory.ask("alice", "What is my dog called?").text  # doctest: +SKIP
'Rex'
"""

from typing import TYPE_CHECKING

from memagent.config import (
    AnswerSettings,
    Config,
    ConsolidationSettings,
    FeedbackSettings,
    ForgettingSettings,
    RetrievalSettings,
    ScheduleSettings,
    StorageSettings,
)
from memagent.embeddings import Embedder, SentenceTransformerEmbedder, default_embedder
from memagent.errors import (
    ConfigError,
    EmbedderMismatchError,
    EpisodeNotFoundError,
    ImportFormatError,
    InvalidInputError,
    JobError,
    LockTimeout,
    MemagentError,
    NotFoundError,
    StorageError,
    TimestampError,
    TraceNotFoundError,
    UnknownUserError,
    UnsupportedError,
)
from memagent.extraction import IMAGE_CAPTION
from memagent.memory import Memory
from memagent.presets import available_presets, load_preset
from memagent.store import Backend, InMemoryBackend, LanceBackend
from memagent.tiers.episodic import scope
from memagent.types import (
    Answer,
    Category,
    Entity,
    Episode,
    EpisodeVersion,
    Evidence,
    FactHit,
    Message,
    Page,
    Relation,
    Route,
    SearchHit,
    Signal,
    Statement,
    TimeRange,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from memagent.client import Client as Client  # the type; the module loads on first use
    from memagent.langgraph_store import MemagentStore as MemagentStore

# Imported on first use: Client needs httpx (the server extra); MemagentStore loads langgraph's store.
_LAZY = {"Client": "memagent.client", "MemagentStore": "memagent.langgraph_store"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'memagent' has no attribute {name!r}")


__all__ = [
    "Memory", "Config", "RetrievalSettings", "StorageSettings", "ConsolidationSettings", "AnswerSettings",
    "ScheduleSettings", "ForgettingSettings", "FeedbackSettings", "load_preset", "available_presets",
    "Embedder", "SentenceTransformerEmbedder", "default_embedder",
    "Episode", "Message", "Page", "SearchHit", "Signal", "TimeRange",
    "Statement", "Entity", "Relation", "Category", "FactHit", "Route", "Answer", "Evidence",
    "MemagentError", "InvalidInputError", "TimestampError", "ImportFormatError",
    "NotFoundError", "UnknownUserError", "EpisodeNotFoundError",
    "ConfigError", "EmbedderMismatchError", "StorageError", "TraceNotFoundError", "UnsupportedError",
    "LockTimeout", "JobError", "Backend", "InMemoryBackend", "LanceBackend", "IMAGE_CAPTION",
    "EpisodeVersion", "scope", "MemagentStore",
]
