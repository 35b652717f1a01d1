"""What the web chat's events call: answering, saved conversations, the document library and
uploads, over one or more collections (index folders). No Gradio here, so it can be tested
and read on its own; ``ui/app.py`` lays out the page and wires events to these methods.

A collection whose folder holds no index yet has no ``RAG`` until its first upload creates one.
Uploads, deletions and reindexing write through a second handle (``RAG.fork``), so questions
never wait for them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from rag.answering.backends import LLMError
from rag.answering.time_words import news_date
from rag.api import RAG, UPLOADS, NoIndexError
from rag.chat.saved import ConversationStore
from rag.chat.transcript import Conversation, to_markdown
from rag.config import Config
from rag.ingest import dates, stories
from rag.ingest.indexer import ALREADY_INDEXED
from rag.ingest.sources import file_problem, read_bounded
from rag.search.query import Filters, SearchError
from rag.types import Answer, Skipped
from rag.wording import counted, noun_for
from ui.render import answer_message, document_html, library_html, parse_target, sources_html, streaming_message

Message = dict[str, Any]
NO_DOCUMENTS = "No documents yet. Add some in the Documents tab, then ask."


@dataclass
class Collection:
    name: str
    config: Config
    rag: RAG | None = None
    creating: threading.Lock = field(default_factory=threading.Lock)

    @property
    def conversations(self) -> ConversationStore | None:
        return ConversationStore(self.rag.store.path) if self.rag else None


def collection_name(folder: Path) -> str:
    """The name an index folder is served under: its folder's name (".rag" is "rag")."""
    return folder.name.lstrip(".") or "rag"


def question_html(text: str) -> str:
    """A question as the chat shows it: text, never Markdown or HTML. An image written as
    Markdown would otherwise make every browser showing the chat fetch it."""
    return '<div class="rag-question">' + escape(text).replace("\n", "<br>") + "</div>"


def turn_messages(turns: tuple[dict[str, Any], ...]) -> list[Message]:
    """A saved conversation as chat messages."""
    messages: list[Message] = []
    for turn in turns:
        messages.append({"role": "user", "content": question_html(turn["question"])})
        messages.append({"role": "assistant", "content": answer_message(Answer.from_json(turn))})
    return messages


