"""Knowledge updates in everyday words: is the answer the value true at the asked date? (issue 17, item 1)

    python benchmarks/knowledge_updates.py [--split dev|held-out] [--failures] [--json OUT]

The cases are the project's own (``benchmarks/data/knowledge_updates.json``): 16
made-up users, each told one turn per day over a year or two, whose home, job,
employer, partner, diet, possessions, pets, routines, preferences, hobbies,
studies, goals and relatives' facts change in everyday phrasings ("I quit
nursing", "we're living in Berlin now", "I switched to padel", "Marta moved to
Valencia"). All users share one memory, as an assistant process serves many.
Each user is consolidated with the rules (no LLM), then every question is asked
with ``Memory.ask(..., at=)`` at the user's date, or at the question's own date
(what was true then).

A question passes when the answer does not abstain, holds one of its ``expect``
words and none of its ``stale`` ones (the old value, or another person's). Printed:
pass rate by kind of fact, for questions about now and about an earlier date, by
split ("dev" users were read while rules were changed, "held-out" users only
measured), and with ``--failures`` each failed question with its answer.
``--cv`` chooses ``policies.answering.SUPERSEDED_SIMILARITY`` by leave-one-dev-user-out
and prints the cross-validated figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memagent import Memory
from memagent.policies import answering as policy

CASES = Path(__file__).resolve().parent / "data" / "knowledge_updates.json"
GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 2.0)  # 2.0: no sentence is ever dropped


def passes(text: str, abstained: bool, item: dict[str, Any]) -> bool:
    low = text.lower()
    return (not abstained and any(w.lower() in low for w in item["expect"])
            and not any(w.lower() in low for w in item["stale"]))


def run(split: str | None = None, thresholds: Sequence[float] = ()) -> dict[float, list[dict[str, Any]]]:
    """The rows of every question, per value of ``policies.answering.SUPERSEDED_SIMILARITY``
    (the default alone unless ``thresholds``), over one ingest."""
    users = [u for u in json.loads(CASES.read_text("utf-8"))["users"] if split in (None, u["split"])]
    default = policy.SUPERSEDED_SIMILARITY
    out = {}
    with tempfile.TemporaryDirectory(prefix="memagent-updates-") as root, Memory(root) as memory:
        for user in users:
            messages = [{"id": f"t{n}", "role": user["user"], "text": text, "timestamp": date}
                        for n, (date, text) in enumerate(user["turns"])]
            for message in messages:  # one session a day, as the user told it
                memory.add(user["user"], [message], session_id=message["timestamp"])
            memory.consolidate(user["user"])
        for threshold in dict.fromkeys([default, *thresholds]):
            policy.SUPERSEDED_SIMILARITY = threshold
            rows = out[threshold] = []
            for user in users:
                for item in user["questions"]:
                    answer = memory.ask(user["user"], item["q"], at=item.get("at", user["at"]))
                    rows.append({"user": user["user"], "split": user["split"], "kind": item["kind"],
                                 "when": "earlier" if "at" in item else "now", "question": item["q"],
                                 "at": item.get("at", user["at"]), "expect": item["expect"],
                                 "stale": item["stale"], "answer": answer.text, "route": answer.route.value,
                                 "pass": passes(answer.text, answer.abstained, item)})
        policy.SUPERSEDED_SIMILARITY = default
    return out


def cross_validate(by_threshold: dict[float, list[dict[str, Any]]]) -> str:
    """Leave one dev user out: the threshold with the best pass rate on the other dev users (the
    default first on ties) scores the one left out. The held-out users are scored at the
    threshold chosen on every dev user."""
    first = next(iter(by_threshold.values()))
    dev_users = sorted({r["user"] for r in first if r["split"] == "dev"})

    def rate(threshold: float, users: set[str]) -> float:
        rows = [r for r in by_threshold[threshold] if r["user"] in users]
        return sum(r["pass"] for r in rows) / max(1, len(rows))

    def choose(users: set[str]) -> float:
        return max(by_threshold, key=lambda t: rate(t, users))  # max keeps the first of equals: the default

    passed, total, lines = 0, 0, []
    for user in dev_users:
        chosen = choose(set(dev_users) - {user})
        rows = [r for r in by_threshold[chosen] if r["user"] == user]
        passed, total = passed + sum(r["pass"] for r in rows), total + len(rows)
        lines.append(f"  left out {user}: chose {chosen:g}, {sum(r['pass'] for r in rows)}/{len(rows)}")
    overall = choose(set(dev_users))
    held = [r for r in by_threshold[overall] if r["split"] == "held-out"]
    in_sample = {t: f"{100 * rate(t, set(dev_users)):.1f}" for t in by_threshold}
    return "\n".join([f"SUPERSEDED_SIMILARITY, dev pass rate in sample: {in_sample}", *lines,
                      f"cross-validated dev pass rate: {100 * passed / max(1, total):.1f} % ({total} questions); "
                      f"chosen on all dev users: {overall:g}; held-out users at it: "
                      f"{100 * sum(r['pass'] for r in held) / max(1, len(held)):.1f} % ({len(held)} questions)"])


def table(rows: list[dict[str, Any]]) -> str:
    cells: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        for kind in (row["kind"], "all"):
            for column in (row["when"], row["split"], "all"):
                cells[kind][column].append(row["pass"])
    columns = ["now", "earlier", "dev", "held-out", "all"]

    def cell(values: list[bool]) -> str:
        return f"{100 * sum(values) / len(values):.1f} ({len(values)})" if values else "-"

    lines = ["| kind | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for kind in sorted(k for k in cells if k != "all") + ["all"]:
        lines.append(f"| {kind} | " + " | ".join(cell(cells[kind][c]) for c in columns) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=["dev", "held-out"], help="only these users (default: all)")
    parser.add_argument("--failures", action="store_true", help="print each failed question with its answer")
    parser.add_argument("--cv", action="store_true",
                        help="choose SUPERSEDED_SIMILARITY by leave-one-dev-user-out over " + ", ".join(map(str, GRID)))
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()
    by_threshold = run(args.split, GRID if args.cv else ())
    rows = by_threshold[policy.SUPERSEDED_SIMILARITY]
    print("\nKnowledge updates: pass rate % (questions) by kind; 'earlier' questions are asked at a past date\n")
    print(table(rows))
    if args.failures:
        for row in rows:
            if not row["pass"]:
                print(f"\n[{row['split']}] {row['user']} {row['kind']} ({row['when']}, at {row['at']}): "
                      f"{row['question']}"
                      f"\n  expect {row['expect']} not {row['stale']}\n  got: {row['answer'][:300]}", file=sys.stdout)
    if args.cv:
        print("\n" + cross_validate(by_threshold))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=1, ensure_ascii=False), "utf-8")


if __name__ == "__main__":
    main()
