"""The SQLite store: the source of truth for documents, chunks, keywords and vectors.

The FAISS file is derived from this store and can be rebuilt from it without the model,
because every chunk's vector is kept in the embedding cache (keyed by model and text hash).
Each write transaction that changes chunks bumps ``generation``; the FAISS file carries the
generation it was saved at, so a stale file (a crash between the two) is detected on open.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rag.types import Chunk, Document, content_hash

SCHEMA_VERSION = 1

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE files (path TEXT PRIMARY KEY, file_hash TEXT NOT NULL);
    CREATE TABLE documents (
        id TEXT PRIMARY KEY,
        path TEXT NOT NULL,
        source TEXT NOT NULL,
        title TEXT NOT NULL,
        date TEXT,
        text TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        meta TEXT NOT NULL DEFAULT '{}',
        indexed_at TEXT NOT NULL
    );
    CREATE INDEX documents_path ON documents(path);
    CREATE INDEX documents_date ON documents(date);
    -- AUTOINCREMENT: a rowid is never reused, so a FAISS id never points at the wrong chunk.
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL,
        start INTEGER NOT NULL,
        end INTEGER NOT NULL,
        text TEXT NOT NULL,
        text_hash TEXT NOT NULL
    );
    CREATE INDEX chunks_doc ON chunks(doc_id, ordinal);
    -- Keyword index over chunk text, updated by triggers inside the same transactions.
    CREATE VIRTUAL TABLE chunks_fts USING fts5(
        text, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TABLE embeddings (
        model TEXT NOT NULL,
        text_hash TEXT NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (model, text_hash)
    ) WITHOUT ROWID;
    """,
}


class StoreError(RuntimeError):
    """The store file cannot be used; the message names the file and the fix."""


