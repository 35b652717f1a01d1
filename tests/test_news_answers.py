"""Answers on news text that fights back, with the real bundled model: abbreviations, headings,
bylines and datelines, the answer phrase, near misses, follow-ups and bad questions.

The corpus is examples/news (five short news articles in Markdown) plus the sample article.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest

from rag import RAG
from rag.cli import main
from rag.search.query import SearchError
from tests.conftest import REPO, SAMPLE_ARTICLES

pytestmark = pytest.mark.slow

NEWS = REPO / "examples" / "news"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RAG]:
    root = tmp_path_factory.mktemp("news")
    shutil.copytree(NEWS, root / "news")
    shutil.copytree(SAMPLE_ARTICLES, root / "sample")
    with RAG.open(root / "index") as rag:
        rag.index([root / "news", root / "sample"], progress=False)
        yield rag


def _check_exact(rag: RAG, answer_json: dict) -> None:  # type: ignore[type-arg]
    for c in answer_json["citations"]:
        assert rag.document(c["doc_id"]).text[c["start"] : c["end"]] == c["quote"]
    span = answer_json["answer_span"]
    if span is not None:
        assert rag.document(span["doc_id"]).text[span["start"] : span["end"]] == span["text"]
        cited = next(c for c in answer_json["citations"] if c["n"] == span["citation"])
        assert cited["start"] <= span["start"] < span["end"] <= cited["end"]


@pytest.mark.parametrize(
    ("question", "sentence", "phrase"),
    [
        ("How much will the Riverside bridge repairs cost?", "will cost 14.2 million euros", "14.2 million euros"),
        ("What rate did the Fed keep?", "kept its benchmark rate at 3.75%", "3.75%"),
        # The reader's span head marks the count without its noun, and both days of a meeting.
        ("How many nucleotides does the new coronavirus genome have?", "30,847 nucleotides", "30,847"),
        ("When is the next Fed policy meeting scheduled?", "scheduled for Oct. 28 and 29", "Oct. 28 and 29"),
        ("How many troops did the Afghan government have, according to Massoud?", "300,000 troops", "300,000"),
        ("How many locally acquired dengue cases were reported in Europe?", "412 locally acquired", "412"),
    ],
)  # fmt: skip
def test_the_answer_is_a_whole_sentence_with_its_phrase_marked(
    library: RAG, question: str, sentence: str, phrase: str
) -> None:
    answer = library.ask(question)
    assert answer.answerable, answer.evidence
    assert sentence in answer.text
    assert answer.answer_span is not None and answer.answer_span.text == phrase
    _check_exact(library, answer.to_json())
    for s in answer.sentences:  # never a heading, byline or date line, never cut at an abbreviation
        assert not s.text.startswith(("#", "By ", "Published", "Updated")) and s.text.endswith((".", '"', "”"))


def test_who_is_a_person_the_article_names_is_answered(library: RAG) -> None:
    answer = library.ask("Who is Tomás Ferreira?")
    assert answer.answerable and "city engineer" in answer.text


@pytest.mark.parametrize(
    "question",
    [
        "What is the budget of Project Zephyr?",  # a codename in no document
        "Who is the chief executive of Orbit Systems?",  # the article is there, the answer is not
        "What is the boiling point of mercury?",
    ],
)
def test_questions_the_documents_cannot_answer_are_said_plainly(library: RAG, question: str) -> None:
    answer = library.ask(question)
    assert not answer.answerable and answer.citations == () and answer.answer_span is None


def test_follow_ups_search_the_conversations_subject(library: RAG) -> None:
    first = library.ask("How much will the Riverside bridge repairs cost?")
    second = library.ask("Who pays for them?", history=[(first.question, first.text)])
    assert second.query == "Who pays for Riverside bridge repairs?"
    assert any("regional government will pay" in p.text for p in second.passages)
    third = library.ask("and in the Americas?", history=[("How many dengue cases were reported in Europe?", "412")])
    assert third.query == "How many dengue cases were reported in the Americas?"
    assert any("4.1 million cases" in p.text for p in third.passages)
    council = [("Who must approve the bridge contract?", "The city council must approve the contract.")]
    fourth = library.ask("When do they meet next?", history=council)
    assert fourth.query == "When do city council meet next?" and "Oct. 14" in fourth.text


@pytest.mark.parametrize("question", ["?!", "...", "日本の首都はどこですか", "a " * 900, "x"])
def test_odd_questions_get_an_answer_or_a_plain_no(library: RAG, question: str) -> None:
    answer = library.ask(question, history=[("", ""), ("?", "")])
    assert answer.answerable in (True, False) and answer.text


def test_a_100_kb_question_is_refused_with_the_setting_to_change(library: RAG) -> None:
    with pytest.raises(SearchError, match="max_question_chars"):
        library.ask("why " * 25_000)


def test_the_cli_marks_the_phrase_and_the_json_carries_it(library: RAG, capsys: pytest.CaptureFixture[str]) -> None:
    index = str(library.dir)
    assert main(["ask", "What rate did the Fed keep?", "--index-dir", index]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Answer: **3.75%**\n") and "at **3.75%** on Wednesday" in out
    assert main(["ask", "What rate did the Fed keep?", "--index-dir", index, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["answer_span"]["text"] == "3.75%" and data["evidence"]["score"] >= 0.5
    _check_exact(library, data)
