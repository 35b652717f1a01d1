"""One contract for every search backend: the default (FAISS + SQLite FTS5), Milvus Lite in-process,
Milvus Lite as a server on 127.0.0.1, and a real Milvus 2.3 standalone server (dense, filters,
upsert and delete; it has no BM25). The servers are started here and stopped by process group.

Everything goes through the ``RAG`` facade, as the CLI, the web chat and the evaluation do, so the
contract covers the reconcile pass and the filters' translation as well as the backend itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from rag import RAG, Config
from rag.config import ConfigError
from rag.search.milvus import MilvusError, MilvusSearch, expression, site_of
from rag.search.query import Filters, SearchError
from rag.search.sync import LocalSync, MilvusSync
from tests.conftest import NEWS, REPO, article, free_port, running_serve, stop_group, write

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent

# Six articles: two sites, three years, one without a date, an id with quotes in it (the filters
# must escape it), and a rare word in each.
ARTICLES = [
    {"id": "quake", "title": "Earthquake shakes the harbour town", "date": "2021-03-04",
     "url": "https://www.harbour-news.com/2021/quake",
     "text": "An earthquake shook the harbour town on Thursday. Fishermen said the seiche lifted boats onto the quay. "
             "The mayor said no one was hurt and the harbour wall held."},
    {"id": "budget", "title": "Council passes the budget", "date": "2021-11-20",
     "url": "https://www.harbour-news.com/2021/budget",
     "text": "The council passed its budget late on Tuesday. The vote was close, and the treasurer called the "
             "levy on tourists a necessary evil. Libraries keep their opening hours."},
    {"id": "zebra", "title": "Zebra escapes from the zoo", "date": "2020-06-01",
     "url": "https://valley-times.org/zebra",
     "text": "A zebra escaped from the valley zoo on Monday morning and trotted along the main road. "
             "Keepers caught it near the bakery after an hour."},
    {"id": "comet", "title": "Astronomers spot a comet", "date": "2022-01-15",
     "url": "https://valley-times.org/comet",
     "text": "Astronomers at the observatory spotted a faint comet near Jupiter. It will be visible with binoculars "
             "in February, they said, if the sky stays clear."},
    {"id": "ferry", "title": "Ferry timetable changes", "url": "https://valley-times.org/ferry",
     "text": "The ferry company changed its winter timetable. Crossings now leave every ninety minutes, and the "
             "last boat departs before the lighthouse is lit."},
    {"id": 'o\'brien "quoted"', "title": "A profile of Mr. O'Brien", "date": "2021-07-09",
     "url": "https://www.harbour-news.com/2021/obrien",
     "text": "Mr. O'Brien has mended nets in the harbour for forty years. He keeps a logbook of every storm, "
             "and his granddaughter now helps him with the heavier ropes."},
]  # fmt: skip
ALL = {a["id"] for a in ARTICLES}
BACKENDS = ["local", "milvus-lite", "milvus-lite-server", "milvus-2.3"]


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, limit_s: float) -> None:
    started = time.monotonic()
    while True:
        assert proc.poll() is None, f"the server exited:\n{log.read_text(errors='replace')[-3000:]}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() - started < limit_s, f"no server on {port}:\n{log.read_text(errors='replace')}"
            time.sleep(0.5)


def _wait_for_milvus(uri: str, proc: subprocess.Popen[bytes], log: Path, limit_s: float) -> None:
    """Until the server answers a request (a port opens before the server is ready)."""
    started = time.monotonic()
    while True:
        assert proc.poll() is None, f"the server exited:\n{log.read_text(errors='replace')[-3000:]}"
        probe = MilvusSearch(uri, "probe")
        try:
            probe.exists()
            return
        except Exception:
            assert time.monotonic() - started < limit_s, f"Milvus at {uri} never answered:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        finally:
            probe.close()


def _stop(proc: subprocess.Popen[bytes], folder: Path) -> None:
    """Stop the server's process group, then any process still running from ``folder``:
    milvus-server runs Milvus from a copy in its data folder, in a process group of its own."""
    stop_group(proc)
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # not a process, or it ended
        if entry.name.isdigit() and str(folder).encode() in command:
            os.kill(int(entry.name), signal.SIGKILL)


@pytest.fixture(scope="module")
def lite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``milvus-lite server`` on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("milvus-lite")
    port = free_port()
    log = folder / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "milvus-lite"), "server", "--data-dir", str(folder / "data"), "--host", "127.0.0.1",
             "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_for_port(port, proc, log, 60)
        _wait_for_milvus(f"http://127.0.0.1:{port}", proc, log, 60)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc, folder)


@pytest.fixture(scope="module")
def milvus23(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Milvus 2.3 standalone (``milvus-server`` from the ``milvus`` package), every port
    of it free ones on 127.0.0.1 (its defaults clash with other Milvus servers)."""
    folder = tmp_path_factory.mktemp("milvus23")
    port = free_port()
    ports = {
        "--etcd-port": free_port(), "--proxy-port": port, "--proxy-internal-port": free_port(),
        "--root-coord-port": free_port(), "--query-coord-port": free_port(), "--query-node-port": free_port(),
        "--index-coord-port": free_port(), "--index-node-port": free_port(), "--data-coord-port": free_port(),
        "--data-node-port": free_port(),
    }  # fmt: skip
    log = folder / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "milvus-server"), "--data", str(folder / "data"),
             *[str(x) for pair in ports.items() for x in pair]],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_for_port(port, proc, log, 180)
        _wait_for_milvus(f"http://127.0.0.1:{port}", proc, log, 120)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc, folder)


