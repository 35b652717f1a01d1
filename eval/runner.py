"""Run a question set through the public ``RAG`` API and score what comes back.

Per question: ``RAG.retrieve(question, k=20)`` for the retrieval metrics, then ``RAG.ask``
(the very pipeline the CLI and the web chat use) for the answer, its citations and timings.
A retrieved passage or a citation is a hit when its span overlaps a gold answer span.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from eval.metrics import contains_answer, exact_match, first_hit_rank, ndcg, overlaps, token_f1
from eval.squad import Question, QuestionSet
from rag.api import RAG
from rag.ingest.indexer import progress_bar

HIT_KS = (1, 3, 5, 10, 20)


@dataclass(frozen=True)
class QuestionResult:
    id: str
    question: str
    unanswerable: bool
    gold_answers: list[str]
    gold_spans: list[list[Any]]
    retrieved: list[list[Any]]  # [doc_id, start, end] of the top 20
    relevant: list[bool]
    first_hit: int | None
    answer: str
    answerable: bool
    em: float  # on the answer phrase when the answer marks one, else on its sentences
    f1: float
    contains: float
    em_sentence: float  # on the answer's sentences, always
    f1_sentence: float
    phrase: str | None  # the answer phrase scored, when there was one
    citations: list[list[Any]]  # [doc_id, start, end, quote]
    citation_hits: int
    covered: bool
    timings_ms: dict[str, float] = field(default_factory=dict)
    retrieval_ms: float = 0.0


@dataclass(frozen=True)
class EvalRun:
    results: list[QuestionResult]
    summary: dict[str, Any]


def choose(questions: Sequence[Question], limit: int | None, sample: int | None, seed: int) -> list[Question]:
    chosen = list(questions)
    if sample is not None:
        chosen = random.Random(seed).sample(chosen, min(sample, len(chosen)))
    if limit is not None:
        chosen = chosen[:limit]
    return chosen


def as_negatives(qset: QuestionSet, n: int, seed: int) -> list[Question]:
    """Another set's questions, asked of this index: the documents cannot hold their answers."""
    picked = random.Random(seed).sample(list(qset.questions), min(n, len(qset.questions)))
    return [replace(q, id=f"negative-{q.id}", spans=(), unanswerable=True) for q in picked]


def evaluate_question(rag: RAG, q: Question, answerer: str | None) -> QuestionResult:
    started = time.perf_counter()
    passages = rag.retrieve(q.question, k=20).passages
    retrieval_ms = (time.perf_counter() - started) * 1000
    relevant = [any(s.doc_id == p.doc_id and overlaps(p.start, p.end, s.start, s.end) for s in q.spans)
                for p in passages]  # fmt: skip
    answer = rag.ask(q.question, answerer=answerer)
    prediction = " ".join(s.text for s in answer.sentences) if answer.answerable else ""
    # The answer phrase is what a reader takes as the answer; the sentences are its context.
    phrase = answer.answer_span.text if answer.answerable and answer.answer_span else None
    short = phrase if phrase is not None else prediction
    hits = [c for c in answer.citations
            if any(s.doc_id == c.doc_id and overlaps(c.start, c.end, s.start, s.end) for s in q.spans)]  # fmt: skip
    covered = any(
        s.doc_id == c.doc_id and c.start <= s.start and s.end <= c.end for c in answer.citations for s in q.spans
    )
    return QuestionResult(
        id=q.id,
        question=q.question,
        unanswerable=q.unanswerable,
        gold_answers=list(q.answers),
        gold_spans=[[s.doc_id, s.start, s.end] for s in q.spans],
        retrieved=[[p.doc_id, p.start, p.end] for p in passages],
        relevant=relevant,
        first_hit=first_hit_rank(relevant),
        answer=answer.text,
        answerable=answer.answerable,
        em=exact_match(short, q.answers) if q.answers else 0.0,
        f1=token_f1(short, q.answers) if q.answers else 0.0,
        contains=contains_answer(prediction, q.answers) if q.answers else 0.0,
        em_sentence=exact_match(prediction, q.answers) if q.answers else 0.0,
        f1_sentence=token_f1(prediction, q.answers) if q.answers else 0.0,
        phrase=phrase,
        citations=[[c.doc_id, c.start, c.end, c.quote] for c in answer.citations],
        citation_hits=len(hits),
        covered=covered,
        timings_ms=answer.timings_ms,
        retrieval_ms=retrieval_ms,
    )


