"""The ``rag`` command: a thin layer over ``rag.api.RAG``.

Every command takes ``--index-dir`` (default ``$RAG_INDEX_DIR``, else ``./.rag``) and
``--json`` for machine-readable output. Errors print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import re
import signal
import socket
import sqlite3
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from embeddings.encoder import BACKENDS
from embeddings.models import ModelLoadError
from embeddings.ray_encoder import RayError
from eval.questions import EvalError
from rag.answering.backends import LLMError
from rag.api import RAG, STORE_FILE, AmbiguousError, IndexMismatchError, NoIndexError, NotFoundError
from rag.chat.transcript import Conversation, HistoryError, read_conversation, write_conversation
from rag.cli.console import also_line, chat, print_answer
from rag.config import ANSWERERS, INDEX_TYPES, SEARCH_BACKENDS, Config, ConfigError
from rag.ingest.web import is_url
from rag.search.milvus import MilvusError
from rag.search.query import Filters, SearchError
from rag.search.reranking import RerankerError
from rag.storage.store import LIST_ORDERS, StoreError, damaged
from rag.types import Answer, IndexSummary
from rag.wording import counted

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


# What shell completion offers for an argument (shtab's FILE and DIR, spelled out so that
# building the parser does not import it).
FILE = {"bash": "_shtab_compgen_files", "zsh": "_files", "tcsh": "f"}
DIR = {"bash": "_shtab_compgen_dirs", "zsh": "_files -/", "tcsh": "d"}


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--index-dir",
        type=Path,
        help="index folder (default: $RAG_INDEX_DIR, else ./.rag)",
    ).complete = DIR  # type: ignore[attr-defined]
    parser.add_argument(
        "--config", type=Path, help="TOML file of settings (default: $RAG_CONFIG; see rag.example.toml)"
    ).complete = FILE  # type: ignore[attr-defined]
    parser.add_argument(
        "--backend",
        choices=SEARCH_BACKENDS,
        help="where search runs: local (FAISS + tantivy) or milvus (default: as the index was last written)",
    )
    parser.add_argument(
        "--milvus-uri",
        metavar="URI",
        help="a Milvus Lite file or http://HOST:19530 (default: as last written, else INDEX_DIR/milvus.db)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _version() -> str:
    try:
        return importlib.metadata.version("rag-articles")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag",
        description="Question answering over your own articles, with cited source spans.",
        epilog="Run `rag COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"rag {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    index = commands.add_parser(
        "index",
        help="add, update and remove documents so the index matches PATHs",
        description=(
            "Index files and folders (recursively): .txt, .md, .html, .pdf, .jsonl; and web pages, "
            "RSS/Atom feeds (their items' pages) and sitemaps by URL. Unchanged documents cost a "
            "hash (a page, a conditional request); changed ones are replaced; files deleted from an "
            "indexed folder are removed. Unreadable files and pages are skipped with a reason, and "
            "a page that fails keeps its previous version."
        ),
    )
    _sources(index, "*")
    index.add_argument(
        "--rebuild",
        action="store_true",
        help="re-chunk and re-embed every stored document with the given settings, then rebuild FAISS",
    )
    index.add_argument("--model", help="sentence-transformers model name or folder (new index or --rebuild)")
    index.add_argument(
        "--encoder-backend",
        choices=BACKENDS,
        help="what runs the model: onnx-int8 (default for a new index), onnx or torch (new index or --rebuild)",
    )
    index.add_argument("--chunk-tokens", type=int, help="chunk size in tokens (new index or --rebuild)")
    index.add_argument("--chunk-overlap", type=int, help="overlap between chunks in tokens")
    index.add_argument("--index-type", choices=INDEX_TYPES, help="flat (exact) or ivf (approximate)")
    index.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    _ray_options(index)
    _common(index)

    watch = commands.add_parser(
        "watch",
        help="keep folders, pages and feeds indexed: index again every DURATION until Ctrl-C",
        description=(
            "Runs `rag index PATH_OR_URL...` now and then every DURATION: new and changed files and "
            "feed items are added, deleted files removed (pages answer conditional requests, so an "
            "unchanged feed costs little). A running `rag serve` on the same index sees each change. "
            "One line per run that changed something; Ctrl-C (or SIGTERM) stops between or during "
            "runs and leaves the index consistent."
        ),
    )
    _sources(watch, "+")
    watch.add_argument(
        "--every", default="5m", metavar="DURATION", help="time between runs: 90s, 5m, 1h or seconds (default 5m)"
    )
    _common(watch)

    listing = commands.add_parser(
        "list",
        help="the indexed documents: id, title, date, source, chunks, when indexed",
        description=(
            "List the indexed documents, newest first, a page at a time. A document's id, its file's "
            "path or the start of its title names it in `rag show`, `rag remove` and --doc."
        ),
    )
    _filter_options(listing, passages=False)
    listing.add_argument("--title", metavar="TEXT", help="only titles containing TEXT (any case)")
    listing.add_argument("--sort", choices=list(LIST_ORDERS), default="date",
                         help="date (newest first, the default), title, or indexed (latest first)")  # fmt: skip
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="documents per page (default 50)")
    listing.add_argument("--offset", type=int, default=0, metavar="N", help="skip the first N (the next page)")
    listing.add_argument("--all", action="store_true", help="every document, no paging")
    _common(listing)

    remove = commands.add_parser(
        "remove", help="remove a document (id or title), or all documents read from a file or folder"
    )
    remove.add_argument("target", metavar="DOC", help="a document id, a file or folder path, or the start of a title")
    _common(remove)

    show = commands.add_parser("show", help="print one document")
    show.add_argument("doc_id", metavar="DOC", help="a document id, its file's path, or the start of its title")
    _common(show)

    status = commands.add_parser("status", help="counts, model, index type and sizes on disk")
    _common(status)

    gc = commands.add_parser(
        "gc",
        help="drop cached vectors no chunk uses and uploads no document uses",
        description=(
            "Indexing prunes what it removes as it goes; gc clears what older versions left: cached "
            "vectors of removed text or of another model, uploaded files that no document comes from, "
            "and temporary files of interrupted saves. SQLite reuses the freed space."
        ),
    )
    _common(gc)

    search = commands.add_parser(
        "search",
        help="the passages that best match a question",
        description="Hybrid (dense + keyword) search by default; filters apply before ranking.",
    )
    search.add_argument("question", metavar="QUESTION")
    search.add_argument("-k", type=int, default=5, help="number of passages (default 5)")
    search.add_argument("--mode", default="hybrid", help="hybrid (default), dense or keyword")
    _filter_options(search)
    search.add_argument("--context", type=int, default=0, metavar="N", help="also show N neighbouring chunks each side")
    search.add_argument(
        "--reranker", metavar="MODEL", help="a CrossEncoder (name or folder) to re-score candidates (default: off)"
    )
    _common(search)

    ask = commands.add_parser(
        "ask",
        help="answer a question from the documents, citing the exact spans it rests on",
        description=(
            "The extractive answerer (default) quotes the source sentences that answer the question; "
            "the llm answerer asks a language model and checks every sentence against what it cites."
        ),
    )
    ask.add_argument("question", metavar="QUESTION")
    _answer_options(ask)
    ask.add_argument("--show-prompt", action="store_true", help="print the exact prompt sent to the LLM")
    ask.add_argument(
        "--history",
        type=Path,
        metavar="FILE",
        help="a conversation so far (JSON, as this option or chat's /save writes it); the new turn is "
        "added to it, and a missing FILE is a new conversation",
    )
    _common(ask)

    chat = commands.add_parser(
        "chat",
        help="a conversation at the terminal: follow-ups, /sources, /open N, /save FILE",
        description=(
            "Ask question after question; follow-ups ('when did it start?') are read against the "
            "earlier turns. The model loads once. /help lists the commands. Piped input is read a "
            "question per line."
        ),
    )
    _answer_options(chat)
    _common(chat)

    evaluate = commands.add_parser(
        "eval",
        help="run a question set and report retrieval, answer and citation quality",
        description=(
            "FILE is SQuAD JSON (its articles are indexed first, incrementally) or JSONL questions "
            "against the existing index. --compare prints two runs written by --out side by side."
        ),
    )
    evaluate.add_argument("file", nargs="?", type=Path, metavar="FILE")
    evaluate.add_argument(
        "--out", type=Path, metavar="DIR", help="write questions.jsonl, summary.json, report.md, plots"
    )
    evaluate.add_argument("--limit", type=int, metavar="N", help="only the first N questions")
    evaluate.add_argument("--sample", type=int, metavar="N", help="a random sample of N questions (see --seed)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed for --sample and --negatives (default 0)")
    evaluate.add_argument("--answerer", choices=ANSWERERS, help="extractive (default) or llm")
    evaluate.add_argument(
        "--negatives", type=Path, metavar="FILE", help="another set whose questions are asked as unanswerable ones"
    )
    evaluate.add_argument("--negatives-n", type=int, default=200, metavar="N", help="how many (default 200)")
    evaluate.add_argument("--compare", nargs=2, type=Path, metavar=("RUN_A", "RUN_B"), help="compare two --out folders")
    evaluate.add_argument("--model", help="embedding model, when FILE brings documents for a new index")
    evaluate.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    evaluate.add_argument(
        "--reranker", metavar="MODEL", help="a CrossEncoder (name or folder) to re-score candidates (default: off)"
    )
    _common(evaluate)

    completion = commands.add_parser(
        "completion",
        help="print a shell completion script",
        description=(
            'Tab completion of commands and options. Bash: eval "$(rag completion bash)" in ~/.bashrc; '
            "zsh: rag completion zsh > ~/.zfunc/_rag (a folder on $fpath)."
        ),
    )
    completion.add_argument("shell", choices=["bash", "zsh", "tcsh"])

    serve = commands.add_parser(
        "serve",
        help="the web chat, and an OpenAI-compatible API at /v1",
        description=(
            "Serve the web chat (Gradio) and the OpenAI-compatible API. The index folder may be empty "
            "or missing: the first upload in the browser creates it."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument(
        "--collection", action="append", default=[], metavar="NAME=FOLDER",
        help="serve another index folder too, as collection NAME (repeatable); each conversation picks one",
    )  # fmt: skip
    serve.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    serve.add_argument("--auth", metavar="USER:PASSWORD", help="require this login (default: $RAG_AUTH, else none)")
    serve.add_argument("--llm-url", help="OpenAI-compatible base URL, to offer the llm answerer")
    serve.add_argument("--llm-model", help="model name to send to that server")
    serve.add_argument("--gguf", help="a GGUF file (or 'smollm2') to offer the llm answerer in-process")
    serve.add_argument(
        "--reranker", metavar="MODEL", help="a CrossEncoder (name or folder) to re-score candidates (default: off)"
    )
    _common(serve)
    return parser


def _ray_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        metavar="ADDRESS",
        help="embed on a Ray cluster (default address: auto, the one `ray start` made here); setting ray_address",
    )
    parser.add_argument("--ray-workers", type=int, metavar="N", help="embedding actors (default: one per cluster CPU)")


def _sources(parser: argparse.ArgumentParser, nargs: str) -> None:
    """What `rag index` and `rag watch` read: paths and URLs (shell completion offers files)."""
    parser.add_argument(
        "paths", nargs=nargs, metavar="PATH_OR_URL", help="files, folders, or http(s) URLs of pages, feeds and sitemaps"
    ).complete = FILE  # type: ignore[attr-defined]


def _filter_options(parser: argparse.ArgumentParser, passages: bool = True) -> None:
    """Dates and sources; for commands that return passages, documents and a per-document cap."""
    parser.add_argument("--since", metavar="DATE", help="only documents dated on or after DATE (YYYY[-MM[-DD]])")
    parser.add_argument("--until", metavar="DATE", help="only documents dated on or before DATE (YYYY[-MM[-DD]])")
    parser.add_argument(
        "--source", action="append", default=[], metavar="TEXT", help="only sources or paths containing TEXT"
    )
    if passages:
        parser.add_argument(
            "--doc", action="append", default=[], metavar="DOC",
            help="only this document: id, path or title start (repeatable)",
        )  # fmt: skip
        parser.add_argument(
            "--max-per-doc",
            type=int,
            metavar="N",
            help="passages per document at most (default: half of k, rounded up)",
        )


def _answer_options(parser: argparse.ArgumentParser) -> None:
    """The options of `rag ask` and `rag chat`: answerer, retrieval, filters, LLM, reranker."""
    parser.add_argument("--answerer", choices=ANSWERERS, help="extractive (default, offline) or llm")
    parser.add_argument("-k", type=int, help="passages to answer from (default 5)")
    parser.add_argument("--mode", default="hybrid", help="retrieval mode: hybrid (default), dense or keyword")
    _filter_options(parser)
    parser.add_argument("--llm-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1")
    parser.add_argument("--llm-model", help="model name to send to that server")
    parser.add_argument("--gguf", help="a GGUF file to run in-process, or 'smollm2' for the bundled tiny model")
    parser.add_argument(
        "--reranker", metavar="MODEL", help="a CrossEncoder (name or folder) to re-score candidates (default: off)"
    )


def _config(args: argparse.Namespace) -> Config:
    return Config.load(
        file=args.config,
        index_dir=args.index_dir,
        model=getattr(args, "model", None),
        encoder_backend=getattr(args, "encoder_backend", None),
        chunk_tokens=getattr(args, "chunk_tokens", None),
        chunk_overlap=getattr(args, "chunk_overlap", None),
        index_type=getattr(args, "index_type", None),
        reranker=getattr(args, "reranker", None),
        ray_address=getattr(args, "ray", None),
        ray_workers=getattr(args, "ray_workers", None),
        backend=getattr(args, "backend", None),
        milvus_uri=getattr(args, "milvus_uri", None),
    )


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _summary_text(summary: IndexSummary, index_dir: Path) -> str:
    lines = [
        f"Indexed into {index_dir} in {summary.seconds:.1f} s: "
        f"{summary.added} added, {summary.updated} updated, {summary.unchanged} unchanged, "
        f"{summary.removed} removed" + (f", {summary.moved} moved (same ids)." if summary.moved else "."),
        f"The index holds {counted(summary.documents, 'document')} in {counted(summary.chunks, 'chunk')}; "
        f"{counted(summary.embedded, 'chunk')} {'was' if summary.embedded == 1 else 'were'} embedded this run.",
    ]
    if summary.copies:
        lines.append(
            f"{counted(summary.copies, 'new document')} {'is a copy' if summary.copies == 1 else 'are copies'} of "
            "an article already indexed (syndicated): results show one copy and list the others."
        )
    if summary.skipped:
        lines.append(f"Skipped {len(summary.skipped)}:")
        lines.extend(f"  {s.path}: {s.reason}" for s in summary.skipped)
    return "\n".join(lines)


def cmd_index(args: argparse.Namespace) -> int:
    config = _config(args)
    if not args.paths and not args.rebuild:
        raise ConfigError("name at least one PATH to index, or use --rebuild")
    progress = False if args.no_progress else None
    with RAG.open(config=config, rebuild=args.rebuild) as rag:
        if args.rebuild:
            summary = rag.rebuild(progress=progress)
            if not args.json:
                print(_summary_text(summary, rag.dir))
        if args.paths:
            summary = rag.index(args.paths, progress=progress)
            if not args.json:
                print(_summary_text(summary, rag.dir))
        if not args.json and rag.ray is not None and rag.ray.actor_count:
            print(f"Embedded on the Ray cluster at {rag.ray.address} by {counted(rag.ray.actor_count, 'worker')}.")
    if args.json:
        _print_json(summary.to_json())
    # A path that does not exist, or a URL named here that could not be fetched, is a partial
    # run; a bad file in a folder or a dead link in a feed is reported and is not.
    named = set(args.paths)
    missing = [
        s for s in summary.skipped if s.reason == "no such file or folder" or (is_url(s.path) and s.path in named)
    ]
    return EXIT_PARTIAL if missing else EXIT_OK


def parse_duration(text: str) -> float:
    """Seconds in "90", "90s", "5m", "1.5h" or "1d"; at least one second."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if not match:
        raise ConfigError(f"--every {text!r} is not a duration; write it like 90s, 5m, 1h or 1d")
    seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    if seconds < 1:
        raise ConfigError(f"--every {text!r} is under a second; wait at least 1s between runs")
    return seconds


