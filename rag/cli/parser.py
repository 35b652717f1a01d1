"""The ``rag`` command line's arguments: every command, option, default and help text.
Completion scripts (``rag completion``) are generated from this parser by shtab."""

from __future__ import annotations

import argparse
import importlib.metadata
from pathlib import Path

from embeddings.encoder import BACKENDS
from rag.config import ANSWERERS, INDEX_TYPES, SEARCH_BACKENDS
from rag.storage.store import LIST_ORDERS

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
    parser.add_argument(
        "--verbose", action="store_true", help="also print the warnings of the libraries that read files (pypdf, ...)"
    )


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

    show = commands.add_parser(
        "show",
        help="print one document, where its date came from, and the other reports of its story",
        description=(
            "Prints the document's title, date (and whether it came from a printed Published or "
            "Updated line, the dateline, front matter or file metadata), publisher, the other "
            "documents of its story (updates, same-day reports, syndicated copies), then its text."
        ),
    )
    show.add_argument("doc_id", metavar="DOC", help="a document id, its file's path, or the start of its title")
    _common(show)

    timeline = commands.add_parser(
        "timeline",
        help="how a story developed: one dated, cited sentence per report, oldest to newest",
        description=(
            "Finds the story that answers QUERY and quotes, for each of its reports (updates and "
            "other outlets' reports; syndicated copies are named under the report they copy), the "
            "sentence that speaks to QUERY, oldest to newest, with the figures that changed since "
            "the report before marked."
        ),
    )
    timeline.add_argument("query", metavar="QUERY", help='what to follow, e.g. "How many workers are on the tunnel?"')
    _filter_options(timeline, passages=False)
    _reader_option(timeline)
    _common(timeline)

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
    _reader_option(evaluate)
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
    serve.add_argument("--port", type=_port, default=7860, help="port (default 7860; 0: any free one, printed)")
    serve.add_argument("--auth", metavar="USER:PASSWORD", help="require this login (default: $RAG_AUTH, else none)")
    serve.add_argument(
        "--shared-conversations", action="store_const", const=True, default=None,
        help="without --auth: one list of saved conversations for every browser (default: each browser its own)",
    )  # fmt: skip
    serve.add_argument("--llm-url", help="OpenAI-compatible base URL, to offer the llm answerer")
    serve.add_argument("--llm-model", help="model name to send to that server")
    serve.add_argument("--gguf", help="a GGUF file (or 'smollm2') to offer the llm answerer in-process")
    serve.add_argument(
        "--reranker", metavar="MODEL", help="a CrossEncoder (name or folder) to re-score candidates (default: off)"
    )
    _reader_option(serve)
    _common(serve)
    return parser


def _reader_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reader", metavar="FOLDER",
        help="the reader that picks answer sentences: 'shipped' (default), a folder made by "
        "`python -m eval.train_reader`, or 'none' for the built-in scoring",
    )  # fmt: skip


def _port(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535, said plainly instead of a traceback from bind()."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port; give 0 to 65535 (0: any free port)")
    return port


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
    _reader_option(parser)
