"""Load on a live server: many clients adding, searching and asking at once, then an exactly-once check.

    python benchmarks/service_load.py [--workers 4] [--clients 50] [--users 100] [--seconds 60]
                                      [--think 2] [--json OUT]

Starts ``memagent serve --http --workers N`` on a fresh data directory (loopback,
no keys), seeds every user with a few messages, then runs two phases with
``memagent.Client``'s async methods, each client a loop of one operation and a
pause of about ``--think`` seconds (2 by default: 50 people typing to an
assistant at once, which is about 25 operations a second; 0 hammers):

1. one client for ``--baseline-seconds`` (pausing ``--baseline-think``): each
   operation's latency alone;
2. ``--clients`` clients over ``--users`` users for ``--seconds``: a mix of add
   (2-5 messages with caller ids; one add in five re-sends a batch already
   acknowledged, as a client retrying after a timeout would), search and ask.

Then every user's episodes are read back: each acknowledged message must be
stored exactly once (``lost`` and ``duplicated`` must be 0). Prints throughput,
p50/p95/p99 per operation for both phases, the ratio of search p95 under load to
its one-client p95, and the error counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from memagent import Client, MemagentError
from memagent.eval.metrics import percentile

TOPICS = ["rowing on the river", "a pottery class", "my sister's wedding", "the new job at the bakery",
          "training for a marathon", "learning the violin", "a trip to Kyoto", "our dog Biscuit",
          "the book club", "repairing the old bike", "planting tomatoes", "a chess tournament"]
QUESTIONS = ["What did I say about {t}?", "When did I mention {t}?", "Who was with me for {t}?"]


@dataclass
class Tally:
    """What one phase measured."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    acknowledged: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    retried: int = 0
    seconds: float = 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: str, port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "memagent.cli", "--data-dir", data_dir, "serve", "--http",
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    with open(log, "wb") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.kill()
    raise SystemExit("the server did not answer /healthz within 300 s")


