"""HTML for the web chat. Every piece of document or answer text goes through ``html.escape``:
an article containing ``<script>`` shows those characters and runs nothing."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import quote, unquote

from rag.answering.llm import is_table_row
from rag.types import Answer, AnswerSentence, AnswerSpan, Citation, Passage
from ui.assets import CSS, HEAD

__all__ = ["CSS", "HEAD", "answer_message", "document_html", "library_html", "sources_html", "streaming_message"]


_HEADING = re.compile(r"(^|<br>)#{1,6} ")


def _lines(text: str, headings: bool = False) -> str:
    """Escaped text whose line breaks show; a blank line cannot end the surrounding HTML block
    (where the chat would start reading Markdown and show backslashes and #s literally). With
    ``headings``, a Markdown heading's leading #s are not shown (display only: offsets keep
    pointing into the stored text)."""
    html = escape(text).replace("\n", "<br>")
    return _HEADING.sub(r"\1", html) if headings else html


def answer_key(answer: Answer) -> str:
    """A short id for one answer, so its [n] links find its own source cards."""
    return hashlib.sha1(f"{answer.question}\x1f{answer.text}".encode()).hexdigest()[:8]


def _target(doc_id: str, start: int, end: int) -> str:
    return f"{quote(doc_id, safe='')}/{start}/{end}"


def parse_target(target: str) -> tuple[str, int, int] | None:
    """(doc_id, start, end) from a link's target, or None if it is not one."""
    parts = target.rsplit("/", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return unquote(parts[0]), int(parts[1]), int(parts[2])


# Emphasis an LLM writes, applied after escaping, so only these tags can come out of it.
_STRONG = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_EM = re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?!\*)")
_CODE = re.compile(r"`([^`]+)`")


def _inline(text: str) -> str:
    """Escaped text with Markdown emphasis and code turned into <strong>, <em> and <code>."""
    html = escape(text)
    html = _CODE.sub(r"<code>\1</code>", html)
    html = _STRONG.sub(lambda m: f"<strong>{m.group(1) or m.group(2)}</strong>", html)
    return _EM.sub(r"<em>\1</em>", html)


def _marker(key: str, citation: Citation | None, n: int) -> str:
    """[n] as a link: to its source card (the page's script scrolls there, or opens the
    document at the span when the card belongs to an older answer), the quote as its preview."""
    if citation is None:
        return f"<sup>[{n}]</sup>"
    href = f"#rag-cite/{key}/{n}/{_target(citation.doc_id, citation.start, citation.end)}"
    preview = escape(f"{citation.title}: “{_spaced(citation.quote)}”", quote=True)
    return f'<sup><a class="rag-cite" href="{href}" title="{preview}">[{n}]</a></sup>'


def _sentence_html(sentence: AnswerSentence, text_html: str, markers: str = "") -> str:
    flag = ""
    if not sentence.cited:
        flag = ' <span class="flag" title="no citation">⚠ uncited</span>'
    elif not sentence.supported:
        flag = f' <span class="flag" title="support {sentence.support:.2f}">⚠ not supported by its source</span>'
    return f"{text_html}{markers}{flag}"


def answer_message(answer: Answer) -> str:
    """The assistant's chat message: the answer with [n] links, the answer phrase in bold,
    lists as lists, visible flags, and a Copy link that copies clean text with its sources."""
    if not answer.answerable:
        return f'<div class="rag-not-found">{_lines(answer.text)}</div>{_searched(answer)}'
    key = answer_key(answer)
    by_n = {c.n: c for c in answer.citations}
    span = answer.answer_span
    if answer.over_time:
        return _over_time_html(answer, key, by_n, span)
    blocks: list[str] = []  # paragraphs and list items, in order
    items: list[str] = []
    rows: list[list[str]] = []  # a Markdown table's rows, cells already escaped
    ordered = False
    for sentence in answer.sentences:
        markers = "".join(_marker(key, by_n.get(n), n) for n in sentence.citations)
        if is_table_row(sentence.text):
            cells = [_inline(cell.strip()) for cell in sentence.text.strip().strip("|").split("|")]
            rows.append([*cells[:-1], cells[-1] + markers])
            continue
        if rows:
            blocks.append(_table(rows))
            rows = []
        if span is not None and span.citation in sentence.citations and span.text in sentence.text:
            text_html = _phrase_html(sentence, span)
        else:
            text_html = _inline(_spaced(sentence.text))
        html = _sentence_html(sentence, text_html, markers)
        if sentence.bullet:
            ordered = sentence.bullet[0].isdigit()
            items.append(html)
        elif items:
            items[-1] += " " + html  # a second sentence of the same list item
        else:
            blocks.append(html)
    if rows:
        blocks.append(_table(rows))
    body = " ".join(blocks)
    if items:
        tag = "ol" if ordered else "ul"
        body += f"<{tag}>" + "".join(f"<li>{item}</li>" for item in items) + f"</{tag}>"
    copy = f'<span class="rag-copy-text">{escape(copy_text(answer))}</span>'
    tools = '<div class="rag-tools"><a class="rag-copy" href="#rag-copy">Copy</a></div>'
    return f'<div class="rag-answer">{body}{_searched(answer)}{tools}{copy}</div>'


