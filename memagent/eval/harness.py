"""Benchmark runs: ingest each conversation or haystack into its own user, ask, score, record.

A run writes into ``out_dir``: ``memory/`` (the data directory), ``state.json``
(users whose ingest finished), ``records.jsonl`` (one line per answered
question, appended as it goes), then ``summary.json``, ``report.md`` and
``plot.png``. Run again with the same ``out_dir`` and an interrupted run
resumes: finished users are not ingested again, answered questions are not
asked again.

Answers come from ``answer_fn``; the default is memagent's answer graph
(``Memory.ask``, consolidated first); ``extractive_answer`` (the best search
hit's text) is the floor it replaced.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from memagent.answering import TokenCounter
from memagent.eval import locomo, longmemeval
from memagent.eval.metrics import (
    bleu1,
    gold_recall,
    locomo_qa_score,
    longmemeval_retrieval,
    longmemeval_session_retrieval,
    percentile,
    recall_at_k,
    token_f1,
)

LOCOMO_KS = (1, 5, 10, 20)
LONGMEMEVAL_KS = (1, 3, 5, 10, 30, 50)


@dataclass
class Answer:
    text: str
    evidence_ids: list[str]
    route: str
    context_tokens: int = 0
    llm_calls: int = 0
    latency_ms: float = 0.0
    evidence_text: list[str] = field(default_factory=list)
    path: str = "rules"  # "llm" when a chat model's checked reply is the answer
    reason: str = ""  # why: "extractive", "profile: home", "... (chat model overruled: unsupported answer)"
    abstained: bool = False  # the answer says memory holds nothing on the question


AnswerFn = Callable[[Any, str, str, datetime], Answer]


def routed_answer(k: int = 100) -> AnswerFn:
    """memagent's answer graph (``Memory.ask``): routed, extractive or grounded, with abstention.

    The evidence list is the answer's evidence episodes, then the best search hits
    up to ``k``, so recall@k can be read at depths beyond the answer's context.
    """

    def answer(memory: Any, user_id: str, question: str, now: datetime) -> Answer:
        start = time.perf_counter()
        result = memory.ask(user_id, question, at=now)
        latency = (time.perf_counter() - start) * 1000
        searched = [h.episode.id for h in memory.search(user_id, question, k=k, now=now)]
        ids = list(dict.fromkeys(result.episode_ids + searched))
        sources = {e.id: e.source_id for e in memory.episodes.get(user_id, ids)}
        return Answer(text=result.text, evidence_ids=[sources.get(i) or i for i in ids], route=result.route.value,
                      context_tokens=result.context_tokens, llm_calls=result.llm_calls, latency_ms=latency,
                      evidence_text=[e.text for e in result.evidence[:3]], path=result.path, reason=result.reason,
                      abstained=result.abstained)
    return answer


def extractive_answer(k: int = 100, context_hits: int = 10) -> AnswerFn:
    """The LLM-free baseline: the best hit's text is the answer, the hits are the evidence."""
    counter = TokenCounter()

    def answer(memory: Any, user_id: str, question: str, now: datetime) -> Answer:
        start = time.perf_counter()
        hits = memory.search(user_id, question, k=k, now=now)
        text = hits[0].episode.text if hits else "No information available"
        context = [h.episode.text for h in hits[:context_hits]]
        return Answer(text=text, evidence_ids=[h.episode.source_id for h in hits], route="search-top-hit",
                      context_tokens=counter(context), latency_ms=(time.perf_counter() - start) * 1000,
                      evidence_text=context[:3], abstained=not hits)
    return answer


