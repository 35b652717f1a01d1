"""Robustness evidence: kill -9 trials, concurrent load with writers, a memory soak, and how
long questions wait during a big upload. Every part runs real processes on 127.0.0.1.

    python benchmarks/robustness.py kill   [--trials 20]    kill -9 during index/update/remove/upload
    python benchmarks/robustness.py load   [--clients 50 --questions 10]
    python benchmarks/robustness.py soak   [--requests 5000]
    python benchmarks/robustness.py upload [--mb 5]
    python benchmarks/robustness.py all

- kill: each trial starts one operation as its own process (the hashing encoder, so trials
  are many and quick), kills it with SIGKILL at a random moment, checks that the store passes
  SQLite's integrity check, runs the operation again to the end, and compares the index with
  one built cleanly from the same sources: same documents and chunk texts, no duplicate, and a
  vector file holding exactly the store's chunk ids. "upload" runs the web chat's own upload
  code (``ChatService.upload``) in the killed process.
- load: `rag serve` with the bundled model; N clients ask M questions each about their own
  agent's code word while one upload goes through the server and one `rag index` runs beside
  it. Counts errors, wrong or mixed answers, and whether the writes finished and agree.
- soak: K `/ask` requests to one server, each as a new session (a new visitor); its resident
  memory every 250 requests.
- upload: questions asked every half second while a file of the given size is uploaded;
  their latency before and during the upload.

Results go to bench-out/robustness-PART.json and are printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


PY = sys.executable
FAST_ENV = {**os.environ, "RAG_MODEL": "hashing-64", "RAG_ENCODE_GROUP": "4", "GRADIO_ANALYTICS_ENABLED": "False"}
REAL_ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
for key in [k for k in REAL_ENV if k.startswith("RAG_")]:
    del REAL_ENV[key]


def words_article(n: int, words: int) -> str:
    rng = np.random.default_rng(n)
    vocab = [f"w{i}" for i in range(3000)]
    sentences = [f"Story {n} part {s} " + " ".join(rng.choice(vocab, 11)) + "." for s in range(words // 14)]
    return f"Story {n}\n\n" + " ".join(sentences)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- kill -9 trials --------------------------------------------------------------------------


def snapshot(index_dir: Path) -> dict[str, Any]:
    """What an index holds, independent of ids: documents with their chunk texts, and checks."""
    db = sqlite3.connect(f"file:{index_dir / 'store.sqlite'}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # Keyed by title and text, not id: an upload's id depends on the folder it was kept in.
        key = {doc_id: hashlib.sha256(f"{title}\x1f{text}".encode()).hexdigest()
               for doc_id, title, text in db.execute("SELECT id, title, text FROM documents")}  # fmt: skip
        docs = set(key.values())
        chunks: dict[str, list[str]] = {}
        for doc_id, text in db.execute("SELECT doc_id, text FROM chunks ORDER BY doc_id, ordinal"):
            chunks.setdefault(key[doc_id], []).append(text)
        duplicates = db.execute(
            "SELECT count(*) FROM (SELECT doc_id, ordinal FROM chunks GROUP BY doc_id, ordinal HAVING count(*) > 1)"
        ).fetchone()[0]
        ids = {r[0] for r in db.execute("SELECT id FROM chunks")}
        fts = db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0]
    finally:
        db.close()
    from embeddings import VectorIndex

    file_ids = set(VectorIndex.load(index_dir / "vectors.faiss")[0].ids().tolist()) if ids else set()
    return {"docs": docs, "chunks": chunks, "duplicates": duplicates, "fts_ok": fts == len(ids),
            "file_matches": file_ids == ids, "keywords_ok": keywords_in_step(index_dir, ids)}  # fmt: skip


def keywords_in_step(index_dir: Path, ids: set[int]) -> bool:
    """Whether the tantivy index is the one searches use (its marker is the store's generation)
    and holds exactly the store's chunks."""
    from rag.storage.keyword_index import KeywordIndex
    from rag.storage.store import Store

    store = Store(index_dir / "store.sqlite", read_only=True)
    try:
        keywords = KeywordIndex(index_dir, store.store_tag)
        return keywords.holds(store.generation) and set(keywords.held_ids().tolist()) == ids
    finally:
        store.close()


UPLOAD_SCRIPT = """
import sys
from pathlib import Path
from rag import RAG, Config
from ui.service import ChatService
rag = RAG.open(config=Config.load(index_dir=sys.argv[1]))
# The files stand for what Gradio received: their folder is the upload folder here.
received = sorted({str(Path(f).resolve().parent) for f in sys.argv[2:]})
report = ChatService.for_rag(rag, upload_folders=[Path(f) for f in received]).upload(sys.argv[2:])
print(report)
"""


def operation(kind: str, index_dir: Path, src: Path, uploads: list[Path]) -> list[str]:
    base = [PY, "-m", "rag.cli"]
    if kind in ("index", "update"):
        return [*base, "index", str(src), "--index-dir", str(index_dir), "--no-progress"]
    if kind == "remove":
        return [*base, "remove", str(src / "b"), "--index-dir", str(index_dir)]
    return [PY, "-c", UPLOAD_SCRIPT, str(index_dir), *map(str, uploads)]


def generation(index_dir: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{index_dir / 'store.sqlite'}?mode=ro", uri=True)
        row = db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        db.close()
        return int(row[0]) if row else 0
    except sqlite3.Error:
        return 0


def kill_trial(kind: str, trial: int, root: Path) -> dict[str, Any]:
    rng = random.Random(f"{kind}{trial}")
    src = root / "src"
    index_dir = root / "index"
    for i in range(60):
        write(src / ("a" if i % 2 else "b") / f"d{i:03d}.txt", words_article(i, 300))
    uploads = [write(root / "up" / f"u{i}.txt", words_article(1000 + i, 3000)) for i in range(3)]
    if kind != "index":
        subprocess.run(operation("index", index_dir, src, uploads), env=FAST_ENV, check=True, capture_output=True)
    if kind == "update":
        for path in sorted(src.rglob("*.txt"))[trial % 3 :: 3]:
            path.write_text(words_article(5000 + trial, 280) + path.name, encoding="utf-8")
    before = generation(index_dir)
    expected = {"index": 60, "update": 20, "remove": 30, "upload": 3}[kind]  # commits the operation makes
    target = rng.randint(0, expected - 1)
    proc = subprocess.Popen(operation(kind, index_dir, src, uploads), env=FAST_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    started = time.monotonic()
    # Kill once `target` commits have landed, plus a random sliver (so some kills hit embedding).
    while proc.poll() is None and generation(index_dir) < before + target and time.monotonic() - started < 60:
        time.sleep(0.001)
    time.sleep(rng.uniform(0, 0.05))
    delay = time.monotonic() - started
    landed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    after = generation(index_dir)
    landed = landed and after - before < expected
    # Finish the work, then build the same end state cleanly and compare.
    if kind == "remove":
        done = subprocess.run(operation(kind, index_dir, src, uploads), env=FAST_ENV, capture_output=True, text=True)
        assert done.returncode in (0, 2), done.stderr  # 2: nothing left to remove
    else:
        subprocess.run(operation(kind, index_dir, src, uploads), env=FAST_ENV, check=True, capture_output=True)
    clean = root / "clean"
    subprocess.run(operation("index", clean, src, uploads), env=FAST_ENV, check=True, capture_output=True)
    if kind == "remove":
        subprocess.run(operation("remove", clean, src, uploads), env=FAST_ENV, check=True, capture_output=True)
    if kind == "upload":
        subprocess.run(operation("upload", clean, src, uploads), env=FAST_ENV, check=True, capture_output=True)
    got, want = snapshot(index_dir), snapshot(clean)
    lost = len(want["docs"] - got["docs"]) + sum(
        got["chunks"].get(d) != c for d, c in want["chunks"].items() if d in got["docs"]
    )
    extra = len(got["docs"] - want["docs"])
    return {
        "kind": kind, "trial": trial, "killed_after_s": round(delay, 2), "killed_mid_run": landed,
        "commits_before_kill": after - before, "lost_or_different": lost, "extra": extra,
        "duplicates": got["duplicates"], "fts_ok": got["fts_ok"], "vector_file_exact": got["file_matches"],
        "keyword_index_in_step": got["keywords_ok"],
    }  # fmt: skip


def part_kill(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for kind in ("index", "update", "remove", "upload"):
        for trial in range(args.trials):
            with tempfile.TemporaryDirectory() as tmp:
                row = kill_trial(kind, trial, Path(tmp))
            rows.append(row)
            print(json.dumps(row), flush=True)
    mid = [r for r in rows if r["killed_mid_run"]]
    return {
        "trials": len(rows), "killed_mid_run": len(mid),
        "lost_or_different": sum(r["lost_or_different"] for r in rows), "extra": sum(r["extra"] for r in rows),
        "duplicates": sum(r["duplicates"] for r in rows), "fts_bad": sum(not r["fts_ok"] for r in rows),
        "keyword_index_behind": sum(not r["keyword_index_in_step"] for r in rows),
        "vector_file_not_exact": sum(not r["vector_file_exact"] for r in rows),
        "by_kind": {k: sum(r["kind"] == k and r["killed_mid_run"] for r in rows) for k in ("index", "update",
                                                                                       "remove", "upload")},
    }  # fmt: skip


# --- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(index_dir: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([PY, "-m", "rag.cli", "serve", "--index-dir", str(index_dir), "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"rag serve did not start; see {log}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


AGENTS = 50


def agents_corpus(folder: Path) -> list[str]:
    rng = random.Random(7)
    words = [f"{a}{b}" for a in ("amber", "basil", "cedar", "delta", "ember") for b in
             ("fox", "gull", "hare", "ibis", "jay", "kite", "lark", "mole", "newt", "owl")]  # fmt: skip
    rng.shuffle(words)
    lines = [json.dumps({"id": f"agent{i}", "title": f"Agent {i}",
                         "text": f"Agent number {i} keeps a notebook. The code word of agent number {i} is "
                                 f"{words[i]}. Nobody else knows it."}) for i in range(AGENTS)]  # fmt: skip
    write(folder / "agents.jsonl", "\n".join(lines))
    return words[:AGENTS]


def part_load(args: argparse.Namespace) -> dict[str, Any]:
    from gradio_client import Client, handle_file

    root = Path(tempfile.mkdtemp())
    corpus = root / "corpus"
    words = agents_corpus(corpus)
    write(corpus / "sample.txt", (REPO / "examples/articles/000_f564f0beba51ee61.txt").read_text())
    index_dir = root / "index"
    subprocess.run([PY, "-m", "rag.cli", "index", str(corpus), "--index-dir", str(index_dir)], env=REAL_ENV,
                   check=True, capture_output=True)  # fmt: skip
    proc, url = start_serve(index_dir, REAL_ENV, root / "serve.log")
    Client(url, verbose=False).predict("warm up", api_name="/ask")
    errors: list[str] = []
    wrong = mixed = answered = 0
    lock = threading.Lock()

    def client(c: int) -> None:
        nonlocal wrong, mixed, answered
        api = Client(url, verbose=False)
        for q in range(args.questions):
            agent = (c * args.questions + q) % AGENTS
            try:
                answer = api.predict(f"What is the code word of agent number {agent}?", api_name="/ask")
            except Exception as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            with lock:
                answered += 1
                wrong += words[agent] not in answer["answer"]
                mixed += sum(w in answer["answer"] for w in words) > 1

    upload_file = write(root / "upload" / "long.txt", "\n\n".join(words_article(3000 + i, 400) for i in range(40)))
    extra = root / "extra"
    for i in range(40):
        write(extra / f"e{i}.txt", words_article(4000 + i, 400))
    writes: dict[str, Any] = {}

    def upload() -> None:
        started = time.monotonic()
        report, *_ = Client(url, verbose=False).predict([handle_file(str(upload_file))], api_name="/upload")
        writes["upload"] = {"report": report.splitlines()[0], "seconds": round(time.monotonic() - started, 1)}

    def cli_index() -> None:
        started = time.monotonic()
        done = subprocess.run([PY, "-m", "rag.cli", "index", str(extra), "--index-dir", str(index_dir),
                               "--no-progress"], env=REAL_ENV, capture_output=True, text=True)  # fmt: skip
        writes["cli_index"] = {"returncode": done.returncode, "out": done.stdout.splitlines()[:1],
                               "seconds": round(time.monotonic() - started, 1)}  # fmt: skip

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=args.clients + 2) as pool:
            side = [pool.submit(upload), pool.submit(cli_index)]
            list(pool.map(client, range(args.clients)))
            for future in side:
                future.result()
        elapsed = time.monotonic() - started
        final = Client(url, verbose=False).predict("What is in story 4005?", api_name="/ask")
    finally:
        proc.terminate()
        proc.wait(10)
    status = json.loads(subprocess.run([PY, "-m", "rag.cli", "status", "--json", "--index-dir", str(index_dir)],
                                       env=REAL_ENV, capture_output=True, text=True).stdout)  # fmt: skip
    return {
        "clients": args.clients, "questions_each": args.questions, "answered": answered, "errors": len(errors),
        "error_samples": errors[:5], "wrong": wrong, "mixed": mixed, "seconds": round(elapsed, 1),
        "writes": writes, "server_saw_cli_documents": any("4005" in p["text"] for p in final["passages"]),
        "status": {k: status[k] for k in ("documents", "chunks", "vectors", "vectors_up_to_date")},
    }  # fmt: skip


def part_soak(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp())
    corpus = root / "corpus"
    agents_corpus(corpus)
    index_dir = root / "index"
    subprocess.run([PY, "-m", "rag.cli", "index", str(corpus), "--index-dir", str(index_dir)], env=REAL_ENV,
                   check=True, capture_output=True)  # fmt: skip
    proc, url = start_serve(index_dir, REAL_ENV, root / "serve.log")
    from gradio_client import Client

    curve: list[tuple[int, float]] = []
    done = 0
    lock = threading.Lock()

    def worker(w: int) -> None:
        nonlocal done
        api = Client(url, verbose=False)
        while True:
            with lock:
                if done >= args.requests:
                    return
                done += 1
                n = done
                if n % 250 == 0:
                    curve.append((n, round(rss_mb(proc.pid), 1)))
            # Every request as a new visitor (a new session), the costlier case for the server.
            api.session_hash = str(uuid.uuid4())
            api.predict(f"What is the code word of agent number {n % AGENTS}?", api_name="/ask")

    started = time.monotonic()
    try:
        api = Client(url, verbose=False)
        api.predict("warm up", api_name="/ask")
        curve.append((0, round(rss_mb(proc.pid), 1)))
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(worker, range(4)))
        time.sleep(1)
        curve.append((args.requests, round(rss_mb(proc.pid), 1)))
    finally:
        proc.terminate()
        proc.wait(10)
    half = [mb for n, mb in curve if n >= args.requests // 2]
    xs = np.array([n for n, _ in curve if n >= args.requests // 2], dtype=float)
    slope = float(np.polyfit(xs, np.array(half), 1)[0]) * 1024 if len(xs) > 2 else float("nan")
    return {"requests": args.requests, "seconds": round(time.monotonic() - started, 1), "rss_mb_curve": curve,
            "second_half_growth_kb_per_request": round(slope, 2)}  # fmt: skip


def part_upload(args: argparse.Namespace) -> dict[str, Any]:
    from gradio_client import Client, handle_file

    root = Path(tempfile.mkdtemp())
    index_dir = root / "index"
    subprocess.run([PY, "-m", "rag.cli", "index", str(REPO / "examples/articles"), "--index-dir", str(index_dir)],
                   env=REAL_ENV, check=True, capture_output=True)  # fmt: skip
    proc, url = start_serve(index_dir, REAL_ENV, root / "serve.log")
    parts, size, i = [], 0, 0
    while size < args.mb * 1_000_000:
        parts.append(words_article(7000 + i, 700))
        size += len(parts[-1]) + 2
        i += 1
    big = write(root / "big" / "big.txt", "\n\n".join(parts))
    question = "How many troops did the Afghan government have?"

    def timed() -> float:
        started = time.monotonic()
        answer = Client(url, verbose=False).predict(question, api_name="/ask")
        assert "300,000" in answer["answer"], answer
        return time.monotonic() - started

    try:
        timed()
        baseline = [timed() for _ in range(10)]
        result: dict[str, Any] = {}

        def upload() -> None:
            started = time.monotonic()
            report, *_ = Client(url, verbose=False).predict([handle_file(str(big))], api_name="/upload")
            result["upload_s"] = round(time.monotonic() - started, 1)
            result["report"] = report.splitlines()[0]

        thread = threading.Thread(target=upload)
        thread.start()
        during = []
        while thread.is_alive():
            during.append(timed())
            time.sleep(0.5)
        thread.join()
    finally:
        proc.terminate()
        proc.wait(10)
    return {
        "upload_mb": round(big.stat().st_size / 1e6, 2), **result,
        "baseline_p50_s": round(statistics.median(baseline), 3), "baseline_max_s": round(max(baseline), 3),
        "during_upload_questions": len(during), "during_p50_s": round(statistics.median(during), 3),
        "during_max_s": round(max(during), 3),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["kill", "load", "soak", "upload", "all"])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--mb", type=float, default=5)
    args = parser.parse_args()
    parts = ["kill", "load", "soak", "upload"] if args.part == "all" else [args.part]
    out = Path("bench-out")
    out.mkdir(exist_ok=True)
    for part in parts:
        result = {"kill": part_kill, "load": part_load, "soak": part_soak, "upload": part_upload}[part](args)
        (out / f"robustness-{part}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({part: result}, indent=2))


if __name__ == "__main__":
    main()
