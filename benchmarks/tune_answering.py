"""Leave-one-group-out choice of the LLM-free answer's constants on LoCoMo and LongMemEval together.

    python benchmarks/tune_answering.py ../shared/data/locomo/locomo_dev.json \\
        ../shared/data/longmemeval/longmemeval_oracle_dev.json \\
        --set SPAN_WEIGHT=0,0.15,0.5 --set NEW_WORD=0,0.015,0.06 [--json OUT]

``--set NAME=v1,v2,...`` names a constant of ``memagent.answering`` (or of
``memagent.policies.answering``, as ``policies.NAME``) and the values to try
beside its current one, which is always tried first (ties go to it). Constants are
varied one at a time, the others at their defaults. Both files are ingested once
(each LoCoMo conversation and each LongMemEval haystack its own user, consolidated,
no LLM); for each candidate every question is asked with ``Memory.ask`` and
scored: LoCoMo with its official QA score (token F1 on categories 1-4, abstention
on 5), LongMemEval with token F1 on answerable questions and abstention on the
``_abs`` ones. The groups are the 5 LoCoMo conversations and 5 splits of the
LongMemEval questions (by position, every fifth); each is held out in turn and
the value with the best mean of the two datasets' scores on the other nine is
scored on it (``cv.py``). Printed per constant: each value's in-sample figures,
the value each held-out group chose, and the cross-validated figures beside
those of the default kept everywhere.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from cv import leave_one_group_out
from tqdm import tqdm

from memagent import Memory, answering
from memagent.eval import locomo, longmemeval
from memagent.eval.metrics import locomo_qa_score, token_f1
from memagent.policies import answering as policy

LME_GROUPS = 5


def owner(name: str) -> tuple[Any, str]:
    """The module that holds constant ``name`` and its attribute name."""
    module, attr = (policy, name.split(".", 1)[1]) if name.startswith("policies.") else (answering, name)
    if not hasattr(module, attr):
        raise SystemExit(f"no constant {attr!r} in {module.__name__}")
    return module, attr


def questions(locomo_path: str, lme_path: str, memory: Memory) -> list[dict[str, Any]]:
    """Ingest both files into ``memory``; the questions, each with its user, group and scorer."""
    out: list[dict[str, Any]] = []
    for conv in tqdm(locomo.load(locomo_path), desc="LoCoMo ingest", file=sys.stderr, disable=None):
        for session in conv.sessions:
            memory.add(conv.sample_id, session.turns, session_id=session.session_id)
        memory.consolidate(conv.sample_id)
        out += [{"user": conv.sample_id, "group": conv.sample_id, "dataset": "locomo", "question": q.question,
                 "at": conv.reference_time, "gold": q.answer, "category": q.category} for q in conv.questions]
    for n, item in enumerate(tqdm(longmemeval.load(lme_path), desc="LongMemEval ingest", file=sys.stderr,
                                  disable=None)):
        user = f"lme-{item.question_id}"
        for sid, _, turns in item.sessions:
            if turns:
                memory.add(user, turns, session_id=sid)
        memory.consolidate(user)
        out.append({"user": user, "group": f"lme-{n % LME_GROUPS}", "dataset": "longmemeval",
                    "question": item.question, "at": item.question_date, "gold": item.answer,
                    "abstention": item.abstention, "type": item.question_type})
    return out


def score(q: dict[str, Any], memory: Memory) -> dict[str, float]:
    answer = memory.ask(q["user"], q["question"], at=q["at"])
    if q["dataset"] == "locomo":
        qa = locomo_qa_score(answer.text, q["gold"] if q["gold"] is not None else "", q["category"])
        return {"score": qa, "f1": qa if q["category"] != 5 else -1.0, "abstained": float(answer.abstained)}
    if q["abstention"]:
        return {"score": float(answer.abstained), "f1": -1.0, "abstained": float(answer.abstained)}
    f1 = token_f1(answer.text, str(q["gold"]))
    return {"score": f1, "f1": f1, "abstained": float(answer.abstained)}


def figures(rows: list[dict[str, float]], qs: list[dict[str, Any]], dataset: str) -> str:
    """F1 over the answerable questions and abstention on the unanswerable ones, of one dataset."""
    pairs = [(r, q) for r, q in zip(rows, qs) if q["dataset"] == dataset]
    f1 = [r["f1"] for r, _ in pairs if r["f1"] >= 0]
    unanswerable = [r["abstained"] for r, q in pairs if r["f1"] < 0]
    false = [r["abstained"] for r, _ in pairs if r["f1"] >= 0]
    return (f"F1 {100 * statistics.fmean(f1):.1f}, abstention {100 * statistics.fmean(unanswerable):.1f} %, "
            f"false abstentions {100 * statistics.fmean(false):.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("locomo")
    parser.add_argument("longmemeval")
    parser.add_argument("--set", dest="sets", action="append", required=True, metavar="NAME=V1,V2")
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()
    grids: dict[str, list[float]] = {}
    for spec in args.sets:
        name, _, values = spec.partition("=")
        module, attr = owner(name)
        default = getattr(module, attr)
        grids[name] = list(dict.fromkeys([default, *(type(default)(v) for v in values.split(","))]))
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="memagent-tune-") as root, Memory(root) as memory:
        qs = questions(args.locomo, args.longmemeval, memory)
        dataset_of = {q["group"]: q["dataset"] for q in qs}
        done: dict[tuple[str, float], list[dict[str, float]]] = {}
        for name, grid in grids.items():
            module, attr = owner(name)
            default = getattr(module, attr)
            scores: dict[str, dict[str, list[float]]] = {}
            for value in grid:
                setattr(module, attr, value)
                key = ("default", 0.0) if value == default else (name, value)
                if key not in done:
                    done[key] = [score(q, memory) for q in tqdm(qs, desc=f"{name}={value}", file=sys.stderr,
                                                                  disable=None)]
                by_group: dict[str, list[float]] = defaultdict(list)
                for row, q in zip(done[key], qs):
                    by_group[q["group"]].append(row["score"])
                scores[str(value)] = dict(by_group)
                print(f"{name} = {value}: LoCoMo {figures(done[key], qs, 'locomo')} | LongMemEval "
                      f"{figures(done[key], qs, 'longmemeval')}", flush=True)
            setattr(module, attr, default)
            result = leave_one_group_out(scores, dataset_of)
            chosen = ", ".join(f"{g} {v}" for g, v in result["chosen"].items())
            cv, inside = result["cross_validated"], result["in_sample"]
            kept = {d: statistics.fmean(s for g, v in scores[str(default)].items() if dataset_of[g] == d for s in v)
                    for d in ("locomo", "longmemeval")}
            print(f"{name}: default {default}; chosen when held out: {chosen}; chosen on all: {result['overall']}\n"
                  f"  score (LoCoMo QA score 1-5, LongMemEval F1/abstention) cross-validated: LoCoMo "
                  f"{100 * cv['locomo']:.1f}, LongMemEval {100 * cv['longmemeval']:.1f}; in sample: LoCoMo "
                  f"{100 * inside['locomo']:.1f}, LongMemEval {100 * inside['longmemeval']:.1f}; the default "
                  f"everywhere: LoCoMo {100 * kept['locomo']:.1f}, LongMemEval {100 * kept['longmemeval']:.1f}\n",
                  flush=True)
            report[name] = result
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=1), "utf-8")


if __name__ == "__main__":
    main()
