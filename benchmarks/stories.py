"""Stories over time: dates, story links, syndicated originals and answers that know time.

    python benchmarks/stories.py [--readers shipped,none] [--runs 10] [--show]

``benchmarks/stories/`` holds 15 news stories written for this test, each reported in 2 to 4
dated versions (updates that change figures), with a syndicated copy (another outlet running
the same article, crediting the original in its dateline, the same day or a few days later) and
a same-day report by another outlet that gives a different figure; 3 same-topic distractors
(another city's tunnel, another county's measles outbreak, another state's wildfire) stand
alone. ``stories.json`` says which files report which story, the date each prints and which copy
is the original; ``questions.jsonl`` holds 75 questions. The thresholds of story linking and of
answers over time were set looking at the first 12 stories (60 questions); the last 3 stories
(15 questions, "held_out") were written after that and are reported apart:
- latest: the newest figure must lead the answer, and each earlier figure ("earlier") be shown,
  dated;
- period: "in March", "on Jan. 14", "originally", "before the update": that report's figure leads;
- conflict: the outlets that disagree on the newest day are all shown, each cited.

Measured: every document's date against the printed one; story links (pairs and whole stories)
for the linking rule and for simpler ones (lead cosine alone, names alone); which copy of each
syndicated article is shown as the original, over ``--runs`` indexings in shuffled file order;
and the questions' outcomes per reader setting.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tempfile
from collections import Counter
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eval.metrics import contains_answer  # noqa: E402
from rag import RAG  # noqa: E402
from rag.types import Answer, content_hash  # noqa: E402

HERE = REPO / "benchmarks" / "stories"
ARTICLES = HERE / "articles"


def load() -> tuple[dict, list[dict]]:
    expected = json.loads((HERE / "stories.json").read_text())
    questions = [json.loads(line) for line in (HERE / "questions.jsonl").read_text().splitlines() if line.strip()]
    return expected, questions


def file_names(rag: RAG) -> dict[str, str]:
    return {doc_id: Path(path).name for doc_id, path in rag.store.document_paths()}


def check_dates(rag: RAG, expected: dict) -> list[str]:
    printed = {f: d for s in expected["stories"].values() for f, d in s["files"].items()} | expected["alone"]
    wrong = []
    for doc_id, name in file_names(rag).items():
        doc = rag.store.get_document(doc_id)
        assert doc is not None
        if doc.date != printed[name]:
            wrong.append(f"{name}: {doc.date} ({doc.meta.get('date_source')}), printed {printed[name]}")
    return wrong


def check_links(rag: RAG, expected: dict) -> dict[str, dict[str, float]]:
    """Pair precision/recall and whole stories recovered, for the rule and simpler ones."""
    from rag.ingest import duplicates, stories

    story_of = {f: name for name, s in expected["stories"].items() for f in s["files"]}
    names = file_names(rag)
    ids = sorted(names)
    db = rag.store.db
    facts = duplicates.facts_of(db, ids)
    signed = duplicates.signatures(db, ids)
    firsts = {d: content_hash(rag.store.chunks_for(d)[0].text) for d in ids}
    cached = rag.store.cached_vectors(rag.settings.vectors_key, firsts.values())
    leads = {d: cached[h] for d, h in firsts.items()}
    said = {d: stories.names(f"{facts[d].title}\n{facts[d].text[: stories.LEAD_CHARS]}") for d in ids}
    rules = {
        "the rule (names and lead)": lambda n, lead, gap, sim: stories.linked(n, lead, gap, sim),
        "lead cosine >= 0.7 alone": lambda n, lead, gap, sim: lead >= 0.7,
        "names share >= 0.4 alone": lambda n, lead, gap, sim: n >= 0.4,
        "signature similarity >= 0.3 alone": lambda n, lead, gap, sim: sim >= 0.3,
    }
    out = {}
    for label, rule in rules.items():
        tp = fp = fn = 0
        links: dict[str, set[str]] = {d: set() for d in ids}
        for a, b in itertools.combinations(ids, 2):
            same = story_of.get(names[a]) is not None and story_of.get(names[a]) == story_of.get(names[b])
            lead = float(leads[a] @ leads[b])
            dated = facts[a].date and facts[b].date
            gap = (date.fromisoformat(facts[a].date) - date.fromisoformat(facts[b].date)).days if dated else None
            hit = rule(stories.overlap(said[a], said[b]), lead, gap, duplicates.similarity(signed[a], signed[b]))
            tp += hit and same
            fp += hit and not same
            fn += same and not hit
            if hit:
                links[a].add(b)
                links[b].add(a)
        exact = 0
        for story in expected["stories"].values():
            members = {d for d in ids if names[d] in story["files"]}
            reached = _component(links, next(iter(members)))
            exact += reached == members
        out[label] = {
            "precision": tp / (tp + fp) if tp + fp else 1.0,
            "recall": tp / (tp + fn) if tp + fn else 1.0,
            "stories_exact": exact / len(expected["stories"]),
        }
    stored = {d: set(n) for d, n in rag.store.story_neighbours(ids).items()}
    exact = sum(
        _component(stored, next(iter(m))) == m
        for m in ({d for d in ids if names[d] in s["files"]} for s in expected["stories"].values())
    )
    out["stored links (rag index)"] = {"stories_exact": exact / len(expected["stories"])}
    return out


def _component(links: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for other in links[todo.pop()]:
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def originals(rag: RAG, expected: dict) -> dict[str, str]:
    """For each syndicated article, the file a search shows (the others are listed under it)."""
    names = file_names(rag)
    chosen = {}
    for story in expected["stories"].values():
        for group in story["syndicated"]:
            ids = [d for d, n in names.items() if n in group]
            first = rag.store.get_document(ids[0])
            assert first is not None
            title = first.title
            shown = [p.doc_id for p in rag.search(title, k=10) if p.doc_id in ids]
            chosen[group[0]] = names[shown[0]] if shown else "(none shown)"
    return chosen


def shuffled_originals(expected: dict, runs: int) -> list[dict[str, str]]:
    files = sorted(ARTICLES.iterdir())
    results = []
    for run in range(runs):
        order = files[:]
        random.Random(run).shuffle(order)
        with tempfile.TemporaryDirectory() as folder, RAG.open(Path(folder) / "index") as rag:
            for path in order:
                rag.index([path], progress=False)
            results.append(originals(rag, expected))
    return results


def judge(question: dict, answer: Answer) -> str:
    if not answer.answerable:
        return "declined"
    # An answer over time leads with its "lead" sentence; any other answer is judged whole.
    lead = next((s.text for s in answer.sentences if getattr(s, "role", "") == "lead"), answer.text)
    if question["kind"] == "conflict":
        cited = [
            next((s.citations[0] for s in answer.sentences if contains_answer(s.text, [value])), None)
            for value in question["both"]
        ]
        return "right" if None not in cited and len(set(cited)) == len(cited) else "wrong"
    if not contains_answer(lead, [question["answer"]]):
        return "wrong"
    for earlier in question.get("earlier", []):
        dated = [s for s in answer.sentences if getattr(s, "role", "") in ("earlier", "later") and s.dated]
        if not any(contains_answer(s.text, [earlier]) for s in dated):
            return "right, earlier not shown"
    return "right"


def cost(rag: RAG, questions: list[dict], rounds: int = 3) -> dict[str, float]:
    """Median ``ask`` time with answers over time, and with the story lookup turned off (every
    document alone), alternating which runs first, in the same process."""
    import statistics
    import time

    timings: dict[str, list[float]] = {"over time": [], "each document alone": []}
    versions = rag.versions
    for round_ in range(rounds):
        for label in sorted(timings, reverse=bool(round_ % 2)):
            rag.versions = versions if label == "over time" else (lambda doc_id: [])  # type: ignore[method-assign]
            for q in questions:
                started = time.perf_counter()
                rag.ask(q["question"])
                timings[label].append((time.perf_counter() - started) * 1000)
    rag.versions = versions  # type: ignore[method-assign]
    return {f"ask p50 ms, {label}": round(statistics.median(ms), 1) for label, ms in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", default="shipped,none", help="reader settings to compare (default shipped,none)")
    parser.add_argument("--runs", type=int, default=10, help="indexings in shuffled order for the originals")
    parser.add_argument("--show", action="store_true", help="print every answer that is not right")
    parser.add_argument(
        "--before", action="store_true", help="skip what an older release lacks (story links), to measure it"
    )
    args = parser.parse_args()
    expected, questions = load()
    report: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        rag = RAG.open(Path(folder) / "index")
        rag.index([ARTICLES], progress=False)
        report["documents"] = rag.store.counts()["documents"]
        report["dates_wrong"] = check_dates(rag, expected)
        if not args.before:
            report["links"] = check_links(rag, expected)
        want = {group[0]: group[0] for s in expected["stories"].values() for group in s["syndicated"]}
        got = originals(rag, expected)
        report["originals_right"] = sum(got[k] == v for k, v in want.items())
        report["originals_wrong"] = {k: v for k, v in got.items() if want[k] != v}
        for mode in args.readers.split(","):
            rag.config = rag.config.replace(reader=mode)
            by_kind: dict[str, Counter[str]] = {}
            for q in questions:
                answer = rag.ask(q["question"])
                outcome = judge(q, answer)
                by_kind.setdefault(("held-out " if q.get("held_out") else "") + q["kind"], Counter())[outcome] += 1
                if args.show and outcome != "right":
                    print(f"--- [{mode}] {q['id']} ({q['kind']}, {outcome}): {q['question']}\n{answer.text}\n")
            report[f"questions (reader={mode})"] = {
                kind: {**dict(c), "right_share": round(c["right"] / sum(c.values()), 3)} for kind, c in by_kind.items()
            }
        if not args.before:
            rag.config = rag.config.replace(reader="shipped")
            report["cost"] = cost(rag, questions)
        rag.close()
    runs = shuffled_originals(expected, args.runs)
    report["shuffled_runs"] = args.runs
    report["shuffled_runs_identical"] = all(r == runs[0] for r in runs)
    report["shuffled_runs_right"] = sum(all(r[k] == v for k, v in want.items()) for r in runs)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
