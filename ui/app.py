"""The Gradio web chat: a thin layer over one shared ``rag.RAG``.

Answers stream into the chat with [n] markers; beside them, each cited span is shown
highlighted in its passage. Files can be uploaded and are indexed incrementally. The same
answering is callable through Gradio's API as ``/ask`` (see README for a gradio_client example).

An upload is parsed and embedded by a second handle on the index (``RAG.fork``) with its own
SQLite connection: questions never wait for it. They see its documents once it commits, since
the shared handle brings its vectors in step with the store before each search.

Gradio is imported inside ``build_app``, so importing this module loads nothing heavy.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.answering.backends import LLMError
from rag.api import RAG, UPLOADS
from rag.config import Config
from rag.ingest import file_problem
from rag.retrieval import MODES, Filters, SearchError
from rag.types import Answer
from rag.wording import counted, noun_for
from ui.render import CSS, answer_message, sources_html, streaming_message

if TYPE_CHECKING:
    import gradio as gr


class ChatService:
    """What the page's events call; safe to use from Gradio's worker threads."""

    def __init__(self, rag: RAG) -> None:
        self.rag = rag
        self.llm_configured = bool(rag.config.llm_base_url or rag.config.llm_gguf)

    def facts(self) -> str:
        counts = self.rag.store.counts()
        return (
            f"**{counts['documents']}** {noun_for(counts['documents'], 'document')} · "
            f"**{counts['chunks']}** {noun_for(counts['chunks'], 'chunk')} · "
            f"model `{self.rag.settings.model}` · index `{escape(str(self.rag.dir))}`"
        )

    def respond(
        self,
        message: str,
        chat: list[dict[str, Any]],
        k: float,
        mode: str,
        since: str,
        until: str,
        answerer: str,
        turns: list[tuple[str, str]],
    ) -> Iterator[tuple[list[dict[str, Any]], str, list[tuple[str, str]], str]]:
        """Stream one answer into the chat; yields (chat, sources HTML, history, textbox)."""
        chat = [*chat, {"role": "user", "content": question_html(message)}, {"role": "assistant", "content": "…"}]
        # Show the question at once: an LLM may take seconds before its first word.
        yield chat, "", turns, ""
        try:
            filters = Filters.parse(since, until)
            written = ""
            for event in self.rag.ask_stream(
                message, history=turns, answerer=answerer, filters=filters, mode=mode, k=int(k)
            ):
                if isinstance(event, Answer):
                    chat[-1]["content"] = answer_message(event)
                    sources = sources_html(event, lambda doc_id: self.rag.document(doc_id).text)
                    yield chat, sources, [*turns, (message, event.text)], ""
                else:
                    written += event
                    chat[-1]["content"] = streaming_message(written)
                    yield chat, "", turns, ""
        except (SearchError, LLMError) as exc:
            # A bad filter or an unreachable LLM: say what happened in the chat, keep the page.
            chat[-1]["content"] = f'<span class="rag-not-found">{escape(str(exc))}</span>'
            yield chat, "", turns, message

    def ask(self, question: str, k: int = 5, mode: str = "hybrid", since: str = "", until: str = "",
            answerer: str = "extractive") -> dict[str, Any]:  # fmt: skip
        """The API endpoint: one question, the answer as the same JSON as `rag ask --json`."""
        answer = self.rag.ask(question, answerer=answerer, filters=Filters.parse(since, until), mode=mode, k=int(k))
        return answer.to_json()

    def upload(self, files: list[str] | None, progress: Any = None) -> tuple[str, str]:
        """Check uploaded files, keep the acceptable ones beside the index under unique names,
        and index them; returns (report, facts). Nothing refused is written to the index folder."""
        if not files:
            return "Choose one or more files first.", self.facts()
        config = self.rag.config
        if len(files) > config.max_upload_files:
            return (
                f"{len(files)} files is more than one upload takes ({config.max_upload_files}, setting "
                "max_upload_files); upload them in parts.",
                self.facts(),
            )
        total = sum(Path(file).stat().st_size for file in files)
        if total > config.max_upload_mb * 1_000_000:
            return (
                f"These files hold {total / 1e6:.1f} MB; one upload takes at most {config.max_upload_mb} MB "
                "(setting max_upload_mb). Upload them in parts, or index them with `rag index`.",
                self.facts(),
            )
        folder = self.rag.dir / UPLOADS
        accepted: dict[str, str] = {}  # stored path -> the name the person uploaded
        refused: list[str] = []
        for file in files:
            source = Path(file)
            name = safe_name(source.name)
            problem = file_problem(source, config.max_file_bytes)
            if problem:
                refused.append(f"- `{escape(name)}`: {escape(problem)}")
                source.unlink(missing_ok=True)  # the web framework's copy: nothing keeps it
                continue
            data = source.read_bytes()
            # Content in the name: two uploads called notes.txt stay two documents, and the
            # same file uploaded twice is one.
            target = folder / f"{Path(name).stem}-{hashlib.sha256(data).hexdigest()[:10]}{Path(name).suffix.lower()}"
            folder.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            accepted[str(target)] = name
        lines = []
        if accepted:
            with self.rag.fork() as writer:
                summary = writer.index(list(accepted), progress=True)
            lines.append(
                f"Indexed {counted(len(accepted), 'file')}: **{summary.added}** added, **{summary.updated}** updated, "
                f"**{summary.unchanged}** unchanged; {counted(summary.embedded, 'chunk')} embedded in "
                f"{summary.seconds:.1f} s."
            )
            for skip in summary.skipped:
                refused.append(f"- `{escape(_uploaded_name(skip.path, accepted))}`: {escape(skip.reason)}")
            with self.rag.fork() as reader:
                for path in accepted:
                    if not reader.store.document_ids_for_path(path):
                        Path(path).unlink(missing_ok=True)  # nothing of it was indexed: do not keep it
        if refused:
            lines.append("\nSkipped:")
            lines.extend(refused)
        return "\n".join(lines), self.facts()


def _uploaded_name(path: str, accepted: dict[str, str]) -> str:
    """The name a person uploaded, for a stored path or a JSONL line of one (path:line)."""
    if path in accepted:
        return accepted[path]
    base, _, line = path.rpartition(":")
    return f"{accepted[base]}:{line}" if base in accepted and line.isdigit() else Path(path).name


_UNSAFE = re.compile(r"[^\w.\- ]+")


def safe_name(name: str) -> str:
    """A file name that is safe in any folder: no path parts, control or odd characters."""
    stem, dot, suffix = Path(name).name.rpartition(".")
    if not dot:
        stem, suffix = suffix, ""
    stem = _UNSAFE.sub("_", stem).strip(" ._")[:80] or "upload"
    return f"{stem}.{_UNSAFE.sub('', suffix)[:10]}" if suffix else stem


def question_html(text: str) -> str:
    """A question as the chat shows it: text, never Markdown or HTML. An image written as
    Markdown would otherwise make every browser showing the chat fetch it. Inside an HTML
    block Markdown is not read; line breaks become <br> so a blank line cannot end the block."""
    return '<div class="rag-question">' + escape(text).replace("\n", "<br>") + "</div>"


def build_app(service: ChatService) -> gr.Blocks:
    import gradio as gr

    answerers = ["extractive", "llm"] if service.llm_configured else ["extractive"]
    # delete_cache: Gradio keeps its own copy of every uploaded file; the index keeps the one it
    # needs, so Gradio's copies are dropped after ten minutes.
    with gr.Blocks(title="Ask your articles", delete_cache=(600, 600)) as app:
        gr.Markdown("## Ask your articles\nAnswers quote the documents and show the exact words they rest on.")
        facts = gr.Markdown(service.facts(), elem_id="facts")
        turns = gr.State([])
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Chatbot(label="Chat", height=480, elem_id="chat", sanitize_html=True)
                with gr.Row():
                    question = gr.Textbox(
                        placeholder="Ask a question about your documents", show_label=False, scale=5, elem_id="question"
                    )
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                clear = gr.Button("New conversation", size="sm")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML("<p>Cited passages appear here, the cited words highlighted.</p>", elem_id="sources")
        with gr.Accordion("Settings", open=False):
            with gr.Row():
                k = gr.Slider(1, 10, value=service.rag.config.answer_passages, step=1, label="Passages")
                mode = gr.Radio(list(MODES), value="hybrid", label="Retrieval")
                answerer = gr.Radio(answerers, value=service.rag.config.answerer if service.llm_configured
                                    else "extractive", label="Answerer")  # fmt: skip
            with gr.Row():
                since = gr.Textbox(label="From date (YYYY[-MM[-DD]])", placeholder="any")
                until = gr.Textbox(label="Until date", placeholder="any")
        with gr.Accordion("Add documents", open=False):
            files = gr.File(label="Files (.txt .md .html .pdf .jsonl)", file_count="multiple", elem_id="upload")
            index_button = gr.Button("Index these files", elem_id="index-files")
            report = gr.Markdown(elem_id="upload-report")

        inputs = [question, chat, k, mode, since, until, answerer, turns]
        outputs = [chat, sources, turns, question]
        question.submit(service.respond, inputs, outputs, api_visibility="private")
        send.click(service.respond, inputs, outputs, api_visibility="private")
        clear.click(lambda: ([], "", []), None, [chat, sources, turns], api_visibility="private")

        tracker = gr.Progress(track_tqdm=True)  # shows the indexer's own progress bar

        def index_files(paths: list[str] | None, progress: gr.Progress = tracker) -> tuple[str, str]:
            return service.upload(paths, progress)

        index_button.click(index_files, [files], [report, facts], api_name="upload")
        gr.api(service.ask, api_name="ask")  # type: ignore[attr-defined]
    blocks: gr.Blocks = app
    return blocks


def _repair_vectors(rag: RAG) -> None:
    with rag.fork() as writer:
        writer.repair_vectors(deep=False)  # the stamp only: reading a big file twice at start costs memory


def serve(config: Config, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None) -> None:
    """The web chat at ``/`` and the OpenAI-compatible API at ``/v1``, one server, one login."""
    import gradio as gr
    import uvicorn
    from fastapi import FastAPI

    from ui.openai_api import OpenAIEndpoint, add_routes, model_name

    rag = RAG.open(config=config)
    # A vector file left out of step by a killed `rag index` is saved again once the write
    # lock is free; until then searches bring the in-memory copy in step by themselves.
    threading.Thread(target=_repair_vectors, args=(rag,), name="rag-repair", daemon=True).start()
    # Load the model now, not on the first question (7 s or more here).
    threading.Thread(target=rag.warm_up, name="rag-warm-up", daemon=True).start()
    service = ChatService(rag)
    app = build_app(service)
    # Twenty people asking at once should not wait in one line: answers share the index and
    # run side by side; an upload indexes through its own handle and blocks none of them.
    app.queue(default_concurrency_limit=16)
    # Bounded, so memory stays flat however many visitors come and go (it grew by about 60 KB
    # per new session without a bound).
    app.state_session_capacity = config.max_sessions
    server = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    name = model_name(rag)
    add_routes(server, OpenAIEndpoint({name: rag}, auth))
    server = gr.mount_gradio_app(server, app, path="", auth=auth, css=CSS, show_error=True)
    shown = f"[{host}]" if ":" in host else host
    print(f"Web chat on http://{shown}:{port}/ ; OpenAI-compatible API on http://{shown}:{port}/v1 "
          f"(model {name!r}{', API key USER:PASSWORD' if auth else ''})", flush=True)  # fmt: skip
    # Open streams (the web chat holds one per tab) would otherwise hold up a stop forever.
    uvicorn.run(server, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)
