"""Reports of an evaluation run: a Markdown table for the terminal and a PNG plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _cell(value: Any, percent: bool = True) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{100 * value:.1f}" if percent else f"{value:.1f}"
    return str(value)


def markdown(summary: dict[str, Any]) -> str:
    """The run's tables, scores in percent; "-" where a figure does not apply."""
    lines = []
    if summary["benchmark"] == "locomo":
        lines.append("LoCoMo QA and evidence recall (categories by the dataset's ids; "
                     "F1 and BLEU-1 of the answers, R@k of the retrieved turns)\n")
    else:
        lines.append("LongMemEval per question type (session recall_any@k; abstention questions "
                     "are not scored for retrieval; F1, gold recall and abstentions as below)\n")
    rows = summary["table"]
    columns = list(next(iter(rows.values())).keys()) if rows else []
    lines.append("| " + " | ".join(["group"] + columns) + " |")
    lines.append("|---|" + "---:|" * len(columns))
    for name, row in rows.items():
        lines.append("| " + " | ".join([name] + [_cell(row[c], c not in ("n", "n_scored")) for c in columns]) + " |")
    if summary["benchmark"] == "longmemeval":
        lines.append("\n| retrieval | recall_any | recall_all | ndcg_any |\n|---|---:|---:|---:|")
        for name, row in summary["retrieval"].items():
            cells = [_cell(row[c]) for c in ("recall_any", "recall_all", "ndcg_any")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        rules = summary.get("rules_scores")
        if rules:
            lines.append(f"\nanswers scored without a judge: token F1 {_cell(rules['F1'])}, gold recall "
                         f"{_cell(rules['gold recall'])} (share of the gold answer's stemmed tokens the answer "
                         f"holds) over the answerable questions, which were abstained on "
                         f"{_cell(rules['false abstention'])} %; abstention questions abstained on "
                         f"{_cell(rules['abstention'])} %. Preference golds are rubrics, not spans: read "
                         "their F1 as a rough guide and prefer a judge")
        if summary.get("judge_model"):
            lines.append(f"\ntask-averaged accuracy {_cell(summary['task_averaged_accuracy'])}, overall "
                         f"{_cell(summary['overall_accuracy'])}, abstention {_cell(summary['abstention_accuracy'])}")
    cost = summary["cost"]
    lines.append(f"\nanswer latency p50 {_cell(cost['latency_ms_p50'], False)} ms, p95 "
                 f"{_cell(cost['latency_ms_p95'], False)} ms | context {_cell(cost['context_tokens_mean'], False)} "
                 f"tokens/question ({cost['tokenizer']}) | LLM calls/question {_cell(cost['llm_calls_mean'], False)}")
    if cost.get("llm_calls_mean"):
        overruled = ", ".join(f"{reason} {n}" for reason, n in cost.get("llm_overruled", {}).items()) or "none"
        lines.append(f"answers by the LLM path {_cell(cost.get('answered_by_llm'))} %; chat model replies "
                     f"overruled by the LLM-free path: {overruled}")
    judge = summary.get("judge_model")
    lines.append(f"judge: {judge} ({summary.get('unjudged')} outputs unreadable, left out)" if judge
                 else "judge: none (no chat model configured; no judge figure)")
    lines.append(f"{summary['questions']} questions, wall time of this invocation {summary.get('wall_s', 0):.0f} s")
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: str | Path) -> None:
    """Per-group bars of the main score, and recall@k curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, curves) = plt.subplots(1, 2, figsize=(11, 4))
    rows = summary["table"]
    if summary["benchmark"] == "locomo":
        names = list(rows)
        bars.bar(names, [100 * (rows[n]["F1"] or 0) for n in names], color="#4c72b0")
        bars.set_ylabel("F1 (%)")
        ks = [c for c in next(iter(rows.values())) if c.startswith("R@")] if rows else []
        for name in names:
            curves.plot([int(k[2:]) for k in ks], [100 * (rows[name][k] or 0) for k in ks], marker="o", label=name)
        curves.set_ylabel("evidence recall@k (%)")
    else:
        names = list(rows)
        key = next((c for c in (next(iter(rows.values())) if rows else {}) if c.startswith("session recall")), None)
        bars.bar(names, [100 * (rows[n].get(key) or 0) for n in names], color="#4c72b0")
        bars.set_ylabel(f"{key} (%)" if key else "")
        for level in ("session", "turn"):
            items = [(int(name.split("@")[1]), row["recall_any"]) for name, row in summary["retrieval"].items()
                     if name.startswith(level)]
            curves.plot([k for k, _ in items], [100 * (v or 0) for _, v in items], marker="o",
                        label=f"{level} recall_any")
        curves.set_ylabel("recall@k (%)")
    bars.tick_params(axis="x", rotation=45, labelsize=8)
    curves.set_xscale("log")
    curves.set_xlabel("k")
    curves.legend(fontsize=7)
    fig.suptitle(f"memagent on {summary['benchmark']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
