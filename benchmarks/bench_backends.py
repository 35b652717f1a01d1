"""Search latency and memory of the search backends side by side: local (FAISS + SQLite FTS5),
Milvus Lite (in-process file) and, for dense search, a real Milvus 2.3 standalone server.

    python benchmarks/bench_backends.py [--sizes 10000,100000] [--queries 50] [--milvus-queries 20,8]
                                        [--no-server]

The corpora are benchmarks/bench_search.py's (built by it if absent): real chunks of the
development sets grown with tagged copies and noisy vectors. Each backend gets its own copy of
the store; a Milvus copy is filled by the reconcile pass from the embedding cache (its time is
reported: that is what switching an index to Milvus costs). Each (size, backend) runs in its own
process, so peak memory (VmHWM of the process and of any server process it started) is its own.
Each timing is one ``RAG.search(question, k=5, mode=...)``, query embedding included; the same
questions run on every backend (Milvus gets the first --milvus-queries of them: Milvus Lite takes
seconds per query at 100k, and with fewer than 20 questions only unfiltered dense and keyword
search are timed). "filtered" adds a date filter (since 2018) that passes about half of the
documents. Agreement is the share of the default backend's top 5 that a Milvus backend returns
for the same question.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import bench_search  # noqa: E402

from rag import RAG, Config  # noqa: E402
from rag.api import STORE_FILE, VECTORS_FILE  # noqa: E402

WORK = Path("bench-out/backends")


def corpus(size: int) -> Path:
    """bench_search's flat corpus of ``size`` chunks (built if absent)."""
    folder = bench_search.WORK / f"flat-{size}-{bench_search.BACKEND}"
    if not (folder / VECTORS_FILE).exists():
        bench_search.build(size, "flat", folder)
    return folder


def copy_store(size: int, name: str) -> Path:
    folder = WORK / f"{name}-{size}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    source = corpus(size)
    for path in source.glob(STORE_FILE + "*"):
        shutil.copy2(path, folder / path.name)
    return folder


def measure(size: int, backend: str, uri: str | None, queries: int, modes: list[str]) -> dict[str, object]:
    _, _, questions = bench_search.base_chunks()
    random.Random(1).shuffle(questions)
    questions = questions[:queries]
    out: dict[str, object] = {"backend": backend, "uri": uri}
    if backend == "local":
        folder = corpus(size)
        config = Config(index_dir=folder, backend="local")
    else:
        folder = copy_store(size, "milvus" if uri is None else "milvus-server")
        config = Config(index_dir=folder, backend="milvus", milvus_uri=uri)
    rag = RAG.open(config=config, create=False)
    if backend == "milvus":
        started = time.perf_counter()
        rag.repair_vectors()  # the reconcile pass: every vector from the cache into the collection
        out["fill_s"] = round(time.perf_counter() - started, 1)
        out["fill_chunks_per_s"] = round(size / (time.perf_counter() - started))
    rag.search("warm up", k=5, mode=modes[0])
    out["chunks"] = rag.store.counts()["chunks"]
    # The top 5 of each mode, to compare backends' results (dense should agree; BM25 differs).
    tops: dict[str, list[list[int]]] = {}
    for mode in modes:
        for name, since in ((mode, None), (f"{mode}_filtered", "2018"))[: 1 if queries < 20 else 2]:
            times = []
            for q in questions:
                started = time.perf_counter()
                passages = rag.search(q, k=5, mode=mode, since=since)
                times.append((time.perf_counter() - started) * 1000)
                if since is None:
                    tops.setdefault(mode, []).append([p.chunk_id for p in passages])
            out[f"{name}_p50_ms"] = round(statistics.median(times), 2)
            out[f"{name}_p95_ms"] = round(float(np.percentile(times, 95)), 2)
            print(f"  {size} {backend} {name}: p50 {out[f'{name}_p50_ms']} ms", file=sys.stderr, flush=True)
    out["top5"] = tops
    out["peak_rss_mb"] = round(_hwm(os.getpid()) / 1024, 1)
    children = _descendants(os.getpid())
    out["server_peak_rss_mb"] = round(sum(_hwm(pid) for pid in children) / 1024, 1)
    rag.close()
    return out


