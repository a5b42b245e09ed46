"""kill -9 at any point of add, import, consolidate, forget and feedback loses nothing committed,
duplicates nothing on retry, and leaves derived rows equal to those of a clean run.

Each operation runs in a real child process (``tests/crash_worker.py``, forked from a warm zygote
that has the real embedder loaded) on a copy of a prepared data dir; the parent SIGKILLs it after
a random delay (seeded), or the child SIGKILLs itself right after a named commit (``crash_at``).
Another child, which never had that data dir open, then dumps what it finds, retries the same
call (same caller ids, same import file, same trace and times) and dumps again. The dumps are
canonical (rows sorted by user and id, vectors as digests of their bytes; only a watermark's
wall-clock ``updated_at`` is left out) and are compared with the dump of a clean run of the same
operation on another copy:

* lost: acknowledged episodes missing before the retry, a finished operation whose rows differ
  before the retry, and rows of the clean run missing after it;
* duplicated: an id stored twice, an episode stored twice under one caller id, rows the clean
  run does not have;
* mismatches: runs whose final dump differs from the clean one in any way.

The default run kills each operation once at its most telling step; the slow run kills after
every commit each operation makes (and before its change token moves, for a few), plus at
random moments, and prints ``crash suite: kills=N lost=0 duplicated=0 mismatches=0``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from crash_worker import CORRECTION, FEEDBACK_AT, NOW, QUESTION, SESSIONS, USERS, dump, messages
from memagent import Memory
from memagent.records import Kind

WORKER = Path(__file__).with_name("crash_worker.py")
OPS = ("add", "import", "consolidate", "forget", "feedback")
JOB_TIMEOUT_S = 180.0


class Zygote:
    """The warm parent of every child: one JSON job in, a pid and a wait status out."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self.process = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, bufsize=0, env=env, cwd=WORKER.parent.parent)
        self._buffer = b""
        self.jobs = 0
        assert self._line(JOB_TIMEOUT_S) == "ready"

    def _line(self, timeout: float) -> str:
        """The next line the zygote prints; '' if none came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            assert self.process.stdout is not None
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return ""
            chunk = os.read(self.process.stdout.fileno(), 65536)
            assert chunk, f"the zygote ended (exit {self.process.poll()})"
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def run(self, job: str, op: str, data: Path, *, crash_at: str | None = None, kill_after: float | None = None,
            args: dict[str, Any] | None = None) -> Run:
        """Run one job in a fresh child; SIGKILL it ``kill_after`` seconds after its operation starts."""
        self.jobs += 1
        out = self.workdir / f"job{self.jobs}-{job}-{op}.json"
        ack = out.with_suffix(".ack")
        spec = {"job": job, "op": op, "data": str(data), "crash_at": crash_at, "out": str(out), "ack": str(ack),
                "args": args or {}}
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(spec) + "\n").encode())
        pid = json.loads(self._line(JOB_TIMEOUT_S))["pid"]
        line = ""
        if kill_after is not None:
            deadline = time.monotonic() + JOB_TIMEOUT_S
            while not line and "start" not in _read(ack) and time.monotonic() < deadline:
                line = self._line(0.005)  # it may end before it starts: a failure, reported below
            if not line:
                line = self._line(kill_after)
            if not line:
                with contextlib.suppress(ProcessLookupError):  # it ended and was reaped as the wait ran out
                    os.kill(pid, signal.SIGKILL)  # still running: the zygote has not reaped it, the pid is its
        line = line or self._line(JOB_TIMEOUT_S)
        assert line, f"job {spec} did not end within {JOB_TIMEOUT_S}s"
        status = json.loads(line)["status"]
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        if not killed and os.waitstatus_to_exitcode(status) != 0:
            log = Path(str(out) + ".log")
            pytest.fail(f"job {spec} failed:\n{log.read_text() if log.exists() else status}")
        result = json.loads(out.read_text()) if out.exists() and not killed else {}
        return Run(killed, [json.loads(x) for x in _read(ack).splitlines()], result)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


@dataclass
class Run:
    killed: bool
    acks: list[dict[str, Any]]
    result: dict[str, Any]

    @property
    def done(self) -> bool:
        return any("done" in a for a in self.acks)


@dataclass
class Case:
    """A prepared data dir for one operation, its arguments, and what a clean run of it leaves."""

    op: str
    template: Path
    args: dict[str, Any]
    clean: dict[str, Any]
    steps: list[str]
    op_s: float
    episodes: list[tuple[str, str]] = field(default_factory=list)  # an import file's (user, id), in order


class Suite:
    """The zygote, the prepared cases and the tallies of one test."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.zygote = Zygote(workdir)
        self.tally: Counter[str] = Counter()
        self.problems: list[str] = []
        self.cases = self._prepare()

    def copy(self, template: Path, name: str) -> Path:
        target = self.workdir / f"{name}-{self.zygote.jobs + 1}"
        if template.exists():
            shutil.copytree(template, target)
        else:
            target.mkdir()
        return target

    def _clean(self, op: str, template: Path, args: dict[str, Any] | None = None) -> tuple[Path, Case]:
        data = self.copy(template, f"clean-{op}")
        run = self.zygote.run("clean", op, data, args=args)
        return data, Case(op, template, args or {}, run.result["after"], run.result["steps"], run.result["op_s"])

    def _prepare(self) -> dict[str, Case]:
        empty = self.workdir / "empty"
        added, add = self._clean("add", empty)
        exported = self.workdir / "export.jsonl"
        self.zygote.run("op", "export", self.copy(added, "export"), args={"file": str(exported)})
        _, imported = self._clean("import", empty, {"file": str(exported)})
        imported.episodes = [(e["user_id"], e["id"]) for e in map(json.loads, exported.read_text().splitlines())]
        consolidated, consolidate = self._clean("consolidate", added)
        asked = self.copy(consolidated, "asked")
        trace_id = self.zygote.run("op", "ask", asked).acks[-2]["trace_id"]
        _, forget = self._clean("forget", asked)
        _, feedback = self._clean("feedback", asked, {"trace_id": trace_id})
        return {c.op: c for c in (add, imported, consolidate, forget, feedback)}

    def trial(self, op: str, *, crash_at: str | None = None, kill_after: float | None = None) -> bool:
        """Kill one run of ``op``, recover, retry, compare; return whether it was killed."""
        case = self.cases[op]
        data = self.copy(case.template, f"crash-{op}")
        crashed = self.zygote.run("op", op, data, crash_at=crash_at, kill_after=kill_after, args=case.args)
        if not crashed.killed:
            return False
        self.tally["kills"] += 1
        retried = self.zygote.run("verify", op, data, args=case.args)
        before, after = retried.result["before"], retried.result["after"]
        lost = self._lost(case, crashed, before) + _missing(case.clean, after)
        duplicated = _repeats(after) + _missing(after, case.clean)
        mismatch = after != case.clean
        self.tally.update(lost=lost, duplicated=duplicated, mismatches=int(mismatch))
        if lost or duplicated or mismatch:
            self.problems.append(f"{op} killed at {crash_at or f'{kill_after:.3f}s'}: lost={lost} "
                                 f"duplicated={duplicated}; {_diff(case.clean, after)}")
        return True

    def _lost(self, case: Case, crashed: Run, before: dict[str, Any]) -> int:
        """What the killed run had acknowledged, missing in what it left."""
        stored = {(r["user_id"], r["source_id"]) for rows in before["episodes"].values() for r in rows}
        ids = {(r["user_id"], r["id"]) for rows in before["episodes"].values() for r in rows}
        if case.op == "add":
            acked = {tuple(pair) for a in crashed.acks for pair in a.get("acked", ())}
            return len(acked - stored)
        if case.op == "import":
            count = max((a["imported"] for a in crashed.acks if "imported" in a), default=0)
            return len(set(case.episodes[:count]) - ids)
        return int(crashed.done and before != case.clean)

    def points(self, op: str) -> list[str]:
        """A kill right after each commit the clean run of ``op`` made (the n-th of its kind)."""
        seen: Counter[str] = Counter()
        out = []
        for kind in self.cases[op].steps:
            seen[kind] += 1
            out.append(f"after:{kind}:{seen[kind]}")
        return out

    def summary(self) -> str:
        t = self.tally
        return (f"crash suite: kills={t['kills']} lost={t['lost']} duplicated={t['duplicated']} "
                f"mismatches={t['mismatches']}")


