"""The LLM reply parser on what capable models really write (recorded reply styles).

Replies from instruction-tuned models cite in many ways besides the ``[2.3]`` the prompt asks
for; each style here must map to the same exact source spans. Fast: hashing encoder, and the
replies are replayed by a scripted backend.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag import RAG
from rag.answering.llm import LLMAnswerer, normalise_markers, plain
from tests.conftest import write
from tests.test_answering import Scripted

WON = "The election was won by the green party with 41 percent."
TURNOUT = "Turnout reached seventy percent."


@pytest.fixture
def vote(rag: RAG, tmp_path: Path) -> RAG:
    record = {"id": "vote", "date": "2021-09-21", "title": "Election",
              "text": "Polls closed at eight. " + WON + " " + TURNOUT}  # fmt: skip
    write(tmp_path / "feed.jsonl", json.dumps(record))
    rag.index([tmp_path / "feed.jsonl"], progress=False)
    return rag


# (reply as a model wrote it, the quotes its citations must resolve to)
REPLIES = [
    ("The green party won the election with 41 percent [1.2]. Turnout reached seventy percent [1.3].", [WON, TURNOUT]),
    (
        "The green party won the election with 41 percent【1.2】. Turnout reached seventy percent【1.3】.",
        [WON, TURNOUT],
    ),
    ("The green party won with 41 percent of the vote (Source 1.2).", [WON]),
    ("The green party won with 41 percent [Passage 1.2]. Turnout was seventy percent (sources 1.3).", [WON, TURNOUT]),
    ("The green party won with 41 percent, and turnout reached seventy percent [1.2][1.3].", [WON, TURNOUT]),
    ("The green party won with 41 percent, and turnout reached seventy percent [1.2, 1.3].", [WON, TURNOUT]),
    ("The green party won with 41 percent, and turnout reached seventy percent [1.2; 1.3].", [WON, TURNOUT]),
    ("The green party won with 41 percent.[^1.2]", [WON]),
    (
        "Results:\n\n- **Winner:** the green party, with 41 percent [1.2]\n- *Turnout:* seventy percent [1.3]",
        [WON, TURNOUT],
    ),
    ("1. The green party won with 41 percent [1.2].\n2. Turnout reached seventy percent [1.3].", [WON, TURNOUT]),
    ("**The green party** won the election with 41 percent. [1.2]", [WON]),
]


@pytest.mark.parametrize(("reply", "quotes"), REPLIES, ids=[r[0][:40] for r in REPLIES])
def test_each_citation_style_maps_to_the_exact_sentences(vote: RAG, reply: str, quotes: list[str]) -> None:
    passages = vote.search("election party turnout", k=1)
    draft = LLMAnswerer(Scripted(reply), lambda: vote.encoder).answer("Who won, and what was the turnout?", passages)
    assert draft.answerable
    assert [c.quote for c in draft.citations] == quotes
    for c in draft.citations:
        assert vote.document(c.doc_id).text[c.start : c.end] == c.quote
    assert all(s.cited for s in draft.sentences if "Results" not in s.text)
    assert "[1." not in draft.text and "【" not in draft.text and "Source" not in draft.text


def test_a_list_stays_a_list_and_emphasis_is_kept_for_rendering(vote: RAG) -> None:
    passages = vote.search("election party turnout", k=1)
    reply = REPLIES[8][0]
    draft = LLMAnswerer(Scripted(reply), lambda: vote.encoder).answer("Who won?", passages)
    lines = draft.text.splitlines()
    assert lines[1].startswith("- **Winner:** the green party") and lines[1].endswith("[1]")
    assert lines[2].startswith("- *Turnout:* seventy percent") and lines[2].endswith("[2]")


def test_a_table_stays_a_table_and_renders_safely(vote: RAG) -> None:
    from ui.render import answer_message

    passages = vote.search("election party turnout", k=1)
    reply = ("Results:\n\n| Measure | Value |\n|---|---|\n| Winner | the green party with 41 percent [1.2] |\n"
             "| Turnout | seventy <i>percent</i> [1.3] |")  # fmt: skip
    draft = LLMAnswerer(Scripted(reply), lambda: vote.encoder).answer("Who won?", passages)
    lines = draft.text.splitlines()
    assert lines[1:] == ["| Measure | Value |", "| Winner | the green party with 41 percent | [1]",
                         "| Turnout | seventy <i>percent</i> | [2]"]  # fmt: skip
    from rag.types import Answer

    answer = Answer("Who won?", "Who won?", draft.text, True, draft.sentences, draft.citations, passages, {}, "llm")
    html = answer_message(answer)
    assert '<table class="rag-table"><thead><tr><th>Measure</th><th>Value</th></tr></thead>' in html
    assert '<td>seventy &lt;i&gt;percent&lt;/i&gt;<sup><a class="rag-cite"' in html


@pytest.mark.parametrize(
    "reply",
    [
        "NOT IN DOCUMENTS",
        "I'm sorry, but the passages do not contain information about the pope.",
        "The documents don't mention who the pope is.",
        "I don't know.",
        "",
    ],
)
def test_the_model_saying_it_cannot_answer_is_an_abstention(vote: RAG, reply: str) -> None:
    passages = vote.search("election", k=1)
    assert not LLMAnswerer(Scripted(reply), lambda: vote.encoder).answer("Who is the pope?", passages).answerable


def test_an_answer_none_of_whose_sentences_is_supported_abstains(vote: RAG) -> None:
    passages = vote.search("election", k=1)
    draft = LLMAnswerer(Scripted("François Hollande is the pope [1.1]. He lives in Rome."), lambda: vote.encoder)
    result = draft.answer("Who is the pope?", passages)
    assert not result.answerable and result.raw_output is not None and "Hollande" in result.raw_output


def test_marker_normalisation_and_plain_text() -> None:
    assert normalise_markers("a【2】 b (Sources 1 and 3) c [1-3] d [^4]") == "a[2] b [1, 3] c [1, 2, 3] d [4]"
    assert normalise_markers("in 2021 (about 3.5 percent) [sic]") == "in 2021 (about 3.5 percent) [sic]"
    assert plain("**Winner:** the *green* party `x`") == "Winner: the green party x"