def _hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    """Processes started by ``pid``, at any depth (Milvus Lite runs its server as one)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        kids = [p for p, parent in parents.items() if parent == current]
        found.extend(kids)
        frontier.extend(kids)
    return found


def start_server() -> tuple[subprocess.Popen[bytes], str, Path]:
    """A real Milvus 2.3 standalone (``milvus-server``), ready to answer."""
    from rag.search.milvus import MilvusSearch

    folder = Path(tempfile.mkdtemp(prefix="milvus23-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("milvus-server")), "--data", str(folder / "data"),
         "--proxy-port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    while True:
        probe = MilvusSearch(uri, "probe")
        try:
            probe.exists()
            break
        except Exception:
            if time.monotonic() - started > 240 or proc.poll() is not None:
                raise RuntimeError(f"milvus-server did not start; see {folder}") from None
            time.sleep(2)
        finally:
            probe.close()
    return proc, uri, folder


def stop_server(proc: subprocess.Popen[bytes], folder: Path) -> float:
    """Stop the server and every process running from its folder; returns their peak RSS in MB."""
    pids = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit() and str(folder).encode() in _cmdline(e)]
    peak = sum(_hwm(pid) for pid in pids) / 1024
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return round(peak, 1)


def _cmdline(entry: Path) -> bytes:
    try:
        return (entry / "cmdline").read_bytes()
    except OSError:
        return b""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument(
        "--milvus-queries",
        default="20,8",
        help="questions per size for Milvus, which is much slower here (default: %(default)s, for 10k and 100k)",
    )
    parser.add_argument("--no-server", action="store_true", help="skip the Milvus 2.3 server")
    parser.add_argument(
        "--milvus", default="lite,server", help="which Milvus runs beside local: lite, server (default: %(default)s)"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # SIZE:BACKEND[:URI], run in a child process
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/backends.json"))
    args = parser.parse_args()
    if args.one:
        size, backend, *rest = args.one.split(":", 2)
        uri = rest[0] if rest else None
        # A 2.3 server has no BM25. Few questions (Milvus Lite at 100k takes seconds each): the
        # unfiltered dense and keyword searches only.
        modes = ["dense"] if uri else ["dense", "keyword"] if args.queries < 20 else ["dense", "keyword", "hybrid"]
        print(json.dumps(measure(int(size), backend, uri, args.queries, modes)))
        return
    # Runs not repeated keep their figures from the last run.
    results: dict[str, dict[str, object]] = json.loads(args.out.read_text()) if args.out.exists() else {}
    wanted = set(args.milvus.split(","))

    def run(size: int, backend: str, uri: str | None = None, queries: int = args.queries) -> dict[str, object]:
        spec = f"{size}:{backend}" + (f":{uri}" if uri else "")
        done = subprocess.run(
            [sys.executable, __file__, "--one", spec, "--queries", str(queries)],
            stdout=subprocess.PIPE, text=True, check=True,
        )  # fmt: skip
        got: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{size} {backend} {uri or ''}: {json.dumps({k: v for k, v in got.items() if k != 'top5'})}", flush=True)
        return got

    sizes = [int(s) for s in args.sizes.split(",")]
    milvus_queries = [int(n) for n in args.milvus_queries.split(",")]
    for size, queries in zip(sizes, milvus_queries + milvus_queries[-1:] * len(sizes), strict=False):
        local = run(size, "local")
        results[f"local-{size}"] = local
        if "lite" in wanted:
            lite = run(size, "milvus", queries=queries)
            for mode in lite["top5"]:  # type: ignore[attr-defined]
                lite[f"{mode}_top5_agreement_with_local"] = _agreement(local, lite, mode)
            results[f"milvus-lite-{size}"] = lite
        if "server" in wanted and not args.no_server:
            proc, uri, folder = start_server()
            try:
                server = run(size, "milvus", uri, queries=queries)
            finally:
                server["server_peak_rss_mb"] = stop_server(proc, folder)
            server["dense_top5_agreement_with_local"] = _agreement(local, server, "dense")
            results[f"milvus-2.3-server-{size}"] = server
    for value in results.values():
        value.pop("top5", None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


def _agreement(a: dict[str, object], b: dict[str, object], mode: str) -> float:
    """Share of one backend's top 5 the other returns too, over the same questions."""
    tops_a = a["top5"][mode]  # type: ignore[index]
    tops_b = b["top5"][mode]  # type: ignore[index]
    # The same questions in the same order: the shorter run's are a prefix of the longer's.
    shares = [len(set(x) & set(y)) / max(1, len(x)) for x, y in zip(tops_a, tops_b, strict=False)]
    return round(statistics.mean(shares), 3)


if __name__ == "__main__":
    main()
