"""Fixtures of the conformance suite: every test runs once per backend of ``backends.FACTORIES``."""

from __future__ import annotations

from pathlib import Path

import pytest
from conformance.backends import DIMENSION, FACTORIES, Factory

from memagent.store.base import Backend


@pytest.fixture(params=sorted(FACTORIES))
def factory(request: pytest.FixtureRequest) -> Factory:
    return FACTORIES[request.param]


@pytest.fixture
def backend(factory: Factory, tmp_path: Path) -> Backend:
    opened = factory(tmp_path, DIMENSION)
    yield opened
    opened.close()