class RunState:
    """Progress of a run in ``out_dir``: finished users and answered questions."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.state_path, self.records_path = out_dir / "state.json", out_dir / "records.jsonl"
        self.ingested: set[str] = set()
        if self.state_path.exists():
            self.ingested = set(json.loads(self.state_path.read_text())["ingested"])
        self.records: dict[str, dict[str, Any]] = {}
        if self.records_path.exists():
            for line in self.records_path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by an interruption: ask that question again
                self.records[record["key"]] = record

    def mark_ingested(self, user_id: str) -> None:
        self.ingested.add(user_id)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"ingested": sorted(self.ingested)}))
        tmp.replace(self.state_path)

    def record(self, record: dict[str, Any]) -> None:
        self.records[record["key"]] = record
        with open(self.records_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")


def _progress(items: list[Any], desc: str) -> Iterable[Any]:
    from tqdm import tqdm

    return tqdm(items, desc=desc, file=sys.stderr, disable=None)


def _open_memory(out_dir: Path, embedder: Any, llm: Any = None) -> Any:
    from memagent.memory import Memory

    return Memory(out_dir / "memory", embedder=embedder, llm=llm)


# --- LoCoMo -------------------------------------------------------------------------
def run_locomo(path: str | Path, out_dir: str | Path, *, limit: int | None = None,
               conversations: Iterable[str] | None = None, ks: tuple[int, ...] = LOCOMO_KS,
               answer_fn: AnswerFn | None = None, judge: Any = None, embedder: Any = None,
               llm: Any = None) -> dict[str, Any]:
    """Evaluate on a LoCoMo-format file; see the module docstring for what is written. ``llm`` is
    the memory's chat model (extraction, routing, answers), ``judge`` the one that grades."""
    out, started = Path(out_dir), time.perf_counter()
    chosen = set(conversations) if conversations else None
    convs = [c for c in locomo.load(path) if chosen is None or c.sample_id in chosen]
    state, memory = RunState(out), _open_memory(out, embedder, llm)
    answer_fn = answer_fn or routed_answer()
    questions = [(c, i, q) for c in convs for i, q in enumerate(c.questions)][:limit]
    asked = {c.sample_id for c, _, _ in questions}  # with a limit, only the conversations asked of
    for conv in _progress([c for c in convs if c.sample_id in asked], "ingest"):
        if conv.sample_id not in state.ingested:
            for session in conv.sessions:
                memory.add(conv.sample_id, session.turns, session_id=session.session_id)
            memory.consolidate(conv.sample_id)
            state.mark_ingested(conv.sample_id)
    for conv, index, q in _progress(questions, "questions"):
        key = f"{conv.sample_id}#{index}"
        if key in state.records:
            continue
        answer = answer_fn(memory, conv.sample_id, q.question, conv.reference_time)
        record = {"key": key, "conversation": conv.sample_id, "category": q.category,
                  "category_name": locomo.CATEGORIES.get(q.category, "?"), "question": q.question,
                  "gold": q.answer, "evidence": q.evidence, **asdict(answer),
                  "f1": locomo_qa_score(answer.text, q.answer if q.answer is not None else "", q.category),
                  "bleu1": bleu1(answer.text, str(q.answer)) if q.category != 5 else None}
        record["evidence_ids"] = record["evidence_ids"][:max(ks)]
        if q.evidence:
            record["recall"] = {str(k): recall_at_k(answer.evidence_ids, q.evidence, k) for k in ks}
        if judge is not None and q.category != 5:  # the mem0 judge skips adversarial questions
            from memagent.eval.judge import judge_locomo

            record["judge"] = judge_locomo(judge, q.question, str(q.answer), answer.text)
        state.record(record)
    records = [state.records[f"{c.sample_id}#{i}"] for c, i, _ in questions if f"{c.sample_id}#{i}" in state.records]
    summary = summarise_locomo(records, ks, judge)
    summary["wall_s"] = time.perf_counter() - started
    return _finish(out, "locomo", summary)


