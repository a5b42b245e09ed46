"""Content checks on what a chat model says, with the LLM-free path as the floor.

A schema says a reply is well formed, not that it is true. These checks ask
whether the text a model wrote is *supported* by the text it was given, and
whether a slot change (home, job, partner) is stated as a change by the speaker
in the same way as the rules require. Support is lexical, so it is cheap and
explainable: a candidate text is supported when every name and number in it
occurs in the source and at least ``SUPPORT`` of its other content words do
(words are compared after a light stemming; a date the model resolved from
"yesterday" is accepted when the source, dates resolved, holds it). The share
is set a priori (half of the words, i.e. a paraphrase may change one word in
two) and not fitted on data. Pure apart from the rules it reuses.

>>> supported("Sam owns a beagle named Biscuit.", "Yesterday I adopted a beagle, Biscuit.", {"Sam"})
True
>>> supported("Sam's partner is Luna.", "Hi! I'm your assistant, happy to help.", {"Sam"})
False
>>> said_of_speaker("Sam moved to Madrid.", "My sister Clara moved to Madrid.", "Sam")
False
>>> speaker_states("home", "Porto", "My sister moved to Porto last spring.")
False
>>> speaker_states("home", "Porto", "We finally moved to Porto in May.")
True
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from memagent.extraction import read_slot, split_sentences

SUPPORT = 0.5
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*|\d+")
_STOP = frozenset("""a an the and or but so to of in on at for with from by about as it its that this these those
is are was were be been being am do does did done have has had having will would can could should may might must
not no very really just also too then than there here who whom whose which what when where why how all any some
one ones more most much many other such own same only ever now still yet again new old named called his her hers
their theirs them they he she him you your yours we our ours us me my mine i user speaker""".split())
_MONTHS = frozenset("""january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday""".split())
# a first-person subject, then at most three words, then a word that states the slot
_SUBJECT = r"\b(?:I|I'm|I’m|I've|I’ve|I'd|we|we're|we've)\b(?:\s+[\w'’]+){0,3}?\s+"
_CUES = {
    "home": r"(?:live[sd]?|living|moved|move|moving|relocated|relocating|settled|bought a (?:house|flat|home))\b",
    "job": r"(?:work(?:s|ed|ing)?|started|starting|joined|hired|employed|promoted|quit|left|became|job|position)\b",
    "partner": r"(?:married|marry|marrying|engaged|dating|divorced|separated|broke up|split up|single|"
               r"proposed|wed)\b",
}
_STATES = {slot: re.compile(_SUBJECT + cue, re.I) for slot, cue in _CUES.items()}
# the rules' slot names, by the slot a chat model may fill
_RULE_SLOTS = {"home": {"home"}, "job": {"job", "employer"}, "partner": {"partner"}}


def stem(word: str) -> str:
    """A crude stem, enough to match "adopted" with "adopts" and "cities" with "city"."""
    word = word.lower().replace("’", "'").removesuffix("'s")
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[:-len(suffix)] + keep
    return word


def words(text: str) -> set[str]:
    """The stems of the content words of ``text``."""
    return {stem(w) for w in _WORD.findall(text) if w.isdigit() or (w.lower() not in _STOP and len(w) > 1)}


def _names_and_numbers(text: str) -> set[str]:
    """Capitalised words not at a sentence start, and numbers: what a model must not invent."""
    found = set()
    for sentence in split_sentences(text) or [text]:
        tokens = _WORD.findall(sentence)
        for n, token in enumerate(tokens):
            if token.isdigit() or (n > 0 and token[0].isupper() and token.lower() not in _STOP):
                found.add(stem(token))
    return found


def supported(text: str, source: str, known: Iterable[str] = (), share: float = SUPPORT) -> bool:
    """Whether ``text`` is backed by ``source``: its names and numbers all occur there, and at
    least ``share`` of its other content words. ``known`` are names that need no support (the
    speaker's own name, which the source says as "I")."""
    free = {stem(k) for name in known for k in _WORD.findall(name)} | _MONTHS
    have = words(source) | free
    strict = _names_and_numbers(text) - free
    if strict - have:
        return False
    rest = words(text) - free
    return not rest or len(rest & have) >= share * len(rest)


def speaker_states(slot: str, value: str, text: str) -> bool:
    """Whether the speaker states ``slot`` = ``value`` in one sentence of ``text``: the rules read
    that slot there, or the sentence has a first-person subject with a word of that slot right
    after it ("we finally moved") and holds the value."""
    if slot not in _STATES or not value.strip():
        return False
    want = words(value)
    for sentence in split_sentences(text) or [text]:
        if not want or not want <= words(sentence):
            continue
        ruled = read_slot(sentence)
        if ruled is not None and ruled[0] in _RULE_SLOTS[slot]:
            return True
        if _STATES[slot].search(sentence):
            return True
    return False


_SPEAKER = re.compile(r"\b(?:I|I'm|I’m|I've|I’ve|I'd|I’d|I'll|I’ll|me|myself|we|we're|we've|us)\b", re.I)
_POSSESSIVE = re.compile(r"\b(?:my|our)\b", re.I)
_OTHERS = re.compile(r"\b(?:sister|brother|mother|mom|mum|father|dad|parents?|son|daughter|kids?|children|child|"
                     r"wife|husband|partner|boyfriend|girlfriend|fianc[eé]e?|friend|cousin|aunt|uncle|niece|nephew|"
                     r"grand\w+|boss|colleague|co-?worker|neighbou?r|roommate|flatmate|teacher|coach|doctor)s?\b", re.I)

_NAMED_OTHER = re.compile(_OTHERS.pattern + r",?\s+([A-Z][a-z]+)")


def speaker_sentences(text: str) -> list[str]:
    """The sentences of ``text`` that tell of the speaker: with I, me or we, or with my or our
    and no other person in them ("my favourite food is ramen", not "my sister moved to Porto")."""
    return [s for s in split_sentences(text) or [text]
            if _SPEAKER.search(s) or (_POSSESSIVE.search(s) and not _OTHERS.search(s))]


def said_of_speaker(statement: str, episode: str, speaker: str) -> bool:
    """Whether a statement about the speaker rests on what the speaker says of themselves, or
    names someone else the episode names (it is then about them too, as "Sam's sister Ines ...")."""
    if supported(statement, "\n".join(speaker_sentences(episode)), {speaker}):
        return True
    others = {stem(m.group(1)) for m in _NAMED_OTHER.finditer(episode)} - {stem(w) for w in _WORD.findall(speaker)}
    return bool(others & _names_and_numbers(statement))


def rule_slot_family(slot: str | None) -> str | None:
    """The slot a chat model would call a rules' slot ("employer" is a job), or None."""
    for family, names in _RULE_SLOTS.items():
        if slot in names:
            return family
    return None

