"""LangMem-style memory tools over a LangGraph store and over a Memory, with the real embedder."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.store.memory import InMemoryStore
from typing_extensions import TypedDict

from fakes import ScriptedToolModel
from memagent.errors import ConfigError
from memagent.graphs.chat_agent import recall_node
from memagent.tools import (
    MAX_K,
    NamespaceTemplate,
    create_manage_memory_tool,
    create_search_memory_tool,
    memory_tools,
)

ALICE = {"configurable": {"user_id": "alice"}}
BOB = {"configurable": {"user_id": "bob"}}


def indexed_store(embedder) -> InMemoryStore:
    return InMemoryStore(index={"dims": embedder.dimension, "embed": lambda texts: embedder.embed(texts).tolist()})


@pytest.fixture(params=["store", "memagent_store", "memory"])
def backend(request, embedder, memory):
    """The same tools over LangGraph stores (LangGraph's own, memagent's) and over a Memory,
    and how to read a memory's text back."""
    if request.param != "memory":
        if request.param == "store":
            store = indexed_store(embedder)
        else:
            store = pytest.importorskip("memagent.langgraph_store").MemagentStore(memory, user_at=1)

        def text(user, memory_id):
            item = store.get(("memories", user), memory_id)
            return item and item.value["content"]
        return store, text

    def episode_text(user, memory_id):
        try:
            return memory.get(user, memory_id).text
        except LookupError:
            return None
    return memory, episode_text


def test_create_search_update_delete(backend):
    target, text = backend
    manage, search = create_manage_memory_tool(target), create_search_memory_tool(target)
    created = manage.invoke({"action": "create", "content": "Alice's sister Ana lives in Lisbon"}, ALICE)
    assert created.startswith("created memory ")
    memory_id = created.removeprefix("created memory ")
    manage.invoke({"content": "Alice plays the cello on Sundays"}, ALICE)
    assert text("alice", memory_id) == "Alice's sister Ana lives in Lisbon"

    found = search.invoke({"query": "Where does Ana live?", "limit": 1}, ALICE)
    assert found.startswith(f"{memory_id}: [") and '"Alice\'s sister Ana lives in Lisbon"' in found
    assert len(found.splitlines()) == 1

    updated = manage.invoke({"action": "update", "id": memory_id, "content": "Ana moved to Porto"}, ALICE)
    assert updated == f"updated memory {memory_id}"  # the id stays
    assert text("alice", memory_id) == "Ana moved to Porto"
    assert "Porto" in search.invoke({"query": "Where does Ana live now?", "limit": 1}, ALICE)

    assert manage.invoke({"action": "delete", "id": memory_id}, ALICE) == f"deleted memory {memory_id}"
    assert text("alice", memory_id) is None
    assert "Porto" not in search.invoke({"query": "Ana Porto"}, ALICE)


def test_the_namespace_keeps_users_apart(backend):
    target, text = backend
    manage, search = create_manage_memory_tool(target), create_search_memory_tool(target)
    secret = manage.invoke({"content": "Bob's password is hunter2"}, BOB).split()[-1]
    manage.invoke({"content": "Alice likes green tea"}, ALICE)
    assert "hunter2" not in search.invoke({"query": "password hunter2", "limit": MAX_K}, ALICE)
    assert "hunter2" in search.invoke({"query": "password"}, BOB)
    # Alice's tools cannot reach Bob's memory by its id
    assert "no " in manage.invoke({"action": "delete", "id": secret}, ALICE)
    assert text("bob", secret) == "Bob's password is hunter2"


def test_mistakes_come_back_to_the_model(backend):
    target, _ = backend
    manage, search = create_manage_memory_tool(target), create_search_memory_tool(target)
    assert "leave out id" in manage.invoke({"action": "create", "id": "x", "content": "hi"}, ALICE)
    assert "needs the id" in manage.invoke({"action": "update", "content": "hi"}, ALICE)
    assert "needs content" in manage.invoke({"action": "create", "content": "  "}, ALICE)
    manage.invoke({"content": "Alice likes tea"}, ALICE)
    assert "no " in manage.invoke({"action": "update", "id": "no-such-id", "content": "x"}, ALICE)
    assert "query must be" in search.invoke({"query": " "}, ALICE)
    assert "unknown filter operator" in search.invoke({"query": "tea", "filter": {"a": {"$regex": "."}}}, ALICE)


