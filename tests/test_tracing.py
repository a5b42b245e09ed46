"""Tracing: each public call is one root run, named, with its workflows nested under it (as
LangSmith, or any LangChain tracer, shows them)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tracers.context import register_configure_hook


class Runs(BaseCallbackHandler):
    """Every chain run started: name and parent."""

    def __init__(self) -> None:
        self.started: dict[UUID, tuple[str, UUID | None]] = {}

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                       **kwargs: Any) -> None:
        self.started[run_id] = (kwargs.get("name") or "", parent_run_id)

    def roots(self) -> list[str]:
        return [name for name, parent in self.started.values() if parent is None]

    def ancestors(self, name: str) -> list[list[str]]:
        """For each run called ``name``, the names of the runs above it, nearest first."""
        chains = []
        for run_name, parent in self.started.values():
            if run_name == name:
                chain = []
                while parent is not None:
                    parent_name, parent = self.started[parent]
                    chain.append(parent_name)
                chains.append(chain)
        return chains


_HANDLER: ContextVar[Runs | None] = ContextVar("memagent_test_runs", default=None)
register_configure_hook(_HANDLER, inheritable=True)


@pytest.fixture
def runs():
    handler = Runs()
    token = _HANDLER.set(handler)
    yield handler
    _HANDLER.reset(token)


def test_one_ask_is_one_root_run_with_search_nested(memory, runs):
    memory.add("ana", ["I adopted a dog named Rex"])
    runs.started.clear()
    answer = memory.ask("ana", "What is my dog called?")
    assert runs.roots() == ["memagent.ask"]
    [chain] = runs.ancestors("memagent.search")
    assert chain == ["retrieve", "memagent.ask"]
    names = {name for name, _ in runs.started.values()}
    assert {"route", "retrieve", "answer"} <= names
    runs.started.clear()
    memory.feedback(answer.trace_id, "bad", correction="My dog is called Max.", user_id="ana")
    assert runs.roots() == ["memagent.feedback"]
    assert ["memagent.feedback"] in runs.ancestors("memagent.add")
    assert all(chain[-1] == "memagent.feedback" for chain in runs.ancestors("memagent.consolidate"))


def test_writes_and_searches_are_named_root_runs(memory, runs):
    memory.add("ana", ["I live in Porto."], infer=True)
    assert runs.roots() == ["memagent.add"]
    assert runs.ancestors("memagent.ingest") == [["memagent.add"]]
    assert runs.ancestors("memagent.consolidate")[0] == ["memagent.add"]
    runs.started.clear()
    memory.search("ana", "Porto")
    assert runs.roots() == ["memagent.search"]
