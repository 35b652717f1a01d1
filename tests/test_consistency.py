"""The vector file never silently loses chunks when a server and an indexer share an index.

Both sequences the robustness audit found are replayed with real processes: a running
`rag serve` whose upload used to save its stale in-memory copy over vectors that another
`rag index` had added, and readers that used to rebuild and save the file without the write
lock while an indexer was killed mid-run."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rag import RAG, Config
from rag.api import NotFoundError
from rag.storage.store import Store
from tests.conftest import article, assert_consistent, file_vector_ids, running_serve, write

# A one-chunk document: searching its own text densely must find it first, if it is searched.
ZEBRA = "Zebra note\n\nThe zebra crossing by the quartz mill smelled of marmalade."
ENV = {**os.environ, "RAG_MODEL": "hashing-64", "RAG_ENCODE_GROUP": "4", "GRADIO_ANALYTICS_ENABLED": "False"}


def cli(*args: str, index_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args, "--index-dir", str(index_dir)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )


def status(index_dir: Path) -> dict[str, object]:
    done = cli("status", "--json", index_dir=index_dir)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def store_ids(index_dir: Path) -> set[int]:
    store = Store(index_dir / "store.sqlite", read_only=True)
    try:
        return set(store.chunk_ids().tolist())
    finally:
        store.close()


def corpus(folder: Path, first: int, count: int, words: int = 200) -> Path:
    for i in range(first, first + count):
        write(folder / f"a{i:03d}.txt", f"Topic{i} report\n\n" + article(i, words=words) + f" Codeword topic{i}.")
    return folder


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    index_dir = tmp_path / "index"
    assert cli("index", str(corpus(tmp_path / "first", 0, 20)), index_dir=index_dir).returncode == 0
    with running_serve(index_dir, tmp_path / "serve.log", ENV) as url:
        yield url, index_dir


@pytest.mark.slow  # starts `rag` processes
def test_an_upload_in_a_running_server_keeps_vectors_another_process_added(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    from gradio_client import Client, handle_file

    url, index_dir = served
    client = Client(url, verbose=False)
    client.predict("topic3 codeword", api_name="/ask")  # the server loads its vectors
    # Another process indexes 10 more documents while the server runs.
    write(tmp_path / "second" / "zebra.txt", ZEBRA)
    assert cli("index", str(corpus(tmp_path / "second", 100, 10)), index_dir=index_dir).returncode == 0
    added = status(index_dir)
    assert added["vectors"] == added["chunks"] and added["vectors_up_to_date"] is True
    # The server sees them at once: its in-memory copy follows the store.
    found = client.predict(ZEBRA, k=1, mode="dense", api_name="/ask")
    assert "zebra" in found["passages"][0]["text"], "the server searched a stale copy"
    # Then an upload through the server: it must not save its old copy over the new vectors.
    note = write(tmp_path / "note.txt", "Harbour note\n\nThe harbour master painted the crane tangerine.")
    report, *_ = client.predict([handle_file(str(note))], api_name="/upload")
    assert "**1** added" in report
    after = status(index_dir)
    assert after["chunks"] == added["chunks"] + 1  # type: ignore[operator]
    assert after["vectors"] == after["chunks"] and after["vectors_up_to_date"] is True
    assert_consistent(index_dir)  # the file itself holds every chunk: a restart loses nothing


@pytest.mark.slow  # starts `rag` processes
def test_readers_never_write_the_vector_file_and_a_killed_writer_loses_nothing(tmp_path: Path) -> None:
    """Readers (`rag search`) run while `rag index` is killed mid-run; then the file on disk
    must not claim to be up to date while missing chunks, and a rerun must make it exact."""
    index_dir = tmp_path / "index"
    source = corpus(tmp_path / "src", 0, 120, words=300)
    assert cli("index", str(corpus(tmp_path / "seed", 500, 5)), index_dir=index_dir).returncode == 0
    for trial in range(3):
        if trial:
            for path in sorted(source.iterdir())[trial::7]:
                path.write_text(f"Changed {trial}\n\n" + article(900 + trial, words=250), encoding="utf-8")
        writer = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "index", str(source), "--index-dir", str(index_dir), "--no-progress"],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        readers = 0
        deadline = time.monotonic() + 60
        while writer.poll() is None and readers < 3 + trial and time.monotonic() < deadline:
            done = cli("search", "topic7 codeword", "-k", "2", index_dir=index_dir)
            assert done.returncode == 0, done.stderr
            readers += 1
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        state = status(index_dir)
        if state["vectors_up_to_date"]:
            assert file_vector_ids(index_dir) == store_ids(index_dir), "the file claims to be up to date"
        assert_consistent(index_dir, file_must_match=False)
    done = cli("index", str(source), index_dir=index_dir)
    assert done.returncode == 0, done.stderr
    assert_consistent(index_dir)
    final = status(index_dir)
    assert final["vectors"] == final["chunks"] == len(store_ids(index_dir))


def test_a_reader_searches_chunks_committed_after_the_file_was_saved(config: Config, tmp_path: Path) -> None:
    corpus(tmp_path / "f", 0, 4)
    with RAG.open(config=config) as rag:
        rag.index([tmp_path / "f"], progress=False)
    vectors = config.index_dir / "vectors.faiss"
    saved = vectors.read_bytes()
    write(tmp_path / "f" / "zebra.txt", ZEBRA)
    with RAG.open(config=config) as rag:
        rag.index([tmp_path / "f"], progress=False)
    vectors.write_bytes(saved)  # as if that writer had died before saving
    with RAG.open(config=config, read_only=True) as reader:
        assert "zebra" in reader.search(ZEBRA, k=1, mode="dense")[0].text
        assert reader.status()["vectors_up_to_date"] is False
    assert vectors.read_bytes() == saved, "a reader wrote the vector file"


def test_a_server_handle_follows_another_writer_and_never_saves_without_the_lock(
    config: Config, tmp_path: Path
) -> None:
    corpus(tmp_path / "f", 0, 6)
    server = RAG.open(config=config)
    server.index([tmp_path / "f"], progress=False)
    assert server.search("topic2 codeword", k=1)[0].text  # loads its copy
    with RAG.open(config=config) as other:  # another process, in effect
        write(tmp_path / "g" / "zebra.txt", ZEBRA)
        other.index([corpus(tmp_path / "g", 60, 3)], progress=False)
    assert "zebra" in server.search(ZEBRA, k=1, mode="dense")[0].text
    # The server writes next (an upload): its copy was brought in step before its commit.
    server.index([corpus(tmp_path / "h", 80, 1)], progress=False)
    server.close()
    assert_consistent(config.index_dir)


def test_writes_wait_for_the_lock_and_the_saved_file_is_exact(config: Config, tmp_path: Path) -> None:
    corpus(tmp_path / "f", 0, 3)
    with RAG.open(config=config) as rag:
        rag.index([tmp_path / "f"], progress=False)
    waiting = threading.Event()

    class Heard(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "waiting for it" in record.getMessage():
                waiting.set()

    heard = Heard()
    logging.getLogger("rag").addHandler(heard)
    with open(config.index_dir / "write.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with RAG.open(config=config) as rag:
            done = threading.Event()
            worker = threading.Thread(
                target=lambda: (rag.index([corpus(tmp_path / "g", 40, 1)], progress=False), done.set())
            )
            worker.start()
            assert waiting.wait(60), "the writer never said it waits for the lock"
            assert not done.is_set(), "a writer went ahead without the lock"
            fcntl.flock(held, fcntl.LOCK_UN)
            worker.join(30)
    logging.getLogger("rag").removeHandler(heard)
    assert done.is_set()
    assert_consistent(config.index_dir)


def test_damaged_vector_files_are_refused_and_rebuilt(config: Config, tmp_path: Path) -> None:
    from embeddings import IndexFileError, VectorIndex

    corpus(tmp_path / "f", 0, 3)
    with RAG.open(config=config) as rag:
        rag.index([tmp_path / "f"], progress=False)
    path = config.index_dir / "vectors.faiss"
    data = bytearray(path.read_bytes())
    data[-64:-32] = np.full(8, np.nan, dtype=np.float32).tobytes()  # NaN written over some vector data
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFileError, match="damaged"):
        VectorIndex.load(path)
    assert_consistent(config.index_dir, file_must_match=False)
    with RAG.open(config=config) as rag:
        assert rag.repair_vectors() is True
    assert_consistent(config.index_dir)


def test_a_rerun_that_finds_nothing_to_do_still_saves_a_stale_file(config: Config, tmp_path: Path) -> None:
    """`rag remove` killed after its last commit but before saving: the rerun finds nothing
    left to remove, says so, and still leaves an exact vector file."""
    corpus(tmp_path / "f", 0, 4)
    with RAG.open(config=config) as rag:
        rag.index([tmp_path / "f"], progress=False)
    vectors = config.index_dir / "vectors.faiss"
    saved = vectors.read_bytes()
    with RAG.open(config=config) as rag:
        rag.remove(str(tmp_path / "f" / "a000.txt"))
    vectors.write_bytes(saved)  # as if killed before the save
    with RAG.open(config=config) as rag, pytest.raises(NotFoundError):
        rag.remove(str(tmp_path / "f" / "a000.txt"))
    assert_consistent(config.index_dir)


def test_a_chunk_removed_while_a_reader_syncs_is_left_out(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader read the chunk ids, then a writer replaced a document before the reader fetched
    the vectors: the vanished ids are skipped (the next search syncs again), never a crash."""
    corpus(tmp_path / "f", 0, 3)
    with RAG.open(config=config) as rag:
        rag.index([tmp_path / "f"], progress=False)
    (config.index_dir / "vectors.faiss").unlink()
    with RAG.open(config=config, read_only=True) as reader:
        real = reader.store.chunk_ids
        monkeypatch.setattr(reader.store, "chunk_ids", lambda: np.append(real(), [10**9]))
        assert reader.search("word1", k=1)
        assert 10**9 not in set(reader.parts.vectors.ids().tolist())
