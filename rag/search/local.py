"""The default search backend: FAISS for dense search, tantivy (or the store's SQLite FTS5
table) for BM25.

Filters become the set of chunk ids they allow, read from SQLite, which FAISS and tantivy
search inside (so a narrow filter still fills k slots) and FTS5 joins against. The FAISS index
and the tantivy index are kept in step with the store by ``rag.search.sync.LocalSync``; this
class only searches them. When the tantivy index is behind the store (a writer between its two
commits, a killed run, an index made before it existed), FTS5, which is always in step, answers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.search.backend import ThreadConnections
from rag.search.query import Filters, any_of, content_words, filter_sql

if TYPE_CHECKING:
    import numpy.typing as npt

    from rag.storage.keyword_index import KeywordIndex

# (query vectors, k, allowed ids or None) -> (scores, ids): the facade's FAISS search, which
# keeps the index in step with the store and guards it against concurrent changes.
DenseSearch = Callable[[np.ndarray, int, "npt.NDArray[np.int64] | None"], tuple[np.ndarray, "npt.NDArray[np.int64]"]]
# chunk ids -> the vectors the FAISS index holds for them (the facade's, under its read lock).
HeldVectors = Callable[[list[int]], dict[int, np.ndarray]]


# SQLite FTS5 scores every chunk that holds any word of the query, so its cost grows with the
# corpus: at 1M chunks one common word matches tens of thousands of chunks, and FTS5 spends 3 to
# 8 microseconds on each (96 ms p50, 339 ms p95 for whole questions). The tantivy keyword index
# (the default, rag/storage/keyword_index.py) skips what cannot reach the top instead. With a budget
# (the setting keyword_budget), words are taken rarest first while the chunks they match fit it;
# the words left out are the most common ones. That is fast, but it costs quality (hybrid hit@5
# 0.735 to 0.608 on COVID-QA at the budget's 1M-chunk equivalent), so it is off by default
# (keyword_budget = 0: exact).
# docs/benchmarks.md "Keyword search at a million chunks" has the measurements.
# Words matching at most this many chunks go in without a second count.
KEYWORD_RARE = 1_000


class LocalSearch:
    """FAISS + tantivy (or SQLite FTS5) over one index folder."""

    name = "local"

    def __init__(
        self,
        db_path: Path,
        db: sqlite3.Connection,
        dense: DenseSearch,
        keyword_budget: int = 0,
        keywords: KeywordIndex | None = None,
        held: HeldVectors | None = None,
    ) -> None:
        self.db = db  # the store's own connection, for the filters' allowed ids
        self._readers = ThreadConnections(db_path)
        self._dense_search = dense
        self.keyword_budget = keyword_budget  # 0: exact, every matching chunk scored
        self.keywords = keywords  # None: FTS5 only
        self._held = held  # None: the retriever reads vectors from the embedding cache

    def dense(self, query: np.ndarray, k: int, filters: Filters) -> dict[int, float]:
        allowed = self._allowed_ids(filters) if filters.active else None
        if allowed is not None and not allowed:
            return {}
        ids_filter = np.fromiter(allowed, dtype=np.int64) if allowed is not None else None
        scores, ids = self._dense_search(query, k, ids_filter)
        return {int(i): float(s) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0}

    def vectors(self, ids: list[int]) -> dict[int, np.ndarray] | None:
        return self._held(ids) if self._held is not None else None

    def _allowed_ids(self, filters: Filters, db: sqlite3.Connection | None = None) -> set[int]:
        where, params = filter_sql(filters)
        rows = (db or self.db).execute(
            f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE {where}", params
        )
        return {int(r[0]) for r in rows}

    def keyword(self, question: str, k: int, filters: Filters) -> dict[int, float]:
        """BM25 scores of the best ``k`` matches, best first (dicts keep insertion order)."""
        words = self._budgeted_words(question)
        if not words:
            return {}
        if self.keywords is not None:
            db = self._readers.get()
            row = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
            allowed = self._allowed_ids(filters, db) if filters.active else None
            found = self.keywords.search(words, k, allowed, int(row[0]) if row else 0)
            if found is not None:
                return found
        match = any_of(words)
        where, params = filter_sql(filters)
        rows = (
            self._readers.get()
            .execute(
                "SELECT chunks_fts.rowid, -bm25(chunks_fts) FROM chunks_fts "
                + ("JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d ON d.id = c.doc_id " if where else "")
                + "WHERE chunks_fts MATCH ? "
                + (f"AND {where} " if where else "")
                + "ORDER BY bm25(chunks_fts) LIMIT ?",
                (match, *params, k),
            )
            .fetchall()
        )
        return {int(rowid): float(score) for rowid, score in rows}

    def _budgeted_words(self, question: str) -> list[str]:
        """The question's content words that the keyword query scores: all of them when the
        chunks they match fit ``keyword_budget``, else the rarest that fit (at least one)."""
        words = content_words(question)
        if self.keyword_budget <= 0 or len(words) < 2:
            return words
        db = self._readers.get()
        # Counting stops at the cap: a common word costs at most the budget to count, far less
        # than scoring its matches would.
        found = {w: self._matches(db, w, KEYWORD_RARE) for w in words}
        kept = {w for w in words if found[w] <= KEYWORD_RARE}
        spent = sum(found[w] for w in kept)
        for word in sorted((w for w in words if w not in kept), key=lambda w: found[w]):
            left = self.keyword_budget - spent
            if left <= KEYWORD_RARE:
                break
            count = self._matches(db, word, left)
            if count <= left:
                kept.add(word)
                spent += count
        if not kept:  # every word is common: the rarest alone
            kept = {min(words, key=lambda w: found[w])}
        return [w for w in words if w in kept]

    @staticmethod
    def _matches(db: sqlite3.Connection, word: str, cap: int) -> int:
        """How many chunks hold ``word`` (as the index stems it), counted up to ``cap + 1``."""
        (count,) = db.execute(
            "SELECT count(*) FROM (SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT ?)",
            (any_of([word]), cap + 1),
        ).fetchone()
        return int(count)
