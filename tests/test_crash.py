"""kill -9 at any moment of `rag index` leaves an openable, consistent index, and a rerun
finishes the work. The indexing runs in a real subprocess against a real SQLite file."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag import RAG, Config
from tests.conftest import article, assert_consistent, doc_count, write

pytestmark = pytest.mark.slow  # real `rag index` processes killed mid-run

N_DOCS = 150


def start_index(source: Path, index_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RAG_MODEL": "hashing-64", "RAG_ENCODE_GROUP": "4"}
    return subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "index", str(source), "--index-dir", str(index_dir), "--no-progress"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def committed(index_dir: Path) -> int:
    try:
        return doc_count(index_dir)
    except sqlite3.Error:
        return 0


def generation(index_dir: Path) -> int:
    """Bumped once per committed document write (see rag.storage.store)."""
    try:
        db = sqlite3.connect(index_dir / "store.sqlite")
        row = db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        db.close()
        return int(row[0]) if row else 0
    except sqlite3.Error:
        return 0


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("crash-src")
    for i in range(N_DOCS):
        write(folder / f"a{i:03d}.txt", article(i, words=400))
    return folder


@pytest.mark.parametrize("trial", range(6))
def test_kill_9_during_indexing_then_reopen_and_finish(source: Path, tmp_path: Path, trial: int) -> None:
    index_dir = tmp_path / "idx"
    rng = random.Random(trial)
    updating = trial % 2 == 1  # half the trials kill a run that updates an existing index
    changed = 0
    if updating:
        first = start_index(source, index_dir)
        assert first.wait(60) == 0
        for path in sorted(source.iterdir())[trial::5]:
            path.write_text(article(1000 + trial, words=300) + path.name, encoding="utf-8")
            changed += 1
    before = generation(index_dir)
    proc = start_index(source, index_dir)
    # Kill at a random moment once some documents are committed (trial 0: at once).
    target = before + (rng.randint(1, changed - 5) if updating else rng.randint(1, N_DOCS - 30))
    deadline = time.monotonic() + 30
    while trial and generation(index_dir) < target and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    if trial:
        done = generation(index_dir) - before
        assert 0 < done < (changed if updating else N_DOCS), f"the kill landed mid-run ({done} written)"
    if (index_dir / "store.sqlite").exists():
        assert_consistent(index_dir, file_must_match=False)  # a reader brings a stale copy in step in memory
    rerun = start_index(source, index_dir)
    assert rerun.wait(60) == 0, rerun.stderr.read() if rerun.stderr else ""
    assert_consistent(index_dir)
    with RAG.open(config=Config(index_dir=index_dir)) as rag:
        summary = rag.index([source], progress=False)
        assert (summary.documents, summary.embedded, summary.unchanged) == (N_DOCS, 0, N_DOCS)
