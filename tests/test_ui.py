"""The web chat, served for real by `rag serve` on 127.0.0.1 and used as people and programs use
it: through gradio_client (ask, upload, 20 concurrent users) and in headless Chromium
(the answer with its highlighted span, and a document with <script> running nothing)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from rag import RAG
from rag.types import Answer, Citation, Passage
from tests.conftest import REPO, SAMPLE_ARTICLES, running_serve, served_url, start_server, write
from ui.render import answer_message, sources_html

pytestmark = pytest.mark.slow  # a real `rag serve` with the real model

ARTIFACTS = REPO / "test-artifacts"
NAMES = ["Amara", "Bruno", "Chen", "Dalia", "Emeka", "Farah", "Goran", "Hana", "Ilya", "Jonas",
         "Kiri", "Lena", "Mateo", "Nadia", "Oren", "Priya", "Quinn", "Rosa", "Sven", "Tomas"]  # fmt: skip
WORDS = ["lantern", "harbor", "violet", "granite", "falcon", "meadow", "copper", "ember", "glacier", "orchid",
         "saffron", "thistle", "walnut", "zephyr", "marble", "juniper", "cobalt", "willow", "quartz",
         "maple"]  # fmt: skip
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


# --- rendering (fast) ----------------------------------------------------------------------


def _answer(quote: str) -> Answer:
    passage = Passage(1, 1, "d", "T<b>", "s", "2021-01-01", 0, len(quote) + 6, quote + " after", 1.0)
    citation = Citation(1, "d", "T<b>", "s", "2021-01-01", 0, len(quote), quote, 1.0)
    from rag.types import AnswerSentence

    sentence = AnswerSentence(quote, (1,), 1.0, True)
    return Answer("q", "q", quote + " [1]", True, (sentence,), (citation,), (passage,), {}, "extractive")


def test_the_answer_phrase_is_bold_and_an_llm_list_renders_as_a_list_safely() -> None:
    from rag.types import AnswerSentence, AnswerSpan

    answer = _answer("The army had 300,000 troops <b>then</b>.")
    marked = replace(answer, answer_span=AnswerSpan(1, "d", 13, 27, "300,000 troops", "number"))
    assert '<strong class="rag-phrase">300,000 troops</strong> &lt;b&gt;then' in answer_message(marked)
    items = (
        AnswerSentence("Results:", (), 0.0, False),
        AnswerSentence("**Winner:** the green <i>party</i>", (1,), 0.9, True, "- "),
        AnswerSentence("*Turnout:* seventy percent", (1,), 0.9, True, "- "),
    )
    html = answer_message(replace(answer, sentences=items, answerer="llm"))
    assert '<sup><a class="rag-cite" href="#rag-cite/' in html and 'title="T&lt;b&gt;: “The army had' in html
    html = re.sub(r'<sup><a class="rag-cite" [^>]*>(\[\d+\])</a></sup>', r"<sup>\1</sup>", html)
    assert "<ul><li><strong>Winner:</strong> the green &lt;i&gt;party&lt;/i&gt;<sup>[1]</sup></li>" in html
    assert "<li><em>Turnout:</em> seventy percent<sup>[1]</sup></li></ul>" in html


def test_rendering_escapes_document_text_and_highlights_the_span() -> None:
    answer = _answer(XSS)
    html = sources_html(answer, lambda _: "")
    assert "<script>" not in html and "<img" not in html and "&lt;script&gt;" in html
    assert "<mark>&lt;script&gt;" in html and "T&lt;b&gt;" in html
    message = answer_message(answer)
    assert "<script>" not in message and "&lt;script&gt;" in message


# --- a real server ---------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    index_dir: Path
    started: float
    first_answer_s: float


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("ui")
    corpus = root / "corpus"
    shutil.copytree(SAMPLE_ARTICLES, corpus)
    # Markup as the text of an article (an HTML page's own <script> elements never reach the
    # index: the reader drops them). This is what must show as text and never run.
    write(
        corpus / "hostile.txt",
        f"Hostile page\n\nThe hostile article explains the zanzibar protocol. {XSS} It ends here.",
    )
    agents = [{"id": f"agent{i}", "title": f"Agent {n}", "text": f"{n} keeps a notebook. The code word of {n} is "
               f"{w}. Nobody else knows it."} for i, (n, w) in enumerate(zip(NAMES, WORDS, strict=True))]  # fmt: skip
    write(corpus / "agents.jsonl", "\n".join(json.dumps(a) for a in agents))
    index_dir = root / "index"
    with RAG.open(index_dir) as rag:
        rag.index([corpus], progress=False)
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    started = time.monotonic()
    with running_serve(index_dir, root / "serve.log", env) as url:
        from gradio_client import Client

        answer = Client(url, verbose=False).predict("How many troops did the Afghan government have?", api_name="/ask")
        first = time.monotonic() - started
        assert "300,000" in answer["answer"]
        yield Server(url, index_dir, started, first)


def test_first_answer_arrives_soon_after_start(server: Server) -> None:
    # Reported in the README; a generous bound here, since timing is not what tests judge.
    print(f"first answer {server.first_answer_s:.1f} s after starting rag serve")
    assert server.first_answer_s < 120


def test_api_answers_with_citations(server: Server) -> None:
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    answer = client.predict("How many troops did the Afghan government have, according to Massoud?", api_name="/ask")
    assert answer["answerable"] is True
    (citation,) = [c for c in answer["citations"] if "300,000" in c["quote"]]
    assert citation["date"] == "2021-09-21" and citation["end"] > citation["start"]
    unknown = client.predict("What is the boiling point of mercury?", api_name="/ask")
    assert unknown["answerable"] is False


def test_an_uploaded_file_answers_straight_after(server: Server, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    client = Client(server.url, verbose=False)
    before = client.predict("What colour is the submarine of Captain Okonkwo?", api_name="/ask")
    assert not any("tangerine" in c["quote"] for c in before["citations"])
    note = write(tmp_path / "submarine.md", "# Harbour news\n\nCaptain Okonkwo painted her submarine tangerine.")
    empty = write(tmp_path / "empty.txt", "")
    report, facts, *_ = client.predict([handle_file(str(note)), handle_file(str(empty))], api_name="/upload")
    assert "**23** documents" in facts  # the sample article, the hostile one, 20 agents, and this
    assert "**1** added" in report and "empty.txt" in report and "empty document" in report
    after = client.predict("What colour is the submarine of Captain Okonkwo?", api_name="/ask")
    assert any("tangerine" in c["quote"] for c in after["citations"])


def test_twenty_concurrent_users_each_get_their_own_right_answers(server: Server) -> None:
    from gradio_client import Client

    def user(u: int) -> list[tuple[str, str]]:
        client = Client(server.url, verbose=False)
        got = []
        for q in range(5):
            i = (u * 5 + q) % len(NAMES)
            answer = client.predict(f"What is the code word of {NAMES[i]}?", api_name="/ask")
            got.append((WORDS[i], answer["answer"]))
        return got

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(user, range(20)))
    elapsed = time.monotonic() - started
    print(f"100 questions from 20 concurrent users in {elapsed:.1f} s")
    assert sum(len(r) for r in results) == 100, "no answer was lost"
    for answers in results:
        for word, text in answers:
            assert word in text, f"expected {word!r} in {text!r}"
            assert sum(w in text for w in WORDS) == 1, f"another user's answer leaked into {text!r}"


# --- a real browser ------------------------------------------------------------------------


def ask_in_page(page: object, question: str) -> None:
    page.fill("#question textarea", question)  # type: ignore[attr-defined]
    page.click("#ask")  # type: ignore[attr-defined]
    page.wait_for_function("document.querySelector('#question textarea').value === ''")  # type: ignore[attr-defined]


def test_browser_shows_the_answer_and_its_highlighted_span(server: Server, browser: object) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page.goto(server.url)
    page.wait_for_selector("#question textarea")
    ask_in_page(page, "How many troops did the Afghan government have, according to Massoud?")
    mark = page.wait_for_selector("#sources mark", timeout=60_000)
    assert "300,000" in mark.inner_text()
    page.wait_for_function("document.querySelector('#chat').innerText.includes('300,000 troops')", timeout=60_000)
    assert page.inner_text("#chat strong") == "300,000"  # the reader's answer phrase, in bold
    assert "2021-09-21" in page.inner_text("#sources")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)
    assert (ARTIFACTS / "chat.png").stat().st_size > 10_000


def test_a_hostile_document_shows_as_text_and_runs_nothing(server: Server, browser: object) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(server.url)
    page.wait_for_selector("#question textarea")
    ask_in_page(page, "What does the hostile article explain about the zanzibar protocol?")
    page.wait_for_selector("#sources mark", timeout=60_000)
    # Nothing could run: no element of the answer or its sources carries a script or a handler.
    handlers = ("Array.from(document.querySelectorAll('#sources *, #chat *')).some(e => e.tagName === 'SCRIPT'"
                " || Array.from(e.attributes).some(a => a.name.startsWith('on')))")  # fmt: skip
    assert page.evaluate(handlers) is False
    assert page.evaluate("typeof window.__xss") == "undefined"
    shown = page.inner_text("#sources") + page.inner_text("#chat")
    assert "<script>window.__xss = 1</script>" in shown
    assert page.locator("#sources img").count() == 0 and page.locator("#sources script").count() == 0
    page.screenshot(path=str(ARTIFACTS / "hostile.png"), full_page=True)


def test_basic_auth_guards_the_chat_and_the_api(server: Server, browser: object, tmp_path: Path) -> None:
    from gradio_client import Client

    env = {**os.environ, "RAG_AUTH": "alice:s3cret", "GRADIO_ANALYTICS_ENABLED": "False"}
    with running_serve(server.index_dir, tmp_path / "auth.log", env) as url:  # the login page answers 200
        with pytest.raises(Exception):  # noqa: B017 - gradio_client raises its own error types
            Client(url, verbose=False).predict("How many troops?", api_name="/ask")
        client = Client(url, auth=("alice", "s3cret"), verbose=False)
        answer = client.predict("How many troops did the Afghan government have?", api_name="/ask")
        assert "300,000" in answer["answer"]
        # In a browser: the sidebar says who is signed in, and Sign out ends the session.
        page = browser.new_page(viewport={"width": 1280, "height": 860})  # type: ignore[attr-defined]
        page.goto(url)
        page.fill("input[type=text]", "alice")
        page.fill("input[type=password]", "s3cret")
        page.keyboard.press("Enter")
        signed = page.wait_for_selector("#signed-in", state="visible", timeout=60_000)
        page.wait_for_function("document.querySelector('#signed-in').innerText.includes('alice')", timeout=30_000)
        assert signed.inner_text().strip().splitlines() == ["Signed in as alice · Sign out",
                                                            "Your conversations, on any browser."]  # fmt: skip
        page.click("#signed-in a:has-text('Sign out')")
        page.wait_for_selector("input[type=password]", timeout=30_000)  # the login page again
        page.goto(url)
        page.wait_for_selector("input[type=password]", timeout=30_000)  # and it stays signed out


def test_an_llm_answer_streams_into_the_chat(server: Server, browser: object, tmp_path: Path) -> None:
    """With the bundled SmolLM2 offered, the reply appears piece by piece, then is checked:
    the tiny model rarely cites, so its sentences usually end flagged, which must show."""
    log = tmp_path / "llm.log"
    cmd = [sys.executable, "-m", "rag.cli", "serve", "--index-dir", str(server.index_dir), "--port", "0",
           "--gguf", "smollm2"]  # fmt: skip
    proc = start_server(cmd, log, {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    try:
        url = served_url(proc, log, "rag serve --gguf smollm2")
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(url)
        page.wait_for_selector("#question textarea")
        page.get_by_role("button", name="Settings ▼").click()
        page.click("label:has-text('llm')")
        ask_in_page(page, "How many troops did the Afghan government have, according to Massoud?")
        page.wait_for_function("document.querySelector('#chat').innerText.includes('How many troops')", timeout=5_000)
        page.wait_for_function("document.querySelector('#chat').innerText.includes('▌')", timeout=60_000)
        page.wait_for_function(
            "!/[▌…]/.test(document.querySelector('#chat').innerText.split('How many troops').pop())", timeout=120_000
        )
        final = page.inner_text("#chat").split("according to Massoud?")[-1].strip()
        assert final and "▌" not in final
        # Every sentence either cites (a [n] marker and a highlighted source) or is flagged; when
        # none of them is supported by what it cites, the answer is withdrawn and said plainly.
        withdrawn = "The documents do not contain the answer" in final
        assert withdrawn or "⚠" in final or page.locator("#sources mark").count() > 0, final
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_question_written_as_a_markdown_image_shows_as_text_and_fetches_nothing(
    server: Server, browser: object
) -> None:
    import http.server
    import threading

    fetched: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetched.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    recorder = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    try:
        question = f"![x](http://127.0.0.1:{recorder.server_port}/q.png) <img src=/x.png>"
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(server.url)
        page.wait_for_selector("#question textarea")
        ask_in_page(page, question)
        page.wait_for_function("document.querySelector('#chat').innerText.includes('![x](http')", timeout=30_000)
        final = "document.querySelector('#chat a.rag-cite') || document.querySelector('#chat').innerText.includes"
        page.wait_for_function(f"{final}('do not contain the answer')", timeout=60_000)  # any image is in by now
        assert page.locator("#chat img").count() == 0
        assert fetched == [], f"the browser fetched {fetched}"
    finally:
        recorder.shutdown()
