"""Build the reader's training pairs from the development sets and train it.

    python -m eval.train_reader [--datasets FOLDER] [--out FOLDER] [--minutes 90] [--seed 13]

The reader (``embeddings.reader``) is a cross-encoder over (question, sentence): a relevance
head says whether the sentence answers the question, a span head marks the answer phrase in it.
This module turns SQuAD-format sets into such pairs, with the sentences cut exactly as the
answer path cuts them (``rag.ingest.chunking.segments``), and hands them to
``embeddings.reader.train``. Every set is split **by document** the way
``benchmarks/answer_quality.py`` splits it (``eval.squad.held_out_ids``): the reader never sees
the held-out quarter, on which every figure in its model card is measured.

Pairs per question, hard negatives first:
- the positive: the sentence holding the (first) gold answer, with the answer's place in it;
- two sentences (``--same-document-negatives``) of the same document that share most words with
  the question but do not hold the answer (leads and title-like sentences that restate the topic
  are exactly these);
- one sentence (``--other-document-negatives``) of *another* document of the same set that shares
  most rare words with the question: what a retriever returns when the answer's document is not
  in the index (a near miss), so the relevance head learns to say "no" to on-topic sentences
  without the answer;
- with ``--same-type-negatives``, one more sentence of another document, the first among those
  sharing rare words that holds a phrase of the type the question asks for
  (``rag.answering.answer_types``): "What was Norvik's profit?" must not be answered by another
  company's figure.

With ``--headlines`` each pair carries its sentence's headline: the first line of the sentence's
own document (a paper's title, a post's first sentence), as the answer path passes a passage's
title; a share of the pairs (``NO_CONTEXT_SHARE``) has none, so a sentence read alone is scored as
well. Both options are off in the shipped reader's recipe: a reader trained with both was better
on the news set and on answer phrases but worse on COVID-QA, and one trained with four times the
negatives no better overall (docs/benchmarks.md, "The reader").
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from eval.squad import Question, QuestionSet, held_out_ids, load_squad
from rag.answering.answer_types import expected_type, new_candidates
from rag.answering.citations import content_words
from rag.ingest.chunking import segments

SAME_DOCUMENT_NEGATIVES = 2
OTHER_DOCUMENT_NEGATIVES = 1
SAME_TYPE_NEGATIVES = 1
NO_CONTEXT_SHARE = 0.15
# The sets as the benchmarks load them: a Reddit post is its own document (the file holds them
# all in one SQuAD "article"), a product's reviews are one document, a paper is one.
PER_PARAGRAPH = {"squadshifts-reddit"}


@dataclass(frozen=True)
class Pair:
    question: str
    sentence: str
    context: str  # the sentence's headline ("" for none)
    label: int  # 1: the sentence holds the answer
    span: tuple[int, int] | None  # the answer's characters in the sentence, for positives
    source: str  # the set's name
    question_id: str


@dataclass(frozen=True)
class _Sentence:
    doc_id: str
    start: int
    end: int
    text: str


def load_set(path: Path) -> QuestionSet:
    return load_squad(path, per_paragraph=path.stem in PER_PARAGRAPH)


def _sentences(qset: QuestionSet) -> dict[str, list[_Sentence]]:
    out: dict[str, list[_Sentence]] = {}
    for document in qset.documents:
        out[document.id] = [
            _Sentence(document.id, s.start, s.end, document.text[s.start : s.end])
            for s in segments(document.text)
            if not s.is_structure and s.end - s.start >= 8
        ]
    return out


class _RareWordIndex:
    """Sentences by the question words they hold, weighted by rarity (IDF): a small lexical
    retriever over a whole set, for negatives from other documents."""

    def __init__(self, sentences: Iterable[_Sentence]) -> None:
        self.sentences = list(sentences)
        self.postings: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(self.sentences):
            for word in content_words(s.text):
                self.postings[word].append(i)
        n = max(1, len(self.sentences))
        self.idf = {w: math.log(n / len(ids)) for w, ids in self.postings.items()}

    def best(self, question: str, exclude_doc: str, count: int) -> list[_Sentence]:
        scores: Counter[int] = Counter()
        # Sorted words and ties broken by position: a set's order changes from process to
        # process (string hashing), and the pairs must be the same on every run.
        for word in sorted(content_words(question)):
            ids = self.postings.get(word, [])
            if not ids or len(ids) > 2000:  # too common to tell documents apart
                continue
            for i in ids:
                scores[i] += self.idf[word]  # type: ignore[assignment]
        top = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:50]
        ranked = (self.sentences[i] for i, _ in top)
        return [s for s in ranked if s.doc_id != exclude_doc][:count]


def headline(text: str) -> str:
    """A document's first line, as a title would be: a paper's title, a post's first sentence."""
    for segment in segments(text):
        line = text[segment.start : segment.end].strip()
        if len(line) >= 8:
            return line.splitlines()[0]
    return ""


