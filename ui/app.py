"""The Gradio web chat: the page's layout and its events, over ``ui.service.ChatService``.

Tabs: Chat (answers with clickable citations, sources beside them) and Documents (the library:
filter, read, delete, reindex, upload). A sidebar lists the saved conversations. The same
answering is callable as ``/ask`` (gradio_client) and, from ``serve``, as an OpenAI-compatible
API at ``/v1``.

Gradio is imported inside the functions, so importing this module loads nothing heavy.
"""

# No `from __future__ import annotations` here: Gradio reads the handlers' annotations
# (gr.Request, gr.SelectData) at run time, and gradio is imported inside build_app.
import socket
import threading
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.api import RAG
from rag.config import Config
from rag.ingest.readers import SUPPORTED
from rag.search.query import MODES
from ui.assets import CSS, HEAD, SCROLL_TO_SPAN, SHOW_LATEST_ANSWER
from ui.guard import (
    BrowserCookieMiddleware,
    ExportFiles,
    ExportOwnerMiddleware,
    LoginThrottle,
    LoginThrottleMiddleware,
    browser_of,
    owner,
)
from ui.render import parse_target
from ui.service import ChatService

if TYPE_CHECKING:
    import gradio as gr

EXPORTS = "exports"  # inside the first collection's index folder, one owner-only folder per user


