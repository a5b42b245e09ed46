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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from memagent.policies.consolidation import favourite_slot
from memagent.types import Category, Route, Statement


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
    "employer": re.compile(r"\bwhere (?:do|does)\b.*\bwork\b|\b(?:employer|which company|what company)\b|"
                           r"\bwho (?:do|does)\b.*\bwork for\b", re.I),
    "job": re.compile(r"\bwhat\b.*\b(?:job|occupation|profession)\b|"
                      r"\bwhat (?:do|does)\b.*\bdo for (?:a )?(?:living|work)\b", re.I),
    "partner": re.compile(r"\b(?:relationship status|who (?:is|am|are)\b.*\b(?:partner|married to|dating|seeing|"
                          r"engaged to|wife|husband|girlfriend|boyfriend|fianc\w*))\b|"
                          r"^\s*(?:am|are|is|was|were) \w+ (?:\w+ )?(?:married|single|engaged|dating|"
                          r"in a relationship)\b", re.I),
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


def slot_value(valid: Sequence[Statement], slot: str | None, named: set[str]) -> Statement | None:
    """The statement that holds the asked-for exclusive attribute: the latest of those ``valid``
    (valid at the asked date) with that slot, of the named person when the question names one."""
    if slot is None:
        return None
    found = [s for s in valid if s.slot == slot and s.value and (not named or s.subject.lower() in named)]
    return max(found, key=lambda s: s.valid_from, default=None)


def superseded(statements: Sequence[Statement], valid: Sequence[Statement], now: datetime,
               slot: str | None) -> tuple[set[str], set[str]]:
    """Statements closed by ``now``, and, for a question about an exclusive ``slot``, the
    episodes that only its closed statements rest on.

    "I live in Lisbon" stops being evidence for "where do I live?" once "we moved to
    Porto" closed it; asked at a date before the move, it still is. For other
    questions the episode stays evidence: it may say more than the old address.
    """
    closed = [s for s in statements if s.slot and s.valid_to is not None and s.valid_to <= now]
    if not closed:
        return set(), set()
    still = {i for s in valid if s.kind == "statement" for i in s.evidence_ids}
    return {s.id for s in closed}, {i for s in closed if s.slot == slot for i in s.evidence_ids if i not in still}


_CAPITALISED = re.compile(r"\b([A-Z][a-z]+)(?:'s|’s)?\b")


def names_someone_else(question: str, people: set[str]) -> bool:
    """Whether the question names (past its first word) someone who is neither a speaker nor
    the subject of a statement: "Where does Ana live?" is not about the user's own home.

    >>> names_someone_else("Where does Ana live?", {"Sam"}), names_someone_else("Where does Sam live?", {"Sam"})
    (True, False)
    """
    known = {p.lower() for p in people} | {"i"}
    return any(m.group(1).lower() not in known for m in _CAPITALISED.finditer(question) if m.start() > 0)


# How many of the rules' best-ranked sentences a chat model's answer may draw on (outside
# generalization). Chosen by leave-one-user-out cross-validation over 1, 2, 3 and 5 on the
# made-up lives of benchmarks/llm_path.py with Qwen2.5-Coder 0.5B and 1.5B (all 12 folds
# chose 1; cross-validated pass rate 77.3 % and 81.8 %, against 68.2 % and 75.8 % with 5).
SUPPORT_SENTENCES = 1


# A question about how things are now ("What car do I drive?", "Where does my sister live?"),
# not about a past state or event ("What car did I drive?", "What was my first car?").
_PRESENT_AUX = re.compile(r"\b(?:do|does|am|is|are|'s|’s|'m|’m|'re|’re|have|has)\b", re.I)
_PAST = re.compile(r"\b(?:did|was|were|had|used to|before|previous(?:ly)?|formerly|former|ago|first|ever|"
                   r"earlier|originally|at first|back then|last time)\b", re.I)


