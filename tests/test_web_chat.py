"""The web chat as a person uses it, in headless Chromium against a real `rag serve` with the
real model: clean answers, clickable citations and the reader, saved conversations across a
reload and a restart, the document library, uploads (a refused .docx, an empty start), and the
screenshots in docs/ (desktop, mobile, dark)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag import RAG
from tests.conftest import REPO, news_index, served_url, start_server, write

pytestmark = pytest.mark.slow

ARTIFACTS = REPO / "test-artifacts"
ENV = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}


class Served:
    """A `rag serve` that can be stopped and started again on the same port."""

    def __init__(self, index_dir: Path, log_dir: Path) -> None:
        self.index_dir, self.log_dir = index_dir, log_dir
        self.url = ""  # the first start takes any free port; later ones the same
        self.proc: Any = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = self.log_dir / f"serve-{self.starts}.log"
        port = self.url.rstrip("/").rsplit(":", 1)[-1] if self.url else "0"
        self.proc = start_server([sys.executable, "-m", "rag.cli", "serve", "--index-dir", str(self.index_dir),
                                  "--port", port], log, ENV)  # fmt: skip
        self.url = served_url(self.proc, log, "rag serve")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("web")
    server = Served(news_index(root), root)
    server.start()
    yield server
    server.stop()


def opened(browser: Any, server: Served, viewport: tuple[int, int], scheme: str) -> Any:
    """A new page on ``server`` at ``viewport`` in the ``scheme`` colours, ready for a question."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]}, color_scheme=scheme)
    page.goto(server.url + ("?__theme=dark" if scheme == "dark" else ""))
    page.wait_for_selector("#question textarea")
    return page


def ask(page: Any, question: str) -> None:
    """Ask, and wait until the page took the question (it empties the box as it does)."""
    page.fill("#question textarea", question)
    page.click("#ask")
    page.wait_for_function("document.querySelector('#question textarea').value === ''", timeout=90_000)


def settled(page: Any) -> None:
    """Wait for the answer's final render (its citation links come last) and the page's fonts."""
    page.wait_for_selector("#chat a.rag-cite", timeout=90_000)
    page.evaluate("document.fonts.ready.then(() => true)")


def answered(page: Any, words: str) -> None:
    page.wait_for_function(f"document.querySelector('#chat')?.innerText.includes({words!r})", timeout=90_000)


