"""Keyword scores after deletions: how far tantivy's BM25 drifts from a clean build as removed
chunks pile up, and what the rebuild that ends the drift costs (the choice of
``rag.storage.keyword_index.EXACT_UP_TO_CHUNKS`` and ``REBUILD_REMOVED_SHARE``).

    python benchmarks/keyword_drift.py [--docs 400] [--queries 40]

Indexes review paragraphs of the Amazon set (one file each, the hashing encoder: BM25 does
not depend on it), removes a growing share of them in one `rag index` run each with the rebuild
turned off, and compares the keyword top 10 of questions from the set with an index built from
scratch from the documents left: the share of questions whose scores differ and whose top-10 sets
differ. Then times, at larger sizes, one `rag index` run that removes one file with the rebuild it
triggers and without it.
Results go to benchmarks/results/keyword_drift.json.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rag import RAG, Config  # noqa: E402
from rag import keyword_index as ki  # noqa: E402

DATA = REPO.parent / "shared" / "datasets" / "squadshifts-amazon-reviews.json"


def load(docs: int, queries: int) -> tuple[list[dict[str, str]], list[str]]:
    data = json.loads(DATA.read_text())["data"]
    paragraphs = [p for article in data for p in article["paragraphs"]]
    random.Random(7).shuffle(paragraphs)
    chosen = paragraphs[:docs]
    records = [{"id": f"r{i}", "title": f"Review {i}", "text": p["context"]} for i, p in enumerate(chosen)]
    questions = [qa["question"] for p in chosen for qa in p["qas"]]
    random.Random(8).shuffle(questions)
    return records, questions[:queries]


def write(folder: Path, records: list[dict[str, str]]) -> None:
    """One file per review, so that removing a review removes only its chunks."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {f"{r['id']}.txt": f"{r['title']}\n\n{r['text']}" for r in records}
    for stale in folder.glob("*.txt"):
        if stale.name not in wanted:
            stale.unlink()
    for name, text in wanted.items():
        if not (folder / name).exists():
            (folder / name).write_text(text)


def top(rag: RAG, question: str) -> dict[str, float]:
    assert rag.parts.keywords is not None
    words = [w for w in question.lower().replace("?", " ").split() if w.isalpha()]
    found = rag.parts.keywords.search(words, 10, None, rag.store.generation) or {}
    # By file name: document ids carry a hash of the path, and the clean build reads another folder.
    docs = {cid: Path(rag.store.db.execute("SELECT d.path FROM chunks c JOIN documents d ON d.id = c.doc_id "
                                           "WHERE c.id = ?", (cid,)).fetchone()[0]).name for cid in found}  # fmt: skip
    return {f"{docs[cid]}#{n}": round(score, 4) for n, (cid, score) in enumerate(found.items())}


def removal_cost(root: Path, records: list[dict[str, str]], docs: int) -> dict[str, float]:
    """One `rag index` run that removes one file, at ``docs`` files: timed with the rebuild the
    removal triggers and, on the next file, with it turned off (medians of 3 each)."""
    many = [{**records[i % len(records)], "id": f"c{i}", "text": f"{records[i % len(records)]['text']} (copy {i})"}
            for i in range(docs)]  # fmt: skip
    config = Config(index_dir=root / "index", model="hashing-64")
    write(root / "src", many)
    with RAG.open(config=config) as rag:
        rag.index([root / "src"], progress=False)
        chunks = int(rag.store.counts()["chunks"])
    timings: dict[str, list[float]] = {"with_rebuild_s": [], "without_rebuild_s": []}
    saved = ki.EXACT_UP_TO_CHUNKS, ki.REBUILD_REMOVED_SHARE
    victims = iter(range(docs))
    for _ in range(3):
        for key, limits in (("with_rebuild_s", (10**9, 0.0)), ("without_rebuild_s", (0, 1.0))):
            ki.EXACT_UP_TO_CHUNKS, ki.REBUILD_REMOVED_SHARE = limits
            (root / "src" / f"c{next(victims)}.txt").unlink()
            started = time.perf_counter()
            with RAG.open(config=config) as rag:
                rag.index([root / "src"], progress=False)
            timings[key].append(time.perf_counter() - started)
    ki.EXACT_UP_TO_CHUNKS, ki.REBUILD_REMOVED_SHARE = saved
    row = {"docs": docs, "chunks": chunks, **{k: round(statistics.median(v), 3) for k, v in timings.items()}}
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument(
        "--cost-docs",
        type=int,
        nargs="*",
        default=[2_000, 10_000, 40_000],
        help="index sizes (review files) at which to time one removal with and without the rebuild",
    )
    args = parser.parse_args()
    records, questions = load(args.docs, args.queries)
    root = Path(tempfile.mkdtemp(prefix="keyword-drift-"))
    config = Config(index_dir=root / "index", model="hashing-64")
    write(root / "src", records)
    with RAG.open(config=config) as rag:
        rag.index([root / "src"], progress=False)
    ki.EXACT_UP_TO_CHUNKS, ki.REBUILD_REMOVED_SHARE = 0, 1.0  # measure the drift itself
    rows = []
    kept = list(records)
    order = random.Random(9).sample(range(len(records)), len(records))
    removed = 0
    for share in (0.01, 0.02, 0.05, 0.10, 0.20, 0.30):
        target = int(share * len(records))
        gone = {f"r{i}" for i in order[removed:target]}
        removed = target
        kept = [r for r in kept if r["id"] not in gone]
        write(root / "src", kept)
        with RAG.open(config=config) as rag:
            rag.index([root / "src"], progress=False)
            assert rag.parts.keywords is not None
            deleted = rag.parts.keywords.deleted_share()
            history = [top(rag, q) for q in questions]
        clean = config.replace(index_dir=root / f"clean-{share}")
        write(root / "clean-src", kept)
        with RAG.open(config=clean) as rag:
            rag.index([root / "clean-src"], progress=False)
            fresh = [top(rag, q) for q in questions]
        differ_scores = sum(h != f for h, f in zip(history, fresh, strict=True))
        differ_sets = sum({k.split("#")[0] for k in h} != {k.split("#")[0] for k in f}
                          for h, f in zip(history, fresh, strict=True))  # fmt: skip
        rows.append({"removed_docs_share": share, "deleted_share_in_tantivy": round(deleted, 4),
                     "queries": len(questions), "scores_differ": differ_scores,
                     "top10_sets_differ": differ_sets})  # fmt: skip
        print(rows[-1], flush=True)
    costs = [removal_cost(root / f"cost-{n}", records, n) for n in args.cost_docs]
    cost = {"removal_with_and_without_rebuild": costs}
    out = REPO / "benchmarks" / "results" / "keyword_drift.json"
    out.write_text(json.dumps({"drift": rows, "cost": cost}, indent=1) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
