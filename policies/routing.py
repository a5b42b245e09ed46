"""Which route a question takes: extraction, abstraction or generalization. Pure: no I/O.

Two kinds of evidence are added up per route. Cue rules read the wording:
modal and advisory words ("should I", "would she likely", "recommend", "might")
point to generalization; words about kinds, habits and traits ("what kind of",
"usually", "favourite", "personality", "what does X think of") to abstraction;
past tense and factual question words ("when did", "where", "how many") to
extraction. When the caller gives them, the best cosine similarity of the
question to each route's ``PROTOTYPES`` is added, so questions that no rule
covers still land near their kind. A cue weighs 0.1-0.4, more than the usual
gap between two routes' similarities, so a clear cue wins unless the question
nearly repeats a prototype. Extraction starts with a small prior and wins
ties: looking a fact up is the safe default.
``temporal`` says whether the question asks for a time or names one.

>>> decision = classify("Would Maria likely enjoy a jazz concert?")
>>> decision.route.value, decision.temporal, decision.reason
('generalization', False, 'likely')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from memagent.types import Route

E, A, G = Route.EXTRACTION, Route.ABSTRACTION, Route.GENERALIZATION

PROTOTYPES: dict[Route, list[str]] = {
    E: [
        "When did I sign the lease for my flat?",
        "What did my friend give me for my birthday?",
        "Where did we have dinner on our anniversary?",
        "Who did Alex meet at the conference?",
        "What is the name of my daughter's teacher?",
        "How many cousins does Maya have?",
        "Which hospital was my grandfather treated at?",
        "What did Sara say about her new boss?",
        "How long ago did Ravi start his company?",
        "What year did we move into this house?",
        "What did I order at the sushi place?",
        "Where does Lina's sister live?",
        "How much did the concert tickets cost?",
        "What did my coach tell me after the game?",
        "Which hotel did Tariq book in Rome?",
        "What was the name of the film we saw?",
        "When is Kofi's flight home?",
        "What did Emma bring to the picnic?",
        "Where did I put my passport?",
        "What breed is Ana's horse?",
        "What did you tell me about the train strike?",
        "Which school does my nephew go to?",
        "What happened at Jade's graduation party?",
        "How old is my brother's son?",
        "What instrument did Omar buy last year?",
    ],
    A: [
        "What kind of movies do I enjoy?",
        "What are Alex's interests?",
        "How does Maya usually spend her free time?",
        "What does Sara think of her coworkers?",
        "What are my eating habits?",
        "What kind of person is Ravi?",
        "What are Lina's favourite things to do?",
        "How would you describe Tariq's personality?",
        "What does Emma tend to worry about?",
        "What sort of clothes does Ana prefer?",
        "How does Omar feel about his family?",
        "What values matter most to Jade?",
        "What are my usual topics of conversation?",
        "How often does Kofi travel?",
        "What is Sara's attitude towards exercise?",
        "What are my goals and ambitions?",
        "What type of food do I like?",
        "How does Ravi typically deal with conflict?",
        "What activities does Lina enjoy with her kids?",
        "What are Alex's strengths and weaknesses?",
        "What is my usual daily routine?",
        "What does Maya care about?",
        "Which things does Omar keep doing every week?",
        "What is Emma's opinion on politics?",
        "What kind of relationship do I have with my father?",
    ],
    G: [
        "Which country should I travel to this year?",
        "Would Alex enjoy a cooking class?",
        "What present should I buy for my mother?",
        "Would Maya likely be considered religious?",
        "What book would you recommend for me?",
        "Is Ravi likely to change careers?",
        "What could I do to feel less tired?",
        "Would Sara be a good teacher?",
        "Can you suggest a hobby for me?",
        "What job might suit Lina?",
        "Should Tariq buy a house or keep renting?",
        "What would be a good birthday surprise for Emma?",
        "Which sport would be good for someone like me?",
        "Would Omar prefer the mountains or the sea?",
        "If I quit my job, how would I pay the bills?",
        "What restaurant should we try for the party?",
        "Would Ana support a new park in her town?",
        "What pet would fit our family?",
        "Is it a good idea for Kofi to study law?",
        "What might Jade enjoy doing on holiday?",
        "What advice would you give me about saving money?",
        "Which phone would be best for my grandmother?",
        "Would Maya be interested in a photography course?",
        "How might moving abroad affect my career?",
        "What should I plant in my garden?",
    ],
}

_MONTHS = ("january|february|april|june|july|august|september|october|november|december"
           "|jan|feb|apr|jun|jul|aug|sept?|oct|nov|dec")
_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_PERIODS = (r"week|weekend|month|year|summer|winter|spring|autumn|fall|semester|term"
            rf"|season|night|morning|evening|{_DAYS}|{_MONTHS}|may|march")
_TEMPORAL = re.compile(
    r"^\s*when\b|\bwhen (did|was|were|is|are|will|do|does|has|had)\b"
    r"|\bwhat (date|day|time|year|month|week)\b|\b(which|what) (year|month|day|date|week|season)\b"
    r"|\bhow long\b|\bhow (many|much) (days|weeks|months|years|time)\b|\bago\b"
    r"|\b(yesterday|today|tonight|tomorrow|recently|lately|nowadays)\b"
    rf"|\b(last|this|next|past|previous|coming) ({_PERIODS})\b"
    rf"|\b({_MONTHS}|{_DAYS})\b|\b(in|early|late|mid|since|until|of|last) (may|march)\b"
    r"|\b(1[89]|20)\d\d\b|\b\d{1,2}(st|nd|rd|th)\b|\bthe (last|first) time\b",
    re.I)

# Looking a fact up is the safe default: an abstraction question sent to the episodes
# still finds its evidence there, while a fact question sent to the profile may not.
EXTRACTION_PRIOR = 0.03
_PAST = r"\b(did|was|were|had|happened)\b"
_SUBJ = r"(i|we|you|he|she|they|it|my|our|his|her|their|[A-Z]\w+)"


@dataclass(frozen=True)
class Cue:
    """A wording rule: when ``pattern`` matches, ``route`` gains ``weight``."""

    name: str
    route: Route
    weight: float
    pattern: re.Pattern[str]
    unless: re.Pattern[str] | None = None  # the cue is void when this matches too


def _cue(name: str, route: Route, weight: float, pattern: str, unless: str | None = None) -> Cue:
    return Cue(name, route, weight, re.compile(pattern, re.I),
               re.compile(unless, re.I) if unless else None)


CUES: tuple[Cue, ...] = (
    # generalization: advice, hypotheticals, likelihoods, fit
    _cue("should", G, 0.4, r"\bshould\b|\bought to\b"),
    _cue("likely", G, 0.4, r"\b(likely|unlikely|probably|chance)\b"),
    _cue("would", G, 0.4, r"\bwould\b", unless=r"\bwould you (describe|sum|characteri[sz]e|say)\b"),
    _cue("might", G, 0.4, r"\bmight\b|\bmay (be|have|enjoy|like|want|prefer|need)\b"),
    _cue("could", G, 0.3, r"\bcould\b", unless=r"\bcould you (tell|remind|recall)\b"),
    _cue("if", G, 0.3, rf"\bif {_SUBJ}\b|\bsuppose\b|\bimagine\b|\bhypothetical"),
    _cue("recommend", G, 0.4, r"\b(recommend|suggest|advi[cs]e|tips?)\b", unless=_PAST),
    _cue("fit", G, 0.3, r"\b(suit|suitable|fit|good idea|worth it|best way|good way|pair)\b",
         unless=_PAST),
    _cue("risk", G, 0.2, r"\b(risk|safe|healthy|wise)\b", unless=_PAST),
    # abstraction: kinds, habits, traits, preferences, views
    _cue("kind of", A, 0.3, r"\bwhat (kinds?|sorts?|types?|genres?) of\b|\bwhich (kinds?|sorts?|types?|genres?)\b"),
    _cue("usually", A, 0.3, r"\b(usually|typically|typical|tends?|often|generally|in general"
                            r"|normally|regularly|frequently|habitually|overall|always|keeps?)\b"),
    _cue("favourite", A, 0.3, r"\bfavou?rites?\b|\bprefer(s|ence|ences)?\b"),
    _cue("trait", A, 0.3, r"\b(personality|traits?|character|values|attitudes?|outlook|views?"
                          r"|opinions?|habits?|routines?|hobbies|interests|passionate|motivates?"
                          r"|goals|ambitions|priorities|strengths|weaknesses|worries|style|taste"
                          r"|approach|themes|patterns|recurring|in common|role)\b"),
    _cue("think of", A, 0.3, r"\b(does|do|did) \w+('s)? (\w+ )?(think|feel) (of|about)\b"
                             r"|\bhow (does|do) \w+ feel\b|\bcare about\b"),
    _cue("likes", A, 0.2, r"\b(does|do) \w+('s)? (\w+ )?(like|love|enjoy|dislike|hate|value)\b"
                          r"|\bmakes? \w+ (happy|sad|angry)\b"),
    _cue("how adj", A, 0.2, r"^how (\w+) (is|am|are)\b"
                            r"|^how (does|do) \w+ (handle|balance|deal|cope|react|relax|spend)\b"),
    _cue("collection", A, 0.3, r"^\s*(what|which) (\w+ )?\w+s (has|have) \w+"
                               r"|\b(has|have) \w+ ever\b|\bover the years\b"),
    # extraction: past events, names, places, amounts, dates
    _cue("past", E, 0.2, _PAST),
    _cue("fact word", E, 0.2, r"^\s*(when|where|who|whom|whose)\b|\bhow (many|much|old|far)\b"
                              r"|\bname of\b|\bwhat (date|time|year)\b|\bwhich (year|day|month)\b"),
)


@dataclass(frozen=True)
class RouteDecision:
    """A question's route, whether it is about time, each route's score and why."""

    route: Route
    temporal: bool
    scores: dict[Route, float] = field(default_factory=dict)
    reason: str = "default"


def is_temporal(question: str) -> bool:
    """True when the question asks when, for a date or a duration, or names a time."""
    return _TEMPORAL.search(question) is not None


def cue_scores(question: str) -> tuple[dict[Route, float], dict[Route, str]]:
    """Each route's summed cue weight and the name of its heaviest matching cue."""
    scores = {route: 0.0 for route in Route}
    best: dict[Route, tuple[float, str]] = {}
    for cue in CUES:
        if not cue.pattern.search(question) or (cue.unless and cue.unless.search(question)):
            continue
        scores[cue.route] += cue.weight
        if cue.weight > best.get(cue.route, (0.0, ""))[0]:
            best[cue.route] = (cue.weight, cue.name)
    return scores, {route: name for route, (_, name) in best.items()}


