"""Small helpers for what people read: "1 document", "2 documents"."""

from __future__ import annotations


def noun_for(n: int, noun: str, plural: str | None = None) -> str:
    """``noun``, in the plural unless ``n`` is one."""
    return noun if n == 1 else plural or noun + "s"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, in the plural unless ``n`` is one: "1 document", "2 documents"."""
    return f"{n} {noun_for(n, noun, plural)}"
