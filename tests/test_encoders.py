"""The encoder runtimes: PyTorch, ONNX Runtime (float) and ONNX Runtime (int8), on the real
bundled model and the news fixtures; what an index records about them; the cached export."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embeddings import load_encoder
from embeddings.encoder import OnnxEncoder, SentenceTransformerEncoder, _load_onnx
from embeddings.models import BUNDLED_MODEL, model_folder
from embeddings.onnx_export import SETTINGS_FILE, export_folder, exported, fingerprint
from rag import RAG, Config, IndexMismatchError
from rag.config import ConfigError, IndexSettings
from tests.conftest import NEWS, SAMPLE_ARTICLES, assert_consistent

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def news_texts() -> list[str]:
    """Paragraphs of the news fixtures, short and long, so batches pad; plus edge cases."""
    paragraphs = [p for f in sorted(NEWS.iterdir()) for p in f.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    return [*paragraphs, "Mr. Smith", "U.S.", "a " * 600]  # the last is cut at 256 word pieces


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return SentenceTransformerEncoder(BUNDLED_MODEL).encode_documents(news_texts())


def test_onnx_float_vectors_equal_pytorch(torch_vectors: np.ndarray) -> None:
    got = OnnxEncoder(BUNDLED_MODEL, int8=False).encode_documents(news_texts())
    assert got.dtype == np.float32 and got.shape == torch_vectors.shape
    assert np.abs(got - torch_vectors).max() < 1e-5


def test_onnx_int8_vectors_stay_close_to_pytorch(torch_vectors: np.ndarray) -> None:
    got = OnnxEncoder(BUNDLED_MODEL, int8=True).encode_documents(news_texts())
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosines = (got * torch_vectors).sum(axis=1)
    # Measured on both development sets: median 0.995, worst 0.96 (on a two-word fragment).
    assert np.median(cosines) > 0.98 and cosines.min() > 0.9
    # ...and not equal: the int8 index must be recorded as different (test below).
    assert np.abs(got - torch_vectors).max() > 1e-4


def test_encoders_of_one_model_share_one_session() -> None:
    first, second = OnnxEncoder(BUNDLED_MODEL), OnnxEncoder(BUNDLED_MODEL)
    first.encode_queries(["a"]), second.encode_queries(["b"])
    assert first._session is second._session
    assert OnnxEncoder(BUNDLED_MODEL, int8=False).encode_queries(["c"]) is not None
    assert OnnxEncoder(BUNDLED_MODEL, int8=False)._session is None  # loads on first use only


def test_a_batch_and_one_text_at_a_time_agree() -> None:
    encoder = OnnxEncoder(BUNDLED_MODEL, int8=True)
    texts = news_texts()[:6]
    together = encoder.encode_documents(texts)
    alone = np.vstack([encoder.encode_queries([t]) for t in texts])
    # Exactly: int8 runs one text per call, since a batch's shared activation scale changed vectors.
    assert np.array_equal(together, alone)
    float_encoder = OnnxEncoder(BUNDLED_MODEL, int8=False)
    float_together = float_encoder.encode_documents(texts)
    float_alone = np.vstack([float_encoder.encode_queries([t]) for t in texts])
    assert np.abs(float_together - float_alone).max() < 1e-5  # padding must not leak into the mean


def test_the_default_backend_is_int8_onnx_and_the_index_records_it(tmp_path: Path) -> None:
    with RAG.open(tmp_path / "idx") as rag:
        rag.index([SAMPLE_ARTICLES], progress=False)
        status = rag.status()
        assert (status["encoder_backend"], status["dim"]) == ("onnx-int8", 384)
        assert isinstance(rag.encoder, OnnxEncoder) and rag.encoder.int8
        question = "How many troops did the Afghan government have, according to Massoud?"
        assert "300,000" in rag.search(question, mode="dense")[0].text


def test_an_index_is_used_as_built_and_a_different_backend_needs_a_rebuild(tmp_path: Path) -> None:
    index_dir = tmp_path / "idx"
    with RAG.open(config=Config(index_dir=index_dir, encoder_backend="torch")) as rag:
        first = rag.index([SAMPLE_ARTICLES], progress=False)
    # Unset: the index's own backend, whatever today's default is.
    with RAG.open(index_dir) as rag:
        assert rag.settings.encoder_backend == "torch"
        assert isinstance(rag.encoder, SentenceTransformerEncoder)
    with pytest.raises(IndexMismatchError, match=r"encoder_backend 'torch' \(asked for 'onnx-int8'\).*--rebuild"):
        RAG.open(config=Config(index_dir=index_dir, encoder_backend="onnx-int8"))
    # Float ONNX files its vectors under PyTorch's key (they are equal), so switching embeds nothing...
    with RAG.open(config=Config(index_dir=index_dir, encoder_backend="onnx"), rebuild=True) as rag:
        assert rag.rebuild(progress=False).embedded == 0
    # ...while int8 vectors differ and are computed again.
    with RAG.open(config=Config(index_dir=index_dir, encoder_backend="onnx-int8"), rebuild=True) as rag:
        summary = rag.rebuild(progress=False)
        assert summary.embedded == summary.chunks == first.chunks
        assert rag.status()["encoder_backend"] == "onnx-int8"
    assert_consistent(index_dir)


def test_an_index_made_before_the_setting_existed_was_embedded_by_pytorch() -> None:
    meta = {"model": BUNDLED_MODEL, "chunk_tokens": "128", "chunk_overlap": "32", "index_type": "flat"}
    settings = IndexSettings.from_meta(meta)
    assert settings is not None and settings.encoder_backend == "torch"
    assert settings.vectors_key == BUNDLED_MODEL
    assert IndexSettings(encoder_backend="onnx-int8").vectors_key == f"{BUNDLED_MODEL}+onnx-int8"


def test_the_setting_comes_from_flag_environment_and_file(tmp_path: Path) -> None:
    toml = tmp_path / "rag.toml"
    toml.write_text('encoder_backend = "onnx"\n', encoding="utf-8")
    assert Config.load(file=toml, env={}).encoder_backend == "onnx"
    assert Config.load(env={"RAG_ENCODER_BACKEND": "torch"}).encoder_backend == "torch"
    with pytest.raises(ConfigError, match="encoder_backend='tensorflow' is unknown; choose one of onnx-int8, onnx"):
        Config.load(env={"RAG_ENCODER_BACKEND": "tensorflow"})
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "rag.cli", "index", str(SAMPLE_ARTICLES), "--index-dir", str(tmp_path / "i"),
         "--encoder-backend", "onnx", "--no-progress"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    status = subprocess.run(
        [sys.executable, "-m", "rag.cli", "status", "--index-dir", str(tmp_path / "i")],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    assert re.search(r"^encoder backend +onnx$", status.stdout, re.MULTILINE), status.stdout


def test_asking_a_question_never_imports_torch(tmp_path: Path) -> None:
    index_dir = tmp_path / "idx"
    with RAG.open(index_dir) as rag:
        rag.index([NEWS], progress=False)
    script = (
        "import sys\n"
        "from rag.cli import main\n"
        f"code = main(['ask', 'What did the Fed do with its rate?', '--index-dir', {str(index_dir)!r}])\n"
        "heavy = sorted(m for m in ('torch', 'sentence_transformers', 'transformers', 'gradio') if m in sys.modules)\n"
        "print('IMPORTED', heavy)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "IMPORTED []" in done.stdout
    assert "3.75%" in done.stdout


def test_the_export_is_cached_and_keyed_by_the_model_files(tmp_path: Path) -> None:
    folder = exported(model_folder(BUNDLED_MODEL))
    assert (folder / SETTINGS_FILE).exists()
    before = (folder / SETTINGS_FILE).stat().st_mtime_ns
    assert exported(model_folder(BUNDLED_MODEL)) == folder  # no second export
    assert (folder / SETTINGS_FILE).stat().st_mtime_ns == before
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text("{}", encoding="utf-8")
    first = fingerprint(model)
    (model / "config.json").write_text('{"changed": true}', encoding="utf-8")
    assert fingerprint(model) != first
    assert export_folder(model).name.startswith("my-model-")


def test_an_unwritable_cache_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from embeddings.models import ModelLoadError

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # the cache would have to go inside a file
    _load_onnx.cache_clear()  # a session loaded by an earlier test would hide the error
    with pytest.raises(ModelLoadError, match=r"cannot write the ONNX export .* XDG_CACHE_HOME .* encoder_backend"):
        OnnxEncoder(BUNDLED_MODEL).encode_queries(["x"])
    _load_onnx.cache_clear()


def test_an_abandoned_export_is_cleaned_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from embeddings import onnx_export

    old = tmp_path / ".export-killed"
    old.mkdir()
    os.utime(old, (0, 0))
    fresh = tmp_path / ".export-running"
    fresh.mkdir()
    onnx_export._remove_abandoned(tmp_path)
    assert not old.exists() and fresh.exists()


def test_a_model_the_onnx_encoder_cannot_run_says_to_use_torch(tmp_path: Path) -> None:
    from embeddings.models import ModelLoadError

    with pytest.raises(ModelLoadError, match="cannot find embedding model 'no-such/model'"):
        load_encoder("no-such/model", backend="onnx-int8").encode_queries(["x"])
    with pytest.raises(ModelLoadError, match=f"embedding model folder {tmp_path}/gone does not exist"):
        load_encoder(str(tmp_path / "gone"), backend="onnx-int8").encode_queries(["x"])
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("not a model", encoding="utf-8")
    with pytest.raises(ModelLoadError, match=f"cannot load a sentence-transformers model from {tmp_path}/notes"):
        load_encoder(str(tmp_path / "notes"), backend="onnx-int8").encode_queries(["x"])
