"""Fit and measure how the extractive answer is picked and when it abstains, on SQuAD-format sets.

    python benchmarks/answer_quality.py [--questions 400] [--fit] [--verify]

Three kinds of question per development set (``../shared/datasets``):
- answerable: the set's own questions, asked of an index of the whole set;
- near misses: questions of held-out documents (a quarter of the set's documents, chosen at
  random), asked of an index *without* those documents: the topic is there, the answer is not;
- other-set: the other set's questions (the sets share no topic), asked of the whole-set index.

``--fit`` records, for every question, the features ``rag.answering.evidence`` computes (every
prose sentence embedded, so any selection weights can be replayed), then fits the selection
weights by grid search (contains-gold on answerable questions) and the gate's logistic model
(answerable against both kinds of negatives), and prints the constants to paste into
``rag/answering/evidence.py`` with the figures they give. ``--verify`` asks every question with
``RAG.ask`` as shipped and reports what a user gets: contains-gold, answer-phrase accuracy,
and the precision and recall of "not in the documents" for each kind of negative.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eval.metrics import contains_answer, normalise  # noqa: E402
from eval.squad import Question, load_squad  # noqa: E402
from rag import RAG  # noqa: E402

try:  # --verify also runs on older versions of rag (the baseline), which lack these
    from rag.answering import evidence as ev
    from rag.answering.answer_types import expected_type, new_candidates
    from rag.answering.citations import content_words, coverage, source_sentences
except ImportError:
    pass

DATASETS = REPO.parent / "shared" / "datasets"
HELD_OUT_SHARE = 0.25


def load_sets() -> dict[str, object]:
    return {p.stem: load_squad(p) for p in sorted(DATASETS.glob("*.json"))}


def plan(sets: dict[str, object], n: int) -> tuple[dict[str, set[str]], list[tuple[str, str, str, Question]]]:
    """Held-out documents per set, and (set, index, group, question) for every question asked."""
    held_out: dict[str, set[str]] = {}
    asks = []
    for name, qset in sets.items():
        ids = sorted(d.id for d in qset.documents)  # type: ignore[attr-defined]
        random.Random(2).shuffle(ids)
        held_out[name] = set(ids[: int(len(ids) * HELD_OUT_SHARE)])
        own = [q for q in qset.questions if q.spans]  # type: ignore[attr-defined]
        random.Random(0).shuffle(own)
        asks += [(name, "full", "answerable", q) for q in own[:n]]
        near = [q for q in own if q.doc_id in held_out[name]]
        asks += [(name, "held-in", "near-miss", q) for q in near[:n]]
        for other, oset in sets.items():
            if other != name:
                foreign = list(oset.questions)  # type: ignore[attr-defined]
                random.Random(1).shuffle(foreign)
                asks += [(name, "full", "other-set", q) for q in foreign[:n]]
    return held_out, asks


def open_index(root: Path, name: str, which: str, qset: object, held_out: set[str]) -> RAG:
    rag = RAG.open(root / f"{name}-{which}")
    documents = [d for d in qset.documents if which == "full" or d.id not in held_out]  # type: ignore[attr-defined]
    if rag.store.is_empty():
        rag.index_documents(documents, progress=False)
    return rag


def features(rag: RAG, question: str) -> dict[str, object]:
    """Everything evidence.assess looks at, for every prose sentence (all embedded)."""
    retrieval = rag.retrieve(question, k=rag.config.answer_passages)
    passages = retrieval.passages
    kind = expected_type(question)
    sentences = [s for s in ev.unique(source_sentences(passages)) if not s.is_structure]
    asked = content_words(question)
    in_passages = set().union(*(content_words(p.text) for p in passages)) if passages else set()
    semantic = []
    if sentences:
        query = rag.encoder.encode_queries([question])[0]
        semantic = (rag.encoder.encode_documents([s.text for s in sentences], batch_size=8) @ query).tolist()
    return {
        "kind": kind,
        "texts": [s.text for s in sentences],
        "keys": [[s.passage, s.number] for s in sentences],
        "semantic": semantic,
        "lexical": [coverage(question, s.text) for s in sentences],
        "typed": [float(bool(kind and new_candidates(question, s.text, kind))) for s in sentences],
        "passage_coverage": len(asked & in_passages) / len(asked) if asked else 0.0,
        "missing_rare": ev.missing_share(question, in_passages, rag.retriever.rare_words),
    }


def replay(f: dict, weights: tuple[float, float, float]) -> tuple[int | None, dict[str, float]]:
    """The best sentence and the gate features that evidence.assess would give."""
    ws, wl, wt = weights
    if not f["texts"]:
        return None, ev._features(0.0, 0.0, 0.0, 0.0)
    lexical, typed, semantic = (np.array(f[k]) for k in ("lexical", "typed", "semantic"))
    order = sorted(range(len(lexical)), key=lambda i: (-(lexical[i] + ev.TYPE_WEIGHT * typed[i]), i))
    kept = np.array(order[: ev.MAX_EMBEDDED])
    selection = np.full(len(lexical), -1.0)
    selection[kept] = ws * semantic[kept] + wl * lexical[kept] + wt * typed[kept]
    best = int(selection.argmax())
    feats = ev._features(float(semantic[kept].max()), float(lexical[best]), f["passage_coverage"], f["missing_rare"])
    return best, feats


def answer_text(f: dict, best: int, weights: tuple[float, float, float]) -> str:
    """The best sentence plus a neighbour scoring nearly as well (the extractive answerer's rule)."""
    ws, wl, wt = weights
    score = [ws * s + wl * lx + wt * t for s, lx, t in zip(f["semantic"], f["lexical"], f["typed"], strict=True)]
    chosen = [best]
    for other in (best - 1, best + 1):
        if 0 <= other < len(score) and f["keys"][other][0] == f["keys"][best][0] and \
                abs(f["keys"][other][1] - f["keys"][best][1]) == 1 and score[other] >= 0.9 * score[best]:  # fmt: skip
            chosen.append(other)
    return " ".join(f["texts"][i] for i in sorted(chosen))


def fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 4000, l2: float = 1e-3) -> tuple[np.ndarray, float]:
    mean, std = x.mean(0), x.std(0) + 1e-9
    z = (x - mean) / std
    w, b = np.zeros(x.shape[1]), 0.0
    # Balance the classes so neither kind of error is cheap.
    weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        grad = (p - y) * weight
        w -= 0.5 * (z.T @ grad / len(y) + l2 * w)
        b -= 0.5 * grad.mean()
    return w / std, float(b - (w / std) @ mean)


