"""Every ``memagent`` command, in-process, with and without ``--json``; exit statuses,
``--version``, ``MEMAGENT_DATA_DIR``, missing data directories, ``eval --limit`` and Ctrl-C."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from memagent import Memory, cli
from memagent.types import Route

MESSAGES = [{"text": "I adopted a beagle named Biscuit.", "timestamp": "2024-03-01", "id": "m1"},
            {"text": "I live in Lisbon with my partner Ana.", "timestamp": "2024-03-02", "id": "m2"},
            {"text": "My sister Mia works at a bakery in Porto.", "timestamp": "2024-03-03", "id": "m3"}]


@pytest.fixture(autouse=True)
def no_env_data_dir(monkeypatch):
    monkeypatch.delenv(cli.ENV_DATA_DIR, raising=False)


def seed(path: Path, embedder) -> Path:
    """A data directory with three consolidated episodes of user sam."""
    with Memory(path, embedder=embedder) as memory:
        memory.add("sam", MESSAGES, session_id="s1")
        memory.consolidate("sam")
    return path


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, embedder):
    """Shared by the tests that only read."""
    return str(seed(tmp_path_factory.mktemp("seeded") / "d", embedder))


@pytest.fixture
def fresh(tmp_path, embedder):
    """A seeded directory of one test's own, for the commands that write."""
    return str(seed(tmp_path / "d", embedder))


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_a_chat_model_is_named_by_llm_or_its_variable_and_a_bad_one_is_a_usage_error(capsys, fresh, monkeypatch):
    code, _, err = run(capsys, "--data-dir", fresh, "--llm", "gguf:/nowhere/model.gguf", "search", "u", "dog")
    assert code == 2 and "gguf" in err
    monkeypatch.setenv("MEMAGENT_LLM", "gguf:/nowhere/model.gguf")
    code, _, err = run(capsys, "--data-dir", fresh, "search", "u", "dog")
    assert code == 2 and "gguf" in err


# --- version ---------------------------------------------------------------------------
def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"memagent {version('memagent')}"


def test_python_dash_m_memagent_version_loads_no_model():
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "memagent", "--version"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"memagent {version('memagent')}"
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "memagent.cli" in imported
    assert not {m for m in imported if m.split(".")[0] in ("torch", "sentence_transformers", "transformers")}


# --- reading ---------------------------------------------------------------------------
def test_ask(capsys, seeded):
    code, out, _ = run(capsys, "--data-dir", seeded, "ask", "sam", "What is my dog called?")
    assert code == 0 and "Biscuit" in out.splitlines()[0] and "trace " in out
    answer = run_json(capsys, "--data-dir", seeded, "ask", "sam", "What is my dog called?", "--route", "extraction")
    assert answer["route"] == "extraction" and "Biscuit" in answer["text"] and answer["trace_id"]
    assert "I adopted a beagle named Biscuit." in [e["text"] for e in answer["evidence"]]
    code, _, err = run(capsys, "--data-dir", seeded, "ask", "sam", "x?", "--route", "guess")
    assert code == 2 and "invalid choice" in err and [r.value for r in Route][0] in err


def test_profile_at_a_time(capsys, seeded):
    code, out, _ = run(capsys, "--data-dir", seeded, "profile", "sam")
    assert code == 0 and "Biscuit" in out and "Lisbon" in out
    statements = run_json(capsys, "--data-dir", seeded, "profile", "sam")
    assert any("Lisbon" in s["text"] and s["valid_to"] is None for s in statements)
    assert run_json(capsys, "--data-dir", seeded, "profile", "sam", "--at", "2024-02-01") == []
    code, out, _ = run(capsys, "--data-dir", seeded, "profile", "sam", "--at", "2024-02-01")
    assert code == 0 and "no profile statements" in out


def test_facts_at_a_time(capsys, seeded):
    code, out, _ = run(capsys, "--data-dir", seeded, "facts", "sam", "Mia")
    assert code == 0 and "sister Mia (since 3 March 2024)" in out
    facts = run_json(capsys, "--data-dir", seeded, "facts", "sam", "Mia")
    assert [f["relation"] for f in facts] == ["has_sister"]
    assert run_json(capsys, "--data-dir", seeded, "facts", "sam", "Mia", "--at", "2024-03-02") == []


