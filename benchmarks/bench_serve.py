"""Seconds from starting `rag serve` to its first answer, on the sample corpus, and how long
that first question itself waits once the page is up (the model may still be loading; with
``--delay S`` it is asked S seconds after the page is up, as a person who reads first would).

    python benchmarks/bench_serve.py [--runs 3]

Indexes examples/articles into a temporary folder (as `make demo` does before serving), then
for each run starts `rag serve` as a new process, polls until the page answers, and asks one
question through gradio_client. Reports each run and the median.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds to wait after the page is up before asking (a person reading)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench-out/serve.json"))
    args = parser.parse_args()
    from gradio_client import Client

    rag = str(Path(sys.executable).with_name("rag"))
    index_dir = Path(tempfile.mkdtemp()) / "index"
    subprocess.run([rag, "index", str(REPO / "examples" / "articles"), "--index-dir", str(index_dir)], check=True,
                   capture_output=True)  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    times = []
    waits = []
    for _ in range(args.runs):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        started = time.monotonic()
        proc = subprocess.Popen([rag, "serve", "--index-dir", str(index_dir), "--port", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        url = f"http://127.0.0.1:{port}/"
        try:
            while True:
                try:
                    if httpx.get(url, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            time.sleep(args.delay)
            page_up = time.monotonic()
            answer = Client(url, verbose=False).predict("How many troops did the Afghan government have?",
                                                        api_name="/ask")  # fmt: skip
            times.append(time.monotonic() - started)
            waits.append(time.monotonic() - page_up)
            assert "300,000" in answer["answer"], answer
        finally:
            proc.terminate()
            proc.wait(10)
    result = {
        "runs_s": [round(t, 2) for t in times],
        "median_s": round(statistics.median(times), 2),
        "first_question_after_page_up_s": [round(t, 2) for t in waits],
        "first_question_median_s": round(statistics.median(waits), 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
