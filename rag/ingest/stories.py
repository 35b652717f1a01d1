"""Stories: the documents that report one story, linked when they are indexed.

A story is reported, updated, corrected and republished. Two documents report one story when
their leads say the same thing (the cosine of their first chunks' vectors, which indexing
computed anyway) and they name the same people, places and organisations, within about a year
of each other. Syndicated copies (near-identical text,
``rag.ingest.duplicates``) are always one story. ``benchmarks/stories.py`` measured the rule and
chose its two thresholds on a story set with same-topic distractors (another city's tunnel,
another county's measles outbreak).

Links are stored (``story_links``), one row per linked pair, so a story is a lookup: the
documents reachable from one document by links. Which of a story's documents is a copy of
another and which a later version is decided when they are shown (``same_version``).
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from rag.ingest import duplicates
from rag.storage.store import Store
from rag.types import Document

# Fitted on the story set (benchmarks/stories.py): two documents that share a proper name are one
# story when the cosine of their leads, plus a quarter of the share of names they share, reaches
# LINK_MIN. There, same-story pairs scored 0.75 or more and the closest distractors (another
# county's measles outbreak, another state's wildfire) 0.65 or less.
LINK_MIN = 0.7
NAMES_WEIGHT = 0.25
WINDOW_DAYS = 400
# Signature similarity from which two documents are one story whatever else they say.
SIMILAR = 0.3
# Documents read as candidates for a new document's story, and a story's size when looked up.
CANDIDATES = 60
MAX_STORY = 100
# Names are read from a document's title and lead (its first characters): a story is told there,
# and reading whole long documents made linking cost 20 ms a document (413 reviews, 2 cores).
LEAD_CHARS = 1500
QUERY_NAMES = 16

_NAME = re.compile(r"\b[A-Z][\w'’-]*[A-Za-z]\b")
_COMMON = """the a an and but or in on at of for to by from with as after before this that these those it its he she
    they we you i his her their our mr mrs ms dr about more most some many all no not new news update updated
    published posted first last monday tuesday wednesday thursday friday saturday sunday january february march
    april may june july august september october november december jan feb mar apr jun jul aug sep sept oct nov
    dec there here what when where why how who which while since until than then if so also said says"""
_NOT_NAMES = frozenset(_COMMON.split())


def names(text: str) -> frozenset[str]:
    """The proper names ``text`` uses: capitalised words it never writes in lower case (so a
    sentence's first word is not a name), folded to lower case ("BALTIMORE" is "baltimore")."""
    lower = set(re.findall(r"\b[a-z][\w'’-]*\b", text))
    found = set()
    for word in _NAME.findall(text):
        folded = word.lower()
        if folded not in _NOT_NAMES and folded not in lower and len(folded) > 1:
            found.add(folded)
    return frozenset(found)


@functools.lru_cache(maxsize=4096)
def _lead_names(title: str, lead: str) -> frozenset[str]:
    """A candidate's names, kept: the same documents are candidates for many new ones."""
    return names(f"{title}\n{lead}")


def overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """The share of the shorter list of names that the other list holds too."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def linked(names_share: float, lead: float, gap_days: int | None, similarity: float) -> bool:
    """Whether two documents report one story (the rule ``benchmarks/stories.py`` measured).
    ``gap_days`` is None when either is undated: then only a copy links them. A story is told
    over time, and papers or posts with no date that share a topic and its names are not one
    story's versions (linked, COVID-QA's papers on the new coronavirus answered from each
    other's sentences: contains-gold 0.61 fell to 0.43, benchmarks/answer_quality.py)."""
    if similarity >= SIMILAR:
        return True
    if gap_days is None or abs(gap_days) > WINDOW_DAYS:
        return False
    return names_share > 0 and lead + NAMES_WEIGHT * names_share >= LINK_MIN


def link(store: Store, doc: Document, model: str) -> list[tuple[str, float]]:
    """Find and store the links from ``doc`` (already stored, with its chunks' vectors cached) to
    the other documents of its story. Returns (other id, lead cosine) for each link."""
    db = store.db
    opening = f"{doc.title}\n{doc.text[:LEAD_CHARS]}"
    mine = names(opening)
    # The documents sharing a signature band, with their similarity: candidates, and the score
    # that links a copy whatever else it says (one band lookup serves both).
    similar = dict(duplicates.copies_of(db, doc.id, 0.0))
    candidates = _candidates(db, doc.id, mine, opening, list(similar))
    leads = _lead_vectors(db, model, [doc.id, *candidates])
    lead = leads.get(doc.id)
    links = []
    for other, title, date_, start in _leads(db, candidates):
        cosine = float(lead @ leads[other]) if lead is not None and other in leads else 0.0
        gap = _days(doc.date, date_) if doc.date and date_ else None
        if linked(overlap(mine, _lead_names(title, start)), cosine, gap, similar.get(other, 0.0)):
            links.append((other, round(cosine, 4)))
    store.put_story_links(doc.id, links)
    return links


def _leads(db: sqlite3.Connection, doc_ids: list[str]) -> list[tuple[str, str, str | None, str]]:
    """(id, title, date, the first LEAD_CHARS characters) of each document."""
    if not doc_ids:
        return []
    marks = ",".join("?" * len(doc_ids))
    rows = db.execute(f"SELECT id, title, date, substr(text, 1, ?) FROM documents WHERE id IN ({marks})",
                      (LEAD_CHARS, *doc_ids))  # fmt: skip
    return [(str(i), str(t), d, str(x)) for i, t, d, x in rows]


def _candidates(db: sqlite3.Connection, doc_id: str, mine: frozenset[str], lead: str, banded: list[str]) -> list[str]:
    """The ``banded`` documents (sharing a signature band with ``doc_id``), then those that use
    its first names the most (BM25 over the chunks)."""
    found = dict.fromkeys(banded)
    if mine:
        lowered = lead.lower()
        first = sorted(mine, key=lambda name: (lowered.find(name), name))[:QUERY_NAMES]
        query = " OR ".join(f'"{name}"' for name in first)
        rows = db.execute(
            "SELECT DISTINCT c.doc_id FROM (SELECT rowid, rank FROM chunks_fts WHERE chunks_fts MATCH ? "
            "ORDER BY rank LIMIT ?) hit JOIN chunks c ON c.id = hit.rowid",
            (query, CANDIDATES * 3),
        )
        found.update(dict.fromkeys(r[0] for r in rows))
    found.pop(doc_id, None)
    return list(found)[:CANDIDATES]


def _lead_vectors(db: sqlite3.Connection, model: str, doc_ids: list[str]) -> dict[str, np.ndarray]:
    marks = ",".join("?" * len(doc_ids))
    rows = db.execute(
        "SELECT c.doc_id, e.vector FROM chunks c JOIN embeddings e ON e.model = ? AND e.text_hash = c.text_hash "
        f"WHERE c.ordinal = 0 AND c.doc_id IN ({marks})",
        (model, *doc_ids),
    )
    return {doc_id: np.frombuffer(blob, dtype=np.float32) for doc_id, blob in rows}


def _days(a: str, b: str) -> int:
    return (date.fromisoformat(a) - date.fromisoformat(b)).days


def story(store: Store, doc_id: str, limit: int = MAX_STORY) -> list[str]:
    """The documents of ``doc_id``'s story (itself included), nearest links first, at most
    ``limit`` of them."""
    seen = [doc_id]
    frontier = [doc_id]
    while frontier and len(seen) < limit:
        neighbours = store.story_neighbours(frontier)
        frontier = []
        for current in sorted(neighbours):
            for other in sorted(neighbours[current]):
                if other not in seen and len(seen) < limit:
                    seen.append(other)
                    frontier.append(other)
    return seen


@dataclass(frozen=True)
class Version:
    """One version of a story: a report, and the syndicated copies of it that run elsewhere."""

    report: duplicates.Facts  # the original (``duplicates.original``) of its copies
    copies: tuple[duplicates.Facts, ...] = ()


def versions(store: Store, doc_id: str, threshold: float) -> list[Version]:
    """The versions of ``doc_id``'s story: its documents with syndicated copies (signature
    similarity at least ``threshold``, the same figures, days apart) grouped under their
    original. With ``threshold`` 0 (grouping off) every document is a version of its own."""
    ids = story(store, doc_id)
    facts = duplicates.facts_of(store.db, ids)
    signed = duplicates.signatures(store.db, ids) if threshold > 0 else {}
    groups: list[list[duplicates.Facts]] = []
    for other in ids:
        mine = facts.get(other)
        if mine is None:
            continue
        for group in groups:
            first = group[0]
            a, b = signed.get(other), signed.get(first.id)
            similar = (
                a is not None
                and b is not None
                and duplicates.alike(mine, first, duplicates.similarity(a, b), threshold)
            )
            if similar and duplicates.same_version(mine, first):
                group.append(mine)
                break
        else:
            groups.append([mine])
    out = []
    for group in groups:
        lead = duplicates.original(group)
        out.append(Version(lead, tuple(sorted((c for c in group if c is not lead), key=lambda c: c.id))))
    return out


def relations(doc_id: str, versions: Sequence[Version]) -> list[tuple[str, str, str | None, str, str]]:
    """The other reports of a document's story, oldest first, each as (id, relation, date, title,
    outlet): "earlier", "same day", "updated" (later, by the same outlet), "later" (by another),
    "copy" (a syndicated copy of this document) or "copy of OUTLET's report"."""
    if len(versions) < 2 and not any(v.copies for v in versions):
        return []
    mine = next((v for v in versions if doc_id in {v.report.id, *(c.id for c in v.copies)}), None)
    here = next((f for v in versions for f in (v.report, *v.copies) if f.id == doc_id), None)
    lines = []
    for version in versions:
        for facts in (version.report, *version.copies):
            if facts.id == doc_id:
                continue
            if version is mine:
                relation = "copy"
            elif facts is not version.report:
                relation = f"copy of {version.report.site}'s report,"
            elif here is not None and here.date and facts.date and facts.date < here.date:
                relation = "earlier"
            elif here is not None and facts.date == here.date:
                relation = "same day"
            else:
                relation = "updated" if here is not None and facts.site == here.site else "later"
            lines.append((facts.id, relation, facts.date, facts.title, facts.site))
    return sorted(lines, key=lambda line: (line[2] is None, line[2] or "", line[0]))
