"""Resident memory under sustained load: does memagent's RSS stay flat once warm?

    python benchmarks/rss_load.py [--users 20] [--episodes 1000] [--threads 4] [--seconds 300]
                                  [--sample 10] [--json OUT]

Seeds ``--users`` users with ``--episodes`` generated episodes each (the text of
``benchmarks/scale.py``), then runs ``--threads`` threads for ``--seconds``, each
a loop over random users of search (70 %), add of two messages (20 %) and ask
(10 %); by default each add deletes the user's two oldest episodes, so the stored
data stays the same size, and the caches get small bounds (``Config.caches``,
``answer.sentence_cache``) that fill during warm-up: whatever grows after that grows
past a bound, which is the question. ``--growing`` and ``--default-caches`` turn
either off. glibc's allocator is tuned as ``memagent serve`` tunes it
(``memagent/runtime.py``; ``--default-malloc`` leaves it alone). RSS (``VmRSS``) is
sampled every ``--sample`` seconds. Printed: the samples with what each cache
holds, and over the last two thirds of the run the spread (max - min) / min, the
least-squares slope in MB per minute and the median of the last third against the
middle third. The target is a spread within 5 %.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from contextlib import suppress
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from scale import sentences  # noqa: E402

from memagent import Config, Memory  # noqa: E402
from memagent.config import AnswerSettings, CacheSettings  # noqa: E402
from memagent.errors import EpisodeNotFoundError  # noqa: E402
from memagent.runtime import release_freed_memory  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no /proc/self/status: this benchmark needs Linux")


def seed(memory: Memory, users: list[str], episodes: int) -> None:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for n, user in enumerate(users):
        texts = sentences(episodes, seed=n)
        messages = [{"id": f"seed-{i}", "text": t, "speaker": "user",
                     "timestamp": (start + timedelta(hours=i)).isoformat()} for i, t in enumerate(texts)]
        for i in range(0, len(messages), 500):
            memory.add(user, messages[i:i + 500], session_id=f"s{i // 500}")


def worker(memory: Memory, users: list[str], stop: threading.Event, seed_: int, counts: dict[str, int],
           errors: list[str], steady: bool = True) -> None:
    rng = random.Random(seed_)
    words = sentences(200, seed=1000 + seed_)
    while not stop.is_set():
        user = rng.choice(users)
        roll = rng.random()
        try:
            if roll < 0.7:
                memory.search(user, rng.choice(words)[:60], k=10)
                counts["search"] += 1
            elif roll < 0.9:
                memory.add(user, [rng.choice(words), rng.choice(words)])
                counts["add"] += 1
                if steady:  # as many out as in: the stored data stays the same size
                    for old in memory.list(user, limit=2).items:
                        with suppress(EpisodeNotFoundError):  # another thread deleted it first
                            memory.delete(user, old.id)
            else:
                memory.ask(user, "What did I say about " + rng.choice(words).split(",")[0][-30:] + "?")
                counts["ask"] += 1
        except Exception as exc:  # noqa: BLE001 - counted and printed, the run goes on
            errors.append(f"{type(exc).__name__}: {exc}")


def caches(memory: Memory) -> str:
    """What the bounded caches hold now."""
    session = getattr(memory.backend, "session", None)
    lance = f"LanceDB {session.size_bytes / 2**20:.0f} MB, " if session is not None else ""
    rows = sum(len(entry) for entry in memory.episodes._users._entries.values())
    return (f"{lance}episode rows {rows}, derived users {len(memory.tiers._entries)}, "
            f"sentence vectors {len(memory.sentences._entries)}")


def spread(samples: list[tuple[float, float]]) -> tuple[float, float]:
    """(max - min) / min and the least-squares slope (MB per minute) of (seconds, MB) samples."""
    values = [mb for _, mb in samples]
    xs = [t / 60 for t, _ in samples]
    mean_x, mean_y = sum(xs) / len(xs), sum(values) / len(values)
    var = sum((x - mean_x) ** 2 for x in xs) or 1.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, values)) / var
    return (max(values) - min(values)) / min(values), slope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--sample", type=float, default=10)
    parser.add_argument("--json", default=None)
    parser.add_argument("--growing", action="store_true",
                        help="keep what is added (default: each add deletes the user's two oldest episodes, "
                             "so the stored data, which the caches may legitimately follow, stays the same size)")
    parser.add_argument("--default-caches", action="store_true",
                        help="the default cache bounds (default: small bounds that fill during warm-up, so that "
                             "anything growing past them shows)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's allocator as it is (memagent serve tunes it: memagent/runtime.py)")
    args = parser.parse_args()
    if not args.default_malloc:
        release_freed_memory()
    users = [f"user-{n:02d}" for n in range(args.users)]
    config = Config() if args.default_caches else Config(
        caches=CacheSettings(lance_index_bytes=16 * 2**20, lance_metadata_bytes=8 * 2**20),
        answer=AnswerSettings(sentence_cache=1000))
    with tempfile.TemporaryDirectory() as tmp, Memory(tmp, config=config) as memory:
        began = time.perf_counter()
        seed(memory, users, args.episodes)
        print(f"seeded {args.users} users x {args.episodes} episodes in {time.perf_counter() - began:.0f} s; "
              f"RSS {rss_mb():.0f} MB", flush=True)
        stop = threading.Event()
        counts: dict[str, int] = {"search": 0, "add": 0, "ask": 0}
        errors: list[str] = []
        threads = [threading.Thread(target=worker, args=(memory, users, stop, n, counts, errors, not args.growing),
                                    daemon=True) for n in range(args.threads)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        samples: list[tuple[float, float]] = []
        while (elapsed := time.perf_counter() - start) < args.seconds:
            samples.append((elapsed, rss_mb()))
            print(f"  t={elapsed:5.0f} s  RSS {samples[-1][1]:7.1f} MB  ops {sum(counts.values()):6d}  "
                  f"caches: {caches(memory)}", flush=True)
            time.sleep(min(args.sample, max(0.0, args.seconds - elapsed)))
        samples.append((time.perf_counter() - start, rss_mb()))
        stop.set()
        for thread in threads:
            thread.join()
    late = [s for s in samples if s[0] >= args.seconds / 3]
    late_spread, slope = spread(late)
    middle = [mb for t, mb in late if t < 2 * args.seconds / 3]
    last = [mb for t, mb in late if t >= 2 * args.seconds / 3]
    drift = statistics.median(last) / statistics.median(middle) - 1 if middle and last else 0.0
    result = {"users": args.users, "episodes": args.episodes, "threads": args.threads, "seconds": args.seconds,
              "ops": counts, "errors": len(errors), "samples": samples, "late_spread": late_spread,
              "late_slope_mb_per_min": slope, "drift_last_vs_middle_third": drift,
              "rss_start_mb": samples[0][1], "rss_end_mb": samples[-1][1]}
    print(f"\nops: {counts}; errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    print(f"RSS {samples[0][1]:.0f} -> {samples[-1][1]:.0f} MB; over the last two thirds: spread "
          f"{100 * late_spread:.1f} % (target <= 5 %), slope {slope:+.1f} MB/min; median of the last third "
          f"vs the middle third {100 * drift:+.1f} %")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
