"""Sentences of retrieved passages with exact document offsets, and support checks.

Both answerers work on ``SourceSentence``s: the extractive one picks some, the LLM one is
shown them numbered ``[passage.sentence]`` and cites them. Either way a citation is built from
a ``SourceSentence``'s own offsets, so its quote is exactly ``document.text[start:end]``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import simplemma

from rag.ingest.chunking import segments
from rag.search.query import STOPWORDS
from rag.types import Citation, Passage


@dataclass(frozen=True)
class SourceSentence:
    passage: int  # 1-based passage number, as shown to an LLM
    number: int  # 1-based sentence number within the passage
    doc_id: str
    start: int  # offsets into the document text
    end: int
    text: str
    kind: str = "sentence"  # or a structure kind (title, heading, byline, date, dateline)

    @property
    def is_structure(self) -> bool:
        return self.kind != "sentence"

    @property
    def label(self) -> str:
        return f"{self.passage}.{self.number}"


def source_sentences(passages: Sequence[Passage]) -> list[SourceSentence]:
    """Every sentence of every passage, numbered per passage, with document offsets."""
    out: list[SourceSentence] = []
    for p_number, passage in enumerate(passages, start=1):
        pieces = segments(passage.text, document_start=passage.start == 0)
        for s_number, piece in enumerate(pieces, start=1):
            out.append(
                SourceSentence(
                    passage=p_number,
                    number=s_number,
                    doc_id=passage.doc_id,
                    start=passage.start + piece.start,
                    end=passage.start + piece.end,
                    text=passage.text[piece.start : piece.end],
                    kind=piece.kind,
                )
            )
    return out


# Words that frame a question rather than say what it is about ("how much", "according to").
_FRAMING = frozenset(["much", "many", "according", "also", "still", "really", "exactly", "actually", "kind", "sort"])


@lru_cache(maxsize=200_000)
def lemma(word: str) -> str:
    """The dictionary form of a lower-case word: "kept" -> "keep", "cases" -> "case".

    simplemma (a lemmatizer whose English dictionary ships in the wheel) handles irregular
    forms that suffix stripping cannot, so "What rate did the Fed keep?" matches "kept".
    """
    return str(simplemma.lemmatize(word, lang="en")).lower()


def content_words(text: str) -> set[str]:
    """Lower-cased, lemmatised words that carry meaning (numbers included)."""
    return {lemma(w) for w in re.findall(r"\w+", text.lower()) if w not in STOPWORDS and w not in _FRAMING}


def coverage(needle: str, haystack: str) -> float:
    """Share of ``needle``'s content words that occur in ``haystack`` (0 to 1)."""
    wanted = content_words(needle)
    if not wanted:
        return 0.0
    return len(wanted & content_words(haystack)) / len(wanted)


def citation_for(n: int, sentence: SourceSentence, passage: Passage, score: float) -> Citation:
    return Citation(
        n=n,
        doc_id=sentence.doc_id,
        title=passage.title,
        source=passage.source,
        date=passage.date,
        start=sentence.start,
        end=sentence.end,
        quote=sentence.text,
        score=score,
    )