def cmd_watch(args: argparse.Namespace) -> int:
    every = parse_duration(args.every)
    config = _config(args)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (a service manager) stops as Ctrl-C does

    signal.signal(signal.SIGTERM, stop)
    reported: set[tuple[str, str]] = set()
    runs = 0
    try:
        with RAG.open(config=config) as rag:
            if not args.json:
                print(f"Watching {counted(len(args.paths), 'source')} every {args.every}; Ctrl-C stops.", flush=True)
            while True:
                summary = rag.index(args.paths, progress=False)
                runs += 1
                problems = {(s.path, s.reason) for s in summary.skipped}
                if args.json:
                    print(json.dumps({"run": runs, "at": _clock(), **summary.to_json()}), flush=True)
                elif runs == 1 or summary.added or summary.updated or summary.removed or summary.moved:
                    print(
                        f"[{_clock()}] {summary.added} added, {summary.updated} updated, "
                        f"{summary.unchanged} unchanged, {summary.removed} removed; "
                        f"{counted(summary.embedded, 'chunk')} embedded; the index holds "
                        f"{counted(summary.documents, 'document')}"
                        + (f" ({summary.copies} new copies of indexed articles)" if summary.copies else ""),
                        flush=True,
                    )
                if not args.json:
                    # A problem is said once, and again only after it went away and came back.
                    for path, reason in sorted(problems - reported):
                        print(f"[{_clock()}] skipped {path}: {reason}", flush=True)
                reported = problems
                time.sleep(every)
    except KeyboardInterrupt:
        print(f"rag: stopped watching after {counted(runs, 'run')}; the index is consistent", file=sys.stderr)
        return EXIT_OK


