"""Question answering over your own articles, with every answer tied to exact source spans."""

from rag.api import RAG, IndexMismatchError, NoIndexError, NotFoundError
from rag.config import Config, ConfigError, IndexSettings
from rag.types import Chunk, Document, IndexSummary, Skipped

__all__ = [
    "RAG",
    "Chunk",
    "Config",
    "ConfigError",
    "Document",
    "IndexMismatchError",
    "IndexSettings",
    "IndexSummary",
    "NoIndexError",
    "NotFoundError",
    "Skipped",
]
