"""The parts of one open index, built on first use and tied together, so that the ``RAG``
facade only composes them: the encoder (or a Ray cluster for documents), the search backend
with what keeps it in step with the store (the FAISS file and tantivy, or a Milvus
collection), the retriever over that backend, the indexer, and the one-writer lock.

Nothing here loads at construction: the model, FAISS and Milvus load when first asked for, so
opening an index for ``rag list`` costs an SQLite connection.
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from rag.config import Config, IndexSettings
from rag.ingest.indexer import Indexer
from rag.search.backend import SearchBackend
from rag.search.local import LocalSearch
from rag.search.query import SearchError
from rag.search.reranking import Reranker
from rag.search.retrieval import Retriever
from rag.storage.store import Store
from rag.storage.vector_file import VectorFile

if TYPE_CHECKING:  # imported lazily at run time: FAISS, torch and pymilvus are slow to import
    import numpy.typing as npt

    from embeddings import Encoder, VectorIndex
    from embeddings.ray_encoder import RayEncoder
    from rag.search.milvus import MilvusSearch
    from rag.search.sync import SearchSync
    from rag.storage.keyword_index import KeywordIndex

log = logging.getLogger("rag")

STORE_FILE = "store.sqlite"
VECTORS_FILE = "vectors.faiss"
LOCK_FILE = "write.lock"
UPLOADS = "uploads"  # files uploaded through the web chat, kept so reindexing sees them


class IndexParts:
    """What one ``RAG`` handle searches and writes through. Not shared between handles, except
    the loaded model (``encoder_source``), which a fork borrows from its parent."""

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
        # The search backend: as asked, else as the index was last written with.
        self.backend = config.backend or store.meta().get("backend", "local")
        self._encoder: Encoder | None = None
        self._encoder_source = encoder_source
        self._ray: RayEncoder | None = None
        self._vector_file: VectorFile | None = None
        self._keywords: KeywordIndex | None = None
        self._milvus: MilvusSearch | None = None
        self._sync: SearchSync | None = None
        self._retriever: Retriever | None = None

    def record_backend(self) -> None:
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

    def close(self) -> None:
        if self._retriever is not None:
            self._retriever.close()
        if self._ray is not None:
            self._ray.close()
        if self._milvus is not None:
            self._milvus.close()

    # --- the model --------------------------------------------------------------------------

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

    def embed(self, texts: list[str]) -> np.ndarray:
        """Document vectors, on the Ray cluster when there is one; the store learns their size."""
        vectors = (self.ray or self.encoder).encode_documents(texts)
        if self.store.meta().get("dim") != str(vectors.shape[1]):
            self.store.set_meta({"dim": vectors.shape[1]})
        return vectors

    # --- the search side --------------------------------------------------------------------

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
            if collection is None:  # only a writer names the collection (see record_backend)
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
                    self.indexer().cache(texts, vectors)
                found.update(zip(lacking, vectors, strict=True))
            if batch:
                yield np.array(batch, dtype=np.int64), np.stack([found[cid] for cid in batch])

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

    # --- writing ----------------------------------------------------------------------------

    def indexer(self) -> Indexer:
        return Indexer(
            self.store,
            self.settings,
            embed=self.embed,
            apply=lambda removed, ids, matrix: self.sync.apply(removed, ids, matrix),
            prepare=lambda: self.sync.prepare(),
            encode_group=self.config.encode_group,
            max_file_bytes=self.config.max_file_bytes,
            web=self.config.web(),
            duplicate_threshold=self.config.duplicate_threshold,
        )

    @contextmanager
    def writing(self) -> Iterator[None]:
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
