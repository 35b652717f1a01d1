"""Text to vectors, and vectors to a searchable FAISS index.

This package knows ids, texts and vectors only; it never imports ``rag``.
"""

from embeddings.encoder import Encoder, HashingEncoder, SentenceTransformerEncoder, load_encoder
from embeddings.vector_index import IndexFileError, VectorIndex

__all__ = [
    "Encoder",
    "HashingEncoder",
    "IndexFileError",
    "SentenceTransformerEncoder",
    "VectorIndex",
    "load_encoder",
]
