"""Tenants and API keys: a key reaches its own tenant's users only, and sees no trace of the others."""

from __future__ import annotations

import io

import httpx
import pytest
from api_contract import live_server

from memagent import EpisodeNotFoundError, Memory, TraceNotFoundError, UnknownUserError, scope
from memagent.client import AuthenticationError, Client
from memagent.server.app import create_app
from memagent.server.keys import KeyRing, hash_key

ACME, GLOBEX = "acme-key-0123456789", "globex-key-0123456789"
BOB = [{"id": "b1", "role": "bob", "text": "I live in Porto and I work at Initech.", "timestamp": "2024-01-05"},
       {"id": "b2", "role": "bob", "text": "My cat is called Miso.", "timestamp": "2024-01-06"}]


@pytest.fixture
def server(embedder, clock):
    keys = KeyRing({"acme": [hash_key(ACME)], "globex": [hash_key(GLOBEX)]})
    with Memory("memory://", embedder=embedder, clock=clock) as memory, live_server(create_app(memory, keys)) as url:
        yield memory, url


@pytest.fixture
def tenants(server):
    """Globex's bob with episodes, a profile and an answer; acme's alice; the two clients."""
    memory, url = server
    with Client(url, api_key=ACME) as acme, Client(url, api_key=GLOBEX) as globex:
        globex.add("bob", BOB, session_id="s1")
        globex.consolidate("bob")
        answer = globex.ask("bob", "Where do I live?")
        globex.add("bob", "The secret plan is to move to Madrid.", agent_id="planner")
        acme.add("alice", "I like green tea.")
        yield memory, url, acme, globex, answer.trace_id


PLANNER = scope("bob", agent_id="planner")


def test_no_key_or_a_wrong_key_is_401(server):
    _, url = server
    with httpx.Client(base_url=url) as http:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"X-API-Key": "nope"}, {"Authorization": "Basic x"}):
            response = http.get("/v1/users", headers=headers)
            assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
        assert http.post("/v1/users/bob/messages", json={"messages": ["hi"]}).status_code == 401
        assert http.get("/healthz").json()["status"] == "ok"  # health needs no key
        assert http.get("/v1/users", headers={"X-API-Key": ACME}).json() == {"users": []}
    with Client(url) as anonymous, pytest.raises(AuthenticationError):
        anonymous.users()
    with Client(url, api_key="wrong") as wrong, pytest.raises(PermissionError):
        wrong.add("bob", "hello")


def test_ids_are_stored_inside_the_tenant_and_named_outside_it(tenants):
    memory, _, acme, globex, _ = tenants
    assert memory.users() == ["acme:alice", "globex:bob", "globex:" + PLANNER]
    assert acme.users() == ["alice"] and globex.users() == ["bob", PLANNER]
    assert globex.get_all("bob", agent_id="planner")[0].user_id == PLANNER
    episode = globex.list("bob").items[0]
    assert episode.user_id == "bob" and globex.get("bob", episode.id).user_id == "bob"
    assert all(s.user_id == "bob" for s in globex.profile("bob"))
    assert all(r.user_id == "bob" for r in globex.facts("bob", "Bob"))
    assert '"user_id": "bob"' in globex.export("bob") and "globex" not in globex.export("bob")


