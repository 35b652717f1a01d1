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
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from rag.ingest.chunking import segments
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
    """The other publications of ``doc_id``'s article, most similar first: copies of the same
    version, not updates or same-day reports that give other figures (see ``same_version``)."""
    found = copies_of(db, doc_id, min(threshold, CREDITED_MIN))
    if not found:
        return ()
    facts = facts_of(db, [doc_id, *(other for other, _ in found)])
    mine = facts.get(doc_id)
    if mine is None:
        return ()
    return tuple(
        Copy(other, facts[other].title, facts[other].source, facts[other].site, facts[other].date, score)
        for other, score in found
        if other in facts and alike(mine, facts[other], score, threshold) and same_version(mine, facts[other])
    )[:limit]


# A copy that credits the other's outlet in its dateline ("LEEDS (Global Wire) —") says what it
# is: it is grouped from this similarity, below ``duplicate_threshold`` (a copy that cut half the
# article shared 0.40 of its 3-grams with the original, benchmarks/stories.py).
CREDITED_MIN = 0.3


def credits(a: Facts, b: Facts) -> bool:
    """Whether one of the two documents' datelines credits the other's outlet."""
    return any(x.credit is not None and x.credit.casefold() == y.site.casefold() for x, y in ((a, b), (b, a)))


def alike(a: Facts, b: Facts, similarity: float, threshold: float) -> bool:
    """Whether two documents' texts are one article: their similarity reaches ``threshold``, or
    ``CREDITED_MIN`` when one credits the other's outlet."""
    return similarity >= threshold or (similarity >= CREDITED_MIN and credits(a, b))


@dataclass(frozen=True)
class Facts:
    """What deciding "copy or version?" and "which copy is the original?" reads of a document."""

    id: str
    title: str
    source: str
    path: str
    date: str | None
    site: str  # the publisher: the page's or byline's outlet, else the host or file name
    credit: str | None  # the outlet its dateline credits: "(Global Wire)"
    text: str = field(repr=False)

    @functools.cached_property
    def figures(self) -> frozenset[str]:
        """The figures of its prose: not the date line or dateline, which differ between copies."""
        return figures(" ".join(self.text[s.start : s.end] for s in segments(self.text) if not s.is_structure))


def facts_of(db: sqlite3.Connection, doc_ids: Iterable[str]) -> dict[str, Facts]:
    wanted = list(dict.fromkeys(doc_ids))
    found: dict[str, Facts] = {}
    for i in range(0, len(wanted), 500):
        part = wanted[i : i + 500]
        rows = db.execute(
            "SELECT id, title, source, path, date, json_extract(meta, '$.site'), json_extract(meta, '$.credit'), text "
            f"FROM documents WHERE id IN ({','.join('?' * len(part))})",
            part,
        )
        for doc_id, title, source, path, dated, site, credit, text in rows:
            found[doc_id] = Facts(doc_id, title, source, path, dated, site or _site(source), credit, text)
    return found


def _site(source: str) -> str:
    """A publisher name for a document that gave none: the URL's host, or the file's name."""
    host = urlsplit(source).hostname if source.startswith(("http://", "https://")) else None
    return host or os.path.basename(source.split(":")[0]) or source


# Figures: numbers as written ("2,300", "$2.1", "58.4") and the number words news spells out.
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_SPELLED = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty"
)
_NUMBER_WORDS = {word: str(n) for n, word in enumerate(_SPELLED.split())}
_WORDS = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)


def figures(text: str) -> frozenset[str]:
    """The numbers ``text`` gives, written one way: "2,300" and "2300" are one figure."""
    found = {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text)}
    found |= {_NUMBER_WORDS[w.lower()] for w in _WORDS.findall(text)}
    return frozenset(found)


# A syndicated copy runs within a few days of the original; later, the same story is an update.
COPY_WITHIN_DAYS = 3