def _missing(expected: dict[str, Any], got: dict[str, Any]) -> int:
    """Rows (kind, user/id) of ``expected`` that ``got`` lacks."""
    return sum(len(set(rows) - set(got.get(kind, {}))) for kind, rows in expected.items())


def _repeats(dumped: dict[str, Any]) -> int:
    """Extra copies: ids stored more than once, and caller ids stored as more than one episode."""
    extra = sum(len(rows) - 1 for kind in dumped.values() for rows in kind.values())
    sources = Counter((r["user_id"], r["source_id"]) for rows in dumped["episodes"].values() for r in rows
                      if r["source_id"] is not None)
    return extra + sum(n - 1 for n in sources.values())


def _diff(expected: dict[str, Any], got: dict[str, Any], limit: int = 3) -> str:
    lines = []
    for kind, rows in expected.items():
        for key in sorted(set(rows) | set(got.get(kind, {}))):
            want, have = rows.get(key), got.get(kind, {}).get(key)
            if want != have:
                fields = sorted({k for r in (want or []) + (have or []) for k in r
                                 if not want or not have or want[0].get(k) != have[0].get(k)})
                lines.append(f"{kind} {key}: {'missing' if not have else 'extra' if not want else fields}")
    return f"{len(lines)} rows differ: " + "; ".join(lines[:limit]) if lines else "dumps equal"


