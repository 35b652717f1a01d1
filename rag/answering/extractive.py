"""The offline answerer: the answer is the source sentences that best answer the question.

Each sentence of the retrieved passages gets a score that mixes its embedding similarity to
the question with how many of the question's content words it contains; the best sentence
(and its neighbour, when that scores nearly as well) is the answer, quoted verbatim and cited
with its exact span. If even the best sentence scores below ``threshold`` the documents are
taken not to hold the answer (see README "Answer quality" for how the threshold was chosen).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from rag.answering import NOT_IN_DOCUMENTS, Draft
from rag.citations import SourceSentence, citation_for, coverage, source_sentences
from rag.types import AnswerSentence, Passage

# Weights of the sentence score; chosen on ../shared/datasets (README "Answer quality").
SEMANTIC_WEIGHT = 0.6
LEXICAL_WEIGHT = 0.4
# A neighbouring sentence joins the answer when it scores at least this share of the best.
NEIGHBOUR_SHARE = 0.9


class ExtractiveAnswerer:
    name = "extractive"

    def __init__(self, encoder: Callable[[], object], threshold: float) -> None:
        self._encoder = encoder
        self.threshold = threshold

    def score(self, question: str, sentences: Sequence[SourceSentence]) -> np.ndarray:
        """Each sentence's score for answering ``question`` (about 0 to 1)."""
        if not sentences:
            return np.zeros(0, dtype=np.float32)
        encoder = self._encoder()
        query = encoder.encode_queries([question])[0]  # type: ignore[attr-defined]
        vectors = encoder.encode_documents([s.text for s in sentences])  # type: ignore[attr-defined]
        semantic = vectors @ query
        lexical = np.array([coverage(question, s.text) for s in sentences], dtype=np.float32)
        scores: np.ndarray = SEMANTIC_WEIGHT * semantic + LEXICAL_WEIGHT * lexical
        return scores

    def answer(self, question: str, passages: Sequence[Passage]) -> Draft:
        sentences = _unique(source_sentences(passages))
        scores = self.score(question, sentences)
        if len(sentences) == 0 or float(scores.max()) < self.threshold:
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
