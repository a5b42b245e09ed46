"""The memagent command line, run in-process (one embedder load per test session)."""

from __future__ import annotations

import json

import pytest

from memagent import cli


@pytest.fixture(autouse=True)
def shared_model(embedder):
    return embedder  # loads the real model once; the CLI reuses the process cache


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_ingests_sample_and_prints_hits_with_signals(capsys, tmp_path):
    code, out, _ = run(capsys, "--data-dir", str(tmp_path / "d"), "demo")
    assert code == 0
    assert "stored 21 episodes of user 'sam' from 4 sessions" in out
    assert "? What is the name of my dog?" in out
    answer_block = out.split("? What is the name of my dog?")[1].split("?")[0]
    assert "Biscuit" in answer_block and "[" in answer_block and "vector" in answer_block


def test_add_search_export_import_delete(capsys, tmp_path):
    data = str(tmp_path / "d")
    code, out, _ = run(capsys, "--data-dir", data, "add", "ana", "I grow tomatoes on my balcony",
                       "--timestamp", "2024-04-02", "--id", "t1")
    assert code == 0 and len(out.split()) == 1
    code, out, _ = run(capsys, "--data-dir", data, "search", "ana", "what do I grow?", "--json")
    hits = json.loads(out)
    assert hits[0]["text"] == "I grow tomatoes on my balcony" and "lexical" in hits[0]["signals"]
    export = tmp_path / "ana.jsonl"
    assert run(capsys, "--data-dir", data, "export", "ana", "-o", str(export))[0] == 0
    code, _, err = run(capsys, "--data-dir", data, "import", str(export), "--user", "ana2")
    assert code == 0 and "imported 1 new episodes" in err
    code, out, _ = run(capsys, "--data-dir", data, "delete-user", "ana2", "--yes")
    assert code == 0 and "deleted 1 episodes" in out


def test_errors_are_reported_not_raised(capsys, tmp_path):
    """Input memagent refuses exits 2 (usage), what fails while running exits 1; one line each."""
    data = str(tmp_path / "d")
    code, _, err = run(capsys, "--data-dir", data, "add", "ana", "hi", "--timestamp", "garbage")
    assert code == 2 and err.startswith("memagent: error: cannot parse timestamp") and err.count("\n") == 1
    code, _, err = run(capsys, "--data-dir", data, "export", "nobody")
    assert code == 1 and err.startswith("memagent: error: unknown user") and err.count("\n") == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n")
    code, _, err = run(capsys, "--data-dir", data, "import", str(bad))
    assert code == 2 and "line 1" in err


@pytest.mark.slow
def test_eval_longmemeval_on_the_shipped_sample(capsys, tmp_path):
    from pathlib import Path

    sample = Path(__file__).resolve().parents[1] / "examples" / "longmemeval_sample.json"
    code, out, _ = run(capsys, "eval", "longmemeval", str(sample), "--out", str(tmp_path / "run"), "--k", "1,5,10")
    assert code == 0
    for qtype in ("single-session-user", "single-session-assistant", "single-session-preference",
                  "multi-session", "temporal-reasoning", "knowledge-update"):
        assert f"| {qtype} |" in out
    assert "| session@5 |" in out and "judge: none" in out
    assert (tmp_path / "run" / "plot.png").exists()
