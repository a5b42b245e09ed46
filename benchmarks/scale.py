"""Batch ingest throughput and search latency for one user with N episodes (default 10,000).

    python benchmarks/scale.py [--episodes 10000] [--batch 500] [--queries 200] [--json OUT]

The episodes are generated sentences of LoCoMo-like length (about 20 words),
spread over sessions and dates, with 2,000 episodes of another user in the same
table so every query really filters by user. Printed beside the figures, as a
baseline from the same process: the embedder's own throughput on the same
texts (with the speaker prefix ingest embeds, in the same batch size), which
bounds ingest from above on this machine. Last, the cost of ``delete_user`` of the
2,000-episode user (its rows, the data files that held them rewritten, indexes
rebuilt), beside one ``optimize`` of the same store.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from datetime import datetime, timedelta, timezone

from memagent import Memory
from memagent.eval.metrics import percentile

NAMES = ["Ana", "Joe", "Mia", "Sam", "Lee", "Ravi", "Olga", "Tom", "Ines", "Kofi"]
PLACES = ["Lisbon", "the park", "the office", "the lake", "Berlin", "the gym", "the library", "Kyoto", "the market"]
THINGS = ["a red bike", "sourdough bread", "a jazz concert", "a pottery class", "a chess match", "tomato plants",
          "a marathon", "a watercolour painting", "a camping trip", "a new laptop", "a rescue puppy", "a book club"]
FEELINGS = ["really happy", "a bit nervous", "exhausted but proud", "surprised", "relaxed", "excited"]
TEMPLATES = [
    "Last weekend I went to {place} with {name} for {thing}, and honestly I felt {feeling} the whole time.",
    "{name} told me about {thing} at {place}; I think I might try it myself next month if work calms down.",
    "I have been thinking about {thing} a lot lately, since {name} brought it up when we were at {place}.",
    "Do you remember when {name} and I planned {thing}? We finally did it at {place} and I was {feeling}.",
    "My week was busy: work deadlines, {thing} on Tuesday, and dinner with {name} near {place} on Friday.",
]


def sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(TEMPLATES).format(name=rng.choice(NAMES), place=rng.choice(PLACES),
                                         thing=rng.choice(THINGS), feeling=rng.choice(FEELINGS))
            + f" (note {i})" for i in range(n)]


def role(i: int) -> str:
    return "user" if i % 2 == 0 else "assistant"


def ingest(memory: Memory, user: str, texts: list[str], batch: int) -> float:
    start_day = datetime(2022, 1, 1, tzinfo=timezone.utc)
    start = time.perf_counter()
    for offset in range(0, len(texts), batch):
        session = offset // batch
        when = start_day + timedelta(days=3 * session)
        messages = [{"id": f"{user}-{offset + i}", "role": role(i),
                     "text": text, "timestamp": when}
                    for i, text in enumerate(texts[offset:offset + batch])]
        memory.add(user, messages, session_id=f"s{session}")
    return time.perf_counter() - start


def run(episodes: int, batch: int, queries: int) -> dict:
    texts = sentences(episodes, seed=1)
    with tempfile.TemporaryDirectory() as data_dir:
        memory = Memory(data_dir)
        memory.embedder.embed(["warm-up"])
        # The upper bound: the embedder alone on exactly what ingest embeds (speaker prefix included),
        # in the same batches.
        sample = [f"{role(i)}: {text}" if memory.config.embed_role else text for i, text in enumerate(texts[:1000])]

        def embed_alone() -> float:
            start = time.perf_counter()
            for offset in range(0, len(sample), batch):
                memory.embedder.embed(sample[offset:offset + batch])
            return time.perf_counter() - start

        ingest(memory, "other-user", sentences(2000, seed=2), batch)
        before = embed_alone()
        seconds = ingest(memory, "user", texts, batch)
        embed_rate = 2 * len(sample) / (before + embed_alone())  # before and after: drift on a noisy machine cancels
        rng = random.Random(3)
        questions = [f"When did I go to {rng.choice(PLACES)} with {rng.choice(NAMES)}?" if i % 2 else
                     f"What did {rng.choice(NAMES)} say about {rng.choice(THINGS)}?" for i in range(queries)]
        memory.search("user", questions[0])
        latencies = []
        for question in questions:
            start = time.perf_counter()
            hits = memory.search("user", question, k=10, now="2024-01-01")
            latencies.append((time.perf_counter() - start) * 1000)
            assert all(h.episode.user_id == "user" for h in hits)
        start = time.perf_counter()
        for question in questions[:50]:
            memory.embedder.embed([question])
        embed_ms = (time.perf_counter() - start) * 1000 / 50
        indexes = memory.backend.stats()
        # delete_user of the other user: rows out, its data files rewritten, indexes rebuilt, versions purged;
        # beside it, as a baseline in the same store, one compaction and clean-up (optimize)
        start = time.perf_counter()
        memory.optimize()
        optimize_s = time.perf_counter() - start
        start = time.perf_counter()
        memory.delete_user("other-user")
        delete_s = time.perf_counter() - start
        assert memory.count("user") == episodes and memory.users() == ["user"]
    return {
        "episodes": episodes, "batch": batch, "ingest_turns_per_s": episodes / seconds,
        "embedder_only_texts_per_s": embed_rate,
        "search_ms_p50": percentile(latencies, 0.5), "search_ms_p95": percentile(latencies, 0.95),
        "query_embedding_ms": embed_ms, "indexes": indexes, "delete_user_s": delete_s, "optimize_s": optimize_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args(argv)
    result = run(args.episodes, args.batch, args.queries)
    print(f"\none user with {result['episodes']} episodes (+2,000 of another user), batches of {result['batch']}\n")
    print("| measure | value |\n|---|---:|")
    print(f"| batch ingest | {result['ingest_turns_per_s']:.0f} turns/s |")
    print(f"| embedder alone, same texts (upper bound) | {result['embedder_only_texts_per_s']:.0f} texts/s |")
    print(f"| ingest / embedder-alone | {result['ingest_turns_per_s'] / result['embedder_only_texts_per_s']:.2f} |")
    print(f"| search p50 | {result['search_ms_p50']:.1f} ms |")
    print(f"| search p95 | {result['search_ms_p95']:.1f} ms |")
    print(f"| of which query embedding (mean) | {result['query_embedding_ms']:.1f} ms |")
    print(f"| delete_user of the 2,000-episode user (files rewritten, indexes rebuilt) | "
          f"{result['delete_user_s']:.1f} s |")
    print(f"| one optimize of the same store (baseline) | {result['optimize_s']:.1f} s |")
    print(f"| peak RSS | {result['peak_rss_mb']:.0f} MB |")
    print(f"| indexes | {', '.join(f'{k} ({v})' for k, v in result['indexes'].items())} |")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
