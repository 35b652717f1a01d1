"""Conversations as files and as chat messages: what `rag chat`'s /save and `rag ask --history`
write and read, and what an OpenAI-style client sends.

A saved conversation is ``{"turns": [answer JSON, ...]}``, each turn the same object as
`rag ask --json` prints, so a script can read the citations of every turn. Reading also takes
a plain list of such turns, or a list of OpenAI-style ``{"role", "content"}`` messages.
Only the questions and answer texts feed the next question: roles never reach a prompt.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.chat.follow_ups import History

# An answer, as an assistant message, ends with its sources (see ``with_sources``); that part is
# not the answer when the message comes back as history.
SOURCES_HEADING = "\n\nSources:\n"
MAX_HISTORY_BYTES = 5_000_000


class HistoryError(ValueError):
    """A history file or message list that cannot be read; the message says why and where."""


@dataclass(frozen=True)
class Conversation:
    """Turns read from a file, and the shape to write them back in."""

    turns: tuple[dict[str, Any], ...]  # answer JSON objects ({"question", "answer", ...})
    messages: tuple[dict[str, Any], ...] | None = None  # set when the file was a message list

    @property
    def history(self) -> History:
        return [(turn["question"], turn["answer"]) for turn in self.turns]

    def adding(self, turn: dict[str, Any]) -> Conversation:
        if self.messages is None:
            return Conversation((*self.turns, turn))
        said = ({"role": "user", "content": turn["question"]}, {"role": "assistant", "content": with_sources(turn)})
        return Conversation((*self.turns, turn), (*self.messages, *said))

    def to_json(self) -> Any:
        return list(self.messages) if self.messages is not None else {"turns": list(self.turns)}


def read_conversation(path: Path) -> Conversation:
    """The conversation in ``path``; a missing file is an empty conversation."""
    if not path.exists():
        return Conversation(())
    try:
        if path.stat().st_size > MAX_HISTORY_BYTES:
            raise HistoryError(f"{path} holds over {MAX_HISTORY_BYTES // 1_000_000} MB; start a new history file")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise HistoryError(f"cannot read history file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise HistoryError(f"history file {path} is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise HistoryError(
            f"history file {path} is not JSON ({exc.msg}, line {exc.lineno} column {exc.colno}); it should hold "
            'what `rag ask --history` or /save wrote: {"turns": [{"question": ..., "answer": ...}]}'
        ) from exc
    try:
        return parse_conversation(data)
    except HistoryError as exc:
        raise HistoryError(f"history file {path}: {exc}") from exc


def parse_conversation(data: Any) -> Conversation:
    """Turns from saved JSON: ``{"turns": [...]}``, a list of turns, or a list of messages."""
    if isinstance(data, dict) and isinstance(data.get("turns"), list):
        data = data["turns"]
    if not isinstance(data, list):
        raise HistoryError('expected {"turns": [...]} or a list of turns or of chat messages')
    if data and all(isinstance(m, dict) and "role" in m for m in data):
        history, last = from_messages(data, final_question=False)
        assert last is None
        return Conversation(tuple({"question": q, "answer": a} for q, a in history), tuple(data))
    for n, turn in enumerate(data, 1):
        if not (
            isinstance(turn, dict) and isinstance(turn.get("question"), str) and isinstance(turn.get("answer"), str)
        ):
            raise HistoryError(f'turn {n} is not an object with "question" and "answer" strings')
    return Conversation(tuple(data))


def write_conversation(path: Path, conversation: Conversation) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(conversation.to_json(), out, ensure_ascii=False, indent=1)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def message_text(content: Any, where: str) -> str:
    """A message's text: a string, or the text parts of an OpenAI content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if all(isinstance(p, str) for p in parts) and parts:
            return "\n".join(p for p in parts if isinstance(p, str))
    raise HistoryError(f"{where}: content must be a string or a list of text parts")


def from_messages(messages: Sequence[Any], final_question: bool = True) -> tuple[list[tuple[str, str]], str | None]:
    """Earlier (question, answer) pairs and the question to answer now, from chat messages.

    System and tool messages are ignored: nobody's words become an instruction to the model.
    With ``final_question`` the last message must be the user's question."""
    history: list[tuple[str, str]] = []
    asked: str | None = None
    for n, message in enumerate(messages):
        where = f"messages[{n}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise HistoryError(f'{where} must be an object with a "role"')
        role = message["role"]
        if role not in {"user", "assistant"}:
            continue
        text = message_text(message.get("content"), where)
        if role == "user":
            asked = text if asked is None else f"{asked}\n{text}"  # two user messages in a row: one question
        elif asked is not None:
            history.append((asked, text.split(SOURCES_HEADING, 1)[0]))
            asked = None
    if final_question:
        if asked is None or not asked.strip():
            raise HistoryError("the last message must be the user's question")
        return history, asked
    return history, None


def with_sources(turn: dict[str, Any]) -> str:
    """An answer's text followed by its sources, as a chat message shows them."""
    citations = turn.get("citations") or []
    if not citations:
        return str(turn["answer"])
    lines = []
    for c in citations:
        dated = f" ({c['date']})" if c.get("date") else ""
        lines.append(f"[{c['n']}] {c['title']}{dated}: “{c['quote']}”")
    return str(turn["answer"]) + SOURCES_HEADING + "\n".join(lines)


def to_markdown(conversation: Conversation, title: str = "Conversation") -> str:
    """A readable transcript: each question, its answer, and the quoted sources."""
    parts = [f"# {title}\n"]
    for turn in conversation.turns:
        parts.append(f"## {turn['question']}\n")
        parts.append(turn["answer"] + "\n")
        for c in turn.get("citations") or []:
            where = ", ".join(x for x in (c.get("date"), c.get("source")) if x)
            parts.append(
                f"> [{c['n']}] **{c['title']}** ({where}, chars {c['start']}–{c['end']}):  \n> “{c['quote']}”\n"
            )
    return "\n".join(parts)