def cpu_seconds(root: int) -> float:
    """CPU time (user + system) of a process and all its descendants so far, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
            times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    family, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in family]
        family.update(children)
        frontier += children
    return sum(times.get(pid, 0.0) for pid in family)


def messages(rng: random.Random, keys: list[str]) -> list[dict[str, str]]:
    day = rng.randint(1, 28)
    return [{"id": key, "role": "user", "text": f"Today I told you about {rng.choice(TOPICS)} ({key}).",
             "timestamp": f"2024-05-{day:02d}T{10 + n:02d}:00:00Z"} for n, key in enumerate(keys)]


async def client_loop(client: Client, name: str, users: list[str], until: float, think: float,
                      tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    sent: list[tuple[str, list[dict[str, str]]]] = []
    n = 0
    while time.monotonic() < until:
        user = rng.choice(users)
        roll = rng.random()
        start = time.perf_counter()
        try:
            if roll < 0.3:
                if sent and rng.random() < 0.2:  # a retry of an acknowledged batch: stores nothing new
                    user, batch = rng.choice(sent)
                    tally.retried += 1
                else:
                    n += 1
                    batch = messages(rng, [f"{name}-{n}-{j}" for j in range(rng.randint(2, 5))])
                await client.aadd(user, batch, session_id=name)
                op = "add"
                sent.append((user, batch))
                tally.acknowledged[user].update(m["id"] for m in batch)
            elif roll < 0.8:
                await client.asearch(user, rng.choice(QUESTIONS).format(t=rng.choice(TOPICS)), k=10)
                op = "search"
            else:
                await client.aask(user, rng.choice(QUESTIONS).format(t=rng.choice(TOPICS)))
                op = "ask"
            tally.latencies[op].append((time.perf_counter() - start) * 1000)
        except (MemagentError, httpx.HTTPError) as exc:
            tally.errors[type(exc).__name__] += 1
        if think:
            await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))


async def phase(url: str, clients: int, users: list[str], seconds: float, think: float, seed: int) -> Tally:
    tally = Tally()
    async with Client(url, timeout=120.0) as client:
        until = time.monotonic() + seconds
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client, f"c{seed}-{c}", users, until, think, tally, seed * 1000 + c)
                               for c in range(clients)))
        tally.seconds = time.perf_counter() - start
    return tally


def check(url: str, acknowledged: dict[str, set[str]]) -> dict[str, int]:
    """Every acknowledged caller id stored exactly once, per user."""
    lost = duplicated = stored = 0
    with Client(url, timeout=120.0) as client:
        for user, keys in acknowledged.items():
            seen: Counter[str] = Counter()
            offset: int | None = 0
            while offset is not None:
                page = client.list(user, offset=offset, limit=500)
                seen.update(e.source_id for e in page.items if e.source_id)
                offset = page.next_offset
            stored += sum(seen.values())
            lost += sum(1 for key in keys if seen[key] == 0)
            duplicated += sum(count - 1 for count in seen.values() if count > 1)
    return {"acknowledged": sum(len(k) for k in acknowledged.values()), "stored": stored,
            "lost": lost, "duplicated": duplicated}


def summary(tally: Tally) -> dict[str, dict[str, float]]:
    return {op: {"count": len(values), "per_s": len(values) / tally.seconds,
                 "p50_ms": percentile(values, 0.5), "p95_ms": percentile(values, 0.95),
                 "p99_ms": percentile(values, 0.99)} for op, values in sorted(tally.latencies.items())}


def run(args: argparse.Namespace) -> dict[str, object]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        server = start_server(args.data_dir or data_dir, port, args.workers, Path(args.server_log))
        try:
            users = [f"user-{u:03d}" for u in range(args.users)]
            rng = random.Random(0)
            seeded: dict[str, set[str]] = defaultdict(set)
            with Client(url, timeout=120.0) as client:
                for user in users:
                    batch = messages(rng, [f"seed-{user}-{j}" for j in range(6)])
                    client.add(user, batch, session_id="seed")
                    seeded[user].update(m["id"] for m in batch)
            cpu = cpu_seconds(server.pid)
            alone = asyncio.run(phase(url, 1, users, args.baseline_seconds, args.baseline_think, seed=1))
            cpu_alone, cpu = cpu_seconds(server.pid) - cpu, cpu_seconds(server.pid)
            loaded = asyncio.run(phase(url, args.clients, users, args.seconds, args.think, seed=2))
            cpu_loaded = cpu_seconds(server.pid) - cpu
            acknowledged: dict[str, set[str]] = defaultdict(set)
            for source in (seeded, alone.acknowledged, loaded.acknowledged):
                for user, keys in source.items():
                    acknowledged[user] |= keys
            verdict = check(url, acknowledged)
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
    one, many = summary(alone), summary(loaded)
    ratio = many["search"]["p95_ms"] / one["search"]["p95_ms"] if "search" in one and "search" in many else None
    return {"workers": args.workers, "clients": args.clients, "users": args.users, "seconds": args.seconds,
            "think_s": args.think, "one_client": one, "loaded": many,
            "ops_per_s": sum(len(v) for v in loaded.latencies.values()) / loaded.seconds,
            "errors": dict(alone.errors + loaded.errors), "retried_batches": alone.retried + loaded.retried,
            "search_p95_ratio": ratio, "server_cores_alone": cpu_alone / alone.seconds,
            "server_cores_loaded": cpu_loaded / loaded.seconds, "cores": os.cpu_count(), **verdict}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--baseline-seconds", type=float, default=20.0)
    parser.add_argument("--think", type=float, default=2.0,
                        help="mean pause between a client's operations under load (s)")
    parser.add_argument("--baseline-think", type=float, default=0.1, help="the same for the one client (s)")
    parser.add_argument("--data-dir", help="use this data directory instead of a temporary one")
    parser.add_argument("--server-log", default=os.path.join(tempfile.gettempdir(), "memagent-service-load.log"),
                        help="where the server's output goes")
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args(argv)
    result = run(args)
    print(f"{args.workers} workers, {args.clients} clients over {args.users} users for {args.seconds:g} s "
          f"(think {args.think:g} s): {result['ops_per_s']:.1f} ops/s\n")
    print("| operation | clients | count | per s | p50 ms | p95 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, table in (("1", result["one_client"]), (str(args.clients), result["loaded"])):
        for op, row in table.items():  # type: ignore[attr-defined]
            print(f"| {op} | {label} | {row['count']} | {row['per_s']:.1f} | {row['p50_ms']:.0f} | "
                  f"{row['p95_ms']:.0f} | {row['p99_ms']:.0f} |")
    ratio = result["search_p95_ratio"]
    print(f"\nsearch p95 under load / alone: {ratio:.2f}" if ratio is not None else "\nsearch p95 ratio: n/a")
    print(f"server CPU: {result['server_cores_alone']:.2f} cores with 1 client, "
          f"{result['server_cores_loaded']:.2f} of {result['cores']} under load")
    print(f"errors: {result['errors'] or 0}; retried batches: {result['retried_batches']}")
    print(f"acknowledged messages: {result['acknowledged']}, stored: {result['stored']}, "
          f"lost: {result['lost']}, duplicated: {result['duplicated']}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
