"""Search latency and memory on synthetic corpora of 10k, 100k and (approximate) 1M chunks.

    python benchmarks/bench_search.py [--sizes 10000,100000] [--ivf-size 1000000] [--queries 200]
                                      [--encoder-backend onnx-int8|onnx|torch] [--keyword-index tantivy|fts5]

Corpora are grown from real chunks: the texts and vectors of an index built from the sets in
../shared/datasets (benchmarks/retrieval_quality.py makes it; this script makes it if absent).
Copy i of a base chunk gets the base text plus a unique tag, and the base vector plus Gaussian
noise (sigma 0.03 per dimension, then renormalised: cosine to its base about 0.86), so keyword
postings and vector neighbourhoods look like real data. Queries are real questions from the
sets; each timing is one `RAG.search(question, k=5, mode=...)` call, query embedding included.
Each size runs in its own process so its peak memory (VmHWM) is its own.
For the approximate index, hit rate = share of the exact (flat) top 10 that IVF also returns.
The keyword side runs on ``--keyword-index`` (the setting ``keyword_index``; the tantivy index
is built from the store first if the corpus has none, and its build time reported). With
tantivy, keyword and hybrid search are also run on SQLite FTS5 in the same process, the engine
before it: their times, and the share of FTS5's top 10 that tantivy returns (both are exact
BM25; they differ in stemming and in tantivy's statistics). ``--keyword-budget N`` also times
FTS5 with that budget (the setting ``keyword_budget``).
The corpora record ``--encoder-backend`` (folder bench-out/search/KIND-SIZE-BACKEND), so the
queries are embedded by that runtime; run it once per runtime to compare them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from embeddings import BACKENDS, VectorIndex
from embeddings.encoder import DEFAULT_BACKEND
from eval.squad import load_squad
from rag import RAG, Config
from rag.api import STORE_FILE, VECTORS_FILE
from rag.config import IndexSettings
from rag.search.local import LocalSearch
from rag.search.retrieval import Retriever
from rag.storage.store import Store
from rag.types import content_hash

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
WORK = Path("bench-out/search")
BACKEND = DEFAULT_BACKEND  # the encoder runtime the corpora record, so queries use it
KEYWORD_INDEX = "tantivy"


def base_chunks() -> tuple[list[str], np.ndarray, list[str]]:
    """Real chunk texts and vectors, and real questions."""
    texts: list[str] = []
    vectors: list[np.ndarray] = []
    questions: list[str] = []
    for path in sorted(DATASETS.glob("*.json")):
        qset = load_squad(path)
        questions.extend(q.question for q in qset.questions)
        with RAG.open(Path("bench-out/indexes") / path.stem) as rag:
            rag.index_documents(qset.documents, progress=False)
            rows = rag.store.db.execute(
                "SELECT c.text, e.vector FROM chunks c JOIN embeddings e ON e.text_hash = c.text_hash AND e.model = ?",
                (rag.settings.vectors_key,),
            ).fetchall()
        texts.extend(r[0] for r in rows)
        vectors.extend(np.frombuffer(r[1], dtype=np.float32) for r in rows)
    return texts, np.stack(vectors), questions


def build(size: int, kind: str, folder: Path) -> None:
    texts, base, _ = base_chunks()
    folder.mkdir(parents=True, exist_ok=True)
    for name in (STORE_FILE, VECTORS_FILE):
        for p in folder.glob(name + "*"):
            p.unlink()
    settings = IndexSettings(index_type=kind, encoder_backend=BACKEND)
    store = Store(folder / STORE_FILE)
    store.set_meta({**settings.to_meta(), "dim": base.shape[1]})
    rng = np.random.default_rng(0)
    index = VectorIndex(base.shape[1], kind)
    per_doc = 10
    started = time.perf_counter()
    for first in range(0, size, 50_000):
        ids = np.arange(first, min(size, first + 50_000))
        chunk_texts = [f"{texts[i % len(texts)]} ref{i}" for i in ids]
        noisy = base[ids % len(texts)] + rng.normal(0, 0.03, (len(ids), base.shape[1])).astype(np.float32)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        with store.transaction() as db:
            for d in range(0, len(ids), per_doc):
                doc_id = f"doc{(first + d) // per_doc}"
                parts = chunk_texts[d : d + per_doc]
                doc_text = " ".join(parts)
                date = f"20{10 + (first + d) // per_doc % 15}-06-01"
                db.execute(
                    "INSERT INTO documents(id, path, source, title, date, text, content_hash, indexed_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, '')",
                    (doc_id, doc_id, doc_id, doc_id, date, doc_text, content_hash(doc_text)),
                )
                offset = 0
                rows = []
                for ordinal, text in enumerate(parts):
                    rows.append((first + d + ordinal + 1, doc_id, ordinal, offset, offset + len(text), text,
                                 content_hash(text)))  # fmt: skip
                    offset += len(text) + 1
                db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            db.executemany(
                "INSERT INTO embeddings VALUES (?, ?, ?)",
                [(settings.vectors_key, content_hash(t), v.tobytes()) for t, v in zip(chunk_texts, noisy, strict=True)],
            )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('generation', '1')")
        index.add(ids.astype(np.int64) + 1, noisy)
        print(f"  built {min(size, first + 50_000):,} chunks in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    index.save(folder / VECTORS_FILE, {"generation": store.generation, "model": settings.vectors_key})
    store.close()


def measure(folder: Path, queries: int, nprobes: list[int], budget: int) -> dict[str, object]:
    _, _, questions = base_chunks()
    random.Random(1).shuffle(questions)
    questions = questions[:queries]
    out: dict[str, object] = {"keyword_index": KEYWORD_INDEX}
    rag = RAG.open(config=Config(index_dir=folder, keyword_index=KEYWORD_INDEX), create=False)
    if rag.parts.keywords is not None and not rag.parts.keywords.holds(rag.store.generation):
        started = time.perf_counter()
        rag.repair_vectors(deep=False)  # builds the tantivy index from the store
        out["keyword_index_build_s"] = round(time.perf_counter() - started, 1)
    rag.search("warm up", k=5)
    out["chunks"] = rag.store.counts()["chunks"]
    out["approximate"] = rag.parts.vectors.is_approximate
    for mode in ("dense", "keyword", "hybrid"):
        times = []
        for q in questions:
            started = time.perf_counter()
            rag.search(q, k=5, mode=mode)
            times.append((time.perf_counter() - started) * 1000)
        out[f"{mode}_p50_ms"] = round(statistics.median(times), 2)
        out[f"{mode}_p95_ms"] = round(float(np.percentile(times, 95)), 2)
    embed = []
    for q in questions[:50]:
        started = time.perf_counter()
        rag.encoder.encode_queries([q])
        embed.append((time.perf_counter() - started) * 1000)
    out["embed_p50_ms"] = round(statistics.median(embed), 2)
    if rag.parts.vectors.is_approximate:
        # Exact top 10 from a flat index over the same vectors, for the approximate one's hit rate.
        ivf = rag.parts.vectors
        flat = VectorIndex(ivf.dim, "flat")
        for rows in rag.store.iter_chunk_hashes(100_000):
            found = rag.store.cached_vectors(rag.settings.vectors_key, [h for _, h, _ in rows])
            flat.add(np.array([cid for cid, _, _ in rows]), np.stack([found[h] for _, h, _ in rows]))
        qv = rag.encoder.encode_queries(questions)
        started = time.perf_counter()
        _, exact = flat.search(qv, 10)
        out["flat_dense_search_batched_ms_per_query"] = round((time.perf_counter() - started) * 1000 / len(qv), 2)
        for nprobe in nprobes:
            ivf.set_nprobe(nprobe)
            times = []
            hits = 0
            for row in range(len(qv)):
                started = time.perf_counter()
                _, got = ivf.search(qv[row : row + 1], 10)
                times.append((time.perf_counter() - started) * 1000)
                hits += len(set(got[0].tolist()) & set(exact[row].tolist()))
            out[f"ivf_nprobe{nprobe}_hit_rate_at_10"] = round(hits / (10 * len(qv)), 3)
            out[f"ivf_nprobe{nprobe}_search_only_p50_ms"] = round(statistics.median(times), 2)
    if rag.parts.keywords is not None:
        out.update(agreement(rag, questions, 0, "fts5"))
        out["keywords_dir_mb"] = round(rag.parts.keywords.disk_bytes() / 1e6, 1)
    if budget:
        out.update(agreement(rag, questions, budget, f"budget{budget}"))
    out["peak_rss_mb"] = round(_vm("VmHWM") / 1024, 1)
    out["faiss_file_mb"] = round((folder / VECTORS_FILE).stat().st_size / 1e6, 1)
    out["store_file_mb"] = round((folder / STORE_FILE).stat().st_size / 1e6, 1)
    return out


def agreement(rag: RAG, questions: list[str], budget: int, label: str) -> dict[str, float]:
    """The keyword side on SQLite FTS5 (with ``keyword_budget`` = ``budget``; 0 is exact) beside
    the handle's own: FTS5's times, and the share of the handle's top 10 that FTS5 returns, for
    keyword and hybrid search. Copies of one base chunk tie, so results are compared by base
    text (the tag stripped), as multisets."""
    fts5 = Retriever(
        rag.store.path, rag.store.db, lambda: rag.encoder,
        LocalSearch(rag.store.path, rag.store.db, rag.parts.vector_file.search, keyword_budget=budget),
        rag.settings.vectors_key,
    )  # fmt: skip
    out: dict[str, float] = {}
    for mode in ("keyword", "hybrid"):
        shares, times = [], []
        for q in questions:
            want = rag.retriever.search(q, 10, mode).passages
            started = time.perf_counter()
            got = fts5.search(q, 10, mode).passages
            times.append((time.perf_counter() - started) * 1000)
            a = Counter(_base(p.text) for p in want)
            b = Counter(_base(p.text) for p in got)
            if a:
                shares.append(sum((a & b).values()) / sum(a.values()))
        out[f"{mode}_{label}_p50_ms"] = round(statistics.median(times), 2)
        out[f"{mode}_{label}_p95_ms"] = round(float(np.percentile(times, 95)), 2)
        out[f"{mode}_{label}_top10_agreement"] = round(statistics.mean(shares), 3)
    fts5.close()
    return out


def _base(text: str) -> str:
    return re.sub(r" ref\d+$", "", text)


def _vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="flat (exact) index sizes")
    parser.add_argument("--ivf-size", type=int, default=1_000_000, help="approximate index size (0: skip)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--nprobe", default="16,64")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # SIZE:KIND, run in a child process
    parser.add_argument("--keyword-budget", type=int, default=0, help="also time FTS5 with this budget (0: skip)")
    parser.add_argument("--keyword-index", default="tantivy", choices=("tantivy", "fts5"), help="default: %(default)s")
    parser.add_argument("--encoder-backend", default=DEFAULT_BACKEND, choices=BACKENDS, help="default: %(default)s")
    parser.add_argument("--out", type=Path, default=Path("bench-out/search.json"))
    args = parser.parse_args()
    global BACKEND, KEYWORD_INDEX
    BACKEND = args.encoder_backend
    KEYWORD_INDEX = args.keyword_index
    nprobes = [int(n) for n in args.nprobe.split(",")]
    if args.one:
        size, kind = args.one.split(":")
        folder = WORK / f"{kind}-{size}-{BACKEND}"
        if not (folder / VECTORS_FILE).exists():
            build(int(size), kind, folder)
        print(json.dumps(measure(folder, args.queries, nprobes, args.keyword_budget)))
        return
    runs = [(int(s), "flat") for s in args.sizes.split(",") if s] + ([(args.ivf_size, "ivf")] if args.ivf_size else [])
    results = {}
    for size, kind in runs:
        done = subprocess.run(
            [sys.executable, __file__, "--one", f"{size}:{kind}", "--queries", str(args.queries), "--nprobe",
             args.nprobe, "--encoder-backend", BACKEND, "--keyword-budget", str(args.keyword_budget),
             "--keyword-index", KEYWORD_INDEX],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        results[f"{kind}-{size}"] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{kind}-{size}: {json.dumps(results[f'{kind}-{size}'])}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
