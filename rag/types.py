"""The data contract: small frozen dataclasses that every stage passes along.

Offsets are always character offsets into ``Document.text`` (Python ``str`` indices),
so ``chunk.text == document.text[chunk.start:chunk.end]`` holds for every chunk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


def content_hash(text: str) -> str:
    """Hex SHA-256 of ``text``; the key for 'has this document or chunk changed?'."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Document:
    """One article as stored: its text is what every offset points into."""

    id: str
    source: str  # where a reader can find it: a URL when known, else the file path
    path: str  # the file it was read from (absolute); drives removal of deleted files
    title: str
    date: str | None  # ISO date (YYYY-MM-DD) when known
    text: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def content_hash(self) -> str:
        # Title and date are part of what a reader sees, so a change to them is a change.
        return content_hash(f"{self.title}\x1f{self.date or ''}\x1f{self.source}\x1f{self.text}")


@dataclass(frozen=True)
class Chunk:
    """A span of a document. ``id`` is the SQLite rowid, ``None`` until stored."""

    doc_id: str
    ordinal: int
    start: int
    end: int
    text: str
    id: int | None = None


@dataclass(frozen=True)
class Copy:
    """Another publication of a passage's article (a syndicated copy, see rag.ingest.duplicates)."""

    doc_id: str
    title: str
    source: str
    site: str  # the publisher's name where the page gave one, else the host or file name
    date: str | None
    similarity: float

    def to_json(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "title": self.title,
            "source": self.source,
            "site": self.site,
            "date": self.date,
            "similarity": round(self.similarity, 3),
        }


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with where it came from and why it ranked where it did.

    ``start``/``end`` are offsets into the document text. ``context_*`` widen the span to the
    neighbouring chunks when asked for; otherwise they equal the chunk's own span.
    """

    rank: int
    chunk_id: int
    doc_id: str
    title: str
    source: str
    date: str | None
    start: int
    end: int
    text: str
    score: float
    dense_score: float | None = None  # cosine similarity, when the dense side found it
    keyword_score: float | None = None  # BM25 (higher is better), when the keyword side found it
    context_start: int | None = None
    context_end: int | None = None
    context: str | None = None
    # The same story elsewhere: results show one copy of a syndicated article, this one.
    also: tuple[Copy, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "doc_id": self.doc_id,
            "title": self.title,
            "date": self.date,
            "source": self.source,
            "chunk_id": self.chunk_id,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "score": round(self.score, 6),
            "also_published_by": [copy.to_json() for copy in self.also],
        }


@dataclass(frozen=True)
class DocumentInfo:
    """One row of the document list: what a person needs to recognise and pick a document."""

    id: str
    title: str
    date: str | None
    source: str
    chunks: int
    indexed_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "doc_id": self.id,
            "title": self.title,
            "date": self.date,
            "source": self.source,
            "chunks": self.chunks,
            "indexed_at": self.indexed_at,
        }


@dataclass(frozen=True)
class Skipped:
    """A file that could not become a document, and why (one line)."""

    path: str
    reason: str


@dataclass(frozen=True)
class IndexSummary:
    """What one ``rag index`` run did; ``embedded`` counts chunks actually sent to the model."""

    added: int
    updated: int
    unchanged: int
    removed: int
    skipped: tuple[Skipped, ...]
    documents: int
    chunks: int
    embedded: int
    seconds: float
    moved: int = 0  # documents whose unchanged file now lives at another path; kept, not re-added
    copies: int = 0  # documents added or changed this run that are near-copies of another (rag.ingest.duplicates)

    def to_json(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "moved": self.moved,
            "copies": self.copies,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "documents": self.documents,
            "chunks": self.chunks,
            "embedded": self.embedded,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Citation:
    """An exact span of a source document that supports part of an answer.

    ``quote == document.text[start:end]`` always; ``score`` is how well the span supports the
    sentence that cites it (0 to 1).
    """

    n: int
    doc_id: str
    title: str
    source: str
    date: str | None
    start: int
    end: int
    quote: str
    score: float

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "doc_id": self.doc_id,
            "title": self.title,
            "source": self.source,
            "date": self.date,
            "start": self.start,
            "end": self.end,
            "quote": self.quote,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class AnswerSpan:
    """The answer phrase inside a cited sentence: "300,000 troops", "14.2 million euros".

    ``text == document.text[start:end]``, inside the span of citation ``citation``.
    """

    citation: int
    doc_id: str
    start: int
    end: int
    text: str
    kind: str  # what the question asked for: number, date, person, place, organisation

    def to_json(self) -> dict[str, Any]:
        return {
            "citation": self.citation,
            "doc_id": self.doc_id,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class AnswerSentence:
    """One sentence of an answer, the citations it rests on, and whether they support it."""

    text: str
    citations: tuple[int, ...]  # Citation.n values
    support: float  # best support score among its citations; 0 when uncited
    supported: bool
    bullet: str = ""  # "- " or "2. " when an LLM wrote it as the first sentence of a list item
    # When an answer gives a story's versions (rag.answering.over_time): the date of the report
    # this sentence quotes, and its part: "lead", "differs" (another outlet, the same day),
    # "earlier" or "later".
    dated: str | None = None
    role: str = ""

    @property
    def cited(self) -> bool:
        return bool(self.citations)

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "citations": list(self.citations),
            "support": round(self.support, 4),
            "supported": self.supported,
            "cited": self.cited,
            "bullet": self.bullet,
            "dated": self.dated,
            "role": self.role,
        }


@dataclass(frozen=True)
class Answer:
    """Everything that explains an answer; the CLI, the web chat and the evaluation read this."""

    question: str
    query: str  # what retrieval actually searched for (a follow-up is rewritten)
    text: str  # the answer with [n] markers
    answerable: bool
    sentences: tuple[AnswerSentence, ...]
    citations: tuple[Citation, ...]
    passages: tuple[Passage, ...]
    timings_ms: dict[str, float]
    answerer: str
    prompt: str | None = None  # the exact messages sent to an LLM, when one answered
    raw_output: str | None = None  # what the LLM wrote, before parsing
    answer_span: AnswerSpan | None = None  # the answer phrase, when one stands out
    evidence: dict[str, float] = field(default_factory=dict, compare=False)  # the gate's score and features

    def shown(self) -> str:
        """The answer text as a reader sees it: a quoted sentence's line breaks (a PDF's lines,
        "for a new\nleisure centre") read as spaces. The same length as ``text``, so every offset
        into it holds; the lines between sentences (a list, a story's dated reports) stay."""
        chars = list(self.text)
        position = 0
        for sentence in self.sentences:
            at = self.text.find(sentence.text, position)
            if at < 0:
                continue
            for i in range(at, at + len(sentence.text)):
                if chars[i] == "\n":
                    chars[i] = " "
            position = at + len(sentence.text)
        return "".join(chars)

    def marked(self, before: str, after: str) -> str:
        """The answer text (as ``shown``) with the answer phrase between ``before`` and ``after``.

        The phrase is marked where it stands in the sentence that quotes its citation; when no
        phrase was found, or it is not in the text, the text comes back unmarked.
        """
        span = self.answer_span
        shown = self.shown()
        if span is None:
            return shown
        citation = next((c for c in self.citations if c.n == span.citation), None)
        sentence = next((s for s in self.sentences if span.citation in s.citations), None)
        if citation is None or sentence is None or sentence.text != citation.quote:
            return shown
        at = self.text.find(sentence.text)
        offset = span.start - citation.start
        if at < 0 or sentence.text[offset : offset + len(span.text)] != span.text:
            return shown
        start = at + offset
        end = start + len(span.text)
        return f"{shown[:start]}{before}{shown[start:end]}{after}{shown[end:]}"

    @property
    def over_time(self) -> bool:
        """Whether the answer gives a story's versions, each dated (``AnswerSentence.dated``)."""
        return any(s.role for s in self.sentences)

    @property
    def flagged(self) -> tuple[AnswerSentence, ...]:
        """Sentences with no citation, or whose citations do not support them."""
        return tuple(s for s in self.sentences if not s.supported)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Answer:
        """The Answer that ``to_json`` wrote (a saved conversation's turn); the prompt and raw
        LLM output are not kept there."""
        keys = ("rank", "chunk_id", "doc_id", "title", "source", "date", "start", "end", "text", "score")
        passages = tuple(Passage(*(p[key] for key in keys)) for p in data["passages"])
        span = data.get("answer_span")
        return cls(
            question=data["question"],
            query=data["query"],
            text=data["answer"],
            answerable=data["answerable"],
            sentences=tuple(
                AnswerSentence(
                    s["text"],
                    tuple(s["citations"]),
                    s["support"],
                    s["supported"],
                    s.get("bullet", ""),
                    s.get("dated"),
                    s.get("role", ""),
                )
                for s in data["sentences"]
            ),
            citations=tuple(Citation(**c) for c in data["citations"]),
            passages=passages,
            timings_ms=dict(data["timings_ms"]),
            answerer=data["answerer"],
            answer_span=AnswerSpan(**span) if span else None,
            evidence=dict(data.get("evidence") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "answerable": self.answerable,
            "citations": [c.to_json() for c in self.citations],
            "passages": [p.to_json() for p in self.passages],
            "query": self.query,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "sentences": [s.to_json() for s in self.sentences],
            "answerer": self.answerer,
            "answer_span": self.answer_span.to_json() if self.answer_span else None,
            "evidence": {k: round(v, 4) for k, v in self.evidence.items()},
        }


@dataclass(frozen=True)
class TimelineEntry:
    """One report of a story in a timeline: the sentence that speaks to the query, cited, with
    the figures that changed since the report before it (offsets into the quote)."""

    citation: Citation
    site: str
    also: tuple[str, ...]  # outlets that ran a copy of this report
    changed: tuple[tuple[int, int], ...]
    relevance: float

    def to_json(self) -> dict[str, Any]:
        return {
            **self.citation.to_json(),
            "site": self.site,
            "also_published_by": list(self.also),
            "changed": [{"start": a, "end": b, "text": self.citation.quote[a:b]} for a, b in self.changed],
            "relevance": round(self.relevance, 4),
        }


@dataclass(frozen=True)
class Timeline:
    """A story's reports, oldest to newest (``rag timeline QUERY``)."""

    query: str
    entries: tuple[TimelineEntry, ...]
    silent: tuple[str, ...] = ()  # "Bay Times (Sept. 18, 2026)": reports of the story that say nothing on it

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "entries": [e.to_json() for e in self.entries], "silent": list(self.silent)}
