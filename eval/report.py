"""What `rag eval --out DIR` writes, and `rag eval --compare RUN_A RUN_B`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eval.questions import EvalError
from eval.runner import HIT_KS, EvalRun, result_json

SUMMARY = "summary.json"


def write_run(run: EvalRun, folder: Path, title: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "questions.jsonl", folder / SUMMARY, folder / "report.md"]
    with written[0].open("w", encoding="utf-8") as fh:
        for result in run.results:
            fh.write(json.dumps(result_json(result), ensure_ascii=False) + "\n")
    written[1].write_text(json.dumps(run.summary, indent=2) + "\n")
    written.extend(plot(run, folder))
    written[2].write_text(markdown(run.summary, title))
    return written


def cell(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown(summary: dict[str, Any], title: str) -> str:
    r, a, c, n = summary["retrieval"], summary["answer"], summary["citations"], summary["no_answer"]
    lines = [
        f"# Evaluation: {title}",
        "",
        f"{summary['n']} questions ({summary['counts']['answerable']} answerable, "
        f"{summary['counts']['unanswerable']} unanswerable); {summary['counts']['abstained']} answers abstained.",
        "",
        "## Retrieval (a hit overlaps a gold answer span)",
        "",
        "| " + " | ".join(r) + " |",
        "|" + "---|" * len(r),
        "| " + " | ".join(cell(v) for v in r.values()) + " |",
        "",
        "## Answers and citations",
        "",
        "| EM | F1 | EM (sentences) | F1 (sentences) | contains gold | citation precision | citation recall "
        "| no-answer precision | no-answer recall |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {cell(a['em'])} | {cell(a['f1'])} | {cell(a.get('em_sentence'))} | {cell(a.get('f1_sentence'))} "
        f"| {cell(a['contains'])} | {cell(c['precision'])} | {cell(c['recall'])} | {cell(n['precision'])} "
        f"| {cell(n['recall'])} |",
        "",
        f"EM and F1 score the answer phrase (`answer_span`, marked in {cell(a.get('phrase_marked'))} of the "
        "answers) where the answer marks one, else the answer's sentences; the sentence columns always score "
        'the sentences. Contains gold: the sentences hold a gold answer. Citation precision is "–" when '
        "the set gives no gold spans (`evidence`): a citation cannot be judged.",
        "",
        "## Latency (ms)",
        "",
        "| stage | p50 | p95 |",
        "|---|---|---|",
        *(f"| {k} | {cell(v['p50'])} | {cell(v['p95'])} |" for k, v in summary["latency_by_stage_ms"].items()),
        "",
        f"Wall time {summary['seconds']['wall']} s, of which the pipeline's own calls took "
        f"{summary['seconds']['pipeline']} s (evaluation overhead {cell(summary['seconds']['overhead_share'])}).",
        "",
        "![hit@k](hit_at_k.png) ![latency](latency.png)",
        "",
    ]
    return "\n".join(lines)


def plot(run: EvalRun, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    with_gold = [r for r in run.results if not r.unanswerable and r.gold_spans]
    ks = list(range(1, max(HIT_KS) + 1))
    curve = [sum(r.first_hit is not None and r.first_hit <= k for r in with_gold) / max(1, len(with_gold)) for k in ks]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ks, curve, marker="o")
    ax.set(xlabel="k (passages retrieved)", ylabel="hit@k", title="Retrieval: hit@k", ylim=(0, 1))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    hit_path = folder / "hit_at_k.png"
    fig.savefig(hit_path, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist([r.timings_ms.get("total_ms", 0.0) for r in run.results], bins=30)
    ax.set(xlabel="ask latency (ms)", ylabel="questions", title="Latency of RAG.ask")
    fig.tight_layout()
    latency_path = folder / "latency.png"
    fig.savefig(latency_path, dpi=110)
    plt.close(fig)
    return [hit_path, latency_path]


def _flatten(prefix: str, value: Any, out: dict[str, float | None]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else key, inner, out)
    elif isinstance(value, int | float) or value is None:
        out[prefix] = value


def load_summary(run: Path) -> dict[str, Any]:
    path = run / SUMMARY if run.is_dir() else run
    if not path.is_file():
        raise EvalError(f"no {SUMMARY} in {run}; pass a folder written by `rag eval --out`")
    summary: dict[str, Any] = json.loads(path.read_text())
    return summary


def compare(run_a: Path, run_b: Path) -> str:
    a: dict[str, float | None] = {}
    b: dict[str, float | None] = {}
    _flatten("", load_summary(run_a), a)
    _flatten("", load_summary(run_b), b)
    width = max(len(k) for k in a | b)
    lines = [f"{'metric':<{width}}  {'A':>10}  {'B':>10}  {'B - A':>10}", "-" * (width + 36)]
    for key in list(dict.fromkeys([*a, *b])):
        va, vb = a.get(key), b.get(key)
        diff = f"{vb - va:+.4f}" if va is not None and vb is not None else ""
        lines.append(f"{key:<{width}}  {cell(va):>10}  {cell(vb):>10}  {diff:>10}")
    return f"A: {run_a}\nB: {run_b}\n\n" + "\n".join(lines)
