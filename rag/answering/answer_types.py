"""What a question asks for, and the phrases of a sentence that could be that answer.

"How much will the repairs cost?" wants an amount; "When do they meet?" a date; "Who leads the
NRF?" a person. A sentence that holds a phrase of the wanted type (and not only the question's
own words) is likelier to answer it, and that phrase is what the answer marks.

These are rules over the text, not a model: no named-entity or extractive-QA model ships inside
a PyPI package (spaCy's and NLTK's models are separate downloads), and the default must run
offline. Numbers, amounts, percentages and dates are found reliably by pattern; names (person,
place, organisation) are runs of capitalised words, which is coarse, so they mark a phrase only
when exactly one such run in the sentence is new to the question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.answering.citations import content_words

NUMBER = "number"
DATE = "date"
PERSON = "person"
PLACE = "place"
ORGANISATION = "organisation"
NAME = "name"  # a person, place or organisation: "which" questions that do not say which
REASON = "reason"

# Question patterns, tried in order; the first that matches decides.
_QUESTION_TYPES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(why|what (?:was|is|were|are) the (?:reason|cause)s?|for what reason|how come)\b"), REASON),
    (re.compile(r"\b(when|what (?:year|date|day|month|time|decade|century)|which (?:year|date|day|month))\b"), DATE),
    (
        re.compile(
            r"\b(how (?:many|much|long|old|far|big|large|high|tall|often|fast|heavy|wide|deep)|"
            r"what (?:percentage|percent|proportion|share|number|amount|rate|price|cost|size|age|ratio|"
            r"fraction|dose|dosage|temperature|length|duration|speed|value|level|sum|total|count)|"
            r"(?:what|which) (?:is|was|were|are) the (?:percentage|number|amount|rate|price|cost|size|age|ratio|"
            r"proportion|dose|dosage|temperature|duration|length|speed|total|count|value|mortality|incubation)|"
            r"at what (?:rate|price|age|temperature|level))\b"
        ),
        NUMBER,
    ),
    (
        re.compile(r"^\s*(who|whom|whose)\b|\b(who|whom) (?:is|was|are|were|did|does|do|has|had|will|led|leads)\b"),
        PERSON,
    ),
    (re.compile(r"^\s*where\b|\b(where|which (?:country|city|state|region|town|province|continent|place))\b"), PLACE),
    (
        re.compile(
            r"\b(which|what) (?:company|organi[sz]ation|agency|group|firm|party|institution|university|"
            r"ministry|department|bank|brand|manufacturer|journal|team|body)\b"
        ),
        ORGANISATION,
    ),
]

_MONTH = (
    r"(?:jan(?:uary|\.)?|feb(?:ruary|\.)?|mar(?:ch|\.)?|apr(?:il|\.)?|may|june?|july?|aug(?:ust|\.)?|"
    r"sept?(?:ember|\.)?|oct(?:ober|\.)?|nov(?:ember|\.)?|dec(?:ember|\.)?)"
)
_DATE = re.compile(
    rf"\b(?:\d{{4}}-\d{{2}}-\d{{2}}|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?|"
    rf"\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{4}})?|{_MONTH},?\s+\d{{4}}|"
    r"(?:mon|tues|wednes|thurs|fri|satur|sun)day|(?:early|mid|late)[- ]\d{4}s?|"
    r"(?:in|since|by|until|from|during|before|after)\s+(?:the\s+)?\d{4}s?|"
    r"\d{1,2}(?:st|nd|rd|th)\s+century|(?:yesterday|today|tomorrow|(?:last|next)\s+(?:week|month|year))|"
    r"\d{4}(?:\s*[–-]\s*\d{2,4}))\b",
    re.IGNORECASE,
)
_SCALE = r"(?:hundred|thousand|million|billion|trillion|bn|m|k)"
_UNIT = (
    r"(?:%|percent|per cent|pct|percentage points?|euros?|dollars?|pounds?|yen|yuan|francs?|usd|eur|gbp|"
    r"people|persons|patients|cases|deaths|troops|soldiers|workers|jobs|employees|years?|months?|weeks?|days?|"
    r"hours?|minutes?|seconds?|kg|g|mg|µg|ml|l|km|m|cm|mm|miles?|feet|foot|inches|lbs?|°c|°f|degrees?|"
    r"nucleotides?|times|fold|stars?|volts?|watts?|gb|mb|tb|mah|mph|kmh|km/h)"
)
_WORD_NUMBER = (
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|"
    r"sixty|seventy|eighty|ninety|hundred|dozens?|hundreds|thousands|millions|half|a third|a quarter)"
)
_NUMBER = re.compile(
    rf"(?:[$€£¥]\s?)?(?<![\w.])\d[\d,]*(?:\.\d+)?(?:\s*(?:[–-]|to)\s*\d[\d,]*(?:\.\d+)?)?"
    rf"(?:\s?{_SCALE}\b)?(?:\s?{_UNIT}(?![\w]))?|\b{_WORD_NUMBER}(?:[ -]{_WORD_NUMBER})*(?:\s{_UNIT}\b)?",
    re.IGNORECASE,
)
# A run of capitalised words (with inner "of", "de", "&"), for names of people, places, bodies.
_NAME = re.compile(
    r"\b(?:[A-Z][\w'’.-]*[\w]|[A-Z]{2,})(?:\s+(?:(?:of|de|da|von|van|der|del|la|and|&)\s+)?"
    r"(?:[A-Z][\w'’.-]*[\w]|[A-Z]{2,}))*"
)
_NOT_NAMES = re.compile(
    rf"^(?:{_MONTH}|(?:mon|tues|wednes|thurs|fri|satur|sun)day|the|a|an|this|that|these|those|it|in|on|at|"
    r"he|she|they|we|i|but|and|however|according|after|before|while|when|if|as|for|some|many|most|"
    r"mr|mrs|ms|mx|dr|prof|sen|gen|rep|gov|st|sir|lt|col|capt|sgt)$",
    re.IGNORECASE,
)
_REASON = re.compile(
    r"\b(?:because(?: of)?|due to|owing to|as a result of|caused by|so that|in order to|since|thanks to|"
    r"therefore|leads? to|led to|results? in|resulted in|the reason)\b",
    re.IGNORECASE,
)
_PLACE_CUE = re.compile(r"\b(?:in|at|from|near|to|across|into|outside|inside)\s+(?:the\s+)?$", re.IGNORECASE)
_ORG_CUE = re.compile(
    r"\b(?:Inc|Corp|Ltd|LLC|Group|Bank|University|Institute|Council|Agency|Ministry|Department|Committee|"
    r"Commission|Organi[sz]ation|Association|Party|Front|Foundation|Company|Court|Army|Police|Service)\b"
)


@dataclass(frozen=True)
class Candidate:
    start: int  # offsets into the sentence
    end: int
    kind: str


def expected_type(question: str) -> str | None:
    """The type of answer ``question`` asks for, or None when it does not say."""
    lowered = " ".join(question.lower().split())
    for pattern, kind in _QUESTION_TYPES:
        if pattern.search(lowered):
            return kind
    return None


def candidates(sentence: str, kind: str) -> list[Candidate]:
    """Phrases of ``sentence`` that could be an answer of type ``kind``."""
    if kind == NUMBER:
        found = [m for m in _NUMBER.finditer(sentence) if not _DATE.fullmatch(m.group().strip())]
        return [Candidate(m.start(), _rstrip(sentence, m.start(), m.end()), NUMBER) for m in found if m.group().strip()]
    if kind == DATE:
        return [Candidate(m.start(), _rstrip(sentence, m.start(), m.end()), DATE) for m in _DATE.finditer(sentence)]
    if kind == REASON:
        return [Candidate(m.start(), len(sentence.rstrip(".!?")), REASON) for m in _REASON.finditer(sentence)][:1]
    if kind in (PERSON, PLACE, ORGANISATION, NAME):
        out = []
        for match in _NAME.finditer(sentence):
            words = list(re.finditer(r"\S+", match.group()))
            first = 0
            while first < len(words) and _NOT_NAMES.match(words[first].group().rstrip(".")):
                first += 1
            if first == len(words):
                continue
            start = match.start() + words[first].start()
            end = _rstrip(sentence, start, match.end())
            if sentence[end - 2 : end] in ("'s", "’s"):
                end -= 2  # "the Fed's meeting": the name is "Fed"
            if start == 0 and len(words) - first == 1 and kind != ORGANISATION:
                continue  # a lone capitalised word that starts the sentence is usually not a name
            if _name_fits(sentence, start, end, kind):
                out.append(Candidate(start, end, kind))
        return out
    return []


def _name_fits(sentence: str, start: int, end: int, kind: str) -> bool:
    phrase = sentence[start:end]
    if kind == ORGANISATION:
        return bool(_ORG_CUE.search(phrase) or re.fullmatch(r"[A-Z]{2,6}", phrase))
    if kind == PLACE:
        return bool(_PLACE_CUE.search(sentence[:start]))
    if kind == PERSON:
        return not _ORG_CUE.search(phrase) and not re.fullmatch(r"[A-Z]{2,6}", phrase)
    return True


def _rstrip(sentence: str, start: int, end: int) -> int:
    while end > start and sentence[end - 1] in " ,;:.)":
        end -= 1
    return end


def new_candidates(question: str, sentence: str, kind: str) -> list[Candidate]:
    """Candidates that are not just the question's own words (the answer is what it lacks)."""
    asked = content_words(question)
    out = []
    for candidate in candidates(sentence, kind):
        words = content_words(sentence[candidate.start : candidate.end])
        if kind == REASON or not words or not words <= asked:
            out.append(candidate)
    return out


