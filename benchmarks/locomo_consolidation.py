"""Consolidation on a LoCoMo-format file: extracted statements vs the gold observations.

    python benchmarks/locomo_consolidation.py ../shared/data/locomo/locomo_dev.json [--json OUT]

Each conversation becomes its own user (every turn added with its session date
and its dia_id as the caller's id), then ``Memory.consolidate`` runs with no
LLM. The profile statements are compared with LoCoMo's ``observation`` field
(per session and speaker, each observation with its dia_id evidence):

* observation recall: share of gold observations matched by a statement about
  the same speaker that shares an evidence dia_id and has embedding cosine >= 0.6;
* precision proxy: share of statements that match some observation by that rule;
* statements per turn; duplicates: share of statements with another statement of
  the same subject at cosine >= 0.92 (any category), and exact-text duplicates;
* consolidation throughput in turns/s (model load excluded);
* turn-level evidence recall@10 on questions of categories 1-4 with derived
  items searchable vs episodes only, both searched after consolidation.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np
from common import locomo_main
from tqdm import tqdm

from memagent import Memory
from memagent.eval import read_json_list
from memagent.eval.locomo import CATEGORIES, clean_evidence, load
from memagent.eval.metrics import recall_at_k
from memagent.types import Signal

MATCH_COSINE = 0.6
DUPLICATE_COSINE = 0.92
EPISODES_ONLY = {Signal.LEXICAL, Signal.VECTOR, Signal.TIME, Signal.NEIGHBOUR}


def gold_observations(raw: dict, known: set[str]) -> list[tuple[str, str, list[str]]]:
    """(speaker, text, evidence dia_ids) of every observation of one conversation."""
    found = []
    for session in raw.get("observation", {}).values():
        for speaker, items in session.items():
            for item in items:
                text, evidence = item[0], item[1] if len(item) > 1 else []
                evidence = [evidence] if isinstance(evidence, str) else list(evidence)
                found.append((speaker, text, clean_evidence(evidence, known)))
    return found


def score_conversation(memory: Memory, user: str, observations) -> dict:
    profile = memory.tiers.profile(user)
    rows = [n for n, s in enumerate(profile.statements) if s.kind == "statement"]
    statements = [profile.statements[n] for n in rows]
    vectors = profile.vectors[rows] if rows else np.zeros((0, memory.embedder.dimension), np.float32)
    dia = {}
    for s in statements:
        for e in memory.episodes.get(user, list(s.evidence_ids)):
            dia[e.id] = e.source_id
    evidence = [{dia.get(i) for i in s.evidence_ids} for s in statements]
    subjects = [s.subject.lower() for s in statements]
    obs_vectors = memory.embedder.embed([o[1] for o in observations]) if observations else vectors[:0]
    sims = obs_vectors @ vectors.T if len(statements) else np.zeros((len(observations), 0))
    matched_obs, matched_statements = 0, set()
    for i, (speaker, _, ev) in enumerate(observations):
        ok = [j for j in range(len(statements))
              if subjects[j] == speaker.lower() and evidence[j] & set(ev) and sims[i, j] >= MATCH_COSINE]
        matched_obs += bool(ok)
        matched_statements.update(ok)
    self_sims = vectors @ vectors.T if len(statements) else np.zeros((0, 0))
    duplicates = sum(1 for j in range(len(statements))
                     if any(self_sims[j, m] >= DUPLICATE_COSINE and subjects[m] == subjects[j]
                            for m in range(len(statements)) if m != j))
    texts = [" ".join(s.text.lower().split()) for s in statements]
    return {"observations": len(observations), "matched_observations": matched_obs,
            "statements": len(statements), "matched_statements": len(matched_statements),
            "near_duplicates": duplicates, "exact_duplicates": len(texts) - len(set(texts)),
            "summaries": sum(1 for s in profile.statements if s.kind == "summary")}


def run(path: str, limit: int | None = None) -> dict:
    conversations = load(path)[:limit] if limit else load(path)
    raws = read_json_list(path, "LoCoMo", "conversations")
    per_conv, turns, consolidate_s = {}, 0, 0.0
    recalls: dict[str, dict[int, list[float]]] = {"episodes only": defaultdict(list), "with derived": defaultdict(list)}
    counts: dict[str, int] = defaultdict(int)
    with tempfile.TemporaryDirectory() as data_dir:
        memory = Memory(data_dir)
        memory.embedder.embed(["warm-up"])
        for conv, raw in tqdm(list(zip(conversations, raws)), desc="conversations", file=sys.stderr, disable=None):
            for session in conv.sessions:
                memory.add(conv.sample_id, session.turns, session_id=session.session_id)
                turns += len(session.turns)
            start = time.perf_counter()
            for key, value in memory.consolidate(conv.sample_id).items():
                counts[key] += value
            consolidate_s += time.perf_counter() - start
            per_conv[conv.sample_id] = score_conversation(memory, conv.sample_id, gold_observations(raw, conv.dia_ids))
            for q in conv.questions:
                if q.category not in (1, 2, 3, 4) or not q.evidence:
                    continue
                for name, signals in (("episodes only", EPISODES_ONLY), ("with derived", None)):
                    hits = memory.search(conv.sample_id, q.question, k=10, now=conv.reference_time, signals=signals)
                    recalls[name][q.category].append(recall_at_k([h.episode.source_id for h in hits], q.evidence, 10))
    return summarise(per_conv, recalls, turns, consolidate_s, dict(counts))


def summarise(per_conv: dict, recalls: dict, turns: int, seconds: float, counts: dict) -> dict:
    total = {k: sum(c[k] for c in per_conv.values()) for k in next(iter(per_conv.values()))}
    recall_table = {}
    for name, by_cat in recalls.items():
        rows = {f"{cat} {CATEGORIES[cat]}": {"n": len(v), "R@10": statistics.mean(v)}
                for cat, v in sorted(by_cat.items())}
        every = [x for v in by_cat.values() for x in v]
        rows["overall 1-4"] = {"n": len(every), "R@10": statistics.mean(every)}
        recall_table[name] = rows
    return {
        "conversations": len(per_conv), "turns": turns, "per_conversation": per_conv, "total": total,
        "observation_recall": total["matched_observations"] / max(1, total["observations"]),
        "precision_proxy": total["matched_statements"] / max(1, total["statements"]),
        "statements_per_turn": total["statements"] / max(1, turns),
        "near_duplicate_rate": total["near_duplicates"] / max(1, total["statements"]),
        "exact_duplicate_rate": total["exact_duplicates"] / max(1, total["statements"]),
        "consolidation_turns_per_s": turns / seconds if seconds else 0.0,
        "consolidation_counts": counts, "recall": recall_table,
    }


def print_report(r: dict) -> None:
    print(f"\nLoCoMo consolidation, {r['conversations']} conversations, {r['turns']} turns, no LLM\n")
    print("| conversation | observations | matched | statements | matching obs. | near-dup. |")
    print("|---|---:|---:|---:|---:|---:|")
    for sample, c in {**r["per_conversation"], "total": r["total"]}.items():
        print(f"| {sample} | {c['observations']} | {c['matched_observations']} | {c['statements']} | "
              f"{c['matched_statements']} | {c['near_duplicates']} |")
    print(f"\nobservation recall {100 * r['observation_recall']:.1f} % "
          f"(cosine >= {MATCH_COSINE}, shared evidence, same speaker)")
    print(f"precision proxy {100 * r['precision_proxy']:.1f} % | statements per turn {r['statements_per_turn']:.2f} | "
          f"near-duplicates {100 * r['near_duplicate_rate']:.1f} % (cosine >= {DUPLICATE_COSINE}) | "
          f"exact duplicates {100 * r['exact_duplicate_rate']:.1f} %")
    print(f"consolidation throughput {r['consolidation_turns_per_s']:.0f} turns/s | counts {r['consolidation_counts']}")
    print("\n| search | category | n | R@10 |\n|---|---|---:|---:|")
    for name, rows in r["recall"].items():
        for cat, row in rows.items():
            print(f"| {name} | {cat} | {row['n']} | {100 * row['R@10']:.1f} |")
    base, ours = r["recall"]["episodes only"]["overall 1-4"]["R@10"], r["recall"]["with derived"]["overall 1-4"]["R@10"]
    print(f"\nrecall@10 overall 1-4: with derived items {100 * ours:.1f} % vs episodes only {100 * base:.1f} % "
          f"({100 * (ours - base):+.1f} points)")


def main(argv: list[str] | None = None) -> None:
    locomo_main(__doc__, run, print_report, argv)


if __name__ == "__main__":
    main()
