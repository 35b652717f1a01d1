"""Bad input gets a clear error and loses nothing: limits, special files, odd names and
encodings, damaged stores, read-only commands that must not write, uploads that must not take
over other documents, and parsing that stays linear on hostile input."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from rag import RAG, Config
from rag.cli import main
from rag.ingest.readers import UnreadableError, decode_text, read_file
from rag.ingest.sources import load_documents, scan
from rag.parts import IndexParts
from rag.search.query import SearchError
from tests.conftest import article, assert_consistent, write
from ui.service import ChatService, question_html, safe_name


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: these inputs took minutes when parsing was quadratic."""

    def fail(*_: object) -> None:
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- linear-time parsing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "data"),
    [
        (".md", b"# a" + b" " * 196_000 + b"b"),  # was 91 s: the heading pattern backtracked
        (".html", b"<html><body>" + b"<div>" * 40_000 + b"deep" + b"</div>" * 40_000),  # was 69 s
        (".html", b"<article>" + b"<div>" * 40_000 + b"unclosed"),
        (".html", b"</p>" * 50_000 + b"<p>after stray end tags</p>"),
        (".txt", b"a" + b" \n" * 100_000 + b"b"),
        (".md", b"---\n" + b"k: v\n" * 40_000),
    ],
)
def test_hostile_files_parse_in_linear_time(suffix: str, data: bytes) -> None:
    with time_limit(20):
        list(read_file(suffix, data))


def test_markdown_heading_still_becomes_the_title(tmp_path: Path) -> None:
    docs, _ = load_documents(tmp_path / "a.md", b"Intro line\n\n## The Heading ##\n\nBody text.")
    assert docs[0].title == "The Heading"


# --- decoding ------------------------------------------------------------------------------


def test_one_bad_byte_in_utf8_keeps_the_rest_utf8() -> None:
    text = decode_text("Café crème, naïve.\n".encode() + b"\xff" + " Über.".encode())
    assert "Café crème, naïve." in text and "Über" in text and "\ufffd" in text


def test_windows_1252_is_still_read() -> None:
    assert decode_text("Café déjà vu".encode("cp1252")) == "Café déjà vu"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_with_a_bom_are_text(codec: str) -> None:
    data = "Grüße aus Köln.".encode(codec)
    if codec == "utf-16-be":
        data = b"\xfe\xff" + data
    assert decode_text(data) == "Grüße aus Köln."


def test_binary_without_nul_bytes_at_the_start_is_refused() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(1, 256, 20_000, dtype=np.uint8).tobytes()
    noise = bytes(b for b in noise if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D))  # decodable as cp1252
    with pytest.raises(UnreadableError, match="binary"):
        decode_text(b"A plain start. " * 600 + noise)
    with pytest.raises(UnreadableError, match="binary"):
        decode_text(b"text " * 3000 + b"\x00" + b"more")


# --- special files and names ----------------------------------------------------------------


def test_fifo_device_link_and_huge_file_are_skipped_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    write(folder / "ok.txt", article(1))
    os.mkfifo(folder / "pipe.txt")
    (folder / "zero.txt").symlink_to("/dev/zero")
    (folder / "big.txt").write_bytes(b"word " * 300_000)  # 1.5 MB
    with time_limit(20):
        found = scan([folder], max_bytes=1_000_000)
    assert [p.name for p in found.files] == ["ok.txt"]
    reasons = {Path(s.path).name: s.reason for s in found.skipped}
    assert "not a regular file" in reasons["pipe.txt"] and "not a regular file" in reasons["zero.txt"]
    assert "max_file_mb" in reasons["big.txt"]


def test_indexing_a_folder_with_a_fifo_finishes(config: Config, tmp_path: Path) -> None:
    folder = tmp_path / "src"
    write(folder / "ok.txt", article(1))
    os.mkfifo(folder / "pipe.txt")
    with time_limit(30), RAG.open(config=config) as rag:
        summary = rag.index([folder], progress=False)
    assert summary.added == 1 and any("pipe.txt" in s.path for s in summary.skipped)


