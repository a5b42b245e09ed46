"""Turn-level evidence recall@k on a LoCoMo-format file: memagent vs BM25-only vs vector-only.

    python benchmarks/locomo_retrieval.py ../shared/data/locomo/locomo_dev.json [--json OUT]
    python benchmarks/locomo_retrieval.py FILE --store embedded-postgres [--engine-search]

Each conversation becomes its own user; every turn is added with its session
date as event time and its dia_id as the caller's message id. Each question
of categories 1-4 is searched with the question text at the conversation's
reference date (the day after its last session). recall@k is the share of the
question's gold evidence dia_ids among the top k distinct dia_ids returned.
All three systems search the same stored turns in the same run.

``--store`` stores in PostgreSQL (a URL of an empty database, or ``embedded-postgres``
for a throw-away server) instead of a temporary LanceDB directory. Users of this size
are searched in process from a per-user copy whatever the engine; ``--engine-search``
sends every search to the engine's own full-text and vector indexes instead.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from collections import defaultdict

from common import data_store, locomo_main
from tqdm import tqdm

from memagent import Config, Memory, RetrievalSettings
from memagent.eval.locomo import CATEGORIES, load
from memagent.eval.metrics import percentile, recall_at_k

KS = (1, 5, 10, 20)
PLAIN = RetrievalSettings(lexical_context=False, neighbour_hits=0)
SYSTEMS = {
    # memagent's default search, exactly as Memory.search runs it
    "memagent": {},
    # baselines: plain BM25 over each turn's own text, plain cosine similarity
    "bm25-only": {"signals": {"lexical"}, "use_time": False, "retrieval": PLAIN},
    "vector-only": {"signals": {"vector"}, "use_time": False, "retrieval": PLAIN},
}


def run(path: str, limit: int | None = None, store: str | None = None, engine_search: bool = False) -> dict:
    conversations = load(path)[:limit] if limit else load(path)
    config = Config()
    if engine_search:
        config = config.model_copy(update={"storage": config.storage.model_copy(
            update={"exact_search_max_user_rows": 0})})
    with data_store(store) as data_dir:
        memory = Memory(data_dir, config=config)
        memory.embedder.embed(["warm-up"])  # model load is not ingest time
        turns, ingest_s = 0, 0.0
        for conv in tqdm(conversations, desc="ingest", unit="conv", file=sys.stderr, disable=None):
            for session in conv.sessions:
                start = time.perf_counter()
                memory.add(conv.sample_id, session.turns, session_id=session.session_id)
                ingest_s += time.perf_counter() - start
                turns += len(session.turns)
        recalls: dict[str, dict[int, dict[int, list[float]]]] = {
            s: defaultdict(lambda: defaultdict(list)) for s in SYSTEMS}
        latencies: list[float] = []
        questions = [(c, q) for c in conversations for q in c.questions if q.category in (1, 2, 3, 4) and q.evidence]
        for conv, q in tqdm(questions, desc="search", unit="q", file=sys.stderr, disable=None):
            for system, options in SYSTEMS.items():
                start = time.perf_counter()
                hits = memory.search(conv.sample_id, q.question, k=max(KS), now=conv.reference_time, **options)
                if system == "memagent":
                    latencies.append((time.perf_counter() - start) * 1000)
                dia_ids = [h.episode.source_id for h in hits]
                for k in KS:
                    recalls[system][q.category][k].append(recall_at_k(dia_ids, q.evidence, k))
        memory.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {**summarise(recalls, turns, ingest_s, latencies, peak_mb, len(conversations)),
            "store": "postgres" if store else "lance", "engine_search": engine_search}


def summarise(recalls, turns, ingest_s, latencies, peak_mb, n_conv) -> dict:
    table: dict[str, dict[str, dict]] = {}
    for system, by_cat in recalls.items():
        rows = {}
        for cat in sorted(by_cat):
            rows[f"{cat} {CATEGORIES[cat]}"] = {"n": len(by_cat[cat][KS[0]]),
                                                **{f"R@{k}": statistics.mean(by_cat[cat][k]) for k in KS}}
        every = {k: [v for cat in by_cat for v in by_cat[cat][k]] for k in KS}
        rows["overall 1-4"] = {"n": len(every[KS[0]]), **{f"R@{k}": statistics.mean(every[k]) for k in KS}}
        table[system] = rows
    return {
        "conversations": n_conv, "turns": turns, "recall": table,
        "ingest_turns_per_s": turns / ingest_s if ingest_s else 0.0,
        "search_ms_p50": percentile(latencies, 0.50), "search_ms_p95": percentile(latencies, 0.95),
        "peak_rss_mb": peak_mb,
    }


def print_report(result: dict) -> None:
    print(f"\nLoCoMo turn-level evidence recall, {result['conversations']} conversations, "
          f"{result['turns']} turns, store {result['store']}{', engine search' if result['engine_search'] else ''}"
          " (categories: 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop)\n")
    print("| system | category | n | " + " | ".join(f"R@{k}" for k in KS) + " |")
    print("|---|---|---:|" + "---:|" * len(KS))
    for system, rows in result["recall"].items():
        for name, row in rows.items():
            cells = " | ".join(f"{100 * row[f'R@{k}']:.1f}" for k in KS)
            print(f"| {system} | {name} | {row['n']} | {cells} |")
    ours = result["recall"]["memagent"]["overall 1-4"]["R@10"]
    bm25 = result["recall"]["bm25-only"]["overall 1-4"]["R@10"]
    vec = result["recall"]["vector-only"]["overall 1-4"]["R@10"]
    print(f"\nrecall@10 overall: memagent {100 * ours:.1f} %, {ours / bm25:.3f}x BM25-only, "
          f"{ours / vec:.3f}x vector-only")
    print(f"ingest: {result['ingest_turns_per_s']:.0f} turns/s | search p50 {result['search_ms_p50']:.1f} ms, "
          f"p95 {result['search_ms_p95']:.1f} ms | peak RSS {result['peak_rss_mb']:.0f} MB")


def main(argv: list[str] | None = None) -> None:
    locomo_main(__doc__, run, print_report, argv, store=True)


if __name__ == "__main__":
    main()
