"""Fit and measure how the answer is picked and when it abstains, on SQuAD-format sets.

    python benchmarks/answer_quality.py [--questions 300] [--fit] [--verify] [--depth]

Only the held-out quarter of each development set (``eval.squad.held_out_ids``: the documents
the reader never saw in training) is asked, split in two halves by document: **tune** (the
constants are chosen there) and **test** (the figures reported). Three kinds of question:
- answerable: questions of held-out documents, asked of an index of the whole set;
- near misses: the same questions, asked of an index *without* the held-out documents: the
  topic is there, the answer is not;
- other-set: another set's questions (the sets share no topic), asked of the whole-set index.

``--fit`` records, on the tune half, what the answer path sees for every question (every prose
sentence embedded and read by the reader), and chooses: how many sentences to read, the
passage rerank weight, the several-sentence and answer-phrase thresholds, and the gates'
logistic models (the built-in one and the reader's); it prints the constants to paste into
``rag/answering``. ``--verify`` asks every test-half question with ``RAG.ask`` as shipped,
once with ``reader = none`` (the scoring before the reader) and once with the shipped reader,
and reports what a user gets: contains-gold, passage hit@1, answer-phrase accuracy, and the
precision and recall of "not in the documents" for each kind of negative.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eval.metrics import contains_answer, normalise  # noqa: E402
from eval.squad import Question, held_out_ids  # noqa: E402
from eval.train_reader import headline, load_set  # noqa: E402
from rag import RAG  # noqa: E402

try:  # --verify also runs on older versions of rag (the baseline), which lack these
    from rag.answering import evidence as ev
    from rag.answering import extractive, reading
    from rag.answering.answer_types import asks_for_several, expected_type, new_candidates
    from rag.answering.citations import content_words, coverage, source_sentences
except ImportError:
    pass

DATASETS = REPO.parent / "shared" / "datasets"
PARTS = ("tune", "test")


def load_sets() -> dict[str, object]:
    """The sets, each document titled with its first line (a paper's title, a post's first
    sentence), as a user's file is titled: the reader reads a passage's title with its sentences
    (the sets' own titles are "Amazon_Reviews_2030" or "squadshifts-reddit 17")."""
    sets = {p.stem: load_set(p) for p in sorted(DATASETS.glob("*.json"))}
    return {
        name: dataclasses.replace(
            qset, documents=tuple(dataclasses.replace(d, title=headline(d.text) or d.title) for d in qset.documents)
        )
        for name, qset in sets.items()
    }


def plan(sets: dict[str, object], n: int) -> tuple[dict[str, set[str]], list[dict]]:
    """Held-out documents per set, and the questions asked: n per set, group and part."""
    held_out: dict[str, set[str]] = {}
    rows: list[dict] = []
    for name, qset in sets.items():
        held = sorted(held_out_ids(qset))  # type: ignore[arg-type]
        held_out[name] = set(held)
        random.Random(3).shuffle(held)
        part_of = {doc: PARTS[i % 2] for i, doc in enumerate(held)}
        own = [q for q in qset.questions if q.spans and q.doc_id in held_out[name]]  # type: ignore[attr-defined]
        random.Random(0).shuffle(own)
        for part in PARTS:
            mine = [q for q in own if part_of[q.doc_id] == part][:n]
            rows += [_row(name, "full", "answerable", part, q) for q in mine]
            rows += [_row(name, "held-in", "near-miss", part, q) for q in mine]
        for other, oset in sets.items():
            if other != name:
                foreign = list(oset.questions)  # type: ignore[attr-defined]
                random.Random(1).shuffle(foreign)
                rows += [_row(name, "full", "other-set", "tune", q) for q in foreign[:n]]
                rows += [_row(name, "full", "other-set", "test", q) for q in foreign[n : 2 * n]]
    return held_out, rows


def _row(name: str, index: str, group: str, part: str, q: Question) -> dict:
    return {"set": name, "index": index, "group": group, "part": part, "question": q.question,
            "answers": list(q.answers), "spans": [[s.doc_id, s.start, s.end] for s in q.spans]}  # fmt: skip


def open_index(root: Path, name: str, which: str, qset: object, held_out: set[str]) -> RAG:
    rag = RAG.open(root / f"{name}-{which}")
    documents = [d for d in qset.documents if which == "full" or d.id not in held_out]  # type: ignore[attr-defined]
    if rag.store.is_empty():
        rag.index_documents(documents, progress=False)
    return rag


def features(rag: RAG, question: str, reader: object | None) -> dict[str, object]:
    """Everything the answer path looks at, for every prose sentence (all embedded, and the
    first READ_ALL candidates read by the reader), so any constants can be replayed."""
    retrieval = rag.retrieve(question, k=rag.config.answer_passages)
    passages = retrieval.passages
    kind = expected_type(question)
    all_sentences = ev.unique(source_sentences(passages))
    sentences = [s for s in all_sentences if not s.is_structure]
    asked = content_words(question)
    in_passages = set().union(*(content_words(p.text) for p in passages)) if passages else set()
    semantic = []
    if sentences:
        query = rag.encoder.encode_queries([question])[0]
        semantic = (rag.encoder.encode_documents([s.text for s in sentences], batch_size=8) @ query).tolist()
    f: dict[str, object] = {
        "kind": kind,
        "texts": [s.text for s in sentences],
        "keys": [[s.passage, s.number] for s in sentences],
        "places": [[s.doc_id, s.start, s.end] for s in sentences],
        "passages": [[p.doc_id, p.start, p.end] for p in passages],
        "semantic": semantic,
        "lexical": [coverage(question, s.text) for s in sentences],
        "typed": [float(bool(kind and new_candidates(question, s.text, kind))) for s in sentences],
        "passage_coverage": len(asked & in_passages) / len(asked) if asked else 0.0,
        "missing_rare": ev.missing_share(question, in_passages, rag.retriever.rare_words),
    }
    if reader is not None:
        order = reading.candidates(question, sentences, kind, READ_ALL)
        headlines = [p.title for p in passages]
        texts = [sentences[i].text for i in order]
        contexts = [reading.headline_of(sentences[i], headlines) for i in order]
        scored = reader.score(question, texts, contexts)  # type: ignore[attr-defined]
        f["read_order"] = order
        f["relevance"] = {i: s.relevance for i, s in zip(order, scored, strict=True)}
        f["spans"] = {i: [s.span, s.span_confidence] for i, s in zip(order, scored, strict=True)}
    return f


READ_ALL = 48


def _read(f: dict, limit: int) -> dict[int, float]:
    return {i: f["relevance"][i] for i in f["read_order"][:limit]}


def _selection(f: dict, read: dict[int, float], prior_weight: float, lexical_weight: float) -> dict[int, float]:
    """rag.answering.reading.read's selection score for the sentences read."""
    count = max(1, len(f["passages"]))
    return {
        i: r + prior_weight * reading.retrieval_prior(f["keys"][i][0], count) + lexical_weight * f["lexical"][i]
        for i, r in read.items()
    }


def _gold_in(place: list, spans: list) -> bool:
    doc, start, end = place
    return any(d == doc and start <= s < end for d, s, _ in spans)


def _rerank_first(f: dict, read: dict[int, float], weight: float) -> int:
    """The passage (0-based, in retrieval order) that reranking puts first."""
    count = len(f["passages"])
    best = [0.0] * count
    for i, r in read.items():
        p = f["keys"][i][0] - 1
        best[p] = max(best[p], r)
    fused = [weight * best[i] + (1 - weight) * reading.retrieval_prior(i + 1, count) for i in range(count)]
    return int(np.argmax(fused)) if count else -1


def _reader_answer(
    f: dict, question: str, read: dict[int, float], several_min: float, weights: tuple[float, float] | None = None
) -> tuple[int, list[int]]:
    sel = _selection(f, read, *(weights or (reading.PRIOR_WEIGHT, reading.LEXICAL_WEIGHT)))
    best = max(sel, key=lambda i: (sel[i], -i))
    chosen = [best]
    if asks_for_several(question):
        same = [i for i in read if i != best and read[i] >= several_min and f["places"][i][0] == f["places"][best][0]]
        others = sorted(same, key=lambda i: -sel[i])
        chosen += others[: extractive.MAX_SENTENCES - 1]
    for other in (best - 1, best + 1):
        if len(chosen) < extractive.MAX_SENTENCES and other in read and other not in chosen and \
                f["keys"][other][0] == f["keys"][best][0] and abs(f["keys"][other][1] - f["keys"][best][1]) == 1 \
                and sel[other] >= extractive.NEIGHBOUR_SHARE * sel[best]:  # fmt: skip
            chosen.append(other)
    return best, chosen


def fit_reader(rows: list[dict]) -> None:
    """Choose the reader's constants on the tune half; print them with what they give."""
    tune = [r for r in rows if r["part"] == "tune" and r["f"]["texts"]]
    answerable = [r for r in tune if r["group"] == "answerable"]
    names = sorted({r["set"] for r in rows})
    print("Sentences read: share of answerable questions whose gold sentence is among the first N candidates")
    for limit in (8, 16, 24, 32, 48, 64):
        shares = []
        for name in names:
            own = [r for r in answerable if r["set"] == name]
            hit = [any(_gold_in(r["f"]["places"][i], r["spans"]) for i in r["f"]["read_order"][:limit]) for r in own]
            shares.append(f"{name[:12]} {np.mean(hit):.3f}")
        print(f"  N={limit}: " + "; ".join(shares))
    limit = reading.MAX_READ
    print(f"Passage hit@1 by rerank weight (reading {limit} sentences)")
    for weight in (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        shares = []
        for name in names:
            own = [r for r in answerable if r["set"] == name]
            first = [_rerank_first(r["f"], _read(r["f"], limit), weight) for r in own]
            hit = [p >= 0 and _gold_in(r["f"]["passages"][p], r["spans"]) for r, p in zip(own, first, strict=True)]
            shares.append(f"{name[:12]} {np.mean(hit):.3f}")
        print(f"  weight {weight}: " + "; ".join(shares))
    print("Contains-gold of the best sentence alone by selection weights (prior, lexical)")
    for prior_weight in (0.0, 0.1, 0.2, 0.3, 0.5):
        for lexical_weight in (0.0, 0.1, 0.2, 0.3):
            shares = []
            for name in names:
                own = [r for r in answerable if r["set"] == name]
                hits = []
                for r in own:
                    sel = _selection(r["f"], _read(r["f"], limit), prior_weight, lexical_weight)
                    best = max(sel, key=lambda i: (sel[i], -i))
                    hits.append(contains_answer(r["f"]["texts"][best], r["answers"]))
                shares.append(f"{name[:12]} {np.mean(hits):.3f}")
            print(f"  ({prior_weight}, {lexical_weight}): " + "; ".join(shares))
    print("Contains-gold by the several-sentence threshold (why, list and two-part questions)")
    for several in (0.3, 0.5, 0.7, 0.9, 1.1):
        shares = []
        for name in names:
            own = [r for r in answerable if r["set"] == name]
            hits = []
            for r in own:
                _, chosen = _reader_answer(r["f"], r["question"], _read(r["f"], limit), several)
                hits.append(contains_answer(" ".join(r["f"]["texts"][i] for i in sorted(chosen)), r["answers"]))
            shares.append(f"{name[:12]} {np.mean(hits):.3f}")
        print(f"  {several}: " + "; ".join(shares))
    print("Answer phrase by confidence threshold: marked share, and marked phrases that are or hold the gold answer")
    for threshold in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5):
        shares = []
        for name in names:
            own = [r for r in answerable if r["set"] == name]
            marked = good = 0
            for r in own:
                best, _ = _reader_answer(r["f"], r["question"], _read(r["f"], limit), extractive.SEVERAL_MIN)
                span, confidence = r["f"]["spans"][best]
                if span is not None and confidence >= threshold:
                    marked += 1
                    good += phrase_ok(r["f"]["texts"][best][span[0] : span[1]], tuple(r["answers"]))
            shares.append(f"{name[:12]} {marked / max(1, len(own)):.2f}/{good / max(1, marked):.2f}")
        print(f"  {threshold}: " + "; ".join(shares))
    fit_gate(np.array([_reader_gate_features(r["f"], limit) for r in tune]), tune, "READER_GATE")


def _reader_gate_features(f: dict, limit: int) -> list[float]:
    read = _read(f, limit)
    sel = _selection(f, read, reading.PRIOR_WEIGHT, reading.LEXICAL_WEIGHT)
    best = max(sel, key=lambda i: (sel[i], -i))
    feats = ev.reader_features(
        read[best], f["lexical"][best], f["passage_coverage"], f["missing_rare"], f["semantic"][best]
    )
    return [feats[k] for k in ev.READER_FEATURES]


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
    fit_gate(np.array([[replay(r["f"], best_weights)[1][k] for k in ev.FEATURES] for r in rows]), rows, "GATE")


def fit_gate(x: np.ndarray, rows: list[dict], prefix: str) -> None:
    """Fit a gate's logistic model (answerable against both kinds of negative) on features ``x``
    of ``rows``; print its constants and what it does at several thresholds."""
    y = np.array([1.0 if r["group"] == "answerable" else 0.0 for r in rows])
    w, b = fit_logistic(x, y)
    print(f"{prefix}_WEIGHTS = ({', '.join(f'{v:.2f}' for v in w)})\n{prefix}_BIAS = {b:.2f}")
    p = 1 / (1 + np.exp(-(x @ w + b)))
    print("| threshold | set | near-miss precision | near-miss recall | other-set recall | answerable answered |")
    print("|---|---|---|---|---|---|")
    for t in (0.3, 0.4, 0.5, 0.6, 0.7):
        for name in sorted({r["set"] for r in rows}):
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


def depth(rows: list[dict], indexes: dict[tuple[str, str], RAG], ks: tuple[int, ...] = (1, 3, 5, 8, 10, 20)) -> None:
    """Retrieval's ceiling for the reader: the share of answerable questions whose gold passage
    is among the first k retrieved (the answer path reads the first ``answer_passages``)."""
    print("| set | half | questions | " + " | ".join(f"top {k}" for k in ks) + " |")
    print("|---|---|---|" + "---|" * len(ks))
    for name in sorted({r["set"] for r in rows}):
        for part in ("tune", "test"):
            own = [r for r in rows if r["set"] == name and r["part"] == part and r["group"] == "answerable"]
            ranks = []
            for r in own:
                found = indexes[(name, "full")].retrieve(r["question"], k=max(ks)).passages
                places = ([p.doc_id, p.start, p.end] for p in found)
                ranks.append(next((n for n, place in enumerate(places, 1) if _gold_in(place, r["spans"])), 0))
            shares = [np.mean([0 < rank <= k for rank in ranks]) for k in ks]
            print(f"| {name} | {part} | {len(own)} | " + " | ".join(f"{v:.3f}" for v in shares) + " |")


def verify(rows: list[dict], indexes: dict[tuple[str, str], RAG], modes: list[str]) -> None:
    """Ask every test-half question as shipped, once per reader setting in ``modes``."""
    rows = [r for r in rows if r["part"] == "test"]
    names = sorted({r["set"] for r in rows})
    summary: dict[str, dict] = {}
    print("| reader | set | contains gold | passage hit@1 | answered | phrase marked | phrase is gold | "
          "near-miss P | near-miss R | other-set R | ask p50 ms |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for mode in modes:
        results = []
        for r in rows:
            rag = indexes[(r["set"], r["index"])]
            rag.config = rag.config.replace(reader=mode)
            started = time.perf_counter()
            answer = rag.ask(r["question"])
            ms = (time.perf_counter() - started) * 1000
            text = " ".join(s.text for s in answer.sentences)
            first = answer.passages[0] if answer.passages else None
            results.append({
                "answerable": answer.answerable,
                "contains": contains_answer(text, r["answers"]) if answer.answerable else 0.0,
                "hit1": bool(first and _gold_in([first.doc_id, first.start, first.end], r["spans"])),
                "phrase": answer.answer_span.text if getattr(answer, "answer_span", None) else None,
                "ms": ms,
            })  # fmt: skip
        abstained = np.array([not x["answerable"] for x in results])
        for name in names:
            summary[f"{mode}/{name}"] = s = _summarise(name, rows, results, abstained)
            print(f"| {mode} | {name} | {s['contains_gold']:.3f} | {s['passage_hit_at_1']:.3f} | {s['answered']:.3f} | "
                  f"{s['phrase_marked']:.3f} | {s['phrase_is_gold']:.3f} | {s['near_miss_precision']:.3f} | "
                  f"{s['near_miss_recall']:.3f} | {s['other_set_recall']:.3f} | {s['ask_p50_ms']:.0f} |")  # fmt: skip
    Path("bench-out").mkdir(exist_ok=True)
    Path("bench-out/answer_quality.json").write_text(json.dumps(summary, indent=2) + "\n")


def _summarise(name: str, rows: list[dict], results: list[dict], abstained: np.ndarray) -> dict[str, float]:
    own = [(r, x) for r, x in zip(rows, results, strict=True) if r["set"] == name and r["group"] == "answerable"]
    answered = [(r, x) for r, x in own if x["answerable"]]
    marked = [(r, x) for r, x in answered if x["phrase"]]
    group = {g: np.array([r["set"] == name and r["group"] == g for r in rows]) for g in
             ("answerable", "near-miss", "other-set")}  # fmt: skip
    false_abstain = abstained[group["answerable"]].sum()
    near_true = abstained[group["near-miss"]].sum()
    other_true = abstained[group["other-set"]].sum()
    mine = [x for r, x in zip(rows, results, strict=True) if r["set"] == name]
    return {
        "questions": len(own),
        "contains_gold": float(np.mean([x["contains"] for _, x in own])),
        "passage_hit_at_1": float(np.mean([x["hit1"] for _, x in own])),
        "answered": len(answered) / len(own),
        "phrase_marked": len(marked) / max(1, len(answered)),
        "phrase_is_gold": float(np.mean([phrase_ok(x["phrase"], tuple(r["answers"])) for r, x in marked]))
        if marked
        else 0.0,
        "near_miss_precision": float(near_true / max(1, near_true + false_abstain)),
        "near_miss_recall": float(abstained[group["near-miss"]].mean()),
        "other_set_precision": float(other_true / max(1, other_true + false_abstain)),
        "other_set_recall": float(abstained[group["other-set"]].mean()),
        "ask_p50_ms": float(np.median([x["ms"] for x in mine])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=300, help="per set, group and half (default 300)")
    parser.add_argument("--index-root", type=Path, default=Path("bench-out/indexes-titled"))
    parser.add_argument("--fit-reader", default="shipped", help="the reader whose scores --fit records")
    parser.add_argument("--fit", action="store_true", help="record features on the tune half and fit the constants")
    parser.add_argument("--fit-builtin", action="store_true", help="also refit the built-in scoring and its gate")
    parser.add_argument("--verify", action="store_true", help="ask every test-half question as shipped and report")
    parser.add_argument("--depth", action="store_true", help="where retrieval ranks the gold passage (its ceiling)")
    parser.add_argument("--readers", default="none,shipped", help="reader settings to compare (default none,shipped)")
    args = parser.parse_args()
    sets = load_sets()
    held_out, rows = plan(sets, args.questions)
    indexes = {}
    for name, qset in sets.items():
        for which in ("full", "held-in"):
            indexes[(name, which)] = open_index(args.index_root, name, which, qset, held_out[name])
    if args.fit:
        from embeddings.reader import SHIPPED, checksums
        from rag.answering.reading import load_reader

        folder = SHIPPED if args.fit_reader == "shipped" else Path(args.fit_reader)
        version = checksums(folder).get("reader-int8.onnx", "")[:12]
        cache = Path(f"bench-out/answer_features-tune-{args.questions}-{version}.json")
        tune = [r for r in rows if r["part"] == "tune"]
        if cache.exists():
            tune = json.loads(cache.read_text())
        else:
            reader = load_reader(args.fit_reader)
            for r in tune:
                r["f"] = features(indexes[(r["set"], r["index"])], r["question"], reader)
            cache.write_text(json.dumps(tune))
        for r in tune:  # JSON keys are strings
            r["f"]["relevance"] = {int(k): v for k, v in r["f"].get("relevance", {}).items()}
            r["f"]["spans"] = {int(k): v for k, v in r["f"].get("spans", {}).items()}
        if args.fit_builtin:
            fit(tune)
        fit_reader(tune)
    if args.depth:
        depth(rows, indexes)
    if args.verify:
        verify(rows, indexes, args.readers.split(","))


if __name__ == "__main__":
    main()
