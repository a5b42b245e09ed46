"""The HTTP service itself: size limits, errors as JSON (never a 500 for bad input), OpenAPI and
docs, keys files and ``memagent keys``, ``serve --http``, and processes on one data directory."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import httpx
import pytest
from api_contract import live_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memagent import ConfigError, InvalidInputError, Memory
from memagent.cli import main
from memagent.client import Client, RequestTooLargeError
from memagent.server.app import app_from_env, create_app, is_loopback
from memagent.server.keys import KeyRing, hash_key
from memagent.server.settings import ServerLimits
from pg_server import database

SMALL = ServerLimits(max_body_bytes=1000, max_import_bytes=4000, max_query_string_bytes=200, max_text_chars=50,
                     max_k=5, max_page_limit=3)


@pytest.fixture
def memory(embedder, clock):
    with Memory("memory://", embedder=embedder, clock=clock) as mem:
        yield mem


@pytest.fixture
def small(memory):
    with live_server(create_app(memory, limits=SMALL)) as url, httpx.Client(base_url=url) as http:
        yield http


def _code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


# --- limits ---------------------------------------------------------------------------

def test_a_body_past_the_limit_is_413_before_it_is_read(small):
    big = {"messages": ["x" * 1200]}
    response = small.post("/v1/users/bob/messages", json=big)
    assert response.status_code == 413 and _code(response) == "too_large"
    chunked = small.post("/v1/users/bob/messages", content=iter([b'{"messages": ["', b"x" * 1200, b'"]}']),
                         headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413 and _code(chunked) == "too_large"
    fine = small.post("/v1/users/bob/messages", content=iter([b'{"messages": ', b'["hello there"]}']),
                      headers={"Content-Type": "application/json"})
    assert fine.status_code == 200 and len(fine.json()["ids"]) == 1


def test_imports_have_their_own_larger_limit(small, memory):
    line = json.dumps({"id": "e1", "user_id": "bob", "session_id": "s", "role": "bob", "text": "y" * 1500,
                       "event_time": "2024-01-01T00:00:00Z", "ingest_time": "2024-01-01T00:00:00Z"})
    assert small.post("/v1/import", content=line.encode()).status_code == 200
    assert memory.count("bob") == 1
    too_big = small.post("/v1/import", content=(line + "\n") * 3)
    assert too_big.status_code == 413


def test_query_string_text_k_and_page_limits(small, memory):
    memory.add("bob", [f"message number {n}" for n in range(5)])
    long_query = small.get("/v1/users/bob/search", params={"q": "a" * 300})
    assert long_query.status_code == 414 and _code(long_query) == "too_large"
    long_text = small.post("/v1/users/bob/search", json={"query": "word " * 20})
    assert long_text.status_code == 422 and "max_text_chars" in long_text.json()["error"]["message"]
    assert _code(small.post("/v1/users/bob/search", json={"query": "message", "k": 6})) == "invalid_input"
    assert len(small.post("/v1/users/bob/search", json={"query": "message", "k": 5}).json()) == 5
    page = small.get("/v1/users/bob/episodes", params={"limit": 100}).json()
    assert len(page["items"]) == 3 and page["total"] == 5 and page["next_offset"] == 3


def test_the_client_raises_past_a_limit(memory):
    with live_server(create_app(memory, limits=SMALL)) as url, Client(url) as client:
        with pytest.raises(RequestTooLargeError) as caught:
            client.add("bob", "x" * 2000)
        assert isinstance(caught.value, InvalidInputError) and caught.value.status == 413
        assert client.list("bob").total == 0


def test_limits_from_the_environment():
    limits = ServerLimits.from_env({"MEMAGENT_MAX_BODY_BYTES": "1234", "MEMAGENT_MAX_K": "7", "OTHER": "x"})
    assert (limits.max_body_bytes, limits.max_k, limits.max_page_limit) == (1234, 7, 1000)
    with pytest.raises(ValueError):
        ServerLimits.from_env({"MEMAGENT_MAX_K": "0"})


# --- bad input: a 4xx with a JSON error, never a 500 ----------------------------------

BAD = [
    ("POST", "/v1/users/bob/messages", b"{not json"),
    ("POST", "/v1/users/bob/messages", []),
    ("POST", "/v1/users/bob/messages", {"messages": 123}),
    ("POST", "/v1/users/bob/messages", {"messages": [{"text": 5}]}),
    ("POST", "/v1/users/bob/messages", {"messages": [{"text": "hi", "colour": "red"}]}),
    ("POST", "/v1/users/bob/messages", {"messages": [{"text": "hi", "timestamp": "no such time"}]}),
    ("POST", "/v1/users/bob/messages", {"messages": [{"text": "hi", "timestamp": 1e30}]}),
    ("POST", "/v1/users/bob/messages", {"messages": ["   "]}),
    ("POST", "/v1/users/bob/messages", {"messages": ["hi"], "session_id": ""}),
    ("POST", f"/v1/users/{'u' * 300}/messages", {"messages": ["hi"]}),
    ("POST", "/v1/users/a%01b/messages", {"messages": ["hi"]}),
    ("POST", "/v1/users/bob/search", {"query": "x", "k": "many"}),
    ("POST", "/v1/users/bob/search", {"query": "x", "k": -1}),
    ("POST", "/v1/users/bob/search", {"query": "x", "since": "garbage"}),
    ("POST", "/v1/users/bob/search", {"query": "x", "signals": ["bogus"]}),
    ("POST", "/v1/users/bob/search", {"query": "x", "route": "sideways"}),
    ("POST", "/v1/users/bob/search", {"query": "x", "retrieval": {"candidates": -1}}),
    ("POST", "/v1/users/bob/search", {"query": 7}),
    ("POST", "/v1/users/bob/search", b'{"query": "x", "k": NaN}'),
    ("POST", "/v1/users/bob/feedback", b'{"trace_id": "t", "rating": NaN}'),
    ("POST", "/v1/users/bob/messages", b'{"messages": [{"text": "hi", "timestamp": Infinity}]}'),
    ("GET", "/v1/users/bob/search", None),
    ("POST", "/v1/users/bob/ask", {"question": ""}),
    ("POST", "/v1/users/bob/ask", {"question": "why?", "at": "not a date"}),
    ("POST", "/v1/users/bob/feedback", {"trace_id": "t", "rating": None}),
    ("POST", "/v1/users/bob/feedback", {"trace_id": "t", "rating": "meh"}),
    ("POST", "/v1/users/bob/feedback", {"trace_id": "t", "rating": 0}),
    ("POST", "/v1/users/bob/feedback", {"trace_id": "", "rating": "good"}),
    ("POST", "/v1/import", b"\xff\xfe not utf-8"),
    ("POST", "/v1/import", b"just some text\n"),
    ("POST", "/v1/import", b'{"id": "e1"}\n'),
    ("GET", "/v1/users/bob/episodes?offset=-1", None),
    ("GET", "/v1/users/bob/episodes?limit=0", None),
    ("GET", "/v1/users/bob/paths?source=a&target=b&max_hops=100", None),
    ("GET", "/v1/users/bob/entity", None),
    ("GET", "/v1/users/bob/profile?at=whenever", None),
    ("POST", "/v1/users/bob/forget", {"dry_run": "perhaps"}),
    ("GET", "/v1/no/such/route", None),
    ("PUT", "/v1/users", None),
    ("POST", "/v1/users/bob/search", {"query": "x", "filters": {"stars": {"$near": 4}}}),
    ("POST", "/v1/users/bob/search", {"query": "x", "filters": ["topic"]}),
    ("GET", "/v1/users/bob/search?q=x&filters=not-json", None),
    ("GET", "/v1/users/bob/search?q=x&filters=%5B1%5D", None),
    ("GET", "/v1/users/bob/search?q=x&filters=%7B%22%24topic%22%3A+1%7D", None),
    ("POST", "/v1/users/bob/episodes/query", {"filters": {"topic": {"$in": "food"}}}),
    ("POST", "/v1/users/bob/episodes/query", {"filters": {"topic": {"$exists": 1}}}),
    ("POST", "/v1/users/bob/episodes/query", {"limit": 0}),
    ("POST", "/v1/users/bob/episodes/query", {"limit": True}),
    ("POST", "/v1/users/bob/episodes/query", {"where": {}}),
    ("POST", "/v1/users/bob/episodes/delete", {"filters": {"": 1}}),
    ("POST", "/v1/users/bob/episodes/delete", None),
    ("PATCH", "/v1/users/bob/episodes/e1", {"text": 5}),
    ("PATCH", "/v1/users/bob/episodes/e1", {"metadata": "red"}),
    ("PATCH", "/v1/users/bob/episodes/e1", {"text": "hi", "now": "not a time"}),
    ("GET", "/v1/users/bob/episodes/e1/history", None),
    ("POST", "/v1/users/bob%1Fagent%3D/messages", {"messages": ["hi"]}),
    ("DELETE", "/v1/users", None),
    ("DELETE", "/v1/users?confirm=perhaps", None),
]


def _send(http: httpx.Client, method: str, path: str, body: object) -> httpx.Response:
    if isinstance(body, bytes):
        return http.request(method, path, content=body, headers={"Content-Type": "application/json"})
    return http.request(method, path, json=body)


def test_bad_input_is_a_4xx_json_error(small):
    for method, path, body in BAD:
        response = _send(small, method, path, body)
        assert 400 <= response.status_code < 500, (path, body, response.status_code, response.text)
        error = response.json()["error"]
        assert error["code"] and error["message"], (path, body)
    assert _code(small.get("/v1/no/such/route")) == "not_found"
    assert _code(small.put("/v1/users")) == "method_not_allowed"
    assert _code(small.get("/v1/users/bob/episodes/nope")) == "unknown_user"


def test_updates_need_a_change_and_reset_needs_confirm(small, memory):
    [episode] = memory.add("bob", {"text": "I live in Porto.", "metadata": {"topic": "home"}})
    for body in ({}, {"text": None, "metadata": None}, {"now": "2024-06-02"}):
        response = small.patch(f"/v1/users/bob/episodes/{episode}", json=body)
        assert response.status_code == 422 and _code(response) == "invalid_input", body
    for text in ("", "   ", "a\x00b"):
        response = small.patch(f"/v1/users/bob/episodes/{episode}", json={"text": text})
        assert response.status_code == 422 and _code(response) == "invalid_input", text
    assert small.patch(f"/v1/users/bob/episodes/{episode}", json={"text": "I live in Oslo."}).json()["text"] == (
        "I live in Oslo.")
    found = small.get("/v1/users/bob/search", params={"q": "Oslo", "k": 5, "filters": '{"topic": "home"}'}).json()
    assert [hit["episode"]["id"] for hit in found] == [episode]
    assert small.get("/v1/users/bob/search", params={"q": "Oslo", "k": 5, "filters": '{"topic": "work"}'}).json() == []
    from memagent.server.recall import _json_filters

    with pytest.raises(InvalidInputError):  # nested past the recursion limit: still a 422 under default limits
        _json_filters("[" * 5000)
    assert small.delete("/v1/users").status_code == 422 and memory.count("bob") == 1
    assert small.delete("/v1/users", params={"confirm": "true"}).json() == {"users_deleted": 1}
    assert memory.users() == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(endpoint=st.sampled_from(["messages", "search", "ask", "feedback", "facts/search", "forget", "episodes/query",
                                  "episodes/delete"]),
       body=st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                         | st.text(max_size=20),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                             st.sampled_from(["messages", "query", "question", "k", "text", "trace_id", "rating",
                                              "timestamp", "since", "at", "dry_run", "route", "signals",
                                              "filters", "limit"]),
                             inner, max_size=4), max_leaves=8))
def test_no_body_makes_a_500(small, endpoint, body):
    response = small.post(f"/v1/users/fuzz/{endpoint}", json=body)
    assert response.status_code < 500, (endpoint, body, response.text)


# --- docs, OpenAPI, health --------------------------------------------------------------

def test_openapi_describes_every_operation(small):
    spec = small.get("/openapi.json").json()
    expected = {"/v1/users", "/v1/users/{user_id}", "/v1/users/{user_id}/messages", "/v1/users/{user_id}/search",
                "/v1/users/{user_id}/ask", "/v1/users/{user_id}/feedback", "/v1/feedback",
                "/v1/users/{user_id}/consolidate", "/v1/consolidate", "/v1/users/{user_id}/profile",
                "/v1/users/{user_id}/facts", "/v1/users/{user_id}/facts/search", "/v1/users/{user_id}/forget",
                "/v1/users/{user_id}/episodes", "/v1/users/{user_id}/episodes/{episode_id}",
                "/v1/users/{user_id}/export", "/v1/import", "/v1/users/{user_id}/count", "/healthz",
                "/v1/users/{user_id}/episodes/{episode_id}/history", "/v1/users/{user_id}/episodes/query",
                "/v1/users/{user_id}/episodes/delete"}
    assert expected <= set(spec["paths"])
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation.get("description"), (method, path)
            if path.startswith("/v1/"):
                assert operation["responses"]["404"]["content"]["application/json"]["schema"]["$ref"].endswith(
                    "/ErrorOut"), (method, path)
    schemas = spec["components"]["schemas"]
    assert {"EpisodeOut", "SearchHitOut", "AnswerOut", "EvidenceOut", "StatementOut", "RelationOut", "FactHitOut",
            "PageOut", "AddRequest", "SearchRequest", "ErrorOut", "EpisodeVersionOut", "UpdateRequest",
            "QueryRequest", "DeleteRequest", "ResetOut"} <= set(schemas)
    assert {"get", "delete"} <= set(spec["paths"]["/v1/users"])
    assert {"get", "patch", "delete"} <= set(spec["paths"]["/v1/users/{user_id}/episodes/{episode_id}"])
    assert schemas["SearchHitOut"]["description"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])


def test_docs_work_offline(small):
    from memagent.server.app import _swagger_ui

    if _swagger_ui() is None:
        pytest.skip("swagger-ui-bundle-v2 is not installed: /docs loads Swagger UI from a CDN")
    page = small.get("/docs").text
    assert "/docs/assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    assert small.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert small.get("/docs/assets/swagger-ui.css").status_code == 200


def test_health_needs_no_key(memory):
    with live_server(create_app(memory, KeyRing({"acme": [hash_key("k")]}))) as url:
        health = httpx.get(f"{url}/healthz").json()
    assert health["status"] == "ok" and health["pid"] == os.getpid()


# --- ids, namespaces, lifespan ---------------------------------------------------------------

def test_without_keys_ids_are_those_of_the_embedded_memory(memory):
    with live_server(create_app(memory)) as url, Client(url) as client:
        for user in ("team/alice", "..", "zoë", "a b?c#d%2F"):
            [episode_id] = client.add(user, f"hello from {user}")
            assert client.get(user, episode_id).user_id == user and client.count(user) == 1
        assert sorted(client.users()) == sorted(memory.users()) == sorted(["team/alice", "..", "zoë", "a b?c#d%2F"])
        memory.add("carol", "written by the embedding app")
        assert client.list("carol").items[0].text == "written by the embedding app"


def test_the_factory_opens_the_memory_at_start_and_closes_it_at_stop(embedder):
    opened: list[Memory] = []

    def open_memory() -> Memory:
        opened.append(Memory("memory://", embedder=embedder))
        return opened[-1]

    app = create_app(open_memory, schedule=True)
    assert app.state.memory is None and not opened
    with live_server(app) as url, Client(url) as client:
        assert len(opened) == 1 and app.state.memory is opened[0]
        client.add("bob", "hello")
        assert opened[0].count("bob") == 1
    assert app.state.memory is None


@pytest.mark.parametrize("engine", ["lance", "postgres"])
def test_servers_on_one_data_directory_read_each_others_writes(engine, tmp_path, embedder, clock):
    data = tmp_path / "data" if engine == "lance" else database(tmp_path)  # separate pools and caches per Memory
    one, two = Memory(data, embedder=embedder, clock=clock), Memory(data, embedder=embedder, clock=clock)
    with one, two, live_server(create_app(one)) as url1, Client(url1) as first, \
            live_server(create_app(two)) as url2, Client(url2) as second:
        assert second.count("bob") == 0
        first.add("bob", ["I live in Porto.", "My cat is Miso."])
        assert second.count("bob") == 2 and second.users() == ["bob"]
        assert second.search("bob", "cat", k=1)[0].episode.text == "My cat is Miso."
        trace = second.ask("bob", "What is my cat called?").trace_id
        assert first.feedback(trace, "good", user_id="bob")["user_id"] == "bob"
        second.delete("bob", second.list("bob").items[0].id)
        assert first.count("bob") == 1


# --- keys files, memagent keys, serve --http ----------------------------------------------------

def test_keys_files_in_toml_json_and_the_environment(tmp_path):
    toml = tmp_path / "keys.toml"
    toml.write_text(f'# ours\nacme = ["{hash_key("a1")}", "{hash_key("a2")}"]\nglobex = ["{hash_key("g1")}"]\n')
    ring = KeyRing.load(toml, env=f"initech:{hash_key('i1')}")
    assert [ring.tenant_of(k) for k in ("a1", "a2", "g1", "i1", "nope")] == ["acme", "acme", "globex", "initech",
                                                                             None]
    as_json = tmp_path / "keys.json"
    as_json.write_text(json.dumps({"acme": [hash_key("a1")]}))
    assert KeyRing.load(as_json).tenant_of("a1") == "acme" and len(KeyRing.load(as_json)) == 1
    for text in ('acme = "not a list"', 'acme = ["abc"]', 'bad:name = ["x"]', "= broken",
                 f'acme = ["{hash_key("x")}"]\nglobex = ["{hash_key("x")}"]'):
        toml.write_text(text)
        with pytest.raises(ConfigError):
            KeyRing.load(toml)
    with pytest.raises(ConfigError):
        KeyRing.load(tmp_path / "missing.toml")
    with pytest.raises(ConfigError):
        KeyRing.load(env="no-colon-here")


def test_memagent_keys_add_prints_the_key_once_and_stores_its_digest(tmp_path, capsys):
    path = tmp_path / "keys.toml"
    assert main(["keys", "add", "acme", "--file", str(path)]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["keys", "add", "acme", "--file", str(path)]) == 0
    second = capsys.readouterr().out.strip()
    assert main(["keys", "add", "globex", "--file", str(path)]) == 0
    third = capsys.readouterr().out.strip()
    text = path.read_text()
    assert first not in text and hash_key(first) in text and hash_key(second) in text
    ring = KeyRing.load(path)
    assert (ring.tenant_of(first), ring.tenant_of(second), ring.tenant_of(third)) == ("acme", "acme", "globex")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert main(["keys", "add", "no spaces", "--file", str(path)]) == 2


def test_serving_beyond_loopback_needs_keys(tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path), "serve", "--http", "--host", "0.0.0.0"]) == 2
    assert "without API keys" in capsys.readouterr().err
    assert main(["--data-dir", str(tmp_path), "serve", "--http", "--keys", str(tmp_path / "none.toml")]) == 2
    with pytest.raises(ConfigError):
        app_from_env({"MEMAGENT_HOST": "0.0.0.0"})
    app = app_from_env({"MEMAGENT_HOST": "0.0.0.0", "MEMAGENT_API_KEYS": f"acme:{hash_key('k')}",
                        "MEMAGENT_DATA_DIR": str(tmp_path / "data"), "MEMAGENT_MAX_K": "9"})
    assert app.state.memory is None and app.state.limits.max_k == 9  # the memory opens when a worker starts
    with pytest.raises(ConfigError):  # a chat model that cannot be made fails before the app serves
        app_from_env({"MEMAGENT_LLM": "gguf:/nowhere/model.gguf", "MEMAGENT_DATA_DIR": str(tmp_path / "data")})
    assert [is_loopback(h) for h in ("127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost", "0.0.0.0", "::",
                                     "10.0.0.1", "example.org")] == [True] * 5 + [False] * 4


# --- two worker processes ------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _connection_of_worker(url: str, key: str, avoid: int | None, deadline: float) -> tuple[httpx.Client, int]:
    """A fresh connection, kept, that a worker other than ``avoid`` answers on."""
    while time.monotonic() < deadline:
        http = httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30)
        pid = int(http.get("/healthz").json()["pid"])
        if pid != avoid:
            return http, pid
        http.close()
        time.sleep(0.05)
    raise AssertionError("no connection reached the other worker")


class _Output:
    """Collects a process's output lines in a thread, so a test can wait for a line without blocking the pipe."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, times: int, deadline: float) -> None:
        while sum(text in line for line in list(self.lines)) < times:
            assert time.monotonic() < deadline, f"{text!r} not seen {times} times:\n{self.text()}"
            time.sleep(0.2)

    def text(self) -> str:
        return "".join(self.lines)

    def join(self) -> str:
        self._thread.join(timeout=60)
        return self.text()


