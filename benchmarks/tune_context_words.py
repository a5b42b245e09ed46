"""Cross-validated choice of ``Config.context_words`` on LoCoMo and LongMemEval together.

    python benchmarks/tune_context_words.py ../shared/data/locomo/locomo_dev.json \\
        ../shared/data/longmemeval/longmemeval_oracle_dev.json [--keep DIR] [--json OUT]

Each turn's full-text context (``retrieval.lexical_context``) is the last
``context_words`` words of the previous turn's indexed text, then the turn's own.
Both files are ingested once, as ``tune_retrieval.py`` ingests them; for each
candidate (the whole previous turn, or its last n words) every user's in-process
full-text postings are rebuilt from the stored ``search_text`` of its turns, and
each question is searched with the default settings and scored by recall@10
(LoCoMo: gold dia_ids, categories 1-4; LongMemEval: turn recall_any@10). The groups
are the 5 LoCoMo conversations and the 5 LongMemEval long histories; each is held
out in turn and the candidate with the best mean of the two datasets' recall on
the other nine is scored on it (``cv.py``). The current default is listed first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from cv import leave_one_group_out
from longmemeval_retrieval import histories, open_store, ranking_of, scored_questions
from tune_retrieval import K, locomo_users

from memagent import Config, Memory
from memagent.eval import longmemeval
from memagent.eval.metrics import longmemeval_retrieval, recall_at_k
from memagent.store.text import InvertedIndex

DEFAULT = Config().context_words
CANDIDATES: list[int | None] = list(dict.fromkeys([DEFAULT, None, 0, 4, 8, 12, 16, 24, 32, 48]))  # None: whole turn


def name(words: int | None) -> str:
    return "whole turn" if words is None else f"{words} words"


def use_context(memory: Memory, user: str, words: int | None) -> None:
    """Rebuild ``user``'s in-process postings of ``context_text`` with ``words`` of the previous turn."""
    entry = memory.episodes.index(user)
    if entry.vectors is None:
        raise SystemExit(f"{user} is past exact_search_max_user_rows: its postings are not in process")
    own = entry.table.column("search_text").to_pylist()
    texts = []
    for n, text in enumerate(own):
        previous = entry.id_at(entry.sessions[n], int(entry.turns[n]) - 1)
        before = own[entry.row_of[previous]].split() if previous is not None else []
        tail = before if words is None else before[-words:] if words else []
        texts.append(" ".join([*tail, text]))
    index = InvertedIndex()
    index.add(texts)
    entry._text["context_text"] = index  # the benchmark's own postings, in place of the stored column's


def run(locomo_path: str, lme_path: str, keep: str | None = None) -> dict[str, Any]:
    scores: dict[str, dict[str, list[float]]] = {name(w): {} for w in CANDIDATES}
    dataset_of: dict[str, str] = {}
    with nullcontext(keep) if keep else tempfile.TemporaryDirectory() as folder:
        users = locomo_users(locomo_path)
        memory, _, _ = open_store(Path(folder) / "locomo", locomo_path, users, {"benchmark": "locomo"})
        for user, _, questions in users:
            dataset_of[user] = "locomo"
            for words in CANDIDATES:
                use_context(memory, user, words)
                scores[name(words)][user] = [recall_at_k([h.episode.source_id for h in memory.search(
                    user, q.question, k=K, now=now)], q.evidence, K) for q, now in questions]
        memory.close()
        lme_users = histories(longmemeval.load(lme_path), "long", 5)
        memory, _, _ = open_store(Path(folder) / "lme", lme_path, lme_users,
                                  {"variant": "long", "histories": 5, "limit": None})
        by_user: dict[str, list[tuple[list[str], Any]]] = {}
        for user, corpus, q in scored_questions(lme_users):
            by_user.setdefault(user, []).append((corpus, q))
        for user, items in by_user.items():
            dataset_of[user] = "longmemeval"
            for words in CANDIDATES:
                use_context(memory, user, words)
                scores[name(words)][user] = [longmemeval_retrieval(ranking_of(memory.search(
                    user, q.question, k=K, now=q.question_date), corpus), q.answer_turn_ids, corpus, K)[0]
                    for corpus, q in items]
        memory.close()
    result = leave_one_group_out(scores, dataset_of)
    means = {n: {d: statistics.fmean(v for g, vs in by.items() if dataset_of[g] == d for v in vs)
                 for d in ("locomo", "longmemeval")} for n, by in scores.items()}
    return {**result, "default": means[name(DEFAULT)], "means": means}


def print_report(result: dict[str, Any]) -> None:
    print(f"\nrecall@{K} by context (in-sample means; the default is {name(DEFAULT)}):\n")
    print("| previous turn in the context | LoCoMo 1-4 | LongMemEval long |\n|---|---:|---:|")
    for candidate, means in result["means"].items():
        print(f"| {candidate} | {100 * means['locomo']:.1f} | {100 * means['longmemeval']:.1f} |")
    print(f"\nchosen on all groups: {result['overall']}")
    print("chosen per held-out group: " + ", ".join(f"{g}: {c}" for g, c in result["chosen"].items()))
    for figure in ("default", "in_sample", "cross_validated"):
        got = result[figure]
        print(f"{figure:>16}: LoCoMo {100 * got['locomo']:.1f}, LongMemEval {100 * got['longmemeval']:.1f}")


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