def summarise_locomo(records: list[dict[str, Any]], ks: tuple[int, ...], judge: Any = None) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[dict[str, Any]]] = {}
    for cat in sorted({r["category"] for r in records}):
        groups[f"{cat} {locomo.CATEGORIES.get(cat, '?')}"] = [r for r in records if r["category"] == cat]
    groups["overall 1-4"] = [r for r in records if r["category"] in (1, 2, 3, 4)]
    groups["overall 1-5"] = list(records)
    for name, group in groups.items():
        if not group:
            continue
        row: dict[str, Any] = {"n": len(group), "F1": _mean(r["f1"] for r in group),
                               "BLEU-1": _mean(r["bleu1"] for r in group if r.get("bleu1") is not None)}
        with_recall = [r for r in group if "recall" in r]
        for k in ks:
            row[f"R@{k}"] = _mean(r["recall"][str(k)] for r in with_recall)
        if judge is not None:
            row["judge"] = _mean(float(r["judge"]) for r in group if r.get("judge") is not None)
        rows[name] = row
    return {"benchmark": "locomo", "table": rows, "cost": _cost(records), "judge_model": _model_name(judge),
            "unjudged": _unjudged(records, judge), "questions": len(records)}


# --- LongMemEval ----------------------------------------------------------------------
def run_longmemeval(path: str | Path, out_dir: str | Path, *, limit: int | None = None,
                    ks: tuple[int, ...] = LONGMEMEVAL_KS, answer_fn: AnswerFn | None = None,
                    judge: Any = None, embedder: Any = None, llm: Any = None) -> dict[str, Any]:
    """Evaluate on a LongMemEval-format file; each question's haystack is its own user."""
    out, started = Path(out_dir), time.perf_counter()
    items = longmemeval.load(path)[:limit]
    state, memory = RunState(out), _open_memory(out, embedder, llm)
    answer_fn = answer_fn or routed_answer()
    for item in _progress(items, "questions"):
        user = f"lme-{item.question_id}"
        if user not in state.ingested:
            for sid, _, turns in item.sessions:
                if turns:
                    memory.add(user, turns, session_id=sid)
            memory.consolidate(user)
            state.mark_ingested(user)
        if item.question_id in state.records:
            continue
        answer = answer_fn(memory, user, item.question, item.question_date)
        record = {"key": item.question_id, "question_type": item.question_type, "abstention": item.abstention,
                  "question": item.question, "gold": item.answer, **asdict(answer)}
        if not item.abstention and item.answer_turn_ids:
            record.update(_longmemeval_retrieval(item, answer.evidence_ids, ks))
        if not item.abstention:
            record.update(f1=token_f1(answer.text, item.answer), gold_recall=gold_recall(answer.text, item.answer))
        if judge is not None:
            from memagent.eval.judge import judge_longmemeval

            record["judge"] = judge_longmemeval(judge, item.question_type, item.question, item.answer,
                                                answer.text, item.abstention)
        record["evidence_ids"] = record["evidence_ids"][:max(ks)]
        state.record(record)
    records = [state.records[i.question_id] for i in items if i.question_id in state.records]
    summary = summarise_longmemeval(records, ks, judge)
    summary["wall_s"] = time.perf_counter() - started
    return _finish(out, "longmemeval", summary)


def _longmemeval_retrieval(item: longmemeval.Haystack, retrieved: list[str], ks: tuple[int, ...]) -> dict[str, Any]:
    corpus = item.corpus_turn_ids
    position = {tid: n for n, tid in enumerate(corpus)}
    ranking = [position[r] for r in dict.fromkeys(retrieved) if r in position]
    turn, session = {}, {}
    for k in ks:
        turn[str(k)] = longmemeval_retrieval(ranking, item.answer_turn_ids, corpus, k)
        session[str(k)] = longmemeval_session_retrieval(ranking, item.answer_turn_ids, corpus, k)
    return {"turn_retrieval": turn, "session_retrieval": session}