def backend_config(kind: str, folder: Path, request: pytest.FixtureRequest) -> Config:
    base = Config(index_dir=folder / "idx", model="hashing")
    if kind == "local":
        return base
    if kind == "milvus-lite":
        return base.replace(backend="milvus")  # the default: a Milvus Lite file in the index folder
    uri = request.getfixturevalue("lite_server" if kind == "milvus-lite-server" else "milvus23")
    return base.replace(backend="milvus", milvus_uri=uri)


@pytest.fixture(params=BACKENDS)
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    return backend_config(request.param, tmp_path, request)


@pytest.fixture(scope="module", params=BACKENDS)
def indexed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RAG, int]]:
    """ARTICLES indexed once per backend, for the tests that only search it (a new Milvus
    collection costs seconds); yields the open index and how many documents the run added."""
    folder = tmp_path_factory.mktemp(f"shared-{request.param}")
    with RAG.open(config=backend_config(request.param, folder, request)) as opened:
        yield opened, opened.index([corpus(folder)], progress=False).added


def has_bm25(config: Config) -> bool:
    if config.backend != "milvus" or config.milvus_uri is None:
        return True
    probe = MilvusSearch(config.milvus_uri, "probe")
    try:
        return probe.has_bm25
    finally:
        probe.close()


def corpus(folder: Path, articles: list[dict[str, Any]] = ARTICLES) -> Path:
    return write(folder / "articles.jsonl", "\n".join(json.dumps(a) for a in articles))


def held_ids(opened: RAG) -> np.ndarray:
    """The chunk ids the search side holds."""
    if opened.backend == "milvus":
        return opened.parts.milvus.ids()
    return np.sort(opened.parts.vectors.ids())


def assert_in_step(opened: RAG) -> None:
    assert np.array_equal(held_ids(opened), opened.store.chunk_ids())
    status = opened.status()
    assert status["vectors_up_to_date"] is True
    assert status["vectors"] == status["chunks"] > 0


def found_docs(opened: RAG, question: str, mode: str = "dense", **filters: Any) -> set[str]:
    """Every document with a chunk among the passages (k above the corpus's chunk count)."""
    return {p.doc_id for p in opened.search(question, k=60, mode=mode, max_per_doc=60, **filters)}


def test_the_search_side_holds_exactly_the_stores_chunks(indexed: tuple[RAG, int]) -> None:
    opened, added = indexed
    config = opened.config
    assert added == len(ARTICLES)
    assert_in_step(opened)
    status = opened.status()
    assert status["backend"] == (config.backend or "local")
    if config.backend == "milvus":
        assert status["milvus_uri"] == (config.milvus_uri or str(config.index_dir / "milvus.db"))
        assert status["collection"].startswith("rag_")


