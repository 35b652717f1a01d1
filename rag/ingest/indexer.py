"""Incremental indexing: scan sources, skip what is unchanged, chunk, embed, store.

Work is done in groups of about ``encode_group`` chunks: one encoder call per group (so the
model can sort texts by length, as a direct ``encode`` call would), then one SQLite
transaction per group, then the in-memory FAISS index is updated. SQLite commits first, so
a crash at any point leaves the store consistent and the FAISS file merely stale, which
``RAG`` notices and repairs from the store's embedding cache on the next open.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from rag.config import IndexSettings, WebSettings
from rag.ingest import duplicates, stories
from rag.ingest.chunking import chunk_text
from rag.ingest.readers import UnreadableError
from rag.ingest.sources import (
    Root,
    failure_reason,
    file_hash,
    library_notes,
    load_documents,
    page_document,
    read_bounded,
    scan,
    with_notes,
)
from rag.ingest.web import Failure, Fetcher, Page, crawl, is_url, kind_of
from rag.storage.store import Store
from rag.types import Chunk, Document, IndexSummary, Skipped, content_hash

if TYPE_CHECKING:
    from tqdm import tqdm

T = TypeVar("T")

# Hooks into the facade, so this module needs neither the encoder nor FAISS until there is
# something to embed: an unchanged corpus costs reading and hashing its files, nothing more.
Embed = Callable[[list[str]], np.ndarray]
ApplyToVectors = Callable[[list[int], list[int], np.ndarray], None]
_NO_VECTORS = np.zeros((0, 0), dtype=np.float32)
# How a skip for the same text under another name begins: nothing failed, nothing was added.
ALREADY_INDEXED = "already indexed as"
# Set in the store's meta once every document has been linked into its story, to the version of
# the link rule that linked them: a store linked by an earlier rule is linked again, once ("2":
# undated documents are linked only as copies).
STORIES_LINKED = "stories_linked"
LINK_RULE = "2"


@dataclass
class _Pending:
    """Documents read but not yet written, with the file records to write alongside them."""

    items: list[tuple[Document, list[Chunk], bool]] = field(default_factory=list)
    # (path or URL, hash of its bytes or "" to read it again next time, ETag, Last-Modified)
    files: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)
    chunks: int = 0


@dataclass
class _Counts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    embedded: int = 0
    moved: int = 0
    copies: int = 0


class ChunkProgress:
    """A second bar under the files bar: chunks embedded, with a rate and an ETA. Its total
    grows as files are read, so it counts only work known to be waiting (the files bar
    alone sat still for minutes while one big file was embedded)."""

    def __init__(self, show: bool) -> None:
        self.show = show
        self.bar: tqdm[None] | None = None

    def queued(self, n: int) -> None:
        if not self.show or n == 0:
            return
        if self.bar is None:
            from tqdm import tqdm

            # Updated once per encoder group (hundreds of chunks), so every update is worth drawing.
            self.bar = tqdm(total=0, desc="embedding", unit="chunk", position=1, leave=False, mininterval=0, miniters=1)
        self.bar.total += n
        self.bar.refresh()

    def done(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Indexer:
    def __init__(
        self,
        store: Store,
        settings: IndexSettings,
        embed: Embed,
        apply: ApplyToVectors,
        prepare: Callable[[], object],
        encode_group: int = 512,
        max_file_bytes: int | None = None,
        web: WebSettings | None = None,
        duplicate_threshold: float = 0.0,
    ) -> None:
        self.store = store
        self.settings = settings
        self.embed = embed
        self.apply = apply
        # Called before the first write, so the FAISS index is loaded at the generation the
        # store is about to leave; loading it after a commit would count new chunks twice.
        self.prepare = prepare
        self.encode_group = encode_group
        self.max_file_bytes = max_file_bytes
        self.web = web
        self.duplicate_threshold = duplicate_threshold
        self.chunk_progress = ChunkProgress(False)

    def chunk(self, doc: Document) -> list[Chunk]:
        return chunk_text(doc.id, doc.text, self.settings.chunk_tokens, self.settings.chunk_overlap)

    def run(self, paths: Sequence[str | Path], progress: bool | None = None) -> IndexSummary:
        started = time.perf_counter()
        urls = [str(p) for p in paths if is_url(str(p))]
        found = scan([p for p in paths if not is_url(str(p))], self.max_file_bytes)
        skipped: list[Skipped] = list(found.skipped)
        counts = _Counts()
        self._sign_unsigned()
        self.store.hash_unhashed()
        self._link_unlinked(progress)
        pending = _Pending()
        seen_paths: set[str] = set(found.present)
        # Texts this run read, so an identical file later in the same run is found before it is stored.
        read_texts: dict[str, tuple[str, str]] = {}

        bar = progress_bar(found.files, "indexing", "file", progress)
        self.chunk_progress = ChunkProgress(not bar.disable)
        for path in bar:
            key = str(path)
            seen_paths.add(key)
            try:
                data = read_bounded(path, self.max_file_bytes)
            except OSError as exc:
                # Keep what was indexed from it before: an unreadable file is not a deleted one.
                skipped.append(Skipped(key, f"cannot read: {exc.strerror or exc}"))
                continue
            digest = file_hash(data)
            stored = self.store.file_hash(key)
            if stored == digest:
                counts.unchanged += len(self.store.document_ids_for_path(key))
                continue
            if stored is None and (old := self._moved_from(digest, key, found.present)) is not None:
                # The same bytes vanished from another path: a moved file keeps its documents.
                counts.moved += self.store.move_file(old, key)
                continue
            documents, problems = load_documents(path, data)
            documents = self._keep_id(key, documents)
            documents, taken = self._own_ids(key, documents)
            problems += taken
            documents, twins = self._new_texts(key, documents, read_texts)
            if twins and not documents and not problems:
                skipped.extend(twins)
                continue  # the same text under another name: nothing to add, nothing to record
            problems += twins
            skipped.extend(problems)
            kept = {doc.id for doc in documents}
            for doc in documents:
                self._consider(doc, pending, counts)
            for gone in set(self.store.document_ids_for_path(key)) - kept:
                # A record that vanished from a file that is still there (a JSONL line).
                if not any(p.path == key for p in problems):
                    self._remove(gone)
                    counts.removed += 1
            # A file with a bad part is re-read next time, so its problem is reported again.
            pending.files.append((key, digest if not problems else "", None, None))
            if pending.chunks >= self.encode_group:
                self._flush(pending, counts)
                pending = _Pending()
                bar.set_postfix(embedded=counts.embedded)
        self._flush(pending, counts)
        self.chunk_progress.close()
        bar.close()
        counts.removed += self._remove_missing(found.roots, seen_paths)
        if urls:
            skipped.extend(self._run_urls(urls, counts, progress))
        return self._summary(counts, skipped, started)

    def _run_urls(self, urls: list[str], counts: _Counts, progress: bool | None) -> list[Skipped]:
        """Fetch pages, feeds and sitemaps. A page that cannot be fetched now keeps what was
        indexed from it before, except one the server calls gone (HTTP 410), which is removed."""
        if self.web is None:
            raise RuntimeError("this indexer was made without web settings")
        skipped: list[Skipped] = []
        pending = _Pending()
        validators = {path: self.store.validators(path) for path in self._stored_urls()}
        with Fetcher(self.web) as fetcher:
            bar = progress_bar(crawl(fetcher, urls, validators), "fetching", "page", progress)
            self.chunk_progress = ChunkProgress(not bar.disable)
            for result in bar:
                if isinstance(result, Failure):
                    skipped.append(Skipped(result.url, result.reason))
                    if result.status == 410:
                        for doc_id in self.store.document_ids_for_path(result.url):
                            self._remove(doc_id)
                            counts.removed += 1
                    continue
                problem = self._consider_page(result, pending, counts)
                if problem is not None:
                    skipped.append(problem)
                pending = self._flush_if_full(pending, counts)
            self._flush(pending, counts)
            self.chunk_progress.close()
            bar.close()
        return skipped

    def _stored_urls(self) -> set[str]:
        return {path for _, path in self.store.document_paths() if is_url(path)}

    def _consider_page(self, page: Page, pending: _Pending, counts: _Counts) -> Skipped | None:
        response = page.response
        if response.body is None:  # 304 Not Modified: nothing to read, nothing to embed
            counts.unchanged += len(self.store.document_ids_for_path(page.url))
            return None
        digest = file_hash(response.body)
        if self.store.file_hash(page.url) == digest:
            counts.unchanged += len(self.store.document_ids_for_path(page.url))
            return None
        item = page.item
        item_meta = {
            "title": item.title if item else None,
            "date": item.date if item else None,
            "author": item.author if item else None,
            "feed": page.feed,
        }
        with library_notes() as notes:
            try:
                doc = page_document(page.url, response.body, kind_of(response), response.url, item_meta)
            except UnreadableError as exc:
                return Skipped(page.url, with_notes(str(exc), notes))  # the page's earlier version, if any, is kept
            except Exception as exc:  # a reader library's own failure is still one page's problem
                return Skipped(page.url, with_notes(failure_reason(exc), notes))
        stored = self.store.document_ids_for_path(page.url)
        if len(stored) == 1 and stored[0] != doc.id:
            before = self.store.get_document(stored[0])
            if before is not None and before.source == doc.source:
                doc = replace(doc, id=stored[0])  # an edited headline keeps the page's id
        for old in set(stored) - {doc.id}:
            self._remove(old)  # the page now names another canonical URL
            counts.removed += 1
        self._consider(doc, pending, counts)
        pending.files.append((page.url, digest, response.etag, response.last_modified))
        return None

    def _sign_unsigned(self) -> None:
        """Signatures for documents indexed before they existed, so they are grouped too."""
        unsigned = self.store.unsigned_documents()
        with self.store.transaction():
            for doc_id in unsigned:
                doc = self.store.get_document(doc_id)
                if doc is not None:
                    self._sign(doc)

    def _link_unlinked(self, progress: bool | None) -> None:
        """Story links for the documents of a store made before stories (schema 6) or linked by
        an earlier rule: once, then each document is linked as it is indexed."""
        if self.store.meta().get(STORIES_LINKED) == LINK_RULE:
            return
        doc_ids = [doc_id for doc_id, _ in self.store.document_paths()]
        bar = progress_bar(doc_ids, "linking stories", "doc", progress if doc_ids else False)
        for doc_id in bar:
            doc = self.store.get_document(doc_id)
            if doc is not None:
                with self.store.transaction():
                    stories.link(self.store, doc, self.settings.vectors_key)
        bar.close()
        self.store.set_meta({STORIES_LINKED: LINK_RULE})

    def _sign(self, doc: Document) -> bool:
        """Store ``doc``'s signature; True when it is a copy of another document."""
        signature = duplicates.signature(doc.text)
        self.store.put_signature(doc.id, signature, duplicates.band_hashes(signature))
        if self.duplicate_threshold <= 0:
            return False
        return bool(duplicates.copies_of(self.store.db, doc.id, self.duplicate_threshold))

    def _moved_from(self, digest: str, path: str, present: frozenset[str]) -> str | None:
        """The path an identical file was indexed from, if that file is gone (it was moved)."""
        for old in self.store.paths_with_hash(digest):
            if old != path and old not in present and not Path(old).exists():
                return old
        return None

    def _keep_id(self, path: str, documents: list[Document]) -> list[Document]:
        """A one-document file keeps its document's id when it changes, even if the id would now
        come out differently (it was moved, then edited). JSONL records name their own ids."""
        if Path(path).suffix.lower() == ".jsonl" or len(documents) != 1:
            return documents
        stored = self.store.document_ids_for_path(path)
        if len(stored) == 1 and documents[0].id != stored[0]:
            return [replace(documents[0], id=stored[0])]
        return documents

    def _new_texts(
        self, path: str, documents: list[Document], read_texts: dict[str, tuple[str, str]]
    ) -> tuple[list[Document], list[Skipped]]:
        """Leave out a new document whose text is already indexed from another file that is still
        there (the same file uploaded or copied under another name): one line says which."""
        kept: list[Document] = []
        twins: list[Skipped] = []
        for doc in documents:
            known = self.store.document_hash(doc.id) is not None
            indexed = [] if known else [(i, p) for i, p in self.store.documents_with_text(doc.text) if p != path]
            twin = next(((i, p) for i, p in indexed if Path(p).exists()), None) or read_texts.get(doc.text)
            if twin is not None and not known:
                twins.append(Skipped(path, f"{ALREADY_INDEXED} {twin[0]} ({twin[1]})"))
                continue
            read_texts.setdefault(doc.text, (doc.id, path))
            kept.append(doc)
        return kept, twins

    def _own_ids(self, path: str, documents: list[Document]) -> tuple[list[Document], list[Skipped]]:
        """Keep the documents whose ids are free or already this file's. A JSONL record (an
        upload, say) that names another file's document id must not replace that document;
        a file that no longer exists (it was moved) gives its ids up."""
        mine: list[Document] = []
        taken: list[Skipped] = []
        for doc in documents:
            owner = self.store.document_owner(doc.id)
            if owner is None or owner == path or not Path(owner).exists():
                mine.append(doc)
            else:
                taken.append(
                    Skipped(
                        path,
                        f"document id {doc.id!r} already belongs to {owner}; give this record another id, "
                        f"or remove that document first (rag remove {doc.id})",
                    )
                )
        return mine, taken

    def run_documents(self, documents: Iterable[Document], progress: bool | None = None) -> IndexSummary:
        """Add or update documents that did not come from files (a question set's articles).

        Nothing is removed: these documents have no folder to disappear from.
        """
        started = time.perf_counter()
        counts = _Counts()
        self._link_unlinked(progress)
        pending = _Pending()
        bar = progress_bar(documents, "indexing", "doc", progress)
        self.chunk_progress = ChunkProgress(not bar.disable)
        for doc in bar:
            self._consider(doc, pending, counts)
            pending = self._flush_if_full(pending, counts)
        self._flush(pending, counts)
        self.chunk_progress.close()
        bar.close()
        return self._summary(counts, [], started)

    def _consider(self, doc: Document, pending: _Pending, counts: _Counts) -> None:
        """Queue ``doc`` for writing unless the store already holds exactly it."""
        stored_hash = self.store.document_hash(doc.id)
        if stored_hash == doc.content_hash:
            counts.unchanged += 1
            return
        chunks = self.chunk(doc)
        pending.items.append((doc, chunks, stored_hash is not None))
        pending.chunks += len(chunks)

    def _flush_if_full(self, pending: _Pending, counts: _Counts) -> _Pending:
        """Write what is pending once it holds an encoder group's worth of chunks."""
        if pending.chunks < self.encode_group:
            return pending
        self._flush(pending, counts)
        return _Pending()

    def _summary(self, counts: _Counts, skipped: list[Skipped], started: float) -> IndexSummary:
        totals = self.store.counts()
        return IndexSummary(
            added=counts.added,
            updated=counts.updated,
            unchanged=counts.unchanged,
            removed=counts.removed,
            skipped=tuple(skipped),
            documents=totals["documents"],
            chunks=totals["chunks"],
            embedded=counts.embedded,
            seconds=time.perf_counter() - started,
            moved=counts.moved,
            copies=counts.copies,
        )

    def _flush(self, pending: _Pending, counts: _Counts) -> None:
        if not pending.items and not pending.files:
            return
        all_chunks = [c for _, chunks, _ in pending.items for c in chunks]
        vectors_by_hash, embedded = self.vectors_for([c.text for c in all_chunks])
        counts.embedded += embedded
        removed_ids: list[int] = []
        added: list[Chunk] = []
        self.prepare()
        with self.store.transaction():
            for doc, chunks, existed in pending.items:
                removed, stored = self.store.put_document(doc, chunks)
                removed_ids.extend(removed)
                added.extend(stored)
                counts.copies += self._sign(doc)
                if existed:
                    counts.updated += 1
                else:
                    counts.added += 1
            for path, digest, etag, last_modified in pending.files:
                self.store.set_file_hash(path, digest or None, etag, last_modified)
            # After every document of the group is stored, so links within the group are found
            # whatever order its files were read in.
            for doc, _, _ in pending.items:
                stories.link(self.store, doc, self.settings.vectors_key)
        if added or removed_ids:
            ids = [c.id for c in added if c.id is not None]
            matrix = np.stack([vectors_by_hash[content_hash(c.text)] for c in added]) if added else _NO_VECTORS
            self.apply(removed_ids, ids, matrix)

    def rebuild(self, progress: bool | None = None) -> IndexSummary:
        """Re-chunk every stored document with the current settings.

        First every new chunk's vector is put in the cache (committed batch by batch, so a
        crash keeps the model's work); then all chunks are swapped in one transaction, so a
        crash never leaves documents chunked two ways.
        """
        started = time.perf_counter()
        doc_ids = [doc_id for doc_id, _ in self.store.document_paths()]
        embedded = 0
        texts: list[str] = []
        bar = progress_bar(doc_ids, "rechunking", "doc", progress)
        self.chunk_progress = ChunkProgress(not bar.disable)
        for doc_id in bar:
            doc = self.store.get_document(doc_id)
            if doc is not None:
                texts.extend(c.text for c in self.chunk(doc))
            if len(texts) >= self.encode_group:
                embedded += self.vectors_for(texts)[1]
                texts = []
        embedded += self.vectors_for(texts)[1] if texts else 0
        self.chunk_progress.close()
        bar.close()
        with self.store.transaction():
            for doc_id in doc_ids:
                doc = self.store.get_document(doc_id)
                if doc is not None:
                    self.store.put_document(doc, self.chunk(doc))
        totals = self.store.counts()
        return IndexSummary(
            added=0,
            updated=len(doc_ids),
            unchanged=0,
            removed=0,
            skipped=(),
            documents=totals["documents"],
            chunks=totals["chunks"],
            embedded=embedded,
            seconds=time.perf_counter() - started,
        )

    def vectors_for(self, texts: list[str]) -> tuple[dict[str, np.ndarray], int]:
        """Vectors for ``texts`` by text hash, from the cache or the model (then cached).

        Returns the vectors and how many texts were actually sent to the model.
        """
        hashes = [content_hash(t) for t in texts]
        found = self.store.cached_vectors(self.settings.vectors_key, hashes)
        missing: dict[str, str] = {}
        for text_hash, text in zip(hashes, texts, strict=True):
            if text_hash not in found:
                missing.setdefault(text_hash, text)
        todo = list(missing.items())
        self.chunk_progress.queued(len(todo))
        # Cache entries are content-addressed, so committing them on their own is safe, and
        # committing group by group means a crash, even inside one huge file, keeps the
        # model's work up to the last group.
        for start in range(0, len(todo), self.encode_group):
            group = todo[start : start + self.encode_group]
            vectors = self.embed([text for _, text in group])
            self.store.put_vectors(self.settings.vectors_key, [h for h, _ in group], vectors)
            found.update(zip((h for h, _ in group), vectors, strict=True))
            self.chunk_progress.done(len(group))
        return found, len(missing)

    def cache(self, texts: list[str], vectors: np.ndarray) -> None:
        """Put vectors computed elsewhere (a repair) into the cache."""
        self.store.put_vectors(self.settings.vectors_key, [content_hash(t) for t in texts], vectors)

    def remove_document(self, doc_id: str) -> None:
        self._remove(doc_id)

    def _remove(self, doc_id: str) -> None:
        self.prepare()
        removed = self.store.delete_document(doc_id)
        if removed:
            self.apply(removed, [], _NO_VECTORS)

    def _remove_missing(self, roots: tuple[Root, ...], seen: set[str]) -> int:
        """Documents from files under a scanned folder that are no longer there."""
        folders = [root for root in roots if root.is_dir]
        if not folders:
            return 0
        removed = 0
        for doc_id, path in self.store.document_paths():
            if path not in seen and any(root.owns(path) for root in folders):
                self._remove(doc_id)  # the store forgets the file once its last document goes
                removed += 1
        return removed


def progress_bar(items: Iterable[T], desc: str, unit: str, progress: bool | None) -> tqdm[T]:
    """A tqdm bar on stderr: shown when asked, or by default when stderr is a terminal."""
    from tqdm import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    return tqdm(items, desc=desc, unit=unit, disable=not show, leave=False)
