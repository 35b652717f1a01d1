"""Find source files and turn each into documents with stable ids.

``scan`` walks the paths a user named; ``load_documents`` parses one file's bytes. Neither
raises for a bad file: problems come back as ``Skipped`` entries with a one-line reason.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.ingest import dates, outlets
from rag.ingest.chunking import segments
from rag.ingest.readers import SUPPORTED, Parsed, UnreadableError, read_file
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
    # Every file found, listed or skipped: one skipped now (unreadable, too big) still exists,
    # so what was indexed from it before is kept rather than removed as deleted.
    present: frozenset[str] = frozenset()


def scan(paths: Sequence[str | Path], max_bytes: int | None = None) -> Scan:
    """List supported files under ``paths`` (folders recursively, hidden entries ignored).

    Only regular files (or links to them) of at most ``max_bytes`` are listed: a FIFO would
    block the reader forever and ``/dev/zero`` never ends. Names that are not valid UTF-8
    cannot be stored and are skipped with a reason rather than crashing the run."""
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
                        _add(Path(folder) / name, files, skipped, max_bytes)
        elif path.exists():
            roots.append(Root(path, False))
            _add(path, files, skipped, max_bytes)
        else:
            missing.append(str(raw))
            skipped.append(Skipped(str(raw), "no such file or folder"))
    present = frozenset(str(p) for p in files) | {s.path for s in skipped if s.path not in missing}
    return Scan(tuple(roots), tuple(files), tuple(skipped), tuple(missing), present)


def _add(path: Path, files: dict[Path, None], skipped: list[Skipped], max_bytes: int | None) -> None:
    problem = file_problem(path, max_bytes)
    if problem:
        skipped.append(Skipped(printable(path), problem))
    else:
        files[path] = None


def printable(path: Path | str) -> str:
    """A path as text that can always be printed and stored (bad bytes shown as \\xNN)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def file_problem(path: Path, max_bytes: int | None = None) -> str | None:
    """Why ``path`` cannot be indexed, or ``None`` when it can."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        return "the file name is not valid UTF-8; rename the file"
    if path.suffix.lower() not in SUPPORTED:
        kind = path.suffix or "(no extension)"
        return f"unsupported file type {kind}; supported: {', '.join(SUPPORTED)}"
    try:
        info = path.stat()  # follows a symbolic link to what it points at
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a device, FIFO or socket); only regular files are read"
    if max_bytes is not None and info.st_size > max_bytes:
        return f"{info.st_size / 1e6:.1f} MB is over the {max_bytes / 1e6:g} MB limit (setting max_file_mb)"
    return None


def read_bounded(path: Path, max_bytes: int | None) -> bytes:
    """The file's bytes, refusing one that grew past ``max_bytes`` since it was listed, or that
    is no longer a regular file. Opened without waiting: a FIFO put in a file's place after it
    was checked would otherwise block the reader (and a server's request) until someone wrote."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise OSError("not a regular file (a device, FIFO or socket); only regular files are read")
        data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise OSError(f"over the {max_bytes / 1e6:g} MB limit (setting max_file_mb)")
    return data


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_documents(path: Path, data: bytes) -> tuple[list[Document], list[Skipped]]:
    """Parse one file's bytes into documents; unreadable parts become ``Skipped`` entries, with
    what the reading library logged about the file ("pypdf: EOF marker not found") in the reason."""
    documents: list[Document] = []
    skipped: list[Skipped] = []
    with library_notes() as notes:
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
        except Exception as exc:  # a reader library's own failure is still one file's problem
            skipped.append(Skipped(str(path), failure_reason(exc)))
    return documents, [Skipped(s.path, with_notes(s.reason, notes)) for s in skipped]


# Loggers of this project; any other logger belongs to a library (pypdf, trafilatura, htmldate).
OUR_LOGGERS = ("rag", "embeddings", "ui", "eval")


def is_ours(record: logging.LogRecord) -> bool:
    return record.name.split(".")[0] in OUR_LOGGERS


class _Notes(logging.Handler):
    """Collects what libraries log in one thread while it reads one file."""

    def __init__(self, notes: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.notes = notes
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread and not is_ours(record):
            note = f"{record.name.split('.')[0]}: {' '.join(record.getMessage().split())}"
            if note not in self.notes:
                self.notes.append(note)


@contextmanager
def library_notes() -> Iterator[list[str]]:
    """What reader libraries log while a file is read (the command line prints it only with
    --verbose: a skipped file's reason carries it instead)."""
    notes: list[str] = []
    handler = _Notes(notes)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield notes
    finally:
        root.removeHandler(handler)


def with_notes(reason: str, notes: list[str], limit: int = 200) -> str:
    if not notes:
        return reason
    said = "; ".join(notes)
    return f"{reason} [{said[:limit] + ('…' if len(said) > limit else '')}]"


def failure_reason(exc: BaseException) -> str:
    """A skip reason for an error a reader library raised: its kind and the first line it says."""
    return f"could not be read ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]})"


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
    date, meta = _dated_meta(item.text, item.date, item.date_source, item.meta)
    return Document(doc_id, item.url or where, str(path), title, date, item.text, meta)


def _dated_meta(
    text: str, given: str | None, given_source: str, meta: dict[str, Any]
) -> tuple[str | None, dict[str, Any]]:
    """The document's date and its meta with what the text says about it: the outline (title,
    headings, bylines, date lines and datelines with their offsets: never quoted as an answer),
    where the date came from, the first publication of an updated story, the publisher and the
    outlet a syndicated copy credits. One pass over the text gives them all."""
    parts = segments(text)
    dated = dates.choose(given, given_source, dates.printed_dates(text, parts))
    found: dict[str, Any] = {
        "structure": [[p.start, p.end, p.kind] for p in parts if p.is_structure],
        "date_source": dated.source,
        "published": dated.published,
        "date_notes": list(dated.notes),
        "site": meta.get("site") or outlets.outlet(meta, text, parts),
        "credit": outlets.credit(text, parts),
    }
    return dated.date, {**meta, **{key: value for key, value in found.items() if value}}


def page_document(url: str, body: bytes, kind: str, final_url: str, item_meta: dict[str, str | None]) -> Document:
    """The document in a fetched web page. Its id and source come from the page's canonical URL
    (the same article reached through a feed link with tracking parameters stays one document);
    title, date and author come from the page, and from the feed entry that linked to it where
    the page lacks them. Raises ``UnreadableError``."""
    from urllib.parse import urlsplit

    from rag.ingest.readers import read_html, read_pdf, read_txt

    if kind == "pdf":
        parsed = read_pdf(body)
    elif kind == "text":
        parsed = read_txt(body)
    else:
        parsed = read_html(body, url=final_url)
    if not parsed.text.strip():
        raise UnreadableError("empty document (no text after extraction)")
    canonical = parsed.url if parsed.url and parsed.url.startswith(("http://", "https://")) else final_url
    title = parsed.title or item_meta.get("title") or canonical
    meta: dict[str, Any] = {k: v for k, v in parsed.meta.items() if v}
    if not meta.get("author") and item_meta.get("author"):
        meta["author"] = item_meta["author"]
    if item_meta.get("feed"):
        meta["feed"] = item_meta["feed"]
    given, given_source = parsed.date, parsed.date_source
    if given is None and item_meta.get("date"):
        given, given_source = item_meta["date"], "feed entry"
    date, meta = _dated_meta(parsed.text, given, given_source, meta)
    meta.setdefault("site", urlsplit(canonical).hostname or canonical)
    host = urlsplit(canonical).hostname or "page"
    return Document(
        id=f"{_slug(title if parsed.title or item_meta.get('title') else host)}-"
        f"{hashlib.sha1(canonical.encode()).hexdigest()[:8]}",
        source=canonical,
        path=url,
        title=title,
        date=date,
        text=parsed.text,
        meta=meta,
    )
