"""Find source files and turn each into documents with stable ids.

``scan`` walks the paths a user named; ``load_documents`` parses one file's bytes. Neither
raises for a bad file: problems come back as ``Skipped`` entries with a one-line reason.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.readers import SUPPORTED, Parsed, UnreadableError, read_file
from rag.types import Document, Skipped


@dataclass(frozen=True)
class Root:
    """A path the user named, resolved; folders own the files found under them."""

    path: Path
    is_dir: bool

    def owns(self, file_path: str) -> bool:
        if self.is_dir:
            return file_path.startswith(str(self.path) + os.sep)
        return file_path == str(self.path)


@dataclass(frozen=True)
class Scan:
    roots: tuple[Root, ...]
    files: tuple[Path, ...]
    skipped: tuple[Skipped, ...]
    missing: tuple[str, ...]


def scan(paths: Sequence[str | Path]) -> Scan:
    """List supported files under ``paths`` (folders recursively, hidden entries ignored)."""
    roots: list[Root] = []
    files: dict[Path, None] = {}  # ordered set: a file named twice is read once
    skipped: list[Skipped] = []
    missing: list[str] = []
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if path.is_dir():
            roots.append(Root(path, True))
            for folder, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if not name.startswith("."):
                        _add(Path(folder) / name, files, skipped)
        elif path.is_file():
            roots.append(Root(path, False))
            _add(path, files, skipped)
        else:
            missing.append(str(raw))
            skipped.append(Skipped(str(raw), "no such file or folder"))
    return Scan(tuple(roots), tuple(files), tuple(skipped), tuple(missing))


def _add(path: Path, files: dict[Path, None], skipped: list[Skipped]) -> None:
    if path.suffix.lower() in SUPPORTED:
        files[path] = None
    else:
        kind = path.suffix or "(no extension)"
        skipped.append(Skipped(str(path), f"unsupported file type {kind}; supported: {', '.join(SUPPORTED)}"))


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_documents(path: Path, data: bytes) -> tuple[list[Document], list[Skipped]]:
    """Parse one file's bytes into documents; unreadable parts become ``Skipped`` entries."""
    documents: list[Document] = []
    skipped: list[Skipped] = []
    try:
        for item in read_file(path.suffix.lower(), data):
            if isinstance(item, UnreadableError):
                skipped.append(Skipped(str(path), str(item)))
            elif not item.text.strip():
                skipped.append(Skipped(_where(path, item), "empty document (no text after extraction)"))
            else:
                documents.append(_to_document(path, item))
    except UnreadableError as exc:
        skipped.append(Skipped(str(path), str(exc)))
    return documents, skipped


def _where(path: Path, item: Parsed) -> str:
    return f"{path}:{item.line}" if item.line is not None else str(path)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-")[:48] or "doc"


def _to_document(path: Path, item: Parsed) -> Document:
    where = _where(path, item)
    if item.record_id is not None:
        doc_id = item.record_id
    else:
        # The name keeps ids readable; the hash of where it came from keeps them unique
        # and stable across runs as long as the file stays where it is.
        anchor = item.url or where
        doc_id = f"{_slug(path.stem)}-{hashlib.sha1(anchor.encode()).hexdigest()[:8]}"
    title = item.title or path.stem.replace("_", " ").replace("-", " ").strip() or path.name
    return Document(
        id=doc_id,
        source=item.url or where,
        path=str(path),
        title=title,
        date=item.date,
        text=item.text,
        meta=item.meta,
    )