def test_list_get_users_count(capsys, seeded):
    code, out, err = run(capsys, "--data-dir", seeded, "list", "sam", "--limit", "2")
    assert code == 0 and len(out.splitlines()) == 2 and "Biscuit" in out.splitlines()[0]
    assert "episodes 1-2 of 3; next page: --offset 2" in err
    page = run_json(capsys, "--data-dir", seeded, "list", "sam", "--offset", "2")
    assert (page["total"], page["offset"], page["next_offset"]) == (3, 2, None)
    assert [e["source_id"] for e in page["items"]] == ["m3"]
    episode_id = page["items"][0]["id"]
    code, out, _ = run(capsys, "--data-dir", seeded, "get", "sam", episode_id)
    assert code == 0 and "text:        My sister Mia works at a bakery in Porto." in out
    assert run_json(capsys, "--data-dir", seeded, "get", "sam", episode_id)["source_id"] == "m3"
    assert run(capsys, "--data-dir", seeded, "users")[1] == "sam\n"
    assert run_json(capsys, "--data-dir", seeded, "users") == {"users": ["sam"]}
    assert run(capsys, "--data-dir", seeded, "count", "sam")[1] == "3\n"
    assert run_json(capsys, "--json", "--data-dir", seeded, "count", "nobody") == {"count": 0}


def test_search_and_export(capsys, seeded):
    hits = run_json(capsys, "--data-dir", seeded, "search", "sam", "where do I live?", "-k", "1")
    assert len(hits) == 1 and hits[0]["source_id"] == "m2" and hits[0]["signals"]
    code, out, _ = run(capsys, "--data-dir", seeded, "search", "sam", "where do I live?", "-k", "1")
    assert code == 0 and "Lisbon" in out
    lines = run(capsys, "--data-dir", seeded, "export", "sam")[1].splitlines()
    assert [json.loads(line)["source_id"] for line in lines] == ["m1", "m2", "m3"]
    assert [e["source_id"] for e in run_json(capsys, "--data-dir", seeded, "export", "sam")] == ["m1", "m2", "m3"]


def test_forget_is_a_dry_run_unless_applied(capsys, fresh):
    later = ("--at", "2034-01-01")
    planned = run_json(capsys, "--data-dir", fresh, "forget", "sam", *later)
    assert planned and {d["action"] for d in planned} == {"archive"}
    code, out, err = run(capsys, "--data-dir", fresh, "forget", "sam", *later)
    assert code == 0 and out.startswith("would archive ") and "dry run" in err
    assert run_json(capsys, "--data-dir", fresh, "forget", "sam", *later) == planned  # nothing was archived
    code, out, _ = run(capsys, "--data-dir", fresh, "forget", "sam", "--apply", *later)
    assert code == 0 and out.startswith("archived ") and len(out.splitlines()) == len(planned)
    assert run_json(capsys, "--data-dir", fresh, "forget", "sam", *later) == []
    assert run(capsys, "--data-dir", fresh, "forget", "sam", *later)[1] == "nothing to archive or restore\n"


# --- writing ---------------------------------------------------------------------------
def test_add_and_consolidate(capsys, tmp_path):
    data = str(tmp_path / "new")
    code, out, _ = run(capsys, "--data-dir", data, "add", "ana", "I grow tomatoes.", "I play chess.",
                       "--timestamp", "2024-04-02")
    assert code == 0 and len(out.split()) == 2  # the data directory was created
    ids = run_json(capsys, "--data-dir", data, "add", "ana", "I moved to Porto.", "--id", "p1")["ids"]
    assert len(ids) == 1 and run_json(capsys, "--data-dir", data, "add", "ana", "again", "--id", "p1")["ids"] == ids
    code, out, _ = run(capsys, "--data-dir", data, "consolidate", "ana")
    assert code == 0 and out.startswith("consolidated 3 episodes of 'ana': ")
    run(capsys, "--data-dir", data, "add", "bo", "I live in Oslo.")
    counts = run_json(capsys, "--data-dir", data, "consolidate")  # every user: only bo's episode is new
    assert counts["episodes"] == 1 and counts["added"] >= 1
    assert run(capsys, "--data-dir", data, "add", "ana")[0] == 2  # no text and no --file


def test_feedback(capsys, fresh):
    trace = run_json(capsys, "--data-dir", fresh, "ask", "sam", "Where do I live?")["trace_id"]
    code, out, _ = run(capsys, "--data-dir", fresh, "feedback", trace, "good", "--user", "sam")
    assert code == 0 and out.startswith("rated ") and "of user 'sam'" in out
    out = run_json(capsys, "--data-dir", fresh, "feedback", trace, "-1", "--user", "sam",
                   "--correction", "I live in Porto now.")
    assert out["user_id"] == "sam" and out["correction_id"] and out["rated"] >= 1
    assert run_json(capsys, "--data-dir", fresh, "count", "sam") == {"count": 4}
    assert run_json(capsys, "--data-dir", fresh, "get", "sam", out["correction_id"])["text"] == "I live in Porto now."
    code, _, err = run(capsys, "--data-dir", fresh, "feedback", "no-such-trace", "good")
    assert code == 1 and err == "memagent: error: no answer with trace id 'no-such-trace'\n"
    assert run(capsys, "--data-dir", fresh, "feedback", trace, "meh", "--user", "sam")[0] == 2
    assert run(capsys, "--data-dir", fresh, "feedback", trace, "good", "--user", "bob")[0] == 1  # not bob's


