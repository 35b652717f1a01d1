"""What a terminal shows: an answer with its citations, a document around a cited span, and
`rag chat`, the interactive conversation (the model loads once, then every question is quick).
"""

from __future__ import annotations

import contextlib
import os
import sys
import textwrap
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

from rag.answering.time_words import news_date
from rag.api import RAG
from rag.chat.transcript import Conversation, to_markdown, write_conversation
from rag.search.query import SearchError
from rag.types import Answer, Citation, Copy, Timeline
from rag.wording import counted

AROUND = 600  # characters shown each side of a cited span by /open


def bold(stream: TextIO) -> tuple[str, str]:
    """ANSI bold on a terminal, Markdown's ** when piped."""
    return ("\033[1m", "\033[0m") if stream.isatty() else ("**", "**")


def print_answer(answer: Answer, out: TextIO, show_prompt: bool = False) -> None:
    """The answer, its phrase in bold, warnings, then each citation with its quote."""
    if show_prompt and answer.prompt:
        print(answer.prompt, end="\n\n---\n\n", file=out)
    on, off = bold(out)
    if answer.answer_span is not None:
        print(f"Answer: {on}{' '.join(answer.answer_span.text.split())}{off}\n", file=out)
    for line in answer.marked(on, off).splitlines():  # a list from an LLM keeps its lines
        print(textwrap.fill(line, width=100, break_on_hyphens=False), file=out)
    if not answer.answerable:
        print("\n(answerable: no; the closest passages were:)", file=out)
        for p in answer.passages[:3]:
            print(f"  - {p.title} ({p.date or 'no date'}): {textwrap.shorten(p.text, 90)}", file=out)
    else:
        for sentence in answer.flagged:
            why = "cites nothing" if not sentence.cited else f"weakly supported ({sentence.support:.2f})"
            print(f"  ! {why}: {textwrap.shorten(sentence.text, 80)}", file=out)
        print(file=out)
        print_citations(answer.citations, out, {p.doc_id: p.also for p in answer.passages if p.also})
    if answer.query != answer.question:
        print(f"\n(searched for: {answer.query})", file=out)


def print_timeline(found: Timeline, out: TextIO) -> None:
    """A story's reports, oldest first: date and outlet, the quote with changed figures in bold."""
    on, off = bold(out)
    first, last = found.entries[0].citation.date, found.entries[-1].citation.date
    # Headed by the newest report that speaks to the query best.
    head = max((e for e in found.entries if e.citation.date == last), key=lambda e: e.relevance).citation.title
    print(f"{head}: {counted(len(found.entries), 'report')}, "
          f"{news_date(first)} to {news_date(last)}\n", file=out)  # fmt: skip
    for entry in found.entries:
        c = entry.citation
        also = f" · also published by {', '.join(entry.also)}" if entry.also else ""
        print(f"{news_date(c.date)} · {entry.site}{also}", file=out)
        quote, shift = c.quote, 0
        for a, b in entry.changed:
            quote = f"{quote[: a + shift]}{on}{quote[a + shift : b + shift]}{off}{quote[b + shift :]}"
            shift += len(on) + len(off)
        print(textwrap.indent(textwrap.fill(f"“{quote}” [{c.n}]", width=96), "    "), file=out)
        if entry.changed:
            print(f"    changed: {', '.join(c.quote[a:b] for a, b in entry.changed)}", file=out)
    if found.silent:
        print(f"Also in this story, saying nothing on it: {', '.join(found.silent)}", file=out)
    print(file=out)
    for entry in found.entries:
        print(citation_line(entry.citation), file=out)


def citation_line(c: Citation) -> str:
    """Which document a citation quotes, and where: "[1] Title (date) · source · chars a-b"."""
    return f"[{c.n}] {c.title} ({c.date or 'no date'}) · {c.source} · chars {c.start}-{c.end}"


def print_citations(
    citations: tuple[Citation, ...], out: TextIO, copies: Mapping[str, tuple[Copy, ...]] | None = None
) -> None:
    for c in citations:
        print(citation_line(c), file=out)
        if copies and copies.get(c.doc_id):
            print(textwrap.indent(also_line(copies[c.doc_id]), "    "), file=out)
        print(textwrap.indent(textwrap.fill(f"“{c.quote}”", width=96), "    "), file=out)


def also_line(copies: tuple[Copy, ...]) -> str:
    """ "also published by: Global Wire (https://...), The Valley Courier (https://...)" """
    return "also published by: " + ", ".join(f"{c.site} ({c.source})" for c in copies)


def span_in_context(text: str, start: int, end: int, out: TextIO, around: int = AROUND) -> str:
    """The document around ``text[start:end]``, the span marked, cut at whitespace."""
    on, off = bold(out)
    left = max(0, start - around)
    right = min(len(text), end + around)
    if left > 0 and (space := text.find(" ", left, start)) != -1:
        left = space + 1
    if right < len(text) and (space := text.rfind(" ", end, right)) != -1:
        right = space
    before = ("…" if left > 0 else "") + text[left:start]
    after = text[end:right] + ("…" if right < len(text) else "")
    return f"{before}{on}{text[start:end]}{off}{after}"


