"""Read a question set: SQuAD JSON (v1.1 / v2.0, bringing its own documents) or JSONL.

JSONL, one question per line, against an existing index:
    {"id", "question", "answers": [...], "unanswerable": bool?, "doc_id"?,
     "evidence"?: [{"doc_id", "start", "end"}]}
"""

from __future__ import annotations

import json
from pathlib import Path

from eval.squad import GoldSpan, Question, QuestionSet, load_squad


class EvalError(ValueError):
    """An evaluation input is missing or unreadable; the message names it."""


class QuestionSetError(EvalError):
    """The file is not a question set we can read; the message names the file and the line."""


def load_questions(path: str | Path) -> QuestionSet:
    path = Path(path)
    if not path.is_file():
        raise QuestionSetError(f"no question set at {path}")
    if path.suffix == ".jsonl":
        return load_jsonl(path)
    try:
        return load_squad(path)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise QuestionSetError(
            f"{path} is neither SQuAD JSON (data[].paragraphs[].qas[]) nor .jsonl questions ({exc})"
        ) from exc


def load_jsonl(path: Path) -> QuestionSet:
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            evidence = tuple(
                GoldSpan(str(e["doc_id"]), int(e["start"]), int(e["end"])) for e in record.get("evidence", [])
            )
            questions.append(
                Question(
                    id=str(record.get("id", number)),
                    question=str(record["question"]),
                    answers=tuple(str(a) for a in record.get("answers", [])),
                    spans=evidence,
                    unanswerable=bool(record.get("unanswerable", False)),
                    doc_id=str(record.get("doc_id", "")),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise QuestionSetError(f"{path}:{number}: not a question record ({exc})") from exc
    return QuestionSet(documents=(), questions=tuple(questions), reanchored=0, unanchored=0)
