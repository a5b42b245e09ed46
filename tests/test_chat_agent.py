"""The ready chat agent, its nodes and the LangChain memory tools, with the real embedder."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph

from fakes import scripted
from memagent.errors import ConfigError
from memagent.graphs import chat_agent
from memagent.graphs.chat_agent import (
    MemoryState,
    add_memory_nodes,
    build_chat_agent,
    recall_node,
    remember_node,
)
from memagent.tools import memory_tools

ROOT = Path(__file__).resolve().parents[1]


def turn(text: str, message_id: str) -> dict:
    return {"user_id": "alice", "session_id": "s1", "messages": [HumanMessage(text, id=message_id)]}


def test_recalled_memories_reach_the_prompt_quoted_as_data(memory):
    memory.add("alice", [{"role": "user", "text": "I adopted a dog named Rex", "id": "old-1"}], session_id="s0")
    model = scripted("Your dog is Rex.")
    out = build_chat_agent(memory, model).invoke(turn("What is my dog called?", "h1"))

    assert out["messages"][-1].content == "Your dog is Rex."
    assert any("I adopted a dog named Rex" in m for m in out["memories"])
    system, *conversation = model.prompts[0]
    assert isinstance(system, SystemMessage)
    assert "not instructions" in system.content
    quoted = system.content.split("<memories>")[1].split("</memories>")[0]
    assert '"I adopted a dog named Rex"' in quoted
    assert [m.content for m in conversation] == ["What is my dog called?"]


def test_a_turn_is_stored_and_a_retry_is_not_stored_twice(memory):
    agent = build_chat_agent(memory, scripted("Nice to meet Rex!"), checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t1"}}
    agent.invoke(turn("I adopted a dog named Rex", "h1"), config)
    stored = memory.list("alice").items
    assert [(e.role, e.text) for e in stored] == [("user", "I adopted a dog named Rex"),
                                                  ("assistant", "Nice to meet Rex!")]
    assert [e.source_id for e in stored] == ["h1", "h1:reply"]

    agent.invoke(turn("I adopted a dog named Rex", "h1"), config)  # the client retries the turn
    assert memory.count("alice") == 2
    build_chat_agent(memory, scripted("A new reply")).invoke(turn("I adopted a dog named Rex", "h1"))
    assert memory.count("alice") == 2  # a retry without a checkpointer, with a fresh reply


def test_recall_leaves_out_what_the_thread_already_holds(memory):
    agent = build_chat_agent(memory, scripted("Noted."), checkpointer=InMemorySaver())
    agent.invoke(turn("I adopted a dog named Rex", "h1"), {"configurable": {"thread_id": "t1"}})
    same_thread = agent.invoke(turn("What is my dog called?", "h2"), {"configurable": {"thread_id": "t1"}})
    assert not any("Rex" in m for m in same_thread["memories"])
    other_thread = agent.invoke(turn("What is my dog called?", "h3"), {"configurable": {"thread_id": "t2"}})
    assert any("Rex" in m for m in other_thread["memories"])


def test_remember_node_uses_message_ids(memory):
    remember = remember_node(memory)
    state = {"user_id": "bob", "messages": [HumanMessage("hi", id="a"), AIMessage("", id="b"),
                                            AIMessage("hello", id="c")]}
    remember(state, {})
    remember(state, {})
    stored = memory.list("bob").items
    assert [(e.text, e.source_id, e.session_id) for e in stored] == [("hi", "a", "chat"), ("hello", "a:reply", "chat")]
    assert stored[1].metadata["message_id"] == "c"


def test_an_unknown_user_recalls_nothing(memory):
    assert recall_node(memory)({"user_id": "nobody", "messages": [HumanMessage("hello?", id="x")]}, {}) == {
        "memories": []}
    model = scripted("Hello!")
    out = build_chat_agent(memory, model).invoke({"user_id": "newcomer", "messages": [("user", "hello")]})
    assert out["memories"] == [] and out["messages"][-1].content == "Hello!"
    assert "(none recalled)" in model.prompts[0][0].content
    assert memory.count("newcomer") == 2


def own_graph(state, memory, model, **kw):
    """A graph of the user's own: START -> recall -> their model node -> remember -> END."""
    builder = add_memory_nodes(StateGraph(state), memory, **kw)
    builder.add_node("model", lambda s: {"messages": [model.invoke(s["messages"])]})
    builder.add_edge(START, "recall")
    builder.add_edge("recall", "model")
    builder.add_edge("model", "remember")
    builder.add_edge("remember", END)
    return builder.compile(checkpointer=InMemorySaver())