@pytest.fixture(scope="module")
def asked(tmp_path_factory, embedder) -> tuple[Path, str]:
    """A consolidated data dir with one answer to rate, and its trace id."""
    data = tmp_path_factory.mktemp("asked") / "data"
    with Memory(data, embedder=embedder, clock=lambda: NOW) as memory:
        for session in SESSIONS:
            memory.add(session[0], messages(session), session_id=session[1], now=NOW)
        memory.consolidate()
        return data, memory.ask("sam", QUESTION, at=FEEDBACK_AT).trace_id


def rate(memory: Memory, trace_id: str) -> dict[str, Any]:
    return memory.feedback(trace_id, "bad", correction=CORRECTION, role="Sam", at=FEEDBACK_AT, user_id="sam")


def rated_clean_and_after_a_crash(tmp_path: Path, embedder: Any, base: Path, trace_id: str, failing: Kind,
                                  monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """Dumps of copies of ``base``: rated once, and rated, crashed at the first write of ``failing``,
    reopened and rated again."""
    shutil.copytree(base, tmp_path / "clean")
    shutil.copytree(base, tmp_path / "crash")
    with Memory(tmp_path / "clean", embedder=embedder, clock=lambda: NOW) as clean:
        rate(clean, trace_id)
        expected = dump(clean)
    with Memory(tmp_path / "crash", embedder=embedder, clock=lambda: NOW) as memory:
        real = memory.backend.put

        def crashing(kind, records, vectors=None, **kw):
            if kind == failing:
                raise OSError("killed")
            return real(kind, records, vectors, **kw)

        monkeypatch.setattr(memory.backend, "put", crashing)
        with pytest.raises(OSError):
            rate(memory, trace_id)
    with Memory(tmp_path / "crash", embedder=embedder, clock=lambda: NOW) as reopened:
        rate(reopened, trace_id)
        return expected, dump(reopened)


@pytest.mark.parametrize("failing", [Kind.RATING, Kind.ENTITY])
def test_a_feedback_retried_after_a_crash_between_its_writes_counts_once(tmp_path, embedder, asked, monkeypatch,
                                                                        failing):
    # RATING: the usage and weights are written, the ratings not (each memory's feedback and the
    # weights moved twice). ENTITY: the correction is stored, its statements written, its
    # consolidation went no further (the rerun wrote no usage of them).
    expected, got = rated_clean_and_after_a_crash(tmp_path, embedder, *asked, failing, monkeypatch)
    assert got == expected
    assert expected["weights"] and not [k for k in expected["weights"] if "learned:" in k]  # the marker is gone


def test_the_episodes_a_correction_promotes_are_the_same_when_it_is_retried(tmp_path, embedder, monkeypatch):
    # Few episodes, all near the question: the stored correction took a place among the nearest.
    texts = ["I live in Lisbon.", "I went to the market.", "My cat sleeps a lot.", "I like green tea.",
             "The weather is nice."]
    with Memory(tmp_path / "base", embedder=embedder, clock=lambda: NOW) as memory:
        memory.add("sam", [{"id": f"m{n}", "role": "Sam", "text": t} for n, t in enumerate(texts)], session_id="s")
        trace_id = memory.ask("sam", QUESTION, at=FEEDBACK_AT).trace_id
    expected, got = rated_clean_and_after_a_crash(tmp_path, embedder, tmp_path / "base", trace_id, Kind.STATEMENT,
                                                  monkeypatch)
    assert got["ratings"] == expected["ratings"] and len(expected["ratings"]) == 5  # the answer's, 3, the correction
    assert got == expected


@pytest.fixture
def suite(tmp_path):
    made = Suite(tmp_path)
    yield made
    made.zygote.close()


FAST = {"add": "after:episodes:3", "import": "after:episodes:2", "consolidate": "after:usage:2",
        "forget": "after:usage:1", "feedback": "after:weights:1"}


def test_a_kill_at_a_telling_step_of_each_operation_loses_and_repeats_nothing(suite):
    for op, point in FAST.items():
        assert suite.trial(op, crash_at=point), f"{op} was not killed at {point}"
    print(suite.summary())
    assert not suite.problems, "\n".join(suite.problems)
    assert suite.tally["kills"] == len(FAST)


@pytest.mark.slow
def test_kills_after_every_commit_and_at_random_moments_lose_and_repeat_nothing(suite):
    rng = random.Random(15)
    planned = 0
    for op in OPS:
        points = suite.points(op)
        tokens = [p.replace("after:", "token:") for p in points[:: max(1, len(points) // 3)]]
        for point in points + tokens:
            planned += 1
            assert suite.trial(op, crash_at=point), f"{op} was not killed at {point}"
        for _ in range(4):
            planned += 1
            suite.trial(op, kill_after=rng.uniform(0.0, suite.cases[op].op_s))
    print(f"\n{suite.summary()} (planned={planned}, users={len(USERS)})")
    assert not suite.problems, "\n".join(suite.problems)
    assert suite.tally["kills"] >= 50
