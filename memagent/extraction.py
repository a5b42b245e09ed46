"""LLM-free statement extraction: from one episode, the statements about its speaker.

Rules only (regular expressions and word lists), no embeddings and no I/O, so that
consolidation can read thousands of episodes a second. Each content sentence of a
user's turn becomes a ``Candidate`` that stands alone: first-person pronouns become
the speaker's name (with the verb put in the third person where that is simple),
relative dates become absolute ones, and a category, a confidence, an exclusive
slot and typed triples are read from plain patterns. Small talk yields nothing, and
so does the caption of an image the turn shared (``metadata[IMAGE_CAPTION]``): it
says what the image shows, not what the speaker said.

>>> from datetime import datetime, timezone
>>> from memagent.types import Episode
>>> when = datetime(2023, 5, 8, 13, 56, tzinfo=timezone.utc)
>>> ep = Episode("e1", "u1", "s1", "Caroline", "Hi! I went to a support group yesterday.", when, when)
>>> [c.text for c in extract(ep)]
['Caroline went to a support group on 7 May 2023.']
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np

from memagent.policies.consolidation import favourite_slot
from memagent.timeparse import find_time_ranges
from memagent.types import Candidate, Category, Episode, TimeRange, Triple

NON_USER_ROLES = frozenset({"assistant", "ai", "system", "tool", "bot", "function"})
_GENERIC_ROLES = frozenset({"user", "human"})
MAX_ELABORATION = 2  # plain sentences kept after a first-person one
MAX_STATEMENT_WORDS = 50  # neighbouring statements of one turn merge up to this length

IMAGE_CAPTION = "image_caption"
"""Message metadata key: what an image shared with the message shows, as plain text.

