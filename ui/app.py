"""The Gradio web chat: a thin layer over one shared ``rag.RAG``.

Answers stream into the chat with [n] markers; beside them, each cited span is shown
highlighted in its passage. Files can be uploaded and are indexed incrementally. The same
answering is callable through Gradio's API as ``/ask`` (see README for a gradio_client example).

Gradio is imported inside ``build_app``, so importing this module loads nothing heavy.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.answering.backends import LLMError
from rag.api import RAG
from rag.config import Config
from rag.retrieval import MODES, Filters, SearchError
from rag.types import Answer
from ui.render import CSS, answer_message, sources_html, streaming_message

if TYPE_CHECKING:
    import gradio as gr

UPLOADS = "uploads"  # inside the index folder: uploaded files are kept so reindexing sees them


class ReadWriteLock:
    """Many readers (questions) at once, or one writer (an upload being indexed)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._readers:
                self._cond.wait()
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


class ChatService:
    """What the page's events call; safe to use from Gradio's worker threads."""

    def __init__(self, rag: RAG) -> None:
        self.rag = rag
        self.lock = ReadWriteLock()
        self.llm_configured = bool(rag.config.llm_base_url or rag.config.llm_gguf)

    def facts(self) -> str:
        with self.lock.reading():
            counts = self.rag.store.counts()
        return (
            f"**{counts['documents']}** documents · **{counts['chunks']}** chunks · "
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
        chat = [*chat, {"role": "user", "content": escape(message)}, {"role": "assistant", "content": "…"}]
        # Show the question at once: an LLM may take seconds before its first word.
        yield chat, "", turns, ""
        try:
            filters = Filters.parse(since, until)
            with self.lock.reading():
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
        with self.lock.reading():
            answer = self.rag.ask(question, answerer=answerer, filters=Filters.parse(since, until), mode=mode, k=int(k))
        return answer.to_json()

    def upload(self, files: list[str] | None, progress: Any = None) -> tuple[str, str]:
        """Copy uploaded files beside the index and index them; returns (report, facts)."""
        if not files:
            return "Choose one or more files first.", self.facts()
        folder = self.rag.dir / UPLOADS
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for file in files:
            target = folder / Path(file).name
            shutil.copyfile(file, target)
            paths.append(target)
        with self.lock.writing():
            summary = self.rag.index(paths, progress=True)
        lines = [
            f"Indexed {len(paths)} file(s): **{summary.added}** added, **{summary.updated}** updated, "
            f"**{summary.unchanged}** unchanged; {summary.embedded} chunks embedded in {summary.seconds:.1f} s."
        ]
        if summary.skipped:
            lines.append("\nSkipped:")
            lines.extend(f"- `{escape(Path(s.path).name)}`: {escape(s.reason)}" for s in summary.skipped)
        return "\n".join(lines), self.facts()


def build_app(service: ChatService) -> gr.Blocks:
    import gradio as gr

    answerers = ["extractive", "llm"] if service.llm_configured else ["extractive"]
    with gr.Blocks(title="Ask your articles") as app:
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


def serve(config: Config, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None) -> None:
    rag = RAG.open(config=config)
    service = ChatService(rag)
    app = build_app(service)
    # Twenty people asking at once should not wait in one line: answers share the index
    # through a readers-writer lock, so several may run together.
    app.queue(default_concurrency_limit=16)
    app.launch(server_name=host, server_port=port, auth=auth, css=CSS, show_error=True, quiet=False)