def build_app(service: ChatService, exports: ExportFiles, shared: bool = False) -> "gr.Blocks":
    """``shared``: without --auth, every browser sees one conversation list (the
    ``shared_conversations`` setting); otherwise each browser keeps its own."""
    import gradio as gr

    def _user(request: Any) -> str:
        """Whose conversations these are: the signed-in user, this browser, or everyone's."""
        username = getattr(request, "username", None)
        try:
            cookies = dict(request.cookies)
        except (AttributeError, KeyError, TypeError):  # a request made without HTTP (none here)
            cookies = {}
        return owner(username, cookies, getattr(request, "session_hash", None), shared)

    names = service.names
    first = names[0]
    answerers = ["extractive", "llm"] if service.llm_configured else ["extractive"]
    config = service.collections[first].config
    # delete_cache: Gradio keeps its own copy of every uploaded file; the index keeps the one it
    # needs, so Gradio's copies are dropped after ten minutes.
    with gr.Blocks(title="Ask your articles", delete_cache=(600, 600), fill_width=True) as app:
        # The open conversation's key, kept in the browser so that a reload, or a restart of the
        # server, reopens it. Gradio encrypts it with a key made at each start unless given one;
        # the key names no secret (the store checks whose conversation it is), so a fixed one is fine.
        conversation = gr.BrowserState("", storage_key="rag-conversation", secret="rag-open-conversation")
        with gr.Sidebar(label="Conversations", open=True, width=260, elem_id="conversations"):
            # With --auth: who is signed in, and a way out (Gradio's /logout ends the session).
            signed_in = gr.HTML("", elem_id="signed-in")
            new = gr.Button("New conversation", variant="primary", size="sm", elem_id="new-conversation")
            saved = gr.Radio([], label="Saved conversations", elem_id="saved", container=False)
            with gr.Accordion("Rename, delete, export", open=False):
                title = gr.Textbox(placeholder="New title", show_label=False, elem_id="rename-title")
                with gr.Row():
                    rename = gr.Button("Rename", size="sm")
                    delete = gr.Button("Delete", size="sm", variant="stop", elem_id="delete-conversation")
                with gr.Row():
                    export_md = gr.DownloadButton("Markdown", size="sm", elem_id="export-md")
                    export_json = gr.DownloadButton("JSON", size="sm", elem_id="export-json")
        # Beside the chat on a wide screen; a drawer on a phone (the page's script closes both
        # sidebars there at first, so the chat gets the whole width).
        with gr.Sidebar(label="Sources", position="right", open=True, width="34%", elem_id="sources-panel"):
            gr.Markdown("### Sources")
            sources = gr.HTML("<p>Cited passages appear here, the cited words highlighted.</p>", elem_id="sources")
        gr.Markdown("## Ask your articles\nAnswers quote the documents and show the exact words they rest on.")
        with gr.Row():
            collection = gr.Dropdown(names, value=first, label="Collection", visible=len(names) > 1, scale=1)
            facts = gr.Markdown(service.facts(first), elem_id="facts")
        with gr.Tabs(selected="chat") as tabs:
            with gr.Tab("Chat", id="chat"):
                with gr.Column():
                    chat = gr.Chatbot(
                        label="Chat", height=520, elem_id="chat", sanitize_html=True, buttons=[],
                        placeholder="Ask about your documents. Each answer quotes its source; [1] opens it.",
                    )  # fmt: skip
                    with gr.Row(elem_id="question-row"):
                        question = gr.Textbox(placeholder="Ask a question about your documents",
                                              show_label=False, scale=5, elem_id="question")  # fmt: skip
                        send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask", min_width=80)
                        # Shown only while an answer streams: at rest it was as big as Ask.
                        stop = gr.Button("Stop", scale=1, elem_id="stop", min_width=80, visible=False)
                    # Says what was wrong with the last question; the next question clears it (a
                    # toast stayed over the sources through later answers).
                    ask_note = gr.Markdown("", elem_id="ask-note")
                    examples = gr.Examples([[q] for q in service.examples(first)] or [["What is this about?"]],
                                           inputs=[question], label="Try")  # fmt: skip
                with gr.Accordion("Settings", open=False):
                    with gr.Row():
                        k = gr.Slider(1, 10, value=config.answer_passages, step=1, label="Passages")
                        mode = gr.Radio(list(MODES), value="hybrid", label="Retrieval")
                        answerer = gr.Radio(answerers, value=config.answerer if service.llm_configured
                                            else "extractive", label="Answerer")  # fmt: skip
                    with gr.Row():
                        since = gr.Textbox(label="From date (YYYY[-MM[-DD]])", placeholder="any", elem_id="since")
                        until = gr.Textbox(label="Until date", placeholder="any", elem_id="until")
            with gr.Tab("Documents", id="documents"):
                # Uploading first: it sat below the table and the reader, out of sight.
                with gr.Accordion("Add documents", open=False, elem_id="add-documents"):
                    files = gr.File(label="Files (.txt .md .html .pdf .jsonl)", file_count="multiple",
                                    elem_id="upload", file_types=sorted(SUPPORTED))  # fmt: skip
                    index_button = gr.Button("Index these files", elem_id="index-files")
                    report = gr.Markdown(elem_id="upload-report")
                with gr.Row(elem_id="library-filters"):
                    find_title = gr.Textbox(label="Title contains", scale=2, min_width=110)
                    find_source = gr.Textbox(label="Source contains", scale=2, min_width=110)
                    find_since = gr.Textbox(label="From date", placeholder="any", scale=1, min_width=110)
                    find_until = gr.Textbox(label="Until date", placeholder="any", scale=1, min_width=110)
                # A table of our own (ui.render.library_html): a title opens the document.
                table = gr.HTML(service.library_table(first), elem_id="library")
                selected = gr.State("")
                with gr.Row():
                    reindex = gr.Button("Read its file again", size="sm", elem_id="reindex")
                    remove = gr.Button("Delete document…", size="sm", elem_id="delete-document")
                    confirm = gr.Button("Yes, delete it", size="sm", variant="stop", visible=False, elem_id="confirm")
                    cancel = gr.Button("Cancel", size="sm", visible=False, elem_id="cancel-delete")
                library_note = gr.Markdown(elem_id="library-note")
                reader = gr.HTML("<p>Choose a document (its title) to read it.</p>", elem_id="reader")
        target = gr.Textbox(visible=True, elem_classes=["rag-hidden"])
        open_button = gr.Button("open", elem_id="rag-open-button", elem_classes=["rag-hidden"])

        # --- chat -------------------------------------------------------------------------
        def respond(message: str, history: list[dict[str, Any]], name: str, key: str, k_: float, mode_: str,
                    since_: str, until_: str, answerer_: str, request: gr.Request) -> Any:  # fmt: skip
            if not message.strip():
                yield history, gr.skip(), key, "", gr.skip(), "Type a question first.", gr.skip()
                return
            # The box is cleared once, as the question is taken: clearing it with every streamed
            # chunk erased the next question whenever someone typed it while an answer streamed.
            cleared: Any = ""
            first: Any = ("", gr.update(visible=True))  # the note cleared, Stop shown
            for chat_, sources_, key_ in service.respond(message, history, name, key, _user(request), k_, mode_,
                                                         since_, until_, answerer_):  # fmt: skip
                yield chat_, sources_ or gr.skip(), key_, cleared, gr.skip(), *first
                cleared = gr.skip()
                first = (gr.skip(), gr.skip())
            yield (
                gr.skip(),
                gr.skip(),
                gr.skip(),
                gr.skip(),
                conversation_list(request, key_),
                gr.skip(),
                gr.update(visible=False),
            )

        def conversation_list(request: gr.Request, value: str | None = None) -> Any:
            return gr.update(choices=service.conversation_choices(_user(request)), value=value or None)

        inputs = [question, chat, collection, conversation, k, mode, since, until, answerer]
        outputs = [chat, sources, conversation, question, saved, ask_note, stop]
        # A question asked while the last answer is still finishing runs after it (Gradio's
        # default, "once", dropped it silently and left it in the box).
        queued: dict[str, Any] = {"api_visibility": "private", "trigger_mode": "always_last"}
        asked = [question.submit(respond, inputs, outputs, **queued), send.click(respond, inputs, outputs, **queued)]
        for event in asked:
            event.then(None, js=SHOW_LATEST_ANSWER)
        stop.click(lambda: gr.update(visible=False), None, [stop], cancels=asked)  # type: ignore[arg-type]

        def start_new(request: gr.Request) -> Any:
            return [], "", "", conversation_list(request)

        new.click(start_new, None, [chat, sources, conversation, saved], api_visibility="private")

        def reopen(key: str, request: gr.Request) -> Any:
            if not key:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            try:
                messages, sources_html, name = service.open_conversation(key, _user(request))
            except (KeyError, ValueError):
                return [], "", "", gr.skip(), conversation_list(request)
            return messages, sources_html, key, name, gr.skip()

        saved.input(reopen, [saved], [chat, sources, conversation, collection, saved], api_visibility="private")

        def whose_conversations(username: str | None) -> str:
            """The sidebar's line on whose conversations are listed."""
            if username:
                return (f'Signed in as <b>{escape(username)}</b> · <a href="/logout" target="_self">Sign out</a>'
                        "<br><small>Your conversations, on any browser.</small>")  # fmt: skip
            if shared:
                return "<small>Conversations are shared: everyone who opens this page sees them.</small>"
            return "<small>Conversations are kept for this browser only.</small>"

        def on_load(key: str, shown: str, request: gr.Request) -> Any:
            """After a reload or a restart: the list, and the conversation that was open. With none
            open, the chat is left alone: a question asked while the page was still loading may
            already have its answer (and its new conversation) there, which [] and "" erased.
            The library as it is now, not as it was when the server started: another tab may have
            deleted or uploaded documents since, or `rag index` run beside the server."""
            user = _user(request)
            who = whose_conversations(getattr(request, "username", None))
            if not key:
                choices = gr.update(choices=service.conversation_choices(user))  # the choice kept
                return gr.skip(), gr.skip(), gr.skip(), gr.skip(), choices, who, service.library_table(shown)
            chat_, sources_, key_, name, _ = reopen(key, request)
            library = service.library_table(name if isinstance(name, str) and name else shown)
            return chat_, sources_, key_, name, conversation_list(request, key_ or None), who, library

        app.load(on_load, [conversation, collection],
                 [chat, sources, conversation, collection, saved, signed_in, table],
                 api_visibility="private")  # fmt: skip

        def rename_current(key: str, new_title: str, request: gr.Request) -> Any:
            service.rename_conversation(key, _user(request), new_title)
            return conversation_list(request, key), ""

        rename.click(rename_current, [conversation, title], [saved, title], api_visibility="private")

        def delete_current(key: str, request: gr.Request) -> Any:
            service.delete_conversation(key, _user(request))
            return [], "", "", conversation_list(request)

        delete.click(delete_current, [conversation], [chat, sources, conversation, saved], api_visibility="private")

        def exporter(kind: str) -> Any:
            def export(key: str, request: gr.Request) -> Any:
                user = _user(request)
                return service.export(key, user, kind, exports.folder_for(user), exports.marker(user))

            return export

        export_md.click(exporter("md"), [conversation], [export_md], api_visibility="private")
        export_json.click(exporter("json"), [conversation], [export_json], api_visibility="private")

        # --- documents ----------------------------------------------------------------------
        filters = [collection, find_title, find_since, find_until, find_source]

        def refresh(name: str, title_: str, since_: str, until_: str, source_: str) -> Any:
            try:
                return service.library_table(name, title_, since_, until_, source_), ""
            except Exception as exc:  # a bad date: say so beside the filters
                return gr.skip(), f"*{exc}*"

        for box in (find_title, find_source, find_since, find_until):
            box.change(refresh, filters, [table, library_note], api_visibility="private")

        def ask_to_delete(doc: str) -> Any:
            shown = gr.update(visible=bool(doc))
            return shown, shown, "" if doc else "Choose a document first."

        remove.click(ask_to_delete, [selected], [confirm, cancel, library_note], api_visibility="private")
        cancel.click(lambda: (gr.update(visible=False), gr.update(visible=False), "Nothing was deleted."), None,
                     [confirm, cancel, library_note], api_visibility="private")  # fmt: skip

        def delete_document(doc_id: str, *filter_values: str) -> Any:
            note = service.delete_document(filter_values[0], doc_id)
            return (service.library_table(*filter_values), note, gr.update(visible=False), gr.update(visible=False), "",
                    "<p>Choose a document to read it.</p>", service.facts(filter_values[0]))  # fmt: skip

        confirm.click(delete_document, [selected, *filters],
                      [table, library_note, confirm, cancel, selected, reader, facts],
                      api_visibility="private")  # fmt: skip
        reindex.click(lambda doc, name: service.reindex_document(name, doc), [selected, collection], [library_note],
                      api_visibility="private")  # fmt: skip

        def open_target(target_: str, name: str) -> Any:
            """A document opened from the library (its title) or from a citation: read it, and it
            is the one "Delete document…" and "Read its file again" act on."""
            parsed = parse_target(target_)
            doc_id = parsed[0] if parsed else target_
            hidden = gr.update(visible=False)
            return service.read(name, target_), gr.Tabs(selected="documents"), doc_id, hidden, hidden, ""

        take_target = "(t, c) => [window.__ragTarget || '', c]"
        open_button.click(open_target, [target, collection], [reader, tabs, selected, confirm, cancel, library_note],
                          js=take_target, api_visibility="private").then(None, js=SCROLL_TO_SPAN)  # fmt: skip

        tracker = gr.Progress(track_tqdm=True)  # shows the indexer's own progress bars

        def index_files(paths: list[str] | None, name: str, progress: gr.Progress = tracker) -> Any:
            note = service.upload(paths, name)
            return note, service.facts(name), service.library_table(name), None

        # Also the /upload API: files (and a collection), the report and the facts first.
        index_button.click(index_files, [files, collection], [report, facts, table, files], api_name="upload")

        def switch(name: str) -> Any:
            return service.facts(name), service.library_table(name), [], "", ""

        collection.input(switch, [collection], [facts, table, chat, sources, conversation], api_visibility="private")
        # "loading the model…" until the warm-up is done
        timer = gr.Timer(1.0)
        timer.tick(lambda name: (service.facts(name), gr.Timer(active=not service.ready.is_set())), [collection],
                   [facts, timer], api_visibility="private")  # fmt: skip
        del examples
        gr.api(service.ask, api_name="ask")  # type: ignore[attr-defined]
    blocks: gr.Blocks = app
    return blocks