def test_delete_and_delete_user(capsys, fresh):
    first = run_json(capsys, "--data-dir", fresh, "list", "sam")["items"][0]["id"]
    code, out, _ = run(capsys, "--data-dir", fresh, "delete", "sam", first)
    assert code == 0 and f"deleted episode {first}" in out
    code, _, err = run(capsys, "--data-dir", fresh, "delete", "sam", first)
    assert code == 1 and err == f"memagent: error: no episode {first!r} for user 'sam'\n"
    second = run_json(capsys, "--data-dir", fresh, "list", "sam")["items"][0]["id"]
    assert run_json(capsys, "--data-dir", fresh, "delete", "sam", second) == {"deleted": 1}
    assert run_json(capsys, "--data-dir", fresh, "delete-user", "sam", "--yes") == {"deleted": 1}
    assert run_json(capsys, "--data-dir", fresh, "users") == {"users": []}
    code, _, err = run(capsys, "--data-dir", fresh, "delete-user", "sam")  # stdin is not a terminal here
    assert code == 2 and "without --yes" in err


def test_import_json_and_keys_add_json(capsys, seeded, tmp_path):
    export = tmp_path / "sam.jsonl"
    assert run(capsys, "--data-dir", seeded, "export", "sam", "-o", str(export))[0] == 0
    data = str(tmp_path / "copy")
    out = run_json(capsys, "--data-dir", data, "import", str(export), "--user", "kim")
    assert (out["imported"], out["already_stored"], len(out["ids"])) == (3, 0, 3)
    assert run_json(capsys, "--data-dir", data, "import", str(export), "--user", "kim")["already_stored"] == 3
    keys = run_json(capsys, "keys", "add", "acme", "--file", str(tmp_path / "keys.toml"))
    assert keys["tenant"] == "acme" and keys["key"] not in (tmp_path / "keys.toml").read_text()


def test_serve_once_json(capsys, fresh):
    out = run_json(capsys, "--data-dir", fresh, "serve", "--once")
    assert out["failed"] == 0 and {"consolidate", "forget", "maintain"} <= set(out["jobs"])
    assert all(job["runs"] == 1 for job in out["jobs"].values())


# --- exit statuses, the data directory ---------------------------------------------------
def test_usage_errors_exit_2_runtime_errors_exit_1(capsys, seeded):
    code, _, err = run(capsys, "no-such-command")
    assert code == 2 and "memagent: error: argument command: invalid choice" in err
    assert run(capsys, "--data-dir", seeded, "get", "sam")[0] == 2  # a missing argument
    assert run(capsys, "--data-dir", seeded, "import", "f.jsonl", "--batch-size", "0")[0] == 2
    code, _, err = run(capsys, "--data-dir", seeded, "list", "sam", "--limit", "0")
    assert code == 2 and err == "memagent: error: limit must be an integer >= 1, got 0\n"
    code, _, err = run(capsys, "--data-dir", seeded, "get", "nobody", "e1")
    assert code == 1 and err.startswith("memagent: error: unknown user 'nobody'") and err.count("\n") == 1
    code, _, err = run(capsys, "--data-dir", seeded, "import", str(Path(seeded) / "missing.jsonl"))
    assert code == 1 and err.startswith("memagent: error: ") and "missing.jsonl" in err


def test_read_commands_refuse_a_missing_data_dir(capsys, tmp_path):
    missing = tmp_path / "nothing-here"
    for argv in (["search", "sam", "dog"], ["ask", "sam", "dog?"], ["list", "sam"], ["get", "sam", "e1"],
                 ["users"], ["count", "sam"], ["profile", "sam"], ["facts", "sam", "Mia"], ["export", "sam"],
                 ["forget", "sam"], ["consolidate"], ["delete", "sam", "e1"], ["feedback", "t1", "good"]):
        code, out, err = run(capsys, "--data-dir", str(missing), *argv, "--json")
        assert (code, out) == (1, ""), argv
        assert err == f"memagent: error: no data directory at {missing} (from --data-dir); add or import creates one\n"
    assert not missing.exists()


