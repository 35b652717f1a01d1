"""Shared fixtures. Unit tests use the deterministic hashing encoder (no model, no torch);
tests marked ``slow`` use the real bundled model, still fully offline."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from rag import RAG, Config

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parents[1]
SAMPLE_ARTICLES = REPO / "examples" / "articles"
NEWS = REPO / "examples" / "news"
CHROMIUM = "/usr/bin/chromium"

# The files that take longest (a minute or more on 2 cores), run first so that parallel workers
# finish together instead of one starting a long file as the other runs out of work. Only the
# order of whole files changes; within a file, tests keep theirs.
LONGEST_FIRST = ("test_web_chat", "test_backends", "test_readme", "test_ui", "test_llm", "test_ray",
                 "test_consistency", "test_crash", "test_web", "test_watch", "test_encoders")  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.stem
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order inside each file is kept


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's headless chromium, driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium (make test does: apt-get install chromium)"
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        yield launched
        launched.close()


def news_index(root: Path, name: str = "index") -> Path:
    """examples/news copied under ``root`` and indexed with the real model into ``root / name``."""
    shutil.copytree(NEWS, root / "news")
    with RAG.open(root / name) as rag:
        rag.index([root / "news"], progress=False)
    return root / name


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings from the developer's shell must not leak into tests."""
    for key in list(os.environ):
        if key.startswith("RAG_"):
            monkeypatch.delenv(key)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(index_dir=tmp_path / "index", model="hashing-64", encode_group=8)


@pytest.fixture
def rag(config: Config) -> Iterator[RAG]:
    with RAG.open(config=config) as opened:
        yield opened


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def article(n: int, words: int = 120) -> str:
    """A distinct, deterministic article of a few sentences."""
    rng = np.random.default_rng(n)
    vocab = [f"word{i}" for i in range(400)]
    sentences = []
    for s in range(max(1, words // 12)):
        chosen = rng.choice(vocab, 11)
        sentences.append(f"Article {n} sentence {s} " + " ".join(chosen) + ".")
    return " ".join(sentences)


def file_vector_ids(index_dir: Path) -> set[int]:
    """The chunk ids the vector file on disk holds (not a handle's in-memory copy)."""
    from embeddings import VectorIndex

    index, _ = VectorIndex.load(index_dir / "vectors.faiss")
    return set(index.ids().tolist())


def assert_consistent(index_dir: Path, file_must_match: bool = True) -> None:
    """SQLite and FAISS agree, and every chunk is an exact slice of its document.

    With ``file_must_match`` the vector file on disk must hold exactly the store's chunks
    (after any writer finished); without it (right after a kill -9), a reader's in-memory
    copy must, whatever the file holds."""
    with RAG.open(index_dir, config=Config(index_dir=index_dir), read_only=True) as opened:
        db = opened.store.db
        chunk_ids = {r[0] for r in db.execute("SELECT id FROM chunks")}
        assert set(opened.parts.vectors.ids().tolist()) == chunk_ids
        if file_must_match:
            assert file_vector_ids(index_dir) == chunk_ids, "the vector file differs from the store"
            assert opened.status()["vectors_up_to_date"] is True
        fts = db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0]
        assert fts == len(chunk_ids)
        # The tantivy index, when it claims the store's generation, holds exactly its chunks
        # (else searches ask FTS5); once every writer finished, it must claim it.
        keywords = opened.parts.keywords
        if keywords is not None and keywords.holds(opened.store.generation):
            assert set(keywords.held_ids().tolist()) == chunk_ids, "the keyword index differs from the store"
        elif keywords is not None and file_must_match and not opened.store.is_empty():
            raise AssertionError("the keyword index is behind the store after every writer finished")
        for doc_id, text in db.execute("SELECT id, text FROM documents"):
            for start, end, chunk_text in db.execute("SELECT start, end, text FROM chunks WHERE doc_id=?", (doc_id,)):
                assert chunk_text == text[start:end]
        orphans = db.execute("SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)").fetchone()[0]
        assert orphans == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_group(proc: subprocess.Popen[bytes], grace_s: float = 30) -> None:
    """Stop a server started with ``start_new_session=True`` and everything it started: SIGTERM to
    its process group, SIGKILL if it outlives ``grace_s``."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:  # the group is gone already
        proc.wait(10)
        return
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def start_server(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a server whose output goes to ``log``: an unread pipe would fill and block it."""
    with log.open("wb") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_for_http(url: str, proc: subprocess.Popen[bytes], what: str, log: Path, limit_s: float = 120) -> None:
    """Poll ``url`` until it answers 200; fail with the end of the server's log otherwise."""
    import httpx

    started = time.monotonic()
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() - started > limit_s:
            tail = log.read_text(errors="replace")[-2000:]
            state = "exited" if proc.poll() is not None else f"did not answer within {limit_s:.0f} s"
            raise AssertionError(f"{what} {state} during start-up; its log ends:\n{tail}")
        time.sleep(0.25)


def served_url(proc: subprocess.Popen[bytes], log: Path, what: str, limit_s: float = 120) -> str:
    """The address a `rag serve --port 0` printed (the free port it bound itself, so no other
    program can take it between a probe and the bind), once the server answers there."""
    started = time.monotonic()
    while not (found := re.search(r"Web chat on (http://\S+/) ;", log.read_text(errors="replace"))):
        if proc.poll() is not None or time.monotonic() - started > limit_s:
            state = "exited" if proc.poll() is not None else f"printed no address within {limit_s:.0f} s"
            raise AssertionError(f"{what} {state}; its log ends:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    wait_for_http(found.group(1), proc, what, log, limit_s)
    return found.group(1)


@contextmanager
def running_serve(index_dir: Path, log: Path, env: dict[str, str], *args: str) -> Iterator[str]:
    """A real `rag serve` on a free port of 127.0.0.1, answering; yields its URL, stops it after."""
    proc = start_server(
        [sys.executable, "-m", "rag.cli", "serve", "--index-dir", str(index_dir), "--port", "0", *args], log, env
    )
    try:
        url = served_url(proc, log, " ".join(["rag serve", *args]))
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def doc_count(index_dir: Path) -> int:
    db = sqlite3.connect(index_dir / "store.sqlite")
    try:
        return int(db.execute("SELECT count(*) FROM documents").fetchone()[0])
    finally:
        db.close()
