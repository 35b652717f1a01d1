"""The offline answerer: the answer is the source sentences that best answer the question.

Each sentence of the retrieved passages gets a score that mixes its embedding similarity to
the question with how many of the question's content words it contains; the best sentence
(and its neighbour, when that scores nearly as well) is the answer, quoted verbatim and cited
with its exact span. Whether to answer at all is decided on embedding similarity alone: if no
sentence reaches ``threshold`` the documents are taken not to hold the answer. Word overlap
helps pick the right sentence but also matches by coincidence, so it would blur that decision
(README "Answer quality" has the measurements behind both choices).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from rag.answering import NOT_IN_DOCUMENTS, Draft
from rag.citations import SourceSentence, citation_for, coverage, source_sentences
from rag.types import AnswerSentence, Passage

# Weights of the sentence score; chosen on the development question sets (README "Answer quality").
SEMANTIC_WEIGHT = 0.6
LEXICAL_WEIGHT = 0.4
# A neighbouring sentence joins the answer when it scores at least this share of the best.
NEIGHBOUR_SHARE = 0.9
# Embedding sentences is most of an answer's time, so only this many are embedded: those that
# share most words with the question, earlier passages first on ties. On both development sets
# 16 gave the same answers and abstentions as embedding all (about 30), at half the time.
MAX_EMBEDDED = 16
# Small batches: sentences differ in length, and one batch of 32 pads them all to the longest
# (measured: 157 ms for 30 sentences at batch 32, 108 ms at batch 8).
SENTENCE_BATCH = 8


class ExtractiveAnswerer:
    name = "extractive"

    def __init__(self, encoder: Callable[[], object], threshold: float) -> None:
        self._encoder = encoder
        self.threshold = threshold

    def score(
        self, question: str, sentences: Sequence[SourceSentence], query_vector: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each sentence's (selection score, embedding similarity) for ``question``.

        ``query_vector`` is the question's embedding when retrieval already computed it.
        """
        if not sentences:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32)
        encoder = self._encoder()
        lexical = np.array([coverage(question, s.text) for s in sentences], dtype=np.float32)
        # Pre-rank by word overlap, breaking ties by position (earlier passages rank higher).
        kept = np.argsort(-(lexical - 1e-6 * np.arange(len(sentences))), kind="stable")[:MAX_EMBEDDED]
        query = encoder.encode_queries([question])[0] if query_vector is None else query_vector  # type: ignore[attr-defined]
        vectors = encoder.encode_documents(  # type: ignore[attr-defined]
            [sentences[i].text for i in kept], batch_size=SENTENCE_BATCH
        )
        # Sentences left out score -1 on both counts, so they are never chosen.
        semantic = np.full(len(sentences), -1.0, dtype=np.float32)
        semantic[kept] = vectors @ query
        selection = np.full(len(sentences), -1.0, dtype=np.float32)
        selection[kept] = SEMANTIC_WEIGHT * semantic[kept] + LEXICAL_WEIGHT * lexical[kept]
        return selection, semantic

    def answer(self, question: str, passages: Sequence[Passage], query_vector: np.ndarray | None = None) -> Draft:
        sentences = _unique(source_sentences(passages))
        scores, semantic = self.score(question, sentences, query_vector)
        if len(sentences) == 0 or float(semantic.max()) < self.threshold:
            return Draft(text=NOT_IN_DOCUMENTS, answerable=False, sentences=(), citations=())
        best = int(scores.argmax())
        chosen = [best]
        for other in (best - 1, best + 1):
            # Only the sentence right beside it in the same document, so the answer reads on.
            if (
                0 <= other < len(sentences)
                and _adjacent(sentences[best], sentences[other])
                and scores[other] >= NEIGHBOUR_SHARE * scores[best]
            ):
                chosen.append(other)
        chosen.sort(key=lambda i: sentences[i].start)
        by_number = {i + 1: p for i, p in enumerate(passages)}
        citations = []
        answer_sentences = []
        for n, index in enumerate(chosen, start=1):
            sentence = sentences[index]
            # Verbatim source text supports itself fully.
            citations.append(citation_for(n, sentence, by_number[sentence.passage], 1.0))
            answer_sentences.append(AnswerSentence(sentence.text, (n,), 1.0, True))
        text = " ".join(f"{s.text} [{n}]" for n, s in enumerate(answer_sentences, start=1))
        return Draft(text=text, answerable=True, sentences=tuple(answer_sentences), citations=tuple(citations))


def _unique(sentences: list[SourceSentence]) -> list[SourceSentence]:
    """Overlapping chunks repeat sentences; keep the first of each document span."""
    seen: set[tuple[str, int, int]] = set()
    out = []
    for s in sentences:
        key = (s.doc_id, s.start, s.end)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def _adjacent(a: SourceSentence, b: SourceSentence) -> bool:
    return a.doc_id == b.doc_id and a.passage == b.passage and abs(a.number - b.number) == 1
