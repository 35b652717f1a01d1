"""The holes a security audit found, each proven closed: uploads read only files the server
received, no request blocks on a special file, one bad file never stops a run, a slow page is cut
at its deadline, private address ranges are refused, a half-written keyword commit is repaired,
keyword scores do not depend on deletion history, a swapped store is never matched by an old
vector file, odd input gets a clear error, and logins and exports are guarded."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag import RAG, Config
from rag.config import WebSettings
from rag.ingest.address_guard import FetchError, is_public
from rag.ingest.sources import read_bounded
from rag.ingest.web import Fetcher
from tests.conftest import write
from tests.local_site import LocalSite, Route
from ui.service import ChatService

SECRET = "Vault notes\n\nThe vault code is plover-seventeen."


def _two_collections(tmp_path: Path) -> tuple[ChatService, Path, Path]:
    """A service over collections "a" and "b" whose uploads come through ``tmp/gradio``."""
    received = tmp_path / "gradio"
    received.mkdir()
    configs = {name: Config(index_dir=tmp_path / f"index-{name}", model="hashing-64") for name in ("a", "b")}
    for config in configs.values():
        with RAG.open(config=config) as rag:
            rag.index([write(tmp_path / "start" / "start.txt", "Start\n\nThe first file.")], progress=False)
    return ChatService(configs, upload_folders=[received]), received, tmp_path / "index-b" / "uploads"


def _documents(service: ChatService, name: str) -> int:
    rag = service.collections[name].rag
    assert rag is not None
    return int(rag.store.counts()["documents"])


def test_an_upload_reads_only_files_the_server_received(tmp_path: Path) -> None:
    service, received, other_uploads = _two_collections(tmp_path)
    secret = write(tmp_path / "home" / "notes.txt", SECRET)
    (received / "link").mkdir()
    (received / "link" / "notes.txt").symlink_to(secret)
    other = write(other_uploads / "theirs-0123456789.txt", SECRET)
    for path in (str(secret), f"{received}/../home/notes.txt", str(received / "link" / "notes.txt"), str(other)):
        report = service.upload([path], "a")
        assert report.startswith("Refused: `notes.txt`") or report.startswith("Refused: `theirs-"), (path, report)
        assert "not a file uploaded through this page" in report
        assert _documents(service, "a") == 1, path
    # Nothing refused was deleted either: they are someone's files, not the framework's copies.
    assert secret.exists() and other.exists() and (received / "link" / "notes.txt").is_symlink()
    good = write(received / "abc" / "fruit.txt", "Fruit\n\nThe orchard grows figs.")
    assert "**1** added" in service.upload([str(good)], "a") and _documents(service, "a") == 2


def test_a_fifo_in_an_upload_is_refused_without_waiting(tmp_path: Path) -> None:
    service, received, _ = _two_collections(tmp_path)
    fifo = received / "abc" / "stuck.txt"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    done: list[str] = []
    worker = threading.Thread(target=lambda: done.append(service.upload([str(fifo)], "a")), daemon=True)
    worker.start()
    worker.join(30)  # a reader blocked on the FIFO would wait here for a writer that never comes
    assert done, "the upload blocked on a FIFO"
    assert "not a regular file" in done[0] and _documents(service, "a") == 1


def test_a_fifo_swapped_in_after_the_check_is_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "late.txt"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        read_bounded(fifo, 1000)  # opened without waiting for a writer, then refused


# --- 3. one bad file is one skip, never a stopped run ------------------------------------------


def pdf_bomb() -> bytes:
    """A PDF whose catalog sits in an object stream that inflates past pypdf's 75 MB bound:
    pypdf raises LimitReachedError (not a PdfReadError) while finding the pages."""
    import struct
    import zlib

    head, catalog = b"1 0 ", b"<< /Type /Catalog /Pages 2 0 R >>"
    packed = zlib.compress(head + catalog + b" " * 92_000_000, 9)
    out = bytearray(b"%PDF-1.5\n")
    objstm = len(out)
    out += b"4 0 obj\n<< /Type /ObjStm /N 1 /First %d /Filter /FlateDecode /Length %d >>\nstream\n" % (
        len(head), len(packed)) + packed + b"\nendstream\nendobj\n"  # fmt: skip
    pages = len(out)
    out += b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    xref = len(out)
    # Cross-reference stream rows (type, offset or stream number, generation or index): object 1
    # is the first object of stream 4.
    rows = [(0, 0, 0xFFFF), (2, 4, 0), (1, pages, 0), (0, 0, 0), (1, objstm, 0), (1, xref, 0)]
    table = b"".join(bytes([kind]) + struct.pack(">IH", a, b) for kind, a, b in rows)
    out += b"5 0 obj\n<< /Type /XRef /Size 6 /W [1 4 2] /Root 1 0 R /Length %d >>\nstream\n" % len(table)
    out += table + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


SURROGATE_LINES = '{"id": "ok-1", "text": "A good line about herons."}\n{"text": "a \\ud800 b"}\n'


def test_a_pdf_bomb_and_a_lone_surrogate_are_skips_and_the_run_goes_on(
    config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rag.cli import main

    folder = tmp_path / "src"
    write(folder / "good.txt", "Good\n\nThe good file is about kestrels.")
    (folder / "bomb.pdf").write_bytes(pdf_bomb())
    write(folder / "lines.jsonl", SURROGATE_LINES)
    os.environ["RAG_MODEL"] = "hashing-64"
    try:
        code = main(["index", str(folder), "--index-dir", str(config.index_dir), "--no-progress"])
    finally:
        del os.environ["RAG_MODEL"]
    out = capsys.readouterr()
    assert code == 0, out
    assert "Traceback" not in out.out + out.err
    assert "bomb.pdf: PDF holds a stream too large to unpack" in out.out
    assert "lines.jsonl: line 2: not valid Unicode text" in out.out
    with RAG.open(config=config, read_only=True) as rag:
        assert rag.store.counts()["documents"] == 2  # good.txt and the jsonl's good line


def test_an_upload_of_bad_files_reports_them_and_keeps_no_copy(config: Config, tmp_path: Path) -> None:
    received = tmp_path / "gradio"
    bomb = received / "1" / "bomb.pdf"
    bomb.parent.mkdir(parents=True)
    bomb.write_bytes(pdf_bomb())
    lines = write(received / "2" / "lines.jsonl", '{"text": "a \\ud800 b"}\n')
    with RAG.open(config=config) as rag:
        report = ChatService.for_rag(rag, upload_folders=[received]).upload([str(bomb), str(lines)])
        assert rag.store.counts()["documents"] == 0
    assert "`bomb.pdf`: not indexed: PDF holds a stream too large to unpack" in report
    assert "`lines.jsonl`: not indexed: line 1: not valid Unicode text" in report
    assert not list((config.index_dir / "uploads").glob("*")), "files that gave nothing were kept"


# --- 4. a page sent slowly is cut at the fetch's deadline --------------------------------------


@pytest.fixture
def site() -> Iterator[LocalSite]:
    with LocalSite() as served:
        yield served


def test_a_page_sent_a_byte_at_a_time_is_cut_at_the_deadline(site: LocalSite) -> None:
    sent: list[int] = []
    stopped = threading.Event()

    def drip() -> Iterator[bytes]:
        try:
            yield b"<html><body><p>"
            for n in range(300):  # 30 s at this pace, each byte well within a read timeout
                time.sleep(0.1)
                sent.append(n)
                yield b"x"
        finally:
            stopped.set()  # run out, or closed when the client hung up

    site.routes["/drip"] = Route(drip)
    settings = WebSettings(user_agent="t", timeout=2, crawl_delay=0, allow_private=True)
    expected = r"timed out: not fetched within 2 s \(fetch_timeout bounds the whole download\)"
    with Fetcher(settings) as fetcher, pytest.raises(FetchError, match=expected):
        fetcher.get(site.url("/drip"))
    assert stopped.wait(30) and len(sent) < 300  # the client hung up while the server still had bytes


# --- 5. private ranges, and names that answer differently the second time --------------------

NOT_PUBLIC = [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "100.100.100.200",
    "0.0.0.0", "0.1.2.3", "192.0.2.1", "198.18.0.1", "198.51.100.7", "203.0.113.9", "224.0.0.1", "240.0.0.1",
    "255.255.255.255", "::", "::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::", "2002:a9fe:a9fe::", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "::127.0.0.1",
]  # fmt: skip
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1", "::ffff:8.8.8.8", "2002:808:808::", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_every_reserved_range_is_refused(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_global_addresses_are_allowed(address: str) -> None:
    assert is_public(address)


def test_a_carrier_grade_nat_host_is_refused_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _resolver(["100.100.100.200"]))
    with Fetcher(WebSettings(user_agent="t")) as fetcher, pytest.raises(FetchError, match=r"100\.100\.100\.200"):
        fetcher.get("http://metadata.example/latest/meta-data")


def test_a_name_that_rebinds_to_loopback_after_the_check_is_not_fetched(
    site: LocalSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.routes["/secret"] = Route(b"<html><body><p>internal only</p></body></html>")
    # The first answer passes the check; every later one points at this machine.
    monkeypatch.setattr(socket, "getaddrinfo", _resolver(["93.184.216.34", "127.0.0.1"]))
    port = site.server.server_address[1]
    settings = WebSettings(user_agent="t", crawl_delay=0, respect_robots=False)
    with Fetcher(settings) as fetcher, pytest.raises(FetchError, match=r"private or local address \(127\.0\.0\.1\)"):
        fetcher.get(f"http://rebind.example:{port}/secret")
    assert site.requests == []


def _resolver(answers: list[str]) -> Any:
    """A getaddrinfo that answers ``answers[0]``, then ``answers[1]``, ... and the last one after."""
    real = socket.getaddrinfo
    calls = iter(range(1_000))

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if not str(host).endswith(".example"):
            return real(host, port, *args, **kwargs)
        address = answers[min(next(calls), len(answers) - 1)]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 80)))]

    return getaddrinfo


# --- 6. a commit half-written by a killed run ----------------------------------------------------


def _topic_docs(folder: Path, words: list[str], count: int) -> Path:
    for i in range(count):
        word = words[i % len(words)]
        write(folder / f"doc{i:02d}.txt", f"Report {i} on {word}\n\nThe {word} report number {i} counts {i} items "
                                          f"of {word} and mentions {words[(i + 1) % len(words)]} once.")  # fmt: skip
    return folder


WORDS = ["herons", "kestrels", "plovers", "avocets", "curlews", "godwits", "dunlins", "egrets"]


def test_a_remove_killed_inside_the_keyword_commit_is_repaired_by_the_rerun(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setattr("rag.storage.keyword_index.EXACT_UP_TO_CHUNKS", 0)  # no rebuild: the removal's own commit
    monkeypatch.setattr("rag.storage.keyword_index.REBUILD_REMOVED_SHARE", 1.0)
    folder = _topic_docs(tmp_path / "src", WORDS, 12)
    with RAG.open(config=config) as rag:
        rag.index([folder], progress=False)
        victim = rag.resolve(str(folder / "doc03.txt"))[0]
    keywords = config.index_dir / "keywords"
    before = (keywords / "meta.json").read_bytes()
    with RAG.open(config=config) as rag:
        rag.remove(victim)
    # As if killed after the commit's files were written but before meta.json named them: the
    # store committed the removal, tantivy's last commit is the one before it.
    (keywords / "meta.json").write_bytes(before)
    assert any(p.suffix == ".del" for p in keywords.iterdir())
    with RAG.open(config=config) as rag:
        rag.remove(str(folder / "doc04.txt"))  # the rerun: another write on the same index
        status = rag.status()
        assert status["keyword_index"] == "tantivy", status
        assert rag.parts.keywords is not None and rag.parts.keywords.held_ids().size == rag.store.counts()["chunks"]


# --- 7. keyword scores depend on what is held, not on what was removed before ---------------------


def test_keyword_scores_after_deletions_equal_a_clean_build(config: Config, tmp_path: Path) -> None:
    folder = _topic_docs(tmp_path / "src", WORDS, 40)
    with RAG.open(config=config) as rag:
        rag.index([folder], progress=False)
    for i in range(0, 40, 4):  # a quarter of the documents go, one `rag remove` each
        (folder / f"doc{i:02d}.txt").unlink()
    with RAG.open(config=config) as rag:
        rag.index([folder], progress=False)
        assert rag.parts.keywords is not None and rag.parts.keywords.deleted_share() == 0  # built again from the store
        history = {w: _keyword_scores(rag, w) for w in WORDS}
    clean = config.replace(index_dir=tmp_path / "clean")
    with RAG.open(config=clean) as rag:
        rag.index([folder], progress=False)
        fresh = {w: _keyword_scores(rag, w) for w in WORDS}
    for word in WORDS:
        assert history[word] == pytest.approx(fresh[word]), word


def _keyword_scores(rag: RAG, word: str) -> dict[str, float]:
    """BM25 score of each matching document's path (chunk ids differ between two indexes)."""
    assert rag.parts.keywords is not None
    found = rag.parts.keywords.search([word], 50, None, rag.store.generation)
    assert found is not None, "tantivy did not answer"
    paths = {cid: rag.store.db.execute(
        "SELECT d.path FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id = ?", (cid,)).fetchone()[0]
        for cid in found}  # fmt: skip
    return {paths[cid]: score for cid, score in found.items()}


