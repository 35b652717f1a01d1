"""Turn a follow-up question into a query that retrieval can answer on its own.

"and when was he killed?" means nothing to a search engine. With an LLM configured, the LLM
rewrites the question as a standalone one. Without one, this heuristic applies:

- a question is a follow-up when there is history and it refers back: it has a pronoun or
  demonstrative (he, she, it, they, his, her, its, their, this, that, these, those, there,
  then), starts with "and", "but", "so", "what about", "how about", or has at most two
  content words;
- a follow-up is searched together with the previous question: "<previous> <follow-up>",
  which brings back the entity the pronoun stands for. Anything else is searched as asked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from rag.citations import content_words

# (question, answer) pairs, oldest first.
History = Sequence[tuple[str, str]]

_REFERS_BACK = re.compile(
    r"\b(he|she|it|they|him|her|his|hers|its|their|theirs|them|this|that|these|those|there|then)\b",
    re.IGNORECASE,
)
_CONTINUES = re.compile(r"^\s*(and|but|so|also|what about|how about)\b", re.IGNORECASE)


def is_follow_up(question: str) -> bool:
    return bool(_REFERS_BACK.search(question) or _CONTINUES.match(question) or len(content_words(question)) <= 2)


def heuristic_query(question: str, history: History | None) -> str:
    if not history or not is_follow_up(question):
        return question
    previous = history[-1][0].strip()
    return f"{previous} {question.strip()}"


REWRITE_PROMPT = (
    "Rewrite the user's last question so it can be understood without the conversation: "
    "replace pronouns with what they refer to. Reply with the rewritten question only."
)


def llm_query(question: str, history: History | None, complete: Callable[[list[dict[str, str]]], str]) -> str:
    """Ask an LLM for a standalone question; fall back to the heuristic on an empty reply."""
    if not history:
        return question
    turns = "\n".join(f"User: {q}\nAssistant: {a}" for q, a in history[-3:])
    messages = [
        {"role": "system", "content": REWRITE_PROMPT},
        {"role": "user", "content": f"{turns}\nUser: {question}\n\nStandalone question:"},
    ]
    rewritten = complete(messages).strip().strip('"').splitlines()
    return rewritten[0].strip() if rewritten and rewritten[0].strip() else heuristic_query(question, history)