def asks_current(question: str) -> bool:
    """Whether ``question`` asks how things stand at the asked date.

    >>> asks_current("What car do I drive?"), asks_current("What car did I drive?")
    (True, False)
    >>> asks_current("What is my diet?"), asks_current("What was my first car?")
    (True, False)
    """
    return bool(_PRESENT_AUX.search(question)) and not _PAST.search(question)


# An earlier sentence of the same speaker that a later one resembles this closely (cosine of
# their embeddings) no longer answers a question about now: the later one is the update
# ("I drive an old Fiat Panda" -> "I sold the Panda and bought a Toyota Yaris").
# Chosen by leave-one-user-out cross-validation on the dev users of
# benchmarks/data/knowledge_updates.json (benchmarks/knowledge_updates.py --cv): 7 of 8 folds chose 0.4,
# cross-validated dev pass rate 88.2 %.
SUPERSEDED_SIMILARITY = 0.4

# The relatives a question may ask about through the user ("my sister", "my mum").
KIN = ("sister", "brother", "sibling", "mother", "father", "parent", "son", "daughter", "child", "husband",
       "wife", "partner", "spouse", "boyfriend", "girlfriend", "fiance", "best friend", "friend", "cousin",
       "aunt", "uncle", "grandmother", "grandfather", "niece", "nephew", "neighbour", "colleague", "coworker",
       "boss", "roommate", "mentor")
_KIN_WORDS = {"mom": "mother", "mum": "mother", "dad": "father", "parents": "parent", "kid": "child",
              "kids": "child", "children": "child", "neighbor": "neighbour", "grandma": "grandmother",
              "grandpa": "grandfather", "co-worker": "coworker", "fiancé": "fiance", "fiancée": "fiance",
              **{k: k for k in KIN}, **{f"{k}s": k for k in KIN if " " not in k}}
_KIN_ALTERNATION = "|".join(sorted(map(re.escape, _KIN_WORDS), key=len, reverse=True))
_KIN_ASKED = re.compile(r"\b(?:my|our)\s+(?:(?:little|older|younger|big|baby|twin|eldest|oldest)\s+)?"
                        rf"(?P<kin>{_KIN_ALTERNATION})\b", re.I)


def kin_asked(question: str) -> str | None:
    """The relative a question is about, normalised ("Where does my mum live?" -> "mother").

    >>> kin_asked("Where does my mum live?"), kin_asked("What does my best friend do?"), kin_asked("Where do I live?")
    ('mother', 'best friend', None)
    """
    match = _KIN_ASKED.search(question)
    return _KIN_WORDS[match.group("kin").lower()] if match else None


# Advice for the user ("Suggest a dinner recipe", "What should I cook tonight?"): with no chat
# model, the answer is what the profile holds that any advice must respect.
_ADVICE = re.compile(r"\b(?:suggest\w*|recommend\w*|advi[cs]e|ideas? for|tips? (?:for|on)|what should (?:I|we)|"
                     r"where should (?:I|we)|which \w+ should (?:I|we)|should (?:I|we) (?:try|get|cook|make|eat|"
                     r"order|buy|visit|go|book|read|watch)|help me (?:plan|pick|choose|find|decide)|"
                     r"plan (?:a|an|my|our)|pick (?:a|an|something)|any good)\b", re.I)
# Statements that constrain advice: diet, allergies, intolerances, what the user avoids.
_CONSTRAINT = re.compile(r"\b(?:vegetarian|vegan|pescatarian|plant-based|gluten|lactose|dairy-free|dairy|nut-free|"
                         r"allerg\w*|intoleran\w*|halal|kosher|keto|paleo|diabet\w*|coeliac|celiac|sober|"
                         r"teetotal\w*|(?:don't|do not|can't|cannot|never|no longer|stopped|quit) (?:eat|drink)\w*|"
                         r"diet|avoid\w*)\b", re.I)