def summarise_longmemeval(records: list[dict[str, Any]], ks: tuple[int, ...], judge: Any = None) -> dict[str, Any]:
    scored = [r for r in records if "turn_retrieval" in r]
    retrieval: dict[str, dict[str, float | None]] = {}
    for level in ("session", "turn"):
        for k in ks:
            values = [r[f"{level}_retrieval"][str(k)] for r in scored]
            retrieval[f"{level}@{k}"] = {"recall_any": _mean(v[0] for v in values),
                                         "recall_all": _mean(v[1] for v in values),
                                         "ndcg_any": _mean(v[2] for v in values)}
    by_type: dict[str, dict[str, Any]] = {}
    for qtype in sorted({r["question_type"] for r in records}):
        group = [r for r in records if r["question_type"] == qtype]
        row: dict[str, Any] = {"n": len(group), "n_scored": sum(1 for r in group if "turn_retrieval" in r)}
        for k in (5, 10):
            if k in ks:
                row[f"session recall_any@{k}"] = _mean(r["session_retrieval"][str(k)][0] for r in group
                                                       if "session_retrieval" in r)
        row.update(_rules_scores(group))
        if judge is not None:
            row["accuracy"] = _mean(float(r["judge"]) for r in group
                                    if not r["abstention"] and r.get("judge") is not None)
        by_type[qtype] = row
    result: dict[str, Any] = {
        "benchmark": "longmemeval", "table": by_type, "retrieval": retrieval, "cost": _cost(records),
        "judge_model": _model_name(judge), "unjudged": _unjudged(records, judge), "questions": len(records),
        "abstention_questions": sum(1 for r in records if r["abstention"]), "rules_scores": _rules_scores(records)}
    if judge is not None:
        accuracies = [row["accuracy"] for row in by_type.values() if row["accuracy"] is not None]
        result["task_averaged_accuracy"] = _mean(accuracies)
        result["overall_accuracy"] = _mean(float(r["judge"]) for r in records if r.get("judge") is not None)
        result["abstention_accuracy"] = _mean(float(r["judge"]) for r in records
                                              if r["abstention"] and r.get("judge") is not None)
    return result


def _rules_scores(records: list[dict[str, Any]]) -> dict[str, float | None]:
    """Judge-free scores of the answers: token F1 and gold-token recall over answerable questions
    (LoCoMo's normalisation, Porter stems), how often those were abstained on, and how often the
    abstention questions (``_abs``) were. Records of an older run without the fields count in none."""
    answerable = [r for r in records if not r["abstention"] and "f1" in r]
    unanswerable = [r for r in records if r["abstention"] and "abstained" in r]
    return {"F1": _mean(r["f1"] for r in answerable), "gold recall": _mean(r["gold_recall"] for r in answerable),
            "false abstention": _mean(float(r["abstained"]) for r in answerable),
            "abstention": _mean(float(r["abstained"]) for r in unanswerable)}


# --- shared -----------------------------------------------------------------------------
def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return statistics.fmean(values) if values else None


def _cost(records: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [r["latency_ms"] for r in records]
    return {"latency_ms_p50": percentile(latencies, 0.5), "latency_ms_p95": percentile(latencies, 0.95),
            "context_tokens_mean": _mean(r["context_tokens"] for r in records),
            "llm_calls_mean": _mean(r["llm_calls"] for r in records),
            "answered_by_llm": _mean(float(r.get("path") == "llm") for r in records),
            "llm_overruled": dict(sorted(Counter(_overruled(r.get("reason", "")) for r in records
                                                 if _overruled(r.get("reason", ""))).items())),
            "tokenizer": "all-MiniLM-L6-v2 WordPiece"}


def _overruled(reason: str) -> str | None:
    """Why a chat model's reply gave way to the LLM-free answer, read from ``Answer.reason``."""
    if "(chat model overruled: " in reason:
        return reason.split("(chat model overruled: ", 1)[1].rstrip(")")
    return "call failed" if "(the chat model failed)" in reason else None


def _unjudged(records: list[dict[str, Any]], judge: Any) -> int | None:
    """Questions whose judge output could not be read (they count in no accuracy)."""
    return None if judge is None else sum(1 for r in records if "judge" in r and r["judge"] is None)


def _model_name(model: Any) -> str | None:
    if model is None:
        return None
    return getattr(model, "model_name", None) or getattr(model, "model", None) or type(model).__name__


def _finish(out: Path, name: str, summary: dict[str, Any]) -> dict[str, Any]:
    from memagent.eval.report import markdown, plot

    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    text = markdown(summary)
    (out / "report.md").write_text(text)
    plot(summary, out / "plot.png")
    summary["report"] = text
    return summary
