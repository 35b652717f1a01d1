"""What a question asks for, the answer phrase, and follow-ups resolved against their subject."""

from __future__ import annotations

import pytest

from rag.answering.answer_types import answer_phrase, expected_type
from rag.chat.follow_ups import heuristic_query, noun_phrases

PHRASES = [
    ("What rate did the Fed keep?", "The U.S. Federal Reserve kept its benchmark rate at 3.75% on Wednesday.", "3.75%"),
    ("How many nucleotides does the genome have?", "The virus genome has 30,847 nucleotides, the team said.",
     "30,847 nucleotides"),
    ("How much will the Riverside bridge repairs cost?",
     "The repairs will cost 14.2 million euros, Mr. Ferreira said on Tuesday.", "14.2 million euros"),
    ("How many troops did the Afghan government have, according to Massoud?",
     "Massoud argued that the Afghan government was equipped with 300,000 troops, arms, and tanks.",
     "300,000 troops"),
    ("When is the next policy meeting?", "The next policy meeting is scheduled for Oct. 28 and 29.", "Oct. 28"),
    ("When was Ahmad Shah Massoud assassinated?",
     "It coincided with the 20th anniversary of his assassination on September 9, 2001.", "September 9, 2001"),
    ("Who led the study?", "The study was led by Dr. Li Wen.", "Li Wen"),
    ("Where was the virus sequenced?", "It was sequenced at the Wuhan Institute of Virology.",
     "Wuhan Institute of Virology"),
    ("Which organisation reported the cases in the Americas?",
     "More cases were reported, according to the Pan American Health Organization.",
     "Pan American Health Organization"),
]  # fmt: skip


@pytest.mark.parametrize(("question", "sentence", "phrase"), PHRASES, ids=[p[2] for p in PHRASES])
def test_the_answer_phrase_is_the_part_of_the_wanted_type_the_question_lacks(
    question: str, sentence: str, phrase: str
) -> None:
    found = answer_phrase(question, sentence, expected_type(question))
    assert found is not None and sentence[found.start : found.end] == phrase


@pytest.mark.parametrize(
    ("question", "sentence"),
    [
        ("What did Massoud say about the Taliban?", "Massoud said the Taliban is leaderless."),  # no type asked
        ("Why did he resign?", "He resigned because of the scandal."),  # a reason is a clause, not a phrase
        ("How many troops were there?", "Nobody knows how strong the army was."),  # no number at all
        ("Who met whom?", "Mr. Smith met Dr. Jones and Ms. Lee in Paris."),  # several names: not clear
        ("When did 2021 end?", "The year 2021 ended quietly."),  # only the question's own date
    ],
)
def test_no_phrase_is_marked_when_none_stands_out(question: str, sentence: str) -> None:
    assert answer_phrase(question, sentence, expected_type(question)) is None


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How much will it cost?", "number"), ("What percentage of patients recovered?", "number"),
        ("When do they meet next?", "date"), ("In what year was it founded?", "date"),
        ("Who leads the NRF?", "person"), ("Where was it found?", "place"),
        ("Which company builds the camera?", "organisation"), ("Why was the launch delayed?", "reason"),
        ("What is dengue?", None),
    ],
)  # fmt: skip
def test_question_types(question: str, kind: str | None) -> None:
    assert expected_type(question) == kind


CONVERSATIONS = [
    # (earlier turns as (question, answer), follow-up, the standalone question searched)
    ([("How much will the Riverside bridge repairs cost?", "The repairs will cost 14.2 million euros.")],
     "Who pays for them?", "Who pays for Riverside bridge repairs?"),
    ([("Who must approve the bridge contract?", "The city council must approve the contract before work begins.")],
     "When do they meet next?", "When do city council meet next?"),
    ([("What is the incidence of dengue in Europe?", "x")], "and in the Americas?",
     "What is the incidence of dengue in the Americas?"),
    ([("What is the incubation period of MERS?", "x")], "What about SARS?", "What is the incubation period of SARS?"),
    ([("What did the council decide about the bridge?", "x")], "Why?", "Why did the council decide about the bridge?"),
    ([("Who is Tomás Ferreira?", "The city engineer."), ("What did he find?", "Cracks in three pillars.")],
     "When did he find them?", "When did Tomás Ferreira find Tomás Ferreira?"),
    ([("When will Orbit Systems launch Kestrel-2?", "In March 2027."), ("Why was it delayed?", "A fault.")],
     "Will they repair the engine?", "Will Orbit Systems repair the engine?"),
    # An answer that names nobody ("He found ...") leaves the question's own subject.
    ([("Who found the cracks?", "He found cracks in three of the five pillars. [1]")], "What caused them?",
     "What caused cracks?"),
]  # fmt: skip


@pytest.mark.parametrize(("history", "follow_up", "searched"), CONVERSATIONS, ids=[c[1] for c in CONVERSATIONS])
def test_follow_ups_are_resolved_against_the_conversations_subject(
    history: list[tuple[str, str]], follow_up: str, searched: str
) -> None:
    assert heuristic_query(follow_up, history) == searched


def test_every_keyed_follow_up_names_what_it_refers_to() -> None:
    """The follow-up set's keyed turns (issue 27), with the answering sentences as history."""
    import json

    from tests.conftest import REPO

    conversations = json.loads((REPO / "tests" / "fixtures" / "follow_ups.json").read_text())["conversations"]
    wrong = []
    checked = 0
    for conversation in conversations:
        history: list[tuple[str, str]] = []
        for turn in conversation["turns"]:
            if "referent" in turn:
                checked += 1
                query = heuristic_query(turn["q"], history).lower()
                named = all(r.lower() in query for r in turn["referent"])
                if not named or any(n.lower() in query for n in turn.get("not", [])):
                    wrong.append((turn["q"], query))
            history.append((turn["q"], turn.get("a", "")))
    assert checked == 35 and wrong == []


def test_a_second_follow_up_keeps_the_first_questions_subject() -> None:
    history = [("What rate did the Fed keep?", "3.75%"), ("When is its next meeting?", "Oct. 28 and 29.")]
    assert heuristic_query("Who chairs it?", history) == "Who chairs Fed?"


@pytest.mark.parametrize(
    ("history", "question"),
    [
        ([], "Who pays?"),
        ([("", "")], "Who pays for them?"),
        ([("?!", "…")], "and then?"),
        ([("x", "y")], "日本の首都は?"),
    ],
)
def test_empty_or_meaningless_history_never_fails(history: list[tuple[str, str]], question: str) -> None:
    assert isinstance(heuristic_query(question, history), str)


def test_noun_phrases_leave_out_the_verb_after_an_auxiliary() -> None:
    assert noun_phrases("What rate did the Fed keep?") == ["Fed"]
    assert noun_phrases("How much will the Riverside bridge repairs cost?") == ["Riverside bridge repairs"]
    assert noun_phrases("Who must approve the bridge contract?") == ["bridge contract"]