def test_dense_search_finds_an_article_by_its_own_words(indexed: tuple[RAG, int]) -> None:
    opened, _ = indexed
    for item in ARTICLES:
        best = opened.search(item["text"][:120], k=3, mode="dense")[0]
        assert best.doc_id == item["id"]
        assert best.dense_score is not None and best.dense_score > 0.5
        assert best.text == opened.document(item["id"]).text[best.start : best.end]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"since": "2021"}, {"quake", "budget", "comet", 'o\'brien "quoted"'}),
        ({"until": "2021-06"}, {"quake", "zebra"}),  # the undated ferry article is left out
        ({"since": "2021-03-04", "until": "2021-03-04"}, {"quake"}),
        ({"doc_ids": ['o\'brien "quoted"', "ferry"]}, {'o\'brien "quoted"', "ferry"}),
        ({"sources": ["harbour-news.com"]}, {"quake", "budget", 'o\'brien "quoted"'}),
        ({"sources": ["https://valley-times.org/zebra"]}, {"zebra"}),
        ({"sources": ["valley-times.org"], "since": "2021"}, {"comet"}),
        ({"sources": ["nowhere.example"]}, set()),
    ],
)
def test_filters_restrict_dense_search_before_ranking(
    indexed: tuple[RAG, int], filters: dict[str, Any], expected: set[str]
) -> None:
    opened, _ = indexed
    assert found_docs(opened, "harbour town news", **filters) == expected
    assert found_docs(opened, "harbour town news") == ALL


def test_keyword_search_ranks_by_bm25_under_filters(indexed: tuple[RAG, int]) -> None:
    opened, _ = indexed
    if not has_bm25(opened.config):
        for mode in ("keyword", "hybrid"):
            with pytest.raises(SearchError, match=r"has no full-text \(BM25\) search; use --mode dense"):
                opened.search("zebra", mode=mode)
        return
    passages = opened.search("Which animal escaped, a zebra?", k=5, mode="keyword")
    assert passages[0].doc_id == "zebra"
    scores = [p.keyword_score for p in passages]
    assert all(s is not None and s > 0 for s in scores)
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    assert "zebra" not in found_docs(opened, "zebra", mode="keyword", since="2021")
    assert found_docs(opened, "harbour", mode="keyword", sources=["harbour-news.com"]) <= {
        "quake", "budget", 'o\'brien "quoted"'
    }  # fmt: skip
    hybrid = opened.search("zebra keepers bakery", k=3, mode="hybrid")
    assert hybrid[0].doc_id == "zebra"
    assert hybrid[0].dense_score is not None and hybrid[0].keyword_score is not None


def test_an_answer_cites_the_article_that_holds_it(config: Config, tmp_path: Path) -> None:
    # The real bundled model: the evidence gate is tuned on its scores, not the hashing one's.
    with RAG.open(config=config.replace(model=None)) as opened:
        opened.index([corpus(tmp_path)], progress=False)
        mode = "hybrid" if has_bm25(config) else "dense"
        answer = opened.ask("Where did the keepers catch the zebra?", mode=mode)
        assert answer.answerable, answer.text
        assert "bakery" in answer.text
        assert {c.doc_id for c in answer.citations} == {"zebra"}


def test_updates_and_removals_reach_the_search_side(config: Config, tmp_path: Path) -> None:
    path = corpus(tmp_path)
    with RAG.open(config=config) as opened:
        opened.index([path], progress=False)
        before = set(opened.store.chunk_ids().tolist())
        changed = [dict(a) for a in ARTICLES if a["id"] != "budget"]
        changed[0]["text"] += " Divers later found an amphora in the silt."
        corpus(tmp_path, changed)
        summary = opened.index([path], progress=False)
        assert (summary.updated, summary.removed) == (1, 1)
        assert_in_step(opened)
        after = set(opened.store.chunk_ids().tolist())
        assert before - after and after - before  # old rows went, new ones came
        assert "budget" not in found_docs(opened, "council budget vote")
        assert found_docs(opened, "council", doc_ids=["budget"]) == set()
        opened.remove("zebra")
        assert_in_step(opened)
        assert found_docs(opened, "zebra") == ALL - {"budget", "zebra"}
    with RAG.open(config=config.replace(backend=None, milvus_uri=None), read_only=True) as reader:
        # A later command finds the backend and its place in the store, without being told.
        assert reader.backend == (config.backend or "local")
        assert reader.search("amphora divers", k=1, mode="dense")[0].doc_id == "quake"