def test_recall_into_messages_fits_a_plain_messages_graph(memory):
    memory.add("alice", [{"role": "user", "text": "I adopted a dog named Rex", "id": "old-1"},
                         {"role": "user", "text": "My sister Ana lives in Lisbon", "id": "old-2"}])
    model = scripted("ok")
    agent = own_graph(MessagesState, memory, model, into="messages")
    config = {"configurable": {"thread_id": "t1", "user_id": "alice"}}
    agent.invoke({"messages": [HumanMessage("What is my dog called?", id="h1")]}, config)
    seen = model.prompts[0]
    assert [type(m).__name__ for m in seen] == ["HumanMessage", "SystemMessage"]
    assert "not instructions" in seen[1].content and '"I adopted a dog named Rex"' in seen[1].content

    out = agent.invoke({"messages": [HumanMessage("Where does Ana live?", id="h2")]}, config)
    recalled = [m for m in out["messages"] if isinstance(m, SystemMessage)]
    assert [m.id for m in recalled] == ["memagent-memories:h2"]  # the first turn's is gone, not duplicated
    assert out["messages"][-2:] == [recalled[0], out["messages"][-1]] and "Lisbon" in recalled[0].content
    assert [m.id for m in model.prompts[1]].count("memagent-memories:h2") == 1
    assert [e.text for e in memory.list("alice").items][2:] == ["What is my dog called?", "ok",
                                                                "Where does Ana live?", "ok"]  # no memory stored


def test_memory_state_mixin_and_a_missing_key_is_refused_at_build(memory):
    memory.add("alice", [{"role": "user", "text": "I adopted a dog named Rex", "id": "old-1"}])

    class State(MessagesState, MemoryState):
        pass

    seen = []
    builder = add_memory_nodes(StateGraph(State), memory, k=2)
    builder.add_node("model", lambda s: seen.append(s["memories"]) or {"messages": [AIMessage("ok")]})
    builder.add_edge(START, "recall")
    builder.add_edge("recall", "model")
    builder.add_edge("model", "remember")
    out = builder.compile().invoke({"messages": [("user", "What is my dog called?")]},
                                   {"configurable": {"user_id": "alice"}})
    assert any("Rex" in m for m in seen[0]) and out["memories"] == seen[0]

    with pytest.raises(ConfigError, match="no 'memories' key.*MemoryState"):
        add_memory_nodes(StateGraph(MessagesState), memory)
    with pytest.raises(ConfigError, match="into must be"):
        recall_node(memory, into="prompt")
    with pytest.raises(ConfigError, match="k must be"):
        recall_node(memory, k=0)


def test_search_and_save_tools(memory):
    search, save = memory_tools(memory, "alice")
    assert [search.name, save.name] == ["search_memory", "save_memory"]
    episode_id = save.invoke({"text": "My sister Ana lives in Lisbon"})
    assert memory.get("alice", episode_id).text == "My sister Ana lives in Lisbon"
    assert "Ana lives in Lisbon" in search.invoke({"query": "Where does Ana live?", "k": 3})
    assert "user_id" not in search.args and "user_id" not in save.args
    assert "query must be" in search.invoke({"query": " "})  # errors go back to the model


def test_tools_never_cross_users(memory):
    memory.add("bob", [{"role": "user", "text": "My secret password is hunter2"}])
    search_alice, save_alice = memory_tools(memory, "alice")
    assert search_alice.invoke({"query": "secret password"}) == "No memories found."
    save_alice.invoke({"text": "I like tea"})
    assert "hunter2" not in search_alice.invoke({"query": "secret password hunter2", "k": 20})
    assert "tea" not in memory_tools(memory, "bob")[0].invoke({"query": "tea", "k": 20})


def test_graph_factory_builds_nothing_at_import(tmp_path, memory, monkeypatch):
    config = json.loads((ROOT / "langgraph.json").read_text())
    assert config["graphs"]["chat_agent"] == "./graphs/chat_agent.py:graph"
    assert callable(chat_agent.graph)
    monkeypatch.setattr(chat_agent, "_shared_memory", lambda data_dir: memory)
    agent = chat_agent.graph({"configurable": {"data_dir": str(tmp_path), "model": scripted("ok")}})
    out = agent.invoke({"messages": [("user", "hi")]}, {"configurable": {"user_id": "carol"}})
    assert out["messages"][-1].content == "ok" and memory.count("carol") == 2


def test_graph_factory_needs_a_model(monkeypatch):
    monkeypatch.delenv("MEMAGENT_CHAT_MODEL", raising=False)
    with pytest.raises(ValueError, match="no chat model"):
        chat_agent.graph({"configurable": {}})
    if importlib.util.find_spec("langchain") is None:  # a spec needs langchain's init_chat_model
        with pytest.raises(ValueError, match="pip install langchain"):
            chat_agent.graph({"configurable": {"model": "ollama:llama3.2", "data_dir": "unused"}})


@pytest.mark.slow
def test_example_runs_offline():
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "chat_agent.py")],
                          capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    recalled = [line for line in done.stdout.splitlines() if line.startswith("recalled:")]
    assert len(recalled) == 2 and "Rex" in recalled[1]  # the second turn recalls the first
