from __future__ import annotations

import json
import random
from itertools import pairwise
from pathlib import Path

import pytest

from rag.ingest.chunking import chunk_text, count_tokens, segments, sentence_spans, structure

AWKWARD = {
    "non_ascii": "Ünïcödé façade — naïve café. 東京は日本の首都です。 Emoji 🙂🚀 here! Zürich’s “quotes”. " * 40,
    "long_no_punctuation": " ".join(f"wörd{i}" for i in range(900))[:5000],
    "whitespace_runs": "First   sentence.\n\n\n\n   Second\t\t sentence   here.   \n \n" * 30 + "   \n",
    "shorter_than_a_chunk": "A short note.",
    "combining_marks": "e\u0301te\u0301 cafe\u0301. " * 100,
    "no_spaces_cjk": "日本語の文章は空白なしで続きます" * 120,
}


@pytest.mark.parametrize("name", sorted(AWKWARD))
@pytest.mark.parametrize(("tokens", "overlap"), [(32, 8), (128, 32), (256, 0)])
def test_every_chunk_is_an_exact_slice_of_the_document(name: str, tokens: int, overlap: int) -> None:
    text = AWKWARD[name]
    chunks = chunk_text("d", text, tokens, overlap)
    assert chunks, "a non-empty document gives at least one chunk"
    for ordinal, chunk in enumerate(chunks):
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.ordinal == ordinal
        assert chunk.text == chunk.text.strip(), "chunks do not start or end in whitespace"
    # Nothing but whitespace is left out.
    covered = [False] * len(text)
    for chunk in chunks:
        covered[chunk.start : chunk.end] = [True] * (chunk.end - chunk.start)
    assert all(c or ch.isspace() for c, ch in zip(covered, text, strict=True))


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_chunks_stay_within_the_token_budget(name: str) -> None:
    text = AWKWARD[name]
    for chunk in chunk_text("d", text, 64, 16):
        assert count_tokens(chunk.text) <= 64


def test_the_long_unpunctuated_sentence_is_cut_into_several_chunks() -> None:
    text = AWKWARD["long_no_punctuation"]
    assert len(text) == 5000
    chunks = chunk_text("d", text, 128, 32)
    assert len(chunks) >= count_tokens(text) // 128
    assert chunks[0].start == 0 and chunks[-1].end == len(text)


def test_a_short_document_is_one_chunk() -> None:
    chunks = chunk_text("d", "A short note.", 128, 32)
    assert [(c.start, c.end, c.text) for c in chunks] == [(0, 13, "A short note.")]


def test_empty_and_blank_documents_give_no_chunks() -> None:
    assert chunk_text("d", "", 128, 32) == []
    assert chunk_text("d", " \n\t ", 128, 32) == []


def test_chunks_end_on_sentence_boundaries_and_overlap_by_whole_sentences() -> None:
    sentences = [f"Sentence number {i} says something short." for i in range(60)]
    text = " ".join(sentences)
    chunks = chunk_text("d", text, 48, 12)
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.text.startswith("Sentence number") and chunk.text.endswith(".")
    for before, after in pairwise(chunks):
        assert after.start < before.end, "consecutive chunks share trailing sentences"
        assert after.start > before.start, "every chunk moves on"


def test_zero_overlap_gives_disjoint_chunks() -> None:
    text = " ".join(f"Sentence {i} is here." for i in range(200))
    chunks = chunk_text("d", text, 40, 0)
    for before, after in pairwise(chunks):
        assert after.start >= before.end


def test_random_texts_keep_exact_offsets() -> None:
    rng = random.Random(7)
    alphabet = ["abc", "DEF", "xyz.", "!", "?", "\n\n\t", "é", "ü", "東", "🙂", "“”", " ", "  ", ".", "\n"]
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        for chunk in chunk_text("d", text, rng.choice([16, 32, 64]), rng.choice([0, 4, 8])):
            assert chunk.text == text[chunk.start : chunk.end]
            assert chunk.text.strip()


# --- sentences and structure on news text -----------------------------------------------

NEWS = json.loads((Path(__file__).parent / "fixtures" / "news_sentences.json").read_text())["paragraphs"]


@pytest.mark.parametrize("sentences", NEWS, ids=lambda s: s[-1][:30])
def test_news_paragraphs_split_exactly_into_their_sentences(sentences: list[str]) -> None:
    text = " ".join(sentences)
    assert [text[a:b] for a, b in sentence_spans(text)] == sentences


ARTICLE = """# Riverside bridge repairs to start in spring

By Anna Lee and Tomás Ferreira
Published 2026-09-30

RIVERSIDE (Reuters) — The repairs will cost 14.2 million euros, Mr. Ferreira said.
The council meets again on Sept. 16 in St. Louis
and will vote then.

Why the delay

Engineers found cracks in Jan. 2026.
"""


def test_titles_headings_bylines_dates_and_datelines_are_structure_not_sentences() -> None:
    found = [(ARTICLE[s.start : s.end], s.kind) for s in segments(ARTICLE)]
    assert found == [
        ("# Riverside bridge repairs to start in spring", "heading"),
        ("By Anna Lee and Tomás Ferreira", "byline"),
        ("Published 2026-09-30", "date"),
        ("RIVERSIDE (Reuters) —", "dateline"),
        ("The repairs will cost 14.2 million euros, Mr. Ferreira said.", "sentence"),
        ("The council meets again on Sept. 16 in St. Louis\nand will vote then.", "sentence"),
        ("Why the delay", "heading"),
        ("Engineers found cracks in Jan. 2026.", "sentence"),
    ]
    assert [s.kind for s in structure(ARTICLE)] == ["heading", "byline", "date", "dateline", "heading"]


def test_a_plain_first_line_is_a_title_only_at_the_start_of_a_document() -> None:
    text = "Fed holds rates steady\nThe Fed kept its rate at 3.75% on Wednesday."
    assert [s.kind for s in segments(text)] == ["title", "sentence"]
    assert [s.kind for s in segments(text, document_start=False)] == ["sentence"]


def test_a_headline_glued_to_its_date_line_is_a_heading() -> None:
    text = "Intro text ends here.\nMarkets rally on rate news\nUpdated Sept. 30, 2026\nShares rose 4% on Monday."
    kinds = [(text[s.start : s.end], s.kind) for s in segments(text)]
    assert ("Markets rally on rate news", "heading") in kinds
    assert ("Shares rose 4% on Monday.", "sentence") in kinds


def test_one_line_without_a_full_stop_is_prose() -> None:
    assert [s.kind for s in segments("the quick brown fox")] == ["sentence"]