def test_a_run_that_died_before_the_search_side_was_written_is_repaired_by_the_next(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = corpus(tmp_path)
    with RAG.open(config=config) as opened:
        opened.index([path], progress=False)
    # The store commits, then the process dies before the search side hears of it: once for
    # an added article (a row missing) and once for a removed one (a row of a chunk now gone).

    def die(self: object, removed: list[int], ids: list[int], matrix: np.ndarray) -> None:
        raise KeyboardInterrupt

    extra = {"id": "lighthouse", "title": "Lighthouse relit", "date": "2022-05-05", "url": "https://valley-times.org/light",
             "text": "The old lighthouse was relit after forty years, its lamp now powered by the sun."}  # fmt: skip
    with monkeypatch.context() as patch:
        for kind in (LocalSync, MilvusSync):
            patch.setattr(kind, "apply", die)
        corpus(tmp_path, [*ARTICLES, extra])
        with RAG.open(config=config) as opened, pytest.raises(KeyboardInterrupt):
            opened.index([path], progress=False)
        corpus(tmp_path, [a for a in ARTICLES if a["id"] != "comet"] + [extra])
        with RAG.open(config=config) as opened, pytest.raises(KeyboardInterrupt):
            opened.index([path], progress=False)
    with RAG.open(config=config) as opened:
        if opened.backend == "milvus":  # the collection is behind the store in both ways
            assert not np.array_equal(opened.parts.milvus.ids(), opened.store.chunk_ids())
        summary = opened.index([path], progress=False)
        assert summary.embedded == 0  # every vector came from the cache
        assert_in_step(opened)
        docs = found_docs(opened, "lighthouse relit")
        assert "lighthouse" in docs and "comet" not in docs


def test_switching_an_index_to_milvus_fills_the_collection_from_the_cache(tmp_path: Path) -> None:
    path = corpus(tmp_path)
    config = Config(index_dir=tmp_path / "idx", model="hashing")
    with RAG.open(config=config) as opened:
        opened.index([path], progress=False)
    with (
        RAG.open(config=config.replace(backend="milvus"), read_only=True) as reader,
        pytest.raises(SearchError, match=r"never written to Milvus; fill its collection .* `rag index --backend"),
    ):
        reader.search("zebra")
    with RAG.open(config=config.replace(backend="milvus")) as opened:
        summary = opened.index([path], progress=False)
        assert (summary.unchanged, summary.embedded) == (len(ARTICLES), 0)
        assert_in_step(opened)
        assert opened.search("zebra keepers", k=1)[0].doc_id == "zebra"


def test_the_milvus_settings_come_from_flags_the_environment_and_the_config_file(tmp_path: Path) -> None:
    toml = write(tmp_path / "rag.toml", 'backend = "milvus"\nmilvus_uri = "from-file.db"\n')
    assert Config.load(file=toml, env={}).backend == "milvus"
    assert Config.load(file=toml, env={}).milvus_uri == "from-file.db"
    env = {"RAG_BACKEND": "milvus", "RAG_MILVUS_URI": "http://127.0.0.1:1", "RAG_MILVUS_TOKEN": "secret"}
    loaded = Config.load(env=env)
    assert (loaded.backend, loaded.milvus_uri) == ("milvus", "http://127.0.0.1:1")
    assert "secret" not in repr(loaded)  # the token is read when connecting, never a setting
    assert Config.load(file=toml, env={}, backend="local").backend == "local"
    with pytest.raises(ConfigError, match="backend='elastic' is unknown; choose one of local, milvus"):
        Config(backend="elastic")


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )  # fmt: skip


