"""`rag eval`: loading question sets, the metrics, the outputs and comparing runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.metrics import contains_answer, exact_match, ndcg, normalise, token_f1
from eval.questions import QuestionSetError, load_questions
from rag.cli import main
from tests.conftest import REPO, write

SQUAD = REPO / "tests" / "fixtures" / "squad_v2_small.json"
FAST = ["--model", "hashing-64"]


def test_squad_articles_become_documents_with_reanchored_offsets() -> None:
    qset = load_questions(SQUAD)
    assert [d.title for d in qset.documents] == ["Gull Island", "Elm Street"]
    assert (qset.reanchored, qset.unanchored) == (1, 1)  # "Mara Lind" was off by two; "their boats" is absent
    by_id = {q.id: q for q in qset.questions}
    doc = qset.documents[0]
    for qid, text in [("q1", "1852"), ("q2", "Mara Lind"), ("q4", "in March")]:
        (span,) = by_id[qid].spans
        assert doc.text[span.start : span.end] == text  # offsets carried into the joined document
    assert by_id["q3"].unanswerable and not by_id["q3"].spans
    assert by_id["q5"].spans == () and not by_id["q5"].unanswerable


def test_metrics_follow_squad_normalisation() -> None:
    assert normalise("The  Lighthouse, built!") == "lighthouse built"
    assert exact_match("the 1852", ["1852"]) == 1.0
    assert token_f1("built in 1852 by Mara", ["1852"]) == pytest.approx(2 * (1 / 5) * 1 / (1 / 5 + 1))  # P 1/5, R 1
    assert contains_answer("It was built in 1852.", ["1852"]) == 1.0
    assert contains_answer("It was built in 18520.", ["1852"]) == 0.0
    assert ndcg([False, True, False]) == pytest.approx(1 / 1.584962500721156)
    assert ndcg([True, True]) == pytest.approx(1.0) and ndcg([False] * 5) == 0.0


def test_eval_indexes_the_set_then_asks_every_question(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    idx = str(tmp_path / "idx")
    assert main(["eval", str(SQUAD), "--index-dir", idx, *FAST, "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert list(summary)[:7] == [
        "n",
        "retrieval",
        "answer",
        "citations",
        "no_answer",
        "latency_ms",
        "latency_by_stage_ms",
    ]
    assert summary["n"] == 6
    assert set(summary["retrieval"]) == {"hit@1", "hit@3", "hit@5", "hit@10", "hit@20", "mrr", "ndcg@10"}
    assert summary["retrieval"]["hit@20"] == 1.0  # a tiny corpus: every gold span is retrieved
    assert set(summary["answer"]) == {"em", "f1", "contains", "em_sentence", "f1_sentence", "phrase_marked"}
    assert set(summary["no_answer"]) == {"precision", "recall"}
    assert summary["counts"] == {"answerable": 5, "with_gold_spans": 4, "unanswerable": 1,
                                 "abstained": summary["counts"]["abstained"], "reanchored_answers": 1,
                                 "unanchored_answers": 1}  # fmt: skip
    assert summary["latency_ms"]["p50"] > 0
    # A second run finds the documents unchanged and embeds nothing.
    assert main(["eval", str(SQUAD), "--index-dir", idx, "--no-progress"]) == 0
    assert "Documents: 0 added, 0 updated, 2 unchanged; 0 chunks embedded." in capsys.readouterr().out


def test_out_writes_the_report_and_compare_reads_two_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    idx = str(tmp_path / "idx")
    a, b = tmp_path / "run-a", tmp_path / "run-b"
    assert main(["eval", str(SQUAD), "--index-dir", idx, *FAST, "--out", str(a), "--no-progress"]) == 0
    assert main(["eval", str(SQUAD), "--index-dir", idx, "--out", str(b), "--limit", "2", "--no-progress"]) == 0
    assert sorted(p.name for p in a.iterdir()) == [
        "hit_at_k.png", "latency.png", "questions.jsonl", "report.md", "summary.json",
    ]  # fmt: skip
    rows = [json.loads(line) for line in (a / "questions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {"question", "answer", "citations", "first_hit", "timings_ms"} <= set(rows[0])
    assert (a / "hit_at_k.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Retrieval" in (a / "report.md").read_text()
    capsys.readouterr()
    assert main(["eval", "--compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "retrieval.hit@1" in out and "n  " in out and "-4.0000" in out  # 6 questions against 2


def test_sample_is_reproducible_and_limit_cuts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    idx = str(tmp_path / "idx")
    args = ["eval", str(SQUAD), "--index-dir", idx, *FAST, "--no-progress", "--out"]
    main([*args, str(tmp_path / "s1"), "--sample", "3", "--seed", "4"])
    main([*args, str(tmp_path / "s2"), "--sample", "3", "--seed", "4"])
    ids = [
        [json.loads(x)["id"] for x in (tmp_path / s / "questions.jsonl").read_text().splitlines()] for s in ("s1", "s2")
    ]
    assert ids[0] == ids[1] and len(ids[0]) == 3


def test_jsonl_questions_run_against_an_existing_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    idx = str(tmp_path / "idx")
    write(tmp_path / "docs" / "bakery.txt", "The bakery opens at six. It sells rye bread.")
    main(["index", str(tmp_path / "docs"), "--index-dir", idx, *FAST])
    capsys.readouterr()
    from rag import RAG

    with RAG.open(idx, create=False) as rag:
        (doc_id,) = [d for d, _ in rag.store.document_paths()]
    questions = [
        {"id": "a", "question": "When does the bakery open?", "answers": ["at six"],
         "evidence": [{"doc_id": doc_id, "start": 18, "end": 24}]},
        {"id": "b", "question": "Who won the 1930 World Cup?", "answers": [], "unanswerable": True},
    ]  # fmt: skip
    qfile = write(tmp_path / "q.jsonl", "\n".join(json.dumps(q) for q in questions))
    assert main(["eval", str(qfile), "--index-dir", idx, "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 2 and summary["retrieval"]["hit@1"] == 1.0 and summary["counts"]["unanswerable"] == 1


def test_bad_question_sets_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(QuestionSetError, match="no question set at"):
        load_questions(tmp_path / "missing.json")
    bad = write(tmp_path / "bad.jsonl", '{"question": "ok"}\n{"id": 2}\n')
    with pytest.raises(QuestionSetError, match=r"bad.jsonl:2: not a question record"):
        load_questions(bad)
    assert main(["eval", "--index-dir", str(tmp_path / "i")]) == 2
    assert "name a question set FILE" in capsys.readouterr().err


def test_citation_precision_is_not_measured_without_evidence_and_em_scores_the_answer_phrase(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    idx = str(tmp_path / "idx")
    text = "The old Millbrook bridge opened in 1998.\n\nThe old Millbrook bridge cost 14 million euros to build."
    write(tmp_path / "docs" / "bridge.txt", text)
    main(["index", str(tmp_path / "docs"), "--index-dir", idx, *FAST])
    capsys.readouterr()
    qfile = write(tmp_path / "q.jsonl", json.dumps({"id": "a", "question": "When did the old Millbrook bridge open?",
                                                   "answers": ["1998"]}))  # fmt: skip
    out = tmp_path / "run"
    assert main(["eval", str(qfile), "--index-dir", idx, "--json", "--no-progress", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["citations"]["precision"] is None  # no evidence: nothing to judge a citation by
    (row,) = [json.loads(line) for line in (out / "questions.jsonl").read_text().splitlines()]
    assert row["phrase"] == "1998" and (row["em"], row["em_sentence"]) == (1.0, 0.0)
    assert (summary["answer"]["em"], summary["answer"]["em_sentence"], summary["answer"]["phrase_marked"]) == (
        1.0, 0.0, 1.0
    )  # fmt: skip
    report = (out / "report.md").read_text()
    assert "| 1.000 | 1.000 | 0.000 |" in report and "| – |" in report and "score the answer phrase" in report
    assert main(["eval", str(qfile), "--index-dir", idx, "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "Citations: precision –, recall –." in text
    assert "EM 1.000, F1 1.000 (on the answer phrase where marked; on the sentences: EM 0.000" in text
