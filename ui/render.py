"""HTML for the web chat. Every piece of document or answer text goes through ``html.escape``:
an article containing ``<script>`` shows those characters and runs nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import escape

from rag.types import Answer, AnswerSentence, Citation, Passage

CSS = """
.rag-answer .flag { color: #9a3412; font-size: 0.9em; }
.rag-not-found { color: #6b7280; font-style: italic; }
.rag-sources { font-size: 0.92em; }
.rag-source { border-left: 3px solid #d1d5db; margin: 0 0 0.9em 0; padding: 0.2em 0.7em; }
.rag-source .meta { color: #4b5563; font-size: 0.85em; }
.rag-source mark { background: #fde68a; padding: 0 0.1em; }
.rag-source .n { font-weight: 600; }
.rag-answer .rag-phrase { font-weight: 700; }
"""

# Markdown would read these in escaped text as formatting; a backslash keeps them literal.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-!|~>])")


def _md(text: str) -> str:
    return _MARKDOWN.sub(r"\\\1", escape(text))


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


def _sentence_html(sentence: AnswerSentence, text_html: str) -> str:
    markers = "".join(f"<sup>[{n}]</sup>" for n in sentence.citations)
    flag = ""
    if not sentence.cited:
        flag = ' <span class="flag" title="no citation">⚠ uncited</span>'
    elif not sentence.supported:
        flag = f' <span class="flag" title="support {sentence.support:.2f}">⚠ not supported by its source</span>'
    return f"{text_html}{markers}{flag}"


def answer_message(answer: Answer) -> str:
    """The assistant's chat message: the answer with [n] markers, the answer phrase in bold,
    lists as lists, and visible flags."""
    if not answer.answerable:
        return f'<span class="rag-not-found">{_md(answer.text)}</span>'
    span = answer.answer_span
    blocks: list[str] = []  # paragraphs and list items, in order
    items: list[str] = []
    ordered = False
    for sentence in answer.sentences:
        if span is not None and span.citation in sentence.citations and span.text in sentence.text:
            before, _, after = sentence.text.partition(span.text)
            text_html = f'{escape(before)}<strong class="rag-phrase">{escape(span.text)}</strong>{escape(after)}'
        else:
            text_html = _inline(sentence.text)
        html = _sentence_html(sentence, text_html)
        if sentence.bullet:
            ordered = sentence.bullet[0].isdigit()
            items.append(html)
        elif items:
            items[-1] += " " + html  # a second sentence of the same list item
        else:
            blocks.append(html)
    body = " ".join(blocks)
    if items:
        tag = "ol" if ordered else "ul"
        body += f"<{tag}>" + "".join(f"<li>{item}</li>" for item in items) + f"</{tag}>"
    return f'<div class="rag-answer">{body}</div>'


def streaming_message(text: str) -> str:
    return _md(text) + " ▌"


def _highlighted(window: str, window_start: int, citation: Citation) -> str:
    start = max(citation.start - window_start, 0)
    end = min(citation.end - window_start, len(window))
    return escape(window[:start]) + f"<mark>{escape(window[start:end])}</mark>" + escape(window[end:])


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
    blocks = []
    for c in answer.citations:
        passage = _containing(answer.passages, c)
        if passage is not None:
            window, window_start = passage.text, passage.start
        else:
            text = document_text(c.doc_id)
            window_start = max(0, c.start - 300)
            window = text[window_start : c.end + 300]
        blocks.append(
            f'<div class="rag-source" id="source-{c.n}"><div class="meta"><span class="n">[{c.n}]</span> '
            f"{escape(c.title)} · {escape(c.date or 'no date')} · {escape(c.source)} · chars {c.start}–{c.end} · "
            f"support {c.score:.2f}</div>{_highlighted(window, window_start, c)}</div>"
        )
    return '<div class="rag-sources">' + "".join(blocks) + "</div>"


def _containing(passages: tuple[Passage, ...], c: Citation) -> Passage | None:
    return next((p for p in passages if p.doc_id == c.doc_id and p.start <= c.start and c.end <= p.end), None)
