"""The typed dependencies a workflow (graph) is built with: stores, embedder, model, settings.

Graphs receive a ``Deps`` and never the ``Memory`` facade, so they can be built
and run on any backend, and nothing calls back up into the facade.
"""

from __future__ import annotations

from dataclasses import dataclass

from memagent.config import Config
from memagent.embeddings import Embedder
from memagent.llm import ChatAdapter
from memagent.store.base import Backend
from memagent.tiers.cache import DerivedTiers
from memagent.tiers.episodes import Episodes


@dataclass(frozen=True)
class Deps:
    """What the workflows of one memory share."""

    backend: Backend
    episodes: Episodes
    tiers: DerivedTiers
    embedder: Embedder
    config: Config
    llm: ChatAdapter
