"""Turn- and session-level recall on a LongMemEval-format file: memagent vs BM25-only vs vector-only.

    python benchmarks/longmemeval_retrieval.py ../shared/data/longmemeval/longmemeval_oracle_dev.json
    python benchmarks/longmemeval_retrieval.py FILE --variant long --histories 5 [--json OUT] [--keep DIR]

Two variants of the same questions:

- ``oracle``: each question's own haystack is its own user, as the file gives it
  (for the oracle file: the evidence sessions only, so ranking is easy);
- ``long``: the file's sessions pooled into ``--histories`` long per-user histories
  (question ``i`` of the file sorted by id goes to history ``i mod H``; a history holds
  every session of its questions, once, sorted by date), and each question is searched
  over its whole history. This is where ranking long user and assistant turns is tested.

Every turn is added with its session date as event time and ``<session id>_<turn
number>`` as the caller's message id; each question is searched with its text at its
``question_date``. Metrics are the official ones: recall_any@k and ndcg_any@k over the
turns of the question's corpus, and the same ranking read at session level (k widened
until k distinct sessions are in). Abstention questions and questions without evidence
turns are not scored. All three systems search the same stored turns in the same run.
``--keep DIR`` keeps the ingested store in DIR and reuses it on the next run.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from tqdm import tqdm

from memagent import Memory, RetrievalSettings
from memagent.eval import longmemeval
from memagent.eval.metrics import longmemeval_retrieval, longmemeval_session_retrieval, percentile

KS = (1, 5, 10, 30)
PLAIN = RetrievalSettings(lexical_context=False, neighbour_hits=0)
SYSTEMS: dict[str, dict[str, Any]] = {
    "memagent": {},
    "bm25-only": {"signals": {"lexical"}, "use_time": False, "retrieval": PLAIN},
    "vector-only": {"signals": {"vector"}, "use_time": False, "retrieval": PLAIN},
}


def histories(items: list[longmemeval.Haystack], variant: str, n: int) -> list[tuple[str, list[Any], list[Any]]]:
    """(user id, sessions sorted by date, questions) for each user the variant ingests."""
    if variant == "oracle":
        return [(f"lme-{item.question_id}", item.sessions, [item]) for item in items]
    groups: list[list[longmemeval.Haystack]] = [[] for _ in range(n)]
    for index, item in enumerate(sorted(items, key=lambda i: i.question_id)):
        groups[index % n].append(item)
    out = []
    for number, group in enumerate(groups):
        sessions = {sid: (sid, when, turns) for item in group for sid, when, turns in item.sessions}
        out.append((f"lme-history-{number}", sorted(sessions.values(), key=lambda s: (s[1], s[0])), group))
    return out


def open_store(folder: str | Path, path: str, users: list[tuple[str, list[Any], list[Any]]],
               key: dict[str, Any]) -> tuple[Memory, int, float]:
    """A memory in ``folder`` holding ``users``' sessions: reused if ``folder`` holds the same
    ingest (``key``), else ingested. Returns it, the turn count and the ingest seconds (0 if reused)."""
    marker = Path(folder) / "ingested.json"
    reuse = marker.exists() and json.loads(marker.read_text()) == {"file": str(path), **key}
    memory = Memory(Path(folder) / "memory")
    memory.embedder.embed(["warm-up"])  # model load is not ingest time
    turns, ingest_s = sum(len(t) for _, sessions, _ in users for _, _, t in sessions), 0.0
    if not reuse:
        for user, sessions, _ in tqdm(users, desc="ingest", unit="user", file=sys.stderr, disable=None):
            for sid, _, session_turns in sessions:
                if session_turns:
                    start = time.perf_counter()
                    memory.add(user, session_turns, session_id=sid)
                    ingest_s += time.perf_counter() - start
        marker.write_text(json.dumps({"file": str(path), **key}))
    return memory, turns, ingest_s


def scored_questions(users: list[tuple[str, list[Any], list[Any]]]) -> list[tuple[str, list[str], Any]]:
    """(user, the turn ids of its corpus, question) for each question that is scored."""
    out = []
    for user, sessions, group in users:
        corpus = [t["id"] for _, _, session_turns in sessions for t in session_turns]
        out.extend((user, corpus, q) for q in group if not q.abstention and q.answer_turn_ids)
    return out


def ranking_of(hits: list[Any], corpus: list[str]) -> list[int]:
    position = {tid: n for n, tid in enumerate(corpus)}
    return [position[i] for i in dict.fromkeys(h.episode.source_id for h in hits) if i in position]


def run(path: str, variant: str = "oracle", n_histories: int = 5, limit: int | None = None,
        keep: str | None = None) -> dict[str, Any]:
    items = longmemeval.load(path)[:limit]
    users = histories(items, variant, n_histories)
    with nullcontext(keep) if keep else tempfile.TemporaryDirectory() as folder:
        memory, turns, ingest_s = open_store(folder, path, users,
                                             {"variant": variant, "histories": n_histories, "limit": limit})
        scores: dict[str, list[dict[str, Any]]] = defaultdict(list)
        latencies: list[float] = []
        questions = scored_questions(users)
        for user, corpus, q in tqdm(questions, desc="search", unit="q", file=sys.stderr, disable=None):
            for system, options in SYSTEMS.items():
                start = time.perf_counter()
                hits = memory.search(user, q.question, k=max(KS), now=q.question_date, **options)
                if system == "memagent":
                    latencies.append((time.perf_counter() - start) * 1000)
                scores[system].append({"id": q.question_id, "type": q.question_type, "user": user,
                                       **score(ranking_of(hits, corpus), q.answer_turn_ids, corpus)})
        memory.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "users": len(users), "questions": len(items), "scored": len(questions),
            "turns": turns, "ingest_turns_per_s": turns / ingest_s if ingest_s else None,
            "search_ms_p50": percentile(latencies, 0.5), "search_ms_p95": percentile(latencies, 0.95),
            "peak_rss_mb": peak_mb, "scores": dict(scores), "table": table(scores)}


def score(ranking: list[int], answer_turns: list[str], corpus: list[str]) -> dict[str, float]:
    out = {}
    for k in KS:
        any_, _, ndcg = longmemeval_retrieval(ranking, answer_turns, corpus, k)
        out[f"turn R@{k}"], out[f"turn NDCG@{k}"] = any_, ndcg
        out[f"session R@{k}"] = longmemeval_session_retrieval(ranking, answer_turns, corpus, k)[0]
    return out


METRICS = ("turn R@5", "turn R@10", "turn NDCG@10", "session R@5", "session R@10", "turn R@30")


def table(scores: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for system, rows in scores.items():
        groups = defaultdict(list)
        for row in rows:
            groups[row["type"]].append(row)
        groups["overall"] = rows
        out[system] = {name: {"n": len(group), **{m: statistics.mean(r[m] for r in group) for m in METRICS}}
                       for name, group in sorted(groups.items(), key=lambda g: (g[0] == "overall", g[0]))}
    return out


def print_report(result: dict[str, Any]) -> None:
    print(f"\nLongMemEval retrieval, variant {result['variant']}: {result['users']} users, "
          f"{result['questions']} questions ({result['scored']} scored: not abstention, with evidence turns), "
          f"{result['turns']} turns\n")
    print("| system | question type | n | " + " | ".join(METRICS) + " |")
    print("|---|---|---:|" + "---:|" * len(METRICS))
    for system, rows in result["table"].items():
        for name, row in rows.items():
            print(f"| {system} | {name} | {row['n']} | " + " | ".join(f"{100 * row[m]:.1f}" for m in METRICS) + " |")
    if result["scored"]:
        ours, bm25 = (result["table"][s]["overall"]["turn R@10"] for s in ("memagent", "bm25-only"))
        print(f"\nturn recall_any@10 overall: memagent {100 * ours:.1f} %, {ours / bm25:.3f}x BM25-only")
    rate = result["ingest_turns_per_s"]
    print(f"ingest: {f'{rate:.1f} turns/s' if rate else 'reused'} | search p50 {result['search_ms_p50']:.1f} ms, "
          f"p95 {result['search_ms_p95']:.1f} ms | peak RSS {result['peak_rss_mb']:.0f} MB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="a LongMemEval-format JSON file")
    parser.add_argument("--variant", choices=("oracle", "long"), default="oracle")
    parser.add_argument("--histories", type=int, default=5, help="long variant: how many pooled histories")
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--keep", help="keep the ingested store in this directory and reuse it")
    parser.add_argument("--json", dest="json_out", help="write the figures to this file")
    args = parser.parse_args(argv)
    result = run(args.file, args.variant, args.histories, args.limit, args.keep)
    print_report(result)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