def test_the_cli_on_a_milvus_server(lite_server: str, tmp_path: Path) -> None:
    path = corpus(tmp_path)
    index = str(tmp_path / "idx")
    done = cli("index", str(path), "--index-dir", index, "--model", "hashing", "--backend", "milvus",
               "--milvus-uri", lite_server, "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr
    status = cli("status", "--index-dir", index)
    assert status.returncode == 0, status.stderr
    assert re.search(r"^backend +milvus$", status.stdout, re.M), status.stdout
    assert re.search(rf"^milvus uri +{re.escape(lite_server)}$", status.stdout, re.M), status.stdout
    assert re.search(r"^vectors up to date +True$", status.stdout, re.M), status.stdout
    found = cli("search", "zebra keepers", "--index-dir", index, "-k", "1", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["doc_id"] == "zebra"
    # The environment names the backend as well as the flag does.
    by_env = cli("search", "comet", "--index-dir", index, "--mode", "keyword", "-k", "1", "--json",
                 env={"RAG_BACKEND": "milvus", "RAG_MILVUS_URI": lite_server})  # fmt: skip
    assert json.loads(by_env.stdout)[0]["doc_id"] == "comet"


def test_an_unreachable_milvus_server_is_a_one_line_error_at_once(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = cli("index", str(corpus(tmp_path)), "--index-dir", str(tmp_path / "idx"), "--model", "hashing",
               "--backend", "milvus", "--milvus-uri", uri, "--no-progress")  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(f"rag: error: cannot reach Milvus at {uri}")
    assert time.monotonic() - started < 60
    with pytest.raises(MilvusError, match="cannot reach Milvus"):
        MilvusSearch(uri, "x").exists()


def test_filters_become_escaped_milvus_expressions() -> None:
    assert expression(Filters()) == ""
    got = expression(Filters(since="2021-01-01", doc_ids=('a"b', "c\\d"), sources=("site.org",)))
    assert got == (
        '(date >= "2021-01-01") and (doc_id in ["a\\"b", "c\\\\d"]) and '
        '((source in ["site.org"] or path in ["site.org"] or site in ["site.org"]))'
    )
    assert expression(Filters(until="2021-12-31")) == '(date <= "2021-12-31" and date != "")'
    assert site_of("https://www.Reuters.com/world/x") == "reuters.com"
    assert site_of("/home/me/articles/a.txt") == ""


def test_a_milvus_lite_file_is_searched_from_a_new_process_and_refused_while_another_holds_it(
    tmp_path: Path,
) -> None:
    path = corpus(tmp_path)
    index = str(tmp_path / "idx")
    done = cli("index", str(path), "--index-dir", index, "--model", "hashing", "--backend", "milvus", "--no-progress")
    assert done.returncode == 0, done.stderr
    # A new process finds the collection released (not in memory) and loads it before searching.
    found = cli("search", "zebra keepers", "--index-dir", index, "-k", "1", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["doc_id"] == "zebra"
    with RAG.open(index, read_only=True) as holder:
        assert holder.search("comet", k=1, mode="keyword")[0].doc_id == "comet"  # this process holds the file now
        refused = cli("status", "--index-dir", index)
    assert refused.returncode == 2
    message = refused.stderr.strip().splitlines()[-1]
    assert message.startswith(f"rag: error: cannot open the Milvus Lite file {index}/milvus.db")
    assert f"milvus-lite server --data-dir {index}/milvus.db" in message
    assert "Traceback" not in refused.stderr


def test_a_fork_indexes_while_the_first_handle_keeps_answering(config: Config, tmp_path: Path) -> None:
    # The web chat's upload path: a second writable handle in the same process.
    with RAG.open(config=config) as opened:
        opened.index([corpus(tmp_path)], progress=False)
        assert opened.search("zebra keepers", k=1, mode="dense")[0].doc_id == "zebra"
        fork = opened.fork()
        try:
            upload = write(tmp_path / "up" / "owls.txt", "Barn owls nested in the old church tower this spring.")
            assert fork.index([upload], progress=False).added == 1
        finally:
            fork.close()
        best = opened.search("barn owls church tower", k=1, mode="dense")[0]
        assert best.source.endswith("owls.txt")
        assert_in_step(opened)


@pytest.mark.parametrize("where", ["lite-file", "lite-server"])
@pytest.mark.parametrize("updating", [False, True])
def test_kill_9_during_milvus_indexing_then_the_next_run_repairs_it(
    where: str, updating: bool, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A real `rag index` process killed between commits: the store and the collection may
    disagree in either direction; the next run leaves them equal, with nothing embedded twice."""
    from tests.test_crash import generation

    source = tmp_path / "src"
    for i in range(60):
        write(source / f"a{i:03d}.txt", article(i, words=300))
    index_dir = tmp_path / "idx"
    uri = None if where == "lite-file" else request.getfixturevalue("lite_server")
    env = {"RAG_MODEL": "hashing-64", "RAG_ENCODE_GROUP": "4", "RAG_BACKEND": "milvus"}
    if uri:
        env["RAG_MILVUS_URI"] = uri

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "index", str(source), "--index-dir", str(index_dir), "--no-progress"],
            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    if updating:
        assert start().wait(120) == 0
        for path in sorted(source.iterdir())[::3]:
            path.write_text(article(1000 + int(path.stem[1:]), words=300), encoding="utf-8")
    before = generation(index_dir)
    proc = start()
    deadline = time.monotonic() + 60
    while generation(index_dir) < before + 6 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert 0 < generation(index_dir) - before < (20 if updating else 60), "the kill landed mid-run"
    rerun = start()
    assert rerun.wait(120) == 0, rerun.stderr.read() if rerun.stderr else ""
    config = Config(index_dir=index_dir, model="hashing-64", backend="milvus", milvus_uri=uri)
    with RAG.open(config=config) as opened:
        assert_in_step(opened)  # no orphan row, no missing one, no id twice
        summary = opened.index([source], progress=False)
        assert (summary.documents, summary.embedded, summary.unchanged) == (60, 0, 60)
        assert opened.search(article(7, words=300)[:200], k=1, mode="dense")[0].source.endswith("a007.txt")


def test_rag_serve_on_a_milvus_lite_file_opens_it_once_for_its_two_handles(tmp_path: Path) -> None:
    """`rag serve` answers with one handle while another repairs the index at start; both open the
    Lite file in one process, which must not race to lock it."""
    index = tmp_path / "idx"
    done = cli("index", str(NEWS), "--index-dir", str(index), "--backend", "milvus", "--no-progress")
    assert done.returncode == 0, done.stderr
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    with running_serve(index, tmp_path / "serve.log", env) as url:
        reply = httpx.post(
            url + "v1/chat/completions",
            json={"model": "idx", "messages": [{"role": "user", "content": "How much will the bridge repairs cost?"}]},
            timeout=120,
        )
        assert reply.status_code == 200, reply.text
        assert "14.2 million euros" in reply.json()["choices"][0]["message"]["content"]
    # The server's stop waited for its start-up repair, so the log holds what that reported.
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log and "cannot open" not in log, log


def test_rag_serve_on_a_milvus_server_answers_and_sees_what_another_process_indexes(
    lite_server: str, tmp_path: Path
) -> None:
    """The shared-index case: a running `rag serve` and a `rag index` in another process, both on
    one Milvus server (a Milvus Lite file would refuse the second process, as tested above)."""
    news = tmp_path / "news"
    shutil.copytree(NEWS, news)
    index = tmp_path / "idx"
    done = cli("index", str(news), "--index-dir", str(index), "--backend", "milvus", "--milvus-uri", lite_server,
               "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}

    def ask(url: str, question: str) -> str:
        reply = httpx.post(
            url + "v1/chat/completions",
            json={"model": "idx", "messages": [{"role": "user", "content": question}]},
            timeout=120,
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["choices"][0]["message"]["content"])

    with running_serve(index, tmp_path / "serve.log", env) as url:  # the backend comes from the index
        assert ask(url, "What rate did the Fed keep?").startswith(
            "The U.S. Federal Reserve kept its benchmark rate at 3.75% on Wednesday. [1]"
        )
        write(news / "owls.md", "# Owls return to the tower\n\nBarn owls nested in the old church tower of Riverside "
              "this spring, for the first time in twenty years, the parish warden said.")  # fmt: skip
        added = cli("index", str(news), "--index-dir", str(index), "--no-progress")
        assert added.returncode == 0, added.stderr
        deadline = time.monotonic() + 30  # another process's write is seen within moments
        while "church tower" not in (answer := ask(url, "Where did the barn owls nest?")):
            assert time.monotonic() < deadline, answer
            time.sleep(1)
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
