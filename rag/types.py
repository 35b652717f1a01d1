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

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "doc_id": self.doc_id,
            "title": self.title,
            "chunk_id": self.chunk_id,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "score": round(self.score, 6),
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

    def to_json(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "documents": self.documents,
            "chunks": self.chunks,
            "embedded": self.embedded,
            "seconds": round(self.seconds, 3),
        }