class Store:
    """A thin, typed layer over one SQLite file. Not shared between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process (not a power cut), and is much faster.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not a usable rag store ({exc}); move it away and index again") from exc

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this rag ({SCHEMA_VERSION}); upgrade rag"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            # executescript commits any open transaction itself; the savepoint makes each
            # migration all-or-nothing.
            self.db.executescript(
                "SAVEPOINT migrate;" + _MIGRATIONS[target] + f"PRAGMA user_version={target};RELEASE migrate;"
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit: everything inside commits together or not at all."""
        if self.db.in_transaction:
            yield self.db
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- meta ---------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, values: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                [(k, str(v)) for k, v in values.items()],
            )

    @property
    def generation(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def _bump_generation(self) -> None:
        self.set_meta({"generation": self.generation + 1})

    # --- files --------------------------------------------------------------------------

    def file_hash(self, path: str) -> str | None:
        row = self.db.execute("SELECT file_hash FROM files WHERE path=?", (path,)).fetchone()
        return row[0] if row else None

    def set_file_hash(self, path: str, value: str | None) -> None:
        with self.transaction() as db:
            if value is None:
                db.execute("DELETE FROM files WHERE path=?", (path,))
            else:
                db.execute(
                    "INSERT INTO files(path, file_hash) VALUES (?, ?) "
                    "ON CONFLICT(path) DO UPDATE SET file_hash=excluded.file_hash",
                    (path, value),
                )

    # --- documents ----------------------------------------------------------------------

    def document_hash(self, doc_id: str) -> str | None:
        row = self.db.execute("SELECT content_hash FROM documents WHERE id=?", (doc_id,)).fetchone()
        return row[0] if row else None

    def document_ids_for_path(self, path: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM documents WHERE path=?", (path,))]

    def document_paths(self) -> list[tuple[str, str]]:
        """(doc_id, path) of every document."""
        return self.db.execute("SELECT id, path FROM documents").fetchall()

    def get_document(self, doc_id: str) -> Document | None:
        row = self.db.execute(
            "SELECT id, source, path, title, date, text, meta FROM documents WHERE id=?", (doc_id,)
        ).fetchone()
        return None if row is None else _document(row)

    def put_document(self, doc: Document, chunks: list[Chunk]) -> tuple[list[int], list[Chunk]]:
        """Insert or replace ``doc`` and its chunks. Returns (removed chunk ids, stored chunks)."""
        with self.transaction() as db:
            removed = self._delete_chunks(doc.id)
            db.execute(
                "INSERT INTO documents(id, path, source, title, date, text, content_hash, meta, indexed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET path=excluded.path, "
                "source=excluded.source, title=excluded.title, date=excluded.date, text=excluded.text, "
                "content_hash=excluded.content_hash, meta=excluded.meta, indexed_at=excluded.indexed_at",
                (
                    doc.id, doc.path, doc.source, doc.title, doc.date, doc.text, doc.content_hash,
                    json.dumps(doc.meta, ensure_ascii=False, default=str), _now(),
                ),
            )  # fmt: skip
            stored = []
            for chunk in chunks:
                cursor = db.execute(
                    "INSERT INTO chunks(doc_id, ordinal, start, end, text, text_hash) VALUES (?, ?, ?, ?, ?, ?)",
                    (doc.id, chunk.ordinal, chunk.start, chunk.end, chunk.text, content_hash(chunk.text)),
                )
                stored.append(Chunk(doc.id, chunk.ordinal, chunk.start, chunk.end, chunk.text, cursor.lastrowid))
            self._bump_generation()
        return removed, stored

    def delete_document(self, doc_id: str) -> list[int]:
        """Remove a document and its chunks; returns the removed chunk ids.

        When it was the last document read from its file, the file's hash is forgotten too,
        so indexing that file again (if it still exists) reads it instead of skipping it.
        """
        with self.transaction() as db:
            removed = self._delete_chunks(doc_id)
            row = db.execute("SELECT path FROM documents WHERE id=?", (doc_id,)).fetchone()
            db.execute("DELETE FROM documents WHERE id=?", (doc_id,))
            if row is not None and not self.document_ids_for_path(row[0]):
                db.execute("DELETE FROM files WHERE path=?", (row[0],))
            self._bump_generation()
        return removed

    def _delete_chunks(self, doc_id: str) -> list[int]:
        ids = [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE doc_id=?", (doc_id,))]
        self.db.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
        return ids

    # --- chunks -------------------------------------------------------------------------

    def chunks_for(self, doc_id: str) -> list[Chunk]:
        rows = self.db.execute(
            "SELECT doc_id, ordinal, start, end, text, id FROM chunks WHERE doc_id=? ORDER BY ordinal",
            (doc_id,),
        )
        return [Chunk(*row) for row in rows]

    def iter_chunk_hashes(self, batch: int = 10_000) -> Iterator[list[tuple[int, str, str]]]:
        """Batches of (chunk id, text hash, text) for every chunk, in id order."""
        last = 0
        while True:
            rows = self.db.execute(
                "SELECT id, text_hash, text FROM chunks WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            yield rows
            last = rows[-1][0]

    # --- embedding cache ----------------------------------------------------------------

    def cached_vectors(self, model: str, hashes: Iterable[str]) -> dict[str, npt.NDArray[np.float32]]:
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, npt.NDArray[np.float32]] = {}
        for i in range(0, len(wanted), 500):  # stay under SQLite's bound-parameter limit
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            for text_hash, blob in self.db.execute(
                f"SELECT text_hash, vector FROM embeddings WHERE model=? AND text_hash IN ({marks})",
                (model, *part),
            ):
                found[text_hash] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_vectors(self, model: str, hashes: list[str], vectors: npt.NDArray[np.float32]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO embeddings(model, text_hash, vector) VALUES (?, ?, ?)",
                [(model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in zip(hashes, vectors, strict=True)],
            )

    # --- facts --------------------------------------------------------------------------

    def is_empty(self) -> bool:
        """No chunks at all; constant time, unlike counting."""
        return bool(self.db.execute("SELECT NOT EXISTS (SELECT 1 FROM chunks)").fetchone()[0])

    def counts(self) -> dict[str, int]:
        documents = self.db.execute("SELECT count(*) FROM documents").fetchone()[0]
        chunks = self.db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        cached = self.db.execute("SELECT count(*) FROM embeddings").fetchone()[0]
        return {"documents": documents, "chunks": chunks, "cached_embeddings": cached}


def _document(row: tuple[Any, ...]) -> Document:
    doc_id, source, path, title, date, text, meta = row
    return Document(id=doc_id, source=source, path=path, title=title, date=date, text=text, meta=json.loads(meta))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
