"""Answers that know time: a story's newest figure first, earlier reports dated beside it, and
outlets that disagree on the same day shown side by side.

The evidence gate and the answerer chose one sentence of one document. That document may be one
version of a story (``rag.ingest.stories``): the March report of a tunnel whose September update
gives another figure. Here every other version of the story is read with the question (the
reader, or the encoder's cosine when the reader is off); a version whose best sentence answers
(relevance at least ``VERSION_MIN``) and gives other figures than the lead is shown, dated:

    Sept. 18, 2026: The project now employs about 2,300 workers, ... [1]
    Earlier, March 4, 2026: About 1,800 workers are employed on the project, ... [2]

Which version leads is what the question asks for (``rag.answering.time_words``): the newest by
default and for "now"/"latest", the period's for "in March"/"on Jan. 14", the first for
"originally", the one before the newest for "before the update". Versions of the lead's day
that give other figures are shown with it ("Sources differ on ..."), never dropped. Each quote
keeps its exact span. ``timeline`` gives one sentence per version, oldest to newest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from embeddings.reader import Scored
from rag.answering import Draft
from rag.answering.answer_types import ORGANISATION, PERSON, PLACE, REASON, expected_type
from rag.answering.citations import content_words
from rag.answering.evidence import Evidence
from rag.answering.extractive import SPAN_MIN, SPAN_RELEVANCE_MIN
from rag.answering.time_words import MONTHS, TimeAsked, news_date
from rag.ingest.chunking import segments
from rag.ingest.duplicates import Facts, figures
from rag.ingest.stories import Version
from rag.search.query import Filters
from rag.types import AnswerSentence, AnswerSpan, Citation, Timeline, TimelineEntry

# (question, sentences, their headlines) -> the reader's verdict on each
Score = Callable[[str, list[str], list[str]], list[Scored]]

# A version's best sentence answers the question when the reader gives it at least this (fitted
# on the story set's questions, benchmarks/stories.py). Sentences read per version, at most.
VERSION_MIN = 0.5
MAX_READ_PER_VERSION = 30
# Versions shown besides the lead: a story with a hundred versions gives the newest few.
MAX_SHOWN = 4
# A sentence with a figure of what the question counts gains this when a version's sentence is chosen.
FOCUS_BONUS = 0.3
# Another version's sentence that holds this share of the answer's sentence's words (figures left
# out) tells the same thing, whatever the reader gives it; the share counts this much in choosing.
MATCH_MIN = 0.25
MATCH_WEIGHT = 0.3

_MONTH_WORD = re.compile(r"\b(" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\b\.?", re.IGNORECASE)
_FIGURE = re.compile(r"[$£€]?\d[\d,]*(?:\.\d+)?%?(?: (?:thousand|million|billion|trillion)\b)?")


@dataclass(frozen=True)
class Found:
    """The sentence of one version that answers the question."""

    version: Version
    facts: Facts  # the document quoted (the version's report, or the copy the answer first quoted)
    start: int
    end: int
    relevance: float
    span: tuple[int, int] | None = None  # the answer phrase, offsets in the sentence
    span_confidence: float = 0.0

    @property
    def text(self) -> str:
        return self.facts.text[self.start : self.end]

    @property
    def date(self) -> str | None:
        return self.facts.date

    @property
    def values(self) -> frozenset[str]:
        """What the sentence says, as figures and months: "2,300", "September 2030"."""
        months = {str(MONTHS[m.group(1).lower()]) + "m" for m in _MONTH_WORD.finditer(self.text)}
        return figures(self.text) | frozenset(months)


def over_time(
    draft: Draft,
    evidence: Evidence,
    query: str,
    versions: Sequence[Version],
    score: Score,
    asked: TimeAsked,
    filters: Filters | None = None,
    minimum: float = VERSION_MIN,
) -> Draft:
    """The draft, or, when the story's versions give other figures, the answer over time."""
    best = evidence.best
    if not draft.answerable or best is None or len(versions) < 2:
        return draft
    chosen = evidence.sentences[best]
    mine = next((v for v in versions if chosen.doc_id in {v.report.id, *(c.id for c in v.copies)}), None)
    if mine is None:
        return draft
    if expected_type(query) in (REASON, PERSON, PLACE, ORGANISATION):
        return draft  # versions are told apart by their figures and dates, not by reasons or names
    # Every version, the answer's own included, is judged by one rule, so their sentences compare.
    quoted = mine.report if mine.report.id == chosen.doc_id else next(c for c in mine.copies if c.id == chosen.doc_id)
    ours = _best_sentence(mine, query, score, quoted)
    if ours is None:
        return draft
    # Another version answers when the reader says so, or when its sentence says what ours says
    # in other figures ("won 52.8% of the vote in the final count" for "54% voting yes"): the
    # reader misjudges some phrasings, and the two reports of one event are told the same way.
    anchor = _words(ours.text)
    found = [ours] if ours.relevance >= minimum or anchor else []
    for version in versions:
        if version is mine or not _allowed(version.report, filters):
            continue
        f = _best_sentence(version, query, score, anchor=anchor)
        if f is not None and f.values and (f.relevance >= minimum or _share(anchor, f.text) >= MATCH_MIN):
            found.append(f)
    wanted = focus(query)
    if any(counts(f.text, wanted) for f in found):
        # Some report gives a figure of what is asked: the others' figures count something else.
        found = [f for f in found if counts(f.text, wanted)]
    if not found:
        return draft
    lead, note = _lead(found, asked, mine)
    shown = [
        f for f in found if f is not lead and f.values and f.values != lead.values and _same_quantity(lead, f, wanted)
    ]
    if not shown and not note and lead.facts.id == chosen.doc_id and lead.start == chosen.start:
        return draft  # every report of the story that answers agrees with the answer
    return _compose(draft, lead, shown, note)