def _clock() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def cmd_list(args: argparse.Namespace) -> int:
    filters = Filters.parse(args.since, args.until, (), args.source)
    with RAG.open(config=_config(args), read_only=True) as rag:
        limit = None if args.all else args.limit
        total, docs = rag.documents(filters, args.title, args.sort, limit, args.offset)
    if args.json:
        _print_json({"total": total, "offset": args.offset, "documents": [d.to_json() for d in docs]})
        return EXIT_OK
    if not docs:
        print("No document matches those filters." if total or filters.active or args.title else
              "The index holds no documents yet; add some with `rag index PATH`.")  # fmt: skip
        return EXIT_OK
    width = max(len(d.id) for d in docs)
    for d in docs:
        print(f"{d.id:<{width}}  {d.date or 'no date':<10}  {d.title}")
        print(
            f"{'':<{width}}  {counted(d.chunks, 'chunk')} · indexed {d.indexed_at[:16].replace('T', ' ')} · {d.source}"
        )
    last = args.offset + len(docs)
    more = f"; the next page: --offset {last}" if last < total else ""
    print(f"\n{args.offset + 1}–{last} of {counted(total, 'document')}{more}")
    return EXIT_OK


def _doc_ids(rag: RAG, refs: Sequence[str]) -> list[str]:
    """--doc values as document ids: each may be an id, a path or the start of a title."""
    return [doc_id for ref in refs for doc_id in rag.resolve(ref)]


