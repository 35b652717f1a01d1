"""Cold `rag ask`: a new process answering one question from the sample index, per encoder runtime
and per reader setting.

    python benchmarks/bench_cold_ask.py [--runs 7] [--readers none,shipped] [--out bench-out/cold_ask.json]

With ``--readers``, the default runtime (onnx-int8) is run once per reader setting instead of
once per runtime, the first setting being the baseline of the ratio.

Indexes examples/ (articles and news) once per runtime into bench-out/cold-ask/<runtime>, then
runs `rag ask QUESTION --index-dir ...` as a user types it, alternating the runtimes run by run;
reports the median wall time and peak memory (from /usr/bin/time when present, else wall only)
and which heavy modules the process imported. The ONNX export is made before timing starts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RAG_BIN = str(Path(sys.executable).with_name("rag"))
QUESTION = "What did the Fed do with its benchmark rate?"
RUNTIMES = ("torch", "onnx-int8")
DEFAULT_RUNTIME = "onnx-int8"
PROBE = (
    "import sys, runpy; sys.argv = ['rag'] + sys.argv[1:]; "
    "code = 0\n"
    "try:\n    runpy.run_module('rag.cli', run_name='__main__')\nexcept SystemExit as e:\n    code = e.code or 0\n"
    "heavy = ('torch', 'sentence_transformers', 'transformers', 'gradio')\n"
    "print('HEAVY', sorted(m for m in heavy if m in sys.modules),"
    " file=sys.stderr); sys.exit(code)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("bench-out/cold_ask.json"))
    parser.add_argument("--readers", help="compare these reader settings (comma-separated) on the default runtime")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    root = Path("bench-out/cold-ask")
    # label -> (runtime, extra arguments of `rag ask`)
    variants = (
        {f"reader={r}": (DEFAULT_RUNTIME, ["--reader", r]) for r in args.readers.split(",")}
        if args.readers
        else {r: (r, []) for r in RUNTIMES}
    )
    for runtime in sorted({runtime for runtime, _ in variants.values()}):
        folder = root / runtime
        subprocess.run(
            [RAG_BIN, "index", str(REPO / "examples/articles"), str(REPO / "examples/news"), "--index-dir",
             str(folder), "--encoder-backend", runtime, "--no-progress"],
            check=True, env=env, capture_output=True,
        )  # fmt: skip
    labels = list(variants)
    times: dict[str, list[float]] = {r: [] for r in labels}
    memory: dict[str, list[int]] = {r: [] for r in labels}
    heavy: dict[str, str] = {}
    timer = ["/usr/bin/time", "-f", "%M"] if Path("/usr/bin/time").exists() else []
    for run in range(args.runs):
        for label in labels if run % 2 == 0 else labels[::-1]:
            runtime, extra = variants[label]
            command = [*timer, RAG_BIN, "ask", QUESTION, "--index-dir", str(root / runtime), *extra]
            started = time.perf_counter()
            done = subprocess.run(command, check=True, env=env, capture_output=True, text=True)
            times[label].append(time.perf_counter() - started)
            if timer:
                memory[label].append(int(done.stderr.strip().splitlines()[-1]))
    for label in labels:
        runtime, extra = variants[label]
        probe = subprocess.run(
            [sys.executable, "-c", PROBE, "ask", QUESTION, "--index-dir", str(root / runtime), *extra],
            check=True, env=env, capture_output=True, text=True,
        )  # fmt: skip
        heavy[label] = probe.stderr.strip().splitlines()[-1]
    results = {
        r: {
            "median_s": round(statistics.median(times[r]), 2),
            "runs_s": [round(t, 2) for t in times[r]],
            "peak_rss_mb": round(statistics.median(memory[r]) / 1024) if memory[r] else None,
            "imports": heavy[r],
        }
        for r in labels
    }
    ratio = results[labels[-1]]["median_s"] / results[labels[0]]["median_s"]
    print("| variant | cold `rag ask`, median | peak memory | heavy imports |\n|---|---|---|---|")
    for r in labels:
        row = results[r]
        print(f"| {r} | {row['median_s']} s | {row['peak_rss_mb']} MB | {row['imports']} |")
    print(f"{labels[-1]} / {labels[0]}: {ratio:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**results, "ratio": ratio}, indent=2) + "\n")


if __name__ == "__main__":
    main()