def _allowed(report: Facts, filters: Filters | None) -> bool:
    if filters is None:
        return True
    if filters.since and (report.date is None or report.date < filters.since):
        return False
    if filters.until and (report.date is None or report.date > filters.until):
        return False
    if filters.doc_ids and report.id not in filters.doc_ids:
        return False
    return not filters.sources or any(s in report.source or s in report.path for s in filters.sources)


def _sentences(text: str) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in segments(text) if not s.is_structure][:MAX_READ_PER_VERSION]


def _best_sentence(
    version: Version, query: str, score: Score, facts: Facts | None = None, anchor: frozenset[str] = frozenset()
) -> Found | None:
    """The sentence of ``version`` (of ``facts``, one of its copies, when given) that answers best:
    the reader's relevance, plus ``FOCUS_BONUS`` when it gives a figure of what the question
    counts ("how many pilots": a figure beside "pilots", not beside "flights"), plus
    ``MATCH_WEIGHT`` x the share of the ``anchor`` sentence's words it holds."""
    report = facts or version.report
    spans = _sentences(report.text)
    if not spans:
        return None
    texts = [report.text[a:b] for a, b in spans]
    verdicts = score(query, texts, [report.title] * len(texts))
    wanted = focus(query)
    chosen = [
        v.relevance + (FOCUS_BONUS if counts(text, wanted) else 0.0) + MATCH_WEIGHT * _share(anchor, text)
        for v, text in zip(verdicts, texts, strict=True)
    ]
    i = max(range(len(spans)), key=lambda j: (chosen[j], -j))
    v = verdicts[i]
    return Found(version, report, spans[i][0], spans[i][1], v.relevance, v.span, v.span_confidence)


