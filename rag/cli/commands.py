"""What each ``rag`` command does, over the ``rag.api.RAG`` facade: one function per command,
taking the parsed arguments and returning the exit status."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rag.answering.time_words import news_date
from rag.api import RAG
from rag.chat.transcript import Conversation, read_conversation, write_conversation
from rag.cli.console import also_line, chat, print_answer, print_timeline
from rag.cli.parser import build_parser
from rag.config import Config, ConfigError
from rag.ingest import dates, stories
from rag.ingest.indexer import ALREADY_INDEXED
from rag.ingest.web import is_url
from rag.search.query import Filters
from rag.types import Answer, IndexSummary
from rag.wording import counted

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


def config_from_args(args: argparse.Namespace) -> Config:
    return Config.load(
        file=args.config,
        index_dir=args.index_dir,
        model=getattr(args, "model", None),
        encoder_backend=getattr(args, "encoder_backend", None),
        chunk_tokens=getattr(args, "chunk_tokens", None),
        chunk_overlap=getattr(args, "chunk_overlap", None),
        index_type=getattr(args, "index_type", None),
        reranker=getattr(args, "reranker", None),
        reader=getattr(args, "reader", None),
        ray_address=getattr(args, "ray", None),
        ray_workers=getattr(args, "ray_workers", None),
        backend=getattr(args, "backend", None),
        milvus_uri=getattr(args, "milvus_uri", None),
        shared_conversations=getattr(args, "shared_conversations", None),
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
    config = config_from_args(args)
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
        ray = rag.parts.ray
        if not args.json and ray is not None and ray.actor_count:
            print(f"Embedded on the Ray cluster at {ray.address} by {counted(ray.actor_count, 'worker')}.")
    if args.json:
        _print_json(summary.to_json())
    # A path that does not exist, or a URL named here that could not be fetched, is a partial
    # run; a bad file in a folder or a dead link in a feed is reported and is not.
    named = set(args.paths)
    missing = [
        s for s in summary.skipped if s.reason == "no such file or folder" or (is_url(s.path) and s.path in named)
    ]
    # Files were named and every one failed (unreadable, empty, unsupported): as a missing folder.
    failed = [s for s in summary.skipped if not s.reason.startswith(ALREADY_INDEXED)]
    found = summary.added + summary.updated + summary.unchanged + summary.moved
    if args.paths and failed and len(failed) == len(summary.skipped) and not found:
        if not args.json:
            print(f"Nothing could be indexed: {'the file was' if len(failed) == 1 else 'every file was'} skipped.",
                  file=sys.stderr)  # fmt: skip
        return EXIT_PARTIAL
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
    config = config_from_args(args)

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
                    print(f"[{_clock()}] {watch_line(summary)}", flush=True)
                if not args.json:
                    # A problem is said once, and again only after it went away and came back.
                    for path, reason in sorted(problems - reported):
                        print(f"[{_clock()}] skipped {path}: {reason}", flush=True)
                reported = problems
                time.sleep(every)
    except KeyboardInterrupt:
        print(f"rag: stopped watching after {counted(runs, 'run')}; the index is consistent", file=sys.stderr)
        return EXIT_OK


def watch_line(summary: IndexSummary) -> str:
    """What one `rag watch` run did: "1 added, ...; 1 chunk embedded; ... (1 new copy of an
    indexed article)"."""
    copies = ""
    if summary.copies == 1:
        copies = " (1 new copy of an indexed article)"
    elif summary.copies:
        copies = f" ({summary.copies} new copies of indexed articles)"
    return (
        f"{summary.added} added, {summary.updated} updated, {summary.unchanged} unchanged, {summary.removed} removed; "
        f"{counted(summary.embedded, 'chunk')} embedded; the index holds {counted(summary.documents, 'document')}"
        + copies
    )


def _clock() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def cmd_list(args: argparse.Namespace) -> int:
    filters = Filters.parse(args.since, args.until, (), args.source)
    with RAG.open(config=config_from_args(args), read_only=True) as rag:
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
    with RAG.open(config=config_from_args(args), create=False) as rag:
        removed = rag.remove(args.target)
    if args.json:
        _print_json({"removed": removed})
    else:
        print(f"Removed {counted(len(removed), 'document')}: {', '.join(removed)}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    with RAG.open(config=config_from_args(args), read_only=True) as rag:
        doc = rag.document(args.doc_id)
        versions = rag.versions(doc.id)
    story = stories.relations(doc.id, versions)
    if args.json:
        _print_json({
            "doc_id": doc.id, "title": doc.title, "source": doc.source, "date": doc.date,
            "date_source": doc.meta.get("date_source") or None, "published": doc.meta.get("published"),
            "date_notes": doc.meta.get("date_notes", []), "site": doc.meta.get("site"),
            "story": [{"doc_id": i, "relation": r, "date": d, "title": t, "site": s} for i, r, d, t, s in story],
            "text": doc.text,
        })  # fmt: skip
        return EXIT_OK
    print(doc.title)
    print(f"{dates.describe(doc.date, doc.meta)} · {doc.source}")
    if doc.meta.get("site"):
        print(f"published by {doc.meta['site']}")
    if story:
        print(f"story: {counted(len(story) + 1, 'report')}")
        for other, relation, when, title, site in story:
            print(f"  {relation} {news_date(when)}: {title} ({site}; {other})")
    print(f"\n{doc.text}")
    return EXIT_OK


def cmd_timeline(args: argparse.Namespace) -> int:
    filters = Filters.parse(args.since, args.until, (), args.source)
    with RAG.open(config=config_from_args(args), read_only=True) as rag:
        found = rag.timeline(args.query, filters)
    if args.json:
        _print_json(found.to_json())
        return EXIT_OK
    if not found.entries:
        print(f'No story in the index answers "{args.query}"; try other words, or `rag search`.')
        return EXIT_OK
    print_timeline(found, sys.stdout)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    with RAG.open(config=config_from_args(args), read_only=True) as rag:
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
    with RAG.open(config=config_from_args(args), create=False) as rag:
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
    with RAG.open(config=config_from_args(args), read_only=True) as rag:
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
    config = _with_llm(config_from_args(args), args)
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
    with RAG.open(config=config_from_args(args), read_only=not qset.documents) as rag:
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
        print(f"Answers: EM {fmt(a['em'])}, F1 {fmt(a['f1'])} (on the answer phrase where marked; on the sentences: "
              f"EM {fmt(a['em_sentence'])}, F1 {fmt(a['f1_sentence'])}), contains gold {fmt(a['contains'])}. "
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
    config = _with_llm(config_from_args(args), args)
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
    config = _with_llm(config_from_args(args), args)
    with RAG.open(config=config, read_only=True) as rag:
        chat(rag, _asker(rag, args), sys.stdin, sys.stdout)
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "index": cmd_index,
    "watch": cmd_watch,
    "list": cmd_list,
    "remove": cmd_remove,
    "show": cmd_show,
    "timeline": cmd_timeline,
    "status": cmd_status,
    "gc": cmd_gc,
    "search": cmd_search,
    "ask": cmd_ask,
    "chat": cmd_chat,
    "serve": cmd_serve,
    "completion": cmd_completion,
    "eval": cmd_eval,
}
