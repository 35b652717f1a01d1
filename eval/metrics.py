"""Answer metrics with SQuAD's normalisation (lower case, no punctuation, articles or extra spaces)."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable

_PUNCTUATION = set(string.punctuation) | {"“", "”", "‘", "’", "–", "—"}


def normalise(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: Iterable[str]) -> float:
    return float(any(normalise(prediction) == normalise(g) for g in golds))


def token_f1(prediction: str, golds: Iterable[str]) -> float:
    best = 0.0
    predicted = normalise(prediction).split()
    for gold in golds:
        wanted = normalise(gold).split()
        common = sum((Counter(predicted) & Counter(wanted)).values())
        if common:
            precision, recall = common / len(predicted), common / len(wanted)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def contains_answer(prediction: str, golds: Iterable[str]) -> float:
    """Whether the normalised prediction contains a normalised gold answer."""
    text = f" {normalise(prediction)} "
    return float(any(normalise(g) and f" {normalise(g)} " in text for g in golds))


def overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


def first_hit_rank(relevant: list[bool]) -> int | None:
    """1-based rank of the first relevant item, or None."""
    return next((rank for rank, hit in enumerate(relevant, start=1) if hit), None)


def ndcg(relevant: list[bool], k: int = 10) -> float:
    """Binary-relevance nDCG@k. The ideal ranking puts every relevant item retrieved in the top
    20 first (at least one), since how many chunks overlap an answer is not known otherwise."""
    dcg = sum(1 / math.log2(rank + 1) for rank, hit in enumerate(relevant[:k], start=1) if hit)
    ideal_count = max(1, min(sum(relevant), k))
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, ideal_count + 1))
    return dcg / ideal
