"""The ``rag`` command: a thin layer over ``rag.api.RAG``.

Every command takes ``--index-dir`` (default ``$RAG_INDEX_DIR``, else ``./.rag``) and
``--json`` for machine-readable output. Errors print one line and exit non-zero.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from embeddings.models import ModelLoadError
from embeddings.ray_encoder import RayError
from eval.questions import EvalError
from rag.answering.backends import LLMError
from rag.api import STORE_FILE, AmbiguousError, IndexMismatchError, NoIndexError, NotFoundError
from rag.chat.transcript import HistoryError
from rag.cli.commands import COMMANDS, EXIT_OK, EXIT_USAGE
from rag.cli.parser import build_parser
from rag.config import ConfigError
from rag.ingest.sources import is_ours
from rag.search.milvus import MilvusError
from rag.search.query import SearchError
from rag.search.reranking import RerankerError
from rag.storage.store import StoreError, damaged

__all__ = ["build_parser", "main"]


# Errors a user can fix; anything else is a bug and keeps its traceback.
USER_ERRORS = (
    ConfigError, EvalError, IndexMismatchError, LLMError, ModelLoadError, NoIndexError, NotFoundError, SearchError,
    RerankerError, AmbiguousError, HistoryError,
    StoreError, RayError, MilvusError,
)  # fmt: skip


def _quiet_libraries(record: logging.LogRecord) -> bool:
    """Library warnings (pypdf's "EOF marker not found") are printed only with --verbose: a file
    they concern is listed with them in its skip reason instead."""
    return is_ours(record)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format="rag: %(message)s", level=logging.WARNING)
    args = build_parser().parse_args(argv)
    for handler in logging.getLogger().handlers:
        handler.removeFilter(_quiet_libraries)
        if not getattr(args, "verbose", False):
            handler.addFilter(_quiet_libraries)
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # inside the try: a closed pipe shows up here as often as in print
        return code
    except BrokenPipeError:
        # The reader went away (`rag show DOC | head`): stop quietly, as other commands do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except USER_ERRORS as exc:
        print(f"rag: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.DatabaseError as exc:
        # Damage SQLite only notices when it reads the bad page, after the store opened fine.
        folder = args.index_dir or Path(os.environ.get("RAG_INDEX_DIR", ".rag"))
        print(f"rag: error: {damaged(folder / STORE_FILE, exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rag: interrupted; the index is consistent, rerun to finish", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