def fit(rows: list[dict]) -> None:
    names = sorted({r["set"] for r in rows})
    print("Selection weights (semantic, lexical, type): contains-gold on answerable questions")
    best_weights, best_value = (ev.SEMANTIC_WEIGHT, ev.LEXICAL_WEIGHT, ev.TYPE_WEIGHT), -1.0
    for ws in (0.4, 0.5, 0.6, 0.7):
        for wt in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3):
            weights = (ws, 1 - ws, wt)
            per = []
            for name in names:
                hits = []
                for r in rows:
                    if r["set"] == name and r["group"] == "answerable":
                        best, _ = replay(r["f"], weights)
                        hits.append(
                            contains_answer(answer_text(r["f"], best, weights), r["answers"]) if best is not None else 0
                        )
                per.append(float(np.mean(hits)))
            print(f"  {weights}: " + "; ".join(f"{n[:8]} {v:.3f}" for n, v in zip(names, per, strict=True)))
            if np.mean(per) > best_value:
                best_weights, best_value = weights, float(np.mean(per))
    print(f"chosen selection weights: {best_weights}")
    x = np.array([[replay(r["f"], best_weights)[1][k] for k in ev.FEATURES] for r in rows])
    y = np.array([1.0 if r["group"] == "answerable" else 0.0 for r in rows])
    w, b = fit_logistic(x, y)
    print(f"GATE_WEIGHTS = ({', '.join(f'{v:.2f}' for v in w)})\nGATE_BIAS = {b:.2f}")
    p = 1 / (1 + np.exp(-(x @ w + b)))
    print("| threshold | set | near-miss precision | near-miss recall | other-set recall | answerable answered |")
    print("|---|---|---|---|---|---|")
    for t in (0.3, 0.4, 0.5, 0.6, 0.7):
        for name in names:
            report_row(t, name, rows, p < t)


def report_row(t: float, name: str, rows: list[dict], abstained: np.ndarray) -> dict[str, float]:
    mask = {g: np.array([r["set"] == name and r["group"] == g for r in rows]) for g in
            ("answerable", "near-miss", "other-set")}  # fmt: skip
    false_abstain = abstained[mask["answerable"]].sum()
    out = {}
    for group in ("near-miss", "other-set"):
        true_abstain = abstained[mask[group]].sum()
        out[f"{group} precision"] = true_abstain / max(1, true_abstain + false_abstain)
        out[f"{group} recall"] = abstained[mask[group]].mean()
    out["answered"] = 1 - abstained[mask["answerable"]].mean()
    print(f"| {t} | {name[:8]} | {out['near-miss precision']:.3f} | {out['near-miss recall']:.3f} | "
          f"{out['other-set recall']:.3f} | {out['answered']:.3f} |")  # fmt: skip
    return out