def test_a_limit_above_the_maximum_is_refused_not_clamped(backend):
    target, _ = backend
    search = create_search_memory_tool(target, max_limit=3)
    for i in range(4):
        create_manage_memory_tool(target).invoke({"content": f"Alice visited city number {i}"}, ALICE)
    assert "less than or equal to 3" in search.invoke({"query": "city", "limit": 4}, ALICE)
    assert "greater than or equal to 1" in search.invoke({"query": "city", "limit": 0}, ALICE)
    assert len(search.invoke({"query": "city", "limit": 3}, ALICE).splitlines()) == 3
    schema = search.tool_call_schema.model_json_schema()["properties"]
    assert schema["limit"]["maximum"] == 3 and "1 to 3" in schema["limit"]["description"]


def test_the_model_sees_described_arguments():
    manage = create_manage_memory_tool(InMemoryStore(), actions_permitted=("create", "update"))
    schema = manage.tool_call_schema.model_json_schema()
    assert schema["properties"]["action"]["enum"] == ["create", "update"]
    assert all(schema["properties"][name].get("description") for name in ("action", "content", "id"))
    assert "delete" not in manage.description.lower().split(".")[0]
    assert "Input should be" in manage.invoke({"action": "delete", "id": "x"}, ALICE)
    search = create_search_memory_tool(InMemoryStore()).tool_call_schema.model_json_schema()
    assert set(search["properties"]) == {"query", "limit", "filter"}  # no user, no config
    assert all(p.get("description") for p in search["properties"].values())
    with pytest.raises(ConfigError, match="actions_permitted"):
        create_manage_memory_tool(InMemoryStore(), actions_permitted=("create", "forget"))


def test_filters_reach_the_store_and_the_memory(embedder, memory):
    store = indexed_store(embedder)
    store.put(("memories", "alice"), "a", {"content": "Alice loves ramen", "topic": "food"})
    store.put(("memories", "alice"), "b", {"content": "Alice loves hiking", "topic": "sport"})
    found = create_search_memory_tool(store).invoke({"query": "loves", "filter": {"topic": "food"}}, ALICE)
    assert found.startswith("a: ") and "hiking" not in found

    memory.add("alice", [{"text": "Alice loves ramen", "metadata": {"topic": "food"}},
                         {"text": "Alice loves hiking", "metadata": {"topic": "sport"}}])
    found = create_search_memory_tool(memory).invoke({"query": "loves", "filter": {"topic": {"$ne": "food"}}}, ALICE)
    assert "hiking" in found and "ramen" not in found


def test_namespace_templates():
    template = NamespaceTemplate(("org", "{org_id}", "user-{user_id}"))
    assert template({"configurable": {"org_id": "acme", "user_id": "7"}}) == ("org", "acme", "user-7")
    assert template.keys == ("org_id", "user_id")
    with pytest.raises(ConfigError, match=r"needs 'user_id' in config\['configurable'\].*\['org_id'\]"):
        template({"configurable": {"org_id": "acme", "__pregel_internal": 1}})
    for bad in (("a", "{user.id}"), ("a", "{0}"), ("a", "{user_id!r}"), ("a", "{oops"), (), ("a", "")):
        with pytest.raises(ConfigError):
            NamespaceTemplate(bad)
    assert NamespaceTemplate("notes")() == ("notes",)


def test_a_missing_placeholder_is_the_developers_error_not_the_models():
    manage = create_manage_memory_tool(InMemoryStore())
    with pytest.raises(ConfigError, match="user_id"):
        manage.invoke({"content": "hi"}, {"configurable": {}})
    with pytest.raises(ConfigError, match="no store"):  # no store given and no graph around the tool
        create_search_memory_tool(namespace=("notes",)).invoke({"query": "hi"})


class ToolCaller:
    """A fake model turn: call the tools with these arguments, once."""

    def __init__(self, calls: list[tuple[str, dict]]) -> None:
        self.calls = calls

    def __call__(self, state: MessagesState) -> dict:
        if isinstance(state["messages"][-1], ToolMessage):
            return {"messages": [AIMessage("done")]}
        calls = [{"name": name, "args": args, "id": f"call-{i}", "type": "tool_call"}
                 for i, (name, args) in enumerate(self.calls)]
        return {"messages": [AIMessage("", tool_calls=calls)]}


def agent_graph(tools, calls, store=None, context_schema=None):
    builder = StateGraph(MessagesState, context_schema=context_schema)
    builder.add_node("model", ToolCaller(calls))
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", lambda s: "tools" if s["messages"][-1].tool_calls else END)
    builder.add_edge("tools", "model")
    return builder.compile(store=store)


