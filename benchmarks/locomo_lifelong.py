"""Lifelong operation on a LoCoMo-format file: what forgetting costs, what feedback gains.

    python benchmarks/locomo_lifelong.py ../shared/data/locomo/locomo_dev.json [--json OUT]

Each conversation becomes its own user (turns added with their session dates
and dia_ids), consolidated with no LLM. Then, in one run:

* forgetting: the questions of categories 1-4 are searched a month after the
  conversation's last session, first with nothing archived, then after
  ``Memory.forget`` ran with the default policy at that date; evidence recall@10
  of both and the share of memories (episodes, statements) archived;
* feedback: a simulated user rates the answer (``Memory.ask``) of every question
  in the first half of each conversation's question list: good when a gold
  evidence turn is among the answer's first 5 evidence episodes, else bad with
  the gold answer as correction. The answers' evidence recall@10 on the other
  half is measured before any feedback and after it.

LoCoMo categories: 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop, 5 adversarial.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from collections import defaultdict
from datetime import timedelta

from common import locomo_main
from tqdm import tqdm

from memagent import Memory
from memagent.answering import names_in
from memagent.eval.locomo import CATEGORIES, load
from memagent.eval.metrics import recall_at_k

LATER = timedelta(days=30)


def dia_recall(memory: Memory, user: str, episode_ids: list[str], gold: list[str], k: int,
               turns_only: bool = False) -> float:
    """Share of gold dia_ids among the first ``k`` evidence episodes; ``turns_only`` skips
    episodes that are not turns of the conversation (stored corrections)."""
    by_id = {e.id: e.source_id for e in memory.episodes.get(user, episode_ids)}
    ids = [by_id.get(i) for i in episode_ids]
    if turns_only:
        ids = [i for i in ids if i and not i.startswith("correction:")]
    return recall_at_k(ids, gold, k)


def forgetting(memory: Memory, conversations) -> dict:
    before, after, archived, total = defaultdict(list), defaultdict(list), 0, 0
    for conv in tqdm(conversations, desc="forgetting", file=sys.stderr, disable=None):
        when = max(s.date for s in conv.sessions) + LATER
        questions = [q for q in conv.questions if q.category in (1, 2, 3, 4) and q.evidence]
        for q in questions:
            hits = memory.search(conv.sample_id, q.question, k=10, now=when)
            before[q.category].append(dia_recall(memory, conv.sample_id, [h.episode.id for h in hits], q.evidence, 10))
        changes = memory.forget(conv.sample_id, dry_run=False, at=when)
        archived += sum(1 for d in changes if d.action == "archive")
        total += len(memory.tiers.usage(conv.sample_id).records)
        for q in questions:
            hits = memory.search(conv.sample_id, q.question, k=10, now=when)
            after[q.category].append(dia_recall(memory, conv.sample_id, [h.episode.id for h in hits], q.evidence, 10))
        memory.forget(conv.sample_id, dry_run=False, at=max(s.date for s in conv.sessions))  # restore for part (b)
    return {"archived": archived, "memories": total, "before": _table(before), "after": _table(after)}


def feedback(memory: Memory, conversations) -> dict:
    before, after, turns, ratings = defaultdict(list), defaultdict(list), defaultdict(list), {"good": 0, "bad": 0}
    for conv in tqdm(conversations, desc="feedback", file=sys.stderr, disable=None):
        user, when = conv.sample_id, conv.reference_time
        half = len(conv.questions) // 2
        rated, measured = conv.questions[:half], [q for q in conv.questions[half:] if q.evidence]
        for q in measured:
            answer = memory.ask(user, q.question, at=when)
            before[q.category].append(dia_recall(memory, user, answer.episode_ids, q.evidence, 10))
        for q in rated:
            answer = memory.ask(user, q.question, at=when)
            hit = q.evidence and dia_recall(memory, user, answer.episode_ids, q.evidence, 5) > 0
            if hit:
                memory.feedback(answer.trace_id, "good", at=when)
                ratings["good"] += 1
            elif q.answer not in (None, ""):
                speaker = next(iter(names_in(q.question, conv.speakers)), conv.speakers[0])
                memory.feedback(answer.trace_id, "bad", correction=str(q.answer), role=speaker.title(), at=when)
                ratings["bad"] += 1
        for q in measured:
            answer = memory.ask(user, q.question, at=when)
            after[q.category].append(dia_recall(memory, user, answer.episode_ids, q.evidence, 10))
            turns[q.category].append(dia_recall(memory, user, answer.episode_ids, q.evidence, 10, turns_only=True))
    return {"ratings": ratings, "before": _table(before), "after": _table(after), "after_turns": _table(turns)}


def _table(by_cat: dict[int, list[float]]) -> dict:
    rows = {f"{c} {CATEGORIES[c]}": {"n": len(v), "R@10": statistics.mean(v)} for c, v in sorted(by_cat.items())}
    every = [x for v in by_cat.values() for x in v]
    rows["overall"] = {"n": len(every), "R@10": statistics.mean(every) if every else 0.0}
    return rows


def run(path: str, limit: int | None = None) -> dict:
    conversations = load(path)[:limit] if limit else load(path)
    with tempfile.TemporaryDirectory() as data_dir:
        memory = Memory(data_dir)
        for conv in tqdm(conversations, desc="ingest+consolidate", file=sys.stderr, disable=None):
            for session in conv.sessions:
                memory.add(conv.sample_id, session.turns, session_id=session.session_id)
            memory.consolidate(conv.sample_id)
        return {"forgetting": forgetting(memory, conversations), "feedback": feedback(memory, conversations)}


def print_report(r: dict) -> None:
    f, b = r["forgetting"], r["feedback"]
    print("\nForgetting: questions of categories 1-4 searched 30 days after the last session "
          "(1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop)\n")
    print("| category | n | R@10 no forgetting | R@10 default policy |\n|---|---:|---:|---:|")
    for cat, row in f["before"].items():
        print(f"| {cat} | {row['n']} | {100 * row['R@10']:.1f} | {100 * f['after'][cat]['R@10']:.1f} |")
    cost = 100 * (f["before"]["overall"]["R@10"] - f["after"]["overall"]["R@10"])
    print(f"\narchived {f['archived']} of {f['memories']} memories "
          f"({100 * f['archived'] / max(1, f['memories']):.1f} %); recall@10 cost {cost:+.1f} points\n")
    print(f"Feedback: {b['ratings']['good']} good and {b['ratings']['bad']} bad ratings (with the gold answer as "
          "correction) on the first half of each conversation's questions; answer evidence recall@10 on the "
          "other half\n")
    print("| category | n | R@10 no feedback | R@10 after feedback | after, over turns only |\n"
          "|---|---:|---:|---:|---:|")
    for cat, row in b["before"].items():
        print(f"| {cat} | {row['n']} | {100 * row['R@10']:.1f} | {100 * b['after'][cat]['R@10']:.1f} | "
              f"{100 * b['after_turns'][cat]['R@10']:.1f} |")
    gain = 100 * (b["after"]["overall"]["R@10"] - b["before"]["overall"]["R@10"])
    turns = 100 * (b["after_turns"]["overall"]["R@10"] - b["before"]["overall"]["R@10"])
    print(f"\nfeedback gain on the other half: {gain:+.1f} points of recall@10 with stored corrections taking "
          f"evidence slots, {turns:+.1f} over the conversation's turns only")


def main(argv: list[str] | None = None) -> None:
    locomo_main(__doc__, run, print_report, argv)


if __name__ == "__main__":
    main()
