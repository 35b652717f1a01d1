"""The trained reader in the answer path: it reads the passages' sentences with the question.

``read`` scores the best candidate sentences of the retrieved passages with the reader
(``embeddings.reader``): the probability that each holds the answer, and the answer phrase in
it. ``rerank`` orders the passages by their best sentence, fused with the retrieval order, so
the passage that answers comes first for both answerers. The evidence gate and the extractive
answerer then use the same scores (``rag.answering.evidence``, ``rag.answering.extractive``).

Which reader: ``reader = "shipped"`` (the default, the weights in the repository), a folder made
by ``python -m eval.train_reader``, or ``"none"`` for the scoring used before the reader
existed. A reader that cannot be used (missing, damaged, not a reader) gives one warning line
naming the file and the fix, and the answer path goes on without it.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from embeddings.reader import SHIPPED, Reader, ReaderError, Scored
from rag.answering.answer_types import new_candidates
from rag.answering.citations import SourceSentence, coverage
from rag.types import Passage

# The setting's values that are not folders.
SHIPPED_READER = "shipped"
NO_READER = "none"
# Sentences read per question: those sharing most words with the question (a typed candidate
# counts as a shared word). Each costs about 1 ms on two cores; reading more than 24 found the
# answer sentence for no more tuning questions (docs/benchmarks.md, "The reader").
MAX_READ = 24
# A passage's place after reranking: this share of its best sentence's relevance, the rest
# from its retrieval rank (1 for the first passage, falling linearly). Fitted on the tuning
# half of the held-out documents (benchmarks/answer_quality.py --fit).
RERANK_WEIGHT = 0.7
TYPE_BONUS = 0.1
# A sentence's selection score: the reader's relevance + PRIOR_WEIGHT x its passage's retrieval
# prior (1 for the first retrieved passage, falling linearly) + LEXICAL_WEIGHT x the share of
# the question's words it holds. The shipped reader sees one sentence, not its article: the prior
# brings in what retrieval knew (the headline, the dateline, the names around it). Fitted on
# the tuning half of the held-out documents (benchmarks/answer_quality.py --fit).
PRIOR_WEIGHT = 0.5
LEXICAL_WEIGHT = 0.3

Key = tuple[str, int, int]  # (doc_id, start, end) of a sentence

_loaded: dict[str, Reader | None] = {}
_loading = threading.Lock()


def load_reader(setting: str | None) -> Reader | None:
    """The reader a setting names, loaded once per process; None when it is off or unusable
    (then one warning line says why, and the answer path uses the built-in scoring)."""
    if setting is None or setting.strip().lower() == NO_READER:
        return None
    folder = SHIPPED if setting.strip().lower() == SHIPPED_READER else Path(setting).expanduser()
    key = str(folder)
    with _loading:
        if key not in _loaded:
            try:
                _loaded[key] = Reader(folder)
            except ReaderError as error:
                print(f"rag: warning: {error}; answering with the built-in sentence scoring instead",
                      file=sys.stderr, flush=True)  # fmt: skip
                _loaded[key] = None
        return _loaded[key]


def key_of(sentence: SourceSentence) -> Key:
    return (sentence.doc_id, sentence.start, sentence.end)


def candidates(question: str, sentences: Sequence[SourceSentence], kind: str | None, limit: int) -> list[int]:
    """Indexes of the prose sentences most worth scoring: most question words first (a phrase
    of the asked-for type counts as one), earlier passages first on ties."""
    prose = [i for i, s in enumerate(sentences) if not s.is_structure]
    weight = {
        i: coverage(question, sentences[i].text)
        + (TYPE_BONUS if kind is not None and new_candidates(question, sentences[i].text, kind) else 0.0)
        for i in prose
    }
    return sorted(prose, key=lambda i: (-weight[i], i))[:limit]


def retrieval_prior(passage: int, count: int) -> float:
    """What retrieval's order says of passage number ``passage`` (1-based) of ``count``: 1 for
    the first, falling linearly. The selection score and the rerank both use it."""
    return 1 - (passage - 1) / count


def headline_of(sentence: SourceSentence, headlines: Sequence[str]) -> str:
    """The title of the sentence's passage, or "" when none was given."""
    return headlines[sentence.passage - 1] if 0 < sentence.passage <= len(headlines) else ""


@dataclass(frozen=True)
class SentenceRead:
    scored: Scored  # the reader's verdict
    selection: float  # relevance + the weighted prior and word share (above)


def read(
    reader: Reader,
    question: str,
    sentences: Sequence[SourceSentence],
    kind: str | None,
    limit: int | None = None,
    headlines: Sequence[str] = (),
) -> dict[Key, SentenceRead]:
    """The reader's verdict on the candidate sentences of passages in retrieval order;
    ``headlines[n - 1]`` is passage n's title, read with its sentences."""
    chosen = candidates(question, sentences, kind, MAX_READ if limit is None else limit)
    contexts = [headline_of(sentences[i], headlines) for i in chosen]
    scored = reader.score(question, [sentences[i].text for i in chosen], contexts)
    count = max((s.passage for s in sentences), default=1)
    out = {}
    for i, verdict in zip(chosen, scored, strict=True):
        prior = retrieval_prior(sentences[i].passage, count)
        selection = verdict.relevance + PRIOR_WEIGHT * prior + LEXICAL_WEIGHT * coverage(question, sentences[i].text)
        out[key_of(sentences[i])] = SentenceRead(verdict, selection)
    return out


def rerank(
    passages: Sequence[Passage],
    sentences: Sequence[SourceSentence],
    reading: Mapping[Key, SentenceRead],
    weight: float = RERANK_WEIGHT,
) -> list[Passage]:
    """The passages, best first: ``weight`` x their best sentence's relevance + the rest x their
    retrieval rank's score. A stable sort, so equal passages keep the retrieval order."""
    if not passages:
        return []
    best = [0.0] * len(passages)
    for s in sentences:
        found = reading.get(key_of(s))
        if found is not None:
            best[s.passage - 1] = max(best[s.passage - 1], found.scored.relevance)
    count = len(passages)
    fused = [weight * best[i] + (1 - weight) * retrieval_prior(i + 1, count) for i in range(count)]
    order = sorted(range(count), key=lambda i: -fused[i])
    return [dataclasses.replace(passages[i], rank=n) for n, i in enumerate(order, start=1)]
