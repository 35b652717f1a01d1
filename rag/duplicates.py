"""Find syndicated copies: the same story published again with small edits.

Each document gets a MinHash signature (datasketch) of its word 3-grams when it is indexed,
stored with its locality-sensitive band hashes, so finding the candidates for one document is
an indexed SQLite lookup rather than a comparison with every other document. Two documents are
copies when their estimated Jaccard similarity reaches the ``duplicate_threshold`` setting.
Grouping happens when results are shown (``rag.retrieval``), so a changed threshold, an edited
article or a removed copy takes effect at once, with nothing to recompute.

With 32 bands of 4 rows, a pair at similarity 0.7 becomes a candidate with probability
1 - (1 - 0.7**4)**32 > 0.9999, a pair at 0.3 with 0.23; candidates are then checked
against the threshold on the full 128-value signatures.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

NUM_PERM = 128
BANDS = 32
ROWS = NUM_PERM // BANDS
SHINGLE = 3
_WORD = re.compile(r"\w+")


def shingles(text: str) -> set[bytes]:
    words = _WORD.findall(text.lower())
    if len(words) < SHINGLE:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + SHINGLE]).encode() for i in range(len(words) - SHINGLE + 1)}


def signature(text: str) -> npt.NDArray[np.uint64]:
    from datasketch import MinHash  # imported here: only indexing pays for it

    minhash = MinHash(num_perm=NUM_PERM, seed=1)
    minhash.update_batch(list(shingles(text)))
    return np.asarray(minhash.hashvalues, dtype=np.uint64)


def band_hashes(sig: npt.NDArray[np.uint64]) -> list[int]:
    """One 63-bit hash per band (SQLite integers are signed 64-bit)."""
    return [
        int.from_bytes(hashlib.blake2b(sig[b * ROWS : (b + 1) * ROWS].tobytes(), digest_size=8).digest(), "big") >> 1
        for b in range(BANDS)
    ]


def similarity(a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64]) -> float:
    """Estimated Jaccard similarity of the two documents' 3-gram sets."""
    return float(np.mean(a == b))


def from_blob(blob: bytes) -> npt.NDArray[np.uint64]:
    return np.frombuffer(blob, dtype=np.uint64)


def signatures(db: sqlite3.Connection, doc_ids: Iterable[str]) -> dict[str, npt.NDArray[np.uint64]]:
    wanted = list(dict.fromkeys(doc_ids))
    found: dict[str, npt.NDArray[np.uint64]] = {}
    for i in range(0, len(wanted), 500):
        part = wanted[i : i + 500]
        rows = db.execute(
            f"SELECT doc_id, signature FROM signatures WHERE doc_id IN ({','.join('?' * len(part))})", part
        )
        found.update((doc_id, from_blob(blob)) for doc_id, blob in rows)
    return found


MAX_CANDIDATES = 500


def copies_of(db: sqlite3.Connection, doc_id: str, threshold: float) -> list[tuple[str, float]]:
    """Other documents at least ``threshold`` similar to ``doc_id``, most similar first."""
    rows = db.execute(
        "SELECT DISTINCT other.doc_id FROM signature_bands mine "
        "JOIN signature_bands other ON other.band = mine.band AND other.hash = mine.hash "
        "WHERE mine.doc_id = ? AND other.doc_id != ? LIMIT ?",
        (doc_id, doc_id, MAX_CANDIDATES),
    ).fetchall()
    if not rows:
        return []
    found = signatures(db, [doc_id, *(r[0] for r in rows)])
    mine = found.get(doc_id)
    if mine is None:
        return []
    scored = [(other, similarity(mine, sig)) for other, sig in found.items() if other != doc_id]
    return sorted(((o, s) for o, s in scored if s >= threshold), key=lambda pair: -pair[1])