_PERCENT_WANTED = re.compile(r"\b(percent(age)?|proportion|share|rate|fraction|ratio)\b", re.IGNORECASE)
_PERCENT = re.compile(r"%|\bper ?cent\b|\bpct\b|percentage point", re.IGNORECASE)
_MONEY_WANTED = re.compile(r"\b(cost|price|pay|paid|spend|spent|worth|budget|fund|afford|fee|salary)\b", re.IGNORECASE)
_MONEY = re.compile(r"[$€£¥]|\b(euros?|dollars?|pounds?|yen|yuan|usd|eur|gbp)\b", re.IGNORECASE)
_DURATION_WANTED = re.compile(r"\bhow (long|old)\b", re.IGNORECASE)
_DURATION = re.compile(r"\b(years?|months?|weeks?|days?|hours?|minutes?|seconds?|decades?)\b", re.IGNORECASE)
# "how many troops": the thing counted, which the number in the answer is usually next to.
_COUNTED = re.compile(r"\bhow (?:many|much)\s+((?:[\w-]+\s*){1,3})|\bnumber of\s+((?:[\w-]+\s*){1,3})", re.IGNORECASE)


def _number_fit(question: str, sentence: str, candidate: Candidate) -> int:
    """How well a number fits what the question counts or measures (higher is better)."""
    text = sentence[candidate.start : candidate.end]
    after = " ".join(sentence[candidate.end :].split()[:3])
    score = 0
    if _PERCENT_WANTED.search(question):
        score += 2 if _PERCENT.search(text) else 0
    if _MONEY_WANTED.search(question):
        score += 2 if _MONEY.search(text) else 0
    if _DURATION_WANTED.search(question):
        score += 2 if _DURATION.search(text) else 0
    counted = _COUNTED.search(question)
    if counted:
        focus = content_words(counted.group(1) or counted.group(2))
        if focus and focus & content_words(f"{text} {after}"):
            score += 2
    return score


