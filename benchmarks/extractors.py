"""Score HTML article extractors on the fixture pages: main text, title and publication date.

    python benchmarks/extractors.py [--pages tests/fixtures/pages] [--out benchmarks/results/extractors.json]

Main text is scored as in the ScrapingHub article-extraction benchmark: precision and recall of
the extracted words against the story's words (as multisets, so a word counts as often as it
occurs), and their F1. A page's date and title count when they equal the truth exactly. Times are
medians per page, measured in this run, and given as a ratio to the hand-written extractor.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.ingest.readers import _read_html_builtin, decode_text, normalise_date, read_html  # noqa: E402

Extracted = tuple[str, str | None, str | None]  # text, title, date


def words(text: str) -> Counter[str]:
    return Counter(re.findall(r"\w+", text.lower()))


def prf(got: str, want: str) -> tuple[float, float, float]:
    g, w = words(got), words(want)
    common = sum((g & w).values())
    p = common / max(1, sum(g.values()))
    r = common / max(1, sum(w.values()))
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def handwritten(page: str) -> Extracted:
    parsed = _read_html_builtin(decode_text(page.encode()))
    return parsed.text, parsed.title, parsed.date


def trafilatura_default(page: str) -> Extracted:
    import trafilatura

    doc = trafilatura.bare_extraction(page, include_comments=False, with_metadata=True)
    if doc is None:
        return "", None, None
    return doc.text or "", doc.title, normalise_date(doc.date)


def trafilatura_precision(page: str) -> Extracted:
    import trafilatura

    doc = trafilatura.bare_extraction(page, include_comments=False, with_metadata=True, favor_precision=True)
    if doc is None:
        return "", None, None
    return doc.text or "", doc.title, normalise_date(doc.date)


def rag_reader(page: str) -> Extracted:
    """What rag uses: trafilatura's text, title and metadata, the date from htmldate's metadata
    search, then a "Published ..." line, then htmldate's whole-page search."""
    parsed = read_html(page.encode())
    return parsed.text, parsed.title, parsed.date


EXTRACTORS: dict[str, Callable[[str], Extracted]] = {
    "hand-written": handwritten,
    "trafilatura": trafilatura_default,
    "trafilatura precision": trafilatura_precision,
    "rag.ingest.readers.read_html": rag_reader,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=Path, default=ROOT / "tests" / "fixtures" / "pages")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "extractors.json")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    truth = json.loads((args.pages / "truth.json").read_text(encoding="utf-8"))
    pages = {name: (args.pages / name).read_text(encoding="utf-8") for name in truth}
    for extract in EXTRACTORS.values():  # imports and lazy set-up outside the timings
        extract(next(iter(pages.values())))
    results: dict[str, dict[str, object]] = {}
    for label, extract in EXTRACTORS.items():
        scores, dates, titles, times, per_layout = [], 0, 0, [], {}
        for name, page in pages.items():
            want = truth[name]
            elapsed = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                text, title, date = extract(page)
                elapsed.append(time.perf_counter() - t0)
            times.append(statistics.median(elapsed))
            p, r, f = prf(text, "\n\n".join(want["paragraphs"]))
            scores.append((p, r, f))
            per_layout.setdefault(want["layout"], []).append(f)
            dates += date == want["date"]
            titles += title == want["title"]
        results[label] = {
            "precision": statistics.mean(s[0] for s in scores),
            "recall": statistics.mean(s[1] for s in scores),
            "f1": statistics.mean(s[2] for s in scores),
            "f1_min": min(s[2] for s in scores),
            "dates": dates,
            "titles": titles,
            "pages": len(pages),
            "median_ms": 1000 * statistics.median(times),
            "f1_by_layout": {k: round(statistics.mean(v), 3) for k, v in per_layout.items()},
        }
    base = float(results["hand-written"]["median_ms"])  # type: ignore[arg-type]
    print(f"{len(pages)} pages, {args.rounds} rounds each; times are medians per page\n")
    print("| extractor | precision | recall | F1 | worst F1 | dates right | titles right | ms/page | time ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, r in results.items():
        ms = float(r["median_ms"])  # type: ignore[arg-type]
        print(
            f"| {label} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['f1_min']:.3f} | "
            f"{r['dates']}/{r['pages']} | {r['titles']}/{r['pages']} | {ms:.2f} | {ms / base:.2f}× |"
        )
    print("\nF1 by layout:")
    for label, r in results.items():
        print(f"  {label}: {r['f1_by_layout']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
