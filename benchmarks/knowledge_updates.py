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
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from memagent import Memory

CASES = Path(__file__).resolve().parent / "data" / "knowledge_updates.json"


def passes(text: str, abstained: bool, item: dict[str, Any]) -> bool:
    low = text.lower()
    return (not abstained and any(w.lower() in low for w in item["expect"])
            and not any(w.lower() in low for w in item["stale"]))


def run(split: str | None = None) -> list[dict[str, Any]]:
    users = [u for u in json.loads(CASES.read_text("utf-8"))["users"] if split in (None, u["split"])]
    rows = []
    with tempfile.TemporaryDirectory(prefix="memagent-updates-") as root, Memory(root) as memory:
        for user in users:
            messages = [{"id": f"t{n}", "role": user["user"], "text": text, "timestamp": date}
                        for n, (date, text) in enumerate(user["turns"])]
            for message in messages:  # one session a day, as the user told it
                memory.add(user["user"], [message], session_id=message["timestamp"])
            memory.consolidate(user["user"])
        for user in users:
            for item in user["questions"]:
                answer = memory.ask(user["user"], item["q"], at=item.get("at", user["at"]))
                rows.append({"user": user["user"], "split": user["split"], "kind": item["kind"],
                             "when": "earlier" if "at" in item else "now", "question": item["q"],
                             "at": item.get("at", user["at"]), "expect": item["expect"], "stale": item["stale"],
                             "answer": answer.text, "route": answer.route.value,
                             "pass": passes(answer.text, answer.abstained, item)})
    return rows


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
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()
    rows = run(args.split)
    print("\nKnowledge updates: pass rate % (questions) by kind; 'earlier' questions are asked at a past date\n")
    print(table(rows))
    if args.failures:
        for row in rows:
            if not row["pass"]:
                print(f"\n[{row['split']}] {row['user']} {row['kind']} ({row['when']}, at {row['at']}): "
                      f"{row['question']}"
                      f"\n  expect {row['expect']} not {row['stale']}\n  got: {row['answer'][:300]}", file=sys.stdout)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=1, ensure_ascii=False), "utf-8")


if __name__ == "__main__":
    main()