def _searched(answer: Answer) -> str:
    """What retrieval searched for, when a follow-up was rewritten, so a wrong rewrite shows."""
    if answer.query == answer.question:
        return ""
    return f'<div class="rag-searched">searched for: {escape(answer.query)}</div>'


def _spaced(text: str) -> str:
    """A quote's line breaks (a PDF's lines) as spaces: what is shown, not what is cited."""
    return text.replace("\n", " ")


def _phrase_html(sentence: AnswerSentence, span: AnswerSpan | None) -> str:
    if span is not None and span.citation in sentence.citations and span.text in sentence.text:
        before, _, after = sentence.text.partition(span.text)
        phrase = f'<strong class="rag-phrase">{escape(_spaced(span.text))}</strong>'
        return f"{escape(_spaced(before))}{phrase}{escape(_spaced(after))}"
    return escape(_spaced(sentence.text))


def _over_time_html(answer: Answer, key: str, by_n: dict[int, Citation], span: AnswerSpan | None) -> str:
    """A story's versions as a timeline: each line of the answer ("Sept. 18, 2026: ...", "Earlier,
    March 4, 2026: ...", "Bay Times: ..." under "Sources differ on ..."), its date or outlet
    apart, the lead first and marked; a line with no quote (a heading or a note) stands alone."""
    rows = []
    sentences = iter(answer.sentences)
    pending = next(sentences, None)
    for line in answer.text.split("\n"):
        if pending is not None and pending.text in line:
            prefix = line[: line.index(pending.text)].rstrip()
            markers = "".join(_marker(key, by_n.get(n), n) for n in pending.citations)
            rows.append(
                f'<li class="rag-{escape(pending.role)}"><span class="rag-when">{escape(prefix)}</span> '
                f"{_phrase_html(pending, span)}{markers}</li>"
            )
            pending = next(sentences, None)
        else:
            rows.append(f'<li class="rag-heading">{escape(line)}</li>')
    copy = f'<span class="rag-copy-text">{escape(copy_text(answer))}</span>'
    tools = '<div class="rag-tools"><a class="rag-copy" href="#rag-copy">Copy</a></div>'
    timeline = f'<ol class="rag-timeline">{"".join(rows)}</ol>'
    return f'<div class="rag-answer">{timeline}{_searched(answer)}{tools}{copy}</div>'


def _table(rows: list[list[str]]) -> str:
    """The first row is the header (the model's "|---|" rule under it was dropped as wordless)."""
    head = "".join(f"<th>{cell}</th>" for cell in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows[1:])
    return f'<table class="rag-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def copy_text(answer: Answer) -> str:
    """What Copy puts on the clipboard: the answer, then `[1] Title, date: "quote"` lines."""
    lines = [f'[{c.n}] {c.title}, {c.date or "no date"}: "{c.quote}"' for c in answer.citations]
    lines = [" ".join(line.split()) for line in lines]  # a PDF's line breaks inside a quote read as spaces
    return answer.shown() + ("\n\n" + "\n".join(lines) if lines else "")


def streaming_message(text: str) -> str:
    return f'<div class="rag-answer">{_lines(text)} ▌</div>'


def _highlighted(window: str, window_start: int, citation: Citation, phrase: AnswerSpan | None = None) -> str:
    """The window with the cited span marked (and the answer phrase in bold inside it)."""
    start = max(citation.start - window_start, 0)
    end = min(citation.end - window_start, len(window))
    inside = escape(window[start:end])
    if phrase is not None and citation.start <= phrase.start and phrase.end <= citation.end:
        a, b = phrase.start - window_start, phrase.end - window_start
        inside = (f'{escape(window[start:a])}<strong class="rag-phrase">{escape(window[a:b])}</strong>'
                  f"{escape(window[b:end])}")  # fmt: skip
    return _lines(window[:start], headings=True) + f"<mark>{inside}</mark>" + _lines(window[end:], headings=True)


def _short_source(source: str) -> str:
    """A URL as it is; a file path by its name (the full path means nothing to a reader)."""
    return source if "://" in source else source.rsplit("/", 1)[-1]