# What a question counts or measures: "pilots" in "How many pilots are on strike?", "cases" in
# "How many measles cases ...", "turnout" in "What was the turnout?": the last word before the verb.
_COUNTED = re.compile(r"\bhow (?:many|much)\s+((?:[A-Za-z][\w'’-]*\s+){0,3})", re.IGNORECASE)
_MEASURED = re.compile(r"\bwhat (?:is|was|are|were|will be|has been) the ([a-z][\w-]*)", re.IGNORECASE)
_STOPS_COUNTING = (
    "is are was were be been has have had do does did will would can could should may might in on at of for to "
    "by with from after"
)
_VERBS = frozenset(_STOPS_COUNTING.split())
_IRREGULAR_VERBS = "lost won left took fell went work works live lives"
_IRREGULAR = frozenset(_IRREGULAR_VERBS.split())
_TOKEN = re.compile(r"[$£€]?\d[\d,]*(?:\.\d+)?%?|[A-Za-z][\w'’-]*")
WINDOW = 5  # words each side of a figure that say what it counts


def focus(question: str) -> set[str]:
    """What ``question`` counts or measures, lemmatised (one word), or nothing."""
    words: list[str] = []
    if found := _COUNTED.search(question):
        for word in found.group(1).split():
            if word.lower() in _VERBS or word.lower().endswith("ed") or word.lower() in _IRREGULAR:
                break
            if not word[0].isupper():
                words.append(word)
    elif found := _MEASURED.search(question):
        words.append(found.group(1))
    return content_words(words[-1]) if words else set()


def counts(text: str, wanted: set[str]) -> bool:
    """Whether ``text`` gives a figure of ``wanted``: the word right after the figure ("1,100
    pilots", "302 confirmed cases") or shortly before it ("Final turnout was 58.4%")."""
    if not wanted:
        return False
    tokens = _TOKEN.findall(text)
    for i, token in enumerate(tokens):
        if figures(token):
            near = tokens[i + 1 : i + 3]
            for before in reversed(tokens[max(0, i - 6) : i]):
                if figures(before):
                    break
                near.append(before)
            if wanted & content_words(" ".join(near)):
                return True
    return False


def figure_context(text: str) -> set[str]:
    """The words (lemmatised) within ``WINDOW`` words of a figure in ``text``: what it counts."""
    tokens = _TOKEN.findall(text)
    out: set[str] = set()
    for i, token in enumerate(tokens):
        if figures(token):
            out |= content_words(" ".join(tokens[max(0, i - WINDOW) : i] + tokens[i + 1 : i + 1 + WINDOW]))
    return {w for w in out if not figures(w)}


def _words(text: str) -> frozenset[str]:
    """The content words of a sentence, figures left out (they are what may differ)."""
    return frozenset(w for w in content_words(text) if not figures(w))


def _share(anchor: frozenset[str], text: str) -> float:
    """The share of the ``anchor`` sentence's words that ``text`` holds."""
    return len(anchor & _words(text)) / len(anchor) if anchor else 0.0


def _same_quantity(a: Found, b: Found, wanted: set[str]) -> bool:
    """Whether two sentences' figures count the same thing ("2,300 workers", "1,800 workers"),
    not "1,100 pilots" and "1,400 cancelled flights": both give a figure of what the question
    counts, or the words about their figures meet (a figure with no words about it may be)."""
    if counts(a.text, wanted) and counts(b.text, wanted):
        return True
    ours, theirs = figure_context(a.text), figure_context(b.text)
    return not ours or not theirs or bool(ours & theirs)


def _lead(found: list[Found], asked: TimeAsked, mine: Version) -> tuple[Found, str]:
    """The version the question asks for (of one day: the answer's own, then the most relevant),
    and a note when it asked for a period no report is dated in."""
    dated = sorted(
        (f for f in found if f.date), key=lambda f: (f.date or "", f.version is mine, f.relevance), reverse=True
    )
    if not dated:
        return found[0], ""
    if asked.want == "period" and asked.period is not None:
        inside = [f for f in dated if asked.period.holds(f.date)]
        if inside:
            return inside[0], ""
        return dated[0], f"No report of this story is dated {asked.period.describe()}; the newest:"
    if asked.want == "earliest":
        return dated[-1], ""
    if asked.want == "before":
        older = [f for f in dated if (f.date or "") < (dated[0].date or "")]
        return (older[0] if older else dated[0]), ""
    return dated[0], ""


