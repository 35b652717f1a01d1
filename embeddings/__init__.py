"""Text to vectors, and vectors to a searchable FAISS index.

This package knows ids, texts and vectors only; it never imports ``rag``.
"""

from embeddings.encoder import (
    BACKENDS,
    Encoder,
    HashingEncoder,
    OnnxEncoder,
    SentenceTransformerEncoder,
    load_encoder,
)
from embeddings.models import ModelLoadError
from embeddings.vector_index import IndexFileError, VectorIndex

__all__ = [
    "BACKENDS",
    "Encoder",
    "HashingEncoder",
    "IndexFileError",
    "ModelLoadError",
    "OnnxEncoder",
    "SentenceTransformerEncoder",
    "VectorIndex",
    "load_encoder",
]
