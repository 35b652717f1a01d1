"""The `rag` command: JSON shapes, human output, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rag.cli import main
from tests.conftest import SAMPLE_ARTICLES, article, write

FAST = ["--model", "hashing-64"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_index_json_has_exactly_the_documented_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    idx = str(tmp_path / "idx")
    write(tmp_path / "src" / "bad.csv", "a,b")
    code, out, _ = run(
        capsys, "index", str(SAMPLE_ARTICLES), str(tmp_path / "src"), "--index-dir", idx, *FAST, "--json"
    )
    assert code == 0
    summary = json.loads(out)
    assert list(summary) == [
        "added", "updated", "unchanged", "removed", "skipped", "documents", "chunks", "embedded", "seconds",
    ]  # fmt: skip
    assert (summary["added"], summary["documents"], summary["embedded"]) == (1, 1, summary["chunks"])
    assert summary["skipped"] == [
        {"path": str((tmp_path / "src" / "bad.csv").resolve()), "reason": summary["skipped"][0]["reason"]}
    ]
    code, out, _ = run(capsys, "index", str(SAMPLE_ARTICLES), "--index-dir", idx, "--json")
    assert json.loads(out)["embedded"] == 0 and json.loads(out)["unchanged"] == 1


def test_show_and_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    idx = str(tmp_path / "idx")
    run(capsys, "index", str(SAMPLE_ARTICLES), "--index-dir", idx, *FAST)
    code, out, _ = run(capsys, "status", "--index-dir", idx, "--json")
    status = json.loads(out)
    assert code == 0
    assert (status["documents"], status["model"], status["index_type"]) == (1, "hashing-64", "flat")
    assert status["vectors"] == status["chunks"] > 0 and status["vectors_up_to_date"] is True
    assert status["bytes"]["store"] > 0 and status["bytes"]["vectors"] > 0

    doc_id = json.loads(run(capsys, "index", str(SAMPLE_ARTICLES), "--index-dir", idx, "--json")[1])
    assert doc_id["unchanged"] == 1
    from rag import RAG

    with RAG.open(idx, create=False) as rag:
        (only,) = [d for d, _ in rag.store.document_paths()]
    code, out, _ = run(capsys, "show", only, "--index-dir", idx, "--json")
    shown = json.loads(out)
    assert list(shown) == ["doc_id", "title", "source", "date", "text"]
    assert shown["date"] == "2021-09-21" and shown["text"].startswith("Five weeks after")
    code, out, _ = run(capsys, "show", only, "--index-dir", idx)
    assert out.splitlines()[1].startswith("2021-09-21 · ")


def test_user_errors_are_one_line_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    idx = str(tmp_path / "idx")
    code, _, err = run(capsys, "status", "--index-dir", idx)
    assert code == 2 and err.startswith("rag: error: no index in") and "Traceback" not in err
    run(capsys, "index", str(SAMPLE_ARTICLES), "--index-dir", idx, *FAST)
    code, _, err = run(capsys, "show", "missing-id", "--index-dir", idx)
    assert (code, err) == (2, "rag: error: no document with id 'missing-id'; `rag status` shows what is indexed\n")
    code, _, err = run(capsys, "index", str(SAMPLE_ARTICLES), "--index-dir", idx, "--model", "hashing-32")
    assert code == 2 and "rag index --rebuild" in err
    code, _, err = run(capsys, "index", "--index-dir", idx)
    assert code == 2 and "name at least one PATH" in err


def test_a_missing_path_is_reported_and_the_rest_indexed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "index", str(tmp_path / "nope"), str(SAMPLE_ARTICLES), "--index-dir", str(tmp_path / "i"), *FAST
    )
    assert code == 1
    assert "1 added" in out and f"{tmp_path / 'nope'}: no such file or folder" in out


def test_bad_environment_settings_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("RAG_CHUNK_TOKNS", "100")
    code, _, err = run(capsys, "status")
    assert code == 2 and "unknown setting(s) chunk_tokns in environment (RAG_*)" in err
    monkeypatch.delenv("RAG_CHUNK_TOKNS")
    monkeypatch.setenv("RAG_BATCH_SIZE", "many")
    code, _, err = run(capsys, "status")
    assert code == 2 and "batch_size='many' must be a whole number" in err


def test_secrets_and_non_settings_in_the_environment_are_not_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in [("RAG_LLM_API_KEY", "sk-test"), ("RAG_AUTH", "a:b"), ("RAG_DEVICE", "cpu")]:
        monkeypatch.setenv(name, value)
    idx = str(tmp_path / "idx")
    assert run(capsys, "index", str(SAMPLE_ARTICLES), "--index-dir", idx, *FAST)[0] == 0
    code, out, err = run(capsys, "status", "--index-dir", idx, "--json")
    assert code == 0 and err == "" and "sk-test" not in out


def test_installed_command_honours_rag_index_dir(tmp_path: Path) -> None:
    """The console script end to end, with settings from the environment only."""
    rag = Path(sys.executable).with_name("rag")
    write(tmp_path / "src" / "a.md", "# Title A\n\n" + article(1))
    env = {**os.environ, "RAG_INDEX_DIR": str(tmp_path / "env-idx"), "RAG_MODEL": "hashing-64"}
    done = subprocess.run([str(rag), "index", str(tmp_path / "src"), "--json"], env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert json.loads(done.stdout)["added"] == 1
    assert (tmp_path / "env-idx" / "store.sqlite").exists()
    help_text = subprocess.run([str(rag), "index", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--rebuild" in help_text and "--index-dir" in help_text


def test_chunk_size_is_set_from_the_cli_the_environment_and_the_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`int | None` settings used to stay strings and crash at the first comparison."""
    docs = write(tmp_path / "docs" / "a.txt", " ".join(f"Sentence number {i} is here." for i in range(200)))
    index = str(tmp_path / "index")

    def chunk_settings(*extra: str) -> tuple[int, int]:
        assert main(["index", str(docs.parent), "--index-dir", index, "--model", "hashing-64", "--no-progress",
                     *extra]) == 0  # fmt: skip
        capsys.readouterr()
        assert main(["status", "--index-dir", index, "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        return status["chunk_tokens"], status["chunk_overlap"]

    assert chunk_settings("--chunk-tokens", "96", "--chunk-overlap", "8") == (96, 8)
    assert chunk_settings("--rebuild", "--chunk-tokens", "192") == (192, 8)
    toml = write(tmp_path / "rag.toml", "chunk_tokens = 64\nchunk_overlap = 4\n")
    assert chunk_settings("--rebuild", "--config", str(toml)) == (64, 4)
    monkeypatch.setenv("RAG_CHUNK_TOKENS", "80")
    monkeypatch.setenv("RAG_CHUNK_OVERLAP", "10")
    assert chunk_settings("--rebuild") == (80, 10)
    monkeypatch.setenv("RAG_CHUNK_TOKENS", "eighty")
    assert main(["status", "--index-dir", index]) == 2
    assert "chunk_tokens='eighty' must be a whole number" in capsys.readouterr().err


def test_small_defects_a_new_user_met(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Plurals, --version, search --json with date and source, a port in use, a closed pipe."""
    rag = Path(sys.executable).with_name("rag")
    # Longer than a pipe's buffer, so `| head -1` closes the pipe while rag still writes.
    write(tmp_path / "src" / "a.md", "---\ndate: 2021-09-21\n---\n# Title A\n\n" + article(1, words=40_000))
    index = str(tmp_path / "idx")
    assert main(["index", str(tmp_path / "src"), "--index-dir", index, "--model", "hashing-64", "--no-progress"]) == 0
    assert "The index holds 1 document in " in capsys.readouterr().out

    version = subprocess.run([str(rag), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("rag 0.")

    assert main(["search", "topic", "--index-dir", index, "--json", "-k", "1"]) == 0
    (passage,) = json.loads(capsys.readouterr().out)
    assert passage["date"] == "2021-09-21" and passage["source"].endswith("a.md")

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--index-dir", index, "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err and "Traceback" not in err

    doc_id = passage["doc_id"]
    shown = subprocess.run(f"'{rag}' show {doc_id} --index-dir '{index}' | head -1", shell=True,
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert shown.stdout and "BrokenPipe" not in shown.stderr and "Traceback" not in shown.stderr


def test_ask_takes_the_same_filters_as_search(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "src" / "a.txt", "Apples grow in the northern orchard. The harvest starts in May.")
    write(tmp_path / "src" / "b.txt", "Apples grow in the southern orchard. The harvest starts in June.")
    index = str(tmp_path / "idx")
    assert main(["index", str(tmp_path / "src"), "--index-dir", index, "--model", "hashing-64", "--no-progress"]) == 0
    capsys.readouterr()

    def cited(*extra: str) -> set[str]:
        assert main(["ask", "Where do apples grow?", "--index-dir", index, "--json", *extra]) == 0
        data = json.loads(capsys.readouterr().out)
        return {p["source"].rsplit("/", 1)[-1] for p in data["passages"]}

    assert cited() == {"a.txt", "b.txt"}
    assert cited("--source", "b.txt") == {"b.txt"}
    assert main(["search", "apples", "--index-dir", index, "--json", "--source", "a.txt"]) == 0
    doc_a = json.loads(capsys.readouterr().out)[0]["doc_id"]
    assert cited("--doc", doc_a) == {"a.txt"}
    assert main(["ask", "Where do apples grow?", "--index-dir", index, "--max-per-doc", "0"]) == 2
    assert "max_per_doc=0 must be 1 or more" in capsys.readouterr().err
