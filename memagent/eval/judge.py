"""LLM judges with the benchmarks' own prompts, for when a chat model is configured.

Any LangChain ``BaseChatModel`` works. An output the prompt's rule cannot read
gives ``None`` (counted as unjudged in the report), never a guess.
"""

from __future__ import annotations

from typing import Any

from memagent.eval.judge_prompts import (
    LOCOMO_JUDGE_PROMPT,
    locomo_judge_label,
    longmemeval_judge_yes,
    longmemeval_prompt,
)


def _ask(model: Any, prompt: str) -> str:
    from langchain_core.messages import HumanMessage

    reply = model.invoke([HumanMessage(content=prompt)])
    content = getattr(reply, "content", reply)
    return content if isinstance(content, str) else str(content)


def judge_locomo(model: Any, question: str, gold: str, answer: str) -> bool | None:
    """The mem0-lineage LoCoMo judge: CORRECT or WRONG."""
    prompt = LOCOMO_JUDGE_PROMPT.format(question=question, gold_answer=gold, generated_answer=answer)
    return locomo_judge_label(_ask(model, prompt))


def judge_longmemeval(model: Any, question_type: str, question: str, gold: str, answer: str,
                      abstention: bool) -> bool:
    """LongMemEval's type-specific yes/no judge."""
    prompt = longmemeval_prompt(question_type, question, gold, answer, abstention)
    return longmemeval_judge_yes(_ask(model, prompt))