def test_memagent_data_dir_is_the_default_and_data_dir_overrides_it(capsys, monkeypatch, seeded, tmp_path):
    monkeypatch.setenv(cli.ENV_DATA_DIR, seeded)
    assert run_json(capsys, "count", "sam") == {"count": 3}
    other = str(tmp_path / "other")
    assert run(capsys, "--data-dir", other, "add", "lu", "hello")[0] == 0
    assert run_json(capsys, "--data-dir", other, "users") == {"users": ["lu"]}
    assert run_json(capsys, "users") == {"users": ["sam"]}
    monkeypatch.setenv(cli.ENV_DATA_DIR, str(tmp_path / "gone"))
    code, _, err = run(capsys, "users")
    assert code == 1 and f"{tmp_path / 'gone'} (from ${cli.ENV_DATA_DIR})" in err
    monkeypatch.delenv(cli.ENV_DATA_DIR)
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "users")
    assert code == 1 and f"{tmp_path / cli.DEFAULT_DATA_DIR} (from the default)" in err


# --- eval --limit ------------------------------------------------------------------------
def two_conversations(tmp_path: Path) -> Path:
    def conversation(sample_id, speaker, fact, question, answer):
        turns = [{"speaker": speaker, "dia_id": "D1:1", "text": fact},
                 {"speaker": "Kai", "dia_id": "D1:2", "text": "Good to know."}]
        return {"sample_id": sample_id,
                "conversation": {"speaker_a": speaker, "speaker_b": "Kai",
                                 "session_1_date_time": "1:56 pm on 8 May, 2023", "session_1": turns},
                "qa": [{"question": question, "answer": answer, "evidence": ["D1:1"], "category": 4}]}

    path = tmp_path / "locomo.json"
    path.write_text(json.dumps([
        conversation("conv-a", "Ann", "I adopted a beagle called Rex.", "What is Ann's dog called?", "Rex"),
        conversation("conv-b", "Bea", "I moved to Oslo last year.", "Where does Bea live?", "Oslo")]))
    return path


def test_eval_limit_ingests_only_what_the_questions_need(capsys, tmp_path):
    out = tmp_path / "run"
    summary = run_json(capsys, "eval", "locomo", str(two_conversations(tmp_path)), "--out", str(out), "--limit", "1")
    assert summary["questions"] == 1 and summary["out"] == str(out)
    assert json.loads((out / "state.json").read_text())["ingested"] == ["conv-a"]
    assert len((out / "records.jsonl").read_text().splitlines()) == 1
    with Memory(out / "memory") as memory:
        assert memory.users() == ["conv-a"]
    code, text, _ = run(capsys, "eval", "locomo", str(tmp_path / "locomo.json"), "--out", str(out), "--limit", "1")
    assert code == 0 and "| 4 single-hop | 1 |" in text and f"records: {out}/records.jsonl" in text
    assert run(capsys, "eval", "locomo", "x.json", "--limit", "0")[0] == 2


# --- Ctrl-C ------------------------------------------------------------------------------
class InterruptedBar:
    """A progress bar whose first update is a Ctrl-C: the first batch is stored, the rest is not."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        raise KeyboardInterrupt


def test_interrupted_import_resumes_and_stores_each_episode_once(capsys, monkeypatch, tmp_path, embedder):
    export = tmp_path / "five.jsonl"
    with Memory(tmp_path / "source", embedder=embedder) as memory:
        memory.add("eve", [f"Note number {n} about my garden." for n in range(5)])
        memory.export("eve", export)
    data = str(tmp_path / "d")
    with monkeypatch.context() as patch:
        patch.setattr(cli, "_progress", lambda total, desc: InterruptedBar())
        code, out, err = run(capsys, "--data-dir", data, "import", str(export), "--batch-size", "2")
    assert (code, out, err) == (130, "", "memagent: interrupted\n")
    assert run_json(capsys, "--data-dir", data, "count", "eve") == {"count": 2}
    code, _, err = run(capsys, "--data-dir", data, "import", str(export), "--batch-size", "2")
    assert code == 0 and "imported 3 new episodes (2 already stored)" in err
    stored = run_json(capsys, "--data-dir", data, "list", "eve")
    expected = [json.loads(line)["id"] for line in export.read_text().splitlines()]
    assert stored["total"] == 5 and sorted(e["id"] for e in stored["items"]) == sorted(expected)


def test_ctrl_c_in_any_command_is_one_line_and_130(capsys, monkeypatch, seeded):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Memory, "search", interrupted)
    assert run(capsys, "--data-dir", seeded, "search", "sam", "dog") == (130, "", "memagent: interrupted\n")


def test_demo_json(capsys, tmp_path):
    out = run_json(capsys, "--data-dir", str(tmp_path / "demo"), "demo", "-k", "2")
    assert out["user"] == "sam" and out["episodes"] == 21 and out["data_dir"] == str(tmp_path / "demo")
    dog = next(q for q in out["queries"] if q["question"] == "What is the name of my dog?")
    assert len(dog["hits"]) == 2 and any("Biscuit" in h["text"] for h in dog["hits"])
    assert out["consolidation"]["episodes"] == 21 and out["profile"] and out["facts"]
