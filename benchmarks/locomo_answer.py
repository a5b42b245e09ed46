"""Answering by route on a LoCoMo-format file: routing, evidence recall by route, LLM-free F1, abstention.

    python benchmarks/locomo_answer.py ../shared/data/locomo/locomo_dev.json [--json OUT]

Each conversation becomes its own user; every turn is added with its session
date and dia_id, then consolidated (no LLM). Every question is asked with
``Memory.ask`` at the conversation's reference date (the day after its last
session), once routed by the routing policy and once forced down the
extraction route (the single fixed route), in the same run. Printed:

* routing accuracy against the category proxy (4 single-hop and 2 temporal ->
  extraction, 1 multi-hop -> abstraction, 3 open-domain -> generalization) with
  its confusion matrix, and on the project's labelled set (tests/data);
* evidence recall@10 per category, routed vs fixed route;
* LLM-free answer F1 per category (LoCoMo's official scoring) and overall 1-4;
* abstention rate on category 5 (adversarial) and false abstentions on 1-4;
* p50/p95 answer latency and mean context tokens.

LoCoMo categories: 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop, 5 adversarial.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from common import locomo_main
from tqdm import tqdm

from memagent import Memory
from memagent.eval.locomo import CATEGORIES, load
from memagent.eval.metrics import locomo_qa_score, percentile, recall_at_k
from memagent.routing import Router
from memagent.types import Route

PROXY = {1: Route.ABSTRACTION, 2: Route.EXTRACTION, 3: Route.GENERALIZATION, 4: Route.EXTRACTION}
LABELLED = Path(__file__).resolve().parent.parent / "tests" / "data" / "routing_questions.jsonl"


def labelled_accuracy(router: Router) -> tuple[float, int]:
    items = [json.loads(line) for line in LABELLED.read_text("utf-8").splitlines() if line.strip()]
    right = sum(router.route(i["question"]).route.value == i["route"] for i in items)
    return right / len(items), len(items)


def run(path: str, limit: int | None = None) -> dict:
    conversations = load(path)[:limit] if limit else load(path)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as data_dir:
        memory = Memory(data_dir)
        memory.embedder.embed(["warm-up"])
        for conv in tqdm(conversations, desc="ingest+consolidate", file=sys.stderr, disable=None):
            for session in conv.sessions:
                memory.add(conv.sample_id, session.turns, session_id=session.session_id)
            memory.consolidate(conv.sample_id)
        questions = [(c, q) for c in conversations for q in c.questions]
        for conv, q in tqdm(questions, desc="ask", file=sys.stderr, disable=None):
            routed = memory.ask(conv.sample_id, q.question, at=conv.reference_time)
            fixed = memory.ask(conv.sample_id, q.question, at=conv.reference_time, route=Route.EXTRACTION)
            found = memory.episodes.get(conv.sample_id, routed.episode_ids + fixed.episode_ids)
            dia = {e.id: e.source_id for e in found}
            gold = q.answer if q.answer is not None else ""
            rows.append({
                "category": q.category, "route": routed.route.value, "abstained": routed.abstained,
                "f1": locomo_qa_score(routed.text, gold, q.category), "latency_ms": routed.latency_ms,
                "tokens": routed.context_tokens, "evidence": q.evidence,
                "recall_routed": (recall_at_k([dia.get(i) for i in routed.episode_ids], q.evidence, 10)
                                  if q.evidence else None),
                "recall_fixed": (recall_at_k([dia.get(i) for i in fixed.episode_ids], q.evidence, 10)
                                 if q.evidence else None),
            })
        accuracy, n_labelled = labelled_accuracy(Router(memory.embedder))
    return summarise(rows, accuracy, n_labelled)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def summarise(rows: list[dict], labelled: float, n_labelled: int) -> dict:
    core = [r for r in rows if r["category"] in PROXY]
    confusion = Counter((PROXY[r["category"]].value, r["route"]) for r in core)
    by_cat = defaultdict(list)
    for r in rows:
        by_cat[r["category"]].append(r)
    table = {}
    for cat in sorted(by_cat):
        items = by_cat[cat]
        table[f"{cat} {CATEGORIES[cat]}"] = {
            "n": len(items), "f1": _mean(r["f1"] for r in items) if cat != 5 else None,
            "recall_routed": _mean(r["recall_routed"] for r in items),
            "recall_fixed": _mean(r["recall_fixed"] for r in items),
            "abstained": _mean(float(r["abstained"]) for r in items)}
    return {
        "questions": len(rows),
        "routing_proxy_accuracy": _mean(float(PROXY[r["category"]].value == r["route"]) for r in core),
        "routing_labelled_accuracy": labelled, "labelled_questions": n_labelled,
        "confusion": {f"{g}->{p}": n for (g, p), n in sorted(confusion.items())}, "by_category": table,
        "f1_overall_1_4": _mean(r["f1"] for r in core),
        "recall_routed_1_4": _mean(r["recall_routed"] for r in core),
        "recall_fixed_1_4": _mean(r["recall_fixed"] for r in core),
        "abstention_cat5": _mean(float(r["abstained"]) for r in rows if r["category"] == 5),
        "false_abstention_1_4": _mean(float(r["abstained"]) for r in core),
        "latency_ms_p50": percentile([r["latency_ms"] for r in rows], 0.5),
        "latency_ms_p95": percentile([r["latency_ms"] for r in rows], 0.95),
        "context_tokens_mean": _mean(r["tokens"] for r in rows),
    }


def print_report(r: dict) -> None:
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    print(f"\nLoCoMo answering by route, {r['questions']} questions, no LLM "
          "(categories: 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop, 5 adversarial)\n")
    print(f"routing accuracy: labelled set {pct(r['routing_labelled_accuracy'])} % "
          f"({r['labelled_questions']} questions), "
          f"LoCoMo category proxy {pct(r['routing_proxy_accuracy'])} % (categories 1-4)\n")
    routes = [x.value for x in Route]
    print("| proxy route \\ predicted | " + " | ".join(routes) + " |\n|---|" + "---:|" * len(routes))
    for gold in routes:
        print(f"| {gold} | " + " | ".join(str(r["confusion"].get(f"{gold}->{p}", 0)) for p in routes) + " |")
    print("\n| category | n | F1 | R@10 routed | R@10 fixed (extraction) | abstained |\n|---|---:|---:|---:|---:|---:|")
    for cat, row in r["by_category"].items():
        print(f"| {cat} | {row['n']} | {pct(row['f1'])} | {pct(row['recall_routed'])} | {pct(row['recall_fixed'])} | "
              f"{pct(row['abstained'])} |")
    print(f"\nLLM-free F1 overall 1-4: {pct(r['f1_overall_1_4'])} | "
          f"R@10 overall 1-4 routed {pct(r['recall_routed_1_4'])} vs fixed {pct(r['recall_fixed_1_4'])}")
    print(f"abstention on category 5: {pct(r['abstention_cat5'])} % | false abstentions on 1-4: "
          f"{pct(r['false_abstention_1_4'])} %")
    print(f"answer latency p50 {r['latency_ms_p50']:.1f} ms, p95 {r['latency_ms_p95']:.1f} ms | "
          f"context tokens mean {r['context_tokens_mean']:.0f} | LLM calls 0")


def main(argv: list[str] | None = None) -> None:
    locomo_main(__doc__, run, print_report, argv)


if __name__ == "__main__":
    main()
