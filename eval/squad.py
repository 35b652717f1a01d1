"""Read SQuAD-format question sets (v1.1 and v2.0) into documents and gold spans.

The paragraphs of one article become one document (joined by blank lines), and each gold
answer's offset is carried into that document. Offsets that do not match the answer text
(COVID-QA has some that are off by a few characters) are re-anchored to the nearest
occurrence of the answer text; those that cannot be found are counted, never guessed.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from rag.types import Document

PARAGRAPH_SEPARATOR = "\n\n"
# A quarter of each set's documents is held out, always the same quarter.
HELD_OUT_SHARE = 0.25
HELD_OUT_SEED = 2


@dataclass(frozen=True)
class GoldSpan:
    doc_id: str
    start: int
    end: int


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]
    spans: tuple[GoldSpan, ...]
    unanswerable: bool
    doc_id: str


@dataclass(frozen=True)
class QuestionSet:
    documents: tuple[Document, ...]
    questions: tuple[Question, ...]
    reanchored: int  # answers whose offset was wrong and was found nearby
    unanchored: int  # answers whose text could not be found in their paragraph


def _anchor(context: str, text: str, start: int) -> tuple[int, int] | None:
    """The (start, end) of ``text`` in ``context``: at ``start`` if it matches, else the
    nearest exact occurrence, else the nearest whitespace- and case-insensitive one."""
    if context[start : start + len(text)] == text:
        return start, start + len(text)
    hits = [m.span() for m in re.finditer(re.escape(text), context)]
    if not hits:
        words = text.split()
        if not words:
            return None
        loose = r"\s+".join(re.escape(w) for w in words)
        hits = [m.span() for m in re.finditer(loose, context, re.IGNORECASE)]
    return min(hits, key=lambda h: abs(h[0] - start)) if hits else None


def held_out_ids(qset: QuestionSet, share: float = HELD_OUT_SHARE, seed: int = HELD_OUT_SEED) -> set[str]:
    """The documents set aside for measuring: a fixed random ``share`` of them. The reader is
    trained on the others (``eval.train_reader``) and the benchmarks measure on these, so both
    must take them from here."""
    ids = sorted(d.id for d in qset.documents)
    random.Random(seed).shuffle(ids)
    return set(ids[: int(len(ids) * share)])


def load_squad(path: str | Path, prefix: str | None = None, per_paragraph: bool = False) -> QuestionSet:
    """``per_paragraph`` makes every paragraph its own document, for sets that hold many short
    texts in one SQuAD "article" (SQuADShifts Reddit: 2,035 posts in one)."""
    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    prefix = prefix or re.sub(r"[^A-Za-z0-9]+", "-", path.stem).strip("-")
    documents: list[Document] = []
    questions: list[Question] = []
    reanchored = unanchored = 0
    if per_paragraph:
        data = {
            "data": [
                {"title": f"{article.get('title') or path.stem} {i}", "paragraphs": [paragraph]}
                for article in data["data"]
                for i, paragraph in enumerate(article["paragraphs"])
            ]
        }
    for number, article in enumerate(data["data"]):
        doc_id = f"{prefix}-{number:04d}"
        title = str(article.get("title") or f"{path.stem} article {number}")
        parts: list[str] = []
        offset = 0
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                spans: list[GoldSpan] = []
                texts: list[str] = []
                for answer in qa.get("answers", []):
                    text = answer["text"]
                    found = _anchor(context, text, int(answer["answer_start"]))
                    if found is None:
                        unanchored += 1
                        continue
                    if found[0] != answer["answer_start"]:
                        reanchored += 1
                    spans.append(GoldSpan(doc_id, offset + found[0], offset + found[1]))
                    texts.append(text)
                questions.append(
                    Question(
                        id=str(qa["id"]),
                        question=qa["question"],
                        answers=tuple(dict.fromkeys(texts)),
                        spans=tuple(dict.fromkeys(spans)),
                        unanswerable=bool(qa.get("is_impossible", False)) or not qa.get("answers"),
                        doc_id=doc_id,
                    )
                )
            parts.append(context)
            offset += len(context) + len(PARAGRAPH_SEPARATOR)
        documents.append(
            Document(
                id=doc_id,
                source=f"{path.name}#{number}",
                path=str(path.resolve()),
                title=title,
                date=None,
                text=PARAGRAPH_SEPARATOR.join(parts),
            )
        )
    return QuestionSet(tuple(documents), tuple(questions), reanchored, unanchored)
