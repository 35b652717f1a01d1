"""The ``RAG`` facade: one object that the CLI, the web chat and the evaluation all use.

    rag = RAG.open(".rag")
    summary = rag.index(["examples/articles"])
    doc = rag.document(doc_id)

An index folder holds ``store.sqlite`` (the source of truth) and ``vectors.faiss`` (derived,
rebuilt from the store whenever it is missing, damaged or out of date).
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.answering.backends import LLMBackend, backend_from_config
from rag.answering.extractive import ExtractiveAnswerer
from rag.answering.llm import LLMAnswerer
from rag.config import ANSWERERS, Config, IndexSettings
from rag.conversation import History, heuristic_query, llm_query
from rag.indexer import Indexer
from rag.retrieval import Filters, Retrieval, Retriever, SearchError
from rag.store import SCHEMA_VERSION, Store
from rag.types import Answer, Document, IndexSummary, Passage

log = logging.getLogger("rag")

STORE_FILE = "store.sqlite"
VECTORS_FILE = "vectors.faiss"
LOCK_FILE = "write.lock"

if TYPE_CHECKING:  # imported lazily at run time: FAISS and torch are slow to import
    from embeddings import Encoder, VectorIndex


class IndexMismatchError(RuntimeError):
    """The index was built with other settings than the ones asked for."""


class NoIndexError(RuntimeError):
    """There is no index in the folder a read-only command was pointed at."""


class NotFoundError(LookupError):
    """No document has the given id or path."""


class RAG:
    """An open index. Cheap to construct: the model and FAISS load on first use."""

    def __init__(self, config: Config, store: Store, settings: IndexSettings) -> None:
        self.config = config
        self.dir = config.index_dir
        self.store = store
        self.settings = settings
        self._encoder: Encoder | None = None
        self._vectors: VectorIndex | None = None
        self._vectors_dirty = False
        self._retriever: Retriever | None = None
        self._llm: LLMBackend | None = None

    @classmethod
    def open(
        cls,
        index_dir: str | Path | None = None,
        config: Config | None = None,
        *,
        create: bool = True,
        rebuild: bool = False,
    ) -> RAG:
        """Open (or with ``create``, make) the index in ``index_dir``.

        Settings in ``config`` that differ from those the index was built with are refused
        unless ``rebuild`` is set, in which case call ``rebuild()`` to apply them.
        """
        config = config or Config.load()
        if index_dir is not None:
            config = config.replace(index_dir=Path(index_dir))
        folder = config.index_dir
        if not (folder / STORE_FILE).exists():
            if not create:
                raise NoIndexError(
                    f"no index in {folder}; create one with `rag index PATH --index-dir {folder}` "
                    "or point --index-dir / RAG_INDEX_DIR at an existing one"
                )
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise NoIndexError(f"cannot create index folder {folder}: {exc.strerror}") from exc
        store = Store(folder / STORE_FILE)
        built_with = IndexSettings.from_meta(store.meta())
        wanted = config.settings(built_with)
        if built_with is None:
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
        return cls(config, store, wanted)

    def close(self) -> None:
        if self._retriever is not None:
            self._retriever.close()
        self.store.close()

    def __enter__(self) -> RAG:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- parts that load on first use ---------------------------------------------------

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            from embeddings import load_encoder

            self._encoder = load_encoder(self.settings.model, batch_size=self.config.batch_size)
        return self._encoder

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = self.encoder.encode_documents(texts)
        if self.store.meta().get("dim") != str(vectors.shape[1]):
            self.store.set_meta({"dim": vectors.shape[1]})
        return vectors

    @property
    def vectors(self) -> VectorIndex:
        """The FAISS index, loaded from disk, or rebuilt from the store if that file is stale."""
        if self._vectors is None:
            self._vectors = self._load_vectors()
        return self._vectors

    def _load_vectors(self) -> VectorIndex:
        from embeddings import IndexFileError, VectorIndex

        path = self.dir / VECTORS_FILE
        try:
            index, stamp = VectorIndex.load(path, nprobe=self.config.ivf_nprobe)
            if stamp.get("generation") == self.store.generation and stamp.get("model") == self.settings.model:
                return index
            problem = f"{path} is out of step with the store (an interrupted run?)"
        except IndexFileError as exc:
            problem = str(exc)
        if self.store.counts()["chunks"] == 0:
            return self._new_vector_index()
        log.warning("%s; rebuilding it from %s", problem, STORE_FILE)
        return self._vectors_from_store()

    def _vectors_from_store(self) -> VectorIndex:
        """A fresh FAISS index over every stored chunk; vectors come from the cache."""
        index = self._new_vector_index()
        indexer = self._indexer()
        for rows in self.store.iter_chunk_hashes():
            found, _ = indexer.vectors_for([text for _, _, text in rows])
            ids = np.array([chunk_id for chunk_id, _, _ in rows], dtype=np.int64)
            index.add(ids, np.stack([found[text_hash] for _, text_hash, _ in rows]))
        self._save_vectors(index)
        return index

    def _new_vector_index(self) -> VectorIndex:
        from embeddings import VectorIndex

        meta = self.store.meta()
        dim = int(meta["dim"]) if "dim" in meta else self.encoder.dim
        return VectorIndex(dim, self.settings.index_type, nprobe=self.config.ivf_nprobe)

    def _save_vectors(self, index: VectorIndex) -> None:
        index.save(self.dir / VECTORS_FILE, {"generation": self.store.generation, "model": self.settings.model})

    def _apply_to_vectors(self, removed: list[int], ids: list[int], matrix: np.ndarray) -> None:
        # Called right after the store committed; the FAISS index was loaded before that
        # commit (see _prepare_vectors), so it holds exactly the previous generation.
        self.vectors.remove(np.array(removed, dtype=np.int64))
        self.vectors.add(np.array(ids, dtype=np.int64), matrix)
        self._vectors_dirty = True

    def _indexer(self) -> Indexer:
        return Indexer(
            self.store,
            self.settings,
            embed=self._embed,
            apply=self._apply_to_vectors,
            prepare=lambda: self.vectors,
            encode_group=self.config.encode_group,
        )

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer at a time per index folder; FAISS is saved once, at the end."""
        with open(self.dir / LOCK_FILE, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("another process is writing to %s; waiting for it", self.dir)
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if self._vectors_dirty and self._vectors is not None:
                    self._save_vectors(self._vectors)
                    self._vectors_dirty = False

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
            self._vectors = self._vectors_from_store()
            self._vectors_dirty = False
            return summary

    def remove(self, doc_id_or_path: str) -> list[str]:
        """Remove one document by id, or every document read from a file or folder."""
        paths = dict(self.store.document_paths())
        if doc_id_or_path in paths:
            doomed = [doc_id_or_path]
        else:
            target = str(Path(doc_id_or_path).expanduser().resolve())
            doomed = [doc_id for doc_id, path in paths.items() if path == target or path.startswith(target + os.sep)]
        if not doomed:
            raise NotFoundError(
                f"no document has the id or path {doc_id_or_path!r}; `rag status` shows what is indexed"
            )
        with self._writing():
            indexer = self._indexer()
            for doc_id in doomed:
                indexer.remove_document(doc_id)
        return doomed

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
    ) -> Answer:
        """Answer ``question`` from the indexed documents, citing exact spans.

        ``history`` holds earlier (question, answer) pairs, oldest first; a follow-up question
        is rewritten for retrieval (``Answer.query`` shows what was searched).
        """
        answer: Answer | None = None
        for event in self.ask_stream(question, history, answerer, filters, mode, k):
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
    ) -> Iterator[str | Answer]:
        """Like ``ask``, but yields the answer's text as it is written, then the ``Answer``."""
        began = time.perf_counter()
        name = answerer or self.config.answerer
        if name not in ANSWERERS:
            raise SearchError(f"answerer {name!r} is unknown; choose one of {', '.join(ANSWERERS)}")
        if not isinstance(question, str) or not question.strip():
            raise SearchError("the question is empty; ask something, for example: rag ask 'who won?'")
        timings: dict[str, float] = {}
        started = time.perf_counter()
        if history and name == "llm":
            query = llm_query(question, history, self.llm.complete)
        else:
            query = heuristic_query(question, history)
        timings["rewrite_ms"] = (time.perf_counter() - started) * 1000
        retrieval = self.retrieve(query, k or self.config.answer_passages, mode, filters)
        timings.update({f"retrieval_{key}": value for key, value in retrieval.timings_ms.items()})
        started = time.perf_counter()
        if name == "llm":
            draft = None
            for piece in self.llm_answerer.stream(question, retrieval.passages):
                if isinstance(piece, str):
                    yield piece
                else:
                    draft = piece
            assert draft is not None
        else:
            # Retrieval embedded the question already, unless it searched for a rewritten one.
            vector = retrieval.query_vector if query == question else None
            draft = self.extractive.answer(question, retrieval.passages, vector)
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
        )

    @property
    def extractive(self) -> ExtractiveAnswerer:
        return ExtractiveAnswerer(lambda: self.encoder, self.config.abstain_threshold)

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
                vectors=lambda: self.vectors,
                model=self.settings.model,
                fusion=self.config.fusion,
                dense_weight=self.config.dense_weight,
                candidates=self.config.candidates,
            )
        return self._retriever

    def document(self, doc_id: str) -> Document:
        doc = self.store.get_document(doc_id)
        if doc is None:
            raise NotFoundError(f"no document with id {doc_id!r}; `rag status` shows what is indexed")
        return doc

    def status(self) -> dict[str, Any]:
        from embeddings.vector_index import read_stamp

        counts = self.store.counts()
        meta = self.store.meta()
        store_bytes = sum(p.stat().st_size for p in self.dir.glob(STORE_FILE + "*") if p.is_file())
        vectors_path = self.dir / VECTORS_FILE
        stamp = read_stamp(vectors_path)
        return {
            "index_dir": str(self.dir),
            "documents": counts["documents"],
            "chunks": counts["chunks"],
            "vectors": stamp["count"] if stamp else None,
            "vectors_up_to_date": stamp is not None and stamp.get("generation") == self.store.generation,
            "model": self.settings.model,
            "dim": int(meta["dim"]) if "dim" in meta else None,
            "index_type": self.settings.index_type,
            "chunk_tokens": self.settings.chunk_tokens,
            "chunk_overlap": self.settings.chunk_overlap,
            "cached_embeddings": counts["cached_embeddings"],
            "schema_version": SCHEMA_VERSION,
            "bytes": {
                "store": store_bytes,
                "vectors": vectors_path.stat().st_size if vectors_path.exists() else 0,
            },
        }
