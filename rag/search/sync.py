"""The write side of the search backends: keeping what search reads in step with the store.

``rag.api.RAG`` calls these at fixed points of every write: ``begin`` when the write lock is
taken, ``prepare`` before a run's first commit, ``apply`` right after each commit, ``end``
before the lock is released. The store (SQLite) commits first, always, so a search side can only
fall behind it; each implementation knows how to catch up.

- ``LocalSync``: the FAISS file (``rag.storage.vector_file.VectorFile``: kept in step in memory across
  processes, saved atomically with the ids it holds) and the tantivy keyword index
  (``rag.storage.keyword_index``), committed with the store generation it matches, and caught up before
  a writer's first commit and before it ends.
- ``MilvusSync``: the Milvus collection, written as each commit lands and reconciled with the
  store when a writer starts, which repairs a run killed between a commit and its write.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from rag.storage.keyword_index import KeywordIndex, KeywordIndexError

if TYPE_CHECKING:
    from rag.search.milvus import MilvusSearch
    from rag.storage.store import Store
    from rag.storage.vector_file import CachedVectors, VectorFile

log = logging.getLogger("rag")
T = TypeVar("T")


class SearchSync(Protocol):
    """Keeps one search backend holding exactly the store's chunks."""

    def begin(self) -> None:
        """The write lock was just taken."""

    def prepare(self) -> None:
        """Before the first commit of a run: the search side is in step with the store."""

    def apply(self, removed: list[int], ids: list[int], matrix: np.ndarray) -> None:
        """Right after a commit that removed ``removed`` and stored ``ids`` with these vectors."""

    def end(self) -> None:
        """Before the write lock is released."""

    def repair(self, deep: bool) -> bool:
        """Inside the write lock: bring the search side in step; True if it was not."""

    def rebuilt(self) -> None:
        """Every chunk was replaced in one transaction (a rebuild): catch up at once."""

    def describe(self) -> dict[str, Any]:
        """For ``rag status``: the backend, where it is, how many vectors it holds and whether
        they are exactly the store's chunks."""

    def disk_bytes(self) -> dict[str, int]:
        """What it takes on this machine's disk, by name."""


class LocalSync:
    """FAISS: the vector file kept in step in memory and saved on the way out. tantivy (unless
    ``keyword_index`` is "fts5"): each store commit's changes added right after it, committed
    at most once a second and on the way out."""

    def __init__(self, vectors: VectorFile, keywords: KeywordIndex | None, store: Store) -> None:
        self.vectors = vectors
        self.store = store
        self.configured = keywords  # as configured, even after this writer had to leave it
        self.keywords = keywords

    def begin(self) -> None:
        pass

    def prepare(self) -> None:
        self.vectors.index  # noqa: B018  (brings the in-memory index in step)
        self._keywords(lambda keywords: keywords.catch_up(self.store))

    def apply(self, removed: list[int], ids: list[int], matrix: np.ndarray) -> None:
        self.vectors.apply(removed, ids, matrix)
        self._keywords(lambda keywords: keywords.apply(removed, self.store.chunk_texts(ids), self.store.generation))

    def end(self) -> None:
        # Saved if this run changed it, or it was found out of step (an earlier run was killed).
        try:
            if self.vectors.dirty or not self.vectors.matches():
                self.vectors.save()
        finally:

            def finish(keywords: KeywordIndex) -> None:
                keywords.flush()
                # A write that committed without apply (a removal of nothing, a rebuild
                # interrupted before rebuilt) or a run that never reached prepare.
                keywords.catch_up(self.store)
                keywords.compact(self.store)

            self._keywords(finish)
            if self.keywords is not None:
                self.keywords.close_writer()

    def repair(self, deep: bool) -> bool:
        stale = not self.vectors.matches()
        if deep and not stale and not self.store.is_empty():
            self.vectors.index  # loads and verifies the file; a damaged one marks itself for saving  # noqa: B018
        caught_up = self._keywords(lambda keywords: keywords.catch_up(self.store))
        return stale or self.vectors.dirty or caught_up not in (None, (0, 0))

    def rebuilt(self) -> None:
        self.vectors.rebuilt()
        self._keywords(lambda keywords: keywords.catch_up(self.store, fresh=True))

    def _keywords(self, action: Callable[[KeywordIndex], T]) -> T | None:
        """Run ``action`` on the tantivy index. If it cannot be written (a full disk, a file
        where its folder should be), the write goes on without it: it is only derived, searches
        ask FTS5 while its marker is behind, and a later write brings it in step."""
        if self.keywords is None:
            return None
        try:
            return action(self.keywords)
        except (KeywordIndexError, OSError, ValueError) as exc:
            log.warning(
                "the keyword index %s cannot be written (%s); keyword search uses SQLite FTS5 until a later "
                "`rag index` brings it in step", self.keywords.path, exc,
            )  # fmt: skip
            with contextlib.suppress(OSError, ValueError):
                self.keywords.close_writer()
            self.keywords = None
            return None

    def describe(self) -> dict[str, Any]:
        from embeddings.vector_index import read_stamp

        stamp = read_stamp(self.vectors.path)
        where: dict[str, Any] = {
            "backend": "local",
            "vectors": stamp["count"] if stamp else None,
            # True only when the file holds exactly the store's chunk ids (not merely as many).
            "vectors_up_to_date": stamp is not None and self.vectors.matches(),
        }
        # What answers keyword search now: tantivy only while it holds the store's chunks.
        keywords = self.configured
        in_step = keywords is not None and keywords.holds(self.store.generation)
        where["keyword_index"] = "tantivy" if in_step else "fts5" if keywords is None else "fts5 (tantivy is behind)"
        return where

    def disk_bytes(self) -> dict[str, int]:
        path = self.vectors.path
        sizes = {"vectors": path.stat().st_size if path.exists() else 0}
        if self.configured is not None:
            sizes["keywords"] = self.configured.disk_bytes()
        return sizes


