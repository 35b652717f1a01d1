"""How well the MinHash signatures tell syndicated copies from different articles, and what
grouping costs a search.

    python benchmarks/near_duplicates.py [--out benchmarks/results/near_duplicates.json]

1. Copies: each bundled news article and the first 20 COVID-QA papers, edited the way outlets
   edit wire copy (a new dateline credit, sentences reworded, the last paragraph cut, an editor's
   note added), at growing amounts of editing. Reported: the estimated similarity (what rag
   compares with ``duplicate_threshold``) next to the exact Jaccard similarity of the 3-grams.
2. Different articles: every pair among the 2,050 Amazon review contexts and the 49 COVID-QA
   papers that the bands make candidates, with their estimated similarity: pairs at or above
   the threshold would be wrongly grouped.
3. Cost: indexing signs every document (ms per document); a search groups its candidates and
   looks up each shown document's copies (median search time with grouping on and off, in this
   run, on an index of the Amazon reviews with the default model).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.ingest import duplicates  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"


def contexts(name: str) -> list[str]:
    data = json.loads((DATASETS / name).read_text(encoding="utf-8"))
    return [p["context"] for d in data["data"] for p in d["paragraphs"]]


def exact_jaccard(a: str, b: str) -> float:
    x, y = duplicates.shingles(a), duplicates.shingles(b)
    return len(x & y) / max(1, len(x | y))


def edited(text: str, share: float, rng: random.Random, filler: list[str]) -> str:
    """``text`` with a share of its sentences replaced by sentences from other texts, a dateline
    credit, the last paragraph cut (when there are several) and an editor's note."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    if len(paragraphs) > 3:
        paragraphs = paragraphs[:-1]
    sentences = [s for p in paragraphs for s in p.split(". ")]
    for i in rng.sample(range(len(sentences)), k=round(share * len(sentences))):
        sentences[i] = rng.choice(filler)
    return "(Reuters) — " + ". ".join(sentences) + "\n\nThis story has been updated with comment from officials."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "near_duplicates.json")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--questions", type=int, default=60)
    args = parser.parse_args()
    rng = random.Random(0)
    news = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples" / "news").glob("*.md"))]
    covid = contexts("covidqa-dev.json")
    amazon = contexts("squadshifts-amazon-reviews.json")
    filler = [s for text in amazon[:400] for s in text.split(". ") if len(s.split()) > 5]
    results: dict[str, object] = {"threshold": args.threshold}

    print("1. Copies with growing edits (estimated / exact similarity, median over the articles)\n")
    print(
        "| sentences reworded | news: estimated | news: exact | news: grouped | papers: estimated | papers: grouped |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    copies = []
    for share in (0.0, 0.1, 0.2, 0.3, 0.5):
        row: dict[str, float] = {"share": share}
        for label, texts in (("news", news), ("papers", covid[:20])):
            est, exact, grouped = [], [], 0
            for text in texts:
                copy = edited(text, share, rng, filler)
                s = duplicates.similarity(duplicates.signature(text), duplicates.signature(copy))
                est.append(s)
                exact.append(exact_jaccard(text, copy))
                grouped += s >= args.threshold
            row[f"{label}_estimated"] = statistics.median(est)
            row[f"{label}_exact"] = statistics.median(exact)
            row[f"{label}_grouped"] = grouped / len(texts)
        copies.append(row)
        print(
            f"| {share:.0%} | {row['news_estimated']:.3f} | {row['news_exact']:.3f} | {row['news_grouped']:.0%} | "
            f"{row['papers_estimated']:.3f} | {row['papers_grouped']:.0%} |"
        )
    results["copies"] = copies

    print("\n2. Different articles: candidate pairs from the bands, and pairs at or above the threshold\n")
    started = time.perf_counter()
    corpus = amazon + covid
    sigs = [duplicates.signature(t) for t in corpus]
    sign_ms = 1000 * (time.perf_counter() - started) / len(corpus)
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, sig in enumerate(sigs):
        for band, value in enumerate(duplicates.band_hashes(sig)):
            buckets[(band, value)].append(i)
    pairs = {(a, b) for members in buckets.values() for a in members for b in members if a < b}
    scored = sorted(((duplicates.similarity(sigs[a], sigs[b]), a, b) for a, b in pairs), reverse=True)
    over = [(s, a, b) for s, a, b in scored if s >= args.threshold]
    same_text = sum(1 for _, a, b in over if corpus[a].strip() == corpus[b].strip())
    total_pairs = len(corpus) * (len(corpus) - 1) // 2
    print(f"{len(corpus)} documents, {total_pairs:,} pairs; {len(pairs):,} candidates from the bands")
    print(f"pairs at or above {args.threshold}: {len(over)} ({same_text} of them the very same text)")
    for s, a, b in over[:5]:
        print(f"  {s:.3f}: {corpus[a][:70]!r} | {corpus[b][:70]!r}")
    print(f"highest similarity below the threshold: {next((s for s, _, _ in scored if s < args.threshold), 0):.3f}")
    print(f"signing: {sign_ms:.2f} ms per document (median length {statistics.median(len(t) for t in corpus)} chars)")
    results["different"] = {
        "documents": len(corpus),
        "pairs": total_pairs,
        "candidates": len(pairs),
        "at_or_above": len(over),
        "identical_text": same_text,
        "sign_ms_per_doc": sign_ms,
    }

    print("\n3. Search time with grouping on and off (same index, same questions, this run)\n")
    from rag.api import RAG
    from rag.config import Config

    data = json.loads((DATASETS / "squadshifts-amazon-reviews.json").read_text(encoding="utf-8"))
    questions = [q["question"] for d in data["data"] for p in d["paragraphs"] for q in p["qas"]][: args.questions]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "src"
        folder.mkdir()
        for i, text in enumerate(amazon):
            (folder / f"r{i:04d}.txt").write_text(text, encoding="utf-8")
        config = Config(index_dir=Path(tmp) / "idx")
        with RAG.open(config=config) as rag:
            rag.index([folder], progress=False)
        timings: dict[str, list[float]] = {"on": [], "off": []}
        handles = {
            "on": RAG.open(config=config.replace(duplicate_threshold=args.threshold), read_only=True),
            "off": RAG.open(config=config.replace(duplicate_threshold=0), read_only=True),
        }
        for handle in handles.values():
            handle.search(questions[0])
        for round_ in range(4):
            for n, question in enumerate(questions):
                # Alternate which goes first: the second would find SQLite's pages already cached.
                order = list(handles.items()) if (n + round_) % 2 == 0 else list(handles.items())[::-1]
                for label, handle in order:
                    t0 = time.perf_counter()
                    handle.search(question, k=5)
                    timings[label].append(1000 * (time.perf_counter() - t0))
        for handle in handles.values():
            handle.close()
    on, off = statistics.median(timings["on"]), statistics.median(timings["off"])
    print(f"median search: grouping on {on:.2f} ms, off {off:.2f} ms, ratio {on / off:.2f}x")
    results["search_ms"] = {"on": on, "off": off, "ratio": on / off}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
