"""Calibrate and measure the extractive answerer on SQuAD-format sets.

    python benchmarks/answer_quality.py [--questions 400]

Answerable questions are each set's own, asked of that set's index. Unanswerable ones are
the other set's questions asked of this set's index (the sets share no topic). For every
question the best sentence's semantic and lexical scores are recorded once; then each weight
mix is scored by how well its best-sentence score separates the two groups (ROC AUC), the
threshold is the one with the best balanced accuracy, and at that threshold we report the
share of answerable questions whose answer contains a gold answer, and the share of
unanswerable ones that abstain.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from eval.metrics import contains_answer
from eval.squad import Question, load_squad
from rag import RAG
from rag.answering.extractive import _unique
from rag.citations import coverage, source_sentences

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
# (selection mix, abstention mix), each as (semantic, lexical) weights. The sentence shown is
# the best by the first; whether to answer at all is decided on the best by the second.
MIXES = [
    ((1.0, 0.0), (1.0, 0.0)),
    ((0.8, 0.2), (0.8, 0.2)),
    ((0.6, 0.4), (0.6, 0.4)),
    ((0.5, 0.5), (0.5, 0.5)),
    ((0.4, 0.6), (0.4, 0.6)),
    ((0.6, 0.4), (0.8, 0.2)),
    ((0.6, 0.4), (1.0, 0.0)),
    ((0.5, 0.5), (0.8, 0.2)),
]


def features(rag: RAG, q: Question) -> dict[str, object]:
    passages = rag.search(q.question, k=rag.config.answer_passages)
    sentences = _unique(source_sentences(passages))
    if not sentences:
        return {"semantic": [], "lexical": [], "texts": []}
    query = rag.encoder.encode_queries([q.question])[0]
    semantic = (rag.encoder.encode_documents([s.text for s in sentences]) @ query).tolist()
    lexical = [coverage(q.question, s.text) for s in sentences]
    return {"semantic": semantic, "lexical": lexical, "texts": [s.text for s in sentences]}


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    both = np.concatenate([positive, negative])
    ranks = both.argsort().argsort() + 1
    return float(
        (ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=400)
    parser.add_argument("--index-root", type=Path, default=Path("bench-out/indexes"))
    parser.add_argument("--out", type=Path, default=Path("bench-out/answer_quality.json"))
    args = parser.parse_args()
    sets = {p.stem: load_squad(p) for p in sorted(DATASETS.glob("*.json"))}
    cache = args.out.with_suffix(f".features-{args.questions}.json")
    rows = json.loads(cache.read_text()) if cache.exists() else []  # (set, answerable, golds, features)
    for name, qset in sets.items() if not rows else []:
        with RAG.open(args.index_root / name) as rag:
            rag.index_documents(qset.documents, progress=False)
            own = [q for q in qset.questions if q.spans]
            random.Random(0).shuffle(own)
            for q in own[: args.questions]:
                rows.append((name, True, q.answers, features(rag, q)))
            for other, oset in sets.items():
                if other != name:
                    foreign = list(oset.questions)
                    random.Random(1).shuffle(foreign)
                    for q in foreign[: args.questions]:
                        rows.append((name, False, q.answers, features(rag, q)))
    if not cache.exists():
        args.out.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(rows))
    print(
        "| select (sem/lex) | abstain (sem/lex) | AUC | threshold "
        "| answerable: contains gold | unanswerable: abstains |"
    )
    print("|---|---|---|---|---|---|")
    summary = {}
    for (ws, wl), (wa, wb) in MIXES:
        best_scores, best_texts = [], []
        for _, _, _, f in rows:
            select = ws * np.array(f["semantic"]) + wl * np.array(f["lexical"])
            abstain = wa * np.array(f["semantic"]) + wb * np.array(f["lexical"])
            best_scores.append(float(abstain.max()) if len(abstain) else -1.0)
            best_texts.append(f["texts"][int(select.argmax())] if len(select) else "")
        scores = np.array(best_scores)
        answerable = np.array([r[1] for r in rows])
        grid = np.unique(np.round(scores, 3))
        balanced = [((scores[answerable] >= t).mean() + (scores[~answerable] < t).mean()) / 2 for t in grid]
        threshold = float(grid[int(np.argmax(balanced))])
        contains = {}
        for name in sets:
            mask = [(r[0] == name and r[1]) for r in rows]
            hits = [contains_answer(t, r[2]) if s >= threshold else 0.0
                    for r, t, s, m in zip(rows, best_texts, scores, mask, strict=True) if m]  # fmt: skip
            abstain = [s < threshold for r, s in zip(rows, scores, strict=True) if r[0] == name and not r[1]]
            contains[name] = (float(np.mean(hits)), float(np.mean(abstain)))
        a = auc(scores[answerable], scores[~answerable])
        summary[f"{ws}/{wl} {wa}/{wb}"] = {"auc": a, "threshold": threshold, "per_set": contains}
        per = "; ".join(f"{n[:8]} {c:.3f}" for n, (c, _) in contains.items())
        abst = "; ".join(f"{n[:8]} {x:.3f}" for n, (_, x) in contains.items())
        print(f"| {ws} / {wl} | {wa} / {wb} | {a:.3f} | {threshold:.3f} | {per} | {abst} |", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
