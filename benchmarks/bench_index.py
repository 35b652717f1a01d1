"""Indexing speed: cold throughput against a direct encode, and the cost of an unchanged rerun.

    python benchmarks/bench_index.py [--docs 1000] [--rounds 3] [--encoder-backend onnx-int8|onnx|torch]
                                     [--torch-index] [--out bench-out/index.json]

Corpus: the first N review contexts of ../shared/datasets/squadshifts-amazon-reviews.json,
one .txt file each (or synthetic articles when that file is absent). Both sides run in this
process with the model already loaded, so neither pays for loading it:
- cold: ``RAG.index`` into an empty index folder (read, chunk, embed, SQLite, FAISS, save),
  with the encoder runtime ``--encoder-backend`` (the default's unless told);
- baseline: ``SentenceTransformer.encode`` (PyTorch) on exactly the chunk texts that run
  produced, with the same batch size and normalisation;
- with ``--torch-index``, also ``RAG.index`` with the PyTorch runtime: the indexing path before
  the ONNX runtimes, the baseline of issue 13's goal.
Rounds rotate which side goes first; medians are reported, and the median of each round's
ratio (the machine's speed drifts between rounds, less within one). The unchanged rerun is timed
both in-process and as the `rag index` command a user types (a new Python process each time).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from embeddings import BACKENDS, SentenceTransformerEncoder
from embeddings.encoder import DEFAULT_BACKEND
from rag import RAG, Config

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "squadshifts-amazon-reviews.json"


def write_corpus(folder: Path, n: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    if SHARED.exists():
        contexts = [p["context"] for a in json.loads(SHARED.read_text())["data"] for p in a["paragraphs"]]
        source = f"{SHARED.name}, first {n} reviews"
    else:
        from tests.conftest import article

        contexts = [article(i, words=150) for i in range(n)]
        source = "synthetic articles"
    for i, text in enumerate(contexts[:n]):
        (folder / f"doc{i:05d}.txt").write_text(text, encoding="utf-8")
    return source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reruns", type=int, default=5)
    parser.add_argument("--encoder-backend", default=DEFAULT_BACKEND, choices=BACKENDS, help="default: %(default)s")
    parser.add_argument("--torch-index", action="store_true", help="also time RAG.index with PyTorch")
    parser.add_argument("--out", type=Path, default=Path("bench-out/index.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    corpus = work / "corpus"
    source = write_corpus(corpus, args.docs)
    config = Config.load(index_dir=work / "warmup", encoder_backend=args.encoder_backend)
    warm = RAG.open(config=config)
    warm.encoder.encode_documents(["warm up the model"] * 64)  # loaded once; shared by every RAG here
    # The baseline is always the model run by PyTorch, as sentence-transformers runs it.
    model = SentenceTransformerEncoder().model
    model.encode(["warm up the model"] * 64, batch_size=config.batch_size)

    torch_config = config.replace(encoder_backend="torch")
    cold, base, torch_cold = [], [], []
    chunks = 0
    index_dir = work / "cold-0"
    for round_no in range(args.rounds):
        index_dir = work / f"cold-{round_no}"

        def run_index(index_dir: Path = index_dir, config: Config = config) -> float:
            with RAG.open(config=config.replace(index_dir=index_dir)) as rag:
                started = time.perf_counter()
                summary = rag.index([corpus], progress=False)
                assert summary.embedded == summary.chunks
                return time.perf_counter() - started

        def run_torch_index(round_no: int = round_no) -> float:
            return run_index(work / f"torch-{round_no}", torch_config)

        def run_encode() -> float:
            with RAG.open(config=config.replace(index_dir=work / "cold-0"), create=False) as rag:
                texts = [r[0] for r in rag.store.db.execute("SELECT text FROM chunks ORDER BY id")]
            started = time.perf_counter()
            model.encode(texts, batch_size=config.batch_size, normalize_embeddings=True, convert_to_numpy=True)
            return time.perf_counter() - started

        sides = [(cold, run_index), (base, run_encode)] + ([(torch_cold, run_torch_index)] if args.torch_index else [])
        for times, run in sides[round_no % len(sides) :] + sides[: round_no % len(sides)]:
            times.append(run())
        with RAG.open(config=config.replace(index_dir=index_dir), create=False) as rag:
            chunks = rag.store.counts()["chunks"]
        print(
            f"round {round_no}: index {cold[-1]:.2f} s, direct encode {base[-1]:.2f} s"
            + (f", PyTorch index {torch_cold[-1]:.2f} s" if args.torch_index else ""),
            file=sys.stderr,
        )

    rerun_api = []
    with RAG.open(config=config.replace(index_dir=index_dir)) as rag:
        for _ in range(args.reruns):
            summary = rag.index([corpus], progress=False)
            assert summary.embedded == 0 and summary.unchanged == args.docs
            rerun_api.append(summary.seconds)

    rag_cmd = str(Path(sys.executable).with_name("rag"))

    def cli(index_dir: Path) -> float:
        started = time.perf_counter()
        subprocess.run([rag_cmd, "index", str(corpus), "--index-dir", str(index_dir), "--json"], check=True,
                       capture_output=True)  # fmt: skip
        return time.perf_counter() - started

    cli_cold = cli(work / "cli")  # a new process: Python start, imports and model load included
    cli_rerun = [cli(work / "cli") for _ in range(args.reruns)]

    cold_s, base_s = statistics.median(cold), statistics.median(base)
    result = {
        "corpus": source,
        "documents": args.docs,
        "chunks": chunks,
        "batch_size": config.batch_size,
        "encoder_backend": args.encoder_backend,
        "cold_index_s_median": round(cold_s, 3),
        "direct_encode_s_median": round(base_s, 3),
        "cold_chunks_per_s": round(chunks / cold_s, 1),
        "direct_chunks_per_s": round(chunks / base_s, 1),
        "throughput_ratio": round(base_s / cold_s, 3),
        "throughput_ratio_median_of_rounds": round(statistics.median(map(float.__truediv__, base, cold)), 3),
        "rerun_in_process_s_median": round(statistics.median(rerun_api), 3),
        "rerun_in_process_ratio": round(statistics.median(rerun_api) / cold_s, 4),
        "cli_cold_s": round(cli_cold, 3),
        "cli_rerun_s_median": round(statistics.median(cli_rerun), 3),
        "cli_rerun_ratio": round(statistics.median(cli_rerun) / cli_cold, 4),
    }
    if torch_cold:
        result["torch_index_s_median"] = round(statistics.median(torch_cold), 3)
        result["ratio_to_torch_index_median_of_rounds"] = round(
            statistics.median(t / c for t, c in zip(torch_cold, cold, strict=True)), 3
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