def classify(question: str, similarities: Mapping[Route, float] | None = None) -> RouteDecision:
    """Route ``question`` by its cue rules plus, when given, its prototype similarities.

    ``similarities`` maps each route to the question's best cosine similarity with
    that route's prototypes. A question about time counts as an extraction cue.
    """
    temporal = is_temporal(question)
    scores, names = cue_scores(question)
    if temporal:
        scores[E] += 0.1
        names.setdefault(E, "temporal")
    scores[E] += EXTRACTION_PRIOR
    for route, sim in (similarities or {}).items():
        scores[Route(route)] += float(sim)
    route = max(Route, key=lambda r: (scores[r], r is E))
    reason = names.get(route) or ("prototypes" if similarities else "default")
    return RouteDecision(route, temporal, scores, reason)


# What a chat model's choice of route adds to that route's score, at most: the weight of a
# medium cue, so the model decides where the rules are unsure and a clear cue still stands.
# The vote is scaled by how often the model agreed with the rules where they were sure (a
# margin of LLM_VOTE or more, where its vote cannot change the route anyway), against
# AGREEMENT_PRIOR disagreements assumed at the start: a model that routes everything one way
# gets no say. Both set a priori; benchmarks/llm_path.py reports routing with them and
# cross-validates the vote.
LLM_VOTE = 0.2
AGREEMENT_PRIOR = 5