A caller whose message carried an image sets it (from alt text, a captioning model or
a data set's caption): ``Message("Look what I made!", metadata={IMAGE_CAPTION: "a
clay bowl"})``. The text stays what was said; answers read the caption when a question
asks about a photo.
"""


def image_caption(episode: Episode) -> str:
    """The caption of the image an episode shared (``metadata[IMAGE_CAPTION]``), or "".

    >>> from datetime import datetime, timezone
    >>> when = datetime(2023, 5, 8, tzinfo=timezone.utc)
    >>> image_caption(Episode("e", "u", "s", "Jo", "Look!", when, when, metadata={IMAGE_CAPTION: " a red bike "}))
    'a red bike'
    """
    caption = episode.metadata.get(IMAGE_CAPTION)
    return caption.strip() if isinstance(caption, str) else ""


def with_caption(text: str, caption: str) -> str:
    """``text`` followed by what its shared image shows, for search indexes and prompts.

    >>> with_caption("Look!", "a red bike"), with_caption("Hi!", "")
    ('Look! (shares an image: a red bike)', 'Hi!')
    """
    return f"{text} (shares an image: {caption})" if caption else text


# --- sentences and small talk ------------------------------------------------

_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_ABBREV = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|vs|etc|e\.g|i\.e)\.$", re.I)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")
_FIRST_PERSON = re.compile(r"\b(?:i|me|my|mine|myself|we|us|our|ours|ourselves)\b", re.I)
_THANKS_CLAUSE = re.compile(r"^(?:thanks|thank you)\b[^,.!;:–—-]{0,40}[,;:–—-]+\s*(?=\w)", re.I)
_SMALL_TALK = re.compile(
    r"^(?:hey|hi|hello|hiya|howdy|yo|bye|goodbye|good (?:morning|night|evening|afternoon)|"
    r"(?:many )?thanks?(?: you)?|thx|cheers|congrats|congratulations|see (?:you|ya)|take care|"
    r"talk (?:to you )?(?:soon|later)|catch you|no worries|no problem|you're welcome|"
    r"(?:it was |it's )?(?:great|good|nice|lovely) (?:to|talking|chatting|catching)|"
    r"(?:wow|oh|aw+|ah|yeah|yes|yep|sure|ok|okay|lol|haha|omg)\b[\s,!.]*$|"
    r"(?:let's|let me know|let \w+ know|keep (?:it up|going|on|up|pushing|at it)|take a look|check (?:it|this) out|"
    r"good luck|have fun|stay (?:strong|positive|safe)|trust me|hang in there|you got this|"
    r"don't (?:give up|worry|hesitate)|believe in yourself|enjoy)\b)", re.I)
_FILLER = frozenset("""a an the and or but so to of in on at for with from by about as it it's its that that's this
these those is are was were be been being am do does did done have has had having will would can could should really
very so too just also such what how wow oh yeah yes yep sure totally absolutely definitely cool awesome amazing
great good nice lovely wonderful fantastic incredible beautiful sweet glad happy sounds sound like love hear heard
see seen know thing things stuff there here up out all much more you your you're yours yourself you've you'll you'd
u gonna gotta kinda lot lots always never thanks thank keep doing well pretty super true right exactly agree bet
must one way""".split())


def split_sentences(text: str) -> list[str]:
    """Split on sentence-final punctuation and line breaks (no tokenizer models needed).

    >>> split_sentences("Hey Mel! I went to Dr. Lee's office. It was fine")
    ['Hey Mel!', "I went to Dr. Lee's office.", 'It was fine']
    """
    pieces: list[str] = []
    for part in _SPLIT.split(text):
        part = part.strip()
        if part and pieces and _ABBREV.search(pieces[-1]):
            pieces[-1] = f"{pieces[-1]} {part}"
        elif part:
            pieces.append(part)
    return pieces


_INTERJECTION = re.compile(
    r"^(?:(?:hey|hi|hello|wow|whoa|oh|ooh|yeah|yes|yep|yup|haha|lol|well|so|ah|aw+|omg|ok|okay|hmm|btw|fyi|"
    r"and|but|plus|anyway|by the way|also|honestly|man|dude|congrats|"
    r"(?:big|good|great|other|some|exciting|sad|bad|fun)\s+news)\b[\s,!.:;-]*"
    r"(?:[A-Z][a-z]+[,!.]+(?:\s+|$))?)+", re.I)
_CLAUSE_BREAK = re.compile(r"\s+[-–—]+\s+|;\s+|:\s+")


def clean_sentence(sentence: str) -> str:
    """Drop leading interjections and vocatives ("Wow, Caroline, ..."); of a question keep
    only a declarative clause before it ("I finished a project - want to see?")."""
    text = _INTERJECTION.sub("", sentence.strip().strip("\"'")).strip()
    text = _THANKS_CLAUSE.sub("", text)
    if text.endswith("?"):
        parts = _CLAUSE_BREAK.split(text)
        text = " - ".join(parts[:-1]) if len(parts) > 1 else ""
    return text[:1].upper() + text[1:]


def is_small_talk(sentence: str) -> bool:
    """Greetings, thanks, questions, compliments to the other person, content-free lines."""
    stripped = clean_sentence(sentence)
    words = [w.lower().replace("’", "'") for w in _WORD.findall(stripped)]
    if len(words) < 3 or _SMALL_TALK.match(stripped):
        return True
    if not _FIRST_PERSON.search(stripped) and re.search(r"\b(?:you|your|you're|you've)\b", stripped, re.I):
        return True  # about the other person only
    content = [w for w in words if w not in _FILLER and len(w) > 2 and not _FIRST_PERSON.fullmatch(w.split("'")[0])]
    return len(content) < 2 and not _states_a_fact(stripped) and not _NAMES_A_THING.search(_VOCATIVE.sub("", stripped))


# A short statement of one's own that names something: "I have an iPhone 12.", "We adopted
# Pepper." (not a name said to the listener: "I totally agree, Maria!").
_NAMES_A_THING = re.compile(r"^(?:I|We|My|Our)['’\s].*?\s(?!I\b|I['’]|OK\b)[\w'’-]*(?:[A-Z]|\d)[\w'’-]*")
_VOCATIVE = re.compile(r",\s*[A-Z][\w'’-]*[\s!.?]*$")


def _states_a_fact(sentence: str) -> bool:
    """A short sentence worth keeping all the same: "I love painting.", "My dog Rex is 3." """
    return read_slot(sentence) is not None or any(t.relation != "mentions" for t in read_triples(sentence, ""))


# --- relative dates ----------------------------------------------------------

_PREPOSITIONS = ("in", "on", "during", "since", "of", "from")
_LEAD_PREPOSITION = re.compile(r"\b(?:since|in|on|during|from|until|till|by|before|after|around|of|for)\s+$", re.I)


def _fmt_day(when: datetime) -> str:
    return f"{when.day} {when:%B} {when.year}"


def _absolute(rng: TimeRange) -> tuple[str, str] | None:
    """The preposition and absolute phrase for a resolved range; None when it is absolute already."""
    words = rng.expression.lower().split()
    if re.search(r"\b\d{4}\b", rng.expression):
        return None
    prep = words[0] if words[0] in _PREPOSITIONS else ""
    span = rng.end - rng.start
    if words[-1] == "ago":
        return "around", _fmt_day(rng.start + span / 2)
    if words[0] == "past":  # "in the past week"
        return "", f"{words[-1]} before {_fmt_day(rng.end - timedelta(days=1))}"
    if prep == "since":
        return prep, f"{rng.start:%B} {rng.start.year}"
    if span.days <= 1:
        return prep or "on", _fmt_day(rng.start)
    if words[-1] == "weekend":
        return prep or "on", f"the weekend of {_fmt_day(rng.start)}"
    if span.days <= 7:
        return prep or "in", f"the week of {_fmt_day(rng.start)}"
    if span.days <= 31:
        return prep or "in", f"{rng.start:%B} {rng.start.year}"
    return prep or "in", str(rng.start.year)


_FUTURE = re.compile(r"\b(?:will|'ll|’ll|going to|gonna|plan(?:s|ning)?|about to|upcoming|soon|can't wait|"
                     r"(?:I|we)\s+(?:start|begin|leave|fly|move)s?)\b", re.I)


def resolve_dates(sentence: str, episode: Episode) -> str:
    """Replace relative time expressions by absolute dates, read against the event time.

    >>> from datetime import datetime, timezone
    >>> now = datetime(2023, 5, 8, tzinfo=timezone.utc)
    >>> resolve_dates("I've run daily since last month.", Episode("e", "u", "s", "Jo", "", now, now))
    "I've run daily since April 2023."
    """
    return resolve_dates_at(sentence, episode.event_time)


def resolve_dates_at(sentence: str, when: datetime) -> str:
    """``resolve_dates`` against a given time rather than an episode's."""
    for rng in find_time_ranges(sentence, when, future=bool(_FUTURE.search(sentence))):
        found = _absolute(rng)
        match = re.search(rf"(?<!\w){re.escape(rng.expression)}(?!\w)", sentence)
        if found and match:
            prep, body = found
            if _LEAD_PREPOSITION.search(sentence[:match.start()]) and not rng.expression.lower().startswith(prep):
                prep = ""  # "since last month" -> "since April 2023"
            phrase = f"{prep} {body}" if prep else body
            sentence = sentence[:match.start()] + phrase + sentence[match.end():]
    return sentence


# --- pronouns ----------------------------------------------------------------

_UNCHANGED_AFTER_I = frozenset("""was did had could would should might must can will shall may went took saw made
got found felt thought bought brought caught taught left met ran came became began gave knew heard kept lost paid
said sat sent spent stood told understood won wrote drove ate drew flew grew threw wore chose spoke broke forgot
fell held led built slept swam sang put let cut hit set hurt quit read used cannot can't couldn't wouldn't didn't
wasn't shouldn't won't meant retook learnt dreamt burnt spelt leapt sought fought dealt felt lit shot
shut sold rode woke hid bit shook stole froze fed fled slid spun stuck struck swore tore wept dug hung lent
bent rang sank drank swung beat bet cast cost split spread upset and or""".split())
_ADVERBS = frozenset("""really just also always never still usually often sometimes actually totally definitely even
kinda recently finally only absolutely truly sure certainly already mostly generally rarely seriously literally
honestly personally currently now then again ever""".split())
_IRREGULAR = {"have": "has", "do": "does", "go": "goes", "am": "is", "don't": "doesn't", "haven't": "hasn't",
              "'m": "is", "'ve": "has", "'d": "would", "'ll": "will", "are": "is", "aren't": "isn't",
              "ain't": "isn't", "were": "was", "weren't": "wasn't"}
_CONTRACTED_I = re.compile(r"\bI\s*(?P<c>['’](?:m|ve|d|ll))\b", re.I)
_I_VERB = re.compile(r"(?P<lead>\b(?:[A-Z][a-z]+|he|she|they|him|her|them)\s+(?:and|&)\s+)?\bI\b"
                     r"(?P<adv>(?:\s+[A-Za-z]+ly\b|\s+(?:" + "|".join(sorted(_ADVERBS)) + r")\b)*)"
                     r"\s+(?P<verb>[A-Za-z'’]+)")


def third_person(verb: str) -> str:
    """The simple present third-person form: love -> loves, go -> goes, try -> tries.

    >>> [third_person(v) for v in ["love", "go", "watch", "try", "have", "went"]]
    ['loves', 'goes', 'watches', 'tries', 'has', 'went']
    """
    low = verb.lower().replace("’", "'")
    if low in _IRREGULAR:
        return _IRREGULAR[low]
    if low in _UNCHANGED_AFTER_I or low.endswith(("ed", "n't")) or not low.isalpha():
        return verb
    if re.search(r"(?:s|sh|ch|x|z|o)$", low):
        return verb + "es"
    if re.search(r"[^aeiou]y$", low):
        return verb[:-1] + "ies"
    return verb + "s"


def _replace_i(match: re.Match[str], name: str) -> str:
    lead, adv, verb = match.group("lead") or "", match.group("adv"), match.group("verb")
    if lead:  # "Mel and I love" keeps the plural verb
        return f"{lead}{name}{adv} {_IRREGULAR.get(verb.lower(), verb) if verb.lower() == 'am' else verb}"
    return f"{name}{adv} {third_person(verb)}"


def rewrite_pronouns(sentence: str, name: str, addressee: str | None = None) -> str:
    """First person -> the speaker's name: "I'm" -> "Caroline is", "my" -> "Caroline's";
    second person -> the addressee's name when it is known.

    >>> rewrite_pronouns("I love my dog and we walk him daily.", "Caroline")
    "Caroline loves Caroline's dog and Caroline and family walk him daily."
    """
    group = f"{name} and family"
    sentence = re.sub(r"\bi\b(?=\s|['’])", "I", sentence)  # chat-style lower-case "i"
    text = _CONTRACTED_I.sub(lambda m: f"{name} {_IRREGULAR[m.group('c').lower().replace('’', chr(39))]}", sentence)
    text = _I_VERB.sub(lambda m: _replace_i(m, name), text)
    subs = [(r"\bI\b", name), (r"\b(?:my|mine|our|ours)\b", f"{name}'s"), (r"\b(?:me|myself)\b", name),
            (r"\bwe['’]re\b", f"{group} are"), (r"\bwe['’]ve\b", f"{group} have"),
            (r"\bwe['’]ll\b", f"{group} will"), (r"\bwe['’]d\b", f"{group} would"),
            (r"\b(?:we|us|ourselves)\b", group)]
    if addressee:
        subs += [(r"\byou['’]re\b|\byou are\b", f"{addressee} is"), (r"\byou were\b", f"{addressee} was"),
                 (r"\byou['’]ve\b|\byou have\b", f"{addressee} has"), (r"\byou['’]ll\b", f"{addressee} will"),
                 (r"\byou['’]d\b", f"{addressee} would"), (r"\byour(?:s)?\b", f"{addressee}'s"),
                 (r"\b(?:you|ya|yourself)\b", addressee)]
    for pattern, repl in subs:
        text = re.sub(pattern, repl, text, flags=re.I if pattern != r"\bI\b" else 0)
    return text


_ELLIPTIC = re.compile(r"^(?:gonna|going to|been|got|went|love|loved|thinking (?:of|about)|planning|hoping|"
                       r"looking forward|can't wait|can’t wait|glad|excited|stoked|thrilled|"
                       r"just (?:got|finished|started|wanted|had|made|went|found|bought|signed|joined|came))\b", re.I)
_BE_WORDS = ("gonna", "going to", "planning", "hoping", "looking forward", "glad", "excited", "stoked",
             "thrilled", "thinking")


def _restore_subject(sentence: str) -> str:
    """ "Gonna continue my edu" -> "I'm gonna continue my edu" (a dropped "I")."""
    match = _ELLIPTIC.match(sentence)
    if not match:
        return sentence
    word = match.group(0).lower()
    lead = "I've" if word == "been" else "I'm" if word.startswith(_BE_WORDS) else "I"
    return f"{lead} {sentence[0].lower()}{sentence[1:]}"


# --- categories and confidence -----------------------------------------------

_FAMILY = (r"sister|brother|sibling|mom|mum|mother|dad|father|parents?|son|daughter|kids?|child|children|"
           r"husband|wife|partner|spouse|boyfriend|girlfriend|fianc[ée]e?|best friend|friend|cousin|aunt|"
           r"uncle|grandma|grandmother|grandpa|grandfather|grandparents?|niece|nephew|neighbou?r|"
           r"colleague|coworker|co-worker|boss|roommate|mentor")
_PETS = r"dog|puppy|pup|cat|kitten|pet|horse|pony|bird|parrot|rabbit|bunny|hamster|guinea pig|fish|turtle|snake"
_CATEGORY_RULES: list[tuple[Category, re.Pattern[str]]] = [(cat, re.compile(rf"\b(?:{rx})\b", re.I)) for cat, rx in [
    (Category.DISLIKE, r"hate[sd]?|dislike[sd]?|can't stand|cannot stand|don't (?:really )?like|"
                       r"not (?:a )?(?:big )?fan of|detest|allergic"),
    (Category.WORK, r"work(?:ing|s|ed)? (?:at|for|as|on|with)|at work|my work|job|career|office|company|hired|"
                    r"promot\w*|school|college|university|degree|stud(?:y|ying|ies|ied)|class(?:es)?|course|"
                    r"teacher|student|graduat\w*|intern\w*|business|boss|coworkers?|colleagues?|edu|education|"
                    r"employ\w*"),
    (Category.HEALTH, r"sick|ill|illness|doctor|hospital|injur\w*|surgery|diagnos\w*|health|anxiety|depress\w*|"
                      r"medication|therapy|therapist|pain|disease|pregnan\w*|diet|sleep|stress\w*|mental|"
                      r"recover\w*|cancer|symptom\w*"),
    (Category.GOAL, r"plan(?:s|ning)?|going to|gonna|want(?:s)? to|hope|hoping|dream|goal|aim|intend\w*|"
                    r"looking forward|saving (?:up )?for|someday|one day|next (?:year|month|week)|would love to|"
                    r"['’]d love to|can't wait"),
    (Category.RELATIONSHIP, rf"{_FAMILY}|family|married|marriage|wedding|dating|divorc\w*|broke up|relationship|"
                            r"engaged|single"),
    (Category.LOCATION, r"live[sd]? in|living in|moved (?:to|from)|hometown|grew up in|neighbou?rhood|relocat\w*|"
                        r"born in"),
    (Category.POSSESSION, rf"{_PETS}|bought|I own|owns|owned|got (?:a|an|my|myself a) new|purchased|collection|"
                          r"car|house|apartment"),
    (Category.PREFERENCE, r"love[sd]?|loving|(?:I|we)(?: really| also| just)? like|enjoy\w*|favou?rite|"
                          r"passion\w*|fan of|(?:I'm|I am|really) into|prefer\w*|keen on|adore[sd]?|fond of"),
    (Category.HABIT, r"every (?:day|week|morning|night|evening|weekend|month|year)|daily|weekly|usually|often|"
                     r"always|regularly|routine|habit|on weekends|each (?:day|week|morning)|whenever|tend to"),
    (Category.IDENTITY, r"years old|born|transgender|trans|gay|lesbian|queer|religio\w*|christian|muslim|jewish|"
                        r"atheist|nationality|identity|my name is"),
]]
_HEDGES = re.compile(r"\b(?:maybe|might|perhaps|probably|possibly|I think|I guess|I suppose|not sure|"
                     r"kinda|kind of|sort of|could|hopefully|if)\b", re.I)


def categorize(sentence: str) -> Category:
    """The first category whose keywords the (first-person) sentence names; EVENT otherwise."""
    for category, pattern in _CATEGORY_RULES:
        if pattern.search(sentence):
            return category
    return Category.EVENT


def confidence(sentence: str) -> float:
    """Plain first-person declaratives are trusted; hedged ones ("maybe", "I think") less."""
    return 0.55 if _HEDGES.search(sentence) else 0.85


# --- slots and triples -------------------------------------------------------

_PROPER = r"(?!I\b|I['’])[A-Z][\w'’-]*(?:\s+(?:of\s+(?:the\s+)?|de\s+|the\s+)?(?!I\b|I['’])[A-Z][\w'’-]*)*"
# Who states a slot of their own: "I", "we", "Luca and I", with "'m", "'re", "'ve", "am", "have"...
_SELF = r"(?:I|[Ww]e|[A-Z][a-z]+ and I)(?:['’](?:m|re|ve|d)|\s+(?:am|are|have|had))?"
_SELF_ADV = (r"(?:\s+(?:now|still|currently|finally|just|recently|officially|actually|also|already|eventually|"
             r"both|all))*")
# ... or goes on a sentence that has its subject: "I left Kestrel and joined Nimbus Labs"
_SELF_LEAD = rf"(?:\b{_SELF}{_SELF_ADV}\s+|\band\s+(?:now\s+|then\s+)?)"
_HOME = re.compile(rf"\b{_SELF}{_SELF_ADV}\s+(?:live|living|moved|moving|relocated|relocating|settled|based)\s+"
                   rf"(?:back\s+|down\s+|up\s+|over\s+|out\s+)?(?:in|to|into)\s+(?P<x>{_PROPER})"
                   rf"|\b{_SELF}{_SELF_ADV}\s+(?:rent|renting|bought|own)\s+an?\s+(?:\w+\s+)?"
                   rf"(?:flat|studio|house|apartment|place|room|home|condo)\s+in\s+(?P<y>{_PROPER})")
_EMPLOYER = re.compile(rf"{_SELF_LEAD}(?:work(?:ing)?|start(?:ed|ing)?(?:\s+working)?|began(?:\s+working)?|"
                       rf"begin)\s+(?:from home\s+)?(?:as\s+an?\s+[a-z -]{{1,40}}?\s+)?(?:at|for)\s+(?P<x>{_PROPER})"
                       rf"|{_SELF_LEAD}(?:joined|joining|hired by|employed by|employed at)\s+"
                       rf"(?:the\s+team\s+at\s+)?(?P<y>{_PROPER})"
                       rf"|\b{_SELF}{_SELF_ADV}\s+(?:got|have|landed|took|accepted)\s+an?\s+(?:new\s+)?(?:job|position|"
                       rf"role|post)\s+(?:as\s+(?:an?\s+)?[a-z -]{{1,40}}?\s+)?(?:at|with|for)\s+(?P<z>{_PROPER})"
                       rf"|\b(?:I['’]m|I am)\s+(?:now\s+)?an?\s+[a-z -]{{1,40}}?\s+at\s+(?P<w>{_PROPER})"
                       rf"|{_SELF_LEAD}(?:\w+\s+){{0,5}}?(?:as|promoted to)\s+(?:an?\s+)?[a-z -]{{1,40}}?\s+at\s+"
                       rf"(?P<u>{_PROPER})"
                       rf"|{_SELF_LEAD}teach\s+(?:[a-z]+\s+){{0,2}}at\s+(?P<t>{_PROPER})"
                       rf"|{_SELF_LEAD}(?P<s>freelance|self-employed|work for myself)\b")
_JOBS = (r"teacher|nurse|doctor|engineer|developer|programmer|designer|artist|writer|author|chef|cook|"
         r"lawyer|accountant|manager|consultant|student|coach|trainer|counsel(?:l)?or|therapist|"
         r"scientist|researcher|professor|journalist|photographer|musician|dancer|actor|actress|"
         r"firefighter|police officer|pilot|driver|mechanic|electrician|plumber|carpenter|farmer|"
         r"pharmacist|dentist|surgeon|architect|analyst|librarian|barista|cashier|waiter|waitress|"
         r"salesperson|entrepreneur|veterinarian|vet|paramedic|soldier|clerk|secretary|intern|"
         r"director|principal|baker|potter|roaster|assistant|administrator|officer|technician|editor|"
         r"producer|agent|broker|banker|receptionist|carer|caregiver|nanny|tutor|lecturer|instructor|"
         r"freelancer|contractor|translator|interpreter|illustrator|animator|physiotherapist|psychologist|"
         r"midwife|optician|butcher|tailor|gardener|cleaner|guide|curator|economist|auditor|recruiter")
_JOB = re.compile(rf"\b(?:my job as|I work as|I'm working as|I am working as|I'm employed as|I'm|I am|I’m)"
                  rf"\s+(?:now\s+)?an?\s+(?P<x>(?:[a-z-]+\s+){{0,2}}?(?:{_JOBS}))\b"
                  rf"|{_SELF_LEAD}(?:\w+\s+){{0,5}}?(?:as|promoted to)\s+(?:an?\s+)?"
                  rf"(?P<y>(?:[a-z-]+\s+){{0,2}}?(?:{_JOBS}))\b"
                  rf"|\b{_SELF}{_SELF_ADV}\s+teach\s+(?P<t>[a-z]+)")
_PARTNER = re.compile(rf"\b(?:I'm|I am|I’m|I got|I|I've|I have)\s+(?:now\s+|just\s+|finally\s+)?"
                      rf"(?:started\s+|begun\s+)?(?P<rel>married|engaged|dating|seeing)\s+(?:to\s+)?(?P<x>{_PROPER})"
                      rf"|\b(?P<y>{_PROPER}) and I\s+(?:just\s+|finally\s+)?(?:got|are|were|have been|'re|’re)\s+"
                      rf"(?:now\s+)?(?P<rel2>married|engaged|dating|seeing each other)\b"
                      rf"|\b(?P<rel3>seeing|dating) someone(?: new)?,?\s+(?:her|his|their) name is (?P<z>{_PROPER})"
                      rf"|\bmet (?P<w>{_PROPER})\b.*\bwe(?:['’]re| are)\s+(?:now\s+)?(?P<rel4>dating|engaged|married)\b"
                      rf"|\b[Mm]y\s+(?:new\s+)?(?P<rel5>husband|wife|boyfriend|girlfriend|fianc[ée]e?),?\s+"
                      rf"(?P<v>[A-Z][a-z]+)\b")
_SINGLE = re.compile(r"\b(?:I|[Ww]e)\s+(?:just\s+|recently\s+)?(?:broke up|split up|separated|divorced|got divorced)\b|"
                     r"\b(?:I'm|I am)\s+(?:now\s+)?single\b", re.I)
_KIN = re.compile(rf"\b(?:[Mm]y|[Oo]ur)\s+(?:(?:little|older|younger|big|baby|twin|best|new|old)\s+)*(?P<rel>{_FAMILY})"
                  rf",?\s+(?P<x>[A-Z][a-z]+)\b")
_KIN_AFTER = re.compile(rf"\b(?P<x>[A-Z][a-z]+),?\s+(?:is\s+)?my\s+(?:best\s+)?(?P<rel>{_FAMILY})\b")
_PET = re.compile(rf"\b(?:[Mm]y|[Oo]ur|[Aa]|new)\s+(?:\w+\s+)?(?:{_PETS})s?,?\s+(?:(?:named|called)\s+)?"
                  r"(?P<x>[A-Z][a-z]+)\b")
_LIKES = re.compile(r"\b(?:I|[Ww]e)\s+(?:really\s+|absolutely\s+|just\s+|also\s+|totally\s+)?(?P<v>love|like|enjoy|"
                    r"adore|hate|dislike)\s+(?P<to>to\s+)?(?:the\s+)?(?P<x>[a-z]+(?:\s+[a-z]+)?)\b")
_VISIT = re.compile(rf"(?<!never )(?<!not )\b(?:went|traveled|travelled|flew|drove|visited)\s+(?:back\s+)?(?:to\s+)?"
                    rf"(?P<x>{_PROPER})")
_PARTNER_RELATIONS = {"married": "married_to", "engaged": "engaged_to", "dating": "dating", "seeing": "dating",
                      "seeing each other": "dating", "husband": "married_to", "wife": "married_to",
                      "boyfriend": "dating", "girlfriend": "dating", "fiance": "engaged_to", "fiancé": "engaged_to",
                      "fiancee": "engaged_to", "fiancée": "engaged_to"}
_NORMAL = {"mom": "mother", "mum": "mother", "dad": "father", "kid": "child", "kids": "child", "children": "child",
           "grandma": "grandmother", "grandpa": "grandfather", "parents": "parent", "grandparents": "grandparent",
           "co-worker": "coworker", "neighbor": "neighbour", "fiancé": "fiance", "fiancée": "fiance",
           "fiancee": "fiance"}
_NOT_NAMES = frozenset("I I'm I've I'd I'll The A An It It's This That My We Our But And So Yeah Yes Oh Wow "
                       "Thanks Hey Hi He She They Their His Her You Your Just Also Then Last Next Lately "
                       "Recently Yesterday Today Tomorrow OK".split())
_NOT_OBJECTS = frozenset("""him her them my our his their me us seeing hearing having being getting knowing watching
thinking reading how what when where why who which because if not none thought idea feeling fact into with without
for from by about over after before during while""".split()) - {"reading", "watching"}
_CONTRACTED_HEADS = frozenset("here there it that what let he she who where how everyone everything nothing "
                               "something someone life today".split())
_CALENDAR = re.compile(r"^(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec|Mon|Tue|Wed|Thu|Fri|Sat|Sun)", re.I)


def read_slot(sentence: str) -> tuple[str, str] | None:
    """An exclusive attribute named plainly: home, employer, job, partner or a favourite.

    >>> read_slot("My favourite food is grilled sardines now."), read_slot("Jazz is my favorite music!")
    (('favourite food', 'grilled sardines'), ('favourite music', 'Jazz'))
    """
    slots = read_slots(sentence)
    return slots[0] if slots else None


def _group(match: re.Match[str]) -> str:
    return next(v for k, v in match.groupdict().items() if v is not None and not k.startswith("rel"))


def read_slots(sentence: str) -> list[tuple[str, str]]:
    """Every exclusive attribute a sentence names, one value per slot, in the order home,
    employer, partner, job, favourite.

    >>> read_slots("I left Kestrel and joined Nimbus Labs as a product manager.")
    [('employer', 'Nimbus Labs'), ('job', 'product manager')]
    >>> read_slots("We finally moved to Bristol last weekend."), read_slots("Lucia and I got married in July!")
    ([('home', 'Bristol')], [('partner', 'Lucia')])
    """
    found = []
    for slot, pattern in (("home", _HOME), ("employer", _EMPLOYER), ("partner", _PARTNER)):
        match = pattern.search(sentence)
        if match:
            value = _group(match).strip(" .,'’")
            found.append((slot, "freelance" if match.groupdict().get("s") else value))
    if not any(slot == "partner" for slot, _ in found) and _SINGLE.search(sentence):
        found.append(("partner", "single"))
    match = _JOB.search(sentence)
    if match:
        found.append(("job", f"{match.group('t')} teacher" if match.group("t") else _group(match).strip()))
    favourite = read_favourite(sentence)
    return found + [favourite] if favourite else found


_WHEN_NOW = r"(?:now|lately|today|currently|these days|nowadays|right now|at the moment)"
_FAVOURITE = re.compile(rf"\b[Mm]y\s+(?:(?:all-time|absolute|new|current)\s+)?favou?rite\s+"
                        rf"(?P<thing>[A-Za-z]+(?:\s+(?!{_WHEN_NOW}\b)[A-Za-z]+)?)\s+(?:{_WHEN_NOW}\s+)?"
                        r"(?:is|are|has become|has to be)\s+(?:now\s+|still\s+|definitely\s+|probably\s+)?"
                        r"(?P<x>[^.,;:!?]+)")
_FAVOURITE_FIRST = re.compile(r"(?:^|[.!?]\s+)(?:(?:but|and|so|well|oh|actually|now),?\s+)?"
                              r"(?:(?:I think|I guess|I'd say|I believe|I reckon|probably|definitely)\s+)?"
                              r"(?P<x>[\w'’ -]{1,40}?)\s+(?:is|are)\s+(?:still\s+|now\s+|definitely\s+)?my\s+"
                              r"(?:(?:new|all-time)\s+)?favou?rite\s+(?P<thing>[a-z]+)\b", re.I)
_VALUE_END = re.compile(rf"\s+(?:because|since|but|and I|and it|which|who|that is|{_WHEN_NOW})\b.*$", re.I)
_NOT_VALUES = frozenset("it that this which what there here today tonight tomorrow he she they you we this one "
                        "that one mine".split()) | {"this one", "that one"}
# "my favourite part is the ending" is about one film, not a lasting preference
_CONTEXTUAL = frozenset("part parts thing things moment moments memory memories one ones way ways time times bit "
                        "day days scene scenes line lines quote aspect kind sort".split())


def read_favourite(sentence: str) -> tuple[str, str] | None:
    """A favourite named plainly: "my favourite food is sushi" or "sushi is my favourite food"
    gives ``("favourite food", "sushi")``; a later favourite food supersedes it."""
    match = _FAVOURITE.search(sentence) or _FAVOURITE_FIRST.search(sentence)
    if not match:
        return None
    value = _VALUE_END.sub("", match.group("x")).strip(" '’\"")
    thing = match.group("thing").lower().split()
    if thing[0] in _CONTEXTUAL or not value or value.lower() in _NOT_VALUES or len(value.split()) > 6:
        return None
    return favourite_slot(" ".join(thing)), value


def _slot_triple(name: str, slot: str, value: str, sentence: str) -> Triple | None:
    if slot == "home":
        return Triple(name, "lives_in", value, "place", True)
    if slot == "employer":
        return Triple(name, "works_at", value, "organisation", True)
    if slot == "partner" and value != "single":
        match = _PARTNER.search(sentence)
        said = next(v for k, v in match.groupdict().items() if k.startswith("rel") and v) if match else "dating"
        return Triple(name, _PARTNER_RELATIONS.get(said.lower(), "dating"), value, "person", True)
    return None


def read_triples(sentence: str, name: str, slot: tuple[str, str] | None = None) -> tuple[Triple, ...]:
    """Typed relations of the speaker read from one first-person sentence."""
    found: list[Triple] = []
    if slot and (triple := _slot_triple(name, *slot, sentence)):
        found.append(triple)
    for pattern in (_KIN, _KIN_AFTER):
        for m in pattern.finditer(sentence):
            rel = _NORMAL.get(m.group("rel").lower(), m.group("rel").lower())
            if m.group("x") not in _NOT_NAMES and not m.group("x").endswith("ing"):
                found.append(Triple(name, "has_" + rel.replace(" ", "_"), m.group("x"), "person"))
    for m in _PET.finditer(sentence):
        if m.group("x") not in _NOT_NAMES:
            found.append(Triple(name, "has_pet", m.group("x"), "pet"))
    for m in _LIKES.finditer(sentence):
        words = [w for w in m.group("x").split() if w not in _FILLER and w not in _NOT_OBJECTS]
        obj = " ".join(words[:2]) if words[:1] == m.group("x").split()[:1] else ""
        activity = bool(m.group("to")) or obj.endswith("ing") or obj.split(" ")[0].endswith("ing")
        if obj and (activity or not obj.endswith(("ed", "ly"))):
            rel = "dislikes" if m.group("v").lower() in ("hate", "dislike") else "likes"
            found.append(Triple(name, rel, obj, "activity" if activity else "thing"))
    for m in _VISIT.finditer(sentence):
        place = m.group("x").strip(" .,'’")
        if place.split()[0] not in _NOT_NAMES and not _CALENDAR.match(place):
            found.append(Triple(name, "visited", place, "place"))
    return tuple(found) + _mentions(sentence, name, {t.object for t in found})


_MENTION = re.compile(rf"(?<![\w'’-])(?:[a-z](?=[A-Z]))?{_PROPER}")


def _mentions(sentence: str, name: str, known: set[str]) -> tuple[Triple, ...]:
    """Other proper nouns ("iPhone" whole, not "Phone"); a capital that only opens a sentence is not one."""
    out: list[Triple] = []
    for m in _MENTION.finditer(sentence):
        phrase = re.sub(r"['’]s$", "", m.group(0).strip(" .,'’-"))
        words = phrase.split()
        opens = m.start() == 0 or re.search(r"[.!?:;\"“(-]\s*$", sentence[:m.start()])
        possessive = re.match(r"([A-Z][a-z]+)['’]s\b", m.group(0))  # "Ana's party ..." names Ana
        opens = opens and not (possessive and possessive.group(1).lower() not in _CONTRACTED_HEADS)
        if words[0] in _NOT_NAMES or re.search(r"['’]", words[0]) or (opens and len(words) == 1):
            phrase = " ".join(words[1:])
        if (len(phrase) < 2 or phrase == name or phrase in known or _CALENDAR.match(phrase)
                or phrase in _NOT_NAMES or any(phrase in k or k in phrase for k in known)):
            continue
        known.add(phrase)
        out.append(Triple(name, "mentions", phrase, "thing"))
    return tuple(out)


# --- candidates --------------------------------------------------------------

_VOCATIVE = re.compile(r"(?:^|[.!?]\s+)(?:(?:hey|hi|hello|thanks|thank you|wow|oh|congrats|congratulations|yeah|"
                       r"yes|aw+|haha|sorry|great|cool|awesome|glad|sure|ok|okay)\b[\s,!]*)+(?P<a>[A-Z][a-z]+)\b"
                       r"|,\s+(?P<b>[A-Z][a-z]+)[!.?]", re.I)


def addressee_name(episode: Episode, speaker: str) -> str | None:
    """Whom the speaker talks to: ``metadata["addressee"]``, or a vocative ("Thanks, Mel!")."""
    if episode.metadata.get("addressee"):
        return str(episode.metadata["addressee"])
    for m in _VOCATIVE.finditer(episode.text):
        found = m.group("a") or m.group("b")
        if found[0].isupper() and found != speaker and found not in _NOT_NAMES and not _CALENDAR.match(found):
            return found
    return None


def speaker_name(episode: Episode) -> str:
    """The name statements use: the role, or for a generic "user" the caller's name."""
    if episode.role.lower() in _GENERIC_ROLES:
        return str(episode.metadata.get("name") or "The user")
    return episode.role if not episode.role.islower() else episode.role.title()


def _finish(text: str) -> str:
    text = text.strip().rstrip("!.;:, ") + "."
    return text[0].upper() + text[1:]


_SLOT_CATEGORY = {"home": Category.LOCATION, "employer": Category.WORK, "job": Category.WORK,
                  "partner": Category.RELATIONSHIP, "favourite": Category.PREFERENCE}


def _candidates(group: list[str], episode: Episode, name: str, other: str | None) -> list[Candidate]:
    """The statement of first-person sentences and the plain sentences that elaborate them: one
    per slot they fill ("I live in Leeds and work as a nurse" fills home, employer and job), so
    that a later change of one slot closes that one only."""
    dated = [resolve_dates(s, episode) for s in group]
    if other:  # "That's great news, Mel." -> "That's great news."
        dated = [re.sub(rf",?\s*\b{re.escape(other)}(?=\s*[!.?]*$)", "", s) for s in dated]
    personal = " ".join(s for s in dated if _FIRST_PERSON.search(s))
    text = " ".join(_finish(rewrite_pronouns(s, name, other)) for s in dated)
    slots: list[tuple[str, str] | None] = [*read_slots(personal)] or [None]
    out = []
    for n, slot in enumerate(slots):
        category = _SLOT_CATEGORY.get(slot[0].split()[0], categorize(personal)) if slot else categorize(personal)
        triples = read_triples(personal, name, slot) if n == 0 else \
            tuple(t for t in read_triples(personal, name, slot) if t.functional)
        out.append(Candidate(
            subject=name, text=text, category=category, confidence=confidence(personal), episode_id=episode.id,
            session_id=episode.session_id, event_time=episode.event_time, slot=slot[0] if slot else None,
            value=slot[1] if slot else None, triples=triples))
    return out


def _groups(sentences: list[str]) -> list[list[str]]:
    """Each first-person sentence with the plain sentences after it ("It was so powerful.")."""
    groups: list[list[str]] = []
    for sentence in sentences:
        if _FIRST_PERSON.search(sentence):
            groups.append([sentence])
        elif groups and len(groups[-1]) <= MAX_ELABORATION:
            groups[-1].append(sentence)
    return groups


def _merge(groups: list[list[str]]) -> list[list[str]]:
    """Neighbouring short statements of one turn become one, except those that fill a slot
    (a later change of that slot must not close unrelated facts)."""
    merged: list[list[str]] = []
    for group in groups:
        words = sum(len(s.split()) for s in group) + (sum(len(s.split()) for s in merged[-1]) if merged else 0)
        if merged and words <= MAX_STATEMENT_WORDS and not read_slot(" ".join(merged[-1] + group)):
            merged[-1] = merged[-1] + group
        else:
            merged.append(group)
    return merged


def extract(episode: Episode) -> list[Candidate]:
    """The statements about the speaker of one episode; small talk and assistant turns give none."""
    if episode.role.lower() in NON_USER_ROLES:
        return []
    name = speaker_name(episode)
    other = addressee_name(episode, name)
    sentences = [_restore_subject(clean_sentence(s)) for s in split_sentences(episode.text)]
    groups = _merge(_groups([s for s in sentences if not is_small_talk(s)]))
    return [c for group in groups for c in _candidates(group, episode, name, other)]


# --- optional: embeddings for the rules' EVENT leftovers ----------------------

def refine_categories(candidates: list[Candidate], vectors: np.ndarray, prototype_vectors: np.ndarray,
                      prototype_labels: list[Category], margin: float = 0.08,
                      min_similarity: float = 0.45) -> list[Candidate]:
    """Relabel the candidates the rules left as EVENT whose text is clearly nearer another category.

    ``vectors`` (one row per candidate) and ``prototype_vectors`` (one row per label,
    e.g. embedded example statements of that category) are L2-normalised. A candidate
    moves when its nearest category is not EVENT, scores ``min_similarity`` or more and
    beats every other category (EVENT included) by ``margin``.
    """
    if not candidates:
        return []
    kinds = list(dict.fromkeys(prototype_labels))
    sims = np.asarray(vectors) @ np.asarray(prototype_vectors).T
    per_kind = np.stack([sims[:, [i for i, lab in enumerate(prototype_labels) if lab is k]].max(axis=1)
                         for k in kinds], axis=1)
    out = []
    for cand, row in zip(candidates, per_kind):
        order = np.argsort(row)[::-1]
        best, second = row[order[0]], (row[order[1]] if len(order) > 1 else -1.0)
        winner = kinds[order[0]]
        if (cand.category is Category.EVENT and winner is not Category.EVENT
                and best >= min_similarity and best - second >= margin):
            cand = replace(cand, category=winner)
        out.append(cand)
    return out