def cmd_remove(args: argparse.Namespace) -> int:
    with RAG.open(config=_config(args), create=False) as rag:
        removed = rag.remove(args.target)
    if args.json:
        _print_json({"removed": removed})
    else:
        print(f"Removed {counted(len(removed), 'document')}: {', '.join(removed)}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    with RAG.open(config=_config(args), read_only=True) as rag:
        doc = rag.document(args.doc_id)
    if args.json:
        _print_json({"doc_id": doc.id, "title": doc.title, "source": doc.source, "date": doc.date, "text": doc.text})
    else:
        print(f"{doc.title}\n{doc.date or 'no date'} · {doc.source}\n\n{doc.text}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    with RAG.open(config=_config(args), read_only=True) as rag:
        status = rag.status()
    if args.json:
        _print_json(status)
    else:
        width = max(len(k) for k in status)
        for key, value in status.items():
            if key == "bytes":
                value = ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in value.items())
            print(f"{key.replace('_', ' '):<{width}}  {value}")
    return EXIT_OK


def cmd_gc(args: argparse.Namespace) -> int:
    with RAG.open(config=_config(args), create=False) as rag:
        freed = rag.collect_garbage()
    if args.json:
        _print_json(freed)
    else:
        print(
            f"Dropped {freed['cached_vectors']} cached vectors, {freed['upload_files']} upload files and "
            f"{freed['temporary_files']} temporary files that nothing uses."
        )
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    with RAG.open(config=_config(args), read_only=True) as rag:
        passages = rag.search(
            args.question,
            k=args.k,
            mode=args.mode,
            since=args.since,
            until=args.until,
            doc_ids=_doc_ids(rag, args.doc),
            sources=args.source,
            max_per_doc=args.max_per_doc,
            neighbours=args.context,
        )
    if args.json:
        _print_json([p.to_json() for p in passages])
        return EXIT_OK
    if not passages:
        print("No passage matches; try other words, or widen the filters.")
    for p in passages:
        print(f"{p.rank}. {p.title} ({p.date or 'no date'})  score {p.score:.3f}")
        print(f"   {p.doc_id} [{p.start}:{p.end}]")
        if p.also:
            print(textwrap.fill(also_line(p.also), width=96, initial_indent="   ", subsequent_indent="     "))
        body = p.context if p.context is not None else p.text
        print(textwrap.indent(textwrap.fill(" ".join(body.split()), width=96), "   "))
        print()
    return EXIT_OK


def _with_llm(config: Config, args: argparse.Namespace) -> Config:
    given = (("llm_base_url", args.llm_url), ("llm_model", args.llm_model), ("llm_gguf", args.gguf))
    return config.replace(**{key: value for key, value in given if value is not None})


def cmd_completion(args: argparse.Namespace) -> int:
    import shtab

    print(shtab.complete(build_parser(), shell=args.shell))
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from ui.app import serve
    from ui.service import collection_name

    raw = args.auth or os.environ.get("RAG_AUTH")
    auth = None
    if raw:
        user, sep, password = raw.partition(":")
        if not sep or not user or not password:
            raise ConfigError("--auth / RAG_AUTH must look like USER:PASSWORD")
        auth = (user, password)
    config = _with_llm(_config(args), args)
    # An empty or missing index folder is fine: the first upload creates the index.
    configs = {collection_name(config.index_dir): config}
    for given in args.collection:
        name, sep, folder = given.partition("=")
        if not sep or not name or not folder or not re.fullmatch(r"[\w.-]+", name):
            raise ConfigError(f"--collection {given!r} must look like NAME=FOLDER (NAME of letters, digits, . _ -)")
        if name in configs:
            raise ConfigError(f"--collection {name} is given twice (or is the --index-dir's own name)")
        configs[name] = config.replace(index_dir=Path(folder).expanduser())
    _check_port_free(args.host, args.port)
    serve(configs, host=args.host, port=args.port, auth=auth)
    return EXIT_OK


def _check_port_free(host: str, port: int) -> None:
    """Say which port is taken and how to choose another, instead of Gradio's traceback."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the server itself binds: a port a stopped server left in TIME_WAIT is free to use,
        # one that something listens on is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror}); another program, perhaps another "
                "`rag serve`, uses it: stop it or choose another port with --port"
            ) from exc


def cmd_eval(args: argparse.Namespace) -> int:
    from eval.questions import load_questions
    from eval.report import cell as fmt
    from eval.report import compare, write_run
    from eval.runner import as_negatives, choose, run

    if args.compare:
        print(compare(*args.compare))
        return EXIT_OK
    if args.file is None:
        raise ConfigError("name a question set FILE (SQuAD .json or .jsonl), or use --compare RUN_A RUN_B")
    for name in ("limit", "sample", "negatives_n"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} {value} must be 1 or more")
    qset = load_questions(args.file)
    questions = choose(qset.questions, args.limit, args.sample, args.seed)
    if args.negatives:
        questions += as_negatives(load_questions(args.negatives), args.negatives_n, args.seed)
    progress = False if args.no_progress else None
    with RAG.open(config=_config(args), read_only=not qset.documents) as rag:
        if qset.documents:
            summary = rag.index_documents(qset.documents, progress=progress)
            if not args.json:
                print(f"Documents: {summary.added} added, {summary.updated} updated, {summary.unchanged} unchanged; "
                      f"{counted(summary.embedded, 'chunk')} embedded.")  # fmt: skip
        result = run(rag, questions, args.answerer, progress, (qset.reanchored, qset.unanchored))
    if args.out:
        written = write_run(result, args.out, args.file.name)
        if not args.json:
            print("Wrote " + ", ".join(str(p) for p in written))
    if args.json:
        _print_json(result.summary)
    else:
        s = result.summary
        r, a, c, n = s["retrieval"], s["answer"], s["citations"], s["no_answer"]
        print(f"{s['n']} questions. Retrieval: " + ", ".join(f"{k} {fmt(v)}" for k, v in r.items()))
        print(f"Answers: EM {fmt(a['em'])}, F1 {fmt(a['f1'])}, contains gold {fmt(a['contains'])}. "
              f"Citations: precision {fmt(c['precision'])}, recall {fmt(c['recall'])}. "
              f"No-answer: precision {fmt(n['precision'])}, recall {fmt(n['recall'])}.")  # fmt: skip
        print(f"Latency of ask: p50 {s['latency_ms']['p50']} ms, p95 {s['latency_ms']['p95']} ms; "
              f"evaluation overhead {fmt(s['seconds']['overhead_share'])} of {s['seconds']['wall']} s.")  # fmt: skip
    return EXIT_OK


def _asker(rag: RAG, args: argparse.Namespace) -> Callable[[str, Conversation], Answer]:
    """Ask with the command line's answerer, retrieval settings and filters."""
    filters = Filters.parse(args.since, args.until, _doc_ids(rag, args.doc), args.source)

    def ask(question: str, conversation: Conversation) -> Answer:
        return rag.ask(
            question,
            history=conversation.history,
            answerer=args.answerer,
            filters=filters,
            mode=args.mode,
            k=args.k,
            max_per_doc=args.max_per_doc,
        )

    return ask


def cmd_ask(args: argparse.Namespace) -> int:
    config = _with_llm(_config(args), args)
    # Read the history first: a bad file fails before the model loads.
    conversation = read_conversation(args.history) if args.history else Conversation(())
    with RAG.open(config=config, read_only=True) as rag:
        answer = _asker(rag, args)(args.question, conversation)
    if args.history:
        write_conversation(args.history, conversation.adding(answer.to_json()))
    if args.json:
        _print_json(answer.to_json())
    else:
        print_answer(answer, sys.stdout, args.show_prompt)
    return EXIT_OK


def cmd_chat(args: argparse.Namespace) -> int:
    config = _with_llm(_config(args), args)
    with RAG.open(config=config, read_only=True) as rag:
        chat(rag, _asker(rag, args), sys.stdin, sys.stdout)
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "index": cmd_index,
    "watch": cmd_watch,
    "list": cmd_list,
    "remove": cmd_remove,
    "show": cmd_show,
    "status": cmd_status,
    "gc": cmd_gc,
    "search": cmd_search,
    "ask": cmd_ask,
    "chat": cmd_chat,
    "serve": cmd_serve,
    "completion": cmd_completion,
    "eval": cmd_eval,
}

# Errors a user can fix; anything else is a bug and keeps its traceback.
USER_ERRORS = (
    ConfigError, EvalError, IndexMismatchError, LLMError, ModelLoadError, NoIndexError, NotFoundError, SearchError,
    RerankerError, AmbiguousError, HistoryError,
    StoreError, RayError, MilvusError,
)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format="rag: %(message)s", level=logging.WARNING)
    args = build_parser().parse_args(argv)
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