def test_a_file_name_that_is_not_utf8_is_skipped_and_reruns_work(
    config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "src"
    write(folder / "good.txt", article(2))
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.txt"), "wb") as fh:
        fh.write(b"Cafe article. It has text.")
    argv = ["index", str(folder), "--index-dir", str(config.index_dir), "--no-progress"]
    for _ in range(2):
        os.environ["RAG_MODEL"] = "hashing-64"
        try:
            assert main(argv) == 0
        finally:
            del os.environ["RAG_MODEL"]
    out = capsys.readouterr().out
    assert "caf\\xe9.txt: the file name is not valid UTF-8; rename the file" in out


# --- limits ----------------------------------------------------------------------------------


def test_question_length_and_k_have_one_rule_everywhere(config: Config, tmp_path: Path) -> None:
    write(tmp_path / "src" / "a.txt", article(1))
    with RAG.open(config=config.replace(max_question_chars=50, max_k=7)) as rag:
        rag.index([tmp_path / "src"], progress=False)
        with pytest.raises(SearchError, match="max_question_chars"):
            rag.ask("why " * 20)
        with pytest.raises(SearchError, match="max_question_chars"):
            rag.search("why " * 20)
        for k in (0, -1, 8, 10**9):
            with pytest.raises(SearchError, match=r"from 1 to 7 \(setting max_k\)"):
                rag.search("word1", k=k)
            with pytest.raises(SearchError, match=r"from 1 to 7 \(setting max_k\)"):
                rag.ask("word1", k=k)
        assert len(rag.search("word1", k=7)) >= 1
        assert rag.ask("word1").question == "word1"  # k unset: answer_passages


@pytest.mark.parametrize("question", ["", "   ", "?!.,", "как дела?", "x" * 5000])
def test_odd_questions_get_an_answer_or_a_clear_error(rag: RAG, tmp_path: Path, question: str) -> None:
    write(tmp_path / "src" / "a.txt", article(1))
    rag.index([tmp_path / "src"], progress=False)
    try:
        answer = rag.ask(question, history=[])
    except SearchError as exc:
        assert "question" in str(exc)
    else:
        assert answer.text


def test_limits_are_settings_from_the_environment_and_a_file(tmp_path: Path) -> None:
    toml = write(tmp_path / "rag.toml", "max_k = 9\nmax_file_mb = 3\n")
    config = Config.load(file=toml, env={"RAG_MAX_QUESTION_CHARS": "77", "RAG_MAX_UPLOAD_FILES": "4"})
    assert (config.max_k, config.max_file_mb, config.max_question_chars, config.max_upload_files) == (9, 3, 77, 4)


# --- uploads -------------------------------------------------------------------------------


def upload_copy(tmp_path: Path, name: str, text: str) -> str:
    """A file as the web framework hands it over: its own temporary copy."""
    folder = tmp_path / "gradio" / hashlib.sha1(text.encode()).hexdigest()[:8]
    return str(write(folder / name, text))


def test_an_upload_cannot_replace_a_document_from_another_source(config: Config, tmp_path: Path) -> None:
    write(tmp_path / "src" / "feed.jsonl", '{"id": "press-1", "title": "Original", "text": "The original text."}')
    rag = RAG.open(config=config)
    rag.index([tmp_path / "src"], progress=False)
    service = ChatService.for_rag(rag, upload_folders=[tmp_path])
    hostile = '{"id": "press-1", "title": "Forged", "text": "A forged text."}'
    report = service.upload([upload_copy(tmp_path, "x.jsonl", hostile)])
    assert "already belongs to" in report and "press-1" in report
    assert rag.document("press-1").text == "The original text."
    assert not list((config.index_dir / "uploads").glob("*")), "a refused upload was kept"
    rag.close()


def test_two_uploads_with_one_name_stay_two_documents(config: Config, tmp_path: Path) -> None:
    rag = RAG.open(config=config)
    service = ChatService.for_rag(rag, upload_folders=[tmp_path])
    first = service.upload([upload_copy(tmp_path, "notes.txt", "Notes one\n\nThe first notes mention lemons.")])
    second = service.upload([upload_copy(tmp_path, "notes.txt", "Notes two\n\nThe second notes mention figs.")])
    again = service.upload([upload_copy(tmp_path, "notes.txt", "Notes two\n\nThe second notes mention figs.")])
    assert "**1** added" in first and "**1** added" in second and "**1** unchanged" in again
    assert rag.store.counts()["documents"] == 2
    assert len(list((config.index_dir / "uploads").glob("notes-*.txt"))) == 2
    rag.close()


def test_unsupported_and_oversized_uploads_are_refused_and_not_written(config: Config, tmp_path: Path) -> None:
    rag = RAG.open(config=config.replace(max_upload_files=2, max_upload_mb=1, max_file_mb=1))
    service = ChatService.for_rag(rag, upload_folders=[tmp_path])
    report = service.upload(
        [
            upload_copy(tmp_path, "report.docx", "PK binary"),
            upload_copy(tmp_path, "../../evil name!.txt", "Evil\n\nA normal body."),
        ]
    )
    assert "report.docx" in report and "unsupported file type .docx" in report
    assert next(p.name for p in (config.index_dir / "uploads").iterdir()).startswith("evil name-")
    too_many = service.upload([upload_copy(tmp_path, f"{i}.txt", f"text {i}") for i in range(3)])
    assert "max_upload_files" in too_many
    big = tmp_path / "big.txt"
    big.write_bytes(b"word " * 300_000)
    too_big = service.upload([str(big)])
    assert "max_upload_mb" in too_big
    assert rag.store.counts()["documents"] == 1
    rag.close()


def test_safe_names() -> None:
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("a b<c>.TXT") == "a b_c.TXT"
    assert safe_name("....") == "upload"


def test_questions_wait_for_no_upload(config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An upload is parsed and embedded on its own handle: a question asked meanwhile answers
    while the upload is held inside embedding (it is let go only after the answer came, so a
    question that waited for the upload would never return)."""
    write(tmp_path / "src" / "a.txt", "Apples\n\nThe orchard grows apples and pears.")
    rag = RAG.open(config=config)
    rag.index([tmp_path / "src"], progress=False)
    service = ChatService.for_rag(rag, upload_folders=[tmp_path])
    rag.search("apples", k=1)  # the model and vectors are loaded
    embedding, answered = threading.Event(), threading.Event()
    real = IndexParts.embed

    def held(self: IndexParts, texts: list[str]) -> np.ndarray:
        if not embedding.is_set():
            embedding.set()
            assert answered.wait(120), "the question never came back while the upload embedded"
        return real(self, texts)

    monkeypatch.setattr(IndexParts, "embed", held)  # only indexing embeds through embed
    upload = threading.Thread(target=service.upload, args=([upload_copy(tmp_path, "big.txt", article(5, 2000))],))
    upload.start()
    assert embedding.wait(60)
    answer = service.ask("What does the orchard grow?")
    assert upload.is_alive(), "the upload finished before the question: the test proves nothing"
    answered.set()
    assert "apples" in answer["passages"][0]["text"]
    upload.join(60)
    assert not upload.is_alive() and rag.store.counts()["documents"] == 2
    rag.close()
    assert_consistent(config.index_dir)


def test_questions_show_as_text_never_markdown_or_html() -> None:
    shown = question_html("![x](http://127.0.0.1:9/q.png)\n\n<img src=x onerror=alert(1)>")
    assert shown.startswith('<div class="rag-question">') and "\n" not in shown
    assert "<img" not in shown and "&lt;img" in shown


# --- integrity -------------------------------------------------------------------------------


def test_reindexing_restores_a_removed_jsonl_record(rag: RAG, tmp_path: Path) -> None:
    feed = write(
        tmp_path / "src" / "feed.jsonl", "\n".join(f'{{"id": "r{i}", "text": "Record {i} text."}}' for i in range(3))
    )
    rag.index([feed], progress=False)
    rag.remove("r1")
    assert rag.store.counts()["documents"] == 2
    summary = rag.index([feed], progress=False)
    assert summary.added == 1 and rag.document("r1").text == "Record 1 text."


def test_removed_text_leaves_the_embedding_cache_and_gc_clears_the_rest(rag: RAG, tmp_path: Path) -> None:
    folder = tmp_path / "src"
    for i in range(3):
        write(folder / f"a{i}.txt", article(i))
    rag.index([folder], progress=False)
    cached = rag.store.counts()["cached_embeddings"]
    assert cached == rag.store.counts()["chunks"]
    (folder / "a0.txt").unlink()
    write(folder / "a1.txt", article(1) + " One more sentence at the end.")
    rag.index([folder], progress=False)
    used = {r[0] for r in rag.store.db.execute("SELECT text_hash FROM chunks")}
    cache = {r[0] for r in rag.store.db.execute("SELECT text_hash FROM embeddings")}
    assert cache == used, "vectors of removed text were kept"
    rag.store.put_vectors("another-model", ["x" * 64], np.zeros((1, 64), dtype=np.float32))
    write(rag.dir / "uploads" / "orphan-0123456789.txt", "nobody indexed this")
    freed = rag.collect_garbage()
    assert freed == {"cached_vectors": 1, "upload_files": 1, "temporary_files": 0}
    assert_consistent(rag.dir)


def test_a_crash_inside_one_big_file_keeps_the_embedding_work(config: Config, tmp_path: Path) -> None:
    write(tmp_path / "src" / "big.txt", article(9, words=3000))
    rag = RAG.open(config=config)  # encode_group=8: many groups inside this one file
    calls = 0
    real = rag.encoder.encode_documents

    def dies_on_the_fourth_call(texts: list[str]) -> np.ndarray:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise KeyboardInterrupt
        return real(texts)

    rag.encoder.encode_documents = dies_on_the_fourth_call  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        rag.index([tmp_path / "src"], progress=False)
    assert rag.store.counts()["cached_embeddings"] == 3 * 8
    rag.close()
    with RAG.open(config=config) as again:
        summary = again.index([tmp_path / "src"], progress=False)
    assert summary.added == 1 and summary.embedded == summary.chunks - 3 * 8


# --- damaged and foreign stores; read-only commands --------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAG_MODEL": "hashing-64"}
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.slow  # starts `rag` processes
def test_a_foreign_sqlite_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    folder.mkdir()
    db = sqlite3.connect(folder / "store.sqlite")
    db.execute("CREATE TABLE people (name TEXT)")
    db.commit()
    db.close()
    before = (folder / "store.sqlite").read_bytes()
    for command in (["status"], ["search", "x"], ["ask", "x"], ["show", "x"], ["index", str(tmp_path)]):
        done = run_cli(*command, "--index-dir", str(folder))
        assert done.returncode == 2 and "not a rag store" in done.stderr and "Traceback" not in done.stderr
    assert (folder / "store.sqlite").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["store.sqlite"]


@pytest.mark.slow  # starts `rag` processes
def test_read_only_commands_change_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    write(tmp_path / "src" / "a.txt", article(3))
    assert run_cli("index", str(tmp_path / "src"), "--index-dir", str(folder)).returncode == 0
    (folder / "write.lock").unlink()

    def snapshot() -> dict[str, bytes]:
        files = (p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(("-shm", "-wal")))
        return {str(p.relative_to(folder)): p.read_bytes() for p in files}

    before = snapshot()
    assert any(name.startswith("keywords/") for name in before)  # the tantivy index is read too
    for command in (["status"], ["search", "word3"], ["ask", "word3"], ["show", "nope"]):
        run_cli(*command, "--index-dir", str(folder))
    assert snapshot() == before


@pytest.mark.slow  # starts `rag` processes
def test_a_damaged_store_is_a_clear_error_with_the_repair(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    for i in range(30):
        write(tmp_path / "src" / f"a{i}.txt", article(i, words=400))
    assert run_cli("index", str(tmp_path / "src"), "--index-dir", str(folder)).returncode == 0
    store = folder / "store.sqlite"
    data = bytearray(store.read_bytes())
    page = 4096
    for offset in range(page * 3, len(data) - page, page * 2):  # leave the header page intact
        data[offset : offset + page] = b"\xa5" * page
    store.write_bytes(bytes(data))
    for command in (["search", "word3"], ["status"], ["index", str(tmp_path / "src")]):
        done = run_cli(*command, "--index-dir", str(folder))
        assert done.returncode == 2, done.stdout
        assert "is damaged" in done.stderr and ".recover" in done.stderr and "Traceback" not in done.stderr


def test_interactive_model_calls_go_before_queued_bulk_batches() -> None:
    from embeddings.encoder import ModelLock

    lock = ModelLock()
    order: list[str] = []
    started = threading.Event()

    def bulk_batches() -> None:
        for i in range(3):
            with lock.hold(interactive=False):
                started.set()
                order.append(f"bulk{i}")
                while i == 0 and not lock.interactive_waiting:  # the question arrives during bulk0
                    time.sleep(0.001)

    worker = threading.Thread(target=bulk_batches)
    worker.start()
    assert started.wait(5)
    with lock.hold(interactive=True):  # arrives while bulk0 runs
        order.append("question")
    worker.join(5)
    assert order == ["bulk0", "question", "bulk1", "bulk2"]
