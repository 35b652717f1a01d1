"""The offline answerer: the answer is the source sentences that best answer the question.

It quotes the best sentence that ``rag.answering.evidence.assess`` found (and its neighbour,
when that scores nearly as well), verbatim, cited with its exact span, and marks the answer
phrase inside it when the question asks for a type of answer (a number, a date, a name) and
exactly one phrase of that type stands out. Whether to answer at all was decided by the
evidence gate before this runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from rag.answering import NOT_IN_DOCUMENTS, Draft
from rag.answering.answer_types import answer_phrase, asks_for_several
from rag.answering.citations import SourceSentence, citation_for
from rag.answering.evidence import Evidence
from rag.types import AnswerSentence, AnswerSpan, Passage

# A neighbouring sentence joins the answer when it scores at least this share of the best.
NEIGHBOUR_SHARE = 0.9
# With the reader: a why, list or two-part question quotes up to this many sentences, each one
# the reader judges to hold (part of) the answer. Fitted on the tuning half of the held-out
# documents (benchmarks/answer_quality.py --fit).
MAX_SENTENCES = 3
SEVERAL_MIN = 0.3
# The reader's answer phrase is marked when P(start) x P(end) is at least SPAN_MIN and the
# reader gives its sentence at least SPAN_RELEVANCE_MIN: a confident phrase in a doubtful
# sentence was right for fewer than half of the tuning questions.
SPAN_MIN = 0.2
SPAN_RELEVANCE_MIN = 0.7


class ExtractiveAnswerer:
    name = "extractive"

    def answer(self, evidence: Evidence, passages: Sequence[Passage]) -> Draft:
        best = evidence.best
        if not evidence.answerable or best is None:
            return Draft(text=NOT_IN_DOCUMENTS, answerable=False, sentences=(), citations=())
        sentences, scores = evidence.sentences, evidence.selection
        chosen = [best]
        if evidence.read and asks_for_several(evidence.question):
            # Every sentence the reader judges to answer, best first, not the lead that merely
            # names the topic (it scores low with the reader).
            # From the same article: a reason or a list is told in one story (on the tuning
            # questions this lost nothing and shortened answers).
            answering = [
                i
                for i, v in enumerate(evidence.read)
                if i != best
                and v is not None
                and v.relevance >= SEVERAL_MIN
                and sentences[i].doc_id == sentences[best].doc_id
            ]
            others = sorted(answering, key=lambda i: -scores[i])
            chosen += others[: MAX_SENTENCES - 1]
        for other in (best - 1, best + 1):
            # Only the sentence right beside it in the same passage, so the answer reads on.
            if (
                len(chosen) < MAX_SENTENCES
                and other not in chosen
                and 0 <= other < len(sentences)
                and not sentences[other].is_structure
                and _adjacent(sentences[best], sentences[other])
                and scores[other] >= NEIGHBOUR_SHARE * scores[best]
            ):
                chosen.append(other)
        chosen.sort(key=lambda i: (sentences[i].passage, sentences[i].start))
        by_number = {i + 1: p for i, p in enumerate(passages)}
        citations = []
        answer_sentences = []
        span = None
        for n, index in enumerate(chosen, start=1):
            sentence = sentences[index]
            # Verbatim source text supports itself fully.
            citations.append(citation_for(n, sentence, by_number[sentence.passage], 1.0))
            answer_sentences.append(AnswerSentence(sentence.text, (n,), 1.0, True))
            if index == best and evidence.read:
                read = evidence.read[index]
                if (
                    read is not None
                    and read.span is not None
                    and read.span_confidence >= SPAN_MIN
                    and read.relevance >= SPAN_RELEVANCE_MIN
                ):
                    a, b = read.span
                    span = AnswerSpan(n, sentence.doc_id, sentence.start + a, sentence.start + b,
                                      sentence.text[a:b], evidence.kind or "phrase")  # fmt: skip
            elif index == best:
                phrase = answer_phrase(evidence.question, sentence.text, evidence.kind)
                if phrase is not None:
                    span = AnswerSpan(
                        citation=n,
                        doc_id=sentence.doc_id,
                        start=sentence.start + phrase.start,
                        end=sentence.start + phrase.end,
                        text=sentence.text[phrase.start : phrase.end],
                        kind=phrase.kind,
                    )
        text = " ".join(f"{s.text} [{n}]" for n, s in enumerate(answer_sentences, start=1))
        return Draft(
            text=text,
            answerable=True,
            sentences=tuple(answer_sentences),
            citations=tuple(citations),
            answer_span=span,
        )


def _adjacent(a: SourceSentence, b: SourceSentence) -> bool:
    return a.doc_id == b.doc_id and a.passage == b.passage and abs(a.number - b.number) == 1
