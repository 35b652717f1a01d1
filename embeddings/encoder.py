"""Encoders turn texts into L2-normalised float32 vectors.

Two runtimes run the same sentence-transformers model: PyTorch through sentence-transformers,
and ONNX Runtime on an export of it (``embeddings.onnx_export``), plain or with int8 weights.
The ONNX one needs neither torch nor sentence-transformers, so a process that only asks a
question never imports them. Constructors are cheap: models load on first use, so a command
that finds nothing to embed never pays for them.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from embeddings.onnx_export import EncoderSettings

from embeddings.models import BUNDLED_MODEL, ModelLoadError, bundled_model_path, model_folder

Vectors = npt.NDArray[np.float32]

HASHING_MODEL = "hashing"
# How the model runs. "torch" and "onnx" give the same vectors (2.5e-7 apart at most on both
# development sets), "onnx-int8" slightly different ones, so an index records which it used.
# docs/benchmarks.md "Encoder runtimes" has the measurements behind the default.
BACKENDS = ("onnx-int8", "onnx", "torch")
DEFAULT_BACKEND = "onnx-int8"


class Encoder(Protocol):
    """What the indexer and retriever need from an embedding model."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode_documents(self, texts: list[str], batch_size: int | None = None) -> Vectors: ...

    def encode_queries(self, texts: list[str]) -> Vectors: ...


_LOADING = threading.Lock()


@functools.lru_cache(maxsize=4)
def _load_model(name: str, device: str) -> SentenceTransformer:
    """Load a model once per process; every encoder of the same name shares it."""
    # Never reach for a hub at run time: the bundled model is on disk, and a user who names
    # another model is expected to have it cached, or to set HF_HUB_OFFLINE=0 themselves.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # "Loading weights" is noise here
    where = bundled_model_path() if name == BUNDLED_MODEL else name
    try:
        return SentenceTransformer(where, device=device)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load embedding model {name!r}: {exc}. Name a folder that holds a "
            f"sentence-transformers model, or use the default {BUNDLED_MODEL!r}"
        ) from exc


# A call with more texts than this is bulk work (indexing): it runs batch by batch and lets
# interactive calls (a question, an answer's sentences) go first between batches.
INTERACTIVE_TEXTS = 64


