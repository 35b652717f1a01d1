"""The evidence for an answer, weighed once, before any answerer writes.

``assess`` scores every sentence of the retrieved passages for how well it answers the question
and decides, on that evidence, whether the documents hold an answer at all. Both answerers use
the decision: the extractive one quotes the best sentences, the LLM one is not asked when the
evidence is not there. One gate means one calibration and one behaviour for every answerer.

A sentence's selection score mixes its embedding similarity to the question, the share of the
question's content words it contains, and whether it holds a phrase of the type the question
asks for (a number for "how many", a date for "when") that the question does not already hold.
Titles, headings, bylines and date lines are never picked.

The gate is a logistic model over a few features of the evidence (below), fitted on the
development sets with two kinds of negatives: questions about a topic absent from the index and
*near misses*, a document's own questions asked once that document is removed
(``benchmarks/answer_quality.py`` fits it and reports precision and recall).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from embeddings.reader import Scored
from rag.answering.answer_types import expected_type, new_candidates
from rag.answering.citations import SourceSentence, content_words, coverage, source_sentences
from rag.answering.reading import Key, SentenceRead, key_of
from rag.types import Passage

# Selection score weights, fitted on the development sets (benchmarks/answer_quality.py).
SEMANTIC_WEIGHT = 0.4
LEXICAL_WEIGHT = 0.6
TYPE_WEIGHT = 0.1
# Embedding sentences is most of an answer's time, so only this many are embedded: those that
# share most words with the question (a typed candidate counts as a shared word), earlier
# passages first on ties.
MAX_EMBEDDED = 16
# Small batches: sentences differ in length, and one batch pads them all to the longest.
SENTENCE_BATCH = 8

# The gate: P(answerable) = sigmoid(bias + sum(weight * feature)). Fitted by
# benchmarks/answer_quality.py; see FEATURES for what each weight multiplies.
# best_cosine: the best embedding similarity of a sentence to the question; best_coverage: the
# share of the question's content words in the chosen sentence; passage_coverage: that share
# over all the passages; missing_rare: the share of the question's rare words (in at most 1% of
# the chunks: names, codenames, technical terms) found in no passage. The answer type helped
# pick sentences but not this decision (fitted weights near zero, no gain in precision or
# recall), so it is left out.
FEATURES = ("best_cosine", "best_coverage", "passage_coverage", "missing_rare")
GATE_WEIGHTS = (7.91, 2.15, 1.71, -0.87)
GATE_BIAS = -6.57
# At 0.5 near misses on COVID-QA are caught with recall 0.71 at precision 0.91 (README "Answer
# quality" has the table for other thresholds; `abstain_threshold` sets it).
DEFAULT_THRESHOLD = 0.5
# The gate when the reader has read the sentences: best_relevance is the reader's probability
# that the best sentence holds the answer; the other features as above. Fitted by
# benchmarks/answer_quality.py --fit on the tuning half of the held-out documents.
# best_cosine here is the embedding similarity of that one sentence (one sentence embedded):
# it kept other-set questions declined as before (0.94 on COVID-QA's tuning half, against 0.89
# without it).
READER_FEATURES = ("best_relevance", "best_coverage", "passage_coverage", "missing_rare", "best_cosine")
READER_GATE_WEIGHTS = (2.94, 1.42, 2.44, -0.39, 4.11)
READER_GATE_BIAS = -5.67


@dataclass(frozen=True)
class Evidence:
    question: str
    kind: str | None  # the answer type the question asks for, if it says
    sentences: tuple[SourceSentence, ...]  # every sentence of the passages, duplicates removed
    selection: np.ndarray  # per sentence; -1 for structure lines and sentences not embedded
    semantic: np.ndarray  # cosine to the question; -1 where not embedded
    features: dict[str, float] = field(default_factory=dict)
    score: float = 0.0  # the gate's P(answerable)
    answerable: bool = False
    # The reader's verdict per sentence (None where it did not read it, or when it is off).
    read: tuple[Scored | None, ...] = ()

    @property
    def best(self) -> int | None:
        """Index of the best answer sentence, or None when there is none."""
        if not len(self.selection) or float(self.selection.max()) <= -1.0:
            return None
        return int(self.selection.argmax())


def gate_score(
    features: dict[str, float],
    weights: Sequence[float] = GATE_WEIGHTS,
    bias: float = GATE_BIAS,
    names: Sequence[str] = FEATURES,
) -> float:
    z = bias + sum(w * features[name] for w, name in zip(weights, names, strict=True))
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def assess(
    question: str,
    passages: Sequence[Passage],
    encoder: Callable[[], object],
    threshold: float = DEFAULT_THRESHOLD,
    query_vector: np.ndarray | None = None,
    rare_words: Callable[[set[str]], set[str]] | None = None,
    reading: Mapping[Key, SentenceRead] | None = None,
) -> Evidence:
    """Score the passages' sentences for ``question`` and decide whether they hold an answer.

    ``rare_words`` picks, from words of the question, those that are rare in the index; a
    question whose rare names or codes appear in no passage is likely about something the
    documents do not cover ("What is the budget of Project Zephyr?"). ``reading``, the reader's
    scores by sentence (``rag.answering.reading.read``), replaces the hand-written selection
    score and feeds the reader's gate.
    """
    kind = expected_type(question)
    sentences = tuple(unique(source_sentences(passages)))
    count = len(sentences)
    semantic = np.full(count, -1.0, dtype=np.float32)
    selection = np.full(count, -1.0, dtype=np.float32)
    prose = [i for i, s in enumerate(sentences) if not s.is_structure]
    if reading is not None:

        def cosine(text: str) -> float:  # only the chosen sentence is embedded
            model = encoder()
            query = _query_vector(model, question, query_vector)
            return float(model.encode_documents([text])[0] @ query)  # type: ignore[attr-defined]

        return _assess_read(question, kind, passages, sentences, reading, threshold, rare_words, cosine)
    if not prose:
        return Evidence(question, kind, sentences, selection, semantic, _features(0.0, 0.0, 0.0, 0.0))
    lexical = np.zeros(count, dtype=np.float32)
    typed = np.zeros(count, dtype=np.float32)
    for i in prose:
        lexical[i] = coverage(question, sentences[i].text)
        if kind is not None and new_candidates(question, sentences[i].text, kind):
            typed[i] = 1.0
    order = sorted(prose, key=lambda i: (-(lexical[i] + TYPE_WEIGHT * typed[i]), i))
    kept = np.array(order[:MAX_EMBEDDED])
    model = encoder()
    query = _query_vector(model, question, query_vector)
    vectors = model.encode_documents([sentences[i].text for i in kept], batch_size=SENTENCE_BATCH)  # type: ignore[attr-defined]
    semantic[kept] = vectors @ query
    selection[kept] = SEMANTIC_WEIGHT * semantic[kept] + LEXICAL_WEIGHT * lexical[kept] + TYPE_WEIGHT * typed[kept]
    best = int(selection.argmax())
    features = _features(
        float(semantic[kept].max()), float(lexical[best]), *_passage_features(question, passages, rare_words)
    )
    score = gate_score(features)
    return Evidence(question, kind, sentences, selection, semantic, features, score, score >= threshold)


def _assess_read(
    question: str,
    kind: str | None,
    passages: Sequence[Passage],
    sentences: tuple[SourceSentence, ...],
    reading: Mapping[Key, SentenceRead],
    threshold: float,
    rare_words: Callable[[set[str]], set[str]] | None,
    cosine: Callable[[str], float],
) -> Evidence:
    count = len(sentences)
    semantic = np.full(count, -1.0, dtype=np.float32)
    selection = np.full(count, -1.0, dtype=np.float32)
    found = [None if s.is_structure else reading.get(key_of(s)) for s in sentences]
    read = tuple(f.scored if f is not None else None for f in found)
    for i, f in enumerate(found):
        if f is not None:
            selection[i] = f.selection
    best = int(selection.argmax()) if count else 0
    passage_coverage, missing_rare = _passage_features(question, passages, rare_words)
    features = reader_features(
        read[best].relevance if count and read[best] is not None else 0.0,  # type: ignore[union-attr]
        coverage(question, sentences[best].text) if count and selection[best] > -1 else 0.0,
        passage_coverage,
        missing_rare,
        cosine(sentences[best].text) if count and selection[best] > -1 else 0.0,
    )
    if not count or float(selection.max()) <= -1.0:
        return Evidence(question, kind, sentences, selection, semantic, features, 0.0, False, read)
    score = gate_score(features, READER_GATE_WEIGHTS, READER_GATE_BIAS, READER_FEATURES)
    return Evidence(question, kind, sentences, selection, semantic, features, score, score >= threshold, read)


def reader_features(
    best_relevance: float, best_coverage: float, passage_coverage: float, missing_rare: float, best_cosine: float
) -> dict[str, float]:
    return {
        "best_relevance": max(0.0, best_relevance),
        "best_coverage": best_coverage,
        "passage_coverage": passage_coverage,
        "missing_rare": missing_rare,
        "best_cosine": best_cosine,
    }


def _query_vector(model: object, question: str, query_vector: np.ndarray | None) -> np.ndarray:
    """Retrieval's embedding of the question, or a new one when it searched for a rewrite."""
    if query_vector is not None:
        return query_vector
    return model.encode_queries([question])[0]  # type: ignore[attr-defined,no-any-return]


