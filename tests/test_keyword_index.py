"""The tantivy keyword index (rag/storage/keyword_index.py): it answers keyword search when it holds the
store's chunks, FTS5 answers when it does not, and every writer brings it back in step: after a
kill -9 between the two commits, a process writing with FTS5 only, a damaged folder."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rag.search.local
from rag import RAG, Config
from rag.config import ConfigError
from tests.conftest import NEWS, assert_consistent, write

QUESTIONS = [
    "What did the Fed do with its benchmark rate?",
    "How many dengue cases were reported?",
    "When did the rocket launch into orbit?",
    "Who pays for the Riverside bridge repairs?",
    "genome sequencing",
]


def open_index(index_dir: Path, keyword_index: str = "tantivy") -> RAG:
    return RAG.open(config=Config(index_dir=index_dir, model="hashing-64", keyword_index=keyword_index))


@pytest.fixture
def news(tmp_path: Path) -> Path:
    shutil.copytree(NEWS, tmp_path / "news")
    with open_index(tmp_path / "index") as opened:
        opened.index([tmp_path / "news"], progress=False)
    return tmp_path / "index"


def fts5_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the FTS5 keyword query fail, so a result proves tantivy answered."""

    def refuse(words: object) -> str:
        raise AssertionError("FTS5 was asked although the tantivy index holds the store")

    monkeypatch.setattr(rag.search.local, "any_of", refuse)


def keyword_docs(opened: RAG, question: str, k: int = 5, **filters: object) -> list[str]:
    return [p.doc_id for p in opened.search(question, k=k, mode="keyword", **filters)]  # type: ignore[arg-type]