class ModelLock:
    """One model call at a time, interactive calls before bulk ones.

    A question used to wait behind a whole indexing group (512 chunks, 5 to 15 s on two busy
    cores); now it waits for at most one batch of it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._interactive_waiting = 0

    @property
    def interactive_waiting(self) -> int:
        """How many interactive calls wait for the model now."""
        with self._cond:
            return self._interactive_waiting

    @contextmanager
    def hold(self, interactive: bool) -> Iterator[None]:
        with self._cond:
            if interactive:
                self._interactive_waiting += 1
                try:
                    while self._busy:
                        self._cond.wait()
                finally:
                    self._interactive_waiting -= 1
            else:
                while self._busy or self._interactive_waiting:
                    self._cond.wait()
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()


@functools.lru_cache(maxsize=4)
def _load_onnx(name: str, int8: bool) -> tuple[Any, EncoderSettings, Any]:
    """The tokenizer, pooling settings and ONNX Runtime session for model ``name``, once per process."""
    import onnxruntime
    from tokenizers import Tokenizer

    from embeddings.onnx_export import FP32_FILE, INT8_FILE, TOKENIZER_FILE, EncoderSettings, ExportError, exported

    try:
        folder = exported(model_folder(name))
    except ExportError as exc:
        raise ModelLoadError(str(exc)) from exc
    except OSError as exc:
        raise ModelLoadError(
            f"cannot write the ONNX export of {name!r} to {exc.filename}: {exc.strerror}. "
            "Point XDG_CACHE_HOME at a writable folder, or set encoder_backend = 'torch'"
        ) from exc
    settings = EncoderSettings.read(folder)
    tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
    tokenizer.enable_truncation(settings.max_seq_length)
    tokenizer.enable_padding()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initialisers are not the user's concern
    # ONNX Runtime ignores OMP_NUM_THREADS, the knob PyTorch and Ray use (a Ray actor given one
    # CPU gets OMP_NUM_THREADS=1); without it each of several workers on a box takes every core.
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        options.intra_op_num_threads = int(threads)
    session = onnxruntime.InferenceSession(
        str(folder / (INT8_FILE if int8 else FP32_FILE)), options, providers=["CPUExecutionProvider"]
    )
    return tokenizer, settings, session


@functools.lru_cache(maxsize=4)
def _model_lock(name: str) -> ModelLock:
    """One lock per model, shared like the model itself."""
    return ModelLock()


class _BatchedEncoder:
    """Batching and turn-taking shared by the runtimes; each supplies ``dim`` and ``_run``."""

    def __init__(self, name: str, batch_size: int) -> None:
        self._name = name
        self.batch_size = batch_size
        # A web server calls from many threads; Hugging Face's fast tokenizer fails with
        # "Already borrowed" when used by two at once, and both cores are busy anyway.
        self._lock = _model_lock(name)

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def _run(self, texts: list[str], batch_size: int) -> Vectors:
        raise NotImplementedError

    def _encode(self, texts: list[str], batch_size: int | None = None) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = self.batch_size if batch_size is None else batch_size
        if len(texts) <= INTERACTIVE_TEXTS:
            with self._lock.hold(interactive=True):
                return self._run(texts, size)
        # Bulk: longest first, as sentence-transformers sorts within one call (so batches pad
        # little), one batch per turn of the lock, then back in the caller's order.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for first in range(0, len(order), size):
            rows = order[first : first + size]
            with self._lock.hold(interactive=False):
                out[rows] = self._run([texts[i] for i in rows], size)
        return out

    def encode_documents(self, texts: list[str], batch_size: int | None = None) -> Vectors:
        return self._encode(texts, batch_size)

    def encode_queries(self, texts: list[str]) -> Vectors:
        return self._encode(texts)


class SentenceTransformerEncoder(_BatchedEncoder):
    """A sentence-transformers model run by PyTorch, loaded once on first use, on the CPU unless told."""

    def __init__(self, model: str = BUNDLED_MODEL, batch_size: int = 32, device: str | None = None) -> None:
        super().__init__(model, batch_size)
        self.device = device or os.environ.get("RAG_DEVICE") or "cpu"
        self._model: SentenceTransformer | None = None

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            # One load at a time: a server's warm-up and its first question would otherwise both
            # load the model (lru_cache does not hold back a second caller), doubling the wait.
            with _LOADING:
                if self._model is None:
                    self._model = _load_model(self._name, self.device)
        return self._model

    @property
    def dim(self) -> int:
        dim = self.model.get_embedding_dimension()
        if dim is None:  # pragma: no cover - every sentence-transformers model we know sets it
            raise ModelLoadError(f"model {self._name!r} does not report its embedding dimension")
        return int(dim)

    def _run(self, texts: list[str], batch_size: int) -> Vectors:
        vectors = self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class OnnxEncoder(_BatchedEncoder):
    """The same model exported to ONNX (``embeddings.onnx_export``) and run by ONNX Runtime,
    with the model's own tokenizer and pooling; ``int8`` picks the export with int8 weights.

    ``name`` is what an index's vector cache is keyed by: the model's name for the float
    export (its vectors equal PyTorch's) and the name plus ``+onnx-int8`` for the int8 one."""

    def __init__(self, model: str = BUNDLED_MODEL, batch_size: int = 32, int8: bool = True) -> None:
        super().__init__(vectors_key(model, "onnx-int8" if int8 else "onnx"), batch_size)
        self.model_name = model
        self.int8 = int8
        self._session: Any = None
        self._tokenizer: Any = None
        self._settings: EncoderSettings | None = None

    def _load(self) -> None:
        if self._session is None:
            # One load at a time (see SentenceTransformerEncoder.model), shared by every encoder
            # of the same model in this process, as PyTorch models are by _load_model.
            with _LOADING:
                if self._session is None:
                    self._tokenizer, self._settings, self._session = _load_onnx(self.model_name, self.int8)

    @property
    def dim(self) -> int:
        self._load()
        assert self._settings is not None
        return self._settings.dim

    def _run(self, texts: list[str], batch_size: int) -> Vectors:
        self._load()
        assert self._settings is not None
        if self.int8:
            # Dynamic int8 quantises each call's activations with one scale for the whole batch,
            # so a text's vector would depend on its batch-mates (cosine 0.977 at worst between a
            # news paragraph encoded alone and in a batch). One text per call keeps every text's
            # vector its own (a question matches its stored copy exactly) and, with no padding
            # to compute, measured as fast as batches of 32.
            batch_size = 1
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self._settings.dim), dtype=np.float32)
        for first in range(0, len(order), batch_size):
            rows = order[first : first + batch_size]
            out[rows] = self._batch([texts[i] for i in rows])
        return out

    def _batch(self, texts: list[str]) -> Vectors:
        assert self._settings is not None
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(None, {name: feeds[name] for name in self._settings.inputs})[0]
        if self._settings.pooling == "cls":
            pooled = hidden[:, 0]
        else:  # mean over the real tokens, as sentence-transformers' Pooling does
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        # The vectors are always normalised: the indexes compare by inner product.
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.ascontiguousarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)


def vectors_key(model: str, backend: str) -> str:
    """What cached vectors are filed under: backends whose vectors equal PyTorch's share its key."""
    return f"{model}+{backend}" if backend == "onnx-int8" else model


class HashingEncoder:
    """A deterministic bag-of-words encoder: feature hashing of lower-cased words.

    It needs no model, so unit tests run in milliseconds and give the same vectors on every
    machine. Texts that share words get similar vectors, which is enough to test ranking.
    """

    def __init__(self, dim: int = 256) -> None:
        self._dim = dim

    @property
    def name(self) -> str:
        return f"{HASHING_MODEL}-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def encode_documents(self, texts: list[str], batch_size: int | None = None) -> Vectors:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % self._dim] += 1.0 if (value >> 63) else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        normalised: Vectors = out / norms
        return normalised

    def encode_queries(self, texts: list[str]) -> Vectors:
        return self.encode_documents(texts)


def load_encoder(model: str, batch_size: int = 32, backend: str = DEFAULT_BACKEND) -> Encoder:
    """The encoder for a configured model name: ``hashing`` or ``hashing-N`` for tests (whatever
    the backend), anything else is a sentence-transformers name or folder run by ``backend``."""
    match = re.fullmatch(rf"{HASHING_MODEL}(?:-(\d+))?", model)
    if match:
        return HashingEncoder(int(match.group(1) or 256))
    if model != BUNDLED_MODEL and Path(model).expanduser().exists():
        model = str(Path(model).expanduser().resolve())
    if backend == "torch":
        return SentenceTransformerEncoder(model, batch_size=batch_size)
    if backend in ("onnx", "onnx-int8"):
        return OnnxEncoder(model, batch_size=batch_size, int8=backend == "onnx-int8")
    raise ModelLoadError(f"encoder_backend={backend!r} is unknown; choose one of {', '.join(BACKENDS)}")