def test_answers_render_cleanly_and_citations_open_the_reader_at_the_span(served: Served, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(served.url)
    page.wait_for_selector("#question textarea")
    ask(page, "Which agency said the tiger mosquito lives in 13 European countries?")
    answered(page, "(ECDC)")
    chat = page.inner_text("#chat")
    assert "\\" not in chat and "Control (ECDC)" in chat  # no literal Markdown escapes
    ask(page, "What is the budget of Project Zephyr?")
    answered(page, "do not contain the answer")
    assert "\\" not in page.inner_text("#chat")

    ask(page, "What rate did the Fed keep?")
    answered(page, "3.75%")
    page.wait_for_selector("#sources mark")
    # [1] carries a preview and scrolls to (and flashes) its source card.
    cite = page.locator("#chat a.rag-cite").last
    assert "Fed holds rates steady" in (cite.get_attribute("title") or "")
    cite.click()
    page.wait_for_selector("#sources .rag-source.rag-flash", timeout=5_000)
    # "Open in document" shows the whole article with the cited words marked and in view.
    page.click("#sources a.rag-open")
    span = page.wait_for_selector("#reader mark#rag-span", timeout=30_000)
    assert span.inner_text() == "The U.S. Federal Reserve kept its benchmark rate at 3.75% on Wednesday."
    page.wait_for_function("(() => { const r = document.getElementById('rag-span').getBoundingClientRect();"
                           " return r.top >= 0 && r.bottom <= window.innerHeight; })()", timeout=10_000)  # fmt: skip
    assert "# Fed" not in page.inner_text("#reader")  # a heading's #s are not shown


def test_an_answer_asked_for_while_the_page_loads_stays(served: Served, browser: Any) -> None:
    """The page's load event (which reopens a saved conversation) is held back until a question
    asked meanwhile has its answer; its late reply must not empty that chat (on a loaded machine
    it arrived last and did)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    held: list[Any] = []

    def hold_the_first(route: Any) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route("**/gradio_api/queue/join*", hold_the_first)
    with page.expect_request("**/gradio_api/queue/join*"):
        page.goto(served.url)
    page.wait_for_selector("#question textarea")
    ask(page, "What rate did the Fed keep?")
    answered(page, "3.75%")
    assert len(held) == 1
    with page.expect_response("**/gradio_api/queue/join*"):
        held[0].continue_()
    page.wait_for_function("document.querySelector('#saved').innerText.includes('What rate did the Fed keep?')")
    settled(page)
    assert "3.75%" in page.inner_text("#chat")


def test_a_conversation_survives_a_reload_and_a_server_restart(served: Served, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(served.url)
    page.wait_for_selector("#question textarea")
    ask(page, "How much will the Riverside bridge repairs cost?")
    answered(page, "14.2 million euros")
    ask(page, "Who will pay for two thirds of them?")
    answered(page, "regional government")
    page.reload()
    answered(page, "regional government")
    assert "14.2 million euros" in page.inner_text("#chat")
    assert "How much will the Riverside bridge repairs cost?" in page.inner_text("#saved")

    served.stop()
    served.start()
    # The page that lost its server is reopened in a new tab of the same browser (the saved
    # conversation lives in its local storage): reloading the old tab failed once in a loaded
    # fresh-clone run with "Not attached to an active page", a tab Chromium had let go of.
    page = context.new_page()
    page.goto(served.url)
    answered(page, "regional government")
    page.wait_for_selector("#sources mark")  # its sources come back too
    # A new conversation, then the saved one reopened from the list.
    page.click("#new-conversation")
    page.wait_for_function("!document.querySelector('#chat')?.innerText.includes('regional government')")
    page.get_by_text("How much will the Riverside bridge repairs cost?").first.click()
    answered(page, "regional government")
    context.close()


def test_the_library_lists_filters_reads_and_deletes_documents(served: Served, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(served.url)
    page.get_by_role("tab", name="Documents").click()
    page.wait_for_selector("#library")
    assert "Orbit Systems delays satellite launch" in page.inner_text("#library")
    page.get_by_label("Title contains").fill("dengue")
    page.wait_for_function("!document.querySelector('#library').innerText.includes('Orbit Systems')")
    page.locator("#library :text('Dengue cases rise in southern Europe') >> visible=true").first.click()
    page.wait_for_function("document.querySelector('#reader').innerText.includes('412 locally acquired')")
    page.click("#delete-document")
    page.click("#confirm")
    page.wait_for_function("document.querySelector('#library-note').innerText.includes('Deleted 1 document')")
    assert "Dengue" not in page.inner_text("#library")
    with RAG.open(served.index_dir, read_only=True) as rag:
        assert rag.documents(title="dengue")[0] == 0
    # A page opened afterwards lists the library as it is now (it listed the server's first one).
    later = browser.new_page(viewport={"width": 1280, "height": 900})
    later.goto(served.url)
    later.get_by_role("tab", name="Documents").click()
    listed = "document.querySelector('#library')?.innerText || ''"
    later.wait_for_function(f"({listed}).includes('Orbit Systems') && !({listed}).includes('Dengue')", timeout=30_000)


def test_an_empty_start_then_upload_then_ask_and_a_refused_docx(browser: Any, tmp_path: Path) -> None:
    empty = Served(tmp_path / "new-index", tmp_path)
    empty.start()
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(empty.url)
        page.wait_for_selector("#question textarea")
        assert "upload documents to create it" in page.inner_text("#facts")
        ask(page, "Anything?")
        answered(page, "No documents yet")
        assert not (tmp_path / "new-index" / "store.sqlite").exists()

        page.get_by_role("tab", name="Documents").click()
        page.click("#add-documents")
        docx = write(tmp_path / "report.docx", "PK not really a word file")
        page.set_input_files("#upload input[type=file]", str(docx))
        # The browser refuses the type at once (a notice), or lists the file; either way "Index
        # these files" then sends what the box holds, and the report says what became of it.
        said = "document.body.innerText.includes('report.docx')"
        refused = "document.body.innerText.toLowerCase().includes('invalid file type')"
        page.wait_for_function(f"{said} || {refused}", timeout=30_000)
        page.click("#index-files")
        page.wait_for_function("document.querySelector('#upload-report').innerText.trim() !== ''", timeout=60_000)
        uploads = tmp_path / "new-index" / "uploads"
        assert not uploads.exists() or not any(p.suffix == ".docx" for p in uploads.iterdir())

        note = write(tmp_path / "harbour.md", "# Harbour news\n\nCaptain Okonkwo painted her submarine tangerine.")
        page.goto(empty.url)
        page.get_by_role("tab", name="Documents").click()
        page.click("#add-documents")
        page.set_input_files("#upload input[type=file]", str(note))
        # Listed (name, size) once it reached the server; "Uploading 1 file..." until then.
        uploaded = ("(() => { const u = document.querySelector('#upload');"
                    " return u.querySelector('.file-preview .stem')?.innerText === 'harbour'"
                    " && !u.innerText.includes('Uploading'); })()")  # fmt: skip
        page.wait_for_function(uploaded, timeout=60_000)
        page.click("#index-files")
        page.wait_for_function("document.querySelector('#upload-report').innerText.includes('1 added')",
                               timeout=120_000)  # fmt: skip
        page.get_by_role("tab", name="Chat").click()
        ask(page, "What colour is Captain Okonkwo's submarine?")
        answered(page, "tangerine")
    finally:
        empty.stop()


@pytest.mark.parametrize(
    ("name", "viewport", "scheme"),
    [("chat.png", (1280, 860), "light"), ("chat-mobile.png", (400, 820), "light"),
     ("chat-dark.png", (1280, 860), "dark")],
)  # fmt: skip
def test_screenshots(served: Served, browser: Any, name: str, viewport: tuple[int, int], scheme: str) -> None:
    """The screenshots in docs/ come from here (copied from test-artifacts/ when they change)."""
    page = opened(browser, served, viewport, scheme)
    ask(page, "What rate did the Fed keep?")
    answered(page, "3.75%")
    if viewport[0] >= 700:
        page.wait_for_selector("#sources mark")
    else:  # the chat takes the screen; sources wait in their drawer
        assert page.evaluate("document.querySelector('#sources-panel.open') === null")
    settled(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=viewport[0] < 700)
    assert (ARTIFACTS / name).stat().st_size > 10_000
    if scheme == "dark":  # the highlight keeps light text on a dark amber
        colour = page.evaluate("getComputedStyle(document.querySelector('#sources mark')).color")
        assert colour == "rgb(255, 251, 235)"


def serving(root: Path, paths: list[Path]) -> Iterator[Served]:
    """A server over a new index of ``paths`` in ``root``, stopped when the fixture ends."""
    with RAG.open(root / "index") as rag:
        rag.index(paths, progress=False)
    server = Served(root / "index", root)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def syndicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server over a story published twice (two outlets) and one other article."""
    site = REPO / "examples" / "site"
    yield from serving(tmp_path_factory.mktemp("syndicated"), [site / "dengue.html", site / "dengue-local.html",
                                                                site / "fed-rates.html"])  # fmt: skip


@pytest.mark.parametrize(
    ("name", "viewport", "scheme"),
    [("also-desktop.png", (1280, 860), "light"), ("also-dark.png", (1280, 860), "dark"),
     ("also-mobile.png", (400, 820), "light")],
)  # fmt: skip
def test_a_syndicated_story_is_cited_once_and_names_the_other_outlet(
    syndicated: Served, browser: Any, name: str, viewport: tuple[int, int], scheme: str
) -> None:
    page = opened(browser, syndicated, viewport, scheme)
    ask(page, "How many dengue cases were reported in Europe?")
    answered(page, "412")
    if viewport[0] < 700:  # on a phone the sources wait in their drawer: open it from a citation
        # The citation link comes with the final render, after the streamed text (slow under load).
        page.wait_for_selector("#chat a.rag-cite", timeout=90_000)
        page.click("#chat a.rag-cite")
    also = page.wait_for_selector("#sources .rag-also", state="visible", timeout=30_000)
    # Global Wire's page is the original (Riverside's dateline credits it), on every run.
    assert also.inner_text() == "Also published by Riverside Local News"
    assert page.get_attribute("#sources .rag-also a", "href") == "https://riverside.example/2026/dengue/"
    assert page.inner_text("#sources").count("Dengue cases rise in southern Europe") == 1  # one copy cited
    settled(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=viewport[0] < 700)


@pytest.mark.parametrize(
    ("name", "viewport", "scheme"),
    [("follow-up.png", (1280, 860), "light"), ("follow-up-dark.png", (1280, 860), "dark"),
     ("follow-up-mobile.png", (390, 844), "light")],
)  # fmt: skip
def test_a_follow_up_shows_what_was_searched_a_note_clears_and_stop_shows_only_while_answering(
    served: Served, browser: Any, name: str, viewport: tuple[int, int], scheme: str
) -> None:
    page = opened(browser, served, viewport, scheme)
    assert not page.is_visible("#stop")  # nothing is being answered
    page.click("#ask")  # an empty question
    page.wait_for_function("document.querySelector('#ask-note').innerText.includes('Type a question first.')",
                           timeout=30_000)  # fmt: skip
    ask(page, "What rate did the Fed keep?")
    answered(page, "3.75%")
    settled(page)
    page.wait_for_function("document.querySelector('#ask-note').innerText.trim() === ''", timeout=30_000)
    page.wait_for_selector("#stop", state="hidden", timeout=30_000)  # hidden again once answered
    ask(page, "And when is the next meeting?")
    page.wait_for_function("document.querySelectorAll('#chat .rag-searched').length === 1", timeout=90_000)
    searched = page.inner_text("#chat .rag-searched")
    assert searched.startswith("searched for: ") and "meeting" in searched and searched != "searched for: "
    settled(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=viewport[0] < 700)


def test_deleting_a_document_asks_with_a_cancel_beside_it(served: Served, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(served.url)
    page.wait_for_selector("#question textarea")
    page.get_by_role("tab", name="Documents").click()
    # A document still in the index (an earlier test of this module deletes the dengue one).
    page.locator("#library :text('Orbit Systems delays satellite launch') >> visible=true").first.click()
    page.wait_for_function("document.querySelector('#reader').innerText.includes('Orbit Systems')", timeout=30_000)
    page.click("#delete-document")
    page.wait_for_selector("#confirm", state="visible", timeout=30_000)
    assert page.is_visible("#cancel-delete") and page.inner_text("#cancel-delete").strip() == "Cancel"
    page.click("#cancel-delete")
    page.wait_for_selector("#confirm", state="hidden", timeout=30_000)
    page.wait_for_function("document.querySelector('#library-note').innerText.includes('Nothing was deleted.')",
                           timeout=30_000)  # fmt: skip
    assert not page.is_visible("#cancel-delete")


@pytest.mark.parametrize(
    ("name", "viewport", "scheme"),
    [("library.png", (1280, 860), "light"), ("library-dark.png", (1280, 860), "dark"),
     ("library-mobile.png", (390, 844), "light")],
)  # fmt: skip
def test_the_documents_tab_keeps_every_column_in_view_and_reads_as_the_chat(
    served: Served, browser: Any, name: str, viewport: tuple[int, int], scheme: str
) -> None:
    page = opened(browser, served, viewport, scheme)
    if viewport[0] >= 700:  # both sidebars open beside the page, as on a desktop
        assert page.evaluate("document.querySelectorAll('.sidebar.open').length") == 2
    page.get_by_role("tab", name="Documents").click()
    page.wait_for_selector("#library .rag-library table", state="visible")
    shown = page.evaluate("""() => {
        const box = document.querySelector('#library').getBoundingClientRect();
        const cells = [...document.querySelectorAll('#library thead th')].filter(th => th.offsetParent !== null);
        return {
            columns: cells.map(th => th.innerText.trim()),
            inside: cells.every(th => {
                const r = th.getBoundingClientRect();
                return r.left >= box.left - 1 && r.right <= box.right + 1;
            }),
            sideways: document.documentElement.scrollWidth > window.innerWidth,
            font: getComputedStyle(document.querySelector('#library td')).fontFamily,
            chat: getComputedStyle(document.querySelector('#question textarea')).fontFamily,
        };
    }""")  # fmt: skip
    wanted = ["Title", "Date", "Source", "Chunks", "Indexed"] if viewport[0] >= 700 else ["Title", "Date", "Source"]
    assert shown["columns"] == wanted and shown["inside"] and not shown["sideways"], shown
    assert shown["font"] == shown["chat"]  # the chat's font, not a spreadsheet's monospace
    # The filters sit in one row on a desktop ("Until date" was alone on a second one).
    tops = page.evaluate(
        "[...document.querySelectorAll('#library-filters textarea, #library-filters input')]"
        ".map(i => Math.round(i.getBoundingClientRect().top))"
    )
    assert len(tops) == 4 and (len(set(tops)) == 1 or viewport[0] < 700)
    # A title opens the document in the reader, scrolled into view.
    page.click("#library a.rag-doc:has-text('Riverside bridge repairs to start in spring')")
    page.wait_for_function("document.querySelector('#reader').innerText.includes('14.2 million euros')", timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=viewport[0] < 700)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server over one story in four reports (examples/stories)."""
    yield from serving(tmp_path_factory.mktemp("story"), [REPO / "examples" / "stories"])


@pytest.mark.parametrize(
    ("name", "viewport", "scheme"),
    [("timeline.png", (1280, 860), "light"), ("timeline-dark.png", (1280, 860), "dark"),
     ("timeline-mobile.png", (390, 844), "light")],
)  # fmt: skip
def test_an_answer_over_several_dates_is_a_timeline_and_the_reader_lists_the_story(
    story: Served, browser: Any, name: str, viewport: tuple[int, int], scheme: str
) -> None:
    page = opened(browser, story, viewport, scheme)
    ask(page, "How many workers are employed on the harbor tunnel project?")
    settled(page)
    lead = page.wait_for_selector("#chat .rag-timeline li.rag-lead", state="visible", timeout=90_000)
    assert lead.inner_text().startswith("Sept. 18, 2026: The project now employs about 2,300 workers")
    earlier = page.inner_text("#chat .rag-timeline li.rag-earlier")
    assert earlier.startswith("Earlier, March 4, 2026: About 1,800 workers")
    # The dot of the lead is drawn, and the dates stand apart from the quotes.
    assert page.evaluate("getComputedStyle(document.querySelector('#chat .rag-when')).fontWeight") == "600"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=viewport[0] < 700)
    if viewport[0] >= 700 and scheme == "light":  # the reader: the March report lists the story's others
        page.click("#sources .rag-source:nth-child(2) a.rag-open")
        listed = page.wait_for_selector(".rag-reader .rag-story", state="visible", timeout=30_000).inner_text()
        assert "updated Sept. 18, 2026: Harbor Street tunnel workforce grows as opening slips (Harbor Herald)" in listed
        assert "later Sept. 18, 2026: Tunnel bill climbs past $2 billion (Bay Times)" in listed


def test_an_export_downloads_and_is_kept_owner_only_in_the_index_folder(served: Served, browser: Any) -> None:
    import stat

    import httpx

    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.goto(served.url)
    page.wait_for_selector("#question textarea")
    ask(page, "What rate did the Fed keep?")
    answered(page, "3.75%")
    page.get_by_text("Rename, delete, export").click()
    # The first click writes the file and hands it to the button, which downloads it on the next
    # click (the button shows no sign of holding it, so each try waits for a download).
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.click("#export-md")
    download = None
    for _ in range(20):
        try:
            with page.expect_download(timeout=3_000) as started:
                page.click("#export-md")
            download = started.value
            break
        except PlaywrightTimeout:
            continue
    assert download is not None, "the export never downloaded"
    assert "3.75%" in Path(download.path()).read_text(encoding="utf-8")
    (kept,) = (served.index_dir / "exports").rglob("*.md")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and ".rx-" in kept.name
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    # Without --auth each browser is its own owner: the link answers this browser's cookie only.
    cookies = {c["name"]: c["value"] for c in context.cookies()}
    assert httpx.get(download.url, cookies=cookies, timeout=30).status_code == 200
    assert httpx.get(download.url, timeout=30).status_code == 404
    context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_each_browser_keeps_its_own_conversations_and_the_sidebar_says_so(
    served: Served, browser: Any, scheme: str
) -> None:
    phone = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme=scheme)
    desktop = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
    theme = "?__theme=dark" if scheme == "dark" else ""
    page = phone.new_page()
    page.goto(served.url + theme)
    page.wait_for_selector("#question textarea")
    ask(page, "What did the Fed decide on rates?")
    settled(page)
    page.wait_for_function("document.querySelector('#saved')?.innerText.includes('Fed decide')", timeout=30_000)
    assert page.inner_text("#signed-in").strip() == "Conversations are kept for this browser only."
    other = desktop.new_page()
    other.goto(served.url + theme)
    other.wait_for_selector("#question textarea")
    other.wait_for_function("document.querySelector('#signed-in')?.innerText.includes('this browser')")
    # The desktop's list is loaded (its sidebar line came with it) and lacks the phone's question.
    assert "Fed decide" not in other.inner_text("#saved")
    ARTIFACTS.mkdir(exist_ok=True)
    other.screenshot(path=str(ARTIFACTS / f"conversations-per-browser{'-dark' if scheme == 'dark' else ''}.png"))
    # The same browser, in a new tab, still has it.
    again = phone.new_page()
    again.goto(served.url)
    again.wait_for_function("document.querySelector('#saved')?.innerText.includes('Fed decide')", timeout=30_000)
    phone.close()
    desktop.close()


def test_shared_conversations_are_one_list_for_every_browser(tmp_path: Path, browser: Any) -> None:
    from tests.conftest import running_serve

    index_dir = news_index(tmp_path)
    env = {**ENV, "RAG_SHARED_CONVERSATIONS": "true"}  # the setting from the environment
    with running_serve(index_dir, tmp_path / "shared.log", env) as url:
        first = browser.new_context()
        page = first.new_page()
        page.goto(url)
        page.wait_for_selector("#question textarea")
        ask(page, "What did the Fed decide on rates?")
        settled(page)
        assert "everyone who opens this page" in page.inner_text("#signed-in")
        second = browser.new_context()
        other = second.new_page()
        other.goto(url)
        other.wait_for_function("document.querySelector('#saved')?.innerText.includes('Fed decide')", timeout=30_000)
        assert not [c for c in second.cookies() if c["name"] == "rag-browser"]  # no browser cookie is made
        first.close()
        second.close()


LATEST_ANSWER_PLACE = """() => {
    const bots = [...document.querySelectorAll('#chat .message-row.bot-row')];
    const last = bots[bots.length - 1];
    if (!last) return null;
    const users = [...document.querySelectorAll('#chat .message-row.user-row')];
    const asked = users[users.length - 1].getBoundingClientRect().top;
    let box = last.parentElement;  // the chat's own scrolling box
    while (box && !(box.scrollHeight > box.clientHeight && getComputedStyle(box).overflowY !== 'visible')) {
        box = box.parentElement;
    }
    const area = box ? box.getBoundingClientRect() : {top: 0, bottom: window.innerHeight};
    const r = last.getBoundingClientRect();
    // What of the chat is on the screen: inside its box and inside the window.
    return {top: r.top, asked: asked, height: r.height, areaTop: Math.max(area.top, 0),
            areaBottom: Math.min(area.bottom, window.innerHeight)};
}"""


@pytest.mark.parametrize(
    ("name", "viewport", "scheme"),
    [("latest-answer.png", (1280, 860), "light"), ("latest-answer-dark.png", (1280, 860), "dark"),
     ("latest-answer-mobile.png", (390, 844), "light"), ("latest-answer-mobile-dark.png", (390, 844), "dark")],
)  # fmt: skip
def test_the_latest_answer_starts_in_view_on_a_phone_and_a_desktop(
    story: Served, browser: Any, name: str, viewport: tuple[int, int], scheme: str
) -> None:
    page = opened(browser, story, viewport, scheme)
    # Two long answers (a timeline each): the second one's start must be where the eye is,
    # not scrolled off above the question box as the chat followed the answer's end.
    for question in ("How many workers are employed on the harbor tunnel project?",
                     "How much will the Harbor Street tunnel cost?"):  # fmt: skip
        ask(page, question)
        settled(page)
        page.wait_for_function("document.querySelectorAll('#chat .rag-timeline').length >= 1", timeout=90_000)
    page.wait_for_function("document.querySelectorAll('#chat .rag-timeline').length >= 2", timeout=90_000)
    # Its question and its start are on the screen, inside the chat (scrolled there once it is done).
    page.wait_for_function(f"(() => {{ const p = ({LATEST_ANSWER_PLACE})(); "
                           "return p && p.areaTop - 1 <= p.asked && p.asked < p.top && p.top < p.areaBottom - 40; })()",
                           timeout=30_000)  # fmt: skip
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))