# --- 8. a store swapped under the derived indexes -------------------------------------------------


def test_a_swapped_store_is_never_matched_by_the_old_vector_and_keyword_files(config: Config, tmp_path: Path) -> None:
    import shutil

    with RAG.open(config=config) as rag:
        rag.index([_topic_docs(tmp_path / "old", WORDS[:4], 10)], progress=False)
    other = config.replace(index_dir=tmp_path / "other")
    with RAG.open(config=other) as rag:
        rag.index([_topic_docs(tmp_path / "new", WORDS[4:], 10)], progress=False)
    for stale in config.index_dir.glob("store.sqlite*"):
        stale.unlink()
    shutil.copy(other.index_dir / "store.sqlite", config.index_dir / "store.sqlite")  # same chunk ids, other texts
    with RAG.open(config=config, read_only=True) as rag:
        assert rag.status()["vectors_up_to_date"] is False
        for mode in ("dense", "keyword"):
            top = rag.search("curlews report", k=1, mode=mode)[0]
            assert "curlews" in top.text, (mode, top.text)
    with RAG.open(config=config) as rag:
        rag.repair_vectors()
        assert rag.status()["vectors_up_to_date"] is True and rag.status()["keyword_index"] == "tantivy"


# --- 9. odd input from the command line ---------------------------------------------------------


