"""Embedding on a Ray cluster against one process: agreement and throughput.

    python benchmarks/bench_ray.py [--chunks 1200] [--out benchmarks/results/ray.json]

Starts its own Ray head on 127.0.0.1 (2 CPUs, or --cpus), stopped by its process group at the
end. Texts are chunks of the COVID-QA papers (the development set described in
docs/benchmarks.md), as `rag index` makes them. Each configuration embeds the same texts
--rounds times; one process is measured before and after the Ray runs (pooled), and medians are
reported with the ratio to one process.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from embeddings import load_encoder  # noqa: E402
from embeddings.ray_encoder import RayEncoder  # noqa: E402
from rag.config import DEFAULT_MODEL, IndexSettings  # noqa: E402
from rag.ingest.chunking import chunk_text  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"


def texts(count: int) -> list[str]:
    data = json.loads((DATASETS / "covidqa-dev.json").read_text(encoding="utf-8"))
    settings = IndexSettings()
    out: list[str] = []
    for n, entry in enumerate(data["data"]):
        for paragraph in entry["paragraphs"]:
            for chunk in chunk_text(f"d{n}", paragraph["context"], settings.chunk_tokens, settings.chunk_overlap):
                out.append(chunk.text)
                if len(out) == count:
                    return out
    return out


def start_head(cpus: int) -> tuple[subprocess.Popen[bytes], str]:
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    log = temp / "head.log"
    port = 6400 + os.getpid() % 500
    with log.open("wb") as out:
        head = subprocess.Popen(
            [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--port", str(port),
             "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus), "--include-dashboard", "false",
             "--temp-dir", str(temp), "--disable-usage-stats"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    while "Ray runtime started" not in log.read_text(errors="replace"):
        if head.poll() is not None:
            raise SystemExit(log.read_text())
        time.sleep(0.5)
    return head, f"127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=1200)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ray.json")
    args = parser.parse_args()
    corpus = texts(args.chunks)
    local = load_encoder(DEFAULT_MODEL, backend=args.backend)
    local.encode_documents(corpus[:8])  # load outside the timings
    head, address = start_head(args.cpus)
    times: dict[str, list[float]] = {}
    results: dict[str, np.ndarray] = {}
    try:
        # One configuration at a time: each actor holds one of the head's CPUs.
        for label, workers in (("one process", 0), ("ray, 1 worker", 1), ("ray, 2 workers", 2), ("one process ", 0)):
            encoder = local if workers == 0 else RayEncoder(address, DEFAULT_MODEL, args.backend, workers=workers)
            encoder.encode_documents(corpus[:8])  # connect, and load the actors' models
            runs = times.setdefault(label.strip(), [])
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                results[label.strip()] = encoder.encode_documents(corpus)
                runs.append(time.perf_counter() - t0)
            if isinstance(encoder, RayEncoder):
                encoder.close()
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(10)
    base = statistics.median(times["one process"])
    report = {"chunks": len(corpus), "backend": args.backend, "head_cpus": args.cpus, "runs": {}}
    print(f"{len(corpus)} chunks of about 128 tokens, {args.backend}, Ray head with {args.cpus} CPUs on this machine\n")
    print("| embedding | median s | chunks/s | time ratio | max abs difference from one process |")
    print("| --- | --- | --- | --- | --- |")
    for label, runs in times.items():
        median = statistics.median(runs)
        diff = float(np.abs(results[label] - results["one process"]).max())
        report["runs"][label] = {"seconds": median, "chunks_per_s": len(corpus) / median, "max_abs_diff": diff}  # type: ignore[index]
        print(f"| {label} | {median:.2f} | {len(corpus) / median:.0f} | {median / base:.2f}× | {diff:.1e} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