def test_tantivy_answers_and_ranks_like_fts5(news: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_index(news, "fts5") as fts5:
        expected = {q: keyword_docs(fts5, q) for q in QUESTIONS}
    fts5_refused(monkeypatch)
    with open_index(news) as opened:
        assert opened.status()["keyword_index"] == "tantivy"
        for question in QUESTIONS:
            got = keyword_docs(opened, question)
            assert got, question
            # Stemmers differ slightly (Porter in FTS5, Snowball here): the best document agrees.
            assert got[0] == expected[question][0], (question, got, expected[question])
    assert_consistent(news)


def test_filters_narrow_inside_tantivy(news: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_index(news) as opened:
        sources = sorted({row[0] for row in opened.store.db.execute("SELECT source FROM documents")})
        target = sources[-1]
        fts5_refused(monkeypatch)
        found = opened.search("the", k=5, mode="keyword", sources=[target])
        assert found, target
        allowed = {r[0] for r in opened.store.db.execute("SELECT id FROM documents WHERE instr(source, ?)", (target,))}
        assert {p.doc_id for p in found} <= allowed
        # A filter that allows nothing finds nothing, rather than the best unfiltered chunks.
        assert opened.search("Fed rate", k=5, mode="keyword", since="2100-01-01") == []


def test_store_ahead_of_tantivy_is_answered_by_fts5_then_caught_up(
    news: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A process configured for FTS5 only writes: the tantivy index falls behind the store.
    extra = write(tmp_path / "more" / "zebra.txt", "The zebracorn parade drew a record crowd downtown on Sunday.")
    with open_index(news, "fts5") as writer:
        writer.index([tmp_path / "more"], progress=False)
    with open_index(news) as reader:
        assert reader.status()["keyword_index"] == "fts5 (tantivy is behind)"
        # FTS5 answers, so the new chunk is found all the same.
        assert keyword_docs(reader, "zebracorn parade")
        assert reader.parts.keywords is not None and not reader.parts.keywords.holds(reader.store.generation)
    assert_consistent(news, file_must_match=False)

    # The next writer, even with nothing to index, brings it in step (and says so).
    with caplog.at_level(logging.WARNING, logger="rag"), open_index(news) as writer:
        writer.index([tmp_path / "more"], progress=False)
    assert "keyword index" in caplog.text and "out of step" in caplog.text
    fts5_refused(monkeypatch)
    with open_index(news) as reader:
        assert reader.status()["keyword_index"] == "tantivy"
        assert keyword_docs(reader, "zebracorn parade")[0] == reader.resolve(str(extra))[0]
    assert_consistent(news)


def test_removed_chunks_leave_tantivy_too(news: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_index(news) as opened:
        first = keyword_docs(opened, QUESTIONS[0])[0]
        opened.remove(first)
        assert_consistent(news)
        opened.rebuild(progress=False)
        assert_consistent(news)
        fts5_refused(monkeypatch)
        assert first not in keyword_docs(opened, QUESTIONS[0], k=20)
        assert keyword_docs(opened, QUESTIONS[1])  # the other articles are still found


KILL_BETWEEN_COMMITS = """
import os, signal, sys
from pathlib import Path
from rag import RAG, Config
from rag.storage.keyword_index import KeywordIndex

def die(self, removed, texts, generation):
    os.kill(os.getpid(), signal.SIGKILL)  # the store committed; tantivy never hears of it

KeywordIndex.apply = die
with RAG.open(config=Config(index_dir=Path(sys.argv[1]), model="hashing-64")) as rag:
    rag.index([sys.argv[2]], progress=False)
"""


def test_kill_9_between_store_and_tantivy_commits(news: Path, tmp_path: Path) -> None:
    write(tmp_path / "more" / "zebra.txt", "The zebracorn parade drew a record crowd downtown on Sunday.")
    run = subprocess.run(
        [sys.executable, "-c", KILL_BETWEEN_COMMITS, str(news), str(tmp_path / "more")],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ},
        capture_output=True,
        timeout=120,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()
    with open_index(news) as reader:
        assert keyword_docs(reader, "zebracorn parade"), "the committed chunk must be found (by FTS5)"
    assert_consistent(news, file_must_match=False)
    with open_index(news) as writer:
        writer.index([tmp_path / "more"], progress=False)
    assert_consistent(news)


@pytest.mark.parametrize("damage", ["meta", "segment"])
def test_damaged_keyword_folder_falls_back_then_is_rebuilt(
    news: Path, tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = news / "keywords"
    if damage == "meta":
        (folder / "meta.json").write_text("{ not json", encoding="utf-8")
    else:
        for segment in folder.glob("*.idx"):
            segment.unlink()
    with caplog.at_level(logging.WARNING, logger="rag"), open_index(news) as reader:
        assert keyword_docs(reader, QUESTIONS[0]), "FTS5 answers while the folder is damaged"
    assert "keyword index" in caplog.text
    with open_index(news) as writer:
        writer.repair_vectors()
    fts5_refused(monkeypatch)
    with open_index(news) as reader:
        assert keyword_docs(reader, QUESTIONS[0])
    assert_consistent(news)


def test_an_index_from_before_gets_its_keyword_index_on_the_next_write(news: Path) -> None:
    shutil.rmtree(news / "keywords")
    with open_index(news) as reader:
        assert reader.status()["keyword_index"] == "fts5 (tantivy is behind)"
        assert keyword_docs(reader, QUESTIONS[0])
    with open_index(news) as writer:
        assert writer.repair_vectors() is True
        assert writer.parts.keywords is not None
        assert np.array_equal(writer.parts.keywords.held_ids(), writer.store.chunk_ids())
    assert_consistent(news)


def test_keyword_index_setting(tmp_path: Path) -> None:
    assert Config().keyword_index == "tantivy"
    assert Config.load(env={"RAG_KEYWORD_INDEX": "fts5"}).keyword_index == "fts5"
    toml = write(tmp_path / "rag.toml", 'keyword_index = "fts5"\n')
    assert Config.load(file=toml, env={}).keyword_index == "fts5"
    with pytest.raises(ConfigError, match="keyword_index='lucene' is unknown; choose one of tantivy, fts5"):
        Config(keyword_index="lucene")
    with open_index(tmp_path / "fts", "fts5") as opened:
        opened.index_documents([], progress=False)
        assert opened.parts.keywords is None
        assert opened.status()["keyword_index"] == "fts5"
    assert not (tmp_path / "fts" / "keywords").exists()


def test_hybrid_scores_keyword_candidates_from_the_vectors_in_memory(news: Path) -> None:
    # Hybrid search gives every candidate both scores; the cosines of chunks only the keyword
    # side found come from the FAISS index in memory, so they need no embedding cache.
    with open_index(news) as opened:
        query = opened.encoder.encode_queries([QUESTIONS[0]])
        ids = set(opened.store.chunk_ids().tolist())
        expected = opened.retriever._cosines(query, ids)
        assert len(expected) == len(ids)
        with opened.store.transaction() as db:
            db.execute("DELETE FROM embeddings")
        got = opened.retriever._cosines(query, ids)
        assert got.keys() == expected.keys()
        assert all(abs(got[cid] - expected[cid]) < 1e-6 for cid in ids)
        assert opened.search(QUESTIONS[0], k=5, mode="hybrid")


def test_an_unwritable_keyword_index_never_stops_indexing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(NEWS, tmp_path / "news")
    write(tmp_path / "index" / "keywords", "a file where the folder should be")
    with caplog.at_level(logging.WARNING, logger="rag"), open_index(tmp_path / "index") as opened:
        summary = opened.index([tmp_path / "news"], progress=False)
        assert summary.added == 5
        assert opened.status()["keyword_index"] == "fts5 (tantivy is behind)"
        assert keyword_docs(opened, QUESTIONS[0]), "FTS5 answers"
    assert "cannot be written" in caplog.text and "keywords" in caplog.text
    assert_consistent(tmp_path / "index", file_must_match=False)
    (tmp_path / "index" / "keywords").unlink()
    with open_index(tmp_path / "index") as opened:
        opened.index([tmp_path / "news"], progress=False)  # nothing to add; tantivy is built
    fts5_refused(monkeypatch)
    with open_index(tmp_path / "index") as opened:
        assert opened.status()["keyword_index"] == "tantivy"
        assert keyword_docs(opened, QUESTIONS[0])
    assert_consistent(tmp_path / "index")