def margin(decision: RouteDecision) -> float:
    """How far the chosen route's score is ahead of the next best."""
    ranked = sorted(decision.scores.values(), reverse=True)
    return ranked[0] - ranked[1] if len(ranked) > 1 else float("inf")


def vote_weight(agreed: int, asked: int, vote: float = LLM_VOTE, prior: int = AGREEMENT_PRIOR) -> float:
    """A chat model's vote after it agreed ``agreed`` times out of ``asked`` with sure rules.

    >>> vote_weight(0, 0), vote_weight(0, 30), round(vote_weight(27, 30), 3)
    (0.0, 0.0, 0.154)
    """
    return vote * agreed / (asked + prior)


def with_vote(decision: RouteDecision, route: Route, weight: float = LLM_VOTE) -> RouteDecision:
    """The decision with a chat model's vote for ``route`` added to the scores: the model's route
    wins (reason ``"llm"``) only when the vote carries it past the rules' best.

    >>> d = RouteDecision(Route.EXTRACTION, False, {Route.EXTRACTION: 1.0, Route.ABSTRACTION: 0.9})
    >>> with_vote(d, Route.ABSTRACTION).route.value, with_vote(d, Route.ABSTRACTION, 0.05).route.value
    ('abstraction', 'extraction')
    """
    scores = {**decision.scores}
    scores[route] = scores.get(route, 0.0) + weight
    best = max(scores, key=lambda r: (scores[r], r is decision.route))
    if best is decision.route:
        return replace(decision, scores=scores)
    return replace(decision, route=best, scores=scores, reason="llm")


def reweighted(decision: RouteDecision, weights: Mapping[Route, float],
               forced: Route | None = None) -> RouteDecision:
    """The decision after the caller's choice and the user's learned route weights.

    A route the caller forces wins. Otherwise each route's score (a chat model's
    vote included) is multiplied by the user's weight for it (feedback on that
    route's answers); the best weighted route replaces the classified one only
    when it scores higher.

    >>> d = RouteDecision(Route.EXTRACTION, False, {Route.EXTRACTION: 1.0, Route.ABSTRACTION: 0.9})
    >>> reweighted(d, {Route.EXTRACTION: 0.5}).route.value
    'abstraction'
    >>> reweighted(d, {}, forced=Route.GENERALIZATION).reason
    'forced by the caller'
    """
    if forced is not None and forced is not decision.route:
        return replace(decision, route=forced, reason="forced by the caller")
    if forced is not None:
        return decision
    weighted = {r: score * weights.get(r, 1.0) for r, score in decision.scores.items()}
    if not weighted:
        return decision
    best = max(weighted, key=lambda r: weighted[r])
    if weighted[best] > weighted.get(decision.route, 0.0):
        return replace(decision, route=best, reason="learned from feedback")
    return decision
