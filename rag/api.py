"""The ``RAG`` facade: one object that the CLI, the web chat and the evaluation all use.

    rag = RAG.open(".rag")
    summary = rag.index(["examples/articles"])
    doc = rag.document(doc_id)

An index folder holds ``store.sqlite`` (the source of truth) and, derived from it,
``vectors.faiss`` and the tantivy keyword index ``keywords/`` (``rag.storage.keyword_index``). With
``backend = "milvus"`` a Milvus collection takes the place of both (``rag.search.milvus``); the
store stays the source of truth. Searches go through
``search_backend`` and writes through ``sync`` (``rag.search.sync``), one object per backend.

The facade composes the stages and holds no machinery of its own: the FAISS copy of the
vectors and how it is kept in step across processes is ``rag.storage.vector_file.VectorFile``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.answering import NOT_IN_DOCUMENTS, Draft
from rag.answering.backends import LLMBackend, backend_from_config
from rag.answering.evidence import assess
from rag.answering.extractive import ExtractiveAnswerer
from rag.answering.llm import LLMAnswerer
from rag.chat.follow_ups import History, heuristic_query, llm_query
from rag.config import ANSWERERS, Config, IndexSettings
from rag.ingest.indexer import Indexer
from rag.ingest.web import is_url
from rag.search.backend import SearchBackend
from rag.search.local import LocalSearch
from rag.search.query import Filters, SearchError, check_k, check_question, check_unicode
from rag.search.reranking import Reranker
from rag.search.retrieval import Retrieval, Retriever
from rag.storage.schema import SCHEMA_VERSION
from rag.storage.store import LIST_ORDERS, Store
from rag.storage.vector_file import VectorFile
from rag.types import Answer, Document, DocumentInfo, IndexSummary, Passage

log = logging.getLogger("rag")

STORE_FILE = "store.sqlite"
VECTORS_FILE = "vectors.faiss"
LOCK_FILE = "write.lock"
UPLOADS = "uploads"  # files uploaded through the web chat, kept so reindexing sees them

if TYPE_CHECKING:  # imported lazily at run time: FAISS and torch are slow to import
    from collections.abc import Callable

    import numpy.typing as npt

    from embeddings import Encoder, VectorIndex
    from embeddings.ray_encoder import RayEncoder
    from rag.search.milvus import MilvusSearch
    from rag.search.sync import SearchSync
    from rag.storage.keyword_index import KeywordIndex


class IndexMismatchError(RuntimeError):
    """The index was built with other settings than the ones asked for."""


class NoIndexError(RuntimeError):
    """There is no index in the folder a read-only command was pointed at."""


class NotFoundError(LookupError):
    """No document has the given id or path."""


class AmbiguousError(LookupError):
    """A reference names several documents where one was wanted."""


class RAG:
    """An open index. Cheap to construct: the model and FAISS load on first use.

    One ``RAG`` may answer from many threads at once (the web chat does). Writes go through
    one thread at a time per process and one process at a time per index (a file lock).
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
        self._encoder: Encoder | None = None
        self._encoder_source = encoder_source
        self._vector_file: VectorFile | None = None
        self._retriever: Retriever | None = None
        self._llm: LLMBackend | None = None
        self._ray: RayEncoder | None = None  # document embedding on a Ray cluster (config.ray_address)
        # The search backend: as asked, else as the index was last written with.
        self.backend = config.backend or store.meta().get("backend", "local")
        self._milvus: MilvusSearch | None = None
        self._sync: SearchSync | None = None
        self._keywords: KeywordIndex | None = None

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
            rag._record_backend()
        return rag

    def _record_backend(self) -> None:
        """Note the backend in the store, so later commands use it without being told; a Milvus
        collection gets its name here once (one per index, so indexes can share a server)."""
        meta = self.store.meta()
        values: dict[str, str] = {}
        if meta.get("backend", "local") != self.backend:
            values["backend"] = self.backend
        if self.backend == "milvus":
            if "milvus_collection" not in meta:
                values["milvus_collection"] = f"rag_{uuid.uuid4().hex[:16]}"
            if meta.get("milvus_uri") != self.milvus_uri:
                values["milvus_uri"] = self.milvus_uri
        if values:
            self.store.set_meta(values)

    def fork(self) -> RAG:
        """Another writable handle on the same index, sharing this one's loaded model.

        It has its own SQLite connection and its own vector index, so it can index (an
        upload) while this one goes on answering; this one sees the result through the
        store's generation on its next search.
        """
        return RAG(self.config, Store(self.store.path), self.settings, encoder_source=lambda: self.encoder)

    def close(self) -> None:
        if self._retriever is not None:
            self._retriever.close()
        if self._ray is not None:
            self._ray.close()
        if self._milvus is not None:
            self._milvus.close()
        self.store.close()

    def __enter__(self) -> RAG:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- parts that load on first use ---------------------------------------------------

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            if self._encoder_source is not None:
                self._encoder = self._encoder_source()
            else:
                from embeddings import load_encoder

                self._encoder = load_encoder(
                    self.settings.model, batch_size=self.config.batch_size, backend=self.settings.encoder_backend
                )
        return self._encoder

    @property
    def ray(self) -> RayEncoder | None:
        """The Ray cluster documents are embedded on, when ``ray_address`` is set."""
        if self._ray is None and self.config.ray_address:
            from embeddings.ray_encoder import RayEncoder

            self._ray = RayEncoder(
                self.config.ray_address,
                self.settings.model,
                self.settings.encoder_backend,
                batch_size=self.config.batch_size,
                workers=self.config.ray_workers,
            )
        return self._ray

    @property
    def milvus_uri(self) -> str:
        """Where the Milvus collection lives: as asked, else as last written, else a Milvus Lite
        file in the index folder."""
        return self.config.milvus_uri or self.store.meta().get("milvus_uri") or str(self.dir / "milvus.db")

    @property
    def milvus(self) -> MilvusSearch:
        """The Milvus collection searched when ``backend`` is "milvus"."""
        if self._milvus is None:
            try:
                from rag.search.milvus import MilvusSearch
            except ImportError as exc:
                raise SearchError(
                    f"backend 'milvus' needs pymilvus ({exc.name} is missing): "
                    "pip install 'rag-articles[scale]' (or pymilvus milvus-lite)"
                ) from exc
            collection = self.store.meta().get("milvus_collection")
            if collection is None:  # only a writer names the collection (see _record_backend)
                raise SearchError(
                    f"the index in {self.dir} was never written to Milvus; fill its collection from the "
                    f"cached vectors with `rag index --backend milvus --index-dir {self.dir}` (nothing is embedded)"
                )
            token = os.environ.get(self.config.milvus_token_env)
            self._milvus = MilvusSearch(self.milvus_uri, collection, token=token)
        return self._milvus

    @property
    def keywords(self) -> KeywordIndex | None:
        """The tantivy BM25 index of the local backend, unless ``keyword_index`` is "fts5"."""
        if self.backend != "local" or self.config.keyword_index != "tantivy":
            return None
        if self._keywords is None:
            from rag.storage.keyword_index import KeywordIndex

            self._keywords = KeywordIndex(self.dir, self.store.store_tag)
        return self._keywords

    @property
    def sync(self) -> SearchSync:
        """What keeps the search backend in step with the store as writes commit."""
        if self._sync is None:
            from rag.search.sync import LocalSync, MilvusSync

            if self.backend == "milvus":
                self._sync = MilvusSync(self.store, self.milvus, self.stored_vectors)
            else:
                self._sync = LocalSync(self.vector_file, self.keywords, self.store)
        return self._sync

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = (self.ray or self.encoder).encode_documents(texts)
        if self.store.meta().get("dim") != str(vectors.shape[1]):
            self.store.set_meta({"dim": vectors.shape[1]})
        return vectors

    @property
    def vector_file(self) -> VectorFile:
        """The FAISS copy of the vectors (the local backend's)."""
        if self._vector_file is None:
            self._vector_file = VectorFile(
                self.dir / VECTORS_FILE, self.store, self.settings, self.config.ivf_nprobe, self.stored_vectors,
                dim=lambda: self.encoder.dim,
            )  # fmt: skip
        return self._vector_file

    @property
    def vectors(self) -> VectorIndex:
        """The FAISS index, holding exactly the store's chunks (``rag.storage.vector_file``)."""
        return self.vector_file.index

    def stored_vectors(self, ids: list[int]) -> Iterator[tuple[npt.NDArray[np.int64], np.ndarray]]:
        """Batches of (ids, vectors) for the given chunks, from the embedding cache; any not
        cached (or damaged there) are embedded again, and cached when this handle may write."""
        for start in range(0, len(ids), 10_000):
            batch = ids[start : start + 10_000]
            found, lacking = self.store.vectors_for_chunks(self.settings.vectors_key, batch)
            lacking += [cid for cid, vector in found.items() if not np.isfinite(vector).all()]
            if lacking:
                by_id = self.store.chunk_texts(lacking)
                # A chunk a writer removed since its id was read is simply left out: the
                # generation moved too, so the next search brings this copy in step again.
                gone = set(lacking) - set(by_id)
                batch = [cid for cid in batch if cid not in gone]
                lacking = [cid for cid in lacking if cid not in gone]
            if lacking:
                log.warning("%d chunks have no usable cached vector; embedding them again", len(lacking))
                texts = [by_id[cid] for cid in lacking]
                vectors = self.encoder.encode_documents(texts)
                if not self.store.read_only:
                    self._indexer().cache(texts, vectors)
                found.update(zip(lacking, vectors, strict=True))
            if batch:
                yield np.array(batch, dtype=np.int64), np.stack([found[cid] for cid in batch])

    def _indexer(self) -> Indexer:
        return Indexer(
            self.store,
            self.settings,
            embed=self._embed,
            apply=lambda removed, ids, matrix: self.sync.apply(removed, ids, matrix),
            prepare=lambda: self.sync.prepare(),
            encode_group=self.config.encode_group,
            max_file_bytes=self.config.max_file_bytes,
            web=self.config.web(),
            duplicate_threshold=self.config.duplicate_threshold,
        )

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer at a time per index folder. The search backend hears when the lock is
        taken and before it is released (``SearchSync.begin`` / ``end``): the FAISS file is
        saved on the way out, a Milvus collection reconciled on the way in."""
        if self.store.read_only:
            raise RuntimeError("this index was opened read-only")
        with open(self.dir / LOCK_FILE, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("another process is writing to %s; waiting for it", self.dir)
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self.sync.begin()
                yield
            finally:
                self.sync.end()

    def repair_vectors(self, deep: bool = True) -> bool:
        """Save the vector file if it is out of step with the store or damaged; True if it was.

        ``deep`` reads the whole file (its checksum and every vector), where the check every
        write makes on its way out reads only the stamp. With Milvus, reconciles the collection
        with the store instead. Waits for the write lock."""
        with self._writing():
            return self.sync.repair(deep)

    # --- writing ------------------------------------------------------------------------

    def index(self, paths: Sequence[str | Path], progress: bool | None = None) -> IndexSummary:
        """Bring the index in step with ``paths``: add new, replace changed, drop deleted."""
        with self._writing():
            return self._indexer().run(paths, progress=progress)

    def index_documents(self, documents: Iterable[Document], progress: bool | None = None) -> IndexSummary:
        """Add or update documents given as objects (for example a question set's articles)."""
        with self._writing():
            return self._indexer().run_documents(documents, progress=progress)

    def rebuild(self, progress: bool | None = None) -> IndexSummary:
        """Re-chunk every stored document with the current settings and rebuild FAISS."""
        with self._writing():
            summary = self._indexer().rebuild(progress=progress)
            self.store.set_meta(self.settings.to_meta())
            self.sync.rebuilt()
            return summary

    def remove(self, ref: str) -> list[str]:
        """Remove the documents ``ref`` names (see ``resolve``): one by id or title, or every
        document read from a file or folder."""
        # Inside the lock: the documents are those of now, and a rerun after a killed removal
        # that finds nothing left still saves the vector file that run left stale.
        with self._writing():
            doomed = self.resolve(ref)
            indexer = self._indexer()
            for doc_id in doomed:
                indexer.remove_document(doc_id)
        return doomed

    def collect_garbage(self) -> dict[str, int]:
        """Drop what nothing uses: cached vectors (of removed text, or another model), uploaded
        files no document was read from, and temporary files of interrupted vector saves."""
        with self._writing():
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
        began = time.perf_counter()
        name = answerer or self.config.answerer
        if name not in ANSWERERS:
            raise SearchError(f"answerer {name!r} is unknown; choose one of {', '.join(ANSWERERS)}")
        check_question(question, self.config.max_question_chars)
        for turn, (asked, answered) in enumerate(history or [], start=1):
            check_unicode(asked, f"question {turn} of the conversation")
            check_unicode(answered, f"answer {turn} of the conversation")
        k = self.config.answer_passages if k is None else k
        check_k(k, self.config.max_k)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        if history and name == "llm":
            query = llm_query(question, history, self.llm.complete)
        else:
            query = heuristic_query(question, history)
        if len(query) > self.config.max_question_chars:
            query = question  # a follow-up glued to a long question: search the question alone
        timings["rewrite_ms"] = (time.perf_counter() - started) * 1000
        retrieval = self.retrieve(query, k, mode, filters, max_per_doc)
        timings.update({f"retrieval_{key}": value for key, value in retrieval.timings_ms.items()})
        started = time.perf_counter()
        # One gate for every answerer: the evidence is weighed before anything is written.
        # Retrieval embedded the question already, unless it searched for a rewritten one.
        evidence = assess(
            query,
            retrieval.passages,
            lambda: self.encoder,
            threshold=self.config.abstain_threshold,
            query_vector=retrieval.query_vector,
            rare_words=self.retriever.rare_words,
        )
        timings["evidence_ms"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        if not evidence.answerable:
            draft = Draft(NOT_IN_DOCUMENTS, False, (), ())
            yield draft.text
        elif name == "llm":
            written: Draft | None = None
            for piece in self.llm_answerer.stream(query, retrieval.passages):
                if isinstance(piece, str):
                    yield piece
                else:
                    written = piece
            assert written is not None  # the stream always ends with the Draft
            draft = written
        else:
            draft = ExtractiveAnswerer().answer(evidence, retrieval.passages)
            yield draft.text
        timings["answer_ms"] = (time.perf_counter() - started) * 1000
        timings["total_ms"] = (time.perf_counter() - began) * 1000
        yield Answer(
            question=question,
            query=query,
            text=draft.text,
            answerable=draft.answerable,
            sentences=draft.sentences,
            citations=draft.citations,
            passages=retrieval.passages,
            timings_ms=timings,
            answerer=name,
            prompt=draft.prompt,
            raw_output=draft.raw_output,
            answer_span=draft.answer_span,
            evidence={"score": evidence.score, **evidence.features},
        )

    def warm_up(self) -> None:
        """Load what the first question would wait for (the model, the vectors, the word lists),
        by answering a throwaway one, so a chat or a server is quick from its first question."""
        self.ask("What is this about?", answerer="extractive")

    @property
    def llm(self) -> LLMBackend:
        if self._llm is None:
            self._llm = backend_from_config(self.config)
        return self._llm

    @property
    def llm_answerer(self) -> LLMAnswerer:
        return LLMAnswerer(self.llm, lambda: self.encoder, max_tokens=self.config.llm_max_tokens)

    @property
    def retriever(self) -> Retriever:
        if self._retriever is None:
            self._retriever = Retriever(
                self.store.path,
                self.store.db,
                encoder=lambda: self.encoder,
                backend=self.search_backend,
                model=self.settings.vectors_key,
                fusion=self.config.fusion,
                dense_weight=self.config.dense_weight,
                candidates=self.config.candidates,
                duplicate_threshold=self.config.duplicate_threshold,
                max_k=self.config.max_k,
                max_question_chars=self.config.max_question_chars,
                reranker=Reranker(self.config.reranker) if self.config.reranker else None,
                rerank_depth=self.config.rerank_depth,
            )
        return self._retriever

    @property
    def search_backend(self) -> SearchBackend:
        """Where candidates come from: FAISS + tantivy (or FTS5) here, or the Milvus collection."""
        if self.backend == "milvus":
            return self.milvus
        return LocalSearch(
            self.store.path,
            self.store.db,
            self.vector_file.search,
            keyword_budget=self.config.keyword_budget,
            keywords=self.keywords,
            held=self.vector_file.held,
        )

    def resolve(self, ref: str) -> list[str]:
        """The ids of the documents ``ref`` names: a document id; a file or folder path (every
        document read from it); the URL a page was fetched from, or its canonical URL; or the
        start of one document's title, ignoring case (an exact title wins over longer ones).
        Raises NotFoundError or AmbiguousError, naming the fix."""
        if self.store.get_document(ref) is not None:
            return [ref]
        if is_url(ref.strip()):
            by_url = self.store.document_ids_for_url(ref.strip())
            if by_url:
                return by_url
        elif ref.strip():
            under = self.store.document_ids_under(str(Path(ref).expanduser().resolve()))
            if under:
                return under
            titles = self.store.titles_starting(ref.strip())
            if len(titles) == 1 or (titles and titles[0][1].casefold() == ref.strip().casefold()):
                return [titles[0][0]]
            if titles:
                shown = "; ".join(f"{title!r} ({doc_id})" for doc_id, title in titles[:5])
                raise AmbiguousError(
                    f"{ref!r} starts {'more than 5' if len(titles) > 5 else len(titles)} titles: {shown}; "
                    "give more of the title, or the id (`rag list --title TEXT` lists them)"
                )
        raise NotFoundError(
            f"no document has the id, path or title {ref!r}; `rag list` shows what is indexed "
            "(`rag list --title TEXT` to look one up)"
        )

    def document(self, ref: str) -> Document:
        """One document, by id, path of a one-document file, or unique title prefix."""
        ids = self.resolve(ref)
        if len(ids) > 1:
            raise AmbiguousError(
                f"{ref!r} holds {len(ids)} documents ({', '.join(ids[:5])}{', …' if len(ids) > 5 else ''}); "
                "name one of them by its id"
            )
        doc = self.store.get_document(ids[0])
        assert doc is not None  # resolve found it; a concurrent removal is a race not worth a message
        return doc

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
        where = self.sync.describe()
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
            "bytes": {"store": store_bytes, **self.sync.disk_bytes()},
        }
