"""Extractive `ask` latency at 10k chunks, against `search` alone in the same run, per reader.

    python benchmarks/bench_ask.py [--size 10000] [--queries 200] [--readers none,shipped]

Uses the synthetic corpus of benchmarks/bench_search.py (built if absent). For each of the
real questions, `RAG.search(q, k=5)` and `RAG.ask(q)` (extractive, 5 passages) once per reader
setting are timed back to back, rotating which goes first; p50 and p95 of each, the ratio of
each ask's p50 to search's, and how many sentences the reader read per question.
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
    parser.add_argument("--readers", default="none,shipped", help="reader settings to time (default none,shipped)")
    args = parser.parse_args()
    folder = WORK / f"flat-{args.size}-{BACKEND}"
    if not (folder / VECTORS_FILE).exists():
        build(args.size, "flat", folder)
    _, _, questions = base_chunks()
    random.Random(2).shuffle(questions)
    questions = questions[: args.queries]
    readers = args.readers.split(",")
    with RAG.open(config=Config(index_dir=folder), create=False) as rag:
        handles = {
            r: RAG.open(config=Config(index_dir=folder, reader=r), create=False, read_only=True) for r in readers
        }
        for handle in handles.values():
            handle.ask("warm up")
        times: dict[str, list[float]] = {name: [] for name in ["search", *readers]}
        answered = dict.fromkeys(readers, 0)
        read = dict.fromkeys(readers, 0.0)
        for i, q in enumerate(questions):
            order = [("search", lambda q=q: rag.search(q, k=5))]
            order += [(r, lambda q=q, h=handles[r]: h.ask(q)) for r in readers]
            shift = i % len(order)
            for name, call in order[shift:] + order[:shift]:
                started = time.perf_counter()
                result = call()
                times[name].append((time.perf_counter() - started) * 1000)
                if name != "search":
                    answered[name] += result.answerable  # type: ignore[union-attr]
                    read[name] += result.evidence.get("sentences_read", 0)  # type: ignore[union-attr]
        for handle in handles.values():
            handle.close()
    search_p50 = statistics.median(times["search"])
    result: dict[str, object] = {
        "chunks": args.size,
        "questions": len(questions),
        "search_p50_ms": round(search_p50, 2),
        "search_p95_ms": round(float(np.percentile(times["search"], 95)), 2),
    }
    for r in readers:
        result[f"reader={r}"] = {
            "ask_p50_ms": round(statistics.median(times[r]), 2),
            "ask_p95_ms": round(float(np.percentile(times[r], 95)), 2),
            "ask_to_search_p50_ratio": round(statistics.median(times[r]) / search_p50, 2),
            "answered_share": round(answered[r] / len(questions), 3),
            "sentences_read_mean": round(read[r] / len(questions), 1),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
