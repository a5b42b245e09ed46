"""LLM-judge prompts of two benchmarks, word for word, with their official label parsing.

These strings are benchmark definitions: do not edit them. Only the placeholder
names were changed (to ``str.format`` fields); every other character is as in
the source, including curly quotes, trailing spaces and newlines.

LoCoMo (mem0 evaluation lineage)
    Repository ``mem0ai/mem0``, file ``evaluation/metrics/llm_judge.py``,
    constant ``ACCURACY_PROMPT``, read at commit
    2352a44193bd0e36cd544fc5664cbee14e020bc2. Its placeholders are already
    ``{question}``, ``{gold_answer}``, ``{generated_answer}``. Licence: the
    mem0 repository is Apache-2.0 ("Copyright [2023] [Taranjeet Singh]"); the
    LICENSE file itself was not in the index consulted, this is from secondary
    references to it.

    An earlier version of the same file (commit
    6723043509933fa48d8a6755efd7d155e20dee4f, before ``extract_json`` was
    added) differs in exactly one character: "Now it’s time" with a curly
    apostrophe (U+2019) instead of "Now it's time". It is kept here as
    ``LOCOMO_JUDGE_PROMPT_EARLY``; many downstream copies use that variant.

    Official use: model gpt-4o-mini, temperature 0.0,
    ``response_format={"type": "json_object"}``, the prompt as the single user
    message; LoCoMo category 5 (adversarial) questions are skipped. Label:
    ``json.loads(extract_json(content))["label"]``, scored 1 if it equals
    "CORRECT" and 0 otherwise (``extract_json`` strips an enclosing
    ```` ```json ... ``` ```` fence; the earlier version used
    ``json.loads(content)`` directly).

LongMemEval
    Repository ``xiaowu0162/LongMemEval``, file
    ``src/evaluation/evaluate_qa.py``, function
    ``get_anscheck_prompt(task, question, answer, response, abstention=False)``,
    read at commit b11ff723381cf41e744c5524be0c52b3a408516c (the prompt text is
    identical at f466efe0ea8859251760733cd4c7ad98302b9ddf). Its templates use
    positional ``{}`` fields filled as ``format(question, answer, response)``;
    here they are named ``{question}``, ``{answer}``, ``{response}`` (for
    single-session-preference the second field is shown to the judge as
    "Rubric", for abstention as "Explanation"; both are the item's ``answer``).
    Licence: MIT License, Copyright (c) 2024 Di Wu (LICENSE at commit
    24cdd24b3f67843016cb779d7e7e4dba9be65042).

    Official use: abstention is decided by ``'_abs' in question_id`` and then
    the abstention prompt is used whatever the question type;
    single-session-user, single-session-assistant and multi-session share one
    prompt; any other type raises ``NotImplementedError``. The judge (the
    script's ``model_zoo`` offers gpt-4o -> gpt-4o-2024-08-06, gpt-4o-mini ->
    gpt-4o-mini-2024-07-18 and llama-3.1-70b-instruct) gets the prompt as the
    single user message with temperature 0, n=1, max_tokens=10; the label is
    ``'yes' in completion.choices[0].message.content.strip().lower()``.
"""

from __future__ import annotations

import json
import re

__all__ = [
    "LOCOMO_JUDGE_PROMPT",
    "LOCOMO_JUDGE_PROMPT_EARLY",
    "LONGMEMEVAL_PROMPTS",
    "locomo_judge_label",
    "longmemeval_judge_yes",
    "longmemeval_prompt",
]

# --- LoCoMo (mem0 evaluation/metrics/llm_judge.py, ACCURACY_PROMPT) ---------

LOCOMO_JUDGE_PROMPT: str = """
Your task is to label an answer to a question as ’CORRECT’ or ’WRONG’. You will be given the following data:
    (1) a question (posed by one user to another user), 
    (2) a ’gold’ (ground truth) answer, 
    (3) a generated answer
which you will score as CORRECT/WRONG.

The point of the question is to ask about something one user should know about the other user based on their prior conversations.
The gold answer will usually be a concise and short answer that includes the referenced topic, for example:
Question: Do you remember what I got the last time I went to Hawaii?
Gold answer: A shell necklace
The generated answer might be much longer, but you should be generous with your grading - as long as it touches on the same topic as the gold answer, it should be counted as CORRECT. 

For time related questions, the gold answer will be a specific date, month, year, etc. The generated answer might be much longer or use relative time references (like "last Tuesday" or "next month"), but you should be generous with your grading - as long as it refers to the same date or time period as the gold answer, it should be counted as CORRECT. Even if the format differs (e.g., "May 7th" vs "7 May"), consider it CORRECT if it's the same date.

Now it's time for the real question:
Question: {question}
Gold answer: {gold_answer}
Generated answer: {generated_answer}

First, provide a short (one sentence) explanation of your reasoning, then finish with CORRECT or WRONG. 
Do NOT include both CORRECT and WRONG in your response, or it will break the evaluation script.

Just return the label CORRECT or WRONG in a json format with the key as "label".
"""