def same_version(a: Facts, b: Facts) -> bool:
    """Whether two similar documents are copies of one version of a story (a copy may cut a
    paragraph, so one's figures may be a subset of the other's) rather than an update or a
    report that gives other figures: those are shown, never folded under another copy."""
    if a.date and b.date and abs(_days(a.date, b.date)) > COPY_WITHIN_DAYS:
        return False
    return a.figures <= b.figures or b.figures <= a.figures


def _days(a: str, b: str) -> int:
    return (date.fromisoformat(a) - date.fromisoformat(b)).days


def original(copies: list[Facts]) -> Facts:
    """The original of a syndicated article, the same in every run and every process: the
    earliest published copy; among copies of that day, the one whose URL another copy names as
    canonical, then the one whose outlet (og:site_name, byline) another copy's dateline credits,
    then one that credits no other outlet; then the smallest id."""
    dated = [c for c in copies if c.date]
    earliest = min(c.date for c in dated if c.date) if dated else None
    tied = [c for c in copies if c.date == earliest] if earliest else list(copies)
    canonical = {c.source for c in tied if c.source != c.path and c.path.startswith(("http://", "https://"))}
    by_site: dict[str, list[Facts]] = {}
    for c in tied:
        by_site.setdefault(c.site.casefold(), []).append(c)
    credited: dict[str, int] = {}
    for c in tied:
        for named in by_site.get((c.credit or "").casefold(), []):
            if named is not c:
                credited[named.id] = credited.get(named.id, 0) + 1
    return min(
        tied,
        key=lambda c: (
            c.path not in canonical,
            -credited.get(c.id, 0),
            (c.credit or c.site).casefold() != c.site.casefold(),
            c.id,
        ),
    )


class CopyFilter:
    """Groups one search's candidate documents into stories (a document and its syndicated
    copies) and says which copy of each story is shown: a story fills one result slot, not one
    per outlet. Which copy leads must not depend on scores (two copies' scores differ by less
    than the encoder's builds do) or on which copies a search happened to find first, so it is
    a rule on the documents (``original``). Each document is compared with one document per
    story found so far, so the work grows with the stories, not with every pair of candidates;
    a similar document that gives other figures or a later date is a version of its own."""

    def __init__(self, db: sqlite3.Connection, threshold: float, order: list[str]) -> None:
        needed = math.ceil(min(threshold, CREDITED_MIN) * NUM_PERM)  # equal values out of NUM_PERM
        order = list(dict.fromkeys(order))
        found = signatures(db, order)
        facts: dict[str, Facts] = {}

        def of(doc_id: str) -> Facts | None:
            if doc_id not in facts:
                facts.update(facts_of(db, [doc_id]))
            return facts.get(doc_id)

        stories: list[list[str]] = []
        firsts: list[npt.NDArray[np.uint32]] = []  # the first signature of each story that has one
        signed: list[int] = []  # the story each of those belongs to
        for doc_id in order:
            mine = found.get(doc_id)
            if mine is not None and firsts:
                equal = np.count_nonzero(np.stack(firsts) == mine, axis=1)
                joined = False
                for index in np.flatnonzero(equal >= needed):
                    story = stories[signed[int(index)]]
                    a, b = of(doc_id), of(story[0])
                    similar = float(equal[index]) / NUM_PERM
                    if a is not None and b is not None and alike(a, b, similar, threshold) and same_version(a, b):
                        story.append(doc_id)
                        joined = True
                        break
                if joined:
                    continue
            stories.append([doc_id])
            if mine is not None:  # a document without a signature is a story of its own
                firsts.append(mine)
                signed.append(len(stories) - 1)
        self.shown = set()
        for story in stories:
            if len(story) == 1:
                self.shown.add(story[0])
                continue
            members = [f for f in (of(d) for d in story) if f is not None]
            self.shown.add(original(members).id if members else story[0])

    def is_copy(self, doc_id: str) -> bool:
        """Whether ``doc_id`` is a copy that another copy of its story stands for."""
        return doc_id not in self.shown
