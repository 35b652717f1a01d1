"""What is asked: the question checked (one rule for every entry point), its content words, and
the filters (dates, documents, sources) that restrict every search side before ranking."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

MODES = ("dense", "keyword", "hybrid")


# Words that carry no topic. A question is mostly these ("how many ... did the ..."); kept in
# an OR query they match nearly every chunk and make BM25 slow without changing its ranking.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "s",
        "t",
    ]
)


class SearchError(ValueError):
    """A search was asked for with a bad value; the message names it and what is allowed."""


@dataclass(frozen=True)
class Filters:
    since: str | None = None  # inclusive ISO dates; documents without a date are left out
    until: str | None = None
    doc_ids: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # substrings of a document's source or path

    @property
    def active(self) -> bool:
        return bool(self.since or self.until or self.doc_ids or self.sources)

    @classmethod
    def parse(
        cls,
        since: str | None = None,
        until: str | None = None,
        doc_ids: Sequence[str] = (),
        sources: Sequence[str] = (),
    ) -> Filters:
        """Filters from what a person typed: dates as YYYY[-MM[-DD]], empty meaning none."""
        return cls(
            since=parse_date(since or None, "since"),
            until=parse_date(until or None, "until", end=True),
            doc_ids=tuple(doc_ids),
            sources=tuple(sources),
        )


def parse_date(value: str | None, name: str, end: bool = False) -> str | None:
    """``YYYY-MM-DD``, ``YYYY-MM`` or ``YYYY``; a partial date means its first (or, with
    ``end``, last) day, so ``--until 2021`` includes all of 2021."""
    if value is None:
        return None
    text = value.strip()
    match = re.fullmatch(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?", text)
    try:
        if not match:
            raise ValueError
        year, month, day = int(match[1]), match[2], match[3]
        if month is None:
            return date(year, 12 if end else 1, 31 if end else 1).isoformat()
        if day is None:
            first = date(year, int(month), 1)
            if not end:
                return first.isoformat()
            following = date(year + (first.month == 12), first.month % 12 + 1, 1)
            return date.fromordinal(following.toordinal() - 1).isoformat()
        return date(year, int(month), int(day)).isoformat()
    except ValueError:
        raise SearchError(f"{name} {value!r} is not a date; use YYYY-MM-DD, YYYY-MM or YYYY") from None


def content_words(question: str) -> list[str]:
    """The question's words without stopwords (all of them if nothing else is left), in order."""
    words = list(dict.fromkeys(re.findall(r"\w+", question.lower())))
    return [w for w in words if w not in STOPWORDS] or words


def keyword_query(question: str) -> str:
    """An FTS5 query: the question's content words, each quoted, OR-ed together."""
    return any_of(content_words(question))


def any_of(words: Sequence[str]) -> str:
    """An FTS5 query matching chunks that hold any of ``words`` (each quoted, so none is syntax)."""
    return " OR ".join(f'"{w}"' for w in words)


def check_question(question: str, limit: int) -> None:
    """One rule for every entry point: a question is non-empty text of at most ``limit`` characters."""
    if not isinstance(question, str) or not question.strip():
        raise SearchError("the question is empty; type a question, for example: who won?")
    if len(question) > limit:
        raise SearchError(
            f"the question is {len(question):,} characters long; the limit is {limit:,} (setting max_question_chars)"
        )
    check_unicode(question, "the question")


def check_unicode(text: str, what: str) -> None:
    """Text must be valid Unicode: a lone surrogate (JSON's "\\ud800", or a byte that is not
    UTF-8 in a command-line argument) can be neither stored, encoded nor sent back."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SearchError(
            f"{what} holds a character that is not valid Unicode at position {exc.start} "
            f"({text[exc.start]!a}); type it again as plain UTF-8 text"
        ) from None


def check_k(k: int, limit: int) -> None:
    """One rule for every entry point: k is a whole number from 1 to ``limit``; 0 is not "the default"."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= limit:
        raise SearchError(f"k={k!r} must be a whole number from 1 to {limit} (setting max_k)")


def default_cap(k: int) -> int:
    """At most half the slots (rounded up) per document: one long article cannot fill them all."""
    return max(1, math.ceil(k / 2))


def filter_sql(filters: Filters) -> tuple[str, list[str]]:
    clauses: list[str] = []
    params: list[str] = []
    if filters.since:
        clauses.append("d.date >= ?")
        params.append(filters.since)
    if filters.until:
        clauses.append("d.date <= ?")
        params.append(filters.until)
    if filters.doc_ids:
        clauses.append(f"d.id IN ({','.join('?' * len(filters.doc_ids))})")
        params.extend(filters.doc_ids)
    if filters.sources:
        clauses.append(
            "(" + " OR ".join("instr(d.source, ?) > 0 OR instr(d.path, ?) > 0" for _ in filters.sources) + ")"
        )
        for source in filters.sources:
            params.extend([source, source])
    return " AND ".join(clauses), params