ENDPOINTS = [  # (method, path, body) on a user named "bob", who exists in globex only
    ("GET", "/v1/users/bob/episodes", None),
    ("GET", "/v1/users/bob/count", None),
    ("GET", "/v1/users/bob/pending", None),
    ("GET", "/v1/users/bob/search?q=Where+do+I+live", None),
    ("POST", "/v1/users/bob/search", {"query": "Where do I live?"}),
    ("GET", "/v1/users/bob/profile", None),
    ("GET", "/v1/users/bob/entity?name=Bob", None),
    ("GET", "/v1/users/bob/facts?entity=Bob", None),
    ("GET", "/v1/users/bob/neighbours?entity=Bob", None),
    ("GET", "/v1/users/bob/paths?source=Bob&target=Porto", None),
    ("GET", "/v1/users/bob/facts/search?q=cat", None),
    ("POST", "/v1/users/bob/forget", {"dry_run": True}),
    ("GET", "/v1/users/bob/search?q=Where+do+I+live&filters=%7B%22topic%22%3A+%22home%22%7D", None),
    ("POST", "/v1/users/bob/search", {"query": "Where do I live?", "filters": {"role": {"$exists": False}}}),
    ("POST", "/v1/users/bob/episodes/query", None),
    ("POST", "/v1/users/bob/episodes/query", {"filters": {"topic": {"$ne": "x"}}, "limit": 5}),
    ("POST", "/v1/users/bob/episodes/delete", {"filters": {"topic": {"$ne": "x"}}}),
    ("POST", "/v1/users/bob/episodes/delete", {"filters": None}),
    ("GET", "/v1/users/bob%1Fagent%3Dplanner/count", None),
    ("POST", "/v1/users/bob%1Fagent%3Dplanner/episodes/query", {}),
]
MISSING = [  # the same, where Memory itself says the user is unknown: 404 unknown_user
    ("GET", "/v1/users/bob/export", None),
    ("GET", "/v1/users/bob/episodes/{episode}", None),
    ("DELETE", "/v1/users/bob/episodes/{episode}", None),
    ("PATCH", "/v1/users/bob/episodes/{episode}", {"text": "I live in Oslo."}),
    ("PATCH", "/v1/users/bob/episodes/{episode}", {"metadata": {"moved": True}}),
    ("GET", "/v1/users/bob/episodes/{episode}/history", None),
]


def _call(http: httpx.Client, method: str, path: str, body: object, key: str) -> httpx.Response:
    return http.request(method, path, json=body, headers={"X-API-Key": key})


def test_another_tenants_user_is_a_user_that_does_not_exist(tenants):
    memory, url, _, globex, _ = tenants
    episode = globex.list("bob").items[0].id
    with httpx.Client(base_url=url) as http:
        for method, path, body in ENDPOINTS:
            seen = _call(http, method, path, body, ACME)
            never = _call(http, method, path.replace("/bob", "/nobody-ever", 1), body, ACME)
            assert seen.status_code == never.status_code == 200, path
            assert seen.json() == never.json(), path  # exactly what a user who never existed gives
            assert not any(word in seen.text for word in ("Porto", "Miso", "Madrid")), path
        for method, path, body in MISSING:
            seen = _call(http, method, path.format(episode=episode), body, ACME)
            assert seen.status_code == 404 and seen.json()["error"]["code"] == "unknown_user", path
            assert seen.json()["error"]["message"] == "unknown user 'bob': no memory is stored for this user"
        assert _call(http, "GET", "/v1/users/bob/count", None, GLOBEX).json() == {"count": 2}  # globex's own
    assert memory.count("globex:bob") == 2 and memory.count("globex:bob\x1fagent=planner") == 1
    assert memory.history("globex:bob", episode)[-1].text == BOB[0]["text"]


def test_another_tenants_user_cannot_be_changed(tenants):
    memory, _, acme, globex, trace = tenants
    episode = globex.list("bob").items[0].id
    with pytest.raises(UnknownUserError):
        acme.get("bob", episode)
    with pytest.raises(UnknownUserError):
        acme.delete("bob", episode)
    with pytest.raises(UnknownUserError):
        acme.update("bob", episode, text="I live in Oslo.")
    with pytest.raises(UnknownUserError):
        acme.history("bob", episode)
    assert acme.get_all("bob") == [] and acme.get_all("bob", {"topic": {"$exists": False}}) == []
    assert acme.delete_all("bob") == 0 and acme.delete_all("bob", {"topic": {"$exists": False}}) == 0
    assert acme.get_all("bob", agent_id="planner") == [] and acme.delete_all("bob", agent_id="planner") == 0
    assert acme.search("bob", "Which plan?", agent_id="planner") == []
    assert acme.delete_user("bob") == 0
    assert acme.search("bob", "Where do I live?") == [] and acme.profile("bob") == []
    acme.consolidate()
    acme.forget("bob", dry_run=False)
    assert memory.count("globex:bob") == 2 and globex.profile("bob") and globex.count(PLANNER) == 1
    assert [v.version for v in globex.history("bob", episode)] == [1]
    acme.add("bob", "I live in Oslo.")  # acme's own bob, another user
    assert acme.count("bob") == 1 and globex.count("bob") == 2
    assert [h.episode.text for h in acme.search("bob", "Where do I live?")] == ["I live in Oslo."]


