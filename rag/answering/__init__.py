"""Answerers turn a question and retrieved passages into a cited ``Draft``.

``extractive`` (the default) answers with verbatim source sentences and needs no LLM; ``llm``
prompts a language model with numbered sentences and checks what it cites.
"""

from __future__ import annotations

from dataclasses import dataclass

from rag.types import AnswerSentence, AnswerSpan, Citation

NOT_IN_DOCUMENTS = "The documents do not contain the answer to this question."


@dataclass(frozen=True)
class Draft:
    text: str
    answerable: bool
    sentences: tuple[AnswerSentence, ...]
    citations: tuple[Citation, ...]
    prompt: str | None = None
    raw_output: str | None = None
    answer_span: AnswerSpan | None = None
