"""A document's date, and where it came from: what the article prints wins over file metadata.

News text says when it was written: a "Published March 4, 2026" or "Updated Sept. 18, 2026" line
under the headline, or a dateline ("BALTIMORE, March 4, 2026 —"). A PDF's CreationDate is the day
the file was made and a web page's guessed date is a guess, so both give way to a printed line.
Metadata someone wrote on purpose (Markdown front matter, a JSONL record's "date", a page's
published-time tags, the sample corpus's "date" header) is kept as given.

A document's ``date`` is the day its text is as of: the printed update when there is one, else
the publication; the first publication is kept in ``meta["published"]``. So ``--since`` finds the
version of a story that was updated in the period, and the newest version of a story is the one
with the latest date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date as Date
from typing import Any

from rag.ingest.chunking import Segment
from rag.ingest.readers import written_date

# Where a date came from, in the words ``rag show`` prints.
PRINTED = ("published line", "updated line", "dateline")
# Metadata written on purpose: kept over what the text prints.
DELIBERATE = ("front matter", "record", "date header", "page metadata", "feed entry")
# Metadata of the file or a guess: a printed date wins over it.
INCIDENTAL = ("PDF metadata", "page text")

# Printed dates are looked for in the first segments of the text, near the top.
_WITHIN_CHARS = 2000
_WITHIN_SEGMENTS = 8
_WRITTEN = r"(?:[A-Za-z]{3,9}\.? \d{1,2},? \d{4}|\d{1,2} [A-Za-z]{3,9}\.? \d{4}|\d{4}-\d{2}-\d{2})"
_PUBLISHED = re.compile(r"\b(?:first published|published|posted)(?: on)?\s*:?\s*(" + _WRITTEN + ")", re.IGNORECASE)
_UPDATED = re.compile(r"\b(?:last updated|updated)(?: on)?\s*:?\s*(" + _WRITTEN + ")", re.IGNORECASE)
_BARE = re.compile(r"(?:date\s*:?\s*)?(?:[A-Za-z]+day,? )?(" + _WRITTEN + r")\b", re.IGNORECASE)
_IN_DATELINE = re.compile(r"([A-Z][a-z]{2,8}\.? \d{1,2}, \d{4}|\d{1,2} [A-Z][a-z]{2,8} \d{4})")


@dataclass(frozen=True)
class Printed:
    """The dates a document's text prints near its top."""

    published: str | None = None
    updated: str | None = None
    dateline: str | None = None


@dataclass(frozen=True)
class Dated:
    """A document's date, where it came from, and what a reader should know about it."""

    date: str | None
    source: str  # one of PRINTED, DELIBERATE or INCIDENTAL; "" when there is none
    published: str | None = None  # the first publication, when the date is a later update
    notes: tuple[str, ...] = ()


def printed_dates(text: str, parts: list[Segment]) -> Printed:
    """The publication and update lines and the dateline among the first segments of ``text``."""
    published = updated = dateline = None
    for segment in parts[:_WITHIN_SEGMENTS]:
        if segment.end > _WITHIN_CHARS:
            break
        line = text[segment.start : segment.end]
        if segment.kind == "dateline" and dateline is None:
            found = _IN_DATELINE.search(line)
            dateline = written_date(found.group(1)) if found else None
            continue
        if segment.kind not in ("date", "byline"):
            continue
        # "By Kevin Walsh · Published Oct. 20, 2026" is a byline holding a date line.
        said_published = _PUBLISHED.search(line)
        said_updated = _UPDATED.search(line)
        if said_published and published is None:
            published = written_date(said_published.group(1))
        if said_updated and updated is None:
            updated = written_date(said_updated.group(1))
        if segment.kind == "date" and not (said_published or said_updated) and published is None:
            bare = _BARE.match(line)
            published = written_date(bare.group(1)) if bare else None
    return Printed(published, updated, dateline)


def choose(given: str | None, given_source: str, printed: Printed, today: Date | None = None) -> Dated:
    """The document's date from what its reader found (``given``, from ``given_source``) and what
    its text prints. Contradictions and a date after ``today`` are kept as notes, not errors."""
    notes: list[str] = []
    date: str | None
    if given and given_source in DELIBERATE:
        date, source = given, given_source
    elif printed.published or printed.dateline:
        date, source = (printed.published, "published line") if printed.published else (printed.dateline, "dateline")
    elif printed.updated:
        date, source = printed.updated, "updated line"
    else:
        date, source = given, given_source if given else ""
    published = None
    if printed.updated and date and printed.updated > date and source != "updated line":
        # The text is as of its update; the first publication stays known.
        published, date, source = date, printed.updated, "updated line"
    others = (
        ("the published line", printed.published),
        ("the dateline", printed.dateline),
        (f"the {given_source}", given if given_source else None),
    )
    for name, other in others:
        if other and date and other not in (date, published) and abs(_days(other, published or date)) > 1:
            notes.append(f"{name} says {other}")
    if date and date > (today or Date.today()).isoformat():
        notes.append("the date is later than the day it was indexed")
    return Dated(date, source, published, tuple(notes))


def _days(a: str, b: str) -> int:
    return (Date.fromisoformat(a) - Date.fromisoformat(b)).days


# How ``rag show`` and the web chat's reader name where a date came from.
SOURCE_WORDS = {
    "published line": "printed Published line",
    "updated line": "printed Updated line",
    "dateline": "dateline",
    "front matter": "front matter",
    "record": "record's date",
    "date header": "date header",
    "page metadata": "page's metadata",
    "feed entry": "feed entry",
    "PDF metadata": "PDF's CreationDate (no date is printed in it)",
    "page text": "page's text (a guess; no date is printed near the top)",
}


def describe(date: str | None, meta: dict[str, Any]) -> str:
    """ "2026-09-18, from the printed Updated line (first published 2026-03-04)", or "no date"."""
    if not date:
        return "no date (none printed, none in the file's metadata)"
    source = meta.get("date_source")
    line = f"{date}, from the {SOURCE_WORDS.get(source, source)}" if source else date
    if meta.get("published"):
        line += f" (first published {meta['published']})"
    notes = meta.get("date_notes") or []
    return line + (f"; note: {'; '.join(notes)}" if notes else "")