class MilvusSync:
    """A Milvus collection: written as commits land, reconciled once per writing handle."""

    def __init__(self, store: Store, milvus: MilvusSearch, cached: CachedVectors) -> None:
        self.store = store
        self.milvus = milvus
        self._cached = cached  # vectors from the embedding cache, to fill rows the collection lacks
        self._reconciled = False
        self._found: tuple[int, int] | None = None  # (added, removed) by begin's reconcile

    def begin(self) -> None:
        # Every writer starts in step, even one with nothing to change (`rag index` after
        # switching backends, or after a run killed before its Milvus write).
        self._found = None if self._reconciled else self.reconcile()

    def prepare(self) -> None:
        pass  # begin reconciled already

    def apply(self, removed: list[int], ids: list[int], matrix: np.ndarray) -> None:
        self.milvus.delete(removed)
        self._upsert(ids, matrix)

    def end(self) -> None:
        pass  # nothing to save: each change went to the collection

    def repair(self, deep: bool) -> bool:
        found = self._found if self._found is not None else self.reconcile()
        return found != (0, 0)

    def rebuilt(self) -> None:
        self.reconcile()  # the swap committed in one transaction; the collection follows in one pass

    def reconcile(self) -> tuple[int, int]:
        """Make the collection hold exactly the store's chunks: delete the rows of chunks the
        store no longer has and upsert those it lacks, with vectors from the embedding cache.
        This repairs a run killed between a store commit and the Milvus write, in either
        direction; ids are never reused, so no row can stand for the wrong chunk.
        Returns (rows added, rows removed)."""
        store = self.store
        wanted = store.chunk_ids()
        have = self.milvus.ids()
        extra = np.setdiff1d(have, wanted, assume_unique=True)
        missing = np.setdiff1d(wanted, have, assume_unique=True)
        if extra.size or missing.size:
            log.warning(
                "the Milvus collection %s was out of step with %s (%d chunks missing, %d removed ones held); "
                "bringing it in step", self.milvus.collection, store.path.name, missing.size, extra.size,
            )  # fmt: skip
        self.milvus.delete(extra.tolist())
        for ids, matrix in self._cached(missing.tolist()):
            self._upsert(ids.tolist(), matrix)
        self._reconciled = True
        return int(missing.size), int(extra.size)

    def _upsert(self, ids: list[int], matrix: np.ndarray) -> None:
        from rag.search.milvus import ChunkRecord

        rows = self.store.chunk_records(ids)
        # A chunk removed since its id was read has no row: it is left out, as FAISS does.
        keep = [i for i, cid in enumerate(ids) if cid in rows]
        records = [ChunkRecord(ids[i], *rows[ids[i]]) for i in keep]
        self.milvus.upsert(records, matrix[keep] if len(keep) != len(ids) else matrix)

    def describe(self) -> dict[str, Any]:
        held = self.milvus.ids()
        return {
            **self.milvus.describe(),
            "milvus_version": self.milvus.version,
            "vectors": len(held),
            # True only when the collection holds exactly the store's chunk ids.
            "vectors_up_to_date": bool(np.array_equal(held, self.store.chunk_ids())),
        }

    def disk_bytes(self) -> dict[str, int]:
        if not self.milvus.is_lite_file:
            return {}  # a server's disk is its own
        from pathlib import Path

        folder = Path(self.milvus.uri)
        return {"milvus_lite": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())}
