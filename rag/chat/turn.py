"""One turn of a conversation, from question to cited answer: the follow-up resolved against
the history, passages retrieved, the evidence weighed by the one abstention gate every answerer
shares, and the answer written by the answerer asked for, streamed as it is written.

``RAG.ask`` and ``RAG.ask_stream`` run this; what it needs of the index comes in as ``Sources``,
so this stage never reaches back up into the facade.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from embeddings.reader import Scored
from rag.answering import NOT_IN_DOCUMENTS, Draft
from rag.answering.answer_types import expected_type
from rag.answering.citations import source_sentences
from rag.answering.evidence import assess, unique
from rag.answering.extractive import ExtractiveAnswerer
from rag.answering.llm import LLMAnswerer
from rag.answering.over_time import VERSION_MIN, Score, over_time
from rag.answering.reading import read, rerank
from rag.answering.time_words import time_asked
from rag.chat.follow_ups import History, heuristic_query, llm_query
from rag.config import ANSWERERS, Config
from rag.ingest.stories import Version
from rag.search.query import Filters, SearchError, check_k, check_question, check_unicode
from rag.search.retrieval import Retrieval
from rag.types import Answer

if TYPE_CHECKING:
    from embeddings import Encoder
    from embeddings.reader import Reader
    from rag.answering.backends import LLMBackend


@dataclass(frozen=True)
class Sources:
    """What a turn draws on, each loaded only when the turn needs it."""

    config: Config
    # (query, k, mode, filters, max_per_doc) -> the passages and per-stage timings
    retrieve: Callable[[str, int, str, Filters | None, int | None], Retrieval]
    encoder: Callable[[], Encoder]
    rare_words: Callable[[set[str]], set[str]]
    llm: Callable[[], LLMBackend]
    reader: Callable[[], Reader | None] = lambda: None
    # doc_id -> the versions of its story (rag.ingest.stories), empty when it is alone
    versions: Callable[[str], Sequence[Version]] = lambda doc_id: ()


# A sentence's cosine to the question from which a timeline quotes it, when the reader is off.
COSINE_MIN = 0.4


def sentence_scorer(sources: Sources) -> tuple[Score, float]:
    """How a timeline judges each version's sentences, and from which score one speaks to the
    question: the reader, or the encoder's cosine when the reader is off."""
    reader = sources.reader()
    if reader is not None:
        return reader.score, VERSION_MIN

    def cosine(question: str, texts: list[str], headlines: list[str]) -> list[Scored]:
        encoder = sources.encoder()
        wanted = encoder.encode_queries([question])[0]
        return [Scored(float(v @ wanted), None, 0.0) for v in encoder.encode_documents(texts)]

    return cosine, COSINE_MIN


def check_turn(config: Config, question: str, history: History | None, answerer: str, k: int) -> None:
    """Every value a turn takes, checked before anything is searched; errors name the value."""
    if answerer not in ANSWERERS:
        raise SearchError(f"answerer {answerer!r} is unknown; choose one of {', '.join(ANSWERERS)}")
    check_question(question, config.max_question_chars)
    for turn, (asked, answered) in enumerate(history or [], start=1):
        check_unicode(asked, f"question {turn} of the conversation")
        check_unicode(answered, f"answer {turn} of the conversation")
    check_k(k, config.max_k)


def answer_turn(
    sources: Sources,
    question: str,
    history: History | None = None,
    answerer: str | None = None,
    filters: Filters | None = None,
    mode: str = "hybrid",
    k: int | None = None,
    max_per_doc: int | None = None,
) -> Iterator[str | Answer]:
    """Yields the answer's text as it is written, then the ``Answer``."""
    began = time.perf_counter()
    config = sources.config
    name = answerer or config.answerer
    k = config.answer_passages if k is None else k
    check_turn(config, question, history, name, k)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if history and name == "llm":
        query = llm_query(question, history, sources.llm().complete)
    else:
        query = heuristic_query(question, history)
    if len(query) > config.max_question_chars:
        query = question  # a follow-up glued to a long question: search the question alone
    timings["rewrite_ms"] = (time.perf_counter() - started) * 1000
    retrieval = sources.retrieve(query, k, mode, filters, max_per_doc)
    timings.update({f"retrieval_{key}": value for key, value in retrieval.timings_ms.items()})
    started = time.perf_counter()
    passages = list(retrieval.passages)
    reader = sources.reader()
    reading = None
    if reader is not None and passages:
        # The reader reads the best sentences once; the passages are reranked by them and the
        # gate and the answerer use the same scores.
        sentences = unique(source_sentences(passages))
        reading = read(reader, query, sentences, expected_type(query), headlines=[p.title for p in passages])
        passages = rerank(passages, sentences, reading)
        timings["reader_ms"] = (time.perf_counter() - started) * 1000
    # One gate for every answerer: the evidence is weighed before anything is written.
    # Retrieval embedded the question already, unless it searched for a rewritten one.
    evidence = assess(
        query,
        passages,
        sources.encoder,
        threshold=config.abstain_threshold,
        query_vector=retrieval.query_vector,
        rare_words=sources.rare_words,
        reading=reading,
    )
    timings["evidence_ms"] = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    if not evidence.answerable:
        draft = Draft(NOT_IN_DOCUMENTS, False, (), ())
        yield draft.text
    elif name == "llm":
        written: Draft | None = None
        writer = LLMAnswerer(sources.llm(), sources.encoder, max_tokens=config.llm_max_tokens)
        for piece in writer.stream(query, passages):
            if isinstance(piece, str):
                yield piece
            else:
                written = piece
        assert written is not None  # the stream always ends with the Draft
        draft = written
    else:
        draft = ExtractiveAnswerer().answer(evidence, passages)
        versions_started = time.perf_counter()
        if draft.answerable and evidence.best is not None and reader is not None:
            # The answer's story may have other versions: the newest leads, the others dated.
            # The reader tells which sentence of each version answers; without it (reader =
            # none) the encoder's cosine chose wrong sentences too often (benchmarks/stories.py).
            versions = sources.versions(evidence.sentences[evidence.best].doc_id)
            if len(versions) > 1:
                draft = over_time(draft, evidence, query, versions, reader.score, time_asked(query), filters)
            timings["versions_ms"] = (time.perf_counter() - versions_started) * 1000
        yield draft.text
    timings["answer_ms"] = (time.perf_counter() - started) * 1000
    timings["total_ms"] = (time.perf_counter() - began) * 1000
    yield Answer(
        question=question,
        query=query,
        text=draft.text,
        answerable=draft.answerable,
        sentences=draft.sentences,
        citations=draft.citations,
        passages=tuple(passages),
        timings_ms=timings,
        answerer=name,
        prompt=draft.prompt,
        raw_output=draft.raw_output,
        answer_span=draft.answer_span,
        evidence={"score": evidence.score, **evidence.features, "sentences_read": len(reading or {})},
    )
