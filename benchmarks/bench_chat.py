"""What `rag chat` saves over one `rag ask` process per question.

    python benchmarks/bench_chat.py [--questions N] [--rounds R]

Indexes examples/ into a temporary folder, then, alternating in each round, asks the same N
questions (a) as N `rag ask` commands, each a new process that loads torch and the model, and
(b) as one `rag chat` fed the questions on standard input. Prints wall time per question for
both (medians over rounds) and their ratio, plus the chat's own start-up (model loading).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RAG = str(Path(sys.executable).with_name("rag"))
QUESTIONS = [
    "What rate did the Fed keep?",
    "When is the next policy meeting?",
    "How much will the Riverside bridge repairs cost?",
    "Who must approve the bridge contract?",
    "How many locally acquired dengue cases were reported in Europe?",
    "Why was the Kestrel-2 launch delayed?",
    "How many nucleotides does the virus genome have?",
    "How many troops did the Afghan government have?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    questions = QUESTIONS[: args.questions]
    with tempfile.TemporaryDirectory() as tmp:
        index = str(Path(tmp) / "index")
        subprocess.run([RAG, "index", str(REPO / "examples" / "news"), str(REPO / "examples" / "articles"),
                        "--index-dir", index, "--no-progress"], check=True, capture_output=True)  # fmt: skip
        per_ask: list[float] = []
        per_chat: list[float] = []
        start_up: list[float] = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            for q in questions:
                subprocess.run([RAG, "ask", q, "--index-dir", index], check=True, capture_output=True)
            per_ask.append((time.perf_counter() - started) / len(questions))

            started = time.perf_counter()
            chat = subprocess.run([RAG, "chat", "--index-dir", index], input="\n".join(questions) + "\n",
                                  check=True, capture_output=True, text=True)  # fmt: skip
            total = time.perf_counter() - started
            ready = float(chat.stderr.split("ready (")[1].split(" s)")[0])
            start_up.append(ready)
            per_chat.append(total / len(questions))
        ask_p50, chat_p50 = statistics.median(per_ask), statistics.median(per_chat)
        print(f"{len(questions)} questions, {args.rounds} rounds (medians)")
        print(f"rag ask, one process per question: {ask_p50:.2f} s per question")
        print(f"rag chat, one process:              {chat_p50:.2f} s per question "
              f"(model loading {statistics.median(start_up):.1f} s of it, once)")  # fmt: skip
        print(f"ratio chat / ask: {chat_p50 / ask_p50:.2f}")


if __name__ == "__main__":
    main()
