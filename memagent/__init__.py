"""memagent: lifelong, personal, LLM-optional memory for LLM assistants.

>>> from memagent import Memory                      # doctest: +SKIP
>>> memory = Memory("./memagent-data")               # doctest: +SKIP
>>> memory.add("alice", "I adopted a dog named Rex")  # doctest: +SKIP
>>> memory.search("alice", "What is my dog called?")[0].episode.text  # doctest: +SKIP
'I adopted a dog named Rex'
"""

from memagent.config import Config, RetrievalSettings, StorageSettings
from memagent.embeddings import Embedder, SentenceTransformerEmbedder, default_embedder
from memagent.errors import (
    ConfigError,
    EmbedderMismatchError,
    EpisodeNotFoundError,
    ImportFormatError,
    InvalidInputError,
    MemagentError,
    NotFoundError,
    StorageError,
    TimestampError,
    UnknownUserError,
)
from memagent.memory import Memory
from memagent.types import Episode, Message, Page, SearchHit, Signal, TimeRange

__version__ = "0.1.0"

__all__ = [
    "Memory", "Config", "RetrievalSettings", "StorageSettings",
    "Embedder", "SentenceTransformerEmbedder", "default_embedder",
    "Episode", "Message", "Page", "SearchHit", "Signal", "TimeRange",
    "MemagentError", "InvalidInputError", "TimestampError", "ImportFormatError",
    "NotFoundError", "UnknownUserError", "EpisodeNotFoundError",
    "ConfigError", "EmbedderMismatchError", "StorageError",
]