def answer_phrase(question: str, sentence: str, kind: str | None) -> Candidate | None:
    """The one phrase of ``sentence`` to mark as the answer, or None when it is not clear.

    Numbers are ranked by how well they fit what the question measures (a percentage for "what
    share", an amount of money for "how much does it cost", the counted thing next to the number
    for "how many troops"), then by closeness to the question's words in the sentence; names are
    marked only when exactly one is new.
    """
    if kind is None or kind == REASON:
        return None
    found = new_candidates(question, sentence, kind)
    if not found:
        return None
    if kind in (PERSON, PLACE, ORGANISATION, NAME) and len(found) > 1:
        return None
    if kind == NUMBER:
        # A number is marked only when it fits what the question measures: on the development
        # sets that doubled how often the marked phrase was the answer (README "Answer quality").
        found = [c for c in found if _number_fit(question, sentence, c) > 0]
        if not found:
            return None
    if len(found) == 1:
        return found[0]
    asked = content_words(question)
    anchors = [m.start() for m in re.finditer(r"\w+", sentence) if content_words(m.group()) & asked]
    fit = {c: _number_fit(question, sentence, c) if kind == NUMBER else 0 for c in found}
    distance = {c: min((abs(c.start - a) for a in anchors), default=0) for c in found}
    if not anchors and not any(fit.values()):
        return None
    return min(found, key=lambda c: (-fit[c], distance[c], c.start))


# Questions whose answer is several facts: a reason ("why"), a list ("which cities", "what
# are the reasons", "name the"), or two questions in one ("who ... and when ...").
_SEVERAL = re.compile(
    r"^\s*why\b|\bwhat (?:are|were) the\b|\b(?:which|what) (?:\w+ )?\w+s (?:are|were|have|had|did|do|will)\b"
    r"|\b(?:list|name) (?:the|all)\b|\breasons?\b|\bwhat (?:caused|causes|led to)\b"
    r"|\b(?:who|what|when|where|how)\b[^?]*\band (?:who|what|when|where|how|why)\b",
    re.IGNORECASE,
)


def asks_for_several(question: str) -> bool:
    """Whether the answer is likely several sentences: a why, a list, or a two-part question."""
    return bool(_SEVERAL.search(question))
