"""The FAISS copy of the store's vectors: held in memory in step with the store, and saved as
``vectors.faiss`` beside it. The local search backend reads it (``search``, ``held``) and its
write side (``rag.search.sync.LocalSync``) changes and saves it.

Keeping it in step across processes (a server answering while ``rag index`` runs):
- the file's stamp names the store it was built from (``Store.store_id``; chunk ids restart in
  a new store) and the exact set of chunk ids it holds (a digest of them);
- every process brings its in-memory index in step with the store whenever the store's
  generation moved, by removing the ids the store no longer has and adding the ones it lacks
  from the embedding cache; loading the file does the same to what it loads;
- only a writer saves the file, while it holds the write lock (so nothing else can commit),
  and only after checking that its ids are exactly the store's. Readers never write.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.config import IndexSettings
from rag.storage.locks import ReadWriteLock
from rag.storage.store import Store, ids_digest

if TYPE_CHECKING:  # FAISS is slow to import: loaded with the first vector
    import numpy.typing as npt

    from embeddings import VectorIndex

log = logging.getLogger("rag")

# (chunk ids, their vectors) in batches, from the embedding cache (embedding what it lacks)
CachedVectors = Callable[[list[int]], Iterator[tuple["npt.NDArray[np.int64]", np.ndarray]]]


class VectorFile:
    """Thread-safe: many searches at once, one thread bringing the index in step at a time."""

    def __init__(
        self, path: Path, store: Store, settings: IndexSettings, nprobe: int, cached: CachedVectors,
        dim: Callable[[], int],
    ) -> None:  # fmt: skip
        self.path = path
        self.store = store
        self.settings = settings
        self.nprobe = nprobe
        self._cached = cached
        self._dim = dim  # the encoder's, when the store does not say yet
        self._index: VectorIndex | None = None
        self._synced_generation: int | None = None  # the store generation _index matches
        self._sync_lock = threading.Lock()
        self._access = ReadWriteLock()  # searches read; syncing and indexing write
        self.dirty = False  # changed since the file was saved, or the file is out of step

    @property
    def index(self) -> VectorIndex:
        """The FAISS index, holding exactly the store's chunks."""
        generation = self.store.generation
        if self._index is not None and self._synced_generation == generation:
            return self._index
        with self._sync_lock:
            if self._index is None or self._synced_generation != self.store.generation:
                self.sync()
            assert self._index is not None
            return self._index

    def sync(self, fresh: bool = False) -> None:
        """Bring the in-memory index in step with the store: load the file on first use (or
        start empty when ``fresh``), then remove what the store no longer holds and add what
        it gained. The generation is read before the ids, so a commit in between only makes
        the next call sync again."""
        generation = self.store.generation
        wanted = self.store.chunk_ids()
        index = self._new() if fresh else self._index
        source = "memory"
        if index is None:
            index, source = self._load()
        have = np.sort(index.ids())
        extra = np.setdiff1d(have, wanted, assume_unique=True)
        missing = np.setdiff1d(wanted, have, assume_unique=True)
        if source != "memory" and (extra.size or missing.size or source == "store"):
            # The file on disk is damaged, missing or stale: a writer saves a good one on its
            # way out even if it changes nothing else (readers never save).
            self.dirty = True
        if extra.size or missing.size:
            if source == "file":
                log.warning(
                    "%s was out of step with %s (%d chunks missing, %d removed ones held: an interrupted "
                    "run, or a writer still at work); brought in step from the store",
                    self.path, self.store.path.name, missing.size, extra.size,
                )  # fmt: skip
            with self._access.writing():
                index.remove(extra)
            for ids, matrix in self._cached(missing.tolist()):
                with self._access.writing():
                    index.add(ids, matrix)
        self._index = index
        self._synced_generation = generation

    def rebuilt(self) -> None:
        """After the store's chunks were all replaced (``rag index --rebuild``)."""
        with self._sync_lock:
            self.sync(fresh=True)
        self.dirty = True

    def _load(self) -> tuple[VectorIndex, str]:
        """The saved index if it is readable and was made by this model for this store, else an
        empty one; and where it came from ("file" or "store")."""
        from embeddings import IndexFileError, VectorIndex

        try:
            index, stamp = VectorIndex.load(self.path, nprobe=self.nprobe)
        except IndexFileError as exc:
            if self.path.exists() or not self.store.is_empty():
                log.warning("%s; rebuilding it from %s", exc, self.store.path.name)
            return self._new(), "store"
        if stamp.get("model") != self.settings.vectors_key or index.kind != self.settings.index_type:
            log.warning("%s was made with other settings; rebuilding it from %s", self.path, self.store.path.name)
            return self._new(), "store"
        if stamp.get("store", "") != self.store.store_id:
            # Chunk ids restart in a new store, so an old file's ids can match a new store's.
            log.warning("%s was made for another store than %s; rebuilding it", self.path, self.store.path.name)
            return self._new(), "store"
        return index, "file"

    def _new(self) -> VectorIndex:
        from embeddings import VectorIndex

        meta = self.store.meta()
        dim = int(meta["dim"]) if "dim" in meta else self._dim()
        return VectorIndex(dim, self.settings.index_type, nprobe=self.nprobe)

    # --- reading ------------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, allowed: npt.NDArray[np.int64] | None
    ) -> tuple[np.ndarray, npt.NDArray[np.int64]]:
        index = self.index
        with self._access.reading():
            return index.search(queries, k, allowed_ids=allowed)

    def held(self, ids: list[int]) -> dict[int, np.ndarray]:
        """The held vectors of ``ids`` (those it holds)."""
        index = self.index
        with self._access.reading():
            return index.vectors(np.array(ids, dtype=np.int64))

    def matches(self) -> bool:
        """Whether the file on disk holds exactly the store's chunks, for this model and store."""
        from embeddings.vector_index import read_stamp

        stamp = read_stamp(self.path)
        if stamp is None:  # nothing saved yet is in step with nothing stored yet
            return not self.path.exists() and self.store.is_empty()
        return (
            stamp.get("model") == self.settings.vectors_key
            and stamp.get("store", "") == self.store.store_id
            and stamp.get("ids") == ids_digest(self.store.chunk_ids())
        )

    # --- writing (only with the index folder's write lock held) ------------------------------

    def apply(self, removed: list[int], ids: list[int], matrix: np.ndarray) -> None:
        """Right after the store committed a change: the index was brought in step just before
        that commit (``rag.search.sync.SearchSync.prepare``), so it now differs from the store
        by exactly this change."""
        index = self.index if self._index is None else self._index
        with self._access.writing():
            index.remove(np.array(removed, dtype=np.int64))
            index.add(np.array(ids, dtype=np.int64), matrix)
        self._synced_generation = self.store.generation
        self.dirty = True

    def save(self) -> None:
        """Save the index, proven to hold exactly the store's chunks. Only called with the
        write lock held, so no other process can commit between the check and the save."""
        index = self.index
        wanted = self.store.chunk_ids()
        if not np.array_equal(np.sort(index.ids()), wanted):
            # Cannot happen while every writer holds the lock; if it does, repair, never save a gap.
            log.error("the in-memory vectors differ from %s before saving; bringing them in step", self.store.path.name)
            self.sync()
            assert self._index is not None and np.array_equal(np.sort(self._index.ids()), wanted)
            index = self._index
        stamp = {"generation": self.store.generation, "model": self.settings.vectors_key, "ids": ids_digest(wanted),
                 "store": self.store.store_id}  # fmt: skip
        index.save(self.path, stamp)
        self.dirty = False
