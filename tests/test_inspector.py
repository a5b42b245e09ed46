"""The inspector: /ui and its assets (no other host named), the /v1/inspect JSON behind the keys
and inside the tenant, and the page itself in a real headless Chromium.

The browser test needs the ``playwright`` Python package and a Chromium: the one
``$MEMAGENT_TEST_CHROMIUM`` names, else the npm package ``@sparticuz/chromium``
(installed with npm, once per machine, in ``$MEMAGENT_CHROMIUM_PKG``, default
``~/.cache/memagent/chromium-pkg``; node unpacks its binary), else Playwright's own download
(``playwright install chromium``). Without them it is skipped, saying which is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from api_contract import live_server
from fastapi import FastAPI
from fastapi.testclient import TestClient

from memagent import Memory
from memagent.server import inspector
from memagent.server.app import create_app
from memagent.server.keys import KeyRing, hash_key

ACME, GLOBEX = "acme-key-0123456789", "globex-key-0123456789"
HOSTILE = "<img src=x onerror=alert(1)>"
SAM = [  # globex's sam: moves from Porto to Lisbon; one message carries HTML
    {"id": "m1", "role": "sam", "text": "I live in Porto and I work at Initech.", "timestamp": "2024-01-05T10:00:00Z"},
    {"id": "m2", "role": "sam", "text": "My sister Ana adopted a dog named Rex.", "timestamp": "2024-01-10T10:00:00Z"},
    {"id": "m3", "role": "sam", "text": "hi there", "timestamp": "2024-01-11T10:00:00Z"},
    {"id": "m4", "role": "sam", "text": "I moved to Lisbon last week.", "timestamp": "2024-03-08T10:00:00Z"},
    {"id": "m5", "role": "sam", "text": f"{HOSTILE} is my favourite tag", "timestamp": "2024-03-09T10:00:00Z"},
]
DORA = [  # globex's dora, whom forgetting will meet
    {"id": "d1", "role": "dora", "text": "hi there", "timestamp": "2024-01-02T10:00:00Z"},
    {"id": "d2", "role": "dora", "text": "I play chess every Sunday.", "timestamp": "2024-01-03T10:00:00Z"},
]
FAR = "2031-01-01T00:00:00Z"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def memory(embedder: Any) -> Iterator[Memory]:
    """Sam (globex) with a consolidated profile, a graph, a rated answer and a correction;
    dora (globex); alice (acme)."""
    with Memory("memory://", embedder=embedder, clock=Clock(datetime(2024, 6, 1, 12, tzinfo=timezone.utc))) as mem:
        mem.add("globex:sam", SAM, session_id="s1")
        mem.add("globex:dora", DORA, session_id="s1")
        mem.add("acme:alice", "I like green tea.")
        mem.consolidate()
        trace = mem.ask("globex:sam", "Where do I live?").trace_id
        mem.feedback(trace, "bad", correction="I live in Faro now.", user_id="globex:sam")
        yield mem


def app_over(memory: Memory, keys: KeyRing | None = None) -> FastAPI:
    """The main app with the inspector, whether or not ``create_app`` includes it already."""
    app = create_app(memory, keys)
    if not any(getattr(route, "path", None) == "/ui" or getattr(route, "original_router", None) is inspector.router
               for route in app.routes):
        app.include_router(inspector.router)
    return app


@pytest.fixture(scope="module")
def http(memory: Memory) -> Iterator[TestClient]:
    keys = KeyRing({"acme": [hash_key(ACME)], "globex": [hash_key(GLOBEX)]})
    with TestClient(app_over(memory, keys)) as client:
        yield client


def get(http: TestClient, path: str, key: str | None = GLOBEX, **params: Any) -> Any:
    response = http.get(path, params=params, headers={"Authorization": f"Bearer {key}"} if key else {})
    assert response.status_code == 200, response.text
    return response.json()


# --- the page ---------------------------------------------------------------------------

FOREIGN = re.compile(r"https?:|[\"'`(=]\s*//|@import|(?-i:\burl\()", re.I)  # another host; a CSS url()


def test_the_page_and_its_assets_are_served_without_a_key_and_name_no_other_host(http):
    page = http.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'src="ui/inspector.js"' in page.text and 'href="ui/inspector.css"' in page.text
    for name, kind in (("inspector.js", "text/javascript"), ("inspector.css", "text/css")):
        asset = http.get(f"/ui/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        assert not FOREIGN.search(asset.text), FOREIGN.search(asset.text)
    assert not FOREIGN.search(page.text), FOREIGN.search(page.text)
    assert "<script>" not in page.text and not re.search(r"<[^>]*\son\w+\s*=", page.text)  # nothing inline
    assert http.get("/ui/inspector.html").status_code == 404  # only the two assets, by name
    assert http.get("/ui/..%2Fapp.py").status_code == 404


def test_the_script_writes_stored_text_as_text_only():
    script = (Path(inspector.STATIC) / "inspector.js").read_text(encoding="utf-8")
    script = re.sub(r"\s//\s.*$", "", re.sub(r"/\*.*?\*/", "", script, flags=re.S), flags=re.M)  # code only
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "setAttribute(\"style\"", "href", "src"):
        assert sink not in script, sink
    assert "textContent" in script and "createTextNode" in script


# --- keys and tenants ------------------------------------------------------------------

INSPECT = ["", "/profile", "/graph", "/forgetting", "/feedback"]


def test_the_json_needs_a_key(http):
    for suffix in INSPECT:
        path = f"/v1/inspect/users/sam{suffix}"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}):
            response = http.get(path, headers=headers)
            assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized", path
        assert http.get(path, headers={"X-API-Key": GLOBEX}).status_code == 200, path


def test_a_key_never_sees_another_tenants_users(http):
    assert get(http, "/v1/users", ACME) == {"users": ["alice"]}
    for suffix in INSPECT:
        for name in ("sam", "globex:sam", "nobody"):
            response = http.get(f"/v1/inspect/users/{name}{suffix}", headers={"Authorization": f"Bearer {ACME}"})
            assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_user", suffix
            assert "Porto" not in response.text and "globex" not in response.text.replace("globex:sam", "")
        mine = http.get(f"/v1/inspect/users/sam{suffix}", headers={"X-API-Key": GLOBEX})
        assert mine.status_code == 200 and "globex" not in mine.text and "acme" not in mine.text, suffix
    assert get(http, "/v1/inspect/users/alice", ACME)["episodes"] == 1


def test_without_keys_every_user_is_reachable_without_one(memory):
    with TestClient(app_over(memory)) as client:
        assert "globex:sam" in get(client, "/v1/users", None)["users"]
        assert get(client, "/v1/inspect/users/globex:sam", None)["user_id"] == "globex:sam"


# --- what the page shows -------------------------------------------------------------------

def test_the_overview_counts_every_tier(http):
    seen = get(http, "/v1/inspect/users/sam")
    assert seen["episodes"] == 6 and seen["sessions"] == {"corrections": 1, "s1": 5} and seen["corrections"] == 1
    assert seen["statements"] > seen["open_statements"] >= 1 and seen["entities"] >= 4 and seen["ratings"] >= 1


def _statement(data: dict[str, Any], word: str) -> dict[str, Any]:
    return next(i for i in data["statements"] if word in i["statement"]["text"] and i["statement"]["kind"] != "summary")


def test_the_profile_at_a_date_shows_a_closed_statement_with_its_interval(http):
    then = get(http, "/v1/inspect/users/sam/profile", at="2024-02-01T00:00:00Z")
    porto, lisbon = _statement(then, "Porto"), _statement(then, "Lisbon")
    assert porto["valid"] and not lisbon["valid"]
    assert porto["statement"]["valid_from"].startswith("2024-01-05T10:00")
    assert porto["statement"]["valid_to"].startswith("2024-03-08T10:00")  # closed by the move
    assert porto["closed_by"] == lisbon["statement"]["id"]
    assert lisbon["statement"]["valid_from"].startswith("2024-03-08T10:00")
    later = get(http, "/v1/inspect/users/sam/profile", at="2024-04-01")
    assert not _statement(later, "Porto")["valid"] and _statement(later, "Lisbon")["valid"]
    valid_ids = {s["id"] for s in get(http, "/v1/users/sam/profile", at="2024-04-01")}  # the main API agrees
    assert valid_ids == {i["statement"]["id"] for i in later["statements"] if i["valid"]}


def test_the_graph_at_a_date_has_the_edges_valid_then(http):
    def facts(**at: str) -> set[str]:
        data = get(http, "/v1/inspect/users/sam/graph", **at)
        names = {n["entity"]["id"] for n in data["nodes"]}
        assert all({e["relation"]["source"], e["relation"]["target"]} <= names for e in data["edges"])
        return {e["relation"]["text"] for e in data["edges"]}

    then, now = facts(at="2024-02-01"), facts()
    assert "Sam lives in Porto" in then and "Sam lives in Lisbon" not in then and "Sam has sister Ana" in then
    assert "Sam lives in Porto" not in now and "Sam has sister Ana" in now
    small = get(http, "/v1/inspect/users/sam/graph", limit=2)
    assert len(small["nodes"]) == 2 and small["truncated"]


def test_ratings_and_corrections(http):
    seen = get(http, "/v1/inspect/users/sam/feedback")
    [correction] = seen["corrections"]
    assert correction["episode"]["text"] == "I live in Faro now." and correction["question"] == "Where do I live?"
    assert correction["answer"] and correction["episode"]["user_id"] == "sam"
    [answer] = seen["answers"]
    assert answer["trace_id"] == correction["trace_id"] and answer["question"] == "Where do I live?"
    assert any(i["delta"] < 0 for i in answer["items"]) and any(i["delta"] > 0 for i in answer["items"])
    assert all(i["text"] for i in answer["items"]) and seen["weights"]


def test_forgetting_shows_what_it_would_archive_then_what_it_archived_and_why(http, memory):
    before = get(http, "/v1/inspect/users/dora/forgetting", at=FAR)
    assert before["archived"] == [] and before["planned"]
    assert all(p["decision"]["action"] == "archive" and p["text"] and "retention" in p["decision"]["reason"]
               for p in before["planned"])
    decided = {d.item_id: d.reason for d in memory.forget("globex:dora", dry_run=False, at=FAR)}
    after = get(http, "/v1/inspect/users/dora/forgetting", at=FAR)
    assert after["archived_total"] == len(decided) and after["planned"] == []
    assert {a["item_id"]: a["reason"] for a in after["archived"]} == decided
    assert any(a["text"] == "I play chess every Sunday." and a["kind"] == "episode" for a in after["archived"])
    assert get(http, "/v1/inspect/users/dora")["archived"] == len(decided)


def test_hostile_text_comes_back_as_data(http):
    response = http.get("/v1/users/sam/episodes", headers={"X-API-Key": GLOBEX})
    assert response.headers["content-type"] == "application/json"
    assert any(e["text"] == f"{HOSTILE} is my favourite tag" for e in response.json()["items"])
    profile = get(http, "/v1/inspect/users/sam/profile")
    assert any(i["statement"]["text"].startswith(HOSTILE) for i in profile["statements"])


def test_bad_arguments_are_422_not_500(http):
    for params in ({"at": "not a time at all"}, {"limit": "0"}):
        response = http.get("/v1/inspect/users/sam/graph", params=params, headers={"X-API-Key": GLOBEX})
        assert response.status_code == 422, params


# --- in a real browser ------------------------------------------------------------------------

CHROMIUM_PKG_VERSION = "147"
UNPACK = ("const c = require('@sparticuz/chromium'); const m = c.default || c;"
          "m.executablePath().then(p => console.log(JSON.stringify({path: p, args: m.args})))")
# the package's flags for a sandbox-less container, less those that weaken the page's security
DROP = ("--headless", "--disable-web-security", "--allow-running-insecure-content")


def _chromium() -> tuple[str, list[str]]:
    """A headless Chromium that Playwright can launch, with its flags; skip saying what is missing."""
    if os.environ.get("MEMAGENT_TEST_CHROMIUM"):
        return os.environ["MEMAGENT_TEST_CHROMIUM"], ["--no-sandbox", "--no-zygote"]
    folder = Path(os.environ.get("MEMAGENT_CHROMIUM_PKG", Path.home() / ".cache" / "memagent" / "chromium-pkg"))
    node, npm = shutil.which("node"), shutil.which("npm")
    package = folder / "node_modules" / "@sparticuz" / "chromium"
    if node and npm and not package.is_dir():  # once per machine, from the npm registry (about 65 MB)
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(folder),
                        f"@sparticuz/chromium@{CHROMIUM_PKG_VERSION}"], capture_output=True, timeout=900)
    if node and package.is_dir():
        out = subprocess.run([node, "-e", UNPACK], cwd=folder, capture_output=True, text=True, timeout=300)
        if out.returncode == 0 and out.stdout.strip():
            found = json.loads(out.stdout.strip().splitlines()[-1])
            return found["path"], [a for a in found["args"] if not a.startswith(DROP)]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        own = p.chromium.executable_path
    if Path(own).exists():
        return own, []
    pytest.skip(f"no headless Chromium: set MEMAGENT_TEST_CHROMIUM, or run `npm install @sparticuz/chromium` in "
                f"{folder} (node: {node or 'not found'}), or `playwright install chromium`")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs `pip install playwright`")
    path, args = _chromium()
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path, args=args, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def test_the_page_in_a_headless_browser(memory, browser):
    keys = KeyRing({"acme": [hash_key(ACME)], "globex": [hash_key(GLOBEX)]})
    with live_server(app_over(memory, keys)) as url:
        page = browser.new_page()
        dialogs: list[str] = []

        def dialog(d: Any) -> None:
            dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", dialog)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "401" not in m.text else None)
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(url) else None)
        page.goto(f"{url}/ui")

        page.wait_for_selector("#key-form:not([hidden])")  # the server has keys: the page asks for one
        page.fill("#key", GLOBEX)
        page.click("#key-form button")
        page.wait_for_selector("#user option[value='sam']", state="attached")
        assert page.evaluate("sessionStorage.getItem('memagent.apiKey')") == GLOBEX
        assert page.locator("#user option").all_text_contents()[1:] == ["dora", "sam"]  # globex's users only

        page.select_option("#user", "sam")
        page.wait_for_selector("#timeline li.episode")
        assert page.locator("#timeline li.episode").count() == 6
        assert "6 episodes" in page.text_content("#overview")
        assert page.locator("#timeline li.episode .text").first.text_content() == "I live in Faro now."

        page.fill("#q", "dog")
        page.click("#search-form button[type=submit]")
        page.locator("#timeline-note", has_text='for "dog"').wait_for()  # (wait_for_function: the CSP forbids eval)
        assert any("Rex" in text for text in page.locator("#timeline li.episode .text").all_text_contents())
        assert "lexical" in page.locator("#timeline li.episode .signal").all_text_contents()

        page.click("#tabs [data-tab=profile]")
        page.fill("#at", "2024-02-01")
        page.dispatch_event("#at", "change")
        page.wait_for_selector("#profile tr.statement")

        def row(start: str) -> Any:  # a statement's row, by how its text starts
            what = page.locator("span.what", has_text=re.compile(start))
            return page.locator("#profile tr.statement").filter(has=what)

        # the sentence fills two slots (home and job): the home statement is the one the move replaced
        porto = row("^Sam lives in Porto").filter(has_text="replaced by")
        # the table may still be the one drawn for "now" (Porto closed): wait for the redraw at the date
        from playwright.sync_api import expect

        expect(porto.locator(".state")).to_have_text("valid", timeout=10_000)
        assert porto.locator(".state").text_content() == "valid"
        assert "2024-03-08 10:00" in porto.text_content()  # the end of its interval: the move
        assert "replaced by: Sam moved to Lisbon" in porto.text_content()
        assert row("^Sam moved to Lisbon").locator(".state").text_content() == "not yet"

        page.click("#tabs [data-tab=graph]")
        page.wait_for_selector("#graph g.node circle")
        names = page.locator("#graph g.node text").all_text_contents()
        assert {"Sam", "Porto", "Ana"} <= set(names) and "Lisbon" not in names  # at 1 February 2024
        assert page.locator("#graph g.edge line").count() >= 3
        assert page.evaluate("document.querySelector('#graph circle') instanceof SVGCircleElement")

        page.click("#tabs [data-tab=feedback]")
        page.wait_for_selector("#corrections li.correction")
        assert "I live in Faro now." in page.text_content("#corrections")

        page.click("#tabs [data-tab=timeline]")
        page.click("#clear-search")
        hostile = page.locator("#timeline li.episode .text", has_text="favourite tag")
        hostile.wait_for()
        assert hostile.text_content() == f"{HOSTILE} is my favourite tag"  # shown as text
        page.click("#tabs [data-tab=profile]")
        page.wait_for_selector("#profile tr.statement")
        assert page.evaluate("document.querySelectorAll('img').length") == 0  # nothing was injected
        assert dialogs == [] and outside == [] and errors == []
        page.close()
