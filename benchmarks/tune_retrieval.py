"""Cross-validated choice of memagent's ranking settings on LoCoMo and LongMemEval together.

    python benchmarks/tune_retrieval.py ../shared/data/locomo/locomo_dev.json \\
        ../shared/data/longmemeval/longmemeval_oracle_dev.json [--keep DIR] [--json OUT]

Both files are ingested as ``locomo_retrieval.py`` and ``longmemeval_retrieval.py
--variant long --histories 5`` ingest them; each question is searched under every
candidate ``RetrievalSettings`` of the grid below and scored by recall@10 (LoCoMo:
share of gold dia_ids, categories 1-4; LongMemEval: turn recall_any@10). The groups
are the 5 LoCoMo conversations and the 5 LongMemEval histories; each group is held
out in turn, the candidate with the best mean of the two datasets' recall on the
other nine is chosen and scored on it (``cv.py``). One setting serves both datasets.
It prints the in-sample and cross-validated figures of the chosen setting and of
the current default, and the candidate chosen for each held-out group.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from cv import leave_one_group_out
from longmemeval_retrieval import histories, open_store, ranking_of, scored_questions
from tqdm import tqdm

from memagent import Config, RetrievalSettings
from memagent.eval import locomo, longmemeval
from memagent.eval.metrics import longmemeval_retrieval, recall_at_k

K = 10
DEFAULT = Config().retrieval


def grid() -> dict[str, RetrievalSettings]:
    """The candidates, the current default first (it wins ties)."""
    out = {"default": DEFAULT}
    for lexical, neighbours, context in itertools.product((0.5, 0.6, 0.7), (0, 1, 3), (True, False)):
        name = f"lex={lexical} neighbours={neighbours} context={context}"
        candidate = DEFAULT.model_copy(update={"lexical_weight": lexical, "vector_weight": round(1 - lexical, 2),
                                               "neighbour_hits": neighbours, "lexical_context": context})
        if candidate != DEFAULT:
            out[name] = candidate
    return out


def locomo_users(path: str) -> list[tuple[str, list[Any], list[Any]]]:
    return [(c.sample_id, [(s.session_id, None, s.turns) for s in c.sessions],
             [(q, c.reference_time) for q in c.questions if q.category in (1, 2, 3, 4) and q.evidence])
            for c in locomo.load(path)]


def run(locomo_path: str, lme_path: str, keep: str | None = None) -> dict[str, Any]:
    candidates = grid()
    scores: dict[str, dict[str, list[float]]] = {name: {} for name in candidates}
    dataset_of: dict[str, str] = {}
    with nullcontext(keep) if keep else tempfile.TemporaryDirectory() as folder:
        users = locomo_users(locomo_path)
        memory, _, _ = open_store(Path(folder) / "locomo", locomo_path, users, {"benchmark": "locomo"})
        for user, _, questions in tqdm(users, desc="locomo", unit="conv", file=sys.stderr, disable=None):
            dataset_of[user] = "locomo"
            for name, settings in candidates.items():
                scores[name][user] = [recall_at_k([h.episode.source_id for h in memory.search(
                    user, q.question, k=K, now=now, retrieval=settings)], q.evidence, K) for q, now in questions]
        memory.close()
        lme_users = histories(longmemeval.load(lme_path), "long", 5)
        memory, _, _ = open_store(Path(folder) / "lme", lme_path, lme_users,
                                  {"variant": "long", "histories": 5, "limit": None})
        for user, corpus, q in tqdm(scored_questions(lme_users), desc="longmemeval", unit="q", file=sys.stderr,
                                    disable=None):
            dataset_of[user] = "longmemeval"
            for name, settings in candidates.items():
                hits = memory.search(user, q.question, k=K, now=q.question_date, retrieval=settings)
                recall = longmemeval_retrieval(ranking_of(hits, corpus), q.answer_turn_ids, corpus, K)[0]
                scores[name].setdefault(user, []).append(recall)
        memory.close()
    result = leave_one_group_out(scores, dataset_of)
    default = {d: statistics.fmean(v for g, vs in scores["default"].items() if dataset_of[g] == d for v in vs)
               for d in ("locomo", "longmemeval")}
    return {**result, "default": default, "candidates": {n: s.model_dump() for n, s in candidates.items()},
            "means": {n: {d: statistics.fmean(v for g, vs in by.items() if dataset_of[g] == d for v in vs)
                          for d in ("locomo", "longmemeval")} for n, by in scores.items()}}


def print_report(result: dict[str, Any]) -> None:
    print(f"\nrecall@{K} by candidate (in-sample means):\n")
    print("| candidate | LoCoMo 1-4 | LongMemEval long |\n|---|---:|---:|")
    for name, means in sorted(result["means"].items(), key=lambda kv: -sum(kv[1].values())):
        print(f"| {name} | {100 * means['locomo']:.1f} | {100 * means['longmemeval']:.1f} |")
    print(f"\nchosen on all groups: {result['overall']}")
    print("chosen per held-out group: " + ", ".join(f"{g}: {c}" for g, c in result["chosen"].items()))
    for name in ("default", "in_sample", "cross_validated"):
        figures = result[name]
        print(f"{name:>16}: LoCoMo {100 * figures['locomo']:.1f}, LongMemEval {100 * figures['longmemeval']:.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("locomo_file")
    parser.add_argument("longmemeval_file")
    parser.add_argument("--keep", help="keep the ingested stores in this directory and reuse them")
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args(argv)
    result = run(args.locomo_file, args.longmemeval_file, args.keep)
    print_report(result)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
