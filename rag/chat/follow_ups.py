"""Turn a follow-up question into a standalone question that retrieval can answer on its own.

"When do they meet next?" means nothing to a search engine. With an LLM configured, the LLM
rewrites the question. Without one, the conversation's *subject* is tracked turn by turn and
the follow-up is rewritten against it (``Answer.query`` shows the result):

- the subject of a turn is the names in its (already resolved) question, or, when the question
  asked "who", "where" or "which ..." and the answer named someone or somewhere new, that name;
  failing both, the question's content words. A follow-up without names of its own keeps the
  subject it inherited, so a second follow-up still knows what the first was about;
- "it" and "its" become the subject, the last thing (not person) talked about: after "Who will lead
  the cyber command?" answered "Maria Okafor", "Where will it be based?" is about the command;
  "he", "she", "his", "her" the last person (a name a "who" question's answer gave); "they",
  "them", "their" what a "who" question's answer named ("the city council"), else the subject;
  "there" / "then" are followed by the place or the subject;
- a bare "Why?", "How?", "When?" or "Where?" asks that of the previous question: "What did the
  council decide?" then "Why?" searches "Why did the council decide?"; after a question whose
  answer named its subject or object ("Who voted against the budget?", "Which satellite did
  Orbit delay?"), the name the answer gave takes the question word's place;
- "and X?", "what about X?", "how about X?" put X in the place of the matching part of the
  previous question: "What is the incidence in Europe?" then "and in the Americas?" searches
  "What is the incidence in the Americas?"; a period replaces the period ("in 2026" by "and in
  2025?"), a counted thing the counted thing ("How many pilots ..." then "and cabin crew?").

A question that does not refer back is searched as asked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag.answering.answer_types import NAME, ORGANISATION, PERSON, PLACE, candidates, expected_type
from rag.answering.citations import content_words

# (question, answer) pairs, oldest first.
History = Sequence[tuple[str, str]]

_PRONOUN = re.compile(r"\b(it|they|them|he|she|him|this|that|these|those)\b", re.IGNORECASE)
_POSSESSIVE = re.compile(r"\b(its|their|his|her)\b", re.IGNORECASE)
_PLACE_TIME = re.compile(r"\b(there|then)\b", re.IGNORECASE)
_CONTINUES = re.compile(r"^\s*(?:and|but|so|also|what about|how about|same for|what of)\b[\s,]*", re.IGNORECASE)
_BARE_WH = re.compile(r"^\s*(why|how|when|where|who|how come|how so)\s*[?.!]*\s*$", re.IGNORECASE)
# The question word and what belongs to it ("How many troops", "Which company", "What").
_WH_HEAD = re.compile(
    r"^\s*(?:(?:how (?:many|much)|which|what|whose)(?:\s+(?!(?:is|are|was|were|do|does|did|will|would|can|"
    r"could|has|have|had|should)\b)[\w'’-]+){0,2}|who|whom|what|when|where|why|how)\b\s*",
    re.IGNORECASE,
)
_PREPOSITION = re.compile(r"^(in|for|at|on|during|among|from|to|with|by|of|about|under|over)\s+", re.IGNORECASE)
# "that" in "Is that so?" refers back; "that" after a noun ("the report that") does not; this
# list keeps words whose pronoun use is the common one in questions.
_WORDS_NOT_SUBJECT = {"do", "does", "did", "say", "said", "mean", "according", "think", "tell", "happen", "happened"}


@dataclass(frozen=True)
class Turn:
    question: str  # as asked
    resolved: str  # standalone
    subject: str | None  # what "it" stands for next
    person: str | None = None  # what "he" and "she" stand for next
    place: str | None = None  # what "there" stands for next
    answered: str | None = None  # what this turn's answer named in reply to who / which / where
    group: str | None = None  # what "they" stands for next: a "who" answer ("the city council")


def is_follow_up(question: str) -> bool:
    return bool(
        _PRONOUN.search(question)
        or _POSSESSIVE.search(question)
        or _PLACE_TIME.search(question)
        or _CONTINUES.match(question)
        or len(content_words(question)) <= 1  # an ellipsis: "In which year?"
    )


def heuristic_query(question: str, history: History | None) -> str:
    """``question`` rewritten to stand on its own, given the conversation so far."""
    if not history:
        return question
    previous: Turn | None = None
    for asked, answer in history:
        previous = _turn(asked, answer, previous)
    if previous is None or not is_follow_up(question):
        return question
    return _resolve(question, previous)


def _turn(question: str, answer: str, previous: Turn | None) -> Turn:
    resolved = _resolve(question, previous) if previous is not None and is_follow_up(question) else question
    phrases = noun_phrases(resolved)
    names = [p for p in phrases if p[:1].isupper()]
    follow_up = previous is not None and resolved != question
    # The subject is what the question is about: a name where it has one ("Storm Elin", not
    # "the gusts"), else its first phrase.
    subject = next((p for p in phrases if any(ch.isupper() for ch in p)), phrases[0] if phrases else None)
    person = names[0] if names else None
    places = [resolved[c.start : c.end] for c in candidates(resolved, PLACE)]
    # "there": a place the question named ("in Europe"), else what it was about ("the election").
    place = places[-1] if places else subject
    group = None
    if follow_up and previous is not None:
        # A follow-up about the same thing keeps what it inherited unless it names another
        # itself: a name its pronoun stood for ("When does Maria Okafor start?") changes nothing.
        own = [p for p in noun_phrases(question) if p[:1].isupper()]
        subject = own[0] if own else previous.subject
        person = own[0] if own and _PERSONAL.search(question) else previous.person
        place = places[-1] if places else previous.place
        group = previous.group
    # What the answer named: "Who must approve the contract?" then "When do they meet?" asks
    # about the council it named; "Where was it found?" then "When?" about that place; "Who will
    # lead the command?" names a person: "she" is her, "it" still the command.
    answered = _answered_subject(resolved, answer)
    kind = expected_type(resolved)
    if answered and kind == PLACE:
        place = answered
    elif answered and kind == PERSON:
        person = group = answered
    elif answered:
        subject = answered
    return Turn(question, resolved, subject or _topic(resolved), person, place, answered, group)


_PERSONAL = re.compile(r"\b(he|she|him|his|her)\b", re.IGNORECASE)


def _resolve(question: str, previous: Turn) -> str:
    text = question.strip()
    bare = _BARE_WH.match(text)
    if bare:
        return _bare(bare.group(1).capitalize(), previous)
    continued = _CONTINUES.match(text)
    if continued:
        rest = text[continued.end() :].strip().rstrip("?").strip()
        whole_question = re.match(r"(?:what|who|whom|whose|when|where|why|how|which|is|are|was|were|do|does|did|"
                                  r"can|could|will|would|has|have|had)\b", rest, re.IGNORECASE)  # fmt: skip
        if rest and not whole_question and not _PRONOUN.search(rest) and not _POSSESSIVE.search(rest):
            return _replace_slot(previous.resolved, rest)
        text = f"{rest}?" if rest else text
    subject = previous.subject
    if not subject:
        return f"{previous.resolved.rstrip('?')} {text}"
    person = previous.person or subject
    group = previous.group or subject

    def referent(word: str) -> str:
        word = word.lower()
        if word in ("he", "she", "him", "his", "her"):
            return person
        return group if word in ("they", "them", "their") else subject

    def pronoun(match: re.Match[str]) -> str:
        return referent(match.group(0))

    def possessive(match: re.Match[str]) -> str:
        return _possessive(referent(match.group(0)))

    resolved = _POSSESSIVE.sub(possessive, text)
    resolved = _PRONOUN.sub(pronoun, resolved)
    place = previous.place or subject
    resolved = _PLACE_TIME.sub(
        lambda m: f"{m.group(0)} ({place if m.group(0).lower() == 'there' else subject})", resolved
    )
    if resolved == text:  # nothing to replace: an ellipsis like "In which year?"
        resolved = f"{text.rstrip('?')} ({subject})?"
    return resolved


def _bare(word: str, previous: Turn) -> str:
    """A bare "Why?" (or "How?", "When?", "Where?") asked of the previous question: its question
    word replaced, and where the previous answer named the subject or object it asked for, that
    name in its place ("Who voted against the budget?" then "Why?": "Why Ray Ortiz voted against
    the budget?")."""
    head = _WH_HEAD.match(previous.resolved)
    rest = _WH_HEAD.sub("", previous.resolved, count=1).strip().rstrip("?")
    if not rest:
        return previous.resolved
    asked = head.group(0).strip().lower() if head else ""
    counted = re.match(r"how (?:many|much)\s+(.+)", asked)
    if re.fullmatch(r"(who|whom)", asked) and not re.match(r"(is|are|was|were)\b", rest, re.IGNORECASE):
        return f"{word} {previous.answered or previous.group or ''} {rest}?".replace("  ", " ")
    if re.match(r"(which|what)\s+\w", asked) and previous.answered:
        if re.match(r"(did|do|does|will|would|can|could|has|have|had)\b", rest, re.IGNORECASE):
            return f"{word} {rest} {previous.answered}?"  # "Why did Orbit Systems delay Kestrel-2?"
        return f"{word} {previous.answered} {rest}?"  # "Why Bradford had the most cases?"
    if counted and not re.match(r"(did|do|does|will|would|can|could|has|have|had|is|are|was|were)\b", rest):
        return f"{word} {counted.group(1)} {rest}?"  # "Why cabin crew walked out at SkyLink?"
    return f"{word} {rest}?"


def _possessive(subject: str) -> str:
    return subject + ("’" if subject.endswith("s") else "’s")


_PERIOD = re.compile(
    r"\b(?:(?:in|on|during|since|by)\s+(?:(?:early|late|mid-?)\s*)?(?:\d{4}|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|"
    r"nov|dec)[a-z]*\.?(?:\s+\d{1,2})?(?:,?\s+\d{4})?)|(?:this|last|next)\s+(?:year|month|week))\b",
    re.IGNORECASE,
)


def _replace_slot(question: str, phrase: str) -> str:
    """``question`` with the part that ``phrase`` stands for replaced by it: a period by a period,
    a place or time by its preposition, a name by a name or "the ..." phrase, what "how many"
    counts by what the phrase counts; else the phrase is added."""
    body = question.strip().rstrip("?")
    if _PERIOD.fullmatch(phrase):
        periods = list(_PERIOD.finditer(body))
        if periods:
            m = periods[-1]
            return f"{body[: m.start()]}{phrase}{body[m.end() :]}?"
    preposition = _PREPOSITION.match(phrase)
    if preposition:
        word = preposition.group(1).lower()
        matches = list(re.finditer(rf"\b{word}\s+[^,;?]+$", body, re.IGNORECASE)) or list(
            re.finditer(rf"\b{word}\s+(?:the\s+)?[\w'’-]+(?:\s+[A-Z][\w'’-]*)*", body, re.IGNORECASE)
        )
        if matches:
            m = matches[-1]
            return f"{body[: m.start()]}{phrase}{body[m.end() :]}?"
        return f"{body} {phrase}?"
    names = list(_name_matches(body))
    if names and (phrase[:1].isupper() or phrase.split()[0].lower() in _DETERMINER):
        start, end = names[-1]
        return f"{body[:start]}{phrase}{body[end:]}?"
    # The counted words run to the verb: an auxiliary, a past form ("walked") or a common verb.
    counted = re.match(r"(how (?:many|much)|which|what)\s+((?:(?!(?:is|are|was|were|do|does|did|will|would|can|could|"
                       r"has|have|had|should|lost|won|left|took|fell|went|work|works|live|lives|pay|pays|get|gets)\b"
                       r"|\w+ed\b)[a-z][\w'’-]*\s*){1,2})", body, re.IGNORECASE)  # fmt: skip
    if counted and phrase[:1].islower():
        return f"{body[: counted.start(2)]}{phrase} {body[counted.end(2) :].lstrip()}?".replace(" ?", "?")
    return f"{body} ({phrase})?"


def _name_matches(text: str) -> list[tuple[int, int]]:
    return [(c.start, c.end) for c in candidates(text, NAME)]


# Words that end a noun phrase: function words, auxiliaries and question words.
_BREAKS = frozenset(
    [
        "a",
        "an",
        "the",
        "this",
        "that",
        "these",
        "those",
        "its",
        "their",
        "his",
        "her",
        "of",
        "in",
        "on",
        "at",
        "for",
        "to",
        "from",
        "by",
        "with",
        "about",
        "as",
        "and",
        "or",
        "but",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "will",
        "would",
        "can",
        "could",
        "should",
        "must",
        "may",
        "might",
        "has",
        "have",
        "had",
        "what",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "which",
        "than",
        "then",
        "there",
        "not",
        "no",
        "so",
        "if",
        "into",
        "over",
        "under",
        "after",
        "before",
        "during",
        "according",
        "said",
        "says",
        "say",
    ]
)
_DETERMINER = frozenset(["the", "a", "an", "this", "that", "these", "those", "its", "their", "his", "her"])
_AUXILIARY = re.compile(r"\b(did|do|does|will|would|can|could|should|must|may|might)\s+$", re.IGNORECASE)


def noun_phrases(question: str) -> list[str]:
    """Names and "the ..." phrases of a question, names first: its candidate subjects.

    Without a part-of-speech tagger (none ships offline), a phrase after a determiner runs to the
    next function word; in "What rate did the Fed keep?" the last word of the clause after an
    auxiliary is the verb, so it is left out.
    """
    names = [_with_nouns(question, a, b) for a, b in _name_matches(question)]
    tokens = [(m.group(), m.start()) for m in re.finditer(r"[\w'’.-]+|[?,;:!]", question)]
    phrases: list[str] = []
    for i, (token, _) in enumerate(tokens):
        if token.lower() not in _DETERMINER:
            continue
        run = []
        for word, _ in tokens[i + 1 :]:
            if not re.match(r"\w", word) or word.lower() in _BREAKS:
                break
            run.append(word)
        clause_ends = i + 1 + len(run) >= len(tokens) or not re.match(r"\w", tokens[i + 1 + len(run)][0])
        if len(run) > 1 and clause_ends and _AUXILIARY.search(question[: tokens[i][1]]):  # "did the Fed keep"
            run = run[:-1]  # "did the Fed keep": "keep" is the verb
        if run:
            phrases.append(" ".join(run))
    out: list[str] = []
    for phrase in names + phrases:
        if not any(phrase in other for other in out):
            out = [o for o in out if o not in phrase] + [phrase]
    # Keep the question's order of mention, names and phrases together.
    return sorted(out, key=lambda p: question.find(p))


def _with_nouns(question: str, start: int, end: int) -> str:
    """A name with the lower-case nouns after it when they run to the end of the clause:
    "Riverside library" in "When did Riverside library reopen?" (the last word, after "did", is
    the verb); the name alone when anything else follows ("Orbit Systems launch Kestrel-2")."""
    after = re.match(r"((?:\s+[a-z][\w'’-]*)+)\s*(?=[?,;:!]|$)", question[end:])
    if not after:
        return question[start:end]
    words = after.group(1).split()
    if any(w.lower() in _BREAKS for w in words):
        return question[start:end]
    if re.search(r"\b(?:did|do|does|will|would|can|could|should|must|may|might)\s+(?:(?:the|a|an)\s+)?$",
                 question[:start], re.IGNORECASE):  # fmt: skip
        words = words[:-1]
    return " ".join([question[start:end], *words])


def _answered_subject(question: str, answer: str) -> str | None:
    """What an answer named in reply to a who / where / which question."""
    if expected_type(question) not in (PERSON, PLACE, ORGANISATION) and not re.match(
        r"\s*which\b", question, re.IGNORECASE
    ):
        return None
    about = re.match(r"\s*(?i:who|what) (?i:is|was|are|were)\s+([^?]+?)\s*\?*\s*$", question)
    if about and all(word[:1].isupper() for word in about.group(1).split()):
        return None  # "Who is Tomás Ferreira?" is about him; the answer only describes him
    asked = content_words(question)
    for candidate in candidates(answer, NAME):
        phrase = answer[candidate.start : candidate.end]
        if not content_words(phrase) & asked:  # not "Orbit Systems Inc." for "Which satellite did Orbit Systems delay?"
            return phrase
    # No name: the words before the first of the question's own ("The city council must approve").
    words = re.findall(r"[\w'’-]+", answer.split("[")[0])
    lead = []
    for word in words[:8]:
        if content_words(word) & asked:
            break
        lead.append(word)
    while lead and lead[0].lower() in _DETERMINER:
        lead = lead[1:]
    while lead and lead[-1].lower() in _BREAKS:  # "The state will pay": "state", not "state will"
        lead = lead[:-1]
    if lead and all(_PRONOUN.fullmatch(word) for word in lead):
        return None  # "He found cracks": the answer names nobody new
    return " ".join(lead) if 0 < len(lead) <= 5 and len(lead) < len(words) else None


def _topic(question: str) -> str | None:
    """The question's content words, in order, without the question word and filler verbs."""
    body = _WH_HEAD.sub("", question.strip(), count=1)
    words = [w for w in re.findall(r"[\w'’-]+", body) if content_words(w) and w.lower() not in _WORDS_NOT_SUBJECT]
    return " ".join(words) if words else None


REWRITE_PROMPT = (
    "Rewrite the user's last question so it can be understood without the conversation: "
    "replace pronouns with what they refer to. Reply with the rewritten question only."
)


def llm_query(question: str, history: History | None, complete: Callable[[list[dict[str, str]]], str]) -> str:
    """Ask an LLM for a standalone question; fall back to the heuristic on an empty reply."""
    if not history:
        return question
    turns = "\n".join(f"User: {q}\nAssistant: {a}" for q, a in history[-3:])
    messages = [
        {"role": "system", "content": REWRITE_PROMPT},
        {"role": "user", "content": f"{turns}\nUser: {question}\n\nStandalone question:"},
    ]
    rewritten = complete(messages).strip().strip('"').splitlines()
    return rewritten[0].strip() if rewritten and rewritten[0].strip() else heuristic_query(question, history)