def run(
    rag: RAG,
    questions: Sequence[Question],
    answerer: str | None = None,
    progress: bool | None = None,
    reanchor: tuple[int, int] = (0, 0),
) -> EvalRun:
    began = time.perf_counter()
    results = [evaluate_question(rag, q, answerer) for q in progress_bar(questions, "evaluating", "question", progress)]
    wall_ms = (time.perf_counter() - began) * 1000
    return EvalRun(results, summarize(results, wall_ms, reanchor))


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None}
    return {"p50": round(statistics.median(values), 2), "p95": round(float(np.percentile(values, 95)), 2)}


def summarize(results: Sequence[QuestionResult], wall_ms: float, reanchor: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    answerable = [r for r in results if not r.unanswerable]
    with_gold = [r for r in answerable if r.gold_spans]
    retrieval: dict[str, float | None] = {
        f"hit@{k}": _mean([float(r.first_hit is not None and r.first_hit <= k) for r in with_gold]) for k in HIT_KS
    }
    retrieval["mrr"] = _mean([1 / r.first_hit if r.first_hit else 0.0 for r in with_gold])
    retrieval["ndcg@10"] = _mean([ndcg(r.relevant, 10) for r in with_gold])
    # Citation precision needs to know what a right citation is: the gold spans (a question that
    # has none says nothing), or none at all (an unanswerable question's every citation is wrong).
    # A set with no gold spans cannot measure it: None, shown as "–".
    judged = [r for r in results if r.gold_spans or r.unanswerable] if with_gold else []
    all_citations = sum(len(r.citations) for r in judged)
    said_no = [r for r in results if not r.answerable]
    truly_no = [r for r in results if r.unanswerable]
    pipeline_ms = sum(r.retrieval_ms + r.timings_ms.get("total_ms", 0.0) for r in results)
    stages = sorted({key for r in results for key in r.timings_ms})
    return {
        "n": len(results),
        "retrieval": retrieval,
        "answer": {
            "em": _mean([r.em for r in answerable]),
            "f1": _mean([r.f1 for r in answerable]),
            "contains": _mean([r.contains for r in answerable]),
            "em_sentence": _mean([r.em_sentence for r in answerable]),
            "f1_sentence": _mean([r.f1_sentence for r in answerable]),
            "phrase_marked": _mean([float(r.phrase is not None) for r in answerable]),
        },
        "citations": {
            "precision": round(sum(r.citation_hits for r in judged) / all_citations, 4) if all_citations else None,
            "recall": _mean([float(r.covered) for r in with_gold]),
        },
        "no_answer": {
            "precision": _mean([float(r.unanswerable) for r in said_no]),
            "recall": _mean([float(not r.answerable) for r in truly_no]),
        },
        "latency_ms": _percentiles([r.timings_ms.get("total_ms", 0.0) for r in results]),
        "latency_by_stage_ms": {
            "retrieval_top20": _percentiles([r.retrieval_ms for r in results]),
            **{key: _percentiles([r.timings_ms[key] for r in results if key in r.timings_ms]) for key in stages},
        },
        "counts": {
            "answerable": len(answerable),
            "with_gold_spans": len(with_gold),
            "unanswerable": len(truly_no),
            "abstained": len(said_no),
            "reanchored_answers": reanchor[0],
            "unanchored_answers": reanchor[1],
        },
        "seconds": {
            "wall": round(wall_ms / 1000, 3),
            "pipeline": round(pipeline_ms / 1000, 3),
            # Everything the evaluation adds on top of the pipeline calls: scoring, bookkeeping.
            "overhead_share": round(max(0.0, wall_ms - pipeline_ms) / wall_ms, 4) if wall_ms else None,
        },
    }


def result_json(result: QuestionResult) -> dict[str, Any]:
    return asdict(result)