class UserContext(TypedDict):
    user_id: str


def test_tools_use_the_graphs_store_and_context(embedder):
    store = indexed_store(embedder)
    tools = [create_manage_memory_tool(), create_search_memory_tool()]  # no store: the graph's, at run time
    agent = agent_graph(tools, [("manage_memory", {"content": "Alice's dog is called Rex"})], store, UserContext)
    out = agent.invoke({"messages": [HumanMessage("My dog is Rex")]}, context={"user_id": "alice"})
    assert out["messages"][2].content.startswith("created memory ")
    assert [i.value["content"] for i in store.search(("memories", "alice"))] == ["Alice's dog is called Rex"]

    agent = agent_graph(tools, [("search_memory", {"query": "dog's name", "limit": 50}),
                                ("search_memory", {"query": "dog's name"})], store)
    out = agent.invoke({"messages": [HumanMessage("What is my dog called?")]}, ALICE)
    too_many, found = (m.content for m in out["messages"] if isinstance(m, ToolMessage))
    assert "less than or equal to 20" in too_many and "Rex" in found


def test_tool_memories_are_what_the_chat_nodes_recall(memory):
    create_manage_memory_tool(memory).invoke({"content": "Alice is allergic to peanuts"}, ALICE)
    recalled = recall_node(memory)({"messages": [HumanMessage("Can I eat peanut butter?", id="h1")]}, ALICE)
    assert any("allergic to peanuts" in m for m in recalled["memories"])


def test_bound_tools_refuse_k_above_the_maximum(memory):
    search, save = memory_tools(memory, "alice")
    save.invoke({"text": "I like tea"})
    assert f"less than or equal to {MAX_K}" in search.invoke({"query": "tea", "k": MAX_K + 1})
    assert "tea" in search.invoke({"query": "tea", "k": MAX_K})
    schema = search.tool_call_schema.model_json_schema()["properties"]
    assert schema["k"]["maximum"] == MAX_K and schema["query"]["description"]
    assert save.tool_call_schema.model_json_schema()["properties"]["text"]["description"]


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
def test_a_react_agent_on_memagent_store_stores_updates_and_recalls_across_threads(memory):
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.prebuilt import create_react_agent

    from memagent.langgraph_store import MemagentStore

    def plan(text: str, results: list[str]):
        if text.startswith("Remember: "):
            return None if results else ("manage_memory", {"content": text.removeprefix("Remember: ")})
        if text.startswith("Correct: "):  # find the memory, then update it by the id the search showed
            if not results:
                return "search_memory", {"query": text.removeprefix("Correct: ")}
            if len(results) == 1:
                memory_id = results[0].split(":", 1)[0]
                return "manage_memory", {"action": "update", "id": memory_id,
                                         "content": text.removeprefix("Correct: ")}
            return None
        return None if results else ("search_memory", {"query": text, "limit": 1})

    store = MemagentStore(memory, user_at=1)
    agent = create_react_agent(ScriptedToolModel(plan=plan), [create_manage_memory_tool(), create_search_memory_tool()],
                               store=store, checkpointer=InMemorySaver())
    run = lambda text, thread: agent.invoke(  # noqa: E731
        {"messages": [HumanMessage(text)]}, {"configurable": {"thread_id": thread, "user_id": "alice"}})

    assert run("Remember: my sister Ana lives in Lisbon", "t1")["messages"][-1].content.startswith("created memory")
    run("Remember: I play tennis on Fridays", "t1")
    updated = run("Correct: my sister Ana lives in Porto now", "t2")
    assert updated["messages"][-1].content.startswith("updated memory")
    answer = run("Where does my sister live?", "t3")
    assert "Porto" in answer["messages"][-1].content and "Lisbon" not in answer["messages"][-1].content
    assert len(answer["messages"]) == 4  # thread t3 started empty: nothing of the others came along
    [item] = [i for i in store.search(("memories", "alice"), limit=10) if "sister" in i.value["content"]]
    assert item.value["content"] == "my sister Ana lives in Porto now"
    [sister] = [e for e in memory.get_all("alice") if "sister" in e.text]
    assert [v.text for v in memory.history("alice", sister.id)] == [
        "my sister Ana lives in Lisbon", "my sister Ana lives in Porto now"]  # the update kept the old version
    assert memory.count("alice") == 2 and run("Where does my sister live?", "t4")["messages"][-1].content
