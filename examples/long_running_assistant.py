"""A long-running assistant: six simulated months of two users, with background upkeep.

    python examples/long_running_assistant.py [--data-dir DIR]

Runs offline (no LLM, the packaged embedder). Shows consolidation and forgetting
driven by the scheduler, knowledge and a preference that change over time, answers by route,
feedback that changes the next answer, and each user's profile at several dates.
"""
import argparse
import tempfile
from datetime import datetime, timedelta, timezone

from memagent import Memory
from memagent.scheduler import MemoryScheduler


class Clock:
    """A settable clock: memagent asks it for "now" instead of the system time."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(hour=12, tzinfo=timezone.utc)


# What each user says, by day. Facts, a move, a new job, a changed taste, and small talk.
CONVERSATIONS = {
    "2024-01-08": {"maya": ["Hi there! How are you today?", "I live in Lisbon with my partner.",
                            "I work as an engineer at Siemens."],
                   "leo": ["Hey, good morning!", "I live in Berlin near the old airport.",
                           "I work at Zalando in the data team."]},
    "2024-01-20": {"maya": ["Haha yes, sounds good.", "My favourite food is grilled sardines."],
                   "leo": ["Thanks, talk soon!", "I play tennis on Saturdays with my brother."]},
    "2024-02-10": {"maya": ["I go running every morning before work.", "Ok, cool."],
                   "leo": ["I bake bread every Sunday.", "Haha nice one."]},
    "2024-03-02": {"maya": ["Good morning!", "We moved to Porto last week, the flat is lovely."],
                   "leo": ["Hello again!", "My sister Ana lives in Madrid."]},
    "2024-04-12": {"maya": ["I started as a data analyst at Spotify.", "Thanks, bye!"],
                   "leo": ["I drink coffee every morning.", "Sure, sounds good."]},
    "2024-05-18": {"maya": ["I love jazz, especially live concerts.",
                            "After the trip to Tokyo my favourite food is ramen now.", "See you!"],
                   "leo": ["I have a dog named Rex.", "Cool, thanks."]},
}


def section(title: str) -> None:
    print(f"\n=== {title} ===")


def ask(memory: Memory, user: str, question: str, at: datetime):
    answer = memory.ask(user, question, at=at)
    print(f"[{at:%Y-%m-%d}] {user}: {question!r} -> {answer.text!r} (route: {answer.route.value})")
    return answer


def show_profile(memory: Memory, user: str, at: datetime) -> None:
    print(f"profile of {user} on {at:%Y-%m-%d}:")
    for s in memory.profile(user, at=at):
        if s.kind == "statement":  # session summaries are left out here
            until = f"{s.valid_to:%Y-%m-%d}" if s.valid_to else "now"
            print(f"  [{s.category.value}] {s.text} (valid {s.valid_from:%Y-%m-%d} .. {until})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="an empty directory to keep memory in (default: a temporary one)")
    args = parser.parse_args()
    clock = Clock(day("2024-01-01"))
    with tempfile.TemporaryDirectory() as tmp, Memory(args.data_dir or tmp, clock=clock) as memory:
        # APScheduler triggers fire on real (wall-clock) time, so a simulation of months cannot
        # wait for them: here we drive the same jobs ourselves with run_now() as simulated days
        # pass. In production `memagent serve` or `Memory.start()` run them on a real schedule.
        scheduler = MemoryScheduler(memory, clock=clock)

        section("six months of conversations")
        today, end = day("2024-01-01"), day("2024-07-01")
        while today <= end:
            clock.now = today
            for user, texts in CONVERSATIONS.get(f"{today:%Y-%m-%d}", {}).items():
                # A message id makes a retried add store nothing twice.
                memory.add(user, [{"id": f"{today:%Y%m%d}-{i}", "role": user, "text": t, "timestamp": today}
                                  for i, t in enumerate(texts)], session_id=f"{today:%Y-%m-%d}")
                print(f"[{today:%Y-%m-%d}] {user}: " + " / ".join(texts))
            scheduler.run_now("consolidate")  # after each day: users with new messages are consolidated
            if today.day == 1 and today.month > 1:  # once a month: the forgetting policy
                # The job's result only counts users; a dry run at the same "now" says what it will archive.
                preview = {u: memory.forget(u, dry_run=True) for u in memory.users()}
                result = scheduler.run_now("forget")
                for user, decisions in preview.items():
                    for d in decisions:
                        what = memory.get(user, d.item_id).text if d.kind == "episode" else d.item_id
                        print(f"[{today:%Y-%m-%d}] forget job: {d.action} {user}'s {d.kind} {what!r} ({d.reason})")
                print(f"[{today:%Y-%m-%d}] forget job done: {result}")
            today += timedelta(days=1)
        print("job stats:", scheduler.summary())

        section("knowledge that changed over time: maya moved, changed jobs and found a new favourite food")
        for when in ("2024-02-01", "2024-03-15", "2024-06-30"):
            show_profile(memory, "maya", day(when))
        for when in ("2024-02-15", "2024-06-30"):  # the answer depends on when it is asked
            ask(memory, "maya", "Where do I live?", day(when))
            ask(memory, "maya", "Where do I work?", day(when))
            ask(memory, "maya", "What is my favourite food?", day(when))

        section("facts in maya's knowledge graph, then and now")
        for when in ("2024-02-01", "2024-06-30"):
            for relation in memory.facts("maya", "maya", at=day(when)):
                print(f"[{when}] {memory.describe('maya', relation)}")

        section("two users, two separate memories")
        show_profile(memory, "leo", day("2024-06-30"))
        for user in ("maya", "leo"):
            ask(memory, user, "Where do I live?", day("2024-06-30"))

        section("feedback")
        good = ask(memory, "maya", "Where do I live?", day("2024-07-01"))
        report = memory.feedback(good.trace_id, "good", at=day("2024-07-01"))
        print(f"maya rates it good: {report['rated']} memories reinforced")
        stale = ask(memory, "leo", "Where do I work?", day("2024-07-01"))  # leo changed jobs without saying so
        memory.feedback(stale.trace_id, "bad", correction="I work at Spotify now.", role="leo", at=day("2024-07-02"))
        print("leo rates it bad, with the correction 'I work at Spotify now.'")
        ask(memory, "leo", "Where do I work?", day("2024-07-03"))
        show_profile(memory, "leo", day("2024-07-03"))


if __name__ == "__main__":
    main()
