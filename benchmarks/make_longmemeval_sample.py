"""Write a small file in LongMemEval's format (the real data cannot be fetched here).

    python benchmarks/make_longmemeval_sample.py examples/longmemeval_sample.json

Twelve questions, two of each official type plus one abstention question, each
with a haystack of four sessions: one or two carry the evidence, the rest are
filler. It exercises the loader, the retrieval metrics and the per-type table;
its figures say nothing about LongMemEval itself.
"""

from __future__ import annotations

import argparse
import json
import random

FILLER = [
    [("user", "Can you suggest a quick pasta recipe for tonight?"), ("assistant", "Try spaghetti aglio e olio.")],
    [("user", "What is a good stretch for a stiff back?"), ("assistant", "Child's pose helps many people.")],
    [("user", "Explain compound interest briefly."), ("assistant", "Interest earns interest over time.")],
    [("user", "Recommend a sci-fi novel."), ("assistant", "The Left Hand of Darkness is a classic.")],
    [("user", "How do I repot a cactus?"), ("assistant", "Use gloves and a dry, gritty soil mix.")],
]

QUESTIONS = [
    ("single-session-user", "What breed is my dog?", "a beagle",
     [[("user", "I adopted a beagle named Rex last weekend."), ("assistant", "Beagles are lovely.")]]),
    ("single-session-user", "Where did I go on holiday?", "Lisbon",
     [[("user", "I just got back from a holiday in Lisbon."), ("assistant", "Lisbon is beautiful.")]]),
    ("single-session-assistant", "Which museum did you recommend to me?", "the tile museum",
     [[("user", "Any museum tips?"), ("assistant", "Visit the National Tile Museum, it is unique.")]]),
    ("single-session-assistant", "What dessert did you suggest?", "pastel de nata",
     [[("user", "What dessert should I try?"), ("assistant", "You should try a pastel de nata.")]]),
    ("single-session-preference", "Can you recommend a podcast for my commute?", "something about history",
     [[("user", "I love history podcasts, especially about ancient Rome."), ("assistant", "Noted!")]]),
    ("single-session-preference", "What should I cook this weekend?", "a vegetarian dish",
     [[("user", "I am vegetarian and I love spicy food."), ("assistant", "Great to know.")]]),
    ("multi-session", "How many instruments do I play?", "two: guitar and piano",
     [[("user", "I have played guitar since I was twelve."), ("assistant", "Nice.")],
      [("user", "I also started piano lessons this spring."), ("assistant", "Wonderful.")]]),
    ("multi-session", "Which two cities did I visit this year?", "Berlin and Kyoto",
     [[("user", "My trip to Berlin in March was great."), ("assistant", "Glad to hear.")],
      [("user", "Kyoto in autumn was magical."), ("assistant", "Sounds amazing.")]]),
    ("temporal-reasoning", "How many days before my exam did I start studying?", "10 days",
     [[("user", "I started studying for my exam today, it is in 10 days."), ("assistant", "Good luck!")]]),
    ("temporal-reasoning", "Which happened first, buying the bike or the car?", "the bike",
     [[("user", "I bought a road bike."), ("assistant", "Enjoy.")],
      [("user", "Today I bought a used car."), ("assistant", "Congrats.")]]),
    ("knowledge-update", "Where do I work now?", "Contoso",
     [[("user", "I work at Northwind as an analyst."), ("assistant", "Nice.")],
      [("user", "I switched jobs, I now work at Contoso."), ("assistant", "Congratulations!")]]),
    ("knowledge-update", "How many books have I read this year?", "12",
     [[("user", "I have read 7 books this year."), ("assistant", "Impressive.")],
      [("user", "Update: I am at 12 books this year now."), ("assistant", "Great pace.")]]),
]


def build(seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    items = []
    for n, (qtype, question, answer, evidence) in enumerate(QUESTIONS):
        items.append(_item(f"q{n}", qtype, question, answer, evidence, rng))
    items.append(_item("q12_abs", "single-session-user", "What is the name of my cat?",
                       "You did not mention a cat.", QUESTIONS[0][3], rng))
    return items


def _item(qid: str, qtype: str, question: str, answer: str, evidence, rng: random.Random) -> dict:
    sessions = [(f"{qid}_ev{i}", s, True) for i, s in enumerate(evidence)]
    sessions += [(f"{qid}_f{i}", s, False) for i, s in enumerate(rng.sample(FILLER, 4 - len(evidence)))]
    rng.shuffle(sessions)
    evidence_sessions = [sid for sid, _, ev in sessions if ev]
    order = sorted(range(len(sessions)), key=lambda i: sessions[i][0] not in evidence_sessions)
    dates = {sessions[i][0]: f"2023/0{3 + j}/1{j} (Mon) 1{j}:00" for j, i in enumerate(order)}
    return {
        "question_id": qid, "question_type": qtype, "question": question, "answer": answer,
        "question_date": "2023/09/01 (Fri) 09:00",
        "haystack_session_ids": [sid for sid, _, _ in sessions],
        "haystack_dates": [dates[sid] for sid, _, _ in sessions],
        "haystack_sessions": [[{"role": r, "content": t, **({"has_answer": True} if ev and r == "user" else {})}
                               for r, t in turns] for _, turns, ev in sessions],
        "answer_session_ids": [] if qid.endswith("_abs") else evidence_sessions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    path = parser.parse_args().out
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(build(), handle, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
