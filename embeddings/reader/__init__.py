"""The reader: a small cross-encoder trained here that reads a question and a sentence together.

For each (question, sentence) pair one model call gives
- ``relevance``: the probability that the sentence holds the answer, and
- ``span``: the answer phrase inside the sentence (character offsets) with its confidence.

The weights ship in the repository (``embeddings/reader/model/``: an int8 ONNX file of about
23 MB, its tokenizer, its settings, a SHA-256 checksum file and a model card), so a fresh clone
needs no download and no training. ``eval.train_reader`` made them; the model card says from
what and how well they do on held-out documents. It runs on ONNX Runtime, like the encoder.

A reader is only used through :class:`Reader`; a folder that is not a reader, a damaged file or
a checksum mismatch raises :class:`ReaderError` with one line that names the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_FILE = "reader-int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
SETTINGS_FILE = "reader.json"
CHECKSUM_FILE = "SHA256SUMS"
CARD_FILE = "MODEL_CARD.md"
SHIPPED = Path(__file__).resolve().parent / "model"
RESTORE = "restore it from the repository (git checkout -- embeddings/reader/model) or set reader = none"
# The answer phrase is at most this many word pieces long.
MAX_SPAN_TOKENS = 24


class ReaderError(RuntimeError):
    """The reader cannot be used; the message names the file and what to do."""


# A headline given with a sentence is cut to this many words: it says what the article is about,
# and the rest of the pair's word pieces are the sentence's.
CONTEXT_WORDS = 16


@dataclass(frozen=True)
class ReaderSettings:
    max_length: int = 96  # word pieces per (question, sentence) pair, as trained
    # Trained with the sentence's headline after the question ("question [SEP] headline"), so a
    # sentence about another city's budget reads as another article's. Older readers: False.
    context: bool = False


def first_segment(question: str, context: str | None) -> str:
    """What the reader reads before the sentence: the question, then the headline if any."""
    words = (context or "").split()
    if not words:
        return question
    return f"{question} [SEP] {' '.join(words[:CONTEXT_WORDS])}"


@dataclass(frozen=True)
class Scored:
    relevance: float  # P(the sentence holds the answer)
    span: tuple[int, int] | None  # the answer phrase's characters in the sentence
    span_confidence: float  # P(start) * P(end) of that phrase


def checksums(folder: Path) -> dict[str, str]:
    """The expected SHA-256 of each file, from the folder's checksum file."""
    path = folder / CHECKSUM_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ReaderError(f"reader checksum file {path} cannot be read ({error.strerror}); "
                          "restore it from the repository or set reader = none") from error  # fmt: skip
    out = {}
    for line in lines:
        digest, _, name = line.strip().partition("  ")
        if digest and name:
            out[name] = digest
    return out


def verify(folder: Path) -> None:
    """Every file named in the checksum file is there and unchanged."""
    expected = checksums(folder)
    for name in (MODEL_FILE, TOKENIZER_FILE, SETTINGS_FILE):
        path = folder / name
        if name not in expected:
            raise ReaderError(f"{folder / CHECKSUM_FILE} has no checksum for {name}; restore the reader folder "
                              "from the repository or set reader = none")  # fmt: skip
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as error:
            raise ReaderError(f"reader file {path} cannot be read ({error.strerror}); {RESTORE}") from error
        if digest != expected[name]:
            raise ReaderError(f"reader file {path} does not match its checksum (damaged or replaced); {RESTORE}")


class Reader:
    """The ONNX reader in ``folder``, loaded at construction (about 0.2 s). Thread-safe."""

    def __init__(self, folder: str | Path = SHIPPED, *, verify: bool = True) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.folder = Path(folder).expanduser()
        if not (self.folder / MODEL_FILE).is_file():
            raise ReaderError(f"{self.folder} holds no reader ({MODEL_FILE} is missing); name a folder made by "
                              "`python -m eval.train_reader`, or set reader = none")  # fmt: skip
        if verify:
            globals()["verify"](self.folder)
        try:
            raw = json.loads((self.folder / SETTINGS_FILE).read_text(encoding="utf-8"))
            self.settings = ReaderSettings(**raw)
            tokenizer = Tokenizer.from_file(str(self.folder / TOKENIZER_FILE))
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            threads = os.environ.get("OMP_NUM_THREADS", "")
            if threads.isdigit() and int(threads) > 0:
                options.intra_op_num_threads = int(threads)
            self.session = onnxruntime.InferenceSession(
                str(self.folder / MODEL_FILE), options, providers=["CPUExecutionProvider"]
            )
        except (OSError, ValueError, TypeError, RuntimeError, Exception) as error:
            raise ReaderError(f"reader in {self.folder} cannot be loaded ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:200] if str(error) else ''}); restore it from the "
                              "repository or set reader = none") from error  # fmt: skip
        tokenizer.enable_truncation(self.settings.max_length, strategy="longest_first")
        tokenizer.enable_padding()
        self._tokenizer = tokenizer
        # Hugging Face's fast tokenizer must not be used from two threads at once.
        self._lock = threading.Lock()
        self._inputs = {i.name for i in self.session.get_inputs()}

    def score(
        self, question: str, sentences: Sequence[str], contexts: Sequence[str] | None = None, batch_size: int = 16
    ) -> list[Scored]:
        """One ``Scored`` per sentence, in order; ``contexts`` (one per sentence: its article's
        headline) are read only by a reader trained with them."""
        import numpy as np

        if contexts is not None and len(contexts) != len(sentences):
            raise ValueError(f"{len(contexts)} contexts for {len(sentences)} sentences")
        use = contexts if contexts is not None and self.settings.context else None
        firsts = [first_segment(question, use[i] if use is not None else None) for i in range(len(sentences))]

        out: list[Scored] = []
        # Similar lengths together: one batch pads every pair to its longest.
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        results: dict[int, Scored] = {}
        for begin in range(0, len(order), batch_size):
            rows = order[begin : begin + batch_size]
            with self._lock:
                encodings = self._tokenizer.encode_batch([(firsts[i], sentences[i]) for i in rows])
            feed: dict[str, Any] = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            relevance, starts, ends = self.session.run(None, {k: v for k, v in feed.items() if k in self._inputs})
            for n, i in enumerate(rows):
                span, confidence = _best_span(encodings[n].sequence_ids, encodings[n].offsets, starts[n], ends[n])
                results[i] = Scored(float(1.0 / (1.0 + np.exp(-relevance[n]))), span, confidence)
        out = [results[i] for i in range(len(sentences))]
        return out


def _best_span(
    sequence_ids: Sequence[int | None], offsets: Sequence[tuple[int, int]], starts: Any, ends: Any
) -> tuple[tuple[int, int] | None, float]:
    import numpy as np

    tokens = [i for i, s in enumerate(sequence_ids) if s == 1 and offsets[i][1] > offsets[i][0]]
    if not tokens:
        return None, 0.0
    idx = np.array(tokens)
    p_start = np.exp(starts[idx] - starts[idx].max())
    p_start /= p_start.sum()
    p_end = np.exp(ends[idx] - ends[idx].max())
    p_end /= p_end.sum()
    joint = np.triu(np.outer(p_start, p_end)) - np.triu(np.outer(p_start, p_end), MAX_SPAN_TOKENS)
    a, b = np.unravel_index(int(joint.argmax()), joint.shape)
    return (offsets[tokens[a]][0], offsets[tokens[b]][1]), float(joint[a, b])