def document_html(
    title: str, date: str | None, source: str, text: str, span: tuple[int, int] | None, story: list[str] | None = None
) -> str:
    """A whole document for the reader, with the cited span marked (id rag-span, scrolled into
    view), and the other reports of its story ("updated Sept. 18, 2026: ...") under its date."""
    head = (f'<div class="rag-reader"><h3>{escape(title)}</h3><div class="meta">{escape(date or "no date")} · '
            f"{escape(source)}</div>")  # fmt: skip
    if story:
        head += '<ul class="rag-story">' + "".join(f"<li>{escape(line)}</li>" for line in story) + "</ul>"
    if span is None:
        return head + f'<div class="rag-text">{_lines(text, headings=True)}</div></div>'
    start, end = span
    before, inside, after = (_lines(part, headings=True) for part in (text[:start], text[start:end], text[end:]))
    return head + f'<div class="rag-text">{before}<mark id="rag-span">{inside}</mark>{after}</div></div>'


def sources_html(answer: Answer, document_text: Callable[[str], str]) -> str:
    """Each cited document's title, date and source, its passage, the cited span highlighted."""
    if not answer.answerable:
        items = "".join(
            f'<div class="rag-source"><div class="meta">{escape(p.title)} · {escape(p.date or "no date")}</div>'
            f"{escape(p.text)}</div>"
            for p in answer.passages[:3]
        )
        return (
            '<div class="rag-sources"><p class="rag-not-found">Not in the documents. '
            f"The closest passages were:</p>{items}</div>"
        )
    key = answer_key(answer)
    blocks = []
    for c in answer.citations:
        passage = _containing(answer.passages, c)
        if passage is not None:
            window, window_start = passage.text, passage.start
        else:
            text = document_text(c.doc_id)
            window_start = max(0, c.start - 300)
            window = text[window_start : c.end + 300]
        phrase = answer.answer_span if answer.answer_span and answer.answer_span.citation == c.n else None
        open_link = f'<a class="rag-open" href="#rag-open/{_target(c.doc_id, c.start, c.end)}">Open in document</a>'
        blocks.append(
            f'<div class="rag-source" id="source-{key}-{c.n}"><div class="meta"><span class="n">[{c.n}]</span> '
            f"{escape(c.title)} · {escape(c.date or 'no date')} · {escape(_short_source(c.source))} · "
            f"{open_link}</div>{_also_html(passage, answer.passages, c.doc_id)}"
            f"{_highlighted(window, window_start, c, phrase)}</div>"
        )
    return '<div class="rag-sources">' + "".join(blocks) + "</div>"


def _also_html(passage: Passage | None, passages: tuple[Passage, ...], doc_id: str) -> str:
    """ "Also published by" the other outlets that ran the same story, each a link to its copy."""
    found = passage or next((p for p in passages if p.doc_id == doc_id), None)
    if found is None or not found.also:
        return ""
    links = ", ".join(
        f'<a href="{escape(c.source)}" target="_blank" rel="noopener noreferrer" title="{escape(c.title)}">'
        f"{escape(c.site)}</a>"
        if c.source.startswith(("http://", "https://"))
        else f'<span title="{escape(c.source)}">{escape(c.site)}</span>'
        for c in found.also
    )
    return f'<div class="rag-also">Also published by {links}</div>'


def library_html(rows: list[list[Any]]) -> str:
    """The document library: title (a link that opens the document in the reader), date, source,
    chunks and when indexed, in the chat's font; titles and sources wrap, and on a narrow screen
    the least needed columns give way (ui/assets.py), so a long headline never pushes the date off."""
    if not rows:
        return '<p class="rag-not-found">No document matches.</p>'
    body = "".join(
        f'<tr><td class="rag-title"><a class="rag-doc" href="#rag-doc/{quote(str(doc_id), safe="")}">'
        f'{escape(str(title))}</a></td><td class="rag-date">{escape(str(date))}</td>'
        f'<td class="rag-src">{escape(str(source))}</td><td class="rag-chunks">{escape(str(chunks))}</td>'
        f'<td class="rag-indexed">{escape(str(indexed))}</td></tr>'
        for title, date, source, chunks, indexed, doc_id in rows
    )
    head = (
        '<thead><tr><th class="rag-title">Title</th><th class="rag-date">Date</th><th class="rag-src">Source</th>'
        '<th class="rag-chunks">Chunks</th><th class="rag-indexed">Indexed</th></tr></thead>'
    )
    return f'<div class="rag-library"><table>{head}<tbody>{body}</tbody></table></div>'


def _containing(passages: tuple[Passage, ...], c: Citation) -> Passage | None:
    return next((p for p in passages if p.doc_id == c.doc_id and p.start <= c.start and c.end <= p.end), None)