# The earlier revision of the same prompt: identical except for a curly
# apostrophe (U+2019) in "Now it’s time for the real question:".
LOCOMO_JUDGE_PROMPT_EARLY: str = LOCOMO_JUDGE_PROMPT.replace(
    "Now it's time for the real question:", "Now it\u2019s time for the real question:"
)

_FENCE = re.compile(r"```(?:json)?\s*(.*?)\s*```", re.DOTALL)


def _strip_json_fence(text: str) -> str:
    """Like mem0's ``extract_json``: the inside of the first ``` fence, else the text."""
    text = text.strip()
    match = _FENCE.search(text)
    return match.group(1) if match else text


def locomo_judge_label(output: str) -> bool | None:
    """mem0's reading of a judge reply: True iff its JSON ``"label"`` is exactly "CORRECT".

    mem0 scores any parsed label other than "CORRECT" (case-sensitive) as wrong;
    where mem0 would raise (no JSON object, no "label" key), this returns None.
    """
    if not isinstance(output, str):
        return None
    try:
        data = json.loads(_strip_json_fence(output))
        label = data["label"]
    except (json.JSONDecodeError, KeyError, TypeError, IndexError):
        return None
    return label == "CORRECT"


# --- LongMemEval (src/evaluation/evaluate_qa.py, get_anscheck_prompt) --------

_LME_DEFAULT = "I will give you a question, a correct answer, and a response from a model. Please answer yes if the response contains the correct answer. Otherwise, answer no. If the response is equivalent to the correct answer or contains all the intermediate steps to get the correct answer, you should also answer yes. If the response only contains a subset of the information required by the answer, answer no. \n\nQuestion: {question}\n\nCorrect Answer: {answer}\n\nModel Response: {response}\n\nIs the model response correct? Answer yes or no only."

_LME_TEMPORAL = "I will give you a question, a correct answer, and a response from a model. Please answer yes if the response contains the correct answer. Otherwise, answer no. If the response is equivalent to the correct answer or contains all the intermediate steps to get the correct answer, you should also answer yes. If the response only contains a subset of the information required by the answer, answer no. In addition, do not penalize off-by-one errors for the number of days. If the question asks for the number of days/weeks/months, etc., and the model makes off-by-one errors (e.g., predicting 19 days when the answer is 18), the model's response is still correct. \n\nQuestion: {question}\n\nCorrect Answer: {answer}\n\nModel Response: {response}\n\nIs the model response correct? Answer yes or no only."

_LME_KNOWLEDGE_UPDATE = "I will give you a question, a correct answer, and a response from a model. Please answer yes if the response contains the correct answer. Otherwise, answer no. If the response contains some previous information along with an updated answer, the response should be considered as correct as long as the updated answer is the required answer.\n\nQuestion: {question}\n\nCorrect Answer: {answer}\n\nModel Response: {response}\n\nIs the model response correct? Answer yes or no only."

_LME_PREFERENCE = "I will give you a question, a rubric for desired personalized response, and a response from a model. Please answer yes if the response satisfies the desired response. Otherwise, answer no. The model does not need to reflect all the points in the rubric. The response is correct as long as it recalls and utilizes the user's personal information correctly.\n\nQuestion: {question}\n\nRubric: {answer}\n\nModel Response: {response}\n\nIs the model response correct? Answer yes or no only."

_LME_ABSTENTION = "I will give you an unanswerable question, an explanation, and a response from a model. Please answer yes if the model correctly identifies the question as unanswerable. The model could say that the information is incomplete, or some other information is given but the asked information is not.\n\nQuestion: {question}\n\nExplanation: {answer}\n\nModel Response: {response}\n\nDoes the model correctly identify the question as unanswerable? Answer yes or no only."

LONGMEMEVAL_PROMPTS: dict[str, str] = {
    "single-session-user": _LME_DEFAULT,
    "single-session-assistant": _LME_DEFAULT,
    "multi-session": _LME_DEFAULT,
    "temporal-reasoning": _LME_TEMPORAL,
    "knowledge-update": _LME_KNOWLEDGE_UPDATE,
    "single-session-preference": _LME_PREFERENCE,
    "abstention": _LME_ABSTENTION,
}


def longmemeval_prompt(question_type: str, question: str, answer: str, response: str,
                       abstention: bool) -> str:
    """The official judge prompt for one item (``abstention``: ``'_abs' in question_id``).

    With ``abstention`` the abstention prompt is used whatever the type, as in
    the official script; an unknown type otherwise raises NotImplementedError,
    as the official script does.
    """
    if abstention:
        template = LONGMEMEVAL_PROMPTS["abstention"]
    else:
        if question_type == "abstention" or question_type not in LONGMEMEVAL_PROMPTS:
            raise NotImplementedError(f"no LongMemEval judge prompt for question type {question_type!r}")
        template = LONGMEMEVAL_PROMPTS[question_type]
    return template.format(question=question, answer=answer, response=response)


def longmemeval_judge_yes(output: str) -> bool:
    """The official decision: ``'yes' in output.strip().lower()`` (substring, so "yes." counts)."""
    return "yes" in output.strip().lower()