def _holds(sentence: _Sentence, question: Question) -> tuple[int, int] | None:
    """The first gold answer's characters inside ``sentence``, if it starts there."""
    for span in question.spans:
        if span.doc_id == sentence.doc_id and sentence.start <= span.start < sentence.end:
            return span.start - sentence.start, min(span.end, sentence.end) - sentence.start
    return None


def _mentions_answer(sentence: _Sentence, question: Question) -> bool:
    text = sentence.text.lower()
    return any(answer.lower() in text for answer in question.answers if answer.strip())


def pairs_for(
    name: str,
    qset: QuestionSet,
    questions: Iterable[Question],
    seed: int,
    with_headlines: bool = False,
    same_type: bool = False,
    same_document: int = SAME_DOCUMENT_NEGATIVES,
    other_document: int = OTHER_DOCUMENT_NEGATIVES,
) -> list[Pair]:
    rng = random.Random(seed)
    by_doc = _sentences(qset)
    headlines = {d.id: headline(d.text) for d in qset.documents}
    index = _RareWordIndex(s for sents in by_doc.values() for s in sents)
    out: list[Pair] = []

    def pair(q: Question, s: _Sentence, label: int, span: tuple[int, int] | None) -> Pair:
        # The random draw only with headlines: the recipe without them shuffles as it always did.
        context = "" if not with_headlines or rng.random() < NO_CONTEXT_SHARE else headlines.get(s.doc_id, "")
        return Pair(q.question, s.text, context, label, span, name, q.id)

    for q in questions:
        if q.unanswerable or not q.spans:
            continue
        doc_sentences = by_doc.get(q.doc_id, [])
        positive = next(((s, span) for s in doc_sentences if (span := _holds(s, q)) is not None), None)
        if positive is None:
            continue
        sentence, span = positive
        out.append(pair(q, sentence, 1, span))
        asked = content_words(q.question)
        others = [s for s in doc_sentences if _holds(s, q) is None and not _mentions_answer(s, q)]
        rng.shuffle(others)  # ties broken at random, not always the lead
        others.sort(key=lambda s: -len(asked & content_words(s.text)))
        for s in others[:same_document]:
            out.append(pair(q, s, 0, None))
        nearby = index.best(q.question, q.doc_id, 50)
        chosen = [s for s in nearby[:other_document] if not _mentions_answer(s, q)]
        kind = expected_type(q.question)
        if same_type and kind is not None:
            typed = (s for s in nearby if s not in chosen and not _mentions_answer(s, q))
            chosen += [s for s in typed if new_candidates(q.question, s.text, kind)][:SAME_TYPE_NEGATIVES]
        out += [pair(q, s, 0, None) for s in chosen]
    return out


def build(
    datasets: Path,
    seed: int,
    with_headlines: bool = False,
    same_type: bool = False,
    same_document: int = SAME_DOCUMENT_NEGATIVES,
    other_document: int = OTHER_DOCUMENT_NEGATIVES,
) -> tuple[list[Pair], list[Pair], dict[str, dict[str, int]]]:
    """(training pairs, held-out pairs, counts per set)."""
    train: list[Pair] = []
    held: list[Pair] = []
    counts: dict[str, dict[str, int]] = {}
    for path in sorted(datasets.glob("*.json")):
        name = path.stem
        qset = load_set(path)
        held_ids = held_out_ids(qset)
        inside = [q for q in qset.questions if q.doc_id not in held_ids]
        outside = [q for q in qset.questions if q.doc_id in held_ids]
        a = pairs_for(name, qset, inside, seed, with_headlines, same_type, same_document, other_document)
        b = pairs_for(name, qset, outside, seed, with_headlines, same_type, same_document, other_document)
        train += a
        held += b
        counts[name] = {
            "documents": len(qset.documents),
            "held_out_documents": len(held_ids),
            "training_questions": len({p.question_id for p in a}),
            "held_out_questions": len({p.question_id for p in b}),
            "training_pairs": len(a),
            "held_out_pairs": len(b),
        }
        print(f"{name}: {counts[name]}", file=sys.stderr, flush=True)
    return train, held, counts


