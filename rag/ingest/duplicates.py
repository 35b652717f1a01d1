"""Find syndicated copies: the same story published again with small edits.

Each document gets a MinHash signature (datasketch) of its word 3-grams when it is indexed,
stored with its locality-sensitive band hashes, so finding the candidates for one document is
an indexed SQLite lookup rather than a comparison with every other document. Two documents are
copies when their estimated Jaccard similarity reaches the ``duplicate_threshold`` setting.
Grouping happens when results are shown (``rag.search.retrieval``), so a changed threshold, an edited
article or a removed copy takes effect at once, with nothing to recompute.

With 42 bands of 3 rows, a pair at similarity 0.5 becomes a candidate with probability
1 - (1 - 0.5**3)**42 = 0.996, a pair at 0.1 with 0.04 and unrelated articles (similarity near
0.01) almost never; candidates are then checked against the threshold on the full 128-value
signatures (benchmarks/near_duplicates.py measured both sides).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import sqlite3
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from rag.types import Copy

NUM_PERM = 128
BANDS = 42
ROWS = 3  # 126 of the 128 values are banded
SHINGLE = 3
_WORD = re.compile(r"\w+")


def shingles(text: str) -> set[bytes]:
    words = _WORD.findall(text.lower())
    if len(words) < SHINGLE:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + SHINGLE]).encode() for i in range(len(words) - SHINGLE + 1)}


def signature(text: str) -> npt.NDArray[np.uint32]:
    from datasketch import MinHash  # imported here: only indexing pays for it

    # Named, not left to the default: stored signatures stay comparable across datasketch versions.
    minhash = MinHash(num_perm=NUM_PERM, seed=1, scheme="affine32", permutations=_permutations())
    minhash.update_batch(list(shingles(text)))
    return np.asarray(minhash.hashvalues, dtype=np.uint32)


@functools.lru_cache(maxsize=1)
def _permutations() -> Any:
    """The seed's permutations, drawn once: MinHash draws them again for every document
    otherwise (a quarter of a millisecond each)."""
    from datasketch import MinHash

    return MinHash(num_perm=NUM_PERM, seed=1, scheme="affine32").permutations


def band_hashes(sig: npt.NDArray[np.uint32]) -> list[int]:
    """One 63-bit hash per band (SQLite integers are signed 64-bit)."""
    return [
        int.from_bytes(hashlib.blake2b(sig[b * ROWS : (b + 1) * ROWS].tobytes(), digest_size=8).digest(), "big") >> 1
        for b in range(BANDS)
    ]


def similarity(a: npt.NDArray[np.uint32], b: npt.NDArray[np.uint32]) -> float:
    """Estimated Jaccard similarity of the two documents' 3-gram sets."""
    return float(np.mean(a == b))


def from_blob(blob: bytes) -> npt.NDArray[np.uint32]:
    return np.frombuffer(blob, dtype=np.uint32)


def signatures(db: sqlite3.Connection, doc_ids: Iterable[str]) -> dict[str, npt.NDArray[np.uint32]]:
    wanted = list(dict.fromkeys(doc_ids))
    found: dict[str, npt.NDArray[np.uint32]] = {}
    for i in range(0, len(wanted), 500):
        part = wanted[i : i + 500]
        try:
            rows = db.execute(
                f"SELECT doc_id, signature FROM signatures WHERE doc_id IN ({','.join('?' * len(part))})", part
            ).fetchall()
        except sqlite3.OperationalError:  # a store from before signatures, opened read-only
            return {}
        found.update((doc_id, from_blob(blob)) for doc_id, blob in rows)
    return found


MAX_CANDIDATES = 500


def copies_of(db: sqlite3.Connection, doc_id: str, threshold: float) -> list[tuple[str, float]]:
    """Other documents at least ``threshold`` similar to ``doc_id``, most similar first."""
    try:
        rows = db.execute(
            "SELECT DISTINCT other.doc_id FROM signature_bands mine "
            "JOIN signature_bands other ON other.band = mine.band AND other.hash = mine.hash "
            "WHERE mine.doc_id = ? AND other.doc_id != ? LIMIT ?",
            (doc_id, doc_id, MAX_CANDIDATES),
        ).fetchall()
    except sqlite3.OperationalError:  # a store from before signatures, opened read-only
        return []
    if not rows:
        return []
    found = signatures(db, [doc_id, *(r[0] for r in rows)])
    mine = found.get(doc_id)
    if mine is None:
        return []
    scored = [(other, similarity(mine, sig)) for other, sig in found.items() if other != doc_id]
    return sorted(((o, s) for o, s in scored if s >= threshold), key=lambda pair: -pair[1])


def copies(db: sqlite3.Connection, doc_id: str, threshold: float, limit: int = 10) -> tuple[Copy, ...]:
    """The other publications of ``doc_id``'s article, most similar first."""
    found = copies_of(db, doc_id, threshold)[:limit]
    if not found:
        return ()
    marks = ",".join("?" * len(found))
    rows = {
        row[0]: row[1:]
        for row in db.execute(
            f"SELECT id, title, source, date, json_extract(meta, '$.site') FROM documents WHERE id IN ({marks})",
            [other for other, _ in found],
        )
    }
    return tuple(
        Copy(other, title, source, site or _site(source), date, score)
        for other, score in found
        if other in rows
        for title, source, date, site in [rows[other]]
    )


def _site(source: str) -> str:
    """A publisher name for a document that gave none: the URL's host, or the file's name."""
    host = urlsplit(source).hostname if source.startswith(("http://", "https://")) else None
    return host or os.path.basename(source.split(":")[0]) or source


class CopyFilter:
    """Groups one search's candidate documents into stories (a document and its syndicated
    copies) and says which copy of each story is shown: a story fills one result slot, not one
    per outlet. Which copy leads must not depend on scores (two copies' scores differ by less
    than the encoder's builds do), so it is a rule on the documents: the earliest dated, then
    the smallest id. Each document is compared with one document per story found so far, so
    the work grows with the stories, not with every pair of candidates."""

    def __init__(
        self, db: sqlite3.Connection, threshold: float, order: list[str], dates: dict[str, str | None]
    ) -> None:
        needed = math.ceil(threshold * NUM_PERM)  # equal values out of NUM_PERM
        order = list(dict.fromkeys(order))
        found = signatures(db, order)
        stories: list[list[str]] = []
        firsts: list[npt.NDArray[np.uint32]] = []  # the first signature of each story that has one
        signed: list[int] = []  # the story each of those belongs to
        for doc_id in order:
            mine = found.get(doc_id)
            if mine is not None and firsts:
                same = np.flatnonzero(np.count_nonzero(np.stack(firsts) == mine, axis=1) >= needed)
                if same.size:
                    stories[signed[int(same[0])]].append(doc_id)
                    continue
            stories.append([doc_id])
            if mine is not None:  # a document without a signature is a story of its own
                firsts.append(mine)
                signed.append(len(stories) - 1)
        self.shown = {min(story, key=lambda d: (dates.get(d) is None, dates.get(d) or "", d)) for story in stories}

    def is_copy(self, doc_id: str) -> bool:
        """Whether ``doc_id`` is a copy that another copy of its story stands for."""
        return doc_id not in self.shown
