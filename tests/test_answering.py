"""Answers with cited spans: the extractive answerer, LLM-output parsing and checks, follow-ups.

These are fast unit tests (hashing encoder; a scripted backend that replays fixed LLM text to
test the parser). The same paths run against real models in test_llm.py and test_integration.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag import RAG
from rag.answering import NOT_IN_DOCUMENTS
from rag.answering.evidence import FEATURES, READER_FEATURES
from rag.answering.llm import LLMAnswerer, build_messages
from rag.chat.follow_ups import heuristic_query, is_follow_up, llm_query
from rag.search.query import SearchError
from tests.conftest import write


@pytest.fixture
def news(rag: RAG, tmp_path: Path) -> RAG:
    feed = [
        {"id": "vote", "date": "2021-09-21", "title": "Election", "url": "https://b.example/vote",
         "text": "Polls closed at eight. The election was won by the green party with 41 percent. "
                 "Turnout reached seventy percent."},
        {"id": "rain", "date": "2021-03-02", "title": "Floods",
         "text": "Heavy rain flooded the river valley. Farmers lost their harvest to the water."},
    ]  # fmt: skip
    write(tmp_path / "feed.jsonl", "\n".join(json.dumps(r) for r in feed))
    rag.index([tmp_path / "feed.jsonl"], progress=False)
    return rag


class Scripted:
    """Replays a fixed reply in pieces, as a streaming backend would."""

    name = "scripted"

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.seen: list[list[dict[str, str]]] = []

    def stream(self, messages: list[dict[str, str]], max_tokens: int = 384) -> Iterator[str]:
        self.seen.append(messages)
        for i in range(0, len(self.reply), 7):
            yield self.reply[i : i + 7]

    def complete(self, messages: list[dict[str, str]], max_tokens: int = 96) -> str:
        return "".join(self.stream(messages, max_tokens))


def test_extractive_answer_quotes_and_cites_the_exact_span(news: RAG) -> None:
    answer = news.ask("Which party won the election?")
    assert answer.answerable and answer.answerer == "extractive"
    (citation,) = answer.citations
    assert citation.quote == "The election was won by the green party with 41 percent."
    assert news.document(citation.doc_id).text[citation.start : citation.end] == citation.quote
    assert (citation.doc_id, citation.title, citation.date, citation.source) == (
        "vote", "Election", "2021-09-21", "https://b.example/vote",
    )  # fmt: skip
    assert answer.text == f"{citation.quote} [1]"
    assert answer.sentences[0].supported and answer.flagged == ()
    assert set(answer.timings_ms) >= {"answer_ms", "total_ms", "retrieval_total_ms"}
    assert answer.passages and answer.query == "Which party won the election?"


def test_the_documents_not_holding_the_answer_is_said_plainly(news: RAG) -> None:
    strict = RAG(news.config.replace(abstain_threshold=0.99), news.store, news.settings)
    answer = strict.ask("Which party won the election?")
    assert not answer.answerable
    assert answer.text == NOT_IN_DOCUMENTS and answer.citations == () and answer.passages


def test_ask_json_shape(news: RAG) -> None:
    data = news.ask("Which party won the election?").to_json()
    assert list(data)[:7] == ["question", "answer", "answerable", "citations", "passages", "query", "timings_ms"]
    assert list(data["citations"][0]) == ["n", "doc_id", "title", "source", "date", "start", "end", "quote", "score"]


def test_bad_questions_and_answerers_are_refused(news: RAG) -> None:
    with pytest.raises(SearchError, match="the question is empty"):
        news.ask("  ")
    with pytest.raises(SearchError, match="answerer 'oracle' is unknown; choose one of extractive, llm"):
        news.ask("x", answerer="oracle")


def test_llm_prompt_numbers_passages_and_sentences(news: RAG) -> None:
    passages = news.search("election party", k=2)
    messages, sentences = build_messages("Who won?", passages)
    user = messages[1]["content"]
    assert "[1] Election (2021-09-21)" in user
    assert "[1.2] The election was won by the green party with 41 percent." in user
    assert user.endswith("Question: Who won?\nAnswer:")
    assert "NOT IN DOCUMENTS" in messages[0]["content"]
    assert sentences[1].label == "1.2"


def test_llm_citations_map_to_exact_spans_and_are_checked(news: RAG) -> None:
    passages = news.search("election party", k=2)
    reply = (
        "The green party won the election with 41 percent [1.2]. "
        "Turnout was seventy percent. [1.3] "
        "The moon is made of cheese [2.1]. "
        "It was a sunny day."
    )
    backend = Scripted(reply)
    answerer = LLMAnswerer(backend, lambda: news.encoder)
    streamed = list(answerer.stream("Who won?", passages))
    assert "".join(p for p in streamed if isinstance(p, str)) == reply
    draft = streamed[-1]
    assert not isinstance(draft, str)
    assert [c.quote for c in draft.citations] == [
        "The election was won by the green party with 41 percent.",
        "Turnout reached seventy percent.",
        passages[1].text.split(". ")[0] + ".",
    ]
    for c in draft.citations:
        assert news.document(c.doc_id).text[c.start : c.end] == c.quote
    won, turnout, cheese, sunny = draft.sentences
    assert won.citations == (1,) and won.supported and won.text == "The green party won the election with 41 percent."
    assert turnout.citations == (2,) and turnout.supported
    assert cheese.citations == (3,) and not cheese.supported  # cited, but the span does not say it
    assert sunny.citations == () and not sunny.cited and not sunny.supported
    assert draft.answerable and len(draft.sentences) - len([s for s in draft.sentences if s.supported]) == 2
    assert draft.text.startswith("The green party won the election with 41 percent. [1] Turnout")
    assert draft.prompt is not None and "### user" in draft.prompt and draft.raw_output == reply


def test_llm_abstention_and_unknown_labels(news: RAG) -> None:
    passages = news.search("election", k=2)
    answerer = LLMAnswerer(Scripted("NOT IN DOCUMENTS"), lambda: news.encoder)
    assert not answerer.answer("Who is the pope?", passages).answerable
    odd = LLMAnswerer(Scripted("It rained [9.9] and [1.77]."), lambda: news.encoder).answer("x", passages)
    # Nothing it wrote cites a real sentence, so nothing is supported: an abstention.
    assert not odd.answerable and odd.citations == () and odd.raw_output == "It rained [9.9] and [1.77]."


def test_a_whole_passage_citation_spans_the_passage(news: RAG) -> None:
    passages = news.search("river flood", k=1)
    draft = LLMAnswerer(Scripted("The valley flooded [1]."), lambda: news.encoder).answer("x", passages)
    (c,) = draft.citations
    assert (c.start, c.end, c.quote) == (passages[0].start, passages[0].end, passages[0].text)


def test_ask_with_an_llm_streams_then_answers(news: RAG) -> None:
    news._llm = Scripted("The green party won [1.2].")
    events = list(news.ask_stream("Who won the election?", answerer="llm"))
    assert "".join(e for e in events if isinstance(e, str)) == "The green party won [1.2]."
    answer = events[-1]
    assert not isinstance(answer, str) and answer.answerer == "llm" and answer.citations


def test_follow_up_questions_use_the_history() -> None:
    history = [("Who is Ahmad Shah Massoud?", "A resistance leader.")]
    assert is_follow_up("and when was he killed?")
    assert is_follow_up("What about 2019?")
    assert not is_follow_up("How many troops did the Afghan government have?")
    assert heuristic_query("and when was he killed?", history) == "when was Ahmad Shah Massoud killed?"
    assert heuristic_query("How many troops did the army have?", history) == "How many troops did the army have?"
    assert heuristic_query("and when was he killed?", None) == "and when was he killed?"
    rewriter = Scripted("When was Ahmad Shah Massoud killed?\n")
    assert llm_query("and when was he killed?", history, rewriter.complete) == "When was Ahmad Shah Massoud killed?"
    assert "User: Who is Ahmad Shah Massoud?" in rewriter.seen[0][1]["content"]


def test_ask_shows_the_rewritten_query(news: RAG) -> None:
    answer = news.ask("and what was the turnout there?", history=[("Who won the election?", "The green party.")])
    assert answer.query == "what was the turnout there (election)?"
    assert answer.question == "and what was the turnout there?"


def test_a_heading_that_repeats_the_question_is_never_the_answer(rag: RAG, tmp_path: Path) -> None:
    write(
        tmp_path / "bridge.md",
        "# Riverside bridge repairs cost\n\nBy Anna Lee\n\nThe repairs will cost 14.2 million euros.",
    )
    rag.index([tmp_path / "bridge.md"], progress=False)
    lenient = RAG(rag.config.replace(abstain_threshold=0.0), rag.store, rag.settings)
    answer = lenient.ask("How much will the Riverside bridge repairs cost?")
    assert [c.quote for c in answer.citations] == ["The repairs will cost 14.2 million euros."]
    assert answer.answer_span is not None and answer.answer_span.text == "14.2 million euros"
    assert answer.marked("<", ">") == "The repairs will cost <14.2 million euros>. [1]"


def test_the_gate_decides_before_the_llm_is_asked(news: RAG) -> None:
    backend = Scripted("The green party won [1.2].")
    news._llm = backend
    strict = RAG(news.config.replace(abstain_threshold=1.0), news.store, news.settings)
    strict._llm = backend
    answer = strict.ask("Who won the election?", answerer="llm")
    assert not answer.answerable and backend.seen == []  # the model was never called
    # The gate's features: the reader's by default, the built-in scoring's with reader = none.
    assert set(answer.evidence) == {"score", "sentences_read", *READER_FEATURES}
    assert answer.evidence["sentences_read"] >= 1
    built_in = RAG(strict.config.replace(reader="none"), news.store, news.settings)
    built_in._llm = backend
    answer = built_in.ask("Who won the election?", answerer="llm")
    assert not answer.answerable and backend.seen == []
    assert set(answer.evidence) == {"score", "sentences_read", *FEATURES}
