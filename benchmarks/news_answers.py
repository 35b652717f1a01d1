"""Right, wrong and declined answers on news articles written to fight back, before and after.

    python benchmarks/news_answers.py [--readers none,shipped] [--show]

``benchmarks/news/`` holds eight news articles written for this test (headlines, bylines,
datelines, leads that restate the topic, answers in the third or fifth sentence) and 70
questions: facts, lists, "why" questions, and on-topic questions the articles do not answer.
It is a test set only: nothing is tuned on it. Each question is asked with ``RAG.ask`` once per
reader setting, on one index, and judged by the answer's words:
- right: it holds a gold answer (for list and why questions: every listed part, when given);
- wrong: it answers with something else;
- wrongly declined: "not in the documents" although the article says;
- rightly declined / wrongly answered: for the questions the articles do not answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eval.metrics import contains_answer  # noqa: E402
from rag import RAG  # noqa: E402

HERE = REPO / "benchmarks" / "news"
OUTCOMES = ("right", "wrong", "wrongly declined", "rightly declined", "wrongly answered")


def judge(question: dict, answerable: bool, text: str) -> str:
    if question.get("unanswerable"):
        return "wrongly answered" if answerable else "rightly declined"
    if not answerable:
        return "wrongly declined"
    # A list or a reason is right only with every part the article gives.
    needed = [[part] for part in question.get("all") or []] or [question["answers"]]
    return "right" if all(contains_answer(text, golds) for golds in needed) else "wrong"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", default="none,shipped", help="reader settings to compare (default none,shipped)")
    parser.add_argument("--show", action="store_true", help="print every answer that is not right")
    args = parser.parse_args()
    questions = [json.loads(line) for line in (HERE / "questions.jsonl").read_text().splitlines() if line.strip()]
    summary: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as folder:
        rag = RAG.open(Path(folder) / "index")
        rag.index([HERE / "articles"], progress=False)
        for mode in args.readers.split(","):
            rag.config = rag.config.replace(reader=mode)
            counts: Counter[str] = Counter()
            by_kind: dict[str, Counter[str]] = {}
            for q in questions:
                answer = rag.ask(q["question"])
                text = " ".join(s.text for s in answer.sentences)
                outcome = judge(q, answer.answerable, text)
                counts[outcome] += 1
                by_kind.setdefault(q["kind"], Counter())[outcome] += 1
                if args.show and outcome not in ("right", "rightly declined"):
                    span = f" [{answer.answer_span.text}]" if answer.answer_span else ""
                    print(f"  {mode} {q['id']} {outcome}: {q['question']} -> {text[:160]!r}{span}")
            summary[mode] = {"all": dict(counts), **{k: dict(v) for k, v in by_kind.items()}}
    print("| reader | " + " | ".join(OUTCOMES) + " |")
    print("|---|" + "---|" * len(OUTCOMES))
    for mode, figures in summary.items():
        total = figures["all"]
        print(f"| {mode} | " + " | ".join(str(total.get(o, 0)) for o in OUTCOMES) + " |")  # type: ignore[attr-defined]
    print("\nRight by kind of question (right / asked):")
    for mode, figures in summary.items():
        parts = []
        for kind in ("fact", "list", "why", "unanswerable"):
            c = figures.get(kind, {})
            good = c.get("right", 0) + c.get("rightly declined", 0)  # type: ignore[attr-defined]
            parts.append(f"{kind} {good}/{sum(c.values())}")  # type: ignore[attr-defined]
        print(f"  {mode}: " + ", ".join(parts))
    Path("bench-out").mkdir(exist_ok=True)
    Path("bench-out/news_answers.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