def gradio_upload_folder() -> Path:
    """Where Gradio keeps the files browsers upload: ``GRADIO_TEMP_DIR``, else ``<temp>/gradio``
    (Gradio's own rule, read without importing Gradio)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()


class ChatService:
    """Safe to call from Gradio's worker threads.

    ``upload_folders`` are the only places an upload's files may be read from (Gradio's upload
    folder by default): an upload names files by path, and a path anywhere else is someone
    asking the server to read its own files."""

    def __init__(
        self, configs: dict[str, Config], opened: dict[str, RAG] | None = None,
        upload_folders: Sequence[Path] | None = None,
    ) -> None:  # fmt: skip
        self.upload_folders = tuple(
            Path(f).resolve() for f in (upload_folders if upload_folders is not None else [gradio_upload_folder()])
        )
        self.collections: dict[str, Collection] = {}
        for name, config in configs.items():
            collection = Collection(name, config, (opened or {}).get(name))
            if collection.rag is None:
                with contextlib.suppress(NoIndexError):  # created by the first upload
                    collection.rag = RAG.open(config=config, create=False)
            self.collections[name] = collection
        first = next(iter(self.collections.values()))
        self.llm_configured = bool(first.config.llm_base_url or first.config.llm_gguf)
        self.ready = threading.Event()

    @classmethod
    def for_rag(cls, rag: RAG, name: str = "rag", upload_folders: Sequence[Path] | None = None) -> ChatService:
        """A service over one index that is already open."""
        return cls({name: rag.config}, {name: rag}, upload_folders)

    @property
    def names(self) -> list[str]:
        return list(self.collections)

    def warm_up(self) -> None:
        """Load the model before the first question (7 s or more on a small machine)."""
        try:
            for collection in self.collections.values():
                if collection.rag is not None and not collection.rag.store.is_empty():
                    collection.rag.warm_up()
        finally:
            self.ready.set()

    def facts(self, name: str) -> str:
        collection = self.collections[name]
        if collection.rag is None:
            return f"No index in `{escape(str(collection.config.index_dir))}` yet: upload documents to create it."
        counts = collection.rag.store.counts()
        state = "" if self.ready.is_set() else " · loading the model…"
        return (
            f"**{counts['documents']}** {noun_for(counts['documents'], 'document')} · "
            f"**{counts['chunks']}** {noun_for(counts['chunks'], 'chunk')} · "
            f"model `{collection.rag.settings.model}`{state}"
        )

    def examples(self, name: str) -> list[str]:
        """Questions to start from: one about each of the newest documents' titles."""
        rag = self.collections[name].rag
        if rag is None:
            return []
        _, docs = rag.documents(limit=6)
        # One question per title: copies of a syndicated story share theirs.
        titles = list(dict.fromkeys(d.title for d in docs))[:3]
        return [f"What does “{title}” report?" for title in titles]

    # --- answering -----------------------------------------------------------------------

    def respond(
        self, message: str, chat: list[Message], name: str, conversation: str, user: str,
        k: float, mode: str, since: str, until: str, answerer: str,
    ) -> Iterator[tuple[list[Message], str, str]]:  # fmt: skip
        """Stream one answer into the chat and save the turn; yields (chat, sources, conversation key)."""
        collection = self.collections[name]
        chat = [*chat, {"role": "user", "content": question_html(message)}, {"role": "assistant", "content": "…"}]
        yield chat, "", conversation  # the question shows at once
        rag = collection.rag
        if rag is None or rag.store.is_empty():
            chat[-1]["content"] = f'<div class="rag-not-found">{escape(NO_DOCUMENTS)}</div>'
            yield chat, "", conversation
            return
        store = collection.conversations
        assert store is not None
        history = store.load(user, _id(conversation)).history if conversation else []
        try:
            filters = Filters.parse(since, until)
            if (filters.since or filters.until) and rag.documents(filters, limit=1)[0] == 0:
                window = f"from {filters.since or 'any date'} to {filters.until or 'any date'}"
                raise SearchError(f"No documents are dated {window}; widen the dates in Settings.")
            written = ""
            for event in rag.ask_stream(message, history=history, answerer=answerer, filters=filters, mode=mode,
                                        k=int(k)):  # fmt: skip
                if isinstance(event, Answer):
                    chat[-1]["content"] = answer_message(event)
                    try:
                        if not conversation:
                            raise LookupError("no conversation yet")
                        store.add_turn(user, _id(conversation), event.to_json())
                    except LookupError:  # the first turn, or the conversation was deleted meanwhile
                        conversation = f"{name}:{store.create(user, message)}"
                        store.add_turn(user, _id(conversation), event.to_json())
                    yield chat, sources_html(event, lambda doc_id: rag.document(doc_id).text), conversation
                else:
                    written += event
                    chat[-1]["content"] = streaming_message(written)
                    yield chat, "", conversation
        except (SearchError, LLMError) as exc:
            # A bad filter or an unreachable LLM: say what happened in the chat, keep the page.
            chat[-1]["content"] = f'<div class="rag-not-found">{escape(str(exc))}</div>'
            yield chat, "", conversation

    def ask(
        self, question: str, k: int = 5, mode: str = "hybrid", since: str = "", until: str = "",
        answerer: str = "extractive", history: list[list[str]] | None = None, collection: str = "",
    ) -> dict[str, Any]:  # fmt: skip
        """The API endpoint: one question (earlier [question, answer] pairs as ``history``), the
        answer as the same JSON as `rag ask --json`."""
        name = collection or self.names[0]
        if name not in self.collections:
            raise SearchError(f"there is no collection {name!r}; this server has: {', '.join(self.names)}")
        rag = self.collections[name].rag
        if rag is None:
            raise SearchError(NO_DOCUMENTS)
        if not isinstance(history, list | None) or not all(
            isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(t, str) for t in pair)
            for pair in history or []
        ):
            raise SearchError('history must be a list of [question, answer] pairs of text, e.g. [["Who won?", "Ann."]]')
        pairs = [(q, a) for q, a in history or []]
        answer = rag.ask(question, history=pairs, answerer=answerer, filters=Filters.parse(since, until), mode=mode,
                         k=int(k))  # fmt: skip
        return answer.to_json()

    # --- saved conversations -------------------------------------------------------------

    def conversation_choices(self, user: str) -> list[tuple[str, str]]:
        """(label, key) of the user's conversations, most recent first, across collections."""
        found = []
        for name, collection in self.collections.items():
            store = collection.conversations
            for saved in store.list(user) if store else []:
                when = saved.updated_at[5:16].replace("T", " ")  # MM-DD HH:MM (UTC): tells apart like titles
                label = f"{saved.title} · {when}" if len(self.collections) == 1 else f"[{name}] {saved.title} · {when}"
                found.append((saved.updated_at, label, f"{name}:{saved.id}"))
        return [(label, key) for _, label, key in sorted(found, reverse=True)]

    def open_conversation(self, key: str, user: str) -> tuple[list[Message], str, str]:
        """(chat messages, sources of the last answer, collection name) of a saved conversation."""
        name, conversation = self._load(key, user)
        turns = conversation.turns
        if not turns:  # deleted (in another tab, say), or not this user's
            raise KeyError(key)
        rag = self.collections[name].rag
        assert rag is not None
        last = Answer.from_json(turns[-1])
        return turn_messages(turns), sources_html(last, lambda doc_id: _text_or_empty(rag, doc_id)), name

    def rename_conversation(self, key: str, user: str, title: str) -> None:
        if key and title.strip():
            name, _ = key.split(":", 1)
            store = self.collections[name].conversations
            if store:
                store.rename(user, _id(key), title)

    def delete_conversation(self, key: str, user: str) -> None:
        if key:
            store = self.collections[key.split(":", 1)[0]].conversations
            if store:
                store.delete(user, _id(key))

    def export(self, key: str, user: str, kind: str, folder: Path, tag: str = "") -> Path | None:
        """The conversation as a Markdown or JSON file in ``folder``, for download; ``tag`` goes
        between the name and the suffix (``ui.guard.ExportFiles`` marks the owner with it)."""
        if not key:
            return None
        _, conversation = self._load(key, user)
        title = conversation.turns[0]["question"] if conversation.turns else "conversation"
        stem = re.sub(r"[^\w-]+", "-", title)[:40].strip("-") or "conversation"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}{tag}.{'md' if kind == 'md' else 'json'}"
        if kind == "md":
            text = to_markdown(conversation, title)
        else:
            text = json.dumps(conversation.to_json(), ensure_ascii=False, indent=1)
        # Owner-only from the start: a conversation is no one else's to read on this machine.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(path, 0o600)  # an older file of the same name keeps its mode through O_TRUNC
        return path

    def _load(self, key: str, user: str) -> tuple[str, Conversation]:
        name, _ = key.split(":", 1)
        store = self.collections[name].conversations
        return name, store.load(user, _id(key)) if store else Conversation(())

    # --- the document library ------------------------------------------------------------

    def library(
        self, name: str, title: str = "", since: str = "", until: str = "", source: str = ""
    ) -> list[list[Any]]:
        """Rows of the document table: title, date, source, chunks, indexed at, id."""
        rag = self.collections[name].rag
        if rag is None:
            return []
        filters = Filters.parse(since, until, (), [source] if source.strip() else [])
        _, docs = rag.documents(filters, title.strip() or None, limit=1000)
        return [
            [
                d.title,
                d.date or "no date",
                d.source.rsplit("/", 1)[-1],
                d.chunks,
                d.indexed_at[:16].replace("T", " "),
                d.id,
            ]
            for d in docs
        ]

    def library_table(self, name: str, title: str = "", since: str = "", until: str = "", source: str = "") -> str:
        """The library as the Documents tab shows it (ui.render.library_html)."""
        return library_html(self.library(name, title, since, until, source))

    def read(self, name: str, target: str) -> str:
        """The reader's HTML for "DOC_ID" or a link target "DOC_ID/START/END" (the span marked)."""
        rag = self.collections[name].rag
        if rag is None or not target:
            return ""
        parsed = parse_target(target)
        doc_id, span = (parsed[0], (parsed[1], parsed[2])) if parsed else (target, None)
        doc = rag.store.get_document(doc_id)
        if doc is None:
            return '<p class="rag-not-found">That document is no longer in the index.</p>'
        if span is not None and not 0 <= span[0] <= span[1] <= len(doc.text):
            span = None
        story = [
            f"{relation} {news_date(when)}: {title} ({site})"
            for _, relation, when, title, site in stories.relations(doc.id, rag.versions(doc.id))
        ]
        return document_html(doc.title, dates.describe(doc.date, doc.meta), doc.source, doc.text, span, story)

    def delete_document(self, name: str, doc_id: str) -> str:
        rag = self.collections[name].rag
        if rag is None or not doc_id:
            return "Choose a document first."
        with rag.fork() as writer:
            removed = writer.remove(doc_id)
        return f"Deleted {counted(len(removed), 'document')}."

    def reindex_document(self, name: str, doc_id: str) -> str:
        rag = self.collections[name].rag
        doc = rag.store.get_document(doc_id) if rag and doc_id else None
        if rag is None or doc is None:
            return "Choose a document first."
        if not Path(doc.path).exists():
            return f"Its file {doc.path} is gone, so it cannot be read again; delete it instead."
        with rag.fork() as writer:
            summary = writer.index([doc.path], progress=False)
        return (f"Read {Path(doc.path).name} again: {summary.updated} updated, {summary.unchanged} unchanged, "
                f"{counted(summary.embedded, 'chunk')} embedded.")  # fmt: skip

    # --- uploads ---------------------------------------------------------------------------

    def upload(self, files: list[str] | None, name: str = "") -> str:
        """Check uploaded files, keep the acceptable ones beside the index under unique names,
        and index them; returns a report. Nothing refused is written to the index folder."""
        if not files:
            return "Choose one or more files first."
        collection = self.collections[name or self.names[0]]
        config = collection.config
        # Before anything else touches them (a size, a type, an unlink): only files this server
        # received. Links are resolved first, so one inside the folder cannot point out of it.
        received = [*self.upload_folders, (Path(config.index_dir) / UPLOADS).resolve()]
        outside = [file for file in files if not _inside(Path(file), received)]
        if outside:
            shown = ", ".join(f"`{escape(safe_name(Path(file).name))}`" for file in outside)
            return (f"Refused: {shown} {'is' if len(outside) == 1 else 'are'} not a file uploaded through this "
                    "page. Only uploaded files are read; to index files on the server, use `rag index`.")  # fmt: skip
        if len(files) > config.max_upload_files:
            return (f"{len(files)} files is more than one upload takes ({config.max_upload_files}, setting "
                    "max_upload_files); upload them in parts.")  # fmt: skip
        total = sum(_size(Path(file)) for file in files)
        if total > config.max_upload_mb * 1_000_000:
            return (f"These files hold {total / 1e6:.1f} MB; one upload takes at most {config.max_upload_mb} MB "
                    "(setting max_upload_mb). Upload them in parts, or index them with `rag index`.")  # fmt: skip
        accepted: dict[str, str] = {}  # stored path -> the name the person uploaded
        refused: list[str] = []
        checked: list[tuple[Path, str]] = []
        for file in files:
            source = Path(file)
            shown = safe_name(source.name)
            problem = file_problem(source, config.max_file_bytes)
            if problem:
                refused.append(f"- `{escape(shown)}`: not indexed: {escape(problem)}")
                if _inside(source, self.upload_folders):
                    source.unlink(missing_ok=True)  # the web framework's copy: nothing keeps it
            else:
                checked.append((source, shown))
        if not checked:
            return "Nothing was indexed.\n\nSkipped:\n" + "\n".join(refused)
        rag = self._rag_for_upload(collection)
        folder = rag.dir / UPLOADS
        folder.mkdir(parents=True, exist_ok=True)
        for source, shown in checked:
            try:
                data = read_bounded(source, config.max_file_bytes)
            except OSError as exc:  # changed since it was checked: never block or read a special file
                refused.append(f"- `{escape(shown)}`: not indexed: cannot read: {escape(exc.strerror or str(exc))}")
                continue
            # Content in the name: two uploads called notes.txt stay two documents, and the
            # same file uploaded twice is one.
            target = folder / f"{Path(shown).stem}-{hashlib.sha256(data).hexdigest()[:10]}{Path(shown).suffix.lower()}"
            target.write_bytes(data)
            accepted[str(target)] = shown
        if not accepted:
            return "Nothing was indexed.\n\n" + "\n".join(refused)
        with rag.fork() as reader:
            known = {path for path in accepted if reader.store.document_ids_for_path(path)}
        try:
            with rag.fork() as writer:
                summary = writer.index(list(accepted), progress=True)
        finally:
            with rag.fork() as reader:
                for path in accepted:
                    if not reader.store.document_ids_for_path(path):
                        Path(path).unlink(missing_ok=True)  # nothing of it was indexed: do not keep it
                said = [self._what_happened(reader, path, shown, path in known, summary.skipped)
                        for path, shown in accepted.items()]  # fmt: skip
        lines = [
            f"Indexed {counted(len(accepted), 'file')}: **{summary.added}** added, **{summary.updated}** updated, "
            f"**{summary.unchanged}** unchanged; {counted(summary.embedded, 'chunk')} embedded in "
            f"{summary.seconds:.1f} s.",
            "",
            *said,
            *refused,
        ]
        return "\n".join(lines)

    @staticmethod
    def _what_happened(rag: RAG, path: str, shown: str, known: bool, skipped: Sequence[Skipped]) -> str:
        """One uploaded file's line of the report, in words: added as which document, already in
        the library, or not indexed and why."""
        name = f"- `{escape(shown)}`"
        problems = [s for s in skipped if s.path == path or s.path.startswith(path + ":")]
        twin = next((s for s in problems if s.reason.startswith(ALREADY_INDEXED)), None)
        if twin is not None:
            doc_id = twin.reason.removeprefix(ALREADY_INDEXED).strip().split(" ")[0]
            other = rag.store.get_document(doc_id)
            title = f"“{escape(other.title)}”" if other else escape(doc_id)
            return f"{name}: already in the library as {title} (the same text); nothing added"
        ids = rag.store.document_ids_for_path(path)
        if not ids:
            why = "; ".join(escape(s.reason) for s in problems) or "no text found"
            return f"{name}: not indexed: {why}"
        if known:
            return f"{name}: already in the library (uploaded before, unchanged)"
        docs = [d for d in (rag.store.get_document(i) for i in ids) if d is not None]
        added = (
            f"added as “{escape(docs[0].title)}”" if len(docs) == 1 else f"added as {counted(len(docs), 'document')}"
        )
        bad = f"; {counted(len(problems), 'line')} skipped: {escape(problems[0].reason)}" if problems else ""
        return f"{name}: {added}{bad}"

    def _rag_for_upload(self, collection: Collection) -> RAG:
        """The collection's index, created by its first upload."""
        with collection.creating:
            if collection.rag is None:
                collection.rag = RAG.open(config=collection.config)
            return collection.rag


def _inside(path: Path, folders: Sequence[Path]) -> bool:
    """Whether ``path``, links and ``..`` resolved, lies in one of ``folders`` (resolved already)."""
    resolved = path.resolve()
    return any(resolved.is_relative_to(folder) for folder in folders)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # said per file below
        return 0


def _id(key: str) -> int:
    return int(key.split(":", 1)[1])


def _text_or_empty(rag: RAG, doc_id: str) -> str:
    doc = rag.store.get_document(doc_id)
    return doc.text if doc else ""


_UNSAFE = re.compile(r"[^\w.\- ]+")


def safe_name(name: str) -> str:
    """A file name that is safe in any folder: no path parts, control or odd characters."""
    stem, dot, suffix = Path(name).name.rpartition(".")
    if not dot:
        stem, suffix = suffix, ""
    stem = _UNSAFE.sub("_", stem).strip(" ._")[:80] or "upload"
    return f"{stem}.{_UNSAFE.sub('', suffix)[:10]}" if suffix else stem
