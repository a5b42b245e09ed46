"""When an answer abstains, and how much of each tier a route reads. Pure: no I/O.

Abstain when nothing was found, when the best evidence is only loosely related
to the question, or when the question is about one person and the evidence
that answers it was said by another person about themselves (a classic
false-premise question: "What did Ann adopt?" when it was Bob who did).

>>> abstain(best_similarity=0.2, min_similarity=0.3, about_named=True, named={"ann"})
(True, 'weak evidence')
>>> abstain(best_similarity=0.6, min_similarity=0.3, about_named=False, named={"ann"})
(True, 'the evidence is about someone other than ann')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from memagent.policies.consolidation import favourite_slot
from memagent.types import Route


@dataclass(frozen=True)
class RoutePlan:
    """What a route reads: episode hits, profile statements, graph facts, and the weight of facts."""

    episodes: int
    statements: int
    graph_facts: int
    fact_weight: float


PLANS: dict[Route, RoutePlan] = {
    Route.EXTRACTION: RoutePlan(episodes=10, statements=3, graph_facts=0, fact_weight=0.3),
    Route.ABSTRACTION: RoutePlan(episodes=6, statements=10, graph_facts=3, fact_weight=0.8),
    Route.GENERALIZATION: RoutePlan(episodes=6, statements=8, graph_facts=8, fact_weight=0.6),
}


_SLOT_QUESTIONS = {
    "home": re.compile(r"\bwhere (?:do|does|did)\b.*\blive\b|\b(?:which|what) (?:city|town|country)\b.*\blive\b|"
                       r"\bwhere\b.*\b(?:home|based)\b", re.I),
    "employer": re.compile(r"\bwhere (?:do|does)\b.*\bwork\b|\b(?:employer|which company|what company)\b", re.I),
    "job": re.compile(r"\bwhat\b.*\b(?:job|occupation|profession)\b|\bwhat (?:do|does)\b.*\bdo for (?:a )?(?:living|work)\b", re.I),
    "partner": re.compile(r"\b(?:relationship status|who is\b.*\b(?:partner|married to|dating))\b", re.I),
}


# "What is my favourite food?", "What's Ana's favorite book these days?"; not "What restaurant
# serves my favourite food?" or "What was my favourite food before ramen?".
_FAVOURITE_QUESTION = re.compile(
    r"^\s*(?:what|which|who)(?:'s|’s|\s+is|\s+are)\s+(?:my|your|[A-Z][\w-]*(?:'s|’s))\s+(?:(?:current|new|all-time)\s+)?"
    r"favou?rite\s+(?P<thing>[a-z]+(?:\s+(?!now\b|currently\b|these\b|nowadays\b|at\b)[a-z]+)?)"
    r"\s*(?:(?:now|currently|these days|nowadays|at the moment)\s*)?\??\s*$",
    re.I)


def slot_asked(question: str) -> str | None:
    """The exclusive attribute a question asks for ("Where do I live?" -> "home"), if any.

    >>> slot_asked("Where does Sam live now?"), slot_asked("What did Sam eat?")
    ('home', None)
    >>> slot_asked("What is my favorite food now?"), slot_asked("What restaurant serves my favourite food?")
    ('favourite food', None)
    """
    for slot, pattern in _SLOT_QUESTIONS.items():
        if pattern.search(question):
            return slot
    match = _FAVOURITE_QUESTION.search(question)
    return favourite_slot(match.group("thing")) if match else None


# How far (in sentence-ranking score) the best evidence by or about the named person may
# trail the best evidence overall before the question counts as a false premise.
SPEAKER_MARGIN = 0.1


def abstain(*, best_similarity: float, min_similarity: float, about_named: bool,
            named: set[str]) -> tuple[bool, str]:
    """Whether to answer "not mentioned in memory", and why."""
    if best_similarity < min_similarity:
        return True, "weak evidence"
    if not about_named:
        return True, f"the evidence is about someone other than {', '.join(sorted(named))}"
    return False, ""
