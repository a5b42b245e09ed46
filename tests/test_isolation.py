"""One user's memory is never visible to another, in any tier, index or cache: generated users
and content, every read path. A fast run by default; the slow run generates many more cases
and prints a summary with the counts of inputs and leaks (which must be 0)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from memagent import Memory, scope
from pg_server import database

WORDS = ["zephyr", "quokka", "obsidian", "marzipan", "tundra", "xylem", "juniper", "gondola", "saffron", "bivouac"]
USER_IDS = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=12)
TEMPLATES = ["My favourite food is {w}.", "I live in {w} with my sister Ana.", "My dog is called {w}.",
             "I work at {w} as a baker.", "Last week I went to {w} with Joe."]


def _token(n: int) -> str:
    return f"{WORDS[n % len(WORDS)]}{n}"


def _leaks(memory: Memory, reader: str, secret: str) -> list[str]:
    """Every read path of ``reader`` that shows ``secret``."""
    found = []
    hits = memory.search(reader, secret, k=20)
    found += [f"search: {h.episode.text}" for h in hits if secret in h.episode.text]
    found += [f"search_facts: {h.item.text}" for h in memory.search_facts(reader, secret, k=20)
              if secret in h.item.text or any(secret in e.text for e in h.episodes)]
    answer = memory.ask(reader, f"What do you know about {secret}?")
    found += [f"ask: {e.text}" for e in answer.evidence if secret in e.text]
    found += ["ask: answer"] if secret in answer.text else []
    found += [f"profile: {s.text}" for s in memory.profile(reader) if secret in s.text]
    found += [f"facts: {r.text}" for r in memory.facts(reader, secret) if secret in r.text]
    found += [f"list: {e.text}" for e in memory.list(reader, limit=500).items if secret in e.text]
    found += [f"get_all: {e.text}" for e in memory.get_all(reader) if secret in e.text]
    if memory.count(reader):
        found += ["export"] if secret in str(memory.export(reader)) else []
    return found


def check_isolation(memory: Memory, owners: list[str], plan: list[tuple[int, int]]) -> tuple[int, list[str]]:
    """Store each user's secrets, consolidate, then look for each secret from every other user."""
    secrets: dict[str, list[str]] = {u: [] for u in owners}
    for n, (who, template) in enumerate(plan):
        user = owners[who % len(owners)]
        secret = _token(n)
        secrets[user].append(secret)
        memory.add(user, [TEMPLATES[template % len(TEMPLATES)].format(w=secret)])
    for user in owners:
        memory.consolidate(user)
    checks, leaks = 0, []
    for user, mine in secrets.items():
        for other in owners:
            if other != user:
                for secret in mine:
                    checks += 1
                    leaks += [f"{user!r} -> {other!r} {leak}" for leak in _leaks(memory, other, secret)]
    return checks, leaks


def _owners(ids: list[str]) -> list[str]:
    """Distinct users, with an agent scope of the first: a scope is isolated like another user."""
    owners = list(dict.fromkeys(ids))
    return owners + [scope(owners[0], agent_id="planner")]


CASES = st.tuples(st.lists(USER_IDS, min_size=2, max_size=3, unique=True),
                  st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4)), min_size=3, max_size=5))


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          database=None, phases=[Phase.explicit, Phase.generate])
@given(case=CASES)
def test_no_user_sees_another_users_memory_on_any_read_path(embedder, case):
    ids, plan = case
    with Memory("memory://", embedder=embedder) as memory:
        checks, leaks = check_isolation(memory, _owners(ids), plan)
    assert checks and leaks == []


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), database=None,
          phases=[Phase.explicit, Phase.generate])
@given(case=CASES)
def test_no_user_sees_another_users_memory_on_postgres(tmp_path_factory, embedder, case):
    ids, plan = case
    with Memory(database(tmp_path_factory.mktemp("pg")), embedder=embedder) as memory:
        checks, leaks = check_isolation(memory, _owners(ids), plan)
    assert checks and leaks == []


@pytest.mark.slow
def test_isolation_over_many_generated_cases_on_lancedb(tmp_path_factory, embedder):
    totals = {"cases": 0, "checks": 0, "leaks": 0}

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=CASES)
    def run(case):
        ids, plan = case
        with Memory(tmp_path_factory.mktemp("iso"), embedder=embedder) as memory:
            checks, leaks = check_isolation(memory, _owners(ids), plan)
        totals["cases"] += 1
        totals["checks"] += checks
        totals["leaks"] += len(leaks)
        assert leaks == []

    run()
    print(f"\nisolation: cases={totals['cases']} checks={totals['checks']} leaks={totals['leaks']}")
    assert totals["cases"] >= 25 and totals["leaks"] == 0
