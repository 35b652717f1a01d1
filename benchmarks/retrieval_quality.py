"""Retrieval quality per mode and fusion setting on SQuAD-format sets.

    python benchmarks/retrieval_quality.py [--datasets DIR] [--questions N] [--index-root DIR]
                                           [--settings NAME,...] [--keyword-budget N] [--keyword-rare N]
                                           [--backend local|milvus] [--keyword-index tantivy|fts5]

Each set's articles are indexed once into INDEX_ROOT/<set> (incrementally: a rerun embeds
nothing). A hit is a retrieved passage whose span contains a gold answer span. Reports hit@1,
hit@5, hit@10 and MRR (over the top 10) per configuration.

``--keyword-budget`` and ``--keyword-rare`` set the keyword side's budget (rag/search/retrieval.py);
scaled by (chunks here / chunks there) they show what the budget costs on a bigger index: a
budget of 20,000 chunks at 1M chunks leaves out the same words as 137 does at these sets' 6,852.

``--keyword-index`` picks the local backend's BM25 engine (the setting ``keyword_index``), to
compare tantivy with SQLite FTS5 on the same chunks.

``--backend milvus`` searches a Milvus Lite copy of each index (INDEX_ROOT/<set>-milvus, its store
copied and its collection filled from the cached vectors, so nothing is embedded again).
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval.squad import Question, load_squad
from rag import RAG, Config
from rag import search_local as search_local_module
from rag.search.local import LocalSearch
from rag.search.retrieval import Retriever

DEFAULT_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@dataclass(frozen=True)
class Setting:
    name: str
    mode: str
    fusion: str = "convex"
    dense_weight: float = 0.5
    max_per_doc: int | None = None  # None: the default cap


SETTINGS = [
    Setting("dense", "dense"),
    Setting("keyword", "keyword"),
    Setting("rrf 0.5", "hybrid", "rrf", 0.5),
    *[Setting(f"convex {w}", "hybrid", "convex", w) for w in (0.3, 0.4, 0.5, 0.6, 0.7)],
    Setting("convex 0.5, no cap", "hybrid", "convex", 0.5, 10),
]


class CachedQueries:
    """Embed each question once for all settings (the model is deterministic)."""

    def __init__(self, encoder: object) -> None:
        self.encoder = encoder
        self.cache: dict[str, np.ndarray] = {}

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        (text,) = texts
        if text not in self.cache:
            self.cache[text] = self.encoder.encode_queries(texts)  # type: ignore[attr-defined]
        return self.cache[text]


def score(
    rag: RAG, questions: Iterable[Question], setting: Setting, queries: CachedQueries, keyword_budget: int | None = None
) -> dict[str, float]:
    backend = (
        rag.parts.search_backend
        if keyword_budget is None
        else LocalSearch(
            rag.store.path,
            rag.store.db,
            rag.parts.vector_file.search,
            keyword_budget=keyword_budget,
            keywords=rag.parts.keywords,
        )
    )
    retriever = Retriever(
        rag.store.path, rag.store.db, lambda: queries, backend, rag.settings.vectors_key,  # type: ignore[arg-type, return-value]
        fusion=setting.fusion, dense_weight=setting.dense_weight, candidates=rag.config.candidates,
    )  # fmt: skip
    hits = {1: 0, 5: 0, 10: 0}
    mrr = 0.0
    n = 0
    for q in questions:
        n += 1
        passages = retriever.search(q.question, 10, setting.mode, max_per_doc=setting.max_per_doc).passages
        for p in passages:
            if any(s.doc_id == p.doc_id and p.start <= s.start and s.end <= p.end for s in q.spans):
                mrr += 1 / p.rank
                for k in hits:
                    hits[k] += p.rank <= k
                break
    return {"hit@1": hits[1] / n, "hit@5": hits[5] / n, "hit@10": hits[10] / n, "mrr": mrr / n, "n": n}


def milvus_copy(folder: Path) -> Path:
    """A copy of the index's store beside it, searched on Milvus Lite (filled from the cache)."""
    import shutil

    copy = folder.with_name(folder.name + "-milvus")
    if copy.exists():
        shutil.rmtree(copy)
    copy.mkdir(parents=True)
    for file in folder.glob("store.sqlite*"):
        shutil.copy2(file, copy / file.name)
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    parser.add_argument("--questions", type=int, default=2000, help="questions sampled per set (seed 0)")
    parser.add_argument("--index-root", type=Path, default=Path("bench-out/indexes"))
    parser.add_argument("--settings", help="comma-separated names from the table (default: all)")
    parser.add_argument("--keyword-budget", type=int, help="the keyword side's budget (default: the setting's)")
    parser.add_argument("--keyword-rare", type=int, help="words matching at most this many chunks always count")
    parser.add_argument("--backend", choices=("local", "milvus"), default="local", help="default: %(default)s")
    parser.add_argument("--keyword-index", choices=("tantivy", "fts5"), default="tantivy", help="default: %(default)s")
    parser.add_argument("--out", type=Path, default=Path("bench-out/retrieval_quality.json"))
    args = parser.parse_args()
    if args.keyword_rare is not None:
        search_local_module.KEYWORD_RARE = args.keyword_rare
    chosen = [s for s in SETTINGS if args.settings is None or s.name in args.settings.split(",")]
    results = {}
    print("| set | setting | hit@1 | hit@5 | hit@10 | MRR |\n|---|---|---|---|---|---|")
    for path in sorted(args.datasets.glob("*.json")):
        qset = load_squad(path)
        questions = [q for q in qset.questions if q.spans]
        random.Random(0).shuffle(questions)
        questions = questions[: args.questions]
        folder = args.index_root / path.stem
        with RAG.open(folder) as rag:
            rag.index_documents(qset.documents, progress=False)
        if args.backend == "milvus":
            folder = milvus_copy(folder)
        with RAG.open(config=Config(index_dir=folder, backend=args.backend, keyword_index=args.keyword_index)) as rag:
            rag.repair_vectors(deep=False)  # also builds the tantivy index of an index made before it
            queries = CachedQueries(rag.encoder)
            for setting in chosen:
                got = score(rag, questions, setting, queries, args.keyword_budget)
                results[f"{path.stem}/{setting.name}"] = got
                print(
                    f"| {path.stem} | {setting.name} | {got['hit@1']:.3f} | {got['hit@5']:.3f} "
                    f"| {got['hit@10']:.3f} | {got['mrr']:.3f} |",
                    flush=True,
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
