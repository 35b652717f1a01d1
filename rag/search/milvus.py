"""The Milvus search backend: dense, keyword (BM25) and filters in a Milvus collection.

SQLite stays the source of truth with this backend too: documents (whole texts, for exact
spans), chunks with their offsets, file hashes and the embedding cache live in the index
folder's store, as with the default backend. Milvus holds what search needs and what grows
with the corpus fastest: one row per chunk with its vector, its text (BM25 runs on Milvus's
own inverted index) and the keys filters need (document id, date, source, path, site). A whole
article cannot be a Milvus field anyway (VARCHAR stops at 65,535 bytes), and a span is read
by primary key from SQLite in microseconds.

The collection is derived like the FAISS file: every row's primary key is the chunk's SQLite
id (never reused), so a write is an upsert and ``reconcile`` (in ``rag.api``) makes the
collection hold exactly the store's chunks after a run that was killed half-way.

Quirks kept inside this module: Milvus Lite returns BM25 scores negated; servers before 2.5
have no BM25 at all (``keyword`` then says so); a 2.3 server reads its own writes only at
``Strong`` consistency, which the collection is created with.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from rag.search.query import Filters, SearchError, content_words

if TYPE_CHECKING:
    import numpy.typing as npt
    from pymilvus import MilvusClient

# Longest source or path kept as an exact key; a longer one is cut (in bytes, as Milvus counts).
KEY_BYTES = 4096
_ID_BATCH = 10_000  # ids per query page (Milvus caps offset + limit at 16,384)
_WRITE_BATCH = 1_000
# Searches read at Session consistency: a process sees its own writes at once, and other
# processes' writes within moments. Strong (the collection's level, which the reconcile pass's
# id listing keeps) made every search on a 2.3 server wait for its 200 ms time tick: 200 ms per
# dense search against 7 ms at Session or Bounded (docs/scale-out.md).
SEARCH_CONSISTENCY = "Session"


# Clients open one at a time in a process: hybrid search asks from two threads at once, and
# `rag serve` opens a second handle to repair the index while the first answers. Two clients
# opening one Milvus Lite file together both try to lock it, and one fails; one after the other,
# the second reuses the first one's in-process server.
_OPENING = threading.Lock()


class MilvusError(RuntimeError):
    """Milvus cannot be reached or refused a request; the message names the URI and the fix."""


@dataclass(frozen=True)
class ChunkRecord:
    """What the collection keeps of one chunk: its SQLite id, text and filter keys."""

    id: int
    doc_id: str
    text: str
    date: str | None
    source: str
    path: str


def site_of(source: str) -> str:
    """The host of a URL source without ``www.`` (``reuters.com``); empty for a file."""
    if not re.match(r"https?://", source, re.IGNORECASE):
        return ""
    host = (urlsplit(source).hostname or "").lower()
    return host.removeprefix("www.")


def quoted(value: str) -> str:
    """A string literal for a Milvus boolean expression."""
    return json.dumps(value, ensure_ascii=False)


def expression(filters: Filters) -> str:
    """Filters as a Milvus boolean expression ('' for none).

    Dates compare as ISO strings, as they do in SQLite, and documents without a date (stored
    as '') fail any date bound. A source filter matches a document's source, path or site
    exactly (an indexed key), where the SQLite backend matches any part of them."""
    clauses = []
    if filters.since:
        clauses.append(f"date >= {quoted(filters.since)}")
    if filters.until:
        clauses.append(f'date <= {quoted(filters.until)} and date != ""')
    if filters.doc_ids:
        clauses.append(f"doc_id in [{', '.join(map(quoted, filters.doc_ids))}]")
    if filters.sources:
        values = ", ".join(quoted(_key(s)) for s in filters.sources)
        clauses.append(f"(source in [{values}] or path in [{values}] or site in [{values}])")
    return " and ".join(f"({c})" for c in clauses)


def _key(value: str) -> str:
    """``value`` cut to KEY_BYTES of UTF-8 without splitting a character."""
    data = value.encode()
    return value if len(data) <= KEY_BYTES else data[:KEY_BYTES].decode(errors="ignore")


def _version(text: str) -> tuple[int, int]:
    """(major, minor) of a server version such as ``v2.3.5-lite``; Milvus Lite reports its own
    numbering (``milvus_lite-3.2.2``) and has BM25, so it counts as new."""
    if text.startswith("milvus_lite"):
        return (99, 0)
    match = re.search(r"(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else (0, 0)


class MilvusSearch:
    """One collection on a Milvus Lite file, a Milvus server or a cluster."""

    name = "milvus"

    def __init__(self, uri: str, collection: str, token: str | None = None) -> None:
        self.uri = uri
        self.collection = collection
        self._token = token  # from the environment only; never stored
        self._client: MilvusClient | None = None
        self._bm25: bool | None = None
        self._loaded = False

    # --- connection and collection --------------------------------------------------------

    @property
    def client(self) -> MilvusClient:
        with _OPENING:
            return self._open()

    def _open(self) -> MilvusClient:
        if self._client is None:
            # gRPC's C core prints keepalive chatter from Milvus Lite's server ("GOAWAY ...
            # too_many_pings") on stderr; failures still arrive as exceptions.
            os.environ.setdefault("GRPC_VERBOSITY", "NONE")
            from pymilvus import MilvusClient

            # pymilvus logs every failed call with a traceback before raising it; the raised
            # error is reported once, as a MilvusError naming the server and the fix.
            logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
            logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)

            self._check_reachable()
            try:
                self._client = MilvusClient(
                    uri=self.uri,
                    token=self._token or "",
                    timeout=30,
                    # pymilvus pings an idle connection every 10 s; Milvus Lite's gRPC server
                    # allows one ping per 5 minutes without calls and closes the connection after
                    # two early ones ("too_many_pings"), which broke the next search of an idle
                    # `rag serve`. Pings only while a call is in flight suit every server.
                    grpc_options={"grpc.keepalive_permit_without_calls": 0},
                )
            except Exception as exc:  # pymilvus raises several types for an unreachable server
                if self.is_lite_file:
                    raise MilvusError(
                        f"cannot open the Milvus Lite file {self.uri} ({exc}). Milvus Lite lets one process "
                        "at a time open a file: if a `rag serve`, `rag chat` or `rag index` has this index open, "
                        f"stop it; or, for several processes at once, serve the file with `milvus-lite server "
                        f"--data-dir {self.uri} --host 127.0.0.1 --port 19530` and use "
                        "--milvus-uri http://127.0.0.1:19530"
                    ) from exc
                raise MilvusError(
                    f"cannot open Milvus at {self.uri}: {exc}. Check milvus_uri (a .db file for Milvus Lite, "
                    "or http://host:19530 for a server) and that the server is running"
                ) from exc
        return self._client

    @property
    def is_lite_file(self) -> bool:
        """A Milvus Lite file run in this process, not a server."""
        return "://" not in self.uri

    def _check_reachable(self) -> None:
        """Fail at once when nothing listens at a server URI: pymilvus would retry for as long as
        its timeout before saying so."""
        parts = urlsplit(self.uri)
        if parts.scheme not in ("http", "https", "tcp", "grpc") or not parts.hostname:
            return  # a Milvus Lite file
        port = parts.port or (443 if parts.scheme == "https" else 19530)
        try:
            socket.create_connection((parts.hostname, port), timeout=5).close()
        except OSError as exc:
            raise MilvusError(
                f"cannot reach Milvus at {self.uri} ({exc.strerror or exc}); start the server, or set "
                "milvus_uri (--milvus-uri, RAG_MILVUS_URI) to a running one or to a file for Milvus Lite"
            ) from exc

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """A refused or failed request as a MilvusError naming the server and what was asked."""
        from pymilvus.exceptions import MilvusException

        try:
            yield
        except MilvusException as exc:
            raise MilvusError(
                f"Milvus at {self.uri} failed to {action} (collection {self.collection}): {exc.message}"
            ) from exc

    @property
    def version(self) -> str:
        with self._errors("report its version"):
            return str(self.client.get_server_version())

    @property
    def has_bm25(self) -> bool:
        """Whether the server does full-text search (Milvus 2.5 and later, and Milvus Lite)."""
        if self._bm25 is None:
            self._bm25 = _version(self.version) >= (2, 5)
        return self._bm25

    def exists(self) -> bool:
        with self._errors("look up the collection"):
            return bool(self.client.has_collection(self.collection))

    def _searchable(self) -> bool:
        """Whether the collection exists, loading it into memory first if it is not (a Milvus
        Lite file opened by a new process, or a server after a restart, holds it released)."""
        if self._loaded:
            return True
        if not self.exists():
            return False
        with self._errors("load the collection"):
            state = str(self.client.get_load_state(self.collection).get("state", ""))
            if not state.endswith("Loaded"):
                self.client.load_collection(self.collection)
        self._loaded = True
        return True

    def create(self, dim: int) -> None:
        """Make the collection for vectors of ``dim`` if it is not there yet."""
        if self.exists():
            return
        from pymilvus import DataType, Function, FunctionType

        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=512)
        schema.add_field("date", DataType.VARCHAR, max_length=64)
        for name in ("source", "path"):
            schema.add_field(name, DataType.VARCHAR, max_length=KEY_BYTES)
        schema.add_field("site", DataType.VARCHAR, max_length=256)
        index = self.client.prepare_index_params()
        index.add_index("vector", index_type="AUTOINDEX", metric_type="IP")
        if self.has_bm25:
            schema.add_field("text", DataType.VARCHAR, max_length=65_535, enable_analyzer=True)
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(
                Function(
                    name="bm25",
                    function_type=FunctionType.BM25,
                    input_field_names=["text"],
                    output_field_names=["sparse"],
                )
            )
            index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
            # Inverted indexes make the filter keys exact lookups (2.4 and later; Lite has them).
            for name in ("doc_id", "source", "path", "site", "date"):
                index.add_index(name, index_type="INVERTED")
        else:
            schema.add_field("text", DataType.VARCHAR, max_length=65_535)
        # The indexes are made without pymilvus's wait: it sleeps half a second before each of
        # its first state checks, 3.5 s for these seven on a new, empty collection (where there is
        # nothing to build). Loading waits until the collection is searchable either way.
        with self._errors("create the collection"):
            self.client.create_collection(self.collection, schema=schema, consistency_level="Strong")
            self.client.create_index(self.collection, index, sync=False)
            self.client.load_collection(self.collection)

    def drop(self) -> None:
        if self.exists():
            self.client.drop_collection(self.collection)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # --- writing --------------------------------------------------------------------------

    def upsert(self, records: Sequence[ChunkRecord], vectors: npt.NDArray[np.float32]) -> None:
        """Insert or replace these chunks (a row with the same id is replaced, never doubled)."""
        if not records:
            return
        self.create(int(vectors.shape[1]))
        self._searchable()
        rows = [
            {
                "id": r.id,
                "vector": np.asarray(v, dtype=np.float32).tolist(),
                "text": _cut(r.text, 65_535),
                "doc_id": r.doc_id,
                "date": r.date or "",
                "source": _key(r.source),
                "path": _key(r.path),
                "site": site_of(r.source)[:256],
            }
            for r, v in zip(records, vectors, strict=True)
        ]
        with self._errors(f"write {len(rows)} chunks"):
            for start in range(0, len(rows), _WRITE_BATCH):
                self.client.upsert(self.collection, rows[start : start + _WRITE_BATCH])

    def delete(self, ids: Sequence[int]) -> None:
        if len(ids) and self._searchable():
            with self._errors(f"delete {len(ids)} chunks"):
                for start in range(0, len(ids), _WRITE_BATCH):
                    self.client.delete(self.collection, ids=[int(i) for i in ids[start : start + _WRITE_BATCH]])

    # --- reading --------------------------------------------------------------------------

    def ids(self) -> npt.NDArray[np.int64]:
        """Every chunk id the collection holds, ascending (paged by id, so any size works)."""
        if not self._searchable():
            return np.zeros(0, dtype=np.int64)
        found: list[int] = []
        last = -1
        while True:
            with self._errors("list chunk ids"):
                rows = self.client.query(self.collection, filter=f"id > {last}", output_fields=["id"], limit=_ID_BATCH)
            if not rows:
                break
            page = sorted(int(r["id"]) for r in rows)
            found.extend(page)
            last = page[-1]
            if len(rows) < _ID_BATCH:
                break
        return np.array(sorted(found), dtype=np.int64)

    def count(self) -> int:
        if not self._searchable():
            return 0
        with self._errors("count chunks"):
            rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def dense(self, query: np.ndarray, k: int, filters: Filters) -> dict[int, float]:
        """Cosine scores of the best ``k`` chunks that pass ``filters``, best first."""
        found = self._search("vector", "IP", np.asarray(query[0], dtype=np.float32).tolist(), k, filters)
        return dict(found)

    def vectors(self, ids: list[int]) -> dict[int, np.ndarray] | None:
        return None  # a round trip per question: the store's embedding cache is nearer

    def keyword(self, question: str, k: int, filters: Filters) -> dict[int, float]:
        """BM25 scores of the best ``k`` chunks that pass ``filters``, best first."""
        if not self.has_bm25:
            raise SearchError(
                f"the Milvus server at {self.uri} is version {self.version}, which has no full-text "
                "(BM25) search; use --mode dense, or Milvus 2.5 or later for keyword and hybrid search"
            )
        words = content_words(question)
        if not words:
            return {}
        # Milvus Lite reports BM25 negated; servers report it as is. A BM25 score is never
        # negative, so its magnitude is the score either way.
        return {cid: abs(score) for cid, score in self._search("sparse", "BM25", " ".join(words), k, filters)}

    def _search(self, field: str, metric: str, query: Any, k: int, filters: Filters) -> list[tuple[int, float]]:
        """(chunk id, score) of the best ``k`` rows by ``field`` that pass ``filters``."""
        if not self._searchable():
            return []
        with self._errors(f"search {field}"):
            hits = self.client.search(
                self.collection,
                data=[query],
                anns_field=field,
                limit=k,
                filter=expression(filters),
                output_fields=["id"],
                search_params={"metric_type": metric},
                consistency_level=SEARCH_CONSISTENCY,
            )
        return [(int(h["id"]), float(h["distance"])) for h in hits[0]]

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "milvus_uri": self.uri, "collection": self.collection}


def _cut(text: str, limit: int) -> str:
    data = text.encode()
    return text if len(data) <= limit else data[:limit].decode(errors="ignore")