def test_rag_ask_with_a_byte_that_is_not_utf8_is_a_clear_error(config: Config, tmp_path: Path) -> None:
    import subprocess
    import sys

    with RAG.open(config=config) as rag:
        rag.index([_topic_docs(tmp_path / "src", WORDS, 3)], progress=False)
    done = subprocess.run(
        [sys.executable, "-m", "rag.cli", "ask", b"\xff", "--index-dir", str(config.index_dir)],
        capture_output=True, text=True, env={**os.environ, "PYTHONIOENCODING": "utf-8"}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert "the question holds a character that is not valid Unicode at position 0" in done.stderr


# --- 10. exports: owner-only files, served to their owner only -----------------------------------


def test_exports_are_owner_only_files_served_to_their_owner_only(tmp_path: Path) -> None:
    import stat

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route as Path_
    from starlette.testclient import TestClient

    from ui.guard import ExportFiles, ExportOwnerMiddleware

    exports = ExportFiles(tmp_path / "index" / "exports")
    folder = exports.folder_for("ann")
    config = Config(index_dir=tmp_path / "index", model="hashing-64")
    with RAG.open(config=config) as rag:
        rag.index([_topic_docs(tmp_path / "src", WORDS, 3)], progress=False)
        service = ChatService.for_rag(rag)
        _, _, key = list(
            service.respond("What about herons?", [], "rag", "", "ann", 3, "hybrid", "", "", "extractive")
        )[-1]
        path = service.export(key, "ann", "md", folder, exports.marker("ann"))
    assert path is not None and path.parent == folder and path.name.endswith(exports.marker("ann") + ".md")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == stat.S_IMODE(exports.folder.stat().st_mode) == 0o700

    def who(scope: dict[str, Any]) -> str | None:
        return dict(scope["headers"]).get(b"x-user", b"").decode() or None

    inner = Starlette(routes=[Path_("/gradio_api/file={p:path}", lambda r: PlainTextResponse("file"))])
    client = TestClient(ExportOwnerMiddleware(inner, exports, who))
    link = f"/gradio_api/file=/tmp/gradio/abc/{path.name}"
    assert client.get(link, headers={"x-user": "ann"}).text == "file"
    assert client.get(link, headers={"x-user": "bob"}).status_code == 404
    assert client.get(link).status_code == 404  # signed out
    assert client.get("/gradio_api/file=/tmp/gradio/abc/other.md", headers={"x-user": "bob"}).text == "file"


def test_the_login_throttle_doubles_the_wait_and_forgets_on_success() -> None:
    from ui.guard import FREE_TRIES, MAX_WAIT_S, LoginThrottle

    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    waits = []
    for _ in range(FREE_TRIES + 12):
        throttle.failed("10.0.0.9", "ann")
        waits.append(throttle.wait_s("10.0.0.9", "ann"))
    assert waits[:FREE_TRIES] == [0.0] * FREE_TRIES
    assert waits[FREE_TRIES : FREE_TRIES + 4] == [1.0, 2.0, 4.0, 8.0] and waits[-1] == MAX_WAIT_S
    assert throttle.wait_s("10.0.0.9", "bob") == 0 and throttle.wait_s("10.0.0.10", "ann") == 0
    throttle.succeeded("10.0.0.9", "ann")
    assert throttle.wait_s("10.0.0.9", "ann") == 0


def test_a_browser_gets_its_own_identity_from_the_page_and_keeps_it() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route as Path_
    from starlette.testclient import TestClient

    from ui.guard import BROWSER_COOKIE, BrowserCookieMiddleware, browser_of

    inner = Starlette(routes=[Path_("/", lambda r: PlainTextResponse("page")),
                              Path_("/config", lambda r: PlainTextResponse("{}"))])  # fmt: skip
    first, second = TestClient(BrowserCookieMiddleware(inner)), TestClient(BrowserCookieMiddleware(inner))
    assert "set-cookie" not in first.get("/config").headers  # only the page sets it
    page = first.get("/")
    made = page.headers["set-cookie"]
    assert made.startswith(f"{BROWSER_COOKIE}=") and "HttpOnly" in made and "SameSite=Lax" in made
    token = first.cookies[BROWSER_COOKIE]
    assert "set-cookie" not in first.get("/").headers  # kept, not replaced, on the next visit
    second.get("/")
    assert second.cookies[BROWSER_COOKIE] != token  # another browser, another identity
    assert browser_of({BROWSER_COOKIE: token}) == f"browser:{token}"
    # A forged or damaged value is no identity: the page makes a new one.
    assert browser_of({BROWSER_COOKIE: "x; other=1"}) is None
    forged = TestClient(BrowserCookieMiddleware(inner), cookies={BROWSER_COOKIE: "short"})
    assert forged.get("/").headers["set-cookie"].startswith(f"{BROWSER_COOKIE}=")


def test_whose_conversations_a_request_sees() -> None:
    from ui.guard import BROWSER_COOKIE, owner

    cookie = {BROWSER_COOKIE: "A" * 32}
    assert owner("alice", cookie, "s1", shared=False) == "alice"  # --auth: the user, on any browser
    assert owner("alice", cookie, "s1", shared=True) == "alice"
    assert owner(None, cookie, "s1", shared=True) == ""  # shared: everyone's one list
    assert owner(None, cookie, "s1", shared=False) == "browser:" + "A" * 32
    # No cookie (a client that keeps none): this page load's own list, never the shared one.
    assert owner(None, {}, "s1", shared=False) == "session:s1"


def test_the_shared_conversations_setting_from_the_cli_the_environment_and_the_config_file(tmp_path: Path) -> None:
    from rag.cli.commands import config_from_args
    from rag.cli.parser import build_parser
    from rag.config import ConfigError

    parser = build_parser()
    assert config_from_args(parser.parse_args(["serve"])).shared_conversations is False
    assert config_from_args(parser.parse_args(["serve", "--shared-conversations"])).shared_conversations is True
    assert Config.load(env={"RAG_SHARED_CONVERSATIONS": "yes"}).shared_conversations is True
    file = tmp_path / "rag.toml"
    file.write_text("shared_conversations = true\n", encoding="utf-8")
    assert config_from_args(parser.parse_args(["serve", "--config", str(file)])).shared_conversations is True
    with pytest.raises(ConfigError, match="shared_conversations='sometimes' must be true or false"):
        Config.load(env={"RAG_SHARED_CONVERSATIONS": "sometimes"})
