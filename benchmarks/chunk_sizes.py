"""Measure dense retrieval quality for several chunk sizes, to choose the defaults.

    python benchmarks/chunk_sizes.py [--datasets DIR] [--questions N]

For each SQuAD-format set in DIR (default ../shared/datasets) and each (tokens, overlap)
pair, chunk every document, embed the chunks and questions with the bundled model, and
report hit@1/5/10 and MRR, where a hit is a retrieved chunk whose span contains the gold
answer span. Exact (flat) inner-product search, no keyword retrieval: this isolates chunking.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np

from embeddings import SentenceTransformerEncoder
from eval.squad import load_squad
from rag.ingest.chunking import chunk_text

CONFIGS = [(64, 16), (96, 24), (128, 32), (192, 48), (256, 64)]
DEFAULT_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    parser.add_argument("--questions", type=int, default=800, help="questions sampled per set (seed 0)")
    parser.add_argument("--configs", default=",".join(f"{t}:{o}" for t, o in CONFIGS), help="tokens:overlap,...")
    args = parser.parse_args()
    configs = [(int(t), int(o)) for t, o in (c.split(":") for c in args.configs.split(","))]
    encoder = SentenceTransformerEncoder()
    print("| set | tokens | overlap | chunks | hit@1 | hit@5 | hit@10 | MRR | embed s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in sorted(args.datasets.glob("*.json")):
        qset = load_squad(path)
        questions = [q for q in qset.questions if q.spans]
        random.Random(0).shuffle(questions)
        questions = questions[: args.questions]
        qvec = encoder.encode_queries([q.question for q in questions])
        for tokens, overlap in configs:
            chunks = [c for d in qset.documents for c in chunk_text(d.id, d.text, tokens, overlap)]
            started = time.perf_counter()
            cvec = encoder.encode_documents([c.text for c in chunks])
            seconds = time.perf_counter() - started
            top = np.argsort(-(qvec @ cvec.T), axis=1)[:, :10]
            hits = {1: 0, 5: 0, 10: 0}
            mrr = 0.0
            for row, q in enumerate(questions):
                for rank, col in enumerate(top[row], start=1):
                    c = chunks[col]
                    if any(s.doc_id == c.doc_id and c.start <= s.start and s.end <= c.end for s in q.spans):
                        mrr += 1 / rank
                        for k in hits:
                            hits[k] += rank <= k
                        break
            n = len(questions)
            print(
                f"| {path.stem} | {tokens} | {overlap} | {len(chunks)} | {hits[1] / n:.3f} | {hits[5] / n:.3f} "
                f"| {hits[10] / n:.3f} | {mrr / n:.3f} | {seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
