"""The reader's training pipeline: pairs split by document, the same on every run, and the
whole recipe (train, export, quantise, measure, card, checksums) run end to end on a tiny set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from embeddings.reader import CHECKSUM_FILE, MODEL_FILE, Reader
from eval.squad import held_out_ids
from eval.train_reader import build, load_set
from tests.conftest import REPO

TOWNS = ["Arlen", "Brisk", "Corve", "Dunmore", "Elby", "Farrow", "Glenn", "Harth"]


def _tiny_set(folder: Path) -> Path:
    """Eight one-paragraph articles, two questions each, in SQuAD format."""
    data = []
    for n, town in enumerate(TOWNS):
        context = (
            f"{town} council met on Monday to discuss the new bridge. "
            f"The {town} bridge will cost {n + 2}.5 million euros, officials said. "
            f"Work on the bridge in {town} starts in {2030 + n}. "
            "Residents have asked for a cycle lane on the bridge."
        )
        asked = [
            (f"How much will the {town} bridge cost?", f"{n + 2}.5 million euros"),
            (f"When does work on the {town} bridge start?", str(2030 + n)),
        ]
        qas = [
            {"id": f"{town}-{i}", "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
            for i, (q, a) in enumerate(asked)
        ]
        data.append({"title": f"{town} bridge", "paragraphs": [{"context": context, "qas": qas}]})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bridges.json").write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")
    return folder


def test_pairs_are_split_by_document_and_the_same_on_every_run(tmp_path: Path) -> None:
    folder = _tiny_set(tmp_path / "sets")
    train, held, counts = build(folder, seed=13)
    again_train, again_held, _ = build(folder, seed=13)
    assert (train, held) == (again_train, again_held)
    qset = load_set(folder / "bridges.json")
    held_docs = held_out_ids(qset)
    assert counts["bridges"]["held_out_documents"] == len(held_docs) == 2
    held_ids = {q.id for q in qset.questions if q.doc_id in held_docs}
    assert {p.question_id for p in held} == held_ids
    assert not {p.question_id for p in train} & held_ids
    for pair in train + held:
        answers = {a for q in qset.questions if q.id == pair.question_id for a in q.answers}
        if pair.label:
            assert pair.span is not None and pair.sentence[pair.span[0] : pair.span[1]] in answers
        else:
            assert not any(a in pair.sentence for a in answers)
    # Hard negatives: the lead that restates the topic is among each question's negatives.
    leads = [p for p in train if not p.label and "council met on Monday" in p.sentence]
    assert leads
    assert {p.context for p in train + held} == {""}  # the shipped recipe reads no headline


def test_headlines_and_near_misses_of_the_asked_for_type_when_asked_for(tmp_path: Path) -> None:
    folder = _tiny_set(tmp_path / "sets")
    plain, _, _ = build(folder, seed=13)
    train, held, _ = build(folder, seed=13, with_headlines=True, same_type=True)
    qset = load_set(folder / "bridges.json")
    held_docs = held_out_ids(qset)
    # Each pair carries its sentence's headline (its document's first line), a share none.
    firsts = {f"{town} council met on Monday to discuss the new bridge." for town in TOWNS}
    assert {p.context for p in train + held} <= firsts | {""}
    assert "" in {p.context for p in train} and len([p for p in train if p.context]) > len(train) / 2

    # A near miss of the asked-for type: another town's cost for "How much will ... cost?".
    def costs(pairs: list, question_id: str) -> int:
        return len([p for p in pairs if p.question_id == question_id and not p.label and "million euros" in p.sentence])

    for q in [q for q in qset.questions if q.question.startswith("How much") and q.doc_id not in held_docs]:
        assert costs(train, q.id) == costs(plain, q.id) + 1 >= 2, q.question


def test_more_negatives_per_question_when_asked_for(tmp_path: Path) -> None:
    folder = _tiny_set(tmp_path / "sets")
    plain, _, _ = build(folder, seed=13)
    train, held, _ = build(folder, seed=13, same_document=3, other_document=2)
    qset = load_set(folder / "bridges.json")

    def negatives(pairs: list, question_id: str, own: str) -> tuple[int, int]:
        """(negatives of the question's own article, negatives naming another town)."""
        mine = [p for p in pairs if p.question_id == question_id and not p.label]
        others = [p for p in mine if any(t in p.sentence for t in TOWNS if t != own)]
        return len(mine) - len(others), len(others)

    for q in qset.questions:
        town = q.question.split(" the ")[1].split()[0]
        if q.doc_id in held_out_ids(qset):
            continue
        # The tiny articles have four sentences: the answer's and three others, all taken.
        assert negatives(plain, q.id, town) == (2, 1)
        assert negatives(train, q.id, town) == (3, 2), q.question
    answers = {q.id: set(q.answers) for q in qset.questions}
    assert not any(a in p.sentence for p in train + held if not p.label for a in answers[p.question_id])


@pytest.mark.slow
def test_the_training_command_makes_a_reader_that_loads(tmp_path: Path) -> None:
    folder = _tiny_set(tmp_path / "sets")
    out = tmp_path / "model"
    done = subprocess.run(
        [sys.executable, "-m", "eval.train_reader", "--datasets", str(folder), "--out", str(out),
         "--minutes", "0.05", "--eval-limit", "3", "--headlines", "--same-type-negatives"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for name in (MODEL_FILE, CHECKSUM_FILE, "MODEL_CARD.md", "card.json", "training_log.jsonl", "training_curve.png"):
        assert (out / name).is_file(), name
    card = json.loads((out / "card.json").read_text(encoding="utf-8"))
    assert card["held_out"]["bridges"]["questions"] == 3
    assert card["known_pair"]["question"] and "relevance" in card["known_pair"]
    reader = Reader(out)  # checksums verified
    [scored] = reader.score("How much will it cost?", ["The bridge will cost 3.5 million euros."])
    assert 0.0 <= scored.relevance <= 1.0
    # Trained with headlines: it reads them (the shipped reader, trained without, ignores them).
    assert reader.settings.context and card["settings"]["headlines"]
    [headed] = reader.score("How much will it cost?", ["The bridge will cost 3.5 million euros."], ["Storm news"])
    assert headed.relevance != scored.relevance
    assert "headline" in (out / "MODEL_CARD.md").read_text(encoding="utf-8")


def test_the_training_command_names_a_missing_datasets_folder(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "eval.train_reader", "--datasets", str(tmp_path / "nowhere")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "nowhere is not a folder of SQuAD-format JSON sets" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--minutes", "-1"], "--minutes -1.0 is too small: at least 0.01"),
        (["--frozen-layers", "7"], "--frozen-layers 7 must be between 0 and 6"),
        (["--epochs", "0"], "--epochs 0 is too small: at least 1"),
        (["--other-document-negatives", "-1"], "--other-document-negatives -1 is too small: at least 0"),
    ],
)
def test_the_training_command_refuses_settings_it_cannot_train_with(
    tmp_path: Path, args: list[str], message: str
) -> None:
    folder = _tiny_set(tmp_path / "sets")
    done = subprocess.run(
        [sys.executable, "-m", "eval.train_reader", "--datasets", str(folder), "--out", str(tmp_path / "m"), *args],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "m").exists()


def test_the_training_command_names_a_folder_without_sets(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "eval.train_reader", "--datasets", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "holds no .json file" in done.stderr
