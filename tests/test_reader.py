"""The trained reader: the shipped weights load and score as their card says; damaged or wrong
weights give one clear line and the answer path falls back; the pieces around it (pairs for
training, spans, reranking, several-sentence answers) behave."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from embeddings.reader import (
    CHECKSUM_FILE,
    MODEL_FILE,
    SHIPPED,
    Reader,
    ReaderError,
    Scored,
    _best_span,
    verify,
)
from embeddings.reader.train import token_span
from rag.answering import reading
from rag.answering.answer_types import asks_for_several
from rag.answering.citations import SourceSentence
from rag.types import Passage


@pytest.fixture(scope="module")
def shipped() -> Reader:
    return Reader()


def test_the_shipped_weights_match_their_checksums_and_size() -> None:
    verify(SHIPPED)  # raises on any mismatch
    assert (SHIPPED / MODEL_FILE).stat().st_size < 25_000_000
    assert (SHIPPED / "MODEL_CARD.md").read_text(encoding="utf-8").startswith("# The reader")


def test_the_shipped_reader_scores_its_known_pair_as_the_card_says(shipped: Reader) -> None:
    known = json.loads((SHIPPED / "card.json").read_text(encoding="utf-8"))["known_pair"]
    [scored] = shipped.score(known["question"], [known["sentence"]])
    assert scored.relevance == pytest.approx(known["relevance"], abs=1e-3)
    assert scored.span is not None
    assert known["sentence"][scored.span[0] : scored.span[1]] == known["span"]
    [other] = shipped.score(known["question"], [known["negative"]])
    assert other.relevance < 0.5 < scored.relevance


def test_the_reader_prefers_the_answer_to_the_lead_that_restates_the_question(shipped: Reader) -> None:
    question = "Why did the tunnel cost rise?"
    lead = "The cost of the Harbor Street tunnel has risen again, city officials said Thursday."
    answer = "Officials said the tunnel cost rose because of higher steel prices and a six-month delay."
    lead_score, answer_score = shipped.score(question, [lead, answer])
    assert answer_score.relevance > lead_score.relevance


def test_a_reader_trained_without_headlines_ignores_them(shipped: Reader) -> None:
    assert not shipped.settings.context  # the shipped recipe reads no headline
    question, sentence = "How many pilots walked out?", "About 1,100 pilots walked out on Tuesday."
    [alone] = shipped.score(question, [sentence])
    [given] = shipped.score(question, [sentence], ["Storm closes schools across the county"])
    assert given.relevance == alone.relevance


def test_the_headline_is_cut_and_must_match_the_sentences() -> None:
    from embeddings.reader import CONTEXT_WORDS, first_segment

    long = " ".join(f"w{i}" for i in range(40))
    assert first_segment("Q?", long) == "Q? [SEP] " + " ".join(f"w{i}" for i in range(CONTEXT_WORDS))
    assert first_segment("Q?", "") == first_segment("Q?", None) == "Q?"
    with pytest.raises(ValueError, match="1 contexts for 2 sentences"):
        Reader().score("Q?", ["a b c", "d e f"], ["only one"])


def test_read_gives_each_sentence_its_passages_title() -> None:
    seen: list[list[str]] = []

    class Recording:
        def score(self, question: str, texts: list[str], contexts: list[str]) -> list[Scored]:
            seen.append(list(contexts))
            return [Scored(0.5, None, 0.0) for _ in texts]

    sentences = [_sentence(1, 1, "d0", 0), _sentence(2, 1, "d1", 0)]
    reading.read(Recording(), "What about it?", sentences, None, headlines=["First title", "Second title"])  # type: ignore[arg-type]
    assert sorted(seen[0]) == ["First title", "Second title"]
    reading.read(Recording(), "What about it?", sentences, None)  # type: ignore[arg-type]
    assert seen[1] == ["", ""]  # no titles given: none read


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "reader"
    shutil.copytree(SHIPPED, folder)
    return folder


def test_a_damaged_weights_file_is_named_with_the_fix(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    with (folder / MODEL_FILE).open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\0" * 64)
    with pytest.raises(ReaderError, match=f"{MODEL_FILE} does not match its checksum.*reader = none"):
        Reader(folder)


def test_a_missing_checksum_file_is_named(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / CHECKSUM_FILE).unlink()
    with pytest.raises(ReaderError, match=f"{CHECKSUM_FILE} cannot be read"):
        Reader(folder)


def test_a_folder_that_is_not_a_reader_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReaderError, match=f"holds no reader \\({MODEL_FILE} is missing\\)"):
        Reader(tmp_path)


def test_an_unloadable_model_with_a_matching_checksum_is_refused(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / MODEL_FILE).write_bytes(b"not an onnx file")
    from embeddings.reader.train import write_checksums

    write_checksums(folder)
    with pytest.raises(ReaderError, match="cannot be loaded"):
        Reader(folder)


def test_an_unusable_reader_warns_once_and_the_answer_path_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nowhere")
    assert reading.load_reader(missing) is None
    assert reading.load_reader(missing) is None
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("rag: warning: ") and "nowhere" in lines[0] and "built-in sentence scoring" in lines[0]
    assert reading.load_reader("none") is None
    assert reading.load_reader("NONE") is None


def test_token_span_finds_the_answers_tokens_in_the_sentence() -> None:
    # [CLS] q [SEP] s1 s2 s3 [SEP]: offsets are per sequence
    sequence_ids = [None, 0, None, 1, 1, 1, None]
    offsets = [(0, 0), (0, 4), (0, 0), (0, 3), (4, 9), (10, 15), (0, 0)]
    assert token_span(sequence_ids, offsets, 4, 9) == (4, 4)
    assert token_span(sequence_ids, offsets, 4, 15) == (4, 5)
    assert token_span(sequence_ids, offsets, 20, 25) is None  # cut off by truncation


def test_the_best_span_stays_in_the_sentence_and_in_order() -> None:
    sequence_ids = [None, 0, 0, None, 1, 1, 1, None]
    offsets = [(0, 0), (0, 3), (4, 8), (0, 0), (0, 5), (6, 9), (10, 14), (0, 0)]
    starts = np.array([9.0, 9.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0])  # the question's tokens score high
    ends = np.array([9.0, 9.0, 0.0, 0.0, 0.0, 0.0, 5.0, 0.0])
    span, confidence = _best_span(sequence_ids, offsets, starts, ends)
    assert span == (6, 14)
    assert 0.9 < confidence <= 1.0


def _sentence(passage: int, number: int, doc: str, start: int) -> SourceSentence:
    return SourceSentence(passage, number, doc, start, start + 10, "x" * 10)


def test_rerank_moves_the_passage_with_the_answering_sentence_up() -> None:
    passages = [Passage(i + 1, i, f"d{i}", f"Doc {i}", "src", None, 0, 100, "text", 1.0) for i in range(3)]
    sentences = [_sentence(1, 1, "d0", 0), _sentence(2, 1, "d1", 0), _sentence(3, 1, "d2", 0)]
    scores = {
        reading.key_of(sentences[0]): reading.SentenceRead(Scored(0.1, None, 0.0), 0.1),
        reading.key_of(sentences[2]): reading.SentenceRead(Scored(0.95, None, 0.0), 0.95),
    }
    reranked = reading.rerank(passages, sentences, scores)
    assert [p.doc_id for p in reranked] == ["d2", "d0", "d1"]
    assert [p.rank for p in reranked] == [1, 2, 3]  # ranks say the order shown
    # With no weight on the reader, the retrieval order stays.
    assert [p.doc_id for p in reading.rerank(passages, sentences, scores, weight=0.0)] == ["d0", "d1", "d2"]


@pytest.mark.parametrize(
    ("question", "several"),
    [
        ("Why did the tunnel cost rise?", True),
        ("Which cities had the most measles cases?", True),
        ("What are the reasons for the delay?", True),
        ("Who voted against the budget and when does the rate take effect?", True),
        ("How many pilots walked out?", False),
        ("Who will lead the national cyber command?", False),
        ("When does the new tax rate take effect?", False),
    ],
)
def test_questions_that_ask_for_several_facts_are_told_apart(question: str, several: bool) -> None:
    assert asks_for_several(question) is several
