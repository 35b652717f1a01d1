"""Encoder runtimes side by side: PyTorch, ONNX Runtime (float) and ONNX Runtime (int8).

    python benchmarks/bench_encoders.py [--chunks 600] [--rounds 3] [--questions 200]
                                        [--quality-questions 2000] [--out bench-out/encoders.json]

All in one process, on the same texts:
- throughput: the chunk texts our chunker makes of both development sets (a sample of
  ``--chunks``), each runtime through ``encode_documents``; rounds rotate which goes first,
  the median is reported, and the ratio to PyTorch in the same round;
- query embedding: ``encode_queries`` on one question at a time, median milliseconds;
- agreement: cosine between each runtime's vector and PyTorch's for every sampled chunk;
- retrieval quality: hit@5 (dense and hybrid) on both development sets with an index built
  by each runtime (``bench-out/encoder-indexes/<set>-<runtime>``, reused by a rerun);
- OpenVINO, when installed, runs the float export too (throughput and query time only).
Models load before timing starts, so loading is not in any figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.retrieval_quality import DEFAULT_DATASETS, CachedQueries, Setting, score
from embeddings.encoder import OnnxEncoder, SentenceTransformerEncoder
from embeddings.models import BUNDLED_MODEL, model_folder
from embeddings.onnx_export import FP32_FILE, exported
from eval.squad import load_squad
from rag import RAG, Config

BACKENDS = ("torch", "onnx", "onnx-int8")


class OpenVinoEncoder(OnnxEncoder):
    """The float ONNX export compiled by OpenVINO for the CPU (measured, not offered)."""

    def __init__(self) -> None:
        super().__init__(BUNDLED_MODEL, int8=False)
        import openvino

        self._load()
        compiled = openvino.Core().compile_model(str(exported(model_folder(BUNDLED_MODEL)) / FP32_FILE), "CPU")
        request = compiled.create_infer_request()
        self._session = type("Session", (), {"run": lambda _self, _out, feeds: [request.infer(feeds)[0]]})()


def encoders() -> dict[str, Any]:
    found: dict[str, Any] = {
        "torch": SentenceTransformerEncoder(BUNDLED_MODEL),
        "onnx": OnnxEncoder(BUNDLED_MODEL, int8=False),
        "onnx-int8": OnnxEncoder(BUNDLED_MODEL, int8=True),
    }
    with contextlib.suppress(ImportError):
        found["openvino"] = OpenVinoEncoder()
    for encoder in found.values():
        encoder.encode_queries(["warm up"])
    return found


def chunk_texts(datasets: Path, work: Path) -> list[str]:
    """What the indexer would embed: both sets chunked with the default settings."""
    texts: list[str] = []
    for path in sorted(datasets.glob("*.json")):
        with RAG.open(config=Config(index_dir=work / path.stem, model="hashing-64")) as rag:
            rag.index_documents(load_squad(path).documents, progress=False)
            texts += [str(row[0]) for row in rag.store.db.execute("SELECT text FROM chunks ORDER BY id")]
    return texts


def questions(datasets: Path) -> list[str]:
    return [q.question for path in sorted(datasets.glob("*.json")) for q in load_squad(path).questions]


def quality(datasets: Path, root: Path, backend: str, n: int) -> dict[str, float]:
    out = {}
    for path in sorted(datasets.glob("*.json")):
        qset = load_squad(path)
        asked = [q for q in qset.questions if q.spans]
        random.Random(0).shuffle(asked)
        asked = asked[:n]
        config = Config(index_dir=root / f"{path.stem}-{backend}", encoder_backend=backend)
        with RAG.open(config=config) as rag:
            rag.index_documents(qset.documents, progress=False)
            queries = CachedQueries(rag.encoder)
            for mode in ("dense", "hybrid"):
                out[f"{path.stem}/{mode}"] = score(rag, asked, Setting(mode, mode), queries)["hit@5"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    parser.add_argument("--chunks", type=int, default=600, help="chunk texts timed per runtime and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--questions", type=int, default=200, help="questions timed one at a time")
    parser.add_argument("--quality-questions", type=int, default=2000, help="per set; 0 skips retrieval quality")
    parser.add_argument("--index-root", type=Path, default=Path("bench-out/encoder-indexes"))
    parser.add_argument("--out", type=Path, default=Path("bench-out/encoders.json"))
    args = parser.parse_args()

    texts = chunk_texts(args.datasets, args.index_root / "chunks")
    sample = random.Random(0).sample(texts, min(args.chunks, len(texts)))
    asked = random.Random(1).sample(questions(args.datasets), args.questions)
    runtimes = encoders()
    names = list(runtimes)
    print(f"{len(sample)} chunk texts (of {len(texts)}), {len(asked)} questions; runtimes: {', '.join(names)}")

    seconds: dict[str, list[float]] = {n: [] for n in names}
    ratios: dict[str, list[float]] = {n: [] for n in names}
    vectors: dict[str, np.ndarray] = {}
    for round_ in range(args.rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            start = time.perf_counter()
            vectors[name] = runtimes[name].encode_documents(sample)
            seconds[name].append(time.perf_counter() - start)
        for name in names:
            ratios[name].append(seconds["torch"][-1] / seconds[name][-1])
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {seconds[n][-1]:.1f} s" for n in names), flush=True)

    query_ms: dict[str, float] = {}
    for name in names:
        times = []
        for question in asked:
            start = time.perf_counter()
            runtimes[name].encode_queries([question])
            times.append((time.perf_counter() - start) * 1000)
        query_ms[name] = statistics.median(times)

    results: dict[str, Any] = {"chunks": len(sample), "questions": len(asked), "runtimes": {}}
    print("\n| runtime | chunks/s | × torch (median of rounds) | query ms | × torch | cos to torch: median | min |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        cosines = (vectors[name] * vectors["torch"]).sum(axis=1)
        row = {
            "chunks_per_s": len(sample) / statistics.median(seconds[name]),
            "throughput_ratio": statistics.median(ratios[name]),
            "query_ms": query_ms[name],
            "query_ratio": query_ms[name] / query_ms["torch"],
            "cos_median": float(np.median(cosines)),
            "cos_min": float(cosines.min()),
        }
        results["runtimes"][name] = row
        print(
            f"| {name} | {row['chunks_per_s']:.1f} | {row['throughput_ratio']:.2f} | {row['query_ms']:.1f} "
            f"| {row['query_ratio']:.2f} | {row['cos_median']:.4f} | {row['cos_min']:.4f} |"
        )

    if args.quality_questions:
        print(
            "\n| runtime | "
            + " | ".join(f"{s} hit@5" for s in ("covid dense", "covid hybrid", "amazon dense", "amazon hybrid"))
            + " |"
        )
        print("|---|---|---|---|---|")
        for name in BACKENDS:
            got = quality(args.datasets, args.index_root, name, args.quality_questions)
            results["runtimes"][name]["hit@5"] = got
            print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in got.values()) + " |", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
