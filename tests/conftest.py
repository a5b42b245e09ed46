"""Shared fixtures: the real embedder, loaded once per test session; a Memory in a temp dir."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from memagent import Memory
from memagent.embeddings import default_embedder


@pytest.fixture(scope="session")
def embedder():
    emb = default_embedder()
    emb.embed(["warm up"])
    return emb


class Clock:
    """A settable clock, injected into Memory."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock():
    return Clock(datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc))


@pytest.fixture
def memory(tmp_path, embedder, clock):
    with Memory(tmp_path / "data", embedder=embedder, clock=clock) as mem:
        yield mem