def _passage_features(
    question: str, passages: Sequence[Passage], rare_words: Callable[[set[str]], set[str]] | None
) -> tuple[float, float]:
    """(passage_coverage, missing_rare): the share of the question's words the passages hold, and
    of its rare words they do not. Both gates use them."""
    asked = content_words(question)
    in_passages = set().union(*(content_words(p.text) for p in passages)) if passages else set()
    passage_coverage = len(asked & in_passages) / len(asked) if asked else 0.0
    return passage_coverage, missing_share(question, in_passages, rare_words)


def missing_share(question: str, in_passages: set[str], rare_words: Callable[[set[str]], set[str]] | None) -> float:
    """Share of the question's rare words that no passage holds (0 when it has none).

    A word counts as held when a passage word starts with it or it starts with one ("Fed" is
    held by "Federal"), as the index's prefix query counts it. Tried and dropped: counting only
    name-like words (capitalised, codes); it caught fewer near misses (README "Answer quality").
    """
    if rare_words is None:
        return 0.0
    rare = rare_words(content_words(question))
    if not rare:
        return 0.0
    missing = [w for w in rare if not any(p.startswith(w) or (len(p) > 3 and w.startswith(p)) for p in in_passages)]
    return len(missing) / len(rare)


def _features(
    best_cosine: float, best_coverage: float, passage_coverage: float, missing_rare: float
) -> dict[str, float]:
    return {
        "best_cosine": best_cosine,
        "best_coverage": best_coverage,
        "passage_coverage": passage_coverage,
        "missing_rare": missing_rare,
    }


def unique(sentences: list[SourceSentence]) -> list[SourceSentence]:
    """Overlapping chunks repeat sentences; keep the first of each document span."""
    seen: set[tuple[str, int, int]] = set()
    out = []
    for s in sentences:
        key = (s.doc_id, s.start, s.end)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out
