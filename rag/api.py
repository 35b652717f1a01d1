"""The ``RAG`` facade: one object that the CLI, the web chat and the evaluation all use.

    rag = RAG.open(".rag")
    summary = rag.index(["examples/articles"])
    doc = rag.document(doc_id)

An index folder holds ``store.sqlite`` (the source of truth) and, derived from it,
``vectors.faiss`` and the tantivy keyword index ``keywords/`` (``rag.storage.keyword_index``). With
``backend = "milvus"`` a Milvus collection takes the place of both (``rag.search.milvus``); the
store stays the source of truth. Searches go through ``parts.search_backend`` and writes
through ``parts.sync`` (``rag.search.sync``), one object per backend.

The facade composes the stages and holds no machinery of its own: the parts of an open index
(model, backend, retriever, writer lock) are built in ``rag.parts``, a question is answered by
``rag.chat.turn``, and documents are looked up by ``rag.storage.lookup``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.answering.backends import LLMBackend, backend_from_config
from rag.answering.over_time import timeline
from rag.answering.reading import load_reader
from rag.chat.follow_ups import History
from rag.chat.turn import Sources, answer_turn, sentence_scorer
from rag.config import Config, IndexSettings
from rag.ingest import stories
from rag.ingest.stories import Version
from rag.parts import STORE_FILE, UPLOADS, VECTORS_FILE, IndexParts
from rag.search.query import Filters, SearchError
from rag.search.retrieval import Retrieval, Retriever
from rag.storage.lookup import AmbiguousError, NotFoundError, one_document
from rag.storage.lookup import resolve as resolve_ref
from rag.storage.schema import SCHEMA_VERSION
from rag.storage.store import LIST_ORDERS, Store
from rag.types import Answer, Document, DocumentInfo, IndexSummary, Passage, Timeline

if TYPE_CHECKING:
    from embeddings import Encoder

# Re-exported: callers catch these and name these files through the facade.
__all__ = ["RAG", "STORE_FILE", "UPLOADS", "AmbiguousError", "IndexMismatchError", "NoIndexError", "NotFoundError"]


class IndexMismatchError(RuntimeError):
    """The index was built with other settings than the ones asked for."""


class NoIndexError(RuntimeError):
    """There is no index in the folder a read-only command was pointed at."""


class RAG:
    """An open index. Cheap to construct: the model and FAISS load on first use.

    One ``RAG`` may answer from many threads at once (the web chat does). Writes go through
    one thread at a time per process and one process at a time per index (a file lock).
    ``parts`` holds what it searches and writes through (``rag.parts.IndexParts``).
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        settings: IndexSettings,
        encoder_source: Callable[[], Encoder] | None = None,
    ) -> None:
        self.config = config
        self.dir = config.index_dir
        self.store = store
        self.settings = settings
        self.parts = IndexParts(config, store, settings, encoder_source)
        self.backend = self.parts.backend
        self._llm: LLMBackend | None = None

    @classmethod
    def open(
        cls,
        index_dir: str | Path | None = None,
        config: Config | None = None,
        *,
        create: bool = True,
        rebuild: bool = False,
        read_only: bool = False,
    ) -> RAG:
        """Open (or with ``create``, make) the index in ``index_dir``.

        Settings in ``config`` that differ from those the index was built with are refused
        unless ``rebuild`` is set, in which case call ``rebuild()`` to apply them.
        ``read_only`` handles search and answer but never create, alter or save anything.
        """
        config = config or Config.load()
        if index_dir is not None:
            config = config.replace(index_dir=Path(index_dir))
        folder = config.index_dir
        if not (folder / STORE_FILE).exists():
            if not create or read_only:
                raise NoIndexError(
                    f"no index in {folder}; create one with `rag index PATH --index-dir {folder}` "
                    "or point --index-dir / RAG_INDEX_DIR at an existing one"
                )
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise NoIndexError(f"cannot create index folder {folder}: {exc.strerror}") from exc
        store = Store(folder / STORE_FILE, read_only=read_only)
        built_with = IndexSettings.from_meta(store.meta())
        wanted = config.settings(built_with)
        if built_with is None:
            if read_only:
                store.close()
                raise NoIndexError(f"the index in {folder} was never written to; add documents with `rag index PATH`")
            store.set_meta({**wanted.to_meta(), "schema_version": SCHEMA_VERSION})
        elif built_with != wanted and not rebuild:
            store.close()
            differences = "; ".join(built_with.differences(wanted))
            raise IndexMismatchError(
                f"the index in {folder} was built with {differences}. Leave those settings unset "
                f"to use it as built, or rebuild it with the new ones: "
                f"`rag index --rebuild --index-dir {folder}` plus the same options "
                "(documents stay; chunks and vectors are recomputed)"
            )
        rag = cls(config, store, wanted)
        if not read_only:
            rag.parts.record_backend()
        return rag

    def fork(self) -> RAG:
        """Another writable handle on the same index, sharing this one's loaded model.

        It has its own SQLite connection and its own vector index, so it can index (an
        upload) while this one goes on answering; this one sees the result through the
        store's generation on its next search.
        """
        return RAG(self.config, Store(self.store.path), self.settings, encoder_source=lambda: self.encoder)

    def close(self) -> None:
        self.parts.close()
        self.store.close()

    def __enter__(self) -> RAG:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def encoder(self) -> Encoder:
        """The embedding model, loaded on first use."""
        return self.parts.encoder

    @property
    def retriever(self) -> Retriever:
        return self.parts.retriever

    @property
    def llm(self) -> LLMBackend:
        if self._llm is None:
            self._llm = backend_from_config(self.config)
        return self._llm

    # --- writing ------------------------------------------------------------------------

    def index(self, paths: Sequence[str | Path], progress: bool | None = None) -> IndexSummary:
        """Bring the index in step with ``paths``: add new, replace changed, drop deleted."""
        with self.parts.writing():
            return self.parts.indexer().run(paths, progress=progress)

    def index_documents(self, documents: Iterable[Document], progress: bool | None = None) -> IndexSummary:
        """Add or update documents given as objects (for example a question set's articles)."""
        with self.parts.writing():
            return self.parts.indexer().run_documents(documents, progress=progress)

    def rebuild(self, progress: bool | None = None) -> IndexSummary:
        """Re-chunk every stored document with the current settings and rebuild FAISS."""
        with self.parts.writing():
            summary = self.parts.indexer().rebuild(progress=progress)
            self.store.set_meta(self.settings.to_meta())
            self.parts.sync.rebuilt()
            return summary

    def remove(self, ref: str) -> list[str]:
        """Remove the documents ``ref`` names (see ``resolve``): one by id or title, or every
        document read from a file or folder."""
        # Inside the lock: the documents are those of now, and a rerun after a killed removal
        # that finds nothing left still saves the vector file that run left stale.
        with self.parts.writing():
            doomed = self.resolve(ref)
            indexer = self.parts.indexer()
            for doc_id in doomed:
                indexer.remove_document(doc_id)
        return doomed

    def repair_vectors(self, deep: bool = True) -> bool:
        """Save the vector file if it is out of step with the store or damaged; True if it was.

        ``deep`` reads the whole file (its checksum and every vector), where the check every
        write makes on its way out reads only the stamp. With Milvus, reconciles the collection
        with the store instead. Waits for the write lock."""
        with self.parts.writing():
            return self.parts.sync.repair(deep)

    def collect_garbage(self) -> dict[str, int]:
        """Drop what nothing uses: cached vectors (of removed text, or another model), uploaded
        files no document was read from, and temporary files of interrupted vector saves."""
        with self.parts.writing():
            cached = self.store.collect_garbage(self.settings.vectors_key)
            used = {path for _, path in self.store.document_paths()}
            uploads = [p for p in (self.dir / UPLOADS).glob("*") if p.is_file() and str(p.resolve()) not in used]
            temporary = list(self.dir.glob(VECTORS_FILE + ".*.tmp"))
            for path in uploads + temporary:
                path.unlink(missing_ok=True)
        return {"cached_vectors": cached, "upload_files": len(uploads), "temporary_files": len(temporary)}

    # --- reading ------------------------------------------------------------------------

    def retrieve(
        self,
        question: str,
        k: int = 5,
        mode: str = "hybrid",
        filters: Filters | None = None,
        max_per_doc: int | None = None,
        neighbours: int = 0,
    ) -> Retrieval:
        """Search, returning the passages with per-stage timings."""
        if self.store.is_empty():
            raise SearchError(f"the index in {self.dir} holds no documents yet; add some with `rag index PATH`")
        return self.retriever.search(question, k, mode, filters, max_per_doc, neighbours)

    def search(
        self,
        question: str,
        k: int = 5,
        mode: str = "hybrid",
        since: str | None = None,
        until: str | None = None,
        doc_ids: Sequence[str] = (),
        sources: Sequence[str] = (),
        max_per_doc: int | None = None,
        neighbours: int = 0,
    ) -> list[Passage]:
        """The ``k`` passages that best match ``question``, best first.

        ``since``/``until`` take YYYY-MM-DD, YYYY-MM or YYYY (inclusive); ``doc_ids`` and
        ``sources`` (substrings of a source or path) restrict the documents searched.
        """
        filters = Filters.parse(since, until, doc_ids, sources)
        return list(self.retrieve(question, k, mode, filters, max_per_doc, neighbours).passages)

    def ask(
        self,
        question: str,
        history: History | None = None,
        answerer: str | None = None,
        filters: Filters | None = None,
        mode: str = "hybrid",
        k: int | None = None,
        max_per_doc: int | None = None,
    ) -> Answer:
        """Answer ``question`` from the indexed documents, citing exact spans.

        ``history`` holds earlier (question, answer) pairs, oldest first; a follow-up question
        is rewritten for retrieval (``Answer.query`` shows what was searched).
        """
        answer: Answer | None = None
        for event in self.ask_stream(question, history, answerer, filters, mode, k, max_per_doc):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None  # ask_stream always ends with the Answer
        return answer

    def ask_stream(
        self,
        question: str,
        history: History | None = None,
        answerer: str | None = None,
        filters: Filters | None = None,
        mode: str = "hybrid",
        k: int | None = None,
        max_per_doc: int | None = None,
    ) -> Iterator[str | Answer]:
        """Like ``ask``, but yields the answer's text as it is written, then the ``Answer``."""
        return answer_turn(self._sources(), question, history, answerer, filters, mode, k, max_per_doc)

    def _sources(self) -> Sources:
        """What a turn draws on from this index, each part loaded when first needed."""
        return Sources(
            self.config,
            retrieve=lambda query, k, mode, filters, cap: self.retrieve(query, k, mode, filters, cap),
            encoder=lambda: self.encoder,
            rare_words=lambda words: self.retriever.rare_words(words),
            llm=lambda: self.llm,
            reader=lambda: load_reader(self.config.reader),
            versions=self.versions,
        )

    def versions(self, doc_id: str) -> list[Version]:
        """The versions of ``doc_id``'s story, each with its syndicated copies; one version (the
        document itself) when it reports a story alone."""
        return stories.versions(self.store, doc_id, self.config.duplicate_threshold)

    def timeline(self, query: str, filters: Filters | None = None) -> Timeline:
        """The story ``query`` finds, one dated, cited sentence per version, oldest to newest;
        no entries when nothing in the index answers it."""
        answer = self.ask(query, filters=filters, answerer="extractive")
        if not answer.answerable or not answer.citations:
            return Timeline(query, ())
        score, minimum = sentence_scorer(self._sources())
        return timeline(query, self.versions(answer.citations[0].doc_id), score, filters, minimum)

    def warm_up(self) -> None:
        """Load what the first question would wait for (the model, the vectors, the word lists),
        by answering a throwaway one, so a chat or a server is quick from its first question."""
        self.ask("What is this about?", answerer="extractive")

    def resolve(self, ref: str) -> list[str]:
        """The ids of the documents ``ref`` names: an id, a path, a page's URL or the start of a
        title (``rag.storage.lookup.resolve``)."""
        return resolve_ref(self.store, ref)

    def document(self, ref: str) -> Document:
        """One document, by id, path of a one-document file, or unique title prefix."""
        return one_document(self.store, ref)

    def documents(
        self,
        filters: Filters | None = None,
        title: str | None = None,
        order: str = "date",
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[int, list[DocumentInfo]]:
        """A page of the indexed documents (date, source and title filters), and how many match."""
        if order not in LIST_ORDERS:
            raise SearchError(f"order {order!r} is not one of {', '.join(LIST_ORDERS)}")
        for name, value in (("limit", limit), ("offset", offset)):
            if value is not None and value < (1 if name == "limit" else 0):
                raise SearchError(f"{name}={value} must be {'1' if name == 'limit' else '0'} or more")
        filters = filters or Filters()
        return self.store.list_documents(
            filters.since, filters.until, filters.sources, title or None, order, limit, offset
        )

    def status(self) -> dict[str, Any]:
        counts = self.store.counts()
        meta = self.store.meta()
        store_bytes = sum(p.stat().st_size for p in self.dir.glob(STORE_FILE + "*") if p.is_file())
        where = self.parts.sync.describe()
        held = {key: where.pop(key) for key in ("vectors", "vectors_up_to_date")}
        return {
            "index_dir": str(self.dir),
            **where,
            "documents": counts["documents"],
            "chunks": counts["chunks"],
            **held,
            "model": self.settings.model,
            "encoder_backend": self.settings.encoder_backend,
            "dim": int(meta["dim"]) if "dim" in meta else None,
            "index_type": self.settings.index_type,
            "chunk_tokens": self.settings.chunk_tokens,
            "chunk_overlap": self.settings.chunk_overlap,
            "cached_embeddings": counts["cached_embeddings"],
            "schema_version": SCHEMA_VERSION,
            "bytes": {"store": store_bytes, **self.parts.sync.disk_bytes()},
        }