def main(argv: list[str] | None = None) -> None:
    repo = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(prog="python -m eval.train_reader", description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=Path, default=repo.parent / "shared" / "datasets",
                        help="folder of SQuAD-format JSON sets (default: ../shared/datasets)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=repo / "embeddings" / "reader" / "model",
                        help="where the ONNX reader, its card and its training log go (default: the shipped "
                        "reader's folder, embeddings/reader/model)")  # fmt: skip
    parser.add_argument("--minutes", type=float, default=90.0, help="training time budget (default 90)")
    parser.add_argument("--seed", type=int, default=13, help="for the pairs, the order and the heads (default 13)")
    parser.add_argument("--max-length", type=int, default=96, help="word pieces per pair (default 96)")
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per step (default 32)")
    parser.add_argument(
        "--frozen-layers", type=int, default=1, help="lower transformer layers left as they are (default 1)"
    )
    parser.add_argument("--epochs", type=int, default=2, help="passes over the pairs, if the budget allows (default 2)")
    parser.add_argument(
        "--eval-limit", type=int, default=2000, help="held-out questions per set in the card (default 2000)"
    )
    parser.add_argument(
        "--headlines",
        action="store_true",
        help="read each sentence with its document's first line as a headline (default: off)",
    )
    parser.add_argument(
        "--same-type-negatives",
        action="store_true",
        help="add a near miss holding a phrase of the asked-for type (default: off)",
    )
    parser.add_argument(
        "--same-document-negatives",
        type=int,
        default=SAME_DOCUMENT_NEGATIVES,
        help=f"sentences of the answer's document sharing most words, per question (default {SAME_DOCUMENT_NEGATIVES})",
    )
    parser.add_argument(
        "--other-document-negatives",
        type=int,
        default=OTHER_DOCUMENT_NEGATIVES,
        help=f"near misses from other documents sharing rare words, per question (default {OTHER_DOCUMENT_NEGATIVES})",
    )
    parser.add_argument("--dry-run", action="store_true", help="build the pairs, time a few steps, stop")
    args = parser.parse_args(argv)
    if not args.datasets.is_dir():
        parser.error(f"--datasets {args.datasets} is not a folder of SQuAD-format JSON sets")
    if not sorted(args.datasets.glob("*.json")):
        parser.error(f"--datasets {args.datasets} holds no .json file; give a folder of SQuAD-format JSON sets")
    for name, value, least in (("--minutes", args.minutes, 0.01), ("--epochs", args.epochs, 1),
                               ("--batch-size", args.batch_size, 1), ("--max-length", args.max_length, 16),
                               ("--eval-limit", args.eval_limit, 1),
                               ("--same-document-negatives", args.same_document_negatives, 0),
                               ("--other-document-negatives", args.other_document_negatives, 0)):  # fmt: skip
        if value < least:
            parser.error(f"{name} {value} is too small: at least {least}")
    if not 0 <= args.frozen_layers <= 6:
        parser.error(f"--frozen-layers {args.frozen_layers} must be between 0 and 6 (MiniLM-L6 has 6 layers)")
    from embeddings.reader.train import TrainingSettings, train

    train_pairs, held_pairs, counts = build(
        args.datasets,
        args.seed,
        args.headlines,
        args.same_type_negatives,
        args.same_document_negatives,
        args.other_document_negatives,
    )
    settings = TrainingSettings(
        seed=args.seed,
        minutes=args.minutes,
        max_length=args.max_length,
        batch_size=args.batch_size,
        frozen_layers=args.frozen_layers,
        epochs=args.epochs,
        headlines=args.headlines,
        same_type_negatives=args.same_type_negatives,
        same_document_negatives=args.same_document_negatives,
        other_document_negatives=args.other_document_negatives,
    )
    train(train_pairs, held_pairs, counts, settings, args.out, dry_run=args.dry_run, eval_limit=args.eval_limit)


if __name__ == "__main__":
    main()
