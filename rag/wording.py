"""Small helpers for what people read: "1 document", "2 documents"."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, in the plural unless ``n`` is one."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
