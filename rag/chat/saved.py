"""Saved conversations of the web chat, kept in the index's SQLite file (schema migration 4).

Each call opens its own short-lived connection: the web chat saves from many worker threads at
once, and a connection of its own per call never interleaves two threads' transactions. WAL
mode lets these small writes go on beside a running `rag index`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag.chat.transcript import Conversation

MAX_TITLE = 80


@dataclass(frozen=True)
class SavedConversation:
    id: int
    title: str
    updated_at: str
    turns: int


class ConversationStore:
    """Conversations per user ('' when the server has no login), most recent first."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    def create(self, user: str, first_question: str) -> int:
        now = _now()
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO conversations(user, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (user, title_for(first_question), now, now),
            )
            return int(cursor.lastrowid or 0)

    def add_turn(self, user: str, conversation_id: int, answer: dict[str, Any]) -> None:
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            owned = db.execute("SELECT 1 FROM conversations WHERE id=? AND user=?", (conversation_id, user)).fetchone()
            if owned is None:
                db.execute("ROLLBACK")
                raise LookupError(f"no conversation {conversation_id} of this user")
            (ordinal,) = db.execute(
                "SELECT coalesce(max(ordinal), 0) + 1 FROM turns WHERE conversation_id=?", (conversation_id,)
            ).fetchone()
            db.execute(
                "INSERT INTO turns(conversation_id, ordinal, answer) VALUES (?, ?, ?)",
                (conversation_id, ordinal, json.dumps(answer, ensure_ascii=False)),
            )
            db.execute("UPDATE conversations SET updated_at=? WHERE id=?", (_now(), conversation_id))
            db.execute("COMMIT")

    def list(self, user: str, limit: int = 200) -> list[SavedConversation]:
        with self._db() as db:
            rows = db.execute(
                "SELECT c.id, c.title, c.updated_at, (SELECT count(*) FROM turns t WHERE t.conversation_id = c.id) "
                "FROM conversations c WHERE c.user=? ORDER BY c.updated_at DESC, c.id DESC LIMIT ?",
                (user, limit),
            ).fetchall()
        return [SavedConversation(*row) for row in rows]

    def load(self, user: str, conversation_id: int) -> Conversation:
        with self._db() as db:
            rows = db.execute(
                "SELECT t.answer FROM turns t JOIN conversations c ON c.id = t.conversation_id "
                "WHERE c.id=? AND c.user=? ORDER BY t.ordinal",
                (conversation_id, user),
            ).fetchall()
        return Conversation(tuple(json.loads(answer) for (answer,) in rows))

    def rename(self, user: str, conversation_id: int, title: str) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE conversations SET title=? WHERE id=? AND user=?",
                (title_for(title), conversation_id, user),
            )

    def delete(self, user: str, conversation_id: int) -> None:
        with self._db() as db:
            db.execute("DELETE FROM conversations WHERE id=? AND user=?", (conversation_id, user))


def title_for(text: str) -> str:
    """A conversation's title: its first question, on one line, shortened at a word."""
    one_line = " ".join(text.split()) or "Untitled"
    if len(one_line) <= MAX_TITLE:
        return one_line
    return one_line[:MAX_TITLE].rsplit(" ", 1)[0] + "…"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
