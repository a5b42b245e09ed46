"""``langgraph dev`` runs the app of ``langgraph.json``: no blocking call in the event loop, and its schemas.

The LangGraph server imports the graph module at startup (in a worker
thread), turns on BlockBuster, then calls the factory ``graph(config)`` for
every run inside its event loop and awaits the graph there. These tests do
the same, with BlockBuster set up as ``langgraph-runtime-inmem`` sets it up,
the real embedder and LanceDB in a temp dir, and a fake chat model.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import warnings
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage

from fakes import scripted

blockbuster = pytest.importorskip("blockbuster")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def app(monkeypatch):
    """The module and factory that ``langgraph.json`` names, loaded as the server loads them
    (langgraph_api.graph._graph_from_spec: a module named after the path, put in sys.modules)."""
    path, _, attr = json.loads((ROOT / "langgraph.json").read_text())["graphs"]["chat_agent"].rpartition(":")
    name = path.replace("/", "__").replace(".py", "").replace(" ", "_").lstrip(".")
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module, getattr(module, attr)


@pytest.fixture
def server_blockbuster():
    """BlockBuster as ``langgraph dev`` turns it on (langgraph_runtime_inmem.queue._enable_blockbuster)."""
    bb = blockbuster.BlockBuster(excluded_modules=[])
    bb.functions["os.path.abspath"].can_block_in("inspect.py", "getmodule")
    for module, func in (("uvicorn/lifespan/on.py", "startup"), ("logging/__init__.py", "emit"),
                         ("logging/__init__.py", "flush")):
        bb.functions["io.TextIOWrapper.write"].can_block_in(module, func)
    allowed = ["os.stat", "os.listdir", "os.remove", "io.BufferedReader.read", "io.BufferedWriter.write",
               "io.TextIOWrapper.read", "io.TextIOWrapper.write", "threading.Lock.acquire"]
    for name in [*allowed, *(f for f in bb.functions if f.startswith("os.path."))]:
        if (function := bb.functions.pop(name, None)) is not None:
            function.deactivate()
    bb.activate()
    try:
        yield
    finally:
        bb.deactivate()


def test_blockbuster_catches_what_the_old_factory_did(tmp_path, server_blockbuster):
    from memagent import Memory

    async def open_memory_in_the_loop():
        Memory(tmp_path / "data")

    with pytest.raises(blockbuster.BlockingError):
        asyncio.run(open_memory_in_the_loop())


def test_runs_block_nothing_in_the_event_loop(tmp_path, app, server_blockbuster):
    module, factory = app
    model = scripted("Noted.")
    settings = {"data_dir": str(tmp_path / "data"), "model": model, "user_id": "alice"}

    async def two_runs():
        outs = []
        for thread, (text, message_id) in enumerate([("I adopted a dog named Rex", "h1"),
                                                     ("What is my dog called?", "h2")]):
            config = {"configurable": {**settings, "thread_id": f"t{thread}"}}
            agent = factory(config)  # per run, in the loop, as the server calls it
            outs.append(await agent.ainvoke({"messages": [HumanMessage(text, id=message_id)]}, config))
        spec_app = factory({"configurable": {**settings, "model": "ollama:llama3.2"}})  # a spec: resolved lazily
        return outs, spec_app

    (first, second), spec_app = asyncio.run(two_runs())
    assert first["messages"][-1].content == "Noted."
    assert any("I adopted a dog named Rex" in m for m in second["memories"])  # the real memory, across runs
    assert '"I adopted a dog named Rex"' in model.prompts[1][0].content
    assert spec_app is not None and module._memories[settings["data_dir"]].count("alice") == 4


def test_schemas_the_server_shows(app):
    _, factory = app
    app = factory({"configurable": {"model": scripted("ok"), "data_dir": "unused"}})
    inputs = app.get_input_jsonschema()["properties"]
    assert {"messages", "user_id", "session_id"} <= set(inputs) and "memories" not in inputs
    assert "memories" in app.get_output_jsonschema()["properties"]
    context = app.get_context_jsonschema()["properties"]
    assert {"data_dir", "model", "k", "user_id"} <= set(context)
    assert context["k"]["maximum"] == 20 and all(p.get("description") for p in context.values())
    with warnings.catch_warnings():  # the server still reads `configurable` through config_schema
        warnings.simplefilter("ignore")
        configurable = app.config_schema().model_fields["configurable"].annotation
    assert configurable.__name__ == "ChatContext"
