"""Find the passages that answer a question: dense + keyword retrieval, fused, filtered, diverse.

- dense: the question's embedding against the search backend's vectors (cosine similarity);
- keyword: BM25 over the backend's keyword index (see ``SearchBackend``: tantivy, or SQLite FTS5,
  + FAISS by default, ``rag.search.milvus`` for a Milvus collection);
- hybrid: both candidate lists are pooled, each candidate gets both scores (the missing one is
  computed exactly rather than assumed zero), and they are fused (see ``FUSIONS``);
- filters (date range, documents, sources) restrict both sides before ranking, not after, so
  a narrow filter still fills k slots;
- diversity: at most ``max_per_doc`` passages per document, unless nothing else is left.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.ingest import duplicates
from rag.search.backend import SearchBackend, ThreadConnections
from rag.search.query import MODES, Filters, SearchError, check_k, check_question, default_cap
from rag.types import Copy, Passage

if TYPE_CHECKING:
    from embeddings import Encoder

RRF_K = 60
# BM25 rows fetched beyond the keyword candidates, to score dense candidates too. FTS5 scores
# every match to sort them anyway, so a deeper list costs only the rows' transfer, where a
# second MATCH restricted to some rowids would cost the whole query again (measured at 100k
# chunks: 10.1 ms for 50 rows, 10.4 for 200, 12.4 for 1000). tantivy prunes less the deeper it
# goes, but little (1M chunks: 1.5 ms p50 for 10 rows, 1.8 for 200). A chunk below this depth
# gets BM25 0; against the best match, which scales to 1, it was near 0 anyway.
KEYWORD_DEPTH = 200


@dataclass(frozen=True)
class Retrieval:
    """What a search did: the passages and how long each stage took."""

    query: str
    mode: str
    passages: tuple[Passage, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)
    # The query's embedding, when the dense side computed one, so answering need not again.
    query_vector: np.ndarray | None = field(default=None, compare=False, repr=False)


# A word in at most this share of the chunks (and at least RARE_MIN_CHUNKS) counts as rare.
RARE_SHARE = 0.01
RARE_MIN_CHUNKS = 3


class Retriever:
    """Searches one index. The keyword query runs in a worker thread, overlapping the query
    embedding and the dense search (all of them release the GIL)."""

    def __init__(
        self,
        db_path: Path,
        db: sqlite3.Connection,
        encoder: Callable[[], Encoder],
        backend: SearchBackend,
        model: str,
        fusion: str = "convex",
        dense_weight: float = 0.5,
        candidates: int = 50,
        max_k: int = 100,
        max_question_chars: int = 2000,
        reranker: Callable[[str, Sequence[str]], list[float]] | None = None,
        rerank_depth: int = 20,
        duplicate_threshold: float = 0.0,
    ) -> None:
        self.db = db
        self.backend = backend
        self.duplicate_threshold = duplicate_threshold  # 0: copies of one story are not grouped
        self.reranker = reranker
        self.rerank_depth = rerank_depth
        self.max_k = max_k
        self.max_question_chars = max_question_chars
        self._encoder = encoder
        self.model = model
        self.fusion = fusion
        self.dense_weight = dense_weight
        self.candidates = candidates
        self._readers = ThreadConnections(db_path)
        self._total: tuple[str, int] | None = None  # (store generation, chunks) for rare_words
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-keyword")

    def close(self) -> None:
        self._worker.shutdown(wait=True)

    # --- the public entry point -----------------------------------------------------------

    def search(
        self,
        question: str,
        k: int = 5,
        mode: str = "hybrid",
        filters: Filters | None = None,
        max_per_doc: int | None = None,
        neighbours: int = 0,
    ) -> Retrieval:
        filters = filters or Filters()
        self._check(question, k, mode, filters, max_per_doc, neighbours)
        timings: dict[str, float] = {}
        began = time.perf_counter()
        pool = max(self.candidates, 4 * k)
        dense: dict[int, float] = {}
        keyword: dict[int, float] = {}
        query_vector = None
        pending: Future[tuple[dict[int, float], float]] | None = None
        wants_keyword = mode in ("keyword", "hybrid")
        depth = KEYWORD_DEPTH if mode == "hybrid" else pool
        if mode in ("dense", "hybrid"):
            started = time.perf_counter()
            query_vector = self._encoder().encode_queries([question])
            timings["embed_ms"] = _ms(started)
            # The embedding uses both cores; the dense scan and the keyword query use one each,
            # so they run side by side after it.
            if wants_keyword:
                pending = self._worker.submit(self._timed_keyword, question, depth, filters)
            started = time.perf_counter()
            dense = self.backend.dense(query_vector, pool, filters)
            timings["dense_ms"] = _ms(started)
        elif wants_keyword:
            pending = self._worker.submit(self._timed_keyword, question, depth, filters)
        if pending is not None:
            keyword, timings["keyword_ms"] = pending.result()
        started = time.perf_counter()
        if mode == "hybrid":
            ranked, dense, keyword = self._fuse(query_vector, dense, keyword, pool)
        else:
            ranked = sorted((dense or keyword).items(), key=lambda item: -item[1])
        timings["fuse_ms"] = _ms(started)
        if self.reranker is not None and ranked:
            started = time.perf_counter()
            ranked = self._rerank(question, ranked)
            timings["rerank_ms"] = _ms(started)
        started = time.perf_counter()
        cap = max_per_doc if max_per_doc is not None else default_cap(k)
        passages = self._passages(ranked, k, cap, dense, keyword, neighbours)
        timings["passages_ms"] = _ms(started)
        timings["total_ms"] = _ms(began)  # wall time: the keyword query overlaps the dense side
        vector = query_vector[0] if query_vector is not None else None
        return Retrieval(question, mode, tuple(passages), timings, vector)

    def _check(
        self, question: str, k: int, mode: str, filters: Filters, max_per_doc: int | None, neighbours: int
    ) -> None:
        check_question(question, self.max_question_chars)
        check_k(k, self.max_k)
        if mode not in MODES:
            raise SearchError(f"mode {mode!r} is unknown; choose one of {', '.join(MODES)}")
        if max_per_doc is not None and max_per_doc < 1:
            raise SearchError(f"max_per_doc={max_per_doc} must be 1 or more")
        if neighbours < 0:
            raise SearchError(f"neighbours={neighbours} must be 0 or more")
        if filters.since and filters.until and filters.since > filters.until:
            raise SearchError(f"since {filters.since} is after until {filters.until}; swap them")

    def _timed_keyword(self, question: str, depth: int, filters: Filters) -> tuple[dict[int, float], float]:
        started = time.perf_counter()
        found = self.backend.keyword(question, depth, filters)
        return found, _ms(started)

    def _chunk_total(self, db: sqlite3.Connection) -> int:
        """Chunks in the index, counted once per store generation (a count at 1M chunks scans
        an index: about 20 ms, on every answer)."""
        row = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        generation = str(row[0]) if row else ""
        if self._total is None or self._total[0] != generation:
            self._total = (generation, int(db.execute("SELECT count(*) FROM chunks").fetchone()[0]))
        return self._total[1]

    def rare_words(self, words: set[str]) -> set[str]:
        """The ``words`` found in at most ``RARE_SHARE`` of the chunks (or in none).

        Names, codenames and technical terms are rare; a question whose rare words are in none
        of the passages found is likely about something the documents do not cover. The store's
        FTS5 table answers this with either search backend: it is kept with the chunks.
        """
        db = self._readers.get()
        total = self._chunk_total(db)
        cap = max(RARE_MIN_CHUNKS, int(total * RARE_SHARE))
        rare = set()
        for word in words:
            if not re.fullmatch(r"\w+", word):
                continue
            # A prefix query: the light stem ("nucleotid") matches the index's Porter stems.
            (found,) = db.execute(
                "SELECT count(*) FROM (SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT ?)",
                (f'"{word}"*', cap + 1),
            ).fetchone()
            if found <= cap:
                rare.add(word)
        return rare

    # --- fusion -------------------------------------------------------------------------

    def _fuse(
        self, query_vector: np.ndarray | None, dense: dict[int, float], scored: dict[int, float], size: int
    ) -> tuple[list[tuple[int, float]], dict[int, float], dict[int, float]]:
        """The fused ranking, and the dense and keyword scores each candidate ended up with."""
        # ``scored`` is the deep BM25 list: its head is the keyword side's candidates, the rest
        # only scores dense candidates.
        keyword = dict(itertools.islice(scored.items(), size))
        pool = set(dense) | set(keyword)
        if not pool:
            return [], dense, keyword
        w = self.dense_weight
        if self.fusion == "rrf":
            dense_rank = {cid: r for r, cid in enumerate(sorted(dense, key=lambda c: -dense[c]), start=1)}
            kw_rank = {cid: r for r, cid in enumerate(sorted(keyword, key=lambda c: -keyword[c]), start=1)}
            fused = {
                cid: (w / (RRF_K + dense_rank[cid]) if cid in dense_rank else 0.0)
                + ((1 - w) / (RRF_K + kw_rank[cid]) if cid in kw_rank else 0.0)
                for cid in pool
            }
        else:
            # Give every candidate both scores, so one found by a single side is not penalised
            # for what the other side's cut-off happened to leave out.
            if query_vector is not None:
                dense = {**self._cosines(query_vector, pool - set(dense)), **dense}
            keyword = {cid: scored[cid] for cid in pool if cid in scored}
            top = max(keyword.values(), default=0.0)
            fused = {
                cid: w * dense.get(cid, 0.0) + (1 - w) * (keyword.get(cid, 0.0) / top if top > 0 else 0.0)
                for cid in pool
            }
        return sorted(fused.items(), key=lambda item: -item[1]), dense, keyword

    def _cosines(self, query_vector: np.ndarray, ids: set[int]) -> dict[int, float]:
        """Exact cosine for chunks the dense side did not return: from the backend's vectors in
        memory where it has them, else from the embedding cache."""
        if not ids:
            return {}
        held = self.backend.vectors(sorted(ids))
        cosines = {cid: float(vector @ query_vector[0]) for cid, vector in (held or {}).items()}
        ids = ids - set(cosines)
        if not ids:
            return cosines
        marks = ",".join("?" * len(ids))
        # CROSS JOIN: chunks first, by primary key (see Store.vectors_for_chunks).
        rows = self.db.execute(
            f"SELECT c.id, e.vector FROM chunks c CROSS JOIN embeddings e ON e.model = ? AND e.text_hash = c.text_hash "
            f"WHERE c.id IN ({marks})",
            (self.model, *ids),
        ).fetchall()
        cosines.update((int(cid), float(np.frombuffer(blob, dtype=np.float32) @ query_vector[0])) for cid, blob in rows)
        return cosines

    def _rerank(self, question: str, ranked: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """The best ``rerank_depth`` candidates re-ordered by the cross-encoder's scores."""
        assert self.reranker is not None
        head = ranked[: self.rerank_depth]
        rows = self._chunk_rows([cid for cid, _ in head])
        head = [(cid, s) for cid, s in head if cid in rows]
        scores = self.reranker(question, [rows[cid][4] for cid, _ in head])
        rescored = sorted(zip((cid for cid, _ in head), scores, strict=True), key=lambda item: -item[1])
        return rescored + ranked[self.rerank_depth :]

    # --- passages -----------------------------------------------------------------------

    def _passages(
        self,
        ranked: list[tuple[int, float]],
        k: int,
        cap: int,
        dense: dict[int, float],
        keyword: dict[int, float],
        neighbours: int,
    ) -> list[Passage]:
        if not ranked:
            return []
        rows = self._chunk_rows([cid for cid, _ in ranked])
        present = [cid for cid, _ in ranked if cid in rows]
        copies = (
            duplicates.CopyFilter(self.db, self.duplicate_threshold, [rows[cid][0] for cid in present])
            if self.duplicate_threshold > 0
            else None
        )
        chosen: list[tuple[int, float]] = []
        overflow: list[tuple[int, float]] = []
        per_doc: dict[str, int] = {}
        for cid, score in ranked:
            if cid not in rows:
                continue  # removed since the candidate lists were made
            doc_id = rows[cid][0]
            if copies is not None and copies.is_copy(doc_id):
                continue  # a syndicated copy of the story another copy stands for: listed under that one
            if per_doc.get(doc_id, 0) < cap:
                per_doc[doc_id] = per_doc.get(doc_id, 0) + 1
                chosen.append((cid, score))
            else:
                overflow.append((cid, score))
            if len(chosen) == k:
                break
        # The cap spreads the slots; it never leaves a slot empty that a passage could fill.
        chosen.extend(overflow[: k - len(chosen)])
        passages = []
        for rank, (cid, score) in enumerate(chosen, start=1):
            doc_id, _, start, end, text, title, source, doc_date = rows[cid]
            passages.append(
                Passage(
                    rank=rank,
                    chunk_id=cid,
                    doc_id=doc_id,
                    title=title,
                    source=source,
                    date=doc_date,
                    start=start,
                    end=end,
                    text=text,
                    score=score,
                    dense_score=dense.get(cid),
                    keyword_score=keyword.get(cid),
                )
            )
        if neighbours:
            passages = [self._with_context(p, rows[p.chunk_id][1], neighbours) for p in passages]
        if self.duplicate_threshold > 0:
            found: dict[str, tuple[Copy, ...]] = {}
            for p in passages:
                if p.doc_id not in found:
                    found[p.doc_id] = duplicates.copies(self.db, p.doc_id, self.duplicate_threshold)
            passages = [replace(p, also=found[p.doc_id]) if found[p.doc_id] else p for p in passages]
        return passages

    def _chunk_rows(self, ids: Sequence[int]) -> dict[int, tuple[str, int, int, int, str, str, str, str | None]]:
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            "SELECT c.id, c.doc_id, c.ordinal, c.start, c.end, c.text, d.title, d.source, d.date "
            f"FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({marks})",
            tuple(ids),
        ).fetchall()
        return {int(row[0]): tuple(row[1:]) for row in rows}

    def _with_context(self, passage: Passage, ordinal: int, neighbours: int) -> Passage:
        start, end = self.db.execute(
            "SELECT min(start), max(end) FROM chunks WHERE doc_id = ? AND ordinal BETWEEN ? AND ?",
            (passage.doc_id, ordinal - neighbours, ordinal + neighbours),
        ).fetchone()
        # SQLite's substr counts characters (code points) from 1, as Python's str indexes from 0.
        (context,) = self.db.execute(
            "SELECT substr(text, ?, ?) FROM documents WHERE id = ?", (start + 1, end - start, passage.doc_id)
        ).fetchone()
        return replace(passage, context_start=start, context_end=end, context=context)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
