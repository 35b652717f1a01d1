"""Who published a document, and whom its dateline credits.

"Also published by" should name outlets, not files: a page names its site (``og:site_name``);
a Markdown file may say ``site:`` (or ``publisher:``, ``outlet:``) in its front matter, and a
byline often ends with the outlet ("By Marcus Bell, Harbor Herald"). A syndicated copy credits
the outlet it took the story from in its dateline ("LEEDS (Global Wire) —"), which is how the
original of a syndicated story is told from its copies when both carry the same date
(rag.ingest.duplicates).
"""

from __future__ import annotations

import re
from typing import Any

from rag.ingest.chunking import Segment

_FRONT_MATTER_KEYS = ("site", "publisher", "outlet", "publication")
# A byline's last part that names a role, not an outlet: "By Anna Lee, Health Reporter".
_ROLES = re.compile(
    r"\b(?:reporter|correspondent|editor|writer|staff|contributor|columnist|journalist|analyst|photographer|"
    r"intern|producer|bureau|chief|senior|special)\b",
    re.IGNORECASE,
)
_OUTLET = re.compile(r"[A-Z][\w'’&.-]*(?: [\w'’&.-]+){0,5}")
_CREDIT = re.compile(r"\(([^()\d]{2,40})\)")


def outlet(meta: dict[str, Any], text: str, parts: list[Segment]) -> str | None:
    """The document's publisher: its front matter or page metadata, else its byline's end."""
    for key in _FRONT_MATTER_KEYS:
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    for segment in parts[:6]:
        if segment.kind != "byline":
            continue
        pieces = re.split(r"\s*[,|]\s*", text[segment.start : segment.end])
        for piece in reversed(pieces[1:]):
            piece = piece.strip()
            if _OUTLET.fullmatch(piece) and not _ROLES.search(piece) and not any(ch.isdigit() for ch in piece):
                return piece
    return None


def credit(text: str, parts: list[Segment]) -> str | None:
    """The outlet a dateline credits: "Global Wire" in "LEEDS (Global Wire) —"."""
    for segment in parts[:8]:
        if segment.kind == "dateline":
            found = _CREDIT.search(text, segment.start, segment.end)
            return found.group(1).strip() if found else None
    return None
