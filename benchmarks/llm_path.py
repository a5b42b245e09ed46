"""The LLM path against the LLM-free path, with real local chat models, in one run (issue 18).

    python benchmarks/llm_path.py --model 0.5b=/models/qwen05.gguf --model 1.5b=/models/qwen15.gguf \
        --locomo ../shared/data/locomo/locomo_dev.json \
        --longmemeval ../shared/data/longmemeval/longmemeval_oracle_dev.json

Paths: ``none`` (no LLM) and one per ``--model NAME=FILE.gguf`` (``memagent[gguf]``, 1
thread). Measured for each, on the same data:

* the project's made-up lives (``benchmarks/data/llm_path_lives.json``: 6 users, 66
  questions, facts that change, relative dates, assistant turns), consolidated by
  the path (a model extracts; its statements are checked and merged with the
  rules') and asked at each user's date: pass rate (the answer holds an expected
  word, or abstains where the memory has no answer) and routing accuracy against
  the labelled route;
* a fixed sample of LoCoMo dev questions (the first ``--locomo-per-category`` of
  each category 1-4 of every conversation in ``--locomo-conversations``) and of
  LongMemEval oracle dev questions (the first ``--lme-per-type`` of each question
  type), ingested and consolidated with the rules once (a model extracting whole
  LoCoMo conversations would take hours here), then routed and answered by each
  path: LoCoMo's official F1, LongMemEval token F1.

Printed per path: pass rate / F1, routing accuracy, which path answered, fallbacks
and rejections by reason, and seconds per step (extraction per episode, routing and
answer per question; model seconds are those of the first, uncached, call). Every
model reply is cached in ``--cache`` (JSON lines keyed by model, prompt and request),
so a rerun skips the model. The routing vote (``policies.routing.LLM_VOTE``) is also
evaluated by leave-one-user-out cross-validation over the cached route choices.
LoCoMo categories: 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop, 5 adversarial.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

from memagent import Memory
from memagent.embeddings import default_embedder
from memagent.eval.locomo import CATEGORIES
from memagent.eval.locomo import load as load_locomo
from memagent.eval.longmemeval import load as load_lme
from memagent.eval.metrics import locomo_qa_score, token_f1
from memagent.llm import ChatAdapter
from memagent.llm_gguf import GGUFChatModel
from memagent.policies import routing as route_policy
from memagent.routing import SYSTEM as ROUTE_SYSTEM
from memagent.routing import RouteChoice, Router
from memagent.types import Route

LIVES = Path(__file__).resolve().parent / "data" / "llm_path_lives.json"
VOTES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 10.0)


def step_of(messages: list[BaseMessage]) -> str:
    system = str(messages[0].content) if messages else ""
    if "extract durable facts" in system:
        return "extract"
    if "sort questions" in system:
        return "route"
    return "answer"


class CachedGGUF(GGUFChatModel):
    """A GGUF chat model whose replies are cached on disk by prompt; it records each step's seconds."""

    cache_file: str
    name: str
    _cache: dict[str, dict[str, Any]] = PrivateAttr(default_factory=dict)
    _seconds: dict[str, list[float]] = PrivateAttr(default_factory=lambda: defaultdict(list))
    _fresh: list[int] = PrivateAttr(default_factory=lambda: [0])

    @property
    def seconds(self) -> dict[str, list[float]]:
        return self._seconds

    @property
    def fresh(self) -> int:
        return self._fresh[0]

    def model_post_init(self, context: Any) -> None:
        super().model_post_init(context)
        path = Path(self.cache_file)
        if path.exists():
            for line in path.read_text("utf-8").splitlines():
                if line.strip():
                    entry = json.loads(line)
                    self._cache[entry["key"]] = entry

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        request = {k: kwargs[k] for k in sorted(kwargs) if k in ("response_format", "max_tokens", "temperature")}
        key = hashlib.sha256(json.dumps([self.name, [[m.type, str(m.content)] for m in messages], request],
                                        sort_keys=True).encode()).hexdigest()
        entry = self._cache.get(key)
        if entry is None:
            started = time.perf_counter()
            result = super()._generate(messages, stop, run_manager, **kwargs)
            entry = {"key": key, "step": step_of(messages), "text": str(result.generations[0].message.content),
                     "seconds": time.perf_counter() - started}
            self._cache[key] = entry
            self._fresh[0] += 1
            with open(self.cache_file, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
        self._seconds[entry["step"]].append(entry["seconds"])
        return ChatResult(generations=[ChatGeneration(message=AIMessage(entry["text"]))])


def passes(answer: Any, item: dict[str, Any]) -> bool:
    if item.get("abstain"):
        return bool(answer.abstained)
    text = answer.text.lower()
    return not answer.abstained and any(word.lower() in text for word in item["expect"])


def lives(root: Path, embedder: Any, model: Any, rows: list[dict[str, Any]], counts: Counter[str],
          seconds: dict[str, list[float]]) -> None:
    """Every made-up life as a user of one memory (as one assistant process serves many users)."""
    data = json.loads(LIVES.read_text("utf-8"))
    with Memory(root, embedder=embedder, llm=model) as memory:
        for life in data["users"]:
            n = 0
            for s, session in enumerate(life["sessions"]):
                messages = [{"id": f"{s}-{t}", "role": role, "text": text, "timestamp": session["date"]}
                            for t, (role, text) in enumerate(session["turns"])]
                n += len(messages)
                memory.add(life["user"], messages, session_id=f"s{s}")
            started = time.perf_counter()
            report = memory.consolidate(life["user"])
            seconds["consolidate per episode"].append((time.perf_counter() - started) / max(n, 1))
            counts.update({k: v for k, v in report.items() if k.startswith("rejected") or k == "fallbacks"})
        for life in data["users"]:
            for item in life["questions"]:
                started = time.perf_counter()
                answer = memory.ask(life["user"], item["q"], at=life["at"])
                seconds["ask"].append(time.perf_counter() - started)
                rows.append({"set": "lives", "user": life["user"], "question": item["q"], "pass": passes(answer, item),
                             "route": answer.route.value, "gold_route": item["route"], "path": answer.path,
                             "reason": answer.reason, "answer": answer.text})
        counts.update({f"adapter: {k}": v for k, v in memory.llm.rejected.items()
                       if k.startswith("answer") or k.startswith("route") or k == "call failed"})


def locomo_sample(path: str, conversations: int, per_category: int) -> list[tuple[Any, Any]]:
    out = []
    for conv in load_locomo(path)[:conversations]:
        taken: Counter[int] = Counter()
        for q in conv.questions:
            if q.category in (1, 2, 3, 4) and taken[q.category] < per_category:
                taken[q.category] += 1
                out.append((conv, q))
    return out


def lme_sample(path: str, per_type: int) -> list[Any]:
    taken: Counter[str] = Counter()
    out = []
    for h in load_lme(path):
        if not h.abstention and taken[h.question_type] < per_type:
            taken[h.question_type] += 1
            out.append(h)
    return out


def ingest_datasets(root: Path, embedder: Any, locomo: list[tuple[Any, Any]], lme: list[Any]) -> None:
    with Memory(root, embedder=embedder) as memory:
        for conv in {c.sample_id: c for c, _ in locomo}.values():
            for session in conv.sessions:
                memory.add(conv.sample_id, session.turns, session_id=session.session_id)
            memory.consolidate(conv.sample_id)
        for h in lme:
            for sid, _when, turns in h.sessions:
                memory.add(f"lme-{h.question_id}", turns, session_id=sid)
            memory.consolidate(f"lme-{h.question_id}")


def datasets(root: Path, embedder: Any, model: Any, locomo: list[tuple[Any, Any]], lme: list[Any],
             rows: list[dict[str, Any]], counts: Counter[str], seconds: dict[str, list[float]]) -> None:
    with Memory(root, embedder=embedder, llm=model) as memory:
        for conv, q in locomo:
            started = time.perf_counter()
            answer = memory.ask(conv.sample_id, q.question, at=conv.reference_time)
            seconds["ask"].append(time.perf_counter() - started)
            rows.append({"set": "locomo", "category": q.category, "f1": locomo_qa_score(
                answer.text, q.answer if q.answer is not None else "", q.category), "path": answer.path,
                "reason": answer.reason, "route": answer.route.value, "question": q.question,
                "gold": str(q.answer), "answer": answer.text})
        for h in lme:
            started = time.perf_counter()
            answer = memory.ask(f"lme-{h.question_id}", h.question, at=h.question_date)
            seconds["ask"].append(time.perf_counter() - started)
            rows.append({"set": "longmemeval", "type": h.question_type, "f1": token_f1(answer.text, h.answer),
                         "path": answer.path, "reason": answer.reason, "route": answer.route.value,
                         "question": h.question, "gold": h.answer, "answer": answer.text})
        counts.update({f"adapter: {k}": v for k, v in memory.llm.rejected.items()})


def route_votes(embedder: Any, model: Any) -> dict[str, Any]:
    """Routing accuracy on the lives' questions for each vote weight, and the weight chosen by
    leave-one-user-out cross-validation (the route choices come from the cache)."""
    data = json.loads(LIVES.read_text("utf-8"))
    router, adapter = Router(embedder), ChatAdapter(model)
    items = []
    for life in data["users"]:
        for item in life["questions"]:
            decision = route_policy.classify(item["q"], router.similarities(item["q"]))
            choice = adapter.structured(RouteChoice, ROUTE_SYSTEM, f"Question: {item['q']}")
            items.append((life["user"], decision, choice.route if choice else None, Route(item["route"])))

    def accuracy(weight: float, chosen: list[Any]) -> float:
        right = [(route_policy.with_vote(d, c, weight) if c else d).route is gold for _, d, c, gold in chosen]
        return sum(right) / len(right)

    users = sorted({u for u, *_ in items})
    held_right, picks = 0, []
    for user in users:
        train = [i for i in items if i[0] != user]
        best = max(VOTES, key=lambda w: (accuracy(w, train), -abs(w - route_policy.LLM_VOTE)))
        picks.append(best)
        test = [i for i in items if i[0] == user]
        held_right += round(accuracy(best, test) * len(test))
    return {"by_vote": {str(w): accuracy(w, items) for w in VOTES}, "cv_accuracy": held_right / len(items),
            "cv_picks": picks, "model_alone": sum(c is g for *_, c, g in items) / len(items)}


def support_sweep(root: Path, embedder: Any, model: Any, values: list[int]) -> dict[str, Any]:
    """The lives' pass rate for each ``policies.answering.SUPPORT_SENTENCES`` (how many of the rules'
    best sentences may back a model's answer), and the value chosen by leave-one-user-out CV."""
    from memagent.policies import answering as answer_policy

    default, by_value = answer_policy.SUPPORT_SENTENCES, {}
    try:
        for value in values:
            answer_policy.SUPPORT_SENTENCES = value
            rows: list[dict[str, Any]] = []
            lives(root / f"support-{value}", embedder, model, rows, Counter(), defaultdict(list))
            by_value[value] = rows
    finally:
        answer_policy.SUPPORT_SENTENCES = default
    users = sorted({r["user"] for r in next(iter(by_value.values()))})

    def rate(value: int, keep: Any) -> float:
        chosen = [r for r in by_value[value] if keep(r["user"])]
        return sum(r["pass"] for r in chosen) / len(chosen)

    held, picks = 0, []
    for user in users:
        best = max(values, key=lambda v: (rate(v, lambda u, held_out=user: u != held_out), -abs(v - default)))
        picks.append(best)
        held += sum(r["pass"] for r in by_value[best] if r["user"] == user)
    total = len(by_value[values[0]])
    return {"by_value": {str(v): rate(v, lambda u: True) for v in values}, "cv_pass": held / total,
            "cv_picks": picks}


def summary(rows: list[dict[str, Any]], counts: Counter[str], seconds: dict[str, list[float]],
            model_seconds: dict[str, list[float]]) -> dict[str, Any]:
    def mean(values: list[float]) -> float | None:
        return statistics.mean(values) if values else None

    lives_rows = [r for r in rows if r["set"] == "lives"]
    locomo = [r for r in rows if r["set"] == "locomo"]
    lme = [r for r in rows if r["set"] == "longmemeval"]
    out: dict[str, Any] = {
        "lives_pass": mean([float(r["pass"]) for r in lives_rows]), "lives_n": len(lives_rows),
        "lives_routing": mean([float(r["route"] == r["gold_route"]) for r in lives_rows]),
        "locomo_f1": mean([r["f1"] for r in locomo]), "locomo_n": len(locomo),
        "lme_f1": mean([r["f1"] for r in lme]), "lme_n": len(lme),
        "answered_by_llm": mean([float(r["path"] == "llm") for r in rows]),
        "counts": dict(sorted(counts.items())),
        "seconds": {k: mean(v) for k, v in sorted(seconds.items())},
        "model_seconds": {k: mean(v) for k, v in sorted(model_seconds.items())},
        "model_calls": {k: len(v) for k, v in sorted(model_seconds.items())},
    }
    for cat in (1, 2, 3, 4):
        out[f"locomo_f1_cat{cat}"] = mean([r["f1"] for r in locomo if r["category"] == cat])
    for kind in sorted({r["type"] for r in lme}):
        out[f"lme_f1_{kind}"] = mean([r["f1"] for r in lme if r["type"] == kind])
    return out


def print_report(result: dict[str, Any]) -> None:
    paths = list(result["paths"])
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    first = result["paths"][paths[0]]
    keys = [("lives_pass", f"lives: pass rate ({first['lives_n']} questions)"),
            ("lives_routing", "lives: routing accuracy"),
            ("locomo_f1", f"LoCoMo: F1, categories 1-4 ({first['locomo_n']} questions)")]
    keys += [(f"locomo_f1_cat{c}", f"LoCoMo: F1, category {c} {CATEGORIES[c]}") for c in (1, 2, 3, 4)]
    keys += [("lme_f1", f"LongMemEval: token F1 ({first['lme_n']} questions)")]
    keys += [(k, f"LongMemEval: token F1, {k[len('lme_f1_'):]}") for k in sorted(first) if k.startswith("lme_f1_")]
    keys += [("answered_by_llm", "answers given by the LLM path")]
    print("\n| figure | " + " | ".join(paths) + " |\n|---|" + "---:|" * len(paths))
    for key, title in keys:
        print(f"| {title} | " + " | ".join(pct(result["paths"][p].get(key)) for p in paths) + " |")
    steps = sorted({s for p in paths for s in result["paths"][p]["seconds"]})
    for step in steps:
        print(f"| seconds: {step} | " + " | ".join(
            f"{result['paths'][p]['seconds'].get(step) or 0:.2f}" for p in paths) + " |")
    msteps = sorted({s for p in paths for s in result["paths"][p]["model_seconds"]})
    for step in msteps:
        cells = [f"{result['paths'][p]['model_seconds'].get(step) or 0:.2f} "
                 f"({result['paths'][p]['model_calls'].get(step, 0)})" for p in paths]
        print(f"| model seconds per call: {step} (calls) | " + " | ".join(cells) + " |")
    reasons = sorted({k for p in paths for k in result["paths"][p]["counts"]})
    for reason in reasons:
        print(f"| {reason} | " + " | ".join(str(result["paths"][p]["counts"].get(reason, 0)) for p in paths) + " |")
    for name, sweep in result.get("support_sweep", {}).items():
        print(f"\nlives pass rate with {name} by SUPPORT_SENTENCES: "
              + ", ".join(f"{v}: {pct(a)}" for v, a in sweep["by_value"].items())
              + f"; leave-one-user-out CV {pct(sweep['cv_pass'])} % (picks {sweep['cv_picks']})")
    for name, votes in result.get("route_votes", {}).items():
        print(f"\nrouting with {name}: model alone {pct(votes['model_alone'])} %, by vote weight "
              + ", ".join(f"{w}: {pct(a)}" for w, a in votes["by_vote"].items())
              + f"; leave-one-user-out CV {pct(votes['cv_accuracy'])} % (picks {votes['cv_picks']})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH.gguf (repeatable)")
    parser.add_argument("--cache", default=".llm_path_cache", help="folder of the reply caches")
    parser.add_argument("--locomo", help="a LoCoMo-format file")
    parser.add_argument("--locomo-conversations", type=int, default=1)
    parser.add_argument("--locomo-per-category", type=int, default=5)
    parser.add_argument("--longmemeval", help="a LongMemEval-format file")
    parser.add_argument("--lme-per-type", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--support-sweep", default="", help="e.g. 1,2,3,5: cross-validate SUPPORT_SENTENCES")
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    embedder = default_embedder()
    locomo = locomo_sample(args.locomo, args.locomo_conversations, args.locomo_per_category) if args.locomo else []
    lme = lme_sample(args.longmemeval, args.lme_per_type) if args.longmemeval else []
    result: dict[str, Any] = {"paths": {}, "route_votes": {}, "support_sweep": {}}
    sweep = [int(v) for v in args.support_sweep.split(",") if v.strip()]
    with tempfile.TemporaryDirectory(prefix="memagent-llm-path-") as folder:
        root = Path(folder)
        if locomo or lme:
            ingest_datasets(root / "datasets", embedder, locomo, lme)
        models: list[tuple[str, Any]] = [("none", None)]
        for spec in args.model:
            name, _, path = spec.partition("=")
            models.append((name, CachedGGUF(model_path=path, name=name, n_threads=args.threads,
                                            cache_file=str(Path(args.cache) / f"{name}.jsonl"))))
        for name, model in models:
            rows: list[dict[str, Any]] = []
            counts: Counter[str] = Counter()
            seconds: dict[str, list[float]] = defaultdict(list)
            lives(root / f"lives-{name}", embedder, model, rows, counts, seconds)
            if locomo or lme:
                datasets(root / "datasets", embedder, model, locomo, lme, rows, counts, seconds)
            result["paths"][name] = summary(rows, counts, seconds, model.seconds if model is not None else {})
            result["paths"][name]["rows"] = rows
            if model is not None:
                result["route_votes"][name] = route_votes(embedder, model)
                if sweep:
                    result["support_sweep"][name] = support_sweep(root / f"sweep-{name}", embedder, model, sweep)
                print(f"{name}: {model.fresh} fresh model calls", file=sys.stderr)
    print_report(result)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2, default=str), "utf-8")


if __name__ == "__main__":
    main()
