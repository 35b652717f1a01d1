"""BM25 over the chunks with tantivy: the keyword side of the local backend at any size.

SQLite FTS5 scores every chunk that holds a word of the question; at a million chunks a common
word matches hundreds of thousands of them and a question took 234 ms p50. tantivy skips the
matches that cannot reach the top k (block-max WAND) and answered in 3 to 8 ms p50 there
(docs/benchmarks.md, "Keyword search at a million chunks").

The store stays the source of truth, and FTS5 stays in it, in the same transactions as the
chunks. This index is derived from it, like the FAISS file, and is used only when it provably
holds the store's chunks:
- each commit carries a marker document holding the store generation it matches, so the
  marker and the changes land together (tantivy commits are atomic);
- a reader uses the index only when the marker equals the store's generation, and otherwise
  asks FTS5 (a writer between its SQLite and tantivy commits, a run killed between them, an
  index made before this existed). Readers never write;
- a writer, holding the write lock, adds each store commit's changes right after it, commits
  them at most once a second (a tantivy commit writes and syncs a segment: about 20 ms), and
  brings the index in step before its first commit and before it lets go of the lock, by
  comparing chunk ids (never reused: AUTOINCREMENT).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt
    import tantivy

    from rag.storage.store import Store

log = logging.getLogger("rag")

FOLDER = "keywords"
ANALYZER = "rag_en"
MARKER_ID = -1  # the marker document's id; chunk ids start at 1
# Writer memory, split among its threads (tantivy needs at least 15 MB per thread).
WRITER_HEAP = 64_000_000
BATCH = 5_000  # chunk texts read from the store per step when catching up
# tantivy keeps counting deleted chunks in BM25's statistics (document count, average length,
# document frequencies) until their segment is merged, so scores came to depend on what was
# removed before, not only on what is held: 1.3% of chunks removed changed the scores of 40 of
# 40 questions and the top 10 of 2 (docs/benchmarks.md, "Keyword scores after deletions"). A
# rebuild from the store adds about 0.25 s per 10,000 chunks to the write (a one-file removal:
# 1.08 s against 0.54 s at 22k chunks), so up to EXACT_UP_TO_CHUNKS every write that removed
# chunks ends with one (scores then equal a clean build's); above it, once the removed chunks
# pass REBUILD_REMOVED_SHARE of those held.
EXACT_UP_TO_CHUNKS = 50_000
REBUILD_REMOVED_SHARE = 0.05
COMMIT_EVERY_S = 1.0  # during a run; readers ask FTS5 in between, so nothing is ever missed


class KeywordIndexError(RuntimeError):
    """The tantivy folder cannot be written."""


def _analyzer() -> tantivy.TextAnalyzer:
    # Close to FTS5's 'porter unicode61 remove_diacritics 2': split on what is not a letter or
    # digit, lowercase, fold accents, stem (Snowball English, Porter's successor).
    import tantivy

    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def _schema() -> tantivy.Schema:
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("id", indexed=True, fast=True)
    # Term frequencies only: BM25 needs no positions, and they would double the folder.
    builder.add_text_field("text", tokenizer_name=ANALYZER, index_option="freq")
    builder.add_integer_field("generation", stored=True)
    return builder.build()


class KeywordIndex:
    """The tantivy index in ``<index folder>/keywords``. Thread-safe for searching."""

    def __init__(self, index_dir: Path, store_tag: int = 0) -> None:
        self.path = index_dir / FOLDER
        # The store this index is derived from (``Store.store_tag``), kept in the marker beside
        # the generation: a new store starts its generations and chunk ids again.
        self.store_tag = store_tag
        self._foreign = False  # the last commit read was made for another store
        self._removed = 0  # chunks removed since the index was last built from nothing
        self._lock = threading.Lock()
        self._index: tantivy.Index | None = None
        self._searcher: tantivy.Searcher | None = None
        self._marker: int | None = None  # the store generation the loaded searcher holds
        self._writer: tantivy.IndexWriter | None = None
        self._pending: int | None = None  # store generation of changes added but not committed
        self._committed_at = 0.0
        self._failed: str | None = None  # the last reading error logged
        self._analyzer = _analyzer()

    # --- reading --------------------------------------------------------------------------

    def search(
        self, words: Sequence[str], k: int, allowed: Iterable[int] | None, generation: int
    ) -> dict[int, float] | None:
        """BM25 scores of the best ``k`` chunks holding any of ``words``, best first; only
        chunks in ``allowed`` when it is given. None when the index does not hold the store at
        ``generation`` (the caller asks FTS5 instead)."""
        import tantivy

        loaded = self._in_step(generation)
        if loaded is None:
            return None
        searcher, schema = loaded
        terms = [
            (tantivy.Occur.Should, tantivy.Query.term_query(schema, "text", token, index_option="freq"))
            for token in dict.fromkeys(t for w in words for t in self._analyzer.analyze(w))
        ]
        if not terms:
            return {}
        query = tantivy.Query.boolean_query(terms)
        if allowed is not None:
            only_ids = list(allowed)
            if not only_ids:
                return {}
            # Scored 0, so the filter only narrows: BM25 stays the words' own.
            only = tantivy.Query.const_score_query(tantivy.Query.term_set_query(schema, "id", only_ids), 0.0)
            query = tantivy.Query.boolean_query([(tantivy.Occur.Must, only), (tantivy.Occur.Must, query)])
        # count=False lets tantivy skip matches that cannot make the top k.
        hits = searcher.search(query, limit=k, count=False).hits
        if not hits:
            return {}
        found = searcher.fast_field_values("id", [address for _, address in hits])
        return {int(cid or 0): float(score) for (score, _), cid in zip(hits, found, strict=True)}

    def _in_step(self, generation: int) -> tuple[tantivy.Searcher, tantivy.Schema] | None:
        """The searcher of the last commit and its schema, if that commit holds the store at
        ``generation``; a commit made since the last look is loaded first."""
        with self._lock:
            if self._marker != generation:
                self._reload()
            if self._marker != generation or self._searcher is None or self._index is None:
                return None
            return self._searcher, self._index.schema

    def _reload(self) -> None:
        """Load the last commit (another process may have made it). Leaves no searcher if the
        folder is missing or unreadable: FTS5 answers until a writer rebuilds it."""
        try:
            if self._index is None:
                self._index = self._open_existing()
                if self._index is None:
                    return
            self._index.reload()
            self._searcher = self._index.searcher()
            self._marker = self._read_marker(self._searcher)
        except (OSError, ValueError) as exc:
            if str(exc) != self._failed:  # once per problem, not once per search
                log.warning("the keyword index %s cannot be read (%s); searching SQLite FTS5 instead", self.path, exc)
                self._failed = str(exc)
            self._index = self._searcher = self._marker = None

    def _open_existing(self) -> tantivy.Index | None:
        import tantivy

        if not (self.path / "meta.json").exists():
            return None
        index = tantivy.Index.open(str(self.path))
        index.register_tokenizer(ANALYZER, self._analyzer)
        return index

    def _read_marker(self, searcher: tantivy.Searcher) -> int | None:
        import tantivy

        assert self._index is not None
        found = searcher.search(tantivy.Query.term_query(self._index.schema, "id", MARKER_ID), limit=1).hits
        if not found:
            self._foreign = False
            return None
        # [generation, store tag, chunks removed since the last build]; older markers hold fewer.
        values = searcher.doc(found[0][1]).get_all("generation")
        tag = int(values[1]) if len(values) > 1 else 0  # none before stores had ids
        self._foreign = tag != self.store_tag
        if self._writer is None or self._pending is None:  # not while this writer's own changes wait
            self._removed = int(values[2]) if len(values) > 2 else 0
        return int(values[0]) if values and not self._foreign else None

    def holds(self, generation: int) -> bool:
        """Whether the last commit holds the store at ``generation``."""
        return self._in_step(generation) is not None

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file()) if self.path.exists() else 0

    # --- writing (only with the index folder's write lock held) ------------------------------

    def catch_up(self, store: Store, fresh: bool = False) -> tuple[int, int]:
        """Make the index hold exactly the store's chunks: remove the ones the store no longer
        has and add the ones it lacks, then mark the store's generation. ``fresh`` starts from
        nothing. Returns (added, removed)."""
        generation = store.generation
        if not fresh and self._pending == generation:
            return 0, 0  # in step, with changes waiting for the next commit
        self.flush()
        if not fresh and self.holds(generation):
            return 0, 0
        if self._foreign:  # its chunk ids may match this store's and still mean other texts
            log.warning("the keyword index %s was made for another store; rebuilding it", self.path)
            fresh = True
        writer = self._writer_open()
        wanted = store.chunk_ids()
        have = np.empty(0, dtype=np.int64) if fresh else self.held_ids()
        extra = np.setdiff1d(have, wanted, assume_unique=True)
        missing = np.setdiff1d(wanted, have, assume_unique=True)
        if not have.size and missing.size and not fresh:
            log.info("building the keyword index %s from %d chunks", self.path, missing.size)
        elif (extra.size or missing.size) and not fresh:
            log.warning(
                "the keyword index %s was out of step with %s (%d chunks missing, %d removed ones held: an "
                "interrupted run); brought in step", self.path, store.path.name, missing.size, extra.size,
            )  # fmt: skip
        if fresh:
            writer.delete_all_documents()
        self._removed = 0 if fresh else self._removed + int(extra.size)
        for cid in extra.tolist():
            writer.delete_documents_by_term("id", cid)
        for start in range(0, missing.size, BATCH):
            texts = store.chunk_texts(missing[start : start + BATCH].tolist())
            self._add(writer, texts.items())
        self._commit(writer, generation)
        return int(missing.size), int(extra.size)

    def apply(self, removed: list[int], texts: dict[int, str], generation: int) -> None:
        """Right after a store commit at ``generation`` that removed ``removed`` and added
        ``texts`` (chunk id -> text), with the index in step before it."""
        writer = self._writer_open()
        for cid in removed:
            writer.delete_documents_by_term("id", cid)
        self._removed += len(removed)
        self._add(writer, texts.items())
        self._pending = generation
        if time.monotonic() - self._committed_at >= COMMIT_EVERY_S:
            self._commit(writer, generation)

    def flush(self) -> None:
        """Commit the changes ``apply`` added since the last commit."""
        if self._writer is not None and self._pending is not None:
            self._commit(self._writer, self._pending)

    def deleted_share(self) -> float:
        """The share of the last commit's documents that are deleted but still counted (old
        markers included: each commit replaces the marker)."""
        import json

        try:
            segments = json.loads((self.path / "meta.json").read_text())["segments"]
        except (OSError, ValueError, KeyError):
            return 0.0
        held = sum(int(s.get("max_doc", 0)) for s in segments)
        deleted = sum(int((s.get("deletes") or {}).get("num_deleted_docs", 0)) for s in segments)
        return deleted / held if held else 0.0

    def compact(self, store: Store) -> bool:
        """Build the index again from the store when chunks were removed since the last build
        (``EXACT_UP_TO_CHUNKS``, ``REBUILD_REMOVED_SHARE``), so that scores depend on the chunks
        held, not on history. Only with the write lock held and the index in step; returns
        whether it rebuilt."""
        self.flush()
        if not self._removed:
            return False
        held = int(store.counts()["chunks"])
        if held > EXACT_UP_TO_CHUNKS and self._removed <= REBUILD_REMOVED_SHARE * held:
            return False
        self.catch_up(store, fresh=True)
        return True

    def close_writer(self) -> None:
        """Let background merges finish and release tantivy's own lock on the folder. Changes
        not flushed are dropped: the marker stays behind, and the next writer catches up."""
        writer, self._writer, self._pending = self._writer, None, None
        if writer is not None:
            writer.rollback()
            writer.wait_merging_threads()

    def _writer_open(self) -> tantivy.IndexWriter:
        if self._writer is not None:
            return self._writer
        import tantivy

        def create() -> tantivy.Index:
            self.path.mkdir(parents=True, exist_ok=True)
            return tantivy.Index(_schema(), path=str(self.path), reuse=True)

        with self._lock:
            try:
                index = create()
            except (OSError, ValueError) as exc:
                if not self.path.is_dir():
                    raise KeywordIndexError(str(exc)) from exc
                # A damaged folder is only a cache of the store: start it again.
                log.warning("the keyword index %s cannot be opened (%s); rebuilding it from the store", self.path, exc)
                shutil.rmtree(self.path, ignore_errors=True)
                try:
                    index = create()
                except (OSError, ValueError) as again:
                    raise KeywordIndexError(str(again)) from again
            index.register_tokenizer(ANALYZER, self._analyzer)
            self._index, self._searcher, self._marker = index, None, None
            self._writer = index.writer(heap_size=WRITER_HEAP, num_threads=1)
            # A run killed during a commit leaves that commit's files (a .del file, a segment)
            # unreferenced by meta.json; the next commit with the same opstamp then failed with
            # FileAlreadyExists. They belong to no commit, so they go.
            self._writer.garbage_collect_files()
        return self._writer

    def held_ids(self) -> npt.NDArray[np.int64]:
        """The chunk ids of the last commit, ascending."""
        import tantivy

        with self._lock:
            self._reload()
            searcher = self._searcher
        if searcher is None:
            return np.empty(0, dtype=np.int64)
        total = int(searcher.num_docs)
        if not total:
            return np.empty(0, dtype=np.int64)
        hits = searcher.search(tantivy.Query.all_query(), limit=total, count=False).hits
        ids = np.asarray(searcher.fast_field_values("id", [address for _, address in hits]), dtype=np.int64)
        return np.sort(ids[ids != MARKER_ID])

    @staticmethod
    def _add(writer: tantivy.IndexWriter, texts: Iterable[tuple[int, str]]) -> None:
        import tantivy

        for cid, text in texts:
            writer.add_document(tantivy.Document(id=cid, text=text))

    def _commit(self, writer: tantivy.IndexWriter, generation: int) -> None:
        import tantivy

        writer.delete_documents_by_term("id", MARKER_ID)
        writer.add_document(tantivy.Document(id=MARKER_ID, generation=[generation, self.store_tag, self._removed]))
        writer.commit()
        self._pending = None
        self._committed_at = time.monotonic()
        with self._lock:
            self._marker = None  # read again on next use
