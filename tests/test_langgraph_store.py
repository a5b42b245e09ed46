"""``MemagentStore`` against LangGraph's own store tests, plus what is memagent's own.

Ported (rewritten, not copied) from langchain-ai/langgraph at f09cfe8:
``libs/checkpoint-postgres/tests/test_store.py`` (batch ops, basic ops, search,
namespace boundaries and metacharacters, vector search with filters, pagination,
edge cases, update, operation-level fields, non-ASCII), ``libs/checkpoint/tests/
test_store.py`` (list_namespaces with prefix/suffix/wildcards/max_depth/pagination,
namespace validation) and ``libs/checkpoint-sqlite/tests/test_store.py`` and
``test_async_store.py`` (search_items, filter value safety, numeric and boolean
filters, hyphen/digit keys, case sensitivity, async twins). Queries written for
LangGraph's character-count fake embedder ("bbbbluuu" for "blue") are worded for
the real embedder here; assertions on exact cosine values become assertions on
ranking. Skipped, with the reason in each skip: TTL, scores equal to one
distance function, and tests of LangGraph's own helpers and batching wrapper.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Annotated, Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import InjectedStore, create_react_agent
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)
from typing_extensions import TypedDict

from memagent import Memory
from memagent.errors import ConfigError, InvalidInputError, MemagentError, UnsupportedError
from memagent.langgraph_store import STORE_KEY, InvalidNamespace, MemagentStore, namespace_of, user_of


@pytest.fixture
def memory(tmp_path, embedder):
    """A Memory on the real clock: updated_at must move between two puts."""
    with Memory(tmp_path / "data", embedder=embedder) as mem:
        yield mem


@pytest.fixture
def store(memory):
    return MemagentStore(memory)


def _namespaces(store: MemagentStore, prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
    return {item.namespace for item in store.search(prefix, limit=100)}


# --- batch (postgres test_batch_*) -------------------------------------------------
def test_batch_order(store):
    store.put(("test", "foo"), "key1", {"data": "value1"})
    store.put(("test", "bar"), "key2", {"data": "value2"})
    results = store.batch([
        GetOp(("test", "foo"), "key1"),
        PutOp(("test", "bar"), "key2", {"data": "value2"}),
        SearchOp(("test",), filter={"data": "value1"}, limit=10, offset=0),
        ListNamespacesOp(match_conditions=None, max_depth=None, limit=10, offset=0),
        GetOp(("test",), "key3"),
    ])
    assert isinstance(results[0], Item) and results[0].value == {"data": "value1"} and results[0].key == "key1"
    assert results[1] is None
    assert [i.key for i in results[2]] == ["key1"]
    assert set(results[3]) == {("test", "foo"), ("test", "bar")}
    assert results[4] is None

    reordered = store.batch([
        SearchOp(("test",), filter=None, limit=5, offset=0),
        GetOp(("test", "bar"), "key2"),
        ListNamespacesOp(match_conditions=None, max_depth=None, limit=5, offset=0),
        PutOp(("test",), "key3", {"data": "value3"}),
        GetOp(("test", "foo"), "key1"),
        GetOp(("test",), "key3"),  # ops run in order: a get sees a put of the same batch
    ])
    assert len(reordered[0]) == 2
    assert reordered[1].value == {"data": "value2"}
    assert len(reordered[2]) == 2
    assert reordered[3] is None
    assert reordered[4].value == {"data": "value1"}
    assert reordered[5].value == {"data": "value3"}


def test_batch_get_put_and_delete_ops(store):
    assert store.batch([PutOp(("test",), "key1", {"data": "value1"}), PutOp(("test",), "key2", {"data": "value2"}),
                        PutOp(("test",), "key3", None)]) == [None, None, None]
    results = store.batch([GetOp(("test",), "key1"), GetOp(("test",), "key2"), GetOp(("test",), "key3")])
    assert [r.key if r else None for r in results] == ["key1", "key2", None]
    assert results[0].value == {"data": "value1"}


def test_batch_search_ops(store):
    for namespace, key, value in [(("test", "foo"), "key1", {"data": "value1", "tag": "a"}),
                                  (("test", "bar"), "key2", {"data": "value2", "tag": "a"}),
                                  (("test", "baz"), "key3", {"data": "value3", "tag": "b"})]:
        store.put(namespace, key, value)
    tagged, first_two, foo = store.batch([
        SearchOp(("test",), filter={"tag": "a"}), SearchOp(("test",), limit=2), SearchOp(("test", "foo"))])
    assert sorted(i.key for i in tagged) == ["key1", "key2"]
    assert len(first_two) == 2
    assert [i.namespace for i in foo] == [("test", "foo")]


def test_batch_list_namespaces_ops(store):
    data = [("test", "documents", "public"), ("test", "documents", "private"), ("test", "images", "public"),
            ("prod", "documents", "public")]
    for n, namespace in enumerate(data):
        store.put(namespace, f"doc{n}", {"content": "a document"})
    everything, shallow, public = store.batch([
        ListNamespacesOp(), ListNamespacesOp(max_depth=2),
        ListNamespacesOp(match_conditions=(MatchCondition("suffix", ("public",)),))])
    assert sorted(everything) == sorted(data)
    assert shallow == [("prod", "documents"), ("test", "documents"), ("test", "images")]
    assert sorted(public) == sorted(ns for ns in data if ns[-1] == "public")


def test_a_bad_op_rejects_the_whole_batch(store):
    with pytest.raises(InvalidInputError):
        store.batch([PutOp(("test",), "ok", {"v": 1}), SearchOp(("test",), filter={"v": {"$near": 1}})])
    with pytest.raises(InvalidInputError):
        store.batch([PutOp(("test",), "ok", {"v": 1}), PutOp(("test",), "bad", {"v": float("nan")})])
    assert store.get(("test",), "ok") is None


# --- basic ops -------------------------------------------------------------------------
def test_basic_store_ops(store):
    namespace = ("test", "documents")
    store.put(namespace, "doc1", {"title": "Test Document", "content": "Hello, World!"})
    item = store.get(namespace, "doc1")
    assert (item.namespace, item.key, item.value) == (namespace, "doc1",
                                                      {"title": "Test Document", "content": "Hello, World!"})

    store.put(namespace, "doc1", {"title": "Updated Document", "content": "Hello, Updated!"})
    updated = store.get(namespace, "doc1")
    assert updated.value == {"title": "Updated Document", "content": "Hello, Updated!"}
    assert updated.updated_at > item.updated_at
    assert updated.created_at == item.created_at

    assert store.get(("test", "other_documents"), "doc1") is None
    store.delete(namespace, "doc1")
    assert store.get(namespace, "doc1") is None
    store.delete(namespace, "doc1")  # deleting what is gone is a no-op


def test_list_namespaces(store):
    namespaces = [("test", "documents", "public"), ("test", "documents", "private"), ("test", "images", "public"),
                  ("test", "images", "private"), ("prod", "documents", "public"), ("prod", "documents", "private")]
    for namespace in namespaces:
        store.put(namespace, "dummy", {"content": "dummy"})
    assert sorted(store.list_namespaces()) == sorted(namespaces)
    assert len(store.list_namespaces(prefix=("test",))) == 4
    assert sorted(store.list_namespaces(suffix=("public",))) == sorted(n for n in namespaces if n[-1] == "public")
    assert all(len(ns) <= 2 for ns in store.list_namespaces(max_depth=2))
    assert len(store.list_namespaces(limit=3)) == 3
    for namespace in namespaces:
        store.delete(namespace, "dummy")
    assert store.list_namespaces() == []  # a namespace without items is no namespace


def test_list_namespaces_prefix_suffix_wildcards_and_pages(store):
    namespaces = [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f"), ("a", "c", "f"),
                  ("b", "a", "f"), ("users", "123"), ("users", "456", "settings"), ("admin", "users", "789")]
    for n, namespace in enumerate(namespaces):
        store.put(namespace, f"id_{n}", {"data": f"value_{n:02d}"})
    ab = [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f")]
    assert store.list_namespaces(prefix=("a", "b")) == ab
    assert store.list_namespaces(suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]
    assert store.list_namespaces(prefix=("a",), suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a", "b"), max_depth=3) == [("a", "b", "c"), ("a", "b", "d"), ("a", "b", "f")]
    assert store.list_namespaces(prefix=("a", "b"), limit=2) == ab[:2]
    assert store.list_namespaces(prefix=("a", "b"), offset=2) == ab[2:]
    assert store.list_namespaces(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(suffix=("*", "f")) == [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]
    assert store.list_namespaces(prefix=("users", "*")) == [("users", "123"), ("users", "456", "settings")]
    assert store.list_namespaces(prefix=("*", "users"), suffix=("*", "settings")) == []
    assert store.list_namespaces(prefix=("nonexistent",)) == []
    assert store.list_namespaces(prefix=("users", "123")) == [("users", "123")]
    assert store.list_namespaces(max_depth=2) == [("a", "b"), ("a", "c"), ("admin", "users"), ("b", "a"),
                                                  ("users", "123"), ("users", "456")]


def test_list_namespaces_pagination_and_empty_store(store):
    assert store.list_namespaces() == []
    for n in range(12):
        store.put(("namespace", f"sub_{n:02d}"), f"id_{n:02d}", {"data": n})
    assert store.list_namespaces(prefix=("namespace",), limit=5) == [("namespace", f"sub_{n:02d}") for n in range(5)]
    assert store.list_namespaces(prefix=("namespace",), limit=5, offset=10) == [("namespace", "sub_10"),
                                                                                 ("namespace", "sub_11")]


def test_namespace_validation(store):
    doc = {"foo": "bar"}
    for bad in [(), ("the", "thing.about"), ("some", "fun", ""), ("langgraph", "foo")]:
        with pytest.raises(InvalidNamespaceError) as raised:
            store.put(bad, "foo", doc)
        assert isinstance(raised.value, InvalidInputError)  # memagent's error, LangGraph's kind
        with pytest.raises(InvalidNamespace):
            asyncio.run(store.aput(bad, "foo", doc))
    with pytest.raises(InvalidNamespace):
        store.get(("a.b",), "k")
    with pytest.raises(InvalidNamespace):
        store.batch([GetOp(("a.b",), "k")])  # checked past the public methods too
    with pytest.raises(InvalidNamespace):
        store.batch([PutOp((), "k", doc)])
    store.put(("foo", "langgraph", "foo"), "bar", doc)
    assert store.get(("foo", "langgraph", "foo"), "bar").value == doc
    assert store.search(("foo", "langgraph", "foo"), query="bar")[0].value == doc
    store.batch([PutOp(("langgraph", "foo"), "bar", doc)])  # as in LangGraph: only the public put refuses it
    assert store.search(("langgraph", "foo"))[0].value == doc


def test_bad_arguments_raise_memagent_errors(store, memory):
    store.put(("test",), "k", {"v": 1})
    for call in [lambda: store.search(("test",), filter={"v": {"$regex": "x"}}),
                 lambda: store.search(("test",), limit=-1),
                 lambda: store.list_namespaces(offset=-1),
                 lambda: store.put(("test",), "k", {"v": object()}),
                 lambda: store.put(("test",), "k", {"v": 1}, index="v"),
                 lambda: store.put(("x",) * 200, "k", {"v": 1})]:  # too long for a memagent user id
        with pytest.raises(MemagentError):
            call()
    with pytest.raises(ConfigError):
        MemagentStore(memory, index={"dims": 384, "embed": "openai:text-embedding-3-small"})
    assert store.search(("test",), limit=0) == []


# --- search without a query ----------------------------------------------------------
def test_search(store):
    data = [(("test", "docs"), "doc1", {"title": "First Doc", "author": "Alice", "tags": ["important"]}),
            (("test", "docs"), "doc2", {"title": "Second Doc", "author": "Bob", "tags": ["draft"]}),
            (("test", "images"), "img1", {"title": "Image 1", "author": "Alice", "tags": ["final"]})]
    for namespace, key, value in data:
        store.put(namespace, key, value)
    assert [i.key for i in store.search(("test",))] == ["img1", "doc2", "doc1"]  # newest updated_at first
    assert all(i.score is None for i in store.search(("test",)))
    assert {i.namespace for i in store.search(("test", "docs"))} == {("test", "docs")}
    assert sorted(i.key for i in store.search(("test",), filter={"author": "Alice"})) == ["doc1", "img1"]
    assert [i.key for i in store.search(("test",), filter={"tags": ["draft"]})] == ["doc2"]
    assert len(store.search(("test",), limit=2)) == 2
    assert [i.key for i in store.search(("test",), offset=2)] == ["doc1"]
    store.put(("test", "docs"), "doc1", {"title": "First Doc, revised", "author": "Alice"})
    assert [i.key for i in store.search(("test",))][0] == "doc1"


def test_search_pages_are_disjoint(store):
    base = "test_search_items"
    for namespace, value in [((base, "documents", "user1"), {"author": "John Doe"}),
                             ((base, "documents", "user2"), {"author": "Jane Smith"}),
                             ((base, "reports", "department1"), {"author": "John Doe"}),
                             ((base, "reports", "department2"), {"author": "Alice Johnson"})]:
        store.put(namespace, f"item_{namespace[-1]}", value)
    assert {i.namespace[1] for i in store.search((base, "reports"))} == {"reports"}
    first, second = store.search((base,), limit=2), store.search((base,), limit=2, offset=2)
    assert len(first) == len(second) == 2 and not {i.key for i in first} & {i.key for i in second}
    assert len(store.search((base,), filter={"author": "John Doe"})) == 2


def test_search_namespace_segment_boundary_and_empty_prefix(store):
    for namespace in [("foo",), ("foo", "child"), ("foo", "child", "deep"), ("foobar",), ("foobar", "baz"), ("foo2",)]:
        store.put(namespace, "k", {"v": 1})
    assert _namespaces(store, ("foo",)) == {("foo",), ("foo", "child"), ("foo", "child", "deep")}
    assert _namespaces(store, ("foobar",)) == {("foobar",), ("foobar", "baz")}
    assert _namespaces(store, ("foo", "child")) == {("foo", "child"), ("foo", "child", "deep")}
    assert _namespaces(store, ("foo2",)) == {("foo2",)}
    assert _namespaces(store, ("fo",)) == set()
    assert len(_namespaces(store, ())) == 6


def test_metacharacters_case_and_newlines_in_labels_are_literal(store):
    labels = ["user_1", "userX1", "a%b", "axxb", "star*", "starX", "q?m", "br[ack]et", "O'Brien", "a/b", "a%2Fb"]
    for label in labels:
        store.put((label,), "k", {"label": label})
        store.put((label, "child"), "k", {"label": label})
    for label in labels:
        assert _namespaces(store, (label,)) == {(label,), (label, "child")}
        assert set(store.list_namespaces(prefix=(label,))) == {(label,), (label, "child")}
        assert store.get((label,), "k").value == {"label": label}
    store.put(("Foo",), "k", {"v": "upper"})
    store.put(("foo",), "k", {"v": "lower"})
    assert _namespaces(store, ("foo",)) == {("foo",)}
    store.put(("users", "alice"), "k", {"v": 1})
    store.put(("users", "alice\n"), "k", {"v": 2})
    assert store.list_namespaces(suffix=("alice",)) == [("users", "alice")]
    assert store.list_namespaces(prefix=("users", "alice")) == [("users", "alice")]
    assert store.get(("users", "alice\n"), "k").value == {"v": 2}


def test_list_namespaces_segment_boundary(store):
    for namespace in [("foo",), ("foo", "child"), ("foobar",), ("foobar", "baz"), ("uid", "users", "alice"),
                      ("uid", "users", "malice"), ("uid", "a", "b", "alice")]:
        store.put(namespace, "k", {"v": 1})
    assert set(store.list_namespaces(prefix=("foo",))) == {("foo",), ("foo", "child")}
    assert set(store.list_namespaces(suffix=("alice",))) == {("uid", "users", "alice"), ("uid", "a", "b", "alice")}
    assert store.list_namespaces(prefix=("uid", "*", "alice")) == [("uid", "users", "alice")]
    assert len(store.list_namespaces(prefix=("uid",))) == 3


def test_filter_values_are_literal_and_operators_compare(store):
    store.put(("docs",), "doc1", {"access": "public", "title": "Public Document"})
    store.put(("docs",), "doc2", {"access": "private", "title": "O'Brien's Document"})
    for value in ["public' OR '1'='1", "public'; --", "public\x00' OR '1'='1", "''''"]:
        assert store.search(("docs",), filter={"access": value}) == []
    assert [i.key for i in store.search(("docs",), filter={"title": "O'Brien's Document"})] == ["doc2"]
    assert store.search(("docs",), filter={"access') = 'public' OR '1'='1": "x"}) == []

    for n, (price, active) in enumerate([(10, True), (20, False), (30, True), (-10, True)]):
        store.put(("items",), f"item{n}", {"price": price, "active": active, "access-level": n, "user": {"9a": n}})
    count = lambda f: len(store.search(("items",), filter=f))  # noqa: E731
    assert count({"price": {"$gt": 15}}) == 2
    assert count({"price": {"$lt": float("inf")}}) == count({"price": {"$gt": float("-inf")}}) == 4
    assert count({"price": {"$eq": float("nan")}}) == 0
    assert count({"price": {"$lt": 10**100}}) == 4
    assert [i.key for i in store.search(("items",), filter={"price": {"$lt": 0}})] == ["item3"]
    assert count({"price": {"$ne": 10}}) == count({"price": {"$gte": 20}}) + 1 == 3
    assert count({"price": {"$lte": 10}, "active": True}) == 2
    assert count({"active": False}) == 1
    assert count({"access-level": 2}) == count({"user.9a": 2}) == 1


# --- search with a query (vector tests, on memagent's hybrid ranking) -----------------
def test_query_ranks_the_relevant_item_first(store):
    for key, value in [("doc1", {"text": "short text"}), ("doc2", {"text": "a much longer text document"}),
                       ("doc3", {"text": "the longest text document here"}), ("doc4", {"description": "birds"}),
                       ("doc5", {"content": "my cat sleeps on the sofa"}), ("doc6", {"body": "tax forms"})]:
        store.put(("test",), key, value)
    results = store.search(("test",), query="long text document")
    assert {"doc2", "doc3"} <= {r.key for r in results[:3]}
    assert store.search(("test",), query="Where does the cat sleep?")[0].key == "doc5"
    assert all(r.score is not None for r in results)
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_query_after_update_and_index_false(store):
    store.put(("test",), "doc1", {"text": "zany zebra Xerxes"})
    store.put(("test",), "doc2", {"text": "something about dogs"})
    store.put(("test",), "doc3", {"text": "text about birds"})
    initial = store.search(("test",), query="Zany Xerxes")
    assert initial[0].key == "doc1"
    store.put(("test",), "doc1", {"text": "new text about the weather"})
    after = store.search(("test",), query="Zany Xerxes")
    assert next(r.score for r in after if r.key == "doc1") < initial[0].score
    assert store.search(("test",), query="the weather")[0].key == "doc1"

    store.put(("test",), "doc4", {"text": "new text about the weather"}, index=False)
    assert "doc4" not in {r.key for r in store.search(("test",), query="new text about the weather", limit=10)}
    assert "doc4" in {r.key for r in store.search(("test",))}  # listed, filtered and got still


def test_query_with_filters(store):
    for key, value in [("doc1", {"text": "red apple", "color": "red", "score": 4.5}),
                       ("doc2", {"text": "red car", "color": "red", "score": 3.0}),
                       ("doc3", {"text": "green apple", "color": "green", "score": 4.0}),
                       ("doc4", {"text": "blue car", "color": "blue", "score": 3.5})]:
        store.put(("test",), key, value)
    results = store.search(("test",), query="apple", filter={"color": "red"})
    assert [r.key for r in results] == ["doc1", "doc2"]
    results = store.search(("test",), query="car", filter={"color": "red"})
    assert [r.key for r in results] == ["doc2", "doc1"]
    results = store.search(("test",), query="blue", filter={"score": {"$gt": 3.2}})
    assert len(results) == 3 and results[0].key == "doc4"
    results = store.search(("test",), query="apple", filter={"score": {"$gte": 4.0}, "color": "green"})
    assert [r.key for r in results] == ["doc3"]


def test_query_filter_over_fetches_to_fill_the_limit(store):
    for n in range(30):
        store.put(("test",), f"doc{n:02d}", {"text": f"note number {n} about gardening", "keep": n % 10 == 0})
    results = store.search(("test",), query="gardening", filter={"keep": True}, limit=3)
    assert sorted(r.key for r in results) == ["doc00", "doc10", "doc20"]


def test_query_pagination_and_edge_cases(store):
    for n in range(5):
        store.put(("test",), f"doc{n}", {"text": f"test document number {n}"})
    page1 = store.search(("test",), query="test", limit=2)
    page2 = store.search(("test",), query="test", limit=2, offset=2)
    assert len(page1) == len(page2) == 2 and not {r.key for r in page1} & {r.key for r in page2}
    assert len(store.search(("test",), query="test", limit=10)) == 5
    assert len(store.search(("test",), query="")) == 5  # an empty query lists
    assert all(r.score is None for r in store.search(("test",), query=None))
    assert len(store.search(("test",), query="test " * 100)) == 5
    assert len(store.search(("test",), query="test!@#$%^&*()")) == 5


def test_query_across_namespaces_keeps_the_prefix(store):
    store.put(("users", "ana", "memories"), "m1", {"content": "Ana's dog is called Rex"})
    store.put(("users", "ana", "notes"), "n1", {"content": "Buy dog food"})
    store.put(("users", "bo", "memories"), "m1", {"content": "Bo's dog is called Fido"})
    assert {r.namespace for r in store.search(("users", "ana"), query="dog")} == {("users", "ana", "memories"),
                                                                                ("users", "ana", "notes")}
    assert len(store.search(("users",), query="dog")) == 3


def test_index_fields_of_the_store_and_of_put(memory):
    store = MemagentStore(memory, index={"fields": ["key0", "key1", "key3"]})
    store.put(("test",), "doc1", {"key1": "penguins in Antarctica", "key2": "chocolate cake", "key3": "ice"})
    store.put(("test",), "doc2", {"key0": "stock market", "key1": "bonds", "key2": "penguins", "key3": "cash"})
    assert store.search(("test",), query="penguins on the ice")[0].key == "doc1"
    assert store.search(("test",), query="stock market investments")[0].key == "doc2"
    text_of = {e.source_id: e.text for e in memory.list("test").items}
    assert "chocolate" not in text_of["lgstore:doc1"]  # key2 is not indexed

    store.put(("test",), "doc3", {"key0": "mountain", "key1": "trail"}, index=["key1"])  # put's fields win
    assert memory.get("test", memory.list("test").items[-1].id).text == "trail"
    store.put(("test",), "doc4", {"other": "nothing to index"})  # no configured field: listed, not queried
    store.put(("test",), "doc5", {"key0": "hhh", "key1": "iii"}, index=False)
    assert {r.key for r in store.search(("test",), query="nothing to index")} == {"doc1", "doc2", "doc3"}
    assert len(store.search(("test",))) == 5
    assert store.index_config == {"fields": ["key0", "key1", "key3"]}


def test_default_text_is_content_or_text_else_json(store, memory):
    store.put(("t",), "a", {"content": "I like green tea", "tags": ["drink"]})
    store.put(("t",), "b", {"text": "Porto is my home"})
    store.put(("t",), "c", {"kind": "preference", "food": "sushi"})
    texts = {e.metadata[STORE_KEY]["key"]: e.text for e in memory.list("t").items}
    assert texts == {"a": "I like green tea", "b": "Porto is my home", "c": '{"kind":"preference","food":"sushi"}'}


def test_non_ascii(store):
    texts = ["这是中文", "これは日本語です", "이건 한국어야", "Это русский", "यह रूसी है"]
    for n, text in enumerate(texts, 1):
        store.put(("user_123", "memories"), str(n), {"text": text})
    for n, text in enumerate(texts, 1):
        assert store.search(("user_123", "memories"), query=text)[0].key == str(n)


@pytest.mark.skip(reason="asserts scores equal to one distance function of LangGraph's fake embedder "
                         "(cosine / inner product / l2); memagent's score is its fused hybrid score")
def test_scores():
    pass


@pytest.mark.skip(reason="TTL: MemagentStore declares supports_ttl = False (items live until deleted, memagent's "
                         "forgetting archives but never removes); test_ttl_is_refused covers the contract")
def test_store_ttl():
    pass


@pytest.mark.skip(reason="tests LangGraph's AsyncBatchedBaseStore wrapper (dedup, cancellation) and "
                         "get_text_at_path, not a backend")
def test_async_batch_store_deduplication_and_text_paths():
    pass


def test_ttl_is_refused(store):
    assert store.supports_ttl is False
    with pytest.raises(UnsupportedError) as raised:
        store.put(("test",), "k", {"v": 1}, ttl=5)
    assert isinstance(raised.value, NotImplementedError)
    with pytest.raises(UnsupportedError):
        store.batch([PutOp(("test",), "k", {"v": 1}, ttl=5.0)])
    store.put(("test",), "k", {"v": 1}, ttl=None)
    assert store.get(("test",), "k", refresh_ttl=True).value == {"v": 1}


# --- async twins (sqlite test_async_store) ----------------------------------------------
def test_async_twins_and_abatch_order(store):
    async def go() -> list[Any]:
        await store.aput(("test", "foo"), "key1", {"data": "value1"})
        await store.aput(("test", "bar"), "key2", {"data": "value2"})
        ordered = await store.abatch([GetOp(("test", "foo"), "key1"), PutOp(("test",), "key3", {"data": "value3"}),
                                      SearchOp(("test",), filter={"data": "value1"}), ListNamespacesOp(),
                                      GetOp(("test",), "key4")])
        found = await store.asearch(("test",), query="value2")
        spaces = await store.alist_namespaces(prefix=("test",))
        await store.adelete(("test", "foo"), "key1")
        return [ordered, found, spaces, await store.aget(("test", "foo"), "key1")]

    ordered, found, spaces, gone = asyncio.run(go())
    assert ordered[0].value == {"data": "value1"} and ordered[1] is None and ordered[4] is None
    assert [i.key for i in ordered[2]] == ["key1"] and len(ordered[3]) == 3
    assert found[0].key == "key2"
    assert spaces == [("test",), ("test", "bar"), ("test", "foo")]
    assert gone is None


def test_abatch_does_not_block_the_event_loop(store):
    async def go() -> tuple[int, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        before = ticks
        await store.abatch([PutOp(("test",), f"k{n}", {"content": f"a note about topic {n}"}) for n in range(5)])
        ticker.cancel()
        return before, ticks

    before, after = asyncio.run(go())
    assert after > before + 5


# --- memagent's own ----------------------------------------------------------------------
def test_namespace_ids_are_reversible_and_memory_sees_the_items(store, memory):
    for labels in [("memories", "alice"), ("a/b", "c"), ("a", "b/c"), ("x%2Fy",), ("tab\there",)]:
        assert namespace_of(user_of(labels)) == labels
    assert user_of(("memories", "alice")) == "memories/alice"
    assert user_of(("a/b", "c")) != user_of(("a", "b/c"))
    assert namespace_of("no.periods") is None
    store.put(("memories", "alice"), "m1", {"content": "I adopted a dog named Rex"})
    hit = memory.search("memories/alice", "What is my dog called?")[0]
    assert hit.episode.text == "I adopted a dog named Rex"
    assert hit.episode.metadata[STORE_KEY]["key"] == "m1"
    assert memory.search("memories/bob", "dog") == []


def test_user_at_joins_the_users_own_memory(memory):
    store = MemagentStore(memory, user_at=1)
    memory.add("alice", [{"role": "alice", "text": "I moved to Porto last year", "id": "chat1"}])
    store.put(("memories", "alice"), "m1", {"content": "Alice is allergic to peanuts"})
    store.put(("prefs", "alice"), "m1", {"content": "Alice likes window seats"})  # same key, other label: apart
    store.put(("memories", "bob"), "m1", {"content": "Bob is allergic to cats"})
    assert memory.users() == ["alice", "bob"]
    assert store.get(("memories", "alice"), "m1").value == {"content": "Alice is allergic to peanuts"}
    assert store.get(("prefs", "alice"), "m1").value == {"content": "Alice likes window seats"}
    assert store.list_namespaces() == [("memories", "alice"), ("memories", "bob"), ("prefs", "alice")]
    found = store.search(("memories", "alice"), query="Where does Alice live? Any allergies?")
    assert [(r.namespace, r.key) for r in found] == [(("memories", "alice"), "m1")]  # chat turns are not items
    assert {r.namespace for r in store.search(("memories",), query="allergy")} == {("memories", "alice"),
                                                                                  ("memories", "bob")}
    assert "peanuts" in " ".join(h.episode.text for h in memory.search("alice", "allergic"))
    with pytest.raises(InvalidNamespace):
        store.put(("memories",), "k", {"content": "no user label"})
    store.delete(("prefs", "alice"), "m1")
    assert store.get(("memories", "alice"), "m1") is not None and memory.count("alice") == 2


def test_put_again_updates_the_episode_and_keeps_its_history(store, memory):
    store.put(("t",), "k", {"content": "my favourite colour is blue"})
    first = store.get(("t",), "k")
    [episode] = memory.list("t").items
    store.put(("t",), "k", {"content": "my favourite colour is green"})
    assert [e.id for e in memory.list("t").items] == [episode.id]  # Memory.update: the same episode
    assert [v.text for v in memory.history("t", episode.id)] == ["my favourite colour is blue",
                                                                 "my favourite colour is green"]
    assert store.get(("t",), "k").value == {"content": "my favourite colour is green"}
    assert store.get(("t",), "k").created_at == first.created_at
    assert memory.search("t", "favourite colour")[0].episode.text == "my favourite colour is green"


def test_put_again_without_memory_update_deletes_then_adds(tmp_path, embedder):
    class Older(Memory):
        update = None  # type: ignore[assignment]  # a Memory from before update()

    with Older(tmp_path / "data", embedder=embedder) as memory:
        store = MemagentStore(memory)
        store.put(("t",), "k", {"content": "first"})
        first = store.get(("t",), "k")
        store.put(("t",), "k", {"content": "second"})
        [episode] = memory.list("t").items
        assert episode.text == "second" and memory.count("t") == 1
        again = store.get(("t",), "k")
        assert again is not None and again.value == {"content": "second"} and again.created_at == first.created_at
        assert again.updated_at > first.updated_at


def test_delete_removes_the_episode_and_values_are_copies(store, memory):
    store.put(("t",), "k", {"content": "my favourite colour is green"})
    store.put(("t",), "other", {"content": "something else"})
    store.delete(("t",), "k")
    assert [e.metadata[STORE_KEY]["key"] for e in memory.list("t").items] == ["other"]
    store.put(("t",), "k" * 300, {"content": "a long key is digested"})
    assert store.get(("t",), "k" * 300).key == "k" * 300
    returned = store.get(("t",), "other")
    returned.value["content"] = "mutated by the caller"
    assert store.get(("t",), "other").value == {"content": "something else"}


# --- in graphs -------------------------------------------------------------------------
class _Notes(TypedDict, total=False):
    text: str
    found: list[str]


def test_state_graph_nodes_use_the_store(store):
    def remember(state: _Notes, *, store: BaseStore) -> _Notes:
        store.put(("notes", "sam"), str(uuid.uuid5(uuid.NAMESPACE_URL, state["text"])), {"content": state["text"]})
        return {}

    def recall(state: _Notes) -> _Notes:
        return {"found": [i.value["content"] for i in get_store().search(("notes", "sam"), query=state["text"])]}

    graph = (StateGraph(_Notes).add_node("remember", remember).add_node("recall", recall)
             .add_edge(START, "remember").add_edge("remember", "recall").add_edge("recall", END)
             .compile(store=store))
    graph.invoke({"text": "Sam's sister Ana lives in Lisbon"})
    out = graph.invoke({"text": "Sam plays the cello on Sundays"})
    assert out["found"][0] == "Sam plays the cello on Sundays" and len(out["found"]) == 2
    assert store.get(("notes", "sam"), str(uuid.uuid5(uuid.NAMESPACE_URL, "Sam plays the cello on Sundays")))


class ToolCallingModel(BaseChatModel):
    """A real chat model that calls ``save_memory`` for "Remember ..." and ``recall`` for a question,
    then answers with what the tool returned."""

    @property
    def _llm_type(self) -> str:
        return "tool-calling-fake"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ToolCallingModel:
        return self

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            reply = AIMessage(f"From memory: {last.content}")
        else:
            text = str(last.content)
            name, args = ("save_memory", {"text": text.removeprefix("Remember: ")}) if text.startswith("Remember") \
                else ("recall", {"query": text})
            reply = AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"call-{len(messages)}"}])
        return ChatResult(generations=[ChatGeneration(message=reply)])


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")  # asked for by name: LangGraph's prebuilt agent
def test_react_agent_saves_in_one_thread_and_recalls_in_another(memory):
    store = MemagentStore(memory, user_at=1)

    @tool
    def save_memory(text: str, store: Annotated[BaseStore, InjectedStore()]) -> str:
        """Save a fact about the user."""
        store.put(("memories", "alice"), str(uuid.uuid5(uuid.NAMESPACE_URL, text)), {"content": text})
        return "saved"

    @tool
    def recall(query: str, store: Annotated[BaseStore, InjectedStore()]) -> str:
        """Recall what is known about the user."""
        return "; ".join(i.value["content"] for i in store.search(("memories", "alice"), query=query, limit=1))

    agent = create_react_agent(ToolCallingModel(), [save_memory, recall], store=store, checkpointer=InMemorySaver())
    saved = agent.invoke({"messages": [HumanMessage("Remember: my sister Ana lives in Lisbon")]},
                         {"configurable": {"thread_id": "1"}})
    agent.invoke({"messages": [HumanMessage("Remember: I play tennis on Fridays")]},
                 {"configurable": {"thread_id": "1"}})
    assert saved["messages"][-1].content == "From memory: saved"
    answer = agent.invoke({"messages": [HumanMessage("Where does my sister live?")]},
                          {"configurable": {"thread_id": "2"}})
    assert answer["messages"][-1].content == "From memory: my sister Ana lives in Lisbon"
    assert len(answer["messages"]) == 4  # thread 2 started empty: nothing of thread 1 came along
    assert memory.count("alice") == 2