@pytest.mark.slow
def test_serve_http_with_two_workers(tmp_path, capsys):
    keys = tmp_path / "keys.toml"
    assert main(["keys", "add", "acme", "--file", str(keys)]) == 0
    key = capsys.readouterr().out.strip()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-m", "memagent.cli", "--data-dir", str(tmp_path / "data"), "serve",
                                "--http", "--workers", "2", "--port", str(port), "--keys", str(keys)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = _Output(process)
    try:
        # each worker loads the embedder before it accepts; on a slow machine the second can take minutes
        output.wait_for("Application startup complete", 2, time.monotonic() + 420)
        deadline = time.monotonic() + 120
        writer, first = _connection_of_worker(url, key, None, deadline)
        ids = writer.post("/v1/users/bob/messages", json={"messages": ["I live in Porto.", "My cat is Miso."]})
        assert ids.status_code == 200
        reader, second = _connection_of_worker(url, key, first, deadline)
        assert second != first
        assert reader.get("/v1/users/bob/count").json() == {"count": 2}
        assert reader.get("/v1/users").json() == {"users": ["bob"]}
        hits = reader.get("/v1/users/bob/search", params={"q": "cat", "k": 1}).json()
        assert hits[0]["episode"]["text"] == "My cat is Miso."
        reader.post("/v1/users/bob/messages", json={"messages": ["I play the cello."]})
        assert writer.get("/v1/users/bob/count").json() == {"count": 3}
        writer.close()
        reader.close()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    text = output.join()
    assert process.returncode == 0, text
    assert "Application shutdown complete" in text
    with Memory(tmp_path / "data") as memory:
        assert memory.count("acme:bob") == 3



