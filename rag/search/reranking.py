"""Optional reranking: a cross-encoder re-scores the fused candidates before answering.

A cross-encoder reads the question and a passage together, which ranks better than comparing
two embeddings but costs one model call per candidate, so only the best ``rerank_depth``
fused candidates are re-scored. It is off by default: no cross-encoder ships inside a PyPI
package, so the offline default cannot have one. ``reranker = NAME_OR_FOLDER`` names any
sentence-transformers ``CrossEncoder`` (README "Reranking" lists public models and their cost).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence


class RerankerError(RuntimeError):
    pass


class Reranker:
    """Loads the cross-encoder on first use; one model call scores every candidate."""

    def __init__(self, name_or_folder: str, batch_size: int = 16) -> None:
        self.name = name_or_folder
        self.batch_size = batch_size
        self._model: object | None = None
        self._lock = threading.Lock()

    def _load(self) -> object:
        with self._lock:
            if self._model is None:
                from sentence_transformers import CrossEncoder

                try:
                    self._model = CrossEncoder(self.name, device="cpu")
                except (OSError, ValueError) as error:
                    raise RerankerError(
                        f"reranker {self.name!r} could not be loaded ({error}); name a sentence-transformers "
                        "CrossEncoder folder, or a hub model when the hub is reachable, or unset `reranker`"
                    ) from error
            return self._model

    def __call__(self, question: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        model = self._load()
        scores = model.predict([(question, t) for t in texts], batch_size=self.batch_size)  # type: ignore[attr-defined]
        return [float(s) for s in scores]
