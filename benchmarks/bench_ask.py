"""Extractive `ask` latency at 10k chunks, against `search` alone in the same run.

    python benchmarks/bench_ask.py [--size 10000] [--queries 200]

Uses the synthetic corpus of benchmarks/bench_search.py (built if absent). For each of the
real questions, `RAG.search(q, k=5)` and `RAG.ask(q)` (extractive, 5 passages) are timed
back to back, alternating which goes first; p50 and p95 of each and the ratio of the p50s.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_search import BACKEND, WORK, base_chunks, build

from rag import RAG, Config
from rag.api import VECTORS_FILE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("bench-out/ask.json"))
    args = parser.parse_args()
    folder = WORK / f"flat-{args.size}-{BACKEND}"
    if not (folder / VECTORS_FILE).exists():
        build(args.size, "flat", folder)
    _, _, questions = base_chunks()
    random.Random(2).shuffle(questions)
    questions = questions[: args.queries]
    with RAG.open(config=Config(index_dir=folder), create=False) as rag:
        rag.ask("warm up")
        search_ms, ask_ms = [], []
        answered = 0
        for i, q in enumerate(questions):
            order = [("search", lambda q=q: rag.search(q, k=5)), ("ask", lambda q=q: rag.ask(q))]
            for name, call in order if i % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                result = call()
                elapsed = (time.perf_counter() - started) * 1000
                (search_ms if name == "search" else ask_ms).append(elapsed)
                if name == "ask":
                    answered += result.answerable  # type: ignore[union-attr]
    result = {
        "chunks": args.size,
        "questions": len(questions),
        "search_p50_ms": round(statistics.median(search_ms), 2),
        "search_p95_ms": round(float(np.percentile(search_ms, 95)), 2),
        "ask_p50_ms": round(statistics.median(ask_ms), 2),
        "ask_p95_ms": round(float(np.percentile(ask_ms, 95)), 2),
        "ask_to_search_p50_ratio": round(statistics.median(ask_ms) / statistics.median(search_ms), 2),
        "answered_share": round(answered / len(questions), 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