def phrase_ok(phrase: str, golds: tuple[str, ...]) -> bool:
    """The marked phrase is a gold answer or contains one (SQuAD normalisation)."""
    text = f" {normalise(phrase)} "
    return any(normalise(g) and f" {normalise(g)} " in text for g in golds)


def verify(rows: list[dict], indexes: dict[tuple[str, str], RAG]) -> None:
    names = sorted({r["set"] for r in rows})
    results = []
    for r in rows:
        rag = indexes[(r["set"], r["index"])]
        started = time.perf_counter()
        answer = rag.ask(r["question"])
        ms = (time.perf_counter() - started) * 1000
        text = " ".join(s.text for s in answer.sentences)
        results.append({
            "answerable": answer.answerable,
            "contains": contains_answer(text, r["answers"]) if answer.answerable else 0.0,
            "phrase": answer.answer_span.text if getattr(answer, "answer_span", None) else None,
            "ms": ms,
        })  # fmt: skip
    abstained = np.array([not x["answerable"] for x in results])
    print(
        "| set | contains gold | answered | phrase marked | phrase is gold | near-miss P | near-miss R | other-set R |"
    )
    print("|---|---|---|---|---|---|---|---|")
    summary = {}
    for name in names:
        own = [(r, x) for r, x in zip(rows, results, strict=True) if r["set"] == name and r["group"] == "answerable"]
        answered = [(r, x) for r, x in own if x["answerable"]]
        marked = [(r, x) for r, x in answered if x["phrase"]]
        quiet = {
            g: np.array([r["set"] == name and r["group"] == g for r in rows])
            for g in ("answerable", "near-miss", "other-set")
        }
        false_abstain = abstained[quiet["answerable"]].sum()
        near_true = abstained[quiet["near-miss"]].sum()
        other_true = abstained[quiet["other-set"]].sum()
        s = {
            "contains_gold": float(np.mean([x["contains"] for _, x in own])),
            "answered": len(answered) / len(own),
            "phrase_marked": len(marked) / max(1, len(answered)),
            "phrase_is_gold": float(np.mean([phrase_ok(x["phrase"], r["answers"]) for r, x in marked]))
            if marked
            else 0.0,
            "near_miss_precision": float(near_true / max(1, near_true + false_abstain)),
            "near_miss_recall": float(abstained[quiet["near-miss"]].mean()),
            "other_set_precision": float(other_true / max(1, other_true + false_abstain)),
            "other_set_recall": float(abstained[quiet["other-set"]].mean()),
            "ask_p50_ms": float(np.median([x["ms"] for x in results])),
        }
        summary[name] = s
        print(f"| {name} | {s['contains_gold']:.3f} | {s['answered']:.3f} | {s['phrase_marked']:.3f} | "
              f"{s['phrase_is_gold']:.3f} | {s['near_miss_precision']:.3f} | {s['near_miss_recall']:.3f} | "
              f"{s['other_set_recall']:.3f} |")  # fmt: skip
    Path("bench-out").mkdir(exist_ok=True)
    Path("bench-out/answer_quality.json").write_text(json.dumps(summary, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=400)
    parser.add_argument("--index-root", type=Path, default=Path("bench-out/indexes"))
    parser.add_argument("--fit", action="store_true", help="record features and fit weights and gate")
    parser.add_argument("--verify", action="store_true", help="ask every question as shipped and report")
    args = parser.parse_args()
    sets = load_sets()
    held_out, asks = plan(sets, args.questions)
    indexes = {}
    for name, qset in sets.items():
        for which in ("full", "held-in"):
            indexes[(name, which)] = open_index(args.index_root, name, which, qset, held_out[name])
    rows = [{"set": s, "index": i, "group": g, "question": q.question, "answers": list(q.answers)}
            for s, i, g, q in asks]  # fmt: skip
    if args.fit:
        cache = Path(f"bench-out/answer_features-{args.questions}.json")
        if cache.exists():
            rows = json.loads(cache.read_text())
        else:
            for r in rows:
                r["f"] = features(indexes[(r["set"], r["index"])], r["question"])
            cache.write_text(json.dumps(rows))
        fit(rows)
    if args.verify:
        verify(rows, indexes)


if __name__ == "__main__":
    main()