HELP = """Ask a question, or:
  /sources        the passages the last answer drew on
  /open N         the document of citation [N], around the cited words
  /save FILE      save the conversation (.md: a readable transcript; else JSON, for --history)
  /new            start a new conversation (earlier questions no longer count)
  /help           this list
  /quit           leave (Ctrl-D too)"""


class ChatSession:
    """One conversation at a terminal. ``ask`` runs a question; ``command`` runs a /command."""

    def __init__(self, rag: RAG, out: TextIO, ask: Callable[[str, Conversation], Answer], echo: bool = False) -> None:
        self.rag = rag
        self.out = out
        self.echo = echo  # print each line read, so a piped transcript shows what was asked
        self._ask = ask
        self.conversation = Conversation(())
        self.last: Answer | None = None

    def handle(self, line: str) -> bool:
        """Run one line; False once the person asked to leave."""
        line = line.strip()
        if not line:
            return True
        if self.echo:
            print(f"> {line}", file=self.out)
        if line.startswith("/"):
            return self.command(line)
        try:
            answer = self._ask(line, self.conversation)
        except SearchError as exc:
            print(f"rag: {exc}", file=self.out)
            return True
        self.last = answer
        self.conversation = self.conversation.adding(answer.to_json())
        print_answer(answer, self.out)
        print(file=self.out)
        return True

    def command(self, line: str) -> bool:
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        if name in {"/quit", "/exit", "/q"}:
            return False
        if name == "/help":
            print(HELP, file=self.out)
        elif name == "/new":
            self.conversation, self.last = Conversation(()), None
            print("A new conversation: earlier questions no longer count.", file=self.out)
        elif name == "/sources":
            self.sources()
        elif name == "/open":
            self.open(arg)
        elif name == "/save":
            self.save(arg)
        else:
            print(f"{name} is not a command; /help lists them.", file=self.out)
        return True

    def sources(self) -> None:
        if self.last is None:
            print("No answer yet: ask a question first.", file=self.out)
            return
        for p in self.last.passages:
            print(f"{p.rank}. {p.title} ({p.date or 'no date'}) · {p.source} · chars {p.start}-{p.end}", file=self.out)
            if p.also:
                print(f"   {also_line(p.also)}", file=self.out)
            print(textwrap.indent(textwrap.fill(" ".join(p.text.split()), width=96), "   "), file=self.out)

    def open(self, arg: str) -> None:
        citations = self.last.citations if self.last else ()
        if not citations:
            print("The last answer cites nothing to open.", file=self.out)
            return
        if not arg.isdigit() or not 1 <= int(arg) <= len(citations):
            print(f"Give a citation number from 1 to {len(citations)}: /open 1", file=self.out)
            return
        c = citations[int(arg) - 1]
        text = self.rag.document(c.doc_id).text
        print(citation_line(c) + "\n", file=self.out)
        for line in span_in_context(text, c.start, c.end, self.out).split("\n"):  # paragraphs stay apart
            print(textwrap.fill(line, width=100), file=self.out)

    def save(self, arg: str) -> None:
        if not arg:
            print("Name a file: /save chat.json (for --history) or /save chat.md (to read)", file=self.out)
            return
        path = Path(arg).expanduser()
        try:
            if path.suffix.lower() == ".md":
                path.write_text(to_markdown(self.conversation), encoding="utf-8")
            else:
                write_conversation(path, self.conversation)
        except OSError as exc:
            print(f"Could not save to {path}: {exc.strerror or exc}", file=self.out)
            return
        print(f"Saved {counted(len(self.conversation.turns), 'turn')} to {path}", file=self.out)


def _line_editing() -> Callable[[], None]:
    """Arrow keys, Ctrl-R and a history kept between sessions; returns what saves it."""
    try:
        import readline
    except ImportError:  # not every Python has it; input() still works
        return lambda: None
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "rag"
    history = state / "chat_history"
    with contextlib.suppress(OSError):  # none yet
        readline.read_history_file(history)
    readline.set_history_length(1000)

    def save() -> None:
        try:
            state.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(history)
        except OSError:
            pass

    return save


def chat(rag: RAG, ask: Callable[[str, Conversation], Answer], stdin: TextIO, out: TextIO) -> None:
    """The read-answer loop. Prompts and line editing only when both ends are a terminal, so
    `rag chat < questions.txt` prints answers alone."""
    interactive = stdin.isatty() and out.isatty()
    counts = rag.store.counts()
    print(
        f"Ask about {counted(counts['documents'], 'document')} in {rag.dir}. /help lists commands; "
        "Ctrl-D or /quit leaves.",
        file=sys.stderr,
    )
    started = time.perf_counter()
    print("Loading the model…", end="", file=sys.stderr, flush=True)
    rag.warm_up()
    print(f" ready ({time.perf_counter() - started:.1f} s).", file=sys.stderr)
    save_history = _line_editing() if interactive else (lambda: None)
    session = ChatSession(rag, out, ask, echo=not interactive)
    try:
        while True:
            try:
                line = input("you> ") if interactive else stdin.readline()
            except EOFError:
                break
            if not interactive and not line:
                break
            if not session.handle(line):
                break
    except KeyboardInterrupt:
        pass
    finally:
        save_history()
        if interactive:
            print(file=out)
