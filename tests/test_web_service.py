"""The web chat's service without a browser (hashing encoder): saved conversations per user,
export, collections, the library, the reader's targets, and the messages for an empty index and
an empty date range."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag import RAG, Config
from rag.types import Answer
from tests.conftest import article, write
from ui.openai_api import OpenAIEndpoint
from ui.render import answer_message, parse_target
from ui.service import ChatService


def _config(folder: Path) -> Config:
    return Config(index_dir=folder, model="hashing-64", encode_group=8)


def _answer(service: ChatService, question: str, name: str, key: str = "", user: str = "", **kw: str) -> tuple:
    *_, last = service.respond(question, [], name, key, user, 5, "hybrid", kw.get("since", ""), kw.get("until", ""),
                               "extractive")  # fmt: skip
    return last


def _orchard(tmp_path: Path) -> ChatService:
    """A service over one indexed article about an orchard, collection "idx"."""
    write(tmp_path / "src" / "a.md", "# Orchards\n\nThe northern orchard grows apples (Malus domestica). " + article(1))
    with RAG.open(config=_config(tmp_path / "idx")) as rag:
        rag.index([tmp_path / "src"], progress=False)
    return ChatService({"idx": _config(tmp_path / "idx")})


def test_conversations_are_saved_per_user_reopened_renamed_exported_and_deleted(tmp_path: Path) -> None:
    service = _orchard(tmp_path)
    chat, sources, key = _answer(service, "What does the northern orchard grow?", "idx", user="ann")
    assert key.startswith("idx:") and "apples" in chat[-1]["content"] and "<mark>" in sources
    chat, last_sources, same = _answer(service, "And the southern one?", "idx", key, user="ann")
    assert same == key
    assert [label.split(" · ")[0] for label, _ in service.conversation_choices("ann")] == [
        "What does the northern orchard grow?"
    ]
    assert service.conversation_choices("bob") == []  # another user sees none of ann's
    messages, reopened_sources, name = service.open_conversation(key, "ann")
    assert name == "idx" and len(messages) == 4 and reopened_sources == last_sources
    assert messages[1]["content"].count("apples") >= 1
    with pytest.raises(KeyError):
        service.open_conversation(key, "bob")

    service.rename_conversation(key, "ann", "  Fruit\n trees  ")
    assert service.conversation_choices("ann")[0][0].startswith("Fruit trees · ")
    md = service.export(key, "ann", "md", tmp_path / "out")
    assert md is not None and md.read_text().startswith("# What does the northern orchard grow?")
    data = json.loads((service.export(key, "ann", "json", tmp_path / "out") or Path()).read_text())
    assert [t["question"] for t in data["turns"]] == ["What does the northern orchard grow?", "And the southern one?"]
    # A saved turn renders exactly as it did when answered.
    answer = Answer.from_json(data["turns"][0])
    assert answer_message(answer) == answer_message(Answer.from_json(answer.to_json()))
    assert "apples" in answer_message(answer)
    service.delete_conversation(key, "ann")
    assert service.conversation_choices("ann") == []
    # A question in a conversation deleted meanwhile (another tab) starts a new one.
    _, _, fresh = _answer(service, "What does the northern orchard grow?", "idx", key, user="ann")
    assert fresh != key and len(service.conversation_choices("ann")) == 1


def test_an_empty_start_an_empty_date_range_and_collections(tmp_path: Path) -> None:
    write(tmp_path / "news" / "a.md", "---\ndate: 2026-09-17\n---\n# Rates\n\nThe bank kept its rate at 3.75%.")
    with RAG.open(config=_config(tmp_path / "news-idx")) as rag:
        rag.index([tmp_path / "news"], progress=False)
    service = ChatService(
        {"news": _config(tmp_path / "news-idx"), "empty": _config(tmp_path / "none")},
        upload_folders=[tmp_path / "upload"],
    )
    assert not (tmp_path / "none").exists()
    assert "upload documents to create it" in service.facts("empty")
    chat, _, key = _answer(service, "Anything?", "empty")
    assert "No documents yet" in chat[-1]["content"] and key == ""
    chat, _, _ = _answer(service, "What rate?", "news", since="2030")
    assert "No documents are dated from 2030-01-01 to any date" in chat[-1]["content"]
    assert [m["id"] for m in OpenAIEndpoint(service).models()["data"]] == ["news", "empty"]

    note = write(tmp_path / "upload" / "fruit.md", "# Fruit\n\nThe orchard grows figs.")
    report = service.upload([str(note)], "empty")
    assert "**1** added" in report and (tmp_path / "none" / "store.sqlite").exists()
    assert service.ask("What does the orchard grow?", collection="empty")["passages"][0]["title"] == "Fruit"
    asked = service.ask("What did it keep?", history=[["What did the bank do?", "It kept its rate."]],
                        collection="news")  # fmt: skip
    assert asked["query"] != "What did it keep?"  # the history was read

    rows = service.library("news", title="rat")
    assert [r[0] for r in rows] == ["Rates"] and rows[0][1] == "2026-09-17"
    doc_id = rows[0][5]
    text = RAG.open(config=_config(tmp_path / "news-idx"), read_only=True).document(doc_id).text
    start = text.index("The bank")
    html = service.read("news", f"{doc_id}/{start}/{start + 8}")
    assert '<mark id="rag-span">The bank</mark>' in html and "# Rates" not in html
    assert parse_target("a%2Fb/3/9") == ("a/b", 3, 9) and parse_target("nonsense") is None
    assert "Deleted 1 document" in service.delete_document("news", doc_id)
    assert service.library("news") == []


def test_the_upload_report_says_what_happened_to_each_file_in_words(tmp_path: Path) -> None:
    service = ChatService({"idx": _config(tmp_path / "idx")}, upload_folders=[tmp_path / "upload"])
    tunnel = "# Harbor tunnel reaches halfway\n\nCrews boring the tunnel reached the halfway point. " + article(1)
    first = write(tmp_path / "upload" / "tunnel.md", tunnel)
    empty = write(tmp_path / "upload" / "empty.md", "")
    sheet = write(tmp_path / "upload" / "sheet.csv", "a,b\n")
    report = service.upload([str(first), str(empty), str(sheet)], "idx")
    lines = report.splitlines()
    assert lines[0].startswith("Indexed 2 files: **1** added, **0** updated, **0** unchanged;")
    assert "- `tunnel.md`: added as “Harbor tunnel reaches halfway”" in lines
    assert "- `empty.md`: not indexed: empty document (no text after extraction)" in lines
    assert any(line.startswith("- `sheet.csv`: not indexed: unsupported file type .csv") for line in lines)
    # The same file again, and the same text under another name: nothing added, said in words.
    again = write(tmp_path / "upload" / "tunnel.md", tunnel)
    renamed = write(tmp_path / "upload" / "tunnel copy.md", tunnel)
    report = service.upload([str(again), str(renamed)], "idx")
    assert "- `tunnel.md`: already in the library (uploaded before, unchanged)" in report
    assert (
        "- `tunnel copy.md`: already in the library as “Harbor tunnel reaches halfway” (the same text); nothing added"
        in report
    )
    assert len(service.library("idx")) == 1


def test_the_answer_shows_what_was_searched_for_when_a_follow_up_was_rewritten(tmp_path: Path) -> None:
    service = _orchard(tmp_path)
    chat, _, key = _answer(service, "What does the northern orchard grow?", "idx", user="ann")
    assert "searched for" not in chat[-1]["content"]  # asked as it was searched
    chat, _, _ = _answer(service, "And when was it planted?", "idx", key, user="ann")
    assert '<div class="rag-searched">searched for: ' in chat[-1]["content"]
    assert "northern orchard" in chat[-1]["content"].split("searched for: ")[1].split("</div>")[0]