# --- the client's own errors and async forms -------------------------------------------------

def test_error_codes_round_trip():
    from memagent.wire import ERRORS, error_code, error_from

    for kind, code, status in ERRORS:
        exc = kind.__new__(kind)
        Exception.__init__(exc, "message")
        assert error_code(exc) == (code, status)
        back = error_from(code, "message", {"user_id": "bob"})
        assert type(back) is kind and str(back) == "message"
    assert error_from("unknown_user", "m", {"user_id": "bob"}).user_id == "bob"
    assert error_from("too_large", "m") is None


def test_an_unreachable_server_is_a_connection_error():
    from memagent.client import ServiceUnavailableError

    with Client(f"http://127.0.0.1:{_free_port()}", timeout=2) as client, pytest.raises(ConnectionError) as caught:
        client.users()
    assert isinstance(caught.value, ServiceUnavailableError)


def test_async_client(memory):
    import asyncio

    async def run(url: str) -> tuple[list[str], str, list[str]]:
        async with Client(url) as client:
            ids = await client.aadd("bob", ["I live in Porto.", "My cat is Miso."])
            answer = await client.aask("bob", "What is my cat called?")
            await client.afeedback(answer.trace_id, "good", user_id="bob")
            return ids, (await client.aget("bob", ids[1])).text, await client.ausers()

    with live_server(create_app(memory)) as url:
        ids, text, users = asyncio.run(run(url))
    assert len(ids) == 2 and text == "My cat is Miso." and users == ["bob"]


def test_config_reaches_the_cli_and_every_server_worker(tmp_path, embedder, capsys):
    import argparse

    from fastapi.testclient import TestClient

    from memagent import cli

    settings_file = tmp_path / "deploy.toml"
    settings_file.write_text("[storage]\npostgres_pool_size = 3\n[caches]\nderived_users = 7\n")
    config = cli.config_of(argparse.Namespace(config=str(settings_file)))
    assert config.storage.postgres_pool_size == 3 and config.caches.derived_users == 7
    app = app_from_env({"MEMAGENT_DATA_DIR": str(tmp_path / "data"), "MEMAGENT_CONFIG": str(settings_file)})
    with TestClient(app):
        assert app.state.memory.config.caches.derived_users == 7
    settings_file.write_text("[storage]\npostgres_pool_size = 0\n")
    assert main(["--data-dir", str(tmp_path / "data"), "--config", str(settings_file), "users"]) == 2
    assert "postgres_pool_size" in capsys.readouterr().err
