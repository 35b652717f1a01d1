"""A FAISS index keyed by integer ids (the chunks' SQLite rowids), saved atomically.

Inner product over L2-normalised vectors, i.e. cosine similarity. ``flat`` is exact
(``IDMap2`` over ``FlatIP``). ``ivf`` is approximate: it stays exact until it holds
``IVF_MIN_VECTORS`` vectors, because an inverted file needs that many to train its clusters,
and then becomes an ``IVFFlat`` keyed by our ids natively. (An ``IDMap2`` around an IVF is
wrong after a removal: the IVF keeps its internal ids while the map shifts them.)
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

_MAGIC = b"RAGFAISS1\n"
IVF_MIN_VECTORS = 20_000
_TRAIN_SAMPLE = 100_000
_CORES = os.cpu_count() or 1

Ids = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]


class IndexFileError(RuntimeError):
    """The index file is missing, truncated or not ours; it can be rebuilt from the store."""


class VectorIndex:
    """Add, remove and search vectors by id; save and load with a JSON stamp beside them."""

    def __init__(self, dim: int, kind: str = "flat", nprobe: int = 16) -> None:
        if kind not in ("flat", "ivf"):
            raise ValueError(f"index kind {kind!r} is unknown; choose 'flat' or 'ivf'")
        self.dim = dim
        self.kind = kind
        self.nprobe = nprobe
        self._index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    @property
    def is_approximate(self) -> bool:
        return isinstance(self._index, faiss.IndexIVF)

    def add(self, ids: Ids, vectors: Vectors) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}")
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
        if self.kind == "ivf" and not self.is_approximate and self.count >= IVF_MIN_VECTORS:
            self._to_ivf()

    def remove(self, ids: Ids) -> int:
        if len(ids) == 0:
            return 0
        return int(self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))

    def search(self, queries: Vectors, k: int, allowed_ids: Ids | None = None) -> tuple[npt.NDArray[np.float32], Ids]:
        """Top ``k`` (scores, ids) per query, among ``allowed_ids`` if given; missing slots are -1.

        The restriction happens inside the search, so a narrow filter still gets k results.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.count == 0 or k <= 0 or (allowed_ids is not None and len(allowed_ids) == 0):
            shape = (len(queries), max(k, 0))
            return np.zeros(shape, dtype=np.float32), np.full(shape, -1, dtype=np.int64)
        k = min(k, self.count)
        # One query scans memory at bandwidth speed; OpenMP's thread start-up costs more than a
        # second thread gains (8.7 vs 13 ms at 100k x 384 here). Batches keep every core.
        faiss.omp_set_num_threads(1 if len(queries) < 8 else _CORES)
        if allowed_ids is None:
            scores, ids = self._index.search(queries, k)
            return scores, ids
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids, dtype=np.int64))
        params: Any = faiss.SearchParametersIVF() if self.is_approximate else faiss.SearchParameters()
        params.sel = selector
        if self.is_approximate:
            params.nprobe = self.nprobe
        scores, ids = self._index.search(queries, k, params=params)
        return scores, ids

    def ids(self) -> Ids:
        if not self.is_approximate:
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        lists = self._index.invlists
        parts = [
            faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
            for i in range(self._index.nlist)
            if lists.list_size(i)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)

    def vectors(self, ids: Ids) -> dict[int, Vectors]:
        """The stored vectors of ``ids`` that this index holds (a missing id is left out).

        Read from memory: hybrid search scores the keyword side's candidates with them, which
        from SQLite's embedding cache cost up to 100 ms a question at 1M chunks when its pages
        were not in the page cache."""
        wanted = np.ascontiguousarray(ids, dtype=np.int64)
        if wanted.size == 0 or self.count == 0:
            return {}
        try:
            return dict(zip(wanted.tolist(), self._index.reconstruct_batch(wanted), strict=True))
        except RuntimeError:  # one id is not held (removed meanwhile): take them one by one
            found: dict[int, Vectors] = {}
            for cid in wanted.tolist():
                try:
                    found[cid] = self._index.reconstruct(cid)
                except RuntimeError:
                    continue
            return found

    def _to_ivf(self) -> None:
        """Retrain as an inverted file over every vector held now."""
        ids = self.ids()
        vectors = self._index.index.reconstruct_n(0, self.count)
        nlist = max(16, int(math.sqrt(len(ids))))
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        sample = vectors[rng.choice(len(vectors), min(len(vectors), _TRAIN_SAMPLE), replace=False)]
        ivf.train(sample)
        ivf.nprobe = self.nprobe
        _map_ids(ivf)
        ivf.add_with_ids(vectors, ids)
        self._index = ivf

    def set_nprobe(self, nprobe: int) -> None:
        """Clusters an approximate index searches: more finds more of the exact top k, slower."""
        self.nprobe = nprobe
        if self.is_approximate:
            self._index.nprobe = nprobe

    # --- persistence --------------------------------------------------------------------

    def all_finite(self) -> bool:
        """False when a stored vector holds NaN or infinity (a damaged file or cache)."""
        if self.count == 0:
            return True
        if self.is_approximate:
            lists = self._index.invlists
            parts = (
                faiss.rev_swig_ptr(lists.get_codes(i), lists.list_size(i) * self.dim * 4).view(np.float32)
                for i in range(self._index.nlist)
                if lists.list_size(i)
            )
            return all(bool(np.isfinite(part).all()) for part in parts)
        flat: Any = faiss.downcast_index(self._index.index)
        return bool(np.isfinite(faiss.rev_swig_ptr(flat.get_xb(), self.count * self.dim)).all())

    def save(self, path: Path, stamp: dict[str, Any]) -> None:
        """Write index and stamp as one file, atomically: readers see the old or the new.

        The stamp carries a CRC of the FAISS bytes, so a file damaged after it was written is
        refused on load rather than searched."""
        payload = faiss.serialize_index(self._index)
        crc = zlib.crc32(payload.data)
        header = json.dumps({**stamp, "dim": self.dim, "kind": self.kind, "count": self.count, "crc32": crc}).encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_MAGIC + struct.pack("<I", len(header)) + header)
                fh.write(payload.tobytes())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)

    @classmethod
    def load(cls, path: Path, nprobe: int = 16) -> tuple[VectorIndex, dict[str, Any]]:
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise IndexFileError(f"no index file at {path}") from exc
        if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 4:
            raise IndexFileError(f"{path} is not a rag index file")
        offset = len(_MAGIC)
        (size,) = struct.unpack_from("<I", data, offset)
        offset += 4
        try:
            stamp = json.loads(data[offset : offset + size])
            body = np.frombuffer(data, dtype=np.uint8, offset=offset + size)
            if "crc32" in stamp and zlib.crc32(body.data) != stamp["crc32"]:
                raise ValueError("its checksum does not match: the file was changed after it was written")
            index = faiss.deserialize_index(body)
        except (ValueError, RuntimeError, TypeError) as exc:
            raise IndexFileError(f"{path} is damaged ({exc})") from exc
        self = cls(int(stamp["dim"]), stamp.get("kind", "flat"), nprobe)
        self._index = index
        if self.is_approximate:
            self._index.nprobe = nprobe
            _map_ids(self._index)  # a file saved before vectors() existed has no map
        if self.count != stamp.get("count"):
            raise IndexFileError(f"{path} holds {self.count} vectors but its stamp says {stamp.get('count')}")
        if not self.all_finite():
            raise IndexFileError(f"{path} is damaged (it holds NaN or infinite vectors)")
        return self, stamp


def _map_ids(ivf: Any) -> None:
    """Let an inverted file find a vector by its id (``reconstruct``), and keep that map through
    adds and removals: a hash table (about 40 bytes a vector; any ids, unlike FAISS's array)."""
    hashtable = faiss.DirectMap.Hashtable  # type: ignore[attr-defined]
    if ivf.direct_map.type != hashtable:
        ivf.set_direct_map_type(hashtable)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_stamp(path: Path) -> dict[str, Any] | None:
    """The stamp of an index file without loading its vectors; ``None`` if unreadable."""
    try:
        with path.open("rb") as fh:
            head = fh.read(len(_MAGIC) + 4)
            if len(head) < len(_MAGIC) + 4 or not head.startswith(_MAGIC):
                return None
            (size,) = struct.unpack_from("<I", head, len(_MAGIC))
            stamp: dict[str, Any] = json.loads(fh.read(size))
            return stamp
    except (OSError, ValueError):
        return None