def _repair_vectors(rag: RAG) -> None:
    with rag.fork() as writer:
        writer.repair_vectors(deep=False)  # the stamp only: reading a big file twice at start costs memory


def serve(
    configs: dict[str, Config], host: str = "127.0.0.1", port: int = 7860, auth: "tuple[str, str] | None" = None
) -> None:
    """The web chat at ``/`` and the OpenAI-compatible API at ``/v1``, one server, one login."""
    import gradio as gr
    import uvicorn
    from fastapi import FastAPI

    from ui.openai_api import OpenAIEndpoint, add_routes

    service = ChatService(configs)
    repairs: list[threading.Thread] = []
    for collection in service.collections.values():
        if collection.rag is not None:
            # A vector file left out of step by a killed `rag index` is saved again once the
            # write lock is free; until then searches bring the in-memory copy in step.
            repair = threading.Thread(target=_repair_vectors, args=(collection.rag,), name="rag-repair", daemon=True)
            repair.start()
            repairs.append(repair)
    threading.Thread(target=service.warm_up, name="rag-warm-up", daemon=True).start()
    exports = ExportFiles(Path(next(iter(configs.values())).index_dir) / EXPORTS)
    shared = next(iter(configs.values())).shared_conversations
    app = build_app(service, exports, shared=shared)
    # Twenty people asking at once should not wait in one line: answers share the index and
    # run side by side; an upload indexes through its own handle and blocks none of them.
    app.queue(default_concurrency_limit=16)
    # Bounded, so memory stays flat however many visitors come and go (it grew by about 60 KB
    # per new session without a bound).
    app.state_session_capacity = next(iter(configs.values())).max_sessions
    server = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    throttle = LoginThrottle()
    add_routes(server, OpenAIEndpoint(service, auth, throttle))
    # allowed_paths: Gradio serves a returned file only from its own folders, the working
    # directory, the temporary directory and these; exports live in the index folder.
    server = gr.mount_gradio_app(server, app, path="", auth=auth, css=CSS, head=HEAD, show_error=True,
                                 footer_links=["api"], allowed_paths=[str(exports.folder)])  # fmt: skip
    gradio_app = next(route.app for route in server.routes if getattr(route, "path", None) == "")

    def user_of(scope: dict[str, Any]) -> str | None:
        """Whose exports a request may download: Gradio's sign-in cookie's user, with --auth;
        else the browser's (or everyone's when conversations are shared)."""
        from starlette.requests import HTTPConnection

        cookies = HTTPConnection(scope).cookies
        if auth is None:
            return "" if shared else browser_of(dict(cookies))
        token = cookies.get(f"access-token-{gradio_app.cookie_id}") or cookies.get(
            f"access-token-unsecure-{gradio_app.cookie_id}"
        )
        return gradio_app.tokens.get(token) if token else None

    server.add_middleware(ExportOwnerMiddleware, exports=exports, user_of=user_of)
    server.add_middleware(LoginThrottleMiddleware, throttle=throttle)
    if auth is None and not shared:
        server.add_middleware(BrowserCookieMiddleware)
    # Gradio checks that a file named in a request is one it received (inside its upload
    # folder, symbolic links resolved) only once `launch()` has set `has_launched`; a mounted app
    # never sets it, and the upload endpoint then copied any server path it was given (a FIFO
    # there froze every request). Mark it launched so the check runs before any file is opened.
    app.has_launched = True
    # The socket is bound here, not by uvicorn, so that port 0 (any free port) can be printed as
    # the port it became: a script or a test reads the address instead of guessing a free port.
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    port = listener.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"Web chat on http://{shown}:{port}/ ; OpenAI-compatible API on http://{shown}:{port}/v1 "
          f"(models {', '.join(repr(n) for n in service.names)}{', API key USER:PASSWORD' if auth else ''})",
          flush=True)  # fmt: skip
    # Open streams (the web chat holds one per tab) would otherwise hold up a stop forever.
    settings = uvicorn.Config(server, log_level="warning", timeout_graceful_shutdown=3)
    uvicorn.Server(settings).run(sockets=[listener])
    # A stop lets a repair under way finish (briefly), so what it reports reaches the log.
    for repair in repairs:
        repair.join(timeout=10)
