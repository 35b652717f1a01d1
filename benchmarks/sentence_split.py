"""Which sentence segmenter: accuracy on abbreviation-heavy news text, and speed.

    pip install pysbd syntok blingfire   # the candidates not in the project's dependencies
    python benchmarks/sentence_split.py

Accuracy: tests/fixtures/news_sentences.json holds paragraphs of news-style text with their
gold sentences (Mr., Dr., U.S., U.N., Jan., Sept., St., Gen., Ae., e.g., decimals, quotes,
initials, datelines); a paragraph counts when every sentence span is exactly right. Speed:
megabytes of COVID-QA papers (from ../shared/datasets) segmented per second. Candidates that
are not installed are reported as such. "rag" is rag.ingest.chunking.sentence_spans (sentencex plus its repairs).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATASET = REPO.parent / "shared" / "datasets" / "covidqa-dev.json"

Spans = list[tuple[int, int]]


def _located(text: str, sentences: list[str]) -> Spans:
    out, position = [], 0
    for sentence in (s.strip() for s in sentences):
        if sentence:
            start = text.index(sentence, position)
            out.append((start, start + len(sentence)))
            position = start + len(sentence)
    return out


def rag_now(text: str) -> Spans:
    from rag.ingest.chunking import sentence_spans

    return sentence_spans(text)


def pysbd_(text: str) -> Spans:
    import pysbd

    segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
    return [(s.start, s.start + len(s.sent)) for s in segmenter.segment(text)]


def syntok_(text: str) -> Spans:
    from syntok.segmenter import analyze

    return [
        (tokens[0].offset, tokens[-1].offset + len(tokens[-1].value))
        for paragraph in analyze(text)
        for tokens in map(list, paragraph)
    ]


def blingfire_(text: str) -> Spans:
    import blingfire

    return [tuple(o) for o in blingfire.text_to_sentences_and_offsets(text)[1]]


def sentencex_(text: str) -> Spans:
    import sentencex

    return [(b["start_index"], b["end_index"]) for b in sentencex.get_sentence_boundaries("en", text)]


CANDIDATES: dict[str, Callable[[str], Spans]] = {
    "rag (sentencex, structure lines, repairs)": rag_now,
    "pysbd": pysbd_,
    "syntok": syntok_,
    "blingfire": blingfire_,
    "sentencex": sentencex_,
}


def trimmed(text: str, spans: Spans) -> Spans:
    out = []
    for start, end in spans:
        piece = text[start:end]
        left = len(piece) - len(piece.lstrip())
        right = len(piece.rstrip())
        if right > left:
            out.append((start + left, start + right))
    return out


def main() -> None:
    fixture = json.loads((REPO / "tests" / "fixtures" / "news_sentences.json").read_text())
    paragraphs = fixture["paragraphs"]
    papers = []
    if DATASET.exists():
        data = json.loads(DATASET.read_text())
        papers = [p["context"] for d in data["data"] for p in d["paragraphs"]][:12]
    megabytes = sum(len(p) for p in papers) / 1e6
    print(f"| segmenter | news paragraphs exactly right (of {len(paragraphs)}) | MB/s on COVID-QA |")
    print("|---|---|---|")
    for name, split in CANDIDATES.items():
        try:
            right, wrong = 0, []
            for sentences in paragraphs:
                text = " ".join(sentences)
                got = trimmed(text, split(text))
                if got == _located(text, sentences):
                    right += 1
                else:
                    wrong.append([text[a:b] for a, b in got])
            started = time.perf_counter()
            for paper in papers:
                split(paper)
            speed = megabytes / (time.perf_counter() - started) if papers else float("nan")
        except ImportError:
            print(f"| {name} | not installed | |")
            continue
        print(f"| {name} | {right} | {speed:.2f} |")
        for pieces in wrong:
            print(f"|   wrong: {' ¦ '.join(pieces)} | | |", file=sys.stderr)


if __name__ == "__main__":
    main()