def _compose(draft: Draft, lead: Found, shown: list[Found], note: str) -> Draft:
    same_day = [f for f in shown if f.date == lead.date]
    rest = sorted((f for f in shown if f.date != lead.date), key=lambda f: f.date or "", reverse=True)
    rest = rest[: max(0, MAX_SHOWN - len(same_day))]
    lines: list[str] = [note] if note else []
    sentences: list[AnswerSentence] = []
    citations: list[Citation] = []

    def cite(f: Found, role: str) -> str:
        n = len(citations) + 1
        citations.append(
            Citation(n, f.facts.id, f.facts.title, f.facts.source, f.facts.date, f.start, f.end, f.text, 1.0)
        )
        sentences.append(AnswerSentence(f.text, (n,), 1.0, True, dated=f.date, role=role))
        return f"{f.text} [{n}]"

    if same_day:
        lines.append(f"Sources differ on {news_date(lead.date)}:")
        for f in (lead, *same_day):
            lines.append(f"{f.facts.site}: {cite(f, 'lead' if f is lead else 'differs')}")
    else:
        lines.append(f"{news_date(lead.date)}: {cite(lead, 'lead')}")
    for f in rest:
        when = "Earlier" if (f.date or "") < (lead.date or "") else "Later"
        lines.append(f"{when}, {news_date(f.date)}: {cite(f, when.lower())}")
    return Draft(
        text="\n".join(lines),
        answerable=True,
        sentences=tuple(sentences),
        citations=tuple(citations),
        # When sources differ there is no one answer phrase to put first.
        answer_span=None if same_day else _span(draft, lead),
    )


def _span(draft: Draft, lead: Found) -> AnswerSpan | None:
    """The answer phrase in the lead: the draft's when the lead is the sentence it marked, else
    the reader's, when it is confident."""
    old = draft.answer_span
    if old is not None and old.doc_id == lead.facts.id and lead.start <= old.start and old.end <= lead.end:
        return replace(old, citation=1)
    if lead.span is None or lead.span_confidence < SPAN_MIN or lead.relevance < SPAN_RELEVANCE_MIN:
        return None
    a, b = lead.span
    return AnswerSpan(1, lead.facts.id, lead.start + a, lead.start + b, lead.text[a:b], old.kind if old else "phrase")


def timeline(
    query: str,
    versions: Sequence[Version],
    score: Score,
    filters: Filters | None = None,
    minimum: float = VERSION_MIN,
) -> Timeline:
    """One dated, cited sentence per version of the story that speaks to ``query`` (its best
    sentence scores at least ``minimum``), oldest to newest, with the figures that changed since
    the version before it; the versions that say nothing on it are named in ``silent``."""
    read = [f for f in (_best_sentence(v, query, score) for v in versions if _allowed(v.report, filters)) if f]
    found = sorted(
        (f for f in read if f.relevance >= minimum), key=lambda f: (f.date is None, f.date or "", f.facts.id)
    )
    silent = tuple(f"{f.facts.site} ({news_date(f.date)})" for f in read if f.relevance < minimum)
    entries = []
    for n, f in enumerate(found, start=1):
        # Changed since the reports of the last earlier day (two outlets of one day both changed).
        earlier = [e for e in found if e.date and f.date and e.date < f.date]
        before = (
            frozenset().union(*(figures(e.text) for e in earlier if e.date == earlier[-1].date)) if earlier else None
        )
        changed: tuple[tuple[int, int], ...] = ()
        if before is not None:
            changed = tuple(
                (m.start(), m.end())
                for m in _FIGURE.finditer(f.text)
                if m.group(0).split()[0].replace(",", "").strip("$£€%").rstrip(".") not in before
            )
        citation = Citation(n, f.facts.id, f.facts.title, f.facts.source, f.facts.date, f.start, f.end, f.text, 1.0)
        also = tuple(c.site for c in f.version.copies)
        entries.append(TimelineEntry(citation, f.facts.site, also, changed, f.relevance))
    return Timeline(query, tuple(entries), silent if entries else ())
