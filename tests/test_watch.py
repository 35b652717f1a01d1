"""`rag watch`: a real watcher process keeps a folder and a feed indexed while a real `rag serve`
answers from the same index, then stops cleanly on Ctrl-C (SIGINT) and on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.cli import main
from rag.cli.commands import parse_duration
from rag.config import ConfigError
from tests.conftest import assert_consistent, doc_count, running_serve, write
from tests.local_site import LocalSite, Route, rss

pytestmark = pytest.mark.slow  # real watcher, server and HTTP processes

PAGES = Path(__file__).parent / "fixtures" / "pages"
ENV = {
    **os.environ,
    "RAG_MODEL": "hashing-64",
    "RAG_ENCODE_GROUP": "4",
    "RAG_ALLOW_PRIVATE_URLS": "true",
    "RAG_CRAWL_DELAY": "0",
    "GRADIO_ANALYTICS_ENABLED": "False",
}
ZEBRA = "Zebra note\n\nThe zebra crossing by the quartz mill smelled of marmalade."


def wait_until(condition: Callable[[], bool], what: str, log: Path, limit_s: float = 60) -> None:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > limit_s:
            raise AssertionError(f"{what} did not happen within {limit_s:.0f} s; the watcher said:\n{log.read_text()}")
        time.sleep(0.2)


def documents(index_dir: Path) -> int:
    """Documents in the index; 0 while the watcher is still creating its store (the file can
    exist before its tables do)."""
    try:
        return doc_count(index_dir) if (index_dir / "store.sqlite").exists() else 0
    except sqlite3.Error:
        return 0


def like_a_terminal() -> None:
    """In the child, before it runs: Ctrl-C interrupts, as in a user's terminal. A suite started
    in the background by a non-interactive shell (`make test &`) has SIGINT ignored in every
    process, an ignored signal survives exec, and `rag watch` then never saw the test's Ctrl-C
    (both SIGINT tests hung for 60 s in such a run)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def watcher(index_dir: Path, log: Path, *sources: str, every: str = "1s") -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "watch", *sources, "--every", every, "--index-dir", str(index_dir)],
            env=ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=like_a_terminal,
        )


def test_watch_follows_a_folder_and_a_feed_and_a_running_server_sees_it(tmp_path: Path) -> None:
    from gradio_client import Client

    index_dir = tmp_path / "index"
    folder = tmp_path / "articles"
    write(folder / "first.txt", "First note\n\nThe lighthouse keeper counted forty gulls on Tuesday.")
    log = tmp_path / "watch.log"
    with LocalSite() as site:
        site.routes["/dengue"] = Route((PAGES / "dengue-newsroom.html").read_bytes())
        site.routes["/fed"] = Route((PAGES / "fed-rates-wordpress.html").read_bytes(), etag='"1"')
        items = [("Dengue", site.url("/dengue"), "Wed, 12 Aug 2026 09:00:00 GMT")]
        site.routes["/feed"] = Route(rss(items), content_type="application/rss+xml")
        proc = watcher(index_dir, log, str(folder), site.url("/feed"))
        try:
            wait_until(lambda: documents(index_dir) == 2, "the first run", log)
            with running_serve(index_dir, tmp_path / "serve.log", ENV) as url:
                client = Client(url, verbose=False)
                # A new file and a new feed item arrive; the watcher picks both up.
                write(folder / "zebra.txt", ZEBRA)
                items.append(("Fed", site.url("/fed"), "Wed, 16 Sep 2026 09:00:00 GMT"))
                site.routes["/feed"] = Route(rss(items), content_type="application/rss+xml")
                wait_until(lambda: doc_count(index_dir) == 4, "indexing the new file and feed item", log)
                found = client.predict(ZEBRA, k=1, mode="dense", api_name="/ask")
                assert "zebra" in found["passages"][0]["text"], "the server did not see the watcher's change"
                # A deleted file goes; an unchanged page is asked for conditionally and kept.
                (folder / "first.txt").unlink()
                wait_until(lambda: doc_count(index_dir) == 3, "removing the deleted file", log)
                # The run that removed the file may commit that before it reaches the feed's
                # pages, so wait for the conditional request rather than read the last one.
                wait_until(
                    lambda: any(hit.headers.get("if-none-match") == '"1"' for hit in site.hits("/fed")),
                    "a conditional request for the unchanged page",
                    log,
                )
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(60)
    output = log.read_text()
    assert code == 0, output
    assert "Watching 2 sources every 1s; Ctrl-C stops." in output
    assert "] 2 added, 0 updated, 0 unchanged, 0 removed; 3 chunks embedded; the index holds 2 documents" in output
    assert "] 0 added, 0 updated, 3 unchanged, 1 removed" in output
    assert "rag: stopped watching after" in output and "the index is consistent" in output
    assert_consistent(index_dir)


def test_sigterm_during_a_run_stops_and_leaves_the_index_consistent(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    folder = tmp_path / "many"
    for i in range(300):
        write(folder / f"a{i:03d}.txt", f"Note {i}\n\n" + " ".join(f"word{(i * 7 + j) % 997}" for j in range(400)))
    log = tmp_path / "watch.log"
    proc = watcher(index_dir, log, str(folder), every="1h")
    wait_until(lambda: documents(index_dir) > 0, "a first commit", log)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, log.read_text()
    assert "stopped watching after 0 runs" in log.read_text()
    assert_consistent(index_dir)


def test_durations(capsys: pytest.CaptureFixture[str]) -> None:
    assert [parse_duration(t) for t in ("90", "90s", "5m", "1.5h", "1d")] == [90, 90, 300, 5400, 86400]
    for bad in ("soon", "0.5s", "-1m"):
        with pytest.raises(ConfigError, match="--every"):
            parse_duration(bad)
    assert main(["watch", "x", "--every", "soon"]) == 2
    assert "write it like 90s, 5m, 1h or 1d" in capsys.readouterr().err


def test_watch_json_prints_one_object_per_run(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    write(folder / "a.txt", "A note\n\nThe ferry left at dawn.")
    log = tmp_path / "watch.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "watch", str(folder), "--every", "1s", "--json",
             "--index-dir", str(tmp_path / "index")],
            env=ENV, stdout=out, stderr=subprocess.DEVNULL, preexec_fn=like_a_terminal,
        )  # fmt: skip
    wait_until(lambda: log.read_text().count("\n") >= 2, "two runs", log)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    first, second = (json.loads(line) for line in log.read_text().splitlines()[:2])
    assert (first["run"], first["added"], second["run"], second["unchanged"]) == (1, 1, 2, 1)
