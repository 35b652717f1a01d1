"""The SQLite store: the source of truth for documents, chunks, keywords and vectors.

The FAISS file is derived from this store and can be rebuilt from it without the model,
because every chunk's vector is kept in the embedding cache (keyed by model and text hash).
Each write transaction that changes chunks bumps ``generation``, a cheap signal that something
changed; the FAISS file carries a digest of the exact set of chunk ids it holds, which is what
proves it matches (see ``rag.api``). Cached vectors that no chunk uses any more are pruned in
the transaction that removed their last chunk.

Read-only handles (``read_only=True``) open the file with SQLite's ``mode=ro``: they never
create, migrate or alter anything, so ``rag status`` on a stranger's file leaves it as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rag.config import IndexSettings
from rag.storage.schema import MIGRATIONS, SCHEMA_VERSION, TABLES
from rag.types import Chunk, Document, DocumentInfo, content_hash

# Orders of `rag list`; a date sorts newest first, documents without one last.
LIST_ORDERS = {
    "date": "d.date IS NULL, d.date DESC, d.title",
    "title": "d.title COLLATE NOCASE, d.id",
    "indexed": "d.indexed_at DESC, d.title",
}
_REPAIR = (
    "move it away and index your sources again, or salvage it with `sqlite3 {path} .recover | sqlite3 recovered.sqlite`"
)


class StoreError(RuntimeError):
    """The store file cannot be used; the message names the file and the fix."""


def damaged(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    """The error for a store SQLite cannot read, with how to repair it."""
    return StoreError(f"{path} is damaged ({exc}); " + _REPAIR.format(path=path))


class Store:
    """A thin, typed layer over one SQLite file. Not shared between threads."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        # Hashes of removed chunks' texts, pruned from the embedding cache before the
        # transaction that removed them commits (see ``transaction``).
        self._unused_hashes: set[str] = set()
        try:
            if read_only:
                self.db = sqlite3.connect(
                    f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
                )
            else:
                self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            version = self._check_ours()
            if not read_only:
                self.db.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode survives a killed process (not a power cut), and is much faster.
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.execute("PRAGMA foreign_keys=ON")
                self._migrate(version)
                # Which store this is: chunk ids restart at 1 in a new store, so derived
                # indexes stamp this too, and one left beside a swapped store never passes as its.
                self.db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('store_id', ?)", (uuid.uuid4().hex,))
        except sqlite3.DatabaseError as exc:
            if hasattr(self, "db"):
                self.db.close()
            raise damaged(path, exc) from exc

    def close(self) -> None:
        self.db.close()

    def _check_ours(self) -> int:
        """The schema version, after making sure the file is a rag store (or a new, empty file)."""
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this rag ({SCHEMA_VERSION}); upgrade rag"
            )
        if (version == 0 and tables) or (version > 0 and not tables >= TABLES):
            self.db.close()
            raise StoreError(
                f"{self.path} is an SQLite file but not a rag store (tables: {', '.join(sorted(tables)) or 'none'}); "
                "point --index-dir at another folder"
            )
        if version == 0 and self.read_only:
            self.db.close()
            raise StoreError(f"{self.path} is empty, not a rag store; create one with `rag index PATH`")
        return version

    def _migrate(self, version: int) -> None:
        for target in range(version + 1, SCHEMA_VERSION + 1):
            # executescript commits any open transaction itself; the savepoint makes each
            # migration all-or-nothing.
            self.db.executescript(
                "SAVEPOINT migrate;" + MIGRATIONS[target] + f"PRAGMA user_version={target};RELEASE migrate;"
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
            self._prune_unused()
        except BaseException:
            self._unused_hashes.clear()
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _prune_unused(self) -> None:
        """Drop cached vectors of texts that no chunk uses any more, as the last step of the
        transaction that removed them: the new chunks of an update are in place by then, so
        a text an updated document kept keeps its vector."""
        hashes = list(self._unused_hashes)
        self._unused_hashes.clear()
        # The index's own model only, so each delete is a primary-key lookup; vectors of
        # another model (left by a rebuild) are `rag gc`'s to drop.
        settings = IndexSettings.from_meta(self.meta())
        model = settings.vectors_key if settings is not None else None
        for i in range(0, len(hashes), 500):
            part = hashes[i : i + 500]
            self.db.execute(
                f"DELETE FROM embeddings WHERE model = ? AND text_hash IN ({','.join('?' * len(part))}) "
                "AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.text_hash = embeddings.text_hash)",
                (model, *part),
            )

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
    def store_id(self) -> str:
        """A random id given when the store was made ("" for one made before ids were, until a
        writer opens it)."""
        row = self.db.execute("SELECT value FROM meta WHERE key='store_id'").fetchone()
        return str(row[0]) if row else ""

    @property
    def store_tag(self) -> int:
        """``store_id`` as a 63-bit integer (0 without one), for indexes that store integers."""
        return int(self.store_id[:15], 16) if self.store_id else 0

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

    def set_file_hash(
        self, path: str, value: str | None, etag: str | None = None, last_modified: str | None = None
    ) -> None:
        """Record the hash of what ``path`` held when read (``None``: read it again next time);
        for a web page also its ETag and Last-Modified, sent back in the next request."""
        with self.transaction() as db:
            if value is None:
                db.execute("DELETE FROM files WHERE path=?", (path,))
            else:
                db.execute(
                    "INSERT INTO files(path, file_hash, etag, last_modified) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(path) DO UPDATE SET file_hash=excluded.file_hash, etag=excluded.etag, "
                    "last_modified=excluded.last_modified",
                    (path, value, etag, last_modified),
                )

    def validators(self, path: str) -> tuple[str | None, str | None]:
        """(ETag, Last-Modified) a web page was last read with."""
        row = self.db.execute("SELECT etag, last_modified FROM files WHERE path=?", (path,)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def paths_with_hash(self, digest: str) -> list[str]:
        """Files last indexed with exactly these bytes."""
        return [r[0] for r in self.db.execute("SELECT path FROM files WHERE file_hash=?", (digest,))]

    def move_file(self, old: str, new: str) -> int:
        """Record that the file at ``old`` now lives at ``new``: its documents keep their ids,
        chunks and vectors, and only where they come from changes. Returns how many moved."""
        with self.transaction() as db:
            db.execute("UPDATE files SET path=? WHERE path=?", (new, old))
            # A JSONL record's source is "path:line"; a URL source stays as it is.
            db.execute(
                "UPDATE documents SET source = ? || substr(source, ?) "
                "WHERE path = ? AND (source = ? OR substr(source, 1, ?) = ?)",
                (new, len(old) + 1, old, old, len(old) + 1, old + ":"),
            )
            cursor = db.execute("UPDATE documents SET path=? WHERE path=?", (new, old))
            self._bump_generation()
            return int(cursor.rowcount)

    # --- documents ----------------------------------------------------------------------

    def document_hash(self, doc_id: str) -> str | None:
        row = self.db.execute("SELECT content_hash FROM documents WHERE id=?", (doc_id,)).fetchone()
        return row[0] if row else None

    def document_ids_for_path(self, path: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM documents WHERE path=?", (path,))]

    def document_paths(self) -> list[tuple[str, str]]:
        """(doc_id, path) of every document."""
        return self.db.execute("SELECT id, path FROM documents").fetchall()

    def document_ids_for_url(self, url: str) -> list[str]:
        """Documents fetched from ``url``, or whose canonical URL (their source) it is."""
        rows = self.db.execute("SELECT id FROM documents WHERE path = ? OR source = ? ORDER BY id", (url, url))
        return [r[0] for r in rows]

    def document_ids_under(self, path: str) -> list[str]:
        """Documents read from the file ``path``, or from any file under the folder ``path``."""
        folder = path.rstrip(os.sep) + os.sep
        rows = self.db.execute(
            "SELECT id FROM documents WHERE path = ? OR substr(path, 1, ?) = ? ORDER BY path, id",
            (path, len(folder), folder),
        )
        return [r[0] for r in rows]

    def titles_starting(self, prefix: str, limit: int = 6) -> list[tuple[str, str]]:
        """(id, title) of documents whose title starts with ``prefix``, ignoring case; an exact
        title comes first."""
        folded = prefix.casefold()
        rows = self.db.execute(
            "SELECT id, title FROM documents WHERE lower(substr(title, 1, ?)) = lower(?) "
            "ORDER BY lower(title) = lower(?) DESC, title LIMIT ?",
            (len(prefix), prefix, prefix, limit),
        ).fetchall()
        # SQLite's lower() folds ASCII only; check again with Python's casefold.
        return [(i, t) for i, t in rows if t.casefold().startswith(folded)]

    def list_documents(
        self,
        since: str | None = None,
        until: str | None = None,
        sources: tuple[str, ...] = (),
        title: str | None = None,
        order: str = "date",
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[int, list[DocumentInfo]]:
        """One page of documents that pass the filters, and how many pass in all."""
        where: list[str] = []
        args: list[Any] = []
        if since:
            where.append("d.date >= ?")
            args.append(since)
        if until:
            where.append("d.date <= ?")
            args.append(until)
        if sources:
            where.append("(" + " OR ".join("instr(d.source, ?) > 0 OR instr(d.path, ?) > 0" for _ in sources) + ")")
            args.extend(s for source in sources for s in (source, source))
        if title:
            where.append("instr(lower(d.title), lower(?)) > 0")
            args.append(title)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        total = int(self.db.execute(f"SELECT count(*) FROM documents d {clause}", args).fetchone()[0])
        rows = self.db.execute(
            "SELECT d.id, d.title, d.date, d.source, "
            "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.id), d.indexed_at "
            f"FROM documents d {clause} ORDER BY {LIST_ORDERS[order]} LIMIT ? OFFSET ?",
            (*args, -1 if limit is None else limit, offset),
        ).fetchall()
        return total, [DocumentInfo(*row) for row in rows]

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
                "INSERT INTO documents(id, path, source, title, date, text, content_hash, meta, indexed_at, text_hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET path=excluded.path, "
                "source=excluded.source, title=excluded.title, date=excluded.date, text=excluded.text, "
                "content_hash=excluded.content_hash, meta=excluded.meta, indexed_at=excluded.indexed_at, "
                "text_hash=excluded.text_hash",
                (
                    doc.id, doc.path, doc.source, doc.title, doc.date, doc.text, doc.content_hash,
                    json.dumps(doc.meta, ensure_ascii=False, default=str), _now(), content_hash(doc.text),
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

    def hash_unhashed(self) -> None:
        """Text hashes for documents stored before they were kept (schema 6)."""
        rows = self.db.execute("SELECT id, text FROM documents WHERE text_hash IS NULL").fetchall()
        if rows:
            with self.transaction() as db:
                db.executemany("UPDATE documents SET text_hash=? WHERE id=?", [(content_hash(t), i) for i, t in rows])

    def documents_with_text(self, text: str) -> list[tuple[str, str]]:
        """(id, path) of the documents whose text is exactly ``text``."""
        rows = self.db.execute(
            "SELECT id, path, text FROM documents WHERE text_hash=? ORDER BY id", (content_hash(text),)
        )
        return [(doc_id, path) for doc_id, path, stored in rows if stored == text]

    # --- stories (rag.ingest.stories) ----------------------------------------------------

    def put_story_links(self, doc_id: str, links: list[tuple[str, float]]) -> None:
        """Replace ``doc_id``'s links to the other documents of its story."""
        with self.transaction() as db:
            db.execute("DELETE FROM story_links WHERE doc_id=? OR other_id=?", (doc_id, doc_id))
            db.executemany(
                "INSERT OR REPLACE INTO story_links(doc_id, other_id, score) VALUES (?, ?, ?)",
                [(min(doc_id, other), max(doc_id, other), score) for other, score in links if other != doc_id],
            )

    def story_neighbours(self, doc_ids: list[str]) -> dict[str, list[str]]:
        """The documents linked to each of ``doc_ids``."""
        found: dict[str, list[str]] = {doc_id: [] for doc_id in doc_ids}
        try:
            for i in range(0, len(doc_ids), 400):
                part = doc_ids[i : i + 400]
                marks = ",".join("?" * len(part))
                for a, b in self.db.execute(
                    f"SELECT doc_id, other_id FROM story_links WHERE doc_id IN ({marks}) OR other_id IN ({marks})",
                    part + part,
                ):
                    if a in found:
                        found[a].append(b)
                    if b in found:
                        found[b].append(a)
        except sqlite3.OperationalError:  # a store from before stories, opened read-only
            pass
        return found

    # --- near-duplicate signatures (rag.ingest.duplicates) -----------------------------------------

    def put_signature(self, doc_id: str, signature: npt.NDArray[np.uint32], bands: list[int]) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM signature_bands WHERE doc_id=?", (doc_id,))
            db.execute(
                "INSERT OR REPLACE INTO signatures(doc_id, signature) VALUES (?, ?)", (doc_id, signature.tobytes())
            )
            db.executemany(
                "INSERT OR IGNORE INTO signature_bands(band, hash, doc_id) VALUES (?, ?, ?)",
                [(band, value, doc_id) for band, value in enumerate(bands)],
            )

    def unsigned_documents(self) -> list[str]:
        """Documents with no signature yet (indexed before signatures existed)."""
        rows = self.db.execute("SELECT id FROM documents WHERE id NOT IN (SELECT doc_id FROM signatures)")
        return [r[0] for r in rows]

    def delete_document(self, doc_id: str) -> list[int]:
        """Remove a document and its chunks; returns the removed chunk ids.

        Its file's hash is forgotten too, so indexing that file again reads it instead of
        skipping it as unchanged: reindexing a source restores what it says, even when one
        record of a JSONL file was removed by hand.
        """
        with self.transaction() as db:
            removed = self._delete_chunks(doc_id)
            row = db.execute("SELECT path FROM documents WHERE id=?", (doc_id,)).fetchone()
            db.execute("DELETE FROM documents WHERE id=?", (doc_id,))
            if row is not None:
                db.execute("DELETE FROM files WHERE path=?", (row[0],))
            self._bump_generation()
        return removed

    def document_owner(self, doc_id: str) -> str | None:
        """The file a stored document was read from."""
        row = self.db.execute("SELECT path FROM documents WHERE id=?", (doc_id,)).fetchone()
        return None if row is None else str(row[0])

    def _delete_chunks(self, doc_id: str) -> list[int]:
        rows = self.db.execute("SELECT id, text_hash FROM chunks WHERE doc_id=?", (doc_id,)).fetchall()
        self.db.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
        self._unused_hashes.update(text_hash for _, text_hash in rows)
        return [chunk_id for chunk_id, _ in rows]

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

    def chunk_ids(self) -> npt.NDArray[np.int64]:
        """Every chunk id, ascending: the set the vector file must hold exactly."""
        rows = self.db.execute("SELECT id FROM chunks ORDER BY id").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def vectors_for_chunks(self, model: str, ids: list[int]) -> tuple[dict[int, npt.NDArray[np.float32]], list[int]]:
        """Cached vectors of the given chunks, and the ids of those with no cached vector."""
        found: dict[int, npt.NDArray[np.float32]] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            rows = self.db.execute(
                # CROSS JOIN keeps chunks the outer loop: with many ids SQLite would otherwise
                # scan every cached vector (3.3 s per 500 ids at 20k chunks, against 25 ms).
                "SELECT c.id, e.vector FROM chunks c "
                "CROSS JOIN embeddings e ON e.model = ? AND e.text_hash = c.text_hash "
                f"WHERE c.id IN ({','.join('?' * len(part))})",
                (model, *part),
            )
            found.update((int(cid), np.frombuffer(blob, dtype=np.float32)) for cid, blob in rows)
        return found, [cid for cid in ids if cid not in found]

    def chunk_records(self, ids: list[int]) -> dict[int, tuple[str, str, str | None, str, str]]:
        """(doc_id, text, date, source, path) of the given chunks: what a search backend files
        each chunk under."""
        found: dict[int, tuple[str, str, str | None, str, str]] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            rows = self.db.execute(
                "SELECT c.id, c.doc_id, c.text, d.date, d.source, d.path FROM chunks c "
                f"JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({','.join('?' * len(part))})",
                part,
            )
            found.update((int(row[0]), tuple(row[1:])) for row in rows)
        return found

    def chunk_texts(self, ids: list[int]) -> dict[int, str]:
        texts: dict[int, str] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            rows = self.db.execute(f"SELECT id, text FROM chunks WHERE id IN ({','.join('?' * len(part))})", part)
            texts.update((int(cid), text) for cid, text in rows)
        return texts

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

    def collect_garbage(self, model: str) -> int:
        """Drop cached vectors that no chunk uses, or that another model made; returns how many."""
        with self.transaction() as db:
            cursor = db.execute(
                "DELETE FROM embeddings WHERE model != ? "
                "OR NOT EXISTS (SELECT 1 FROM chunks c WHERE c.text_hash = embeddings.text_hash)",
                (model,),
            )
            return int(cursor.rowcount)

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


def ids_digest(ids: npt.NDArray[np.int64]) -> str:
    """A fingerprint of a set of chunk ids (given sorted), to prove two sides hold the same set."""
    return hashlib.sha256(np.ascontiguousarray(ids, dtype="<i8").tobytes()).hexdigest()[:32]


def _document(row: tuple[Any, ...]) -> Document:
    doc_id, source, path, title, date, text, meta = row
    return Document(id=doc_id, source=source, path=path, title=title, date=date, text=text, meta=json.loads(meta))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