_FOR_ME = re.compile(r"\b(?:I|me|my|we|us|our|you)\b|^\s*(?:please\s+)?(?:suggest|recommend|plan|pick|propose)\b", re.I)
_RECALLED = re.compile(r"\b(?:recommended|suggested|advised|remind me|told me|you said)\b", re.I)
_OF_KIN = re.compile(r"(?:'s|’s|\bmy|\bour)\s+(?:(?:little|older|younger|big|baby|twin|best)\s+)?"
                     rf"(?:{_KIN_ALTERNATION})\b", re.I)
# A diet is one at a time: of the statements naming one, the latest stands ("I'm vegetarian" ->
# "I've gone fully vegan"; "I eat pescatarian" -> "I started eating meat again").
_DIET = re.compile(r"\b(?:vegetarian|vegan|pescatarian|plant-based|keto|paleo|omnivor\w*|meat-eater|"
                   r"(?:eat|eats|eating|ate) (?:meat|fish|animal products))\b", re.I)
ADVICE_CONSTRAINTS = 6  # at most this many statements answer an advice question


def asks_advice(question: str) -> bool:
    """Whether ``question`` asks for advice or a suggestion for the user.

    >>> asks_advice("Suggest a dinner recipe for tonight."), asks_advice("What should I cook?")
    (True, True)
    >>> asks_advice("What did I cook on Friday?"), asks_advice("What book did Caroline recommend to Melanie?")
    (False, False)
    >>> asks_advice("What was the restaurant you recommended in Rome?")
    False
    """
    return bool(_ADVICE.search(question) and _FOR_ME.search(question) and not _PAST.search(question)
                and not _RECALLED.search(question))


def advice_constraints(valid: Sequence[Statement], retrieved: Sequence[str], speakers: set[str]) -> list[Statement]:
    """What advice must respect, from the statements ``valid`` now about the memory's ``speakers``
    (not about people they mention): where they live,
    their diet, allergies and what they avoid, then the preferences and dislikes that retrieval
    found for the question (``retrieved``: statement ids, best first).

    >>> from datetime import datetime
    >>> from memagent.types import Category
    >>> s = lambda i, text, cat, slot=None: Statement(i, "u", "Sam", text, cat, 0.9, (), datetime(2024, 1, 1),
    ...                                               slot=slot, value="Lisbon" if slot else None)
    >>> valid = [s("a", "I love hiking", Category.PREFERENCE), s("b", "I'm vegan", Category.HEALTH),
    ...          s("c", "I live in Lisbon", Category.LOCATION, "home"), s("d", "I love jazz", Category.PREFERENCE)]
    >>> [x.text for x in advice_constraints(valid, ["d"], {"Sam"})]
    ['I live in Lisbon', "I'm vegan", 'I love jazz']
    >>> later = Statement("e", "u", "Sam", "I eat meat again", Category.HEALTH, 0.9, (), datetime(2024, 5, 1))
    >>> [x.text for x in advice_constraints(valid + [later], [], {"Sam"})]  # one diet at a time: the latest
    ['I live in Lisbon', 'I eat meat again']
    """
    lowered = {p.lower() for p in speakers} | {"the user"}  # the subject a "user" role's statements get
    # "The user's sister Ana is vegan" binds Ana; a slot is the speaker's own ("We moved to
    # Córdoba for my wife's job" is where the user lives)
    mine = [s for s in valid if s.subject.lower() in lowered and s.category is not Category.SUMMARY
            and (s.slot is not None or not _OF_KIN.search(s.text))]
    home = [s for s in mine if s.slot == "home"]
    diets = [s for s in mine if s.slot != "home" and _DIET.search(s.text)]
    diet = max(diets, key=lambda s: s.valid_from) if diets else None
    limits = [s for s in mine if s.slot != "home" and (s is diet or (_CONSTRAINT.search(s.text) and s not in diets))]
    by_id = {s.id: s for s in mine if s.category in (Category.PREFERENCE, Category.DISLIKE)}
    liked = [by_id[i] for i in retrieved if i in by_id]
    return list(dict.fromkeys(home + limits + liked))[:ADVICE_CONSTRAINTS]