def test_reset_deletes_only_the_callers_tenant(tenants):
    memory, url, acme, globex, _ = tenants
    acme.add("carol", "I run on Sundays.", agent_id="coach")
    with httpx.Client(base_url=url) as http:
        for query in ("", "?confirm=false"):
            refused = http.delete("/v1/users" + query, headers={"X-API-Key": ACME})
            assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_input"
    assert acme.users() == ["alice", scope("carol", agent_id="coach")]
    assert acme.reset() == 2 and acme.users() == [] and acme.reset() == 0
    assert globex.users() == ["bob", PLANNER] and globex.count("bob") == 2 and globex.profile("bob")
    assert memory.users() == ["globex:bob", "globex:" + PLANNER]


def test_a_trace_of_another_tenant_or_user_changes_nothing(tenants):
    memory, url, acme, globex, trace = tenants
    before = (globex.count("bob"), globex.profile("bob"))
    with pytest.raises(TraceNotFoundError):
        acme.feedback(trace, "bad", correction="I live in Oslo.", user_id="bob")
    with pytest.raises(TraceNotFoundError):
        acme.feedback(trace, "bad", correction="I live in Oslo.", user_id="alice")
    with httpx.Client(base_url=url) as http:  # no user: refused on a server with keys
        response = http.post("/v1/feedback", json={"trace_id": trace, "rating": "bad"}, headers={"X-API-Key": ACME})
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_input"
    assert (globex.count("bob"), globex.profile("bob")) == before
    assert memory.count("acme:alice") == 1
    assert globex.feedback(trace, "good", user_id="bob")["user_id"] == "bob"


def test_a_trace_of_one_user_cannot_change_another_in_the_library(embedder, clock):
    with Memory("memory://", embedder=embedder, clock=clock) as memory:
        memory.add("alice", "I live in Lisbon.")
        memory.add("bob", "I live in Porto.")
        trace = memory.ask("alice", "Where do I live?").trace_id
        with pytest.raises(TraceNotFoundError):
            memory.feedback(trace, "bad", correction="I live in Oslo.", user_id="bob")
        assert memory.count("bob") == 1 and memory.count("alice") == 1
        assert memory.feedback(trace, "good", user_id="alice")["user_id"] == "alice"


def test_import_and_export_stay_inside_the_tenant(tenants):
    memory, _, acme, globex, _ = tenants
    text = globex.export("bob")
    assert acme.import_(io.StringIO(text)) and acme.count("bob") == 2  # lands in acme's own bob
    assert memory.count("globex:bob") == 2 and memory.count("acme:bob") == 2
    assert acme.import_(io.StringIO(text.replace('"user_id": "bob"', '"user_id": "globex:bob"')))
    assert memory.count("acme:globex:bob") == 2 and memory.count("globex:bob") == 2
    assert acme.import_(io.StringIO(text), user_id="carol") and acme.count("carol") == 2
    assert sorted(acme.users()) == ["alice", "bob", "carol", "globex:bob"] and globex.users() == ["bob", PLANNER]
    with pytest.raises(EpisodeNotFoundError):
        globex.delete("bob", "no-such-episode")
