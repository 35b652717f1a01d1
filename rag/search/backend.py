"""The contract of a search backend (what retrieval asks of the search side of storage), and
the per-thread store connections the backends read through."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.search.query import Filters


class ThreadConnections:
    """One read-only connection to the store per thread: a connection is not thread-safe, and
    keyword queries run in a worker thread beside the caller's."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            self._local.db = db
        return db


class SearchBackend(Protocol):
    """What retrieval asks of the search side of storage: candidates with their scores, under
    filters, best first. ``rag.search.local`` (FAISS + tantivy, the default) and
    ``rag.search.milvus`` implement it; tests/test_backends.py holds both to one contract."""

    name: str

    def dense(self, query: np.ndarray, k: int, filters: Filters) -> dict[int, float]:
        """Cosine similarity of the best ``k`` chunks for the query vector (shape (1, dim))."""
        ...

    def keyword(self, question: str, k: int, filters: Filters) -> dict[int, float]:
        """BM25 scores (higher is better) of the best ``k`` chunks for the question's words."""
        ...

    def vectors(self, ids: list[int]) -> dict[int, np.ndarray] | None:
        """The stored vectors of these chunks if the backend holds them in memory (the ones it
        has), else None: the retriever then reads them from the store's embedding cache."""
        ...
