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
        "added", "updated", "unchanged", "removed", "moved", "copies", "skipped", "documents", "chunks", "embedded",
        "seconds",
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
    assert list(shown) == [
        "doc_id", "title", "source", "date", "date_source", "published", "date_notes", "site", "story", "text"
    ]  # fmt: skip
    assert shown["date"] == "2021-09-21" and shown["text"].startswith("Five weeks after")
    assert (shown["date_source"], shown["story"]) == ("date header", [])  # the sample's "date 2021-09-21" line
    code, out, _ = run(capsys, "show", only, "--index-dir", idx)
    assert out.splitlines()[1].startswith("2021-09-21, from the date header · ")


def test_user_errors_are_one_line_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    idx = str(tmp_path / "idx")
    code, _, err = run(capsys, "status", "--index-dir", idx)
    assert code == 2 and err.startswith("rag: error: no index in") and "Traceback" not in err
    run(capsys, "index", str(SAMPLE_ARTICLES), "--index-dir", idx, *FAST)
    code, _, err = run(capsys, "show", "missing-id", "--index-dir", idx)
    assert (code, err) == (
        2,
        "rag: error: no document has the id, path or title 'missing-id'; `rag list` shows what is indexed "
        "(`rag list --title TEXT` to look one up)\n",
    )
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


def test_list_pages_filters_and_names_documents_by_id_path_or_title(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for n, (title, day) in enumerate([("Fed raises rates", "2026-09-17"), ("Fed holds rates", "2026-07-30"),
                                      ("Storm hits coast", "2026-08-02"), ("Undated note", None)]):  # fmt: skip
        head = f"---\ndate: {day}\n---\n" if day else ""
        write(tmp_path / "news" / f"story{n}.md", f"{head}# {title}\n\n{article(n)}")
    index = str(tmp_path / "idx")
    assert main(["index", str(tmp_path / "news"), "--index-dir", index, *FAST, "--no-progress"]) == 0
    capsys.readouterr()

    code, out, _ = run(capsys, "list", "--index-dir", index)
    assert code == 0
    lines = out.splitlines()
    assert [t for t in ("Fed raises rates", "Storm hits coast", "Fed holds rates", "Undated note")
            if any(line.endswith(t) for line in lines)] == ["Fed raises rates", "Storm hits coast",
                                                            "Fed holds rates", "Undated note"]  # fmt: skip
    order = [next(i for i, line in enumerate(lines) if line.endswith(t))
             for t in ("Fed raises rates", "Storm hits coast", "Fed holds rates", "Undated note")]  # fmt: skip
    assert order == sorted(order), "newest first, undated last"
    assert "1 chunk · indexed " in out or " chunks · indexed " in out
    assert lines[-1] == "1–4 of 4 documents"

    code, out, _ = run(capsys, "list", "--index-dir", index, "--json", "--limit", "2", "--sort", "title")
    page = json.loads(out)
    assert page["total"] == 4 and [d["title"] for d in page["documents"]] == ["Fed holds rates", "Fed raises rates"]
    assert set(page["documents"][0]) == {"doc_id", "title", "date", "source", "chunks", "indexed_at"}
    code, out, _ = run(capsys, "list", "--index-dir", index, "--limit", "2", "--offset", "2", "--sort", "title")
    assert out.splitlines()[-1] == "3–4 of 4 documents"
    code, out, _ = run(capsys, "list", "--index-dir", index, "--limit", "2")
    assert out.splitlines()[-1] == "1–2 of 4 documents; the next page: --offset 2"
    code, out, _ = run(capsys, "list", "--index-dir", index, "--json", "--since", "2026-08", "--title", "RATES")
    assert [d["title"] for d in json.loads(out)["documents"]] == ["Fed raises rates"]
    code, out, _ = run(capsys, "list", "--index-dir", index, "--source", "story3")
    assert "Undated note" in out and "Fed" not in out

    # A title prefix, a path and an id all name a document; an ambiguous prefix names the choices.
    code, out, _ = run(capsys, "show", "storm", "--index-dir", index)
    assert code == 0 and out.startswith("Storm hits coast\n2026-08-02")
    code, out, _ = run(capsys, "show", str(tmp_path / "news" / "story1.md"), "--index-dir", index, "--json")
    assert json.loads(out)["title"] == "Fed holds rates"
    code, _, err = run(capsys, "show", "fed", "--index-dir", index)
    assert code == 2 and "'fed' starts 2 titles" in err and "Fed holds rates" in err and "Traceback" not in err
    code, _, err = run(capsys, "show", "nothing-like-this", "--index-dir", index)
    assert code == 2 and "`rag list` shows what is indexed" in err
    code, out, _ = run(capsys, "ask", "What happened?", "--index-dir", index, "--json", "--doc", "fed raises")
    assert {p["title"] for p in json.loads(out)["passages"]} == {"Fed raises rates"}
    code, out, _ = run(capsys, "remove", "Storm", "--index-dir", index)
    assert code == 0 and out.startswith("Removed 1 document: story2-")
    code, out, _ = run(capsys, "list", "--index-dir", index, "--title", "storm")
    assert out.strip() == "No document matches those filters."


def test_a_moved_folder_keeps_its_document_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "old" / "a.md", "# Alpha\n\n" + article(1))
    write(tmp_path / "old" / "sub" / "b.jsonl", json.dumps({"title": "Beta", "text": article(2)}) + "\n"
          + json.dumps({"title": "Gamma", "text": article(3)}) + "\n")  # fmt: skip
    index = str(tmp_path / "idx")
    assert main(["index", str(tmp_path / "old"), "--index-dir", index, *FAST, "--no-progress", "--json"]) == 0
    capsys.readouterr()
    before = {d["title"]: d for d in json.loads(run(capsys, "list", "--index-dir", index, "--json")[1])["documents"]}

    (tmp_path / "old").rename(tmp_path / "new")
    _, out, _ = run(capsys, "index", str(tmp_path / "new"), "--index-dir", index, "--json")
    summary = json.loads(out)
    assert (summary["moved"], summary["added"], summary["removed"], summary["embedded"]) == (3, 0, 0, 0)
    after = {d["title"]: d for d in json.loads(run(capsys, "list", "--index-dir", index, "--json")[1])["documents"]}
    assert {t: d["doc_id"] for t, d in after.items()} == {t: d["doc_id"] for t, d in before.items()}
    assert after["Alpha"]["source"] == str((tmp_path / "new" / "a.md").resolve())
    assert after["Gamma"]["source"] == str((tmp_path / "new" / "sub" / "b.jsonl").resolve()) + ":2"

    # Edited after the move, a one-document file still keeps its id.
    write(tmp_path / "new" / "a.md", "# Alpha\n\n" + article(4))
    _, out, _ = run(capsys, "index", str(tmp_path / "new"), "--index-dir", index, "--json")
    assert (json.loads(out)["updated"], json.loads(out)["added"]) == (1, 0)
    _, out, _ = run(capsys, "show", "alpha", "--index-dir", index, "--json")
    assert json.loads(out)["doc_id"] == before["Alpha"]["doc_id"]

    # A copy (the original still there) is not a move either: its texts are indexed already, and
    # each file says as which document, adding nothing.
    import shutil

    shutil.copytree(tmp_path / "new", tmp_path / "copy")
    _, out, _ = run(capsys, "index", str(tmp_path / "copy"), "--index-dir", index, "--json")
    summary = json.loads(out)
    assert (summary["moved"], summary["added"], summary["documents"]) == (0, 0, 3)
    copied = tmp_path / "copy" / "a.md"
    said = {s["path"]: s["reason"] for s in summary["skipped"]}
    assert said[str(copied.resolve())] == (
        f"already indexed as {before['Alpha']['doc_id']} ({(tmp_path / 'new' / 'a.md').resolve()})"
    )


def test_the_example_config_names_every_setting_at_its_default() -> None:
    import dataclasses
    import re
    import tomllib

    from rag.config import Config, IndexSettings
    from tests.conftest import REPO

    path = REPO / "rag.example.toml"
    text = path.read_text()
    values = tomllib.loads(text)
    loaded = Config.load(file=path, env={})
    defaults = {**dataclasses.asdict(Config()), **dataclasses.asdict(IndexSettings())}
    for key, value in values.items():
        assert getattr(loaded, key) == (Path(value) if key == "index_dir" else value)
        assert str(defaults[key]) == str(value), f"{key} = {value!r} in rag.example.toml, default {defaults[key]!r}"
    named = set(values) | set(re.findall(r"^# (\w+) = ", text, re.MULTILINE))
    assert named == {f.name for f in dataclasses.fields(Config)}


def test_shell_completion_completes_commands_and_options(tmp_path: Path) -> None:
    rag = Path(sys.executable).with_name("rag")
    script = tmp_path / "rag.bash"
    script.write_text(
        subprocess.run([str(rag), "completion", "bash"], capture_output=True, text=True, check=True).stdout
    )

    def complete(*words: str) -> list[str]:
        line = " ".join(["rag", *words])
        probe = (f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words)}; COMP_LINE='{line}'; "
                 f"COMP_POINT={len(line)}; _shtab_rag rag {words[-1]} {words[-2] if len(words) > 1 else 'rag'}; "
                 'printf "%s\\n" "${COMPREPLY[@]}"')  # fmt: skip
        return subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout.split()

    assert complete("li") == ["list"]
    assert set(complete("list", "--so")) == {"--source", "--sort"}
    assert "--history" in complete("ask", "--hi")


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_port_that_is_not_one_is_a_usage_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--port", port])
    assert stopped.value.code == 2
    assert f"argument --port: '{port}' is not a port; give 0 to 65535" in capsys.readouterr().err


def test_a_watch_line_counts_in_the_singular_and_the_plural() -> None:
    from rag.cli.commands import watch_line
    from rag.types import IndexSummary

    def line(copies: int, added: int = 1, embedded: int = 1, documents: int = 1) -> str:
        return watch_line(IndexSummary(added, 0, 0, 0, (), documents, 1, embedded, 0.1, copies=copies))

    assert line(1).endswith("1 chunk embedded; the index holds 1 document (1 new copy of an indexed article)")
    assert line(3, 3, 9, 9).endswith(
        "9 chunks embedded; the index holds 9 documents (3 new copies of indexed articles)"
    )
    assert line(0).endswith("the index holds 1 document")


def test_index_exits_1_when_every_file_named_was_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "photo.txt").write_bytes(b"\x00\x01\x02binary")
    (folder / "empty.md").write_text("")
    (folder / "table.csv").write_text("a,b\n1,2\n")
    index = str(tmp_path / "idx")
    code, out, err = run(capsys, "index", str(folder), "--index-dir", index, *FAST)
    assert code == 1 and "Skipped 3:" in out
    assert err.strip() == "Nothing could be indexed: every file was skipped."
    # One good file beside them: a partial run that indexed something, exit 0.
    write(folder / "good.md", "# Good\n\nA readable article. It has two sentences.")
    assert run(capsys, "index", str(folder), "--index-dir", index, *FAST)[0] == 0
    # The same text under another name adds nothing and is no failure.
    write(tmp_path / "again.md", "# Good\n\nA readable article. It has two sentences.")
    code, out, _ = run(capsys, "index", str(tmp_path / "again.md"), "--index-dir", index, *FAST)
    assert code == 0 and "already indexed as good-" in out


@pytest.mark.slow
def test_library_warnings_go_into_the_skip_reason_and_print_only_with_verbose(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.test_ingest import make_pdf

    folder = tmp_path / "docs"
    write(folder / "good.md", "# Good\n\nA readable article. It has two sentences.")
    (folder / "cut.pdf").write_bytes(make_pdf("Hello world. This is a test.")[:-30])

    def index(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "rag.cli", "index", str(folder), "--index-dir", str(tmp_path / "idx"), *FAST]
        return subprocess.run([*argv, "--no-progress", *extra], capture_output=True, text=True, timeout=120)

    quiet = index()
    assert quiet.returncode == 0 and "EOF marker" not in quiet.stderr, quiet.stderr
    assert f"{folder / 'cut.pdf'}: not a readable PDF (" in quiet.stdout
    assert "[pypdf: EOF marker not found]" in quiet.stdout
    loud = index("--verbose")  # the bad file is read again (it failed), and pypdf's line printed
    assert "rag: EOF marker not found" in loud.stderr and "[pypdf: EOF marker not found]" in loud.stdout


def test_a_pdfs_line_breaks_inside_a_quote_are_spaces_in_the_shown_answer() -> None:
    import io

    from rag.cli.console import print_answer
    from rag.types import Answer, AnswerSentence, AnswerSpan, Citation

    quote = "The council will spend £48.3\nmillion on a new\nleisure centre."
    answer = Answer(
        question="How much will the council spend?", query="How much will the council spend?",
        text=f"{quote} [1]", answerable=True, sentences=(AnswerSentence(quote, (1,), 1.0, True),),
        citations=(Citation(1, "d", "Budget", "budget.pdf", None, 100, 100 + len(quote), quote, 1.0),),
        passages=(), timings_ms={}, answerer="extractive",
        answer_span=AnswerSpan(1, "d", 100 + quote.index("£"), 100 + quote.index(" on"), "£48.3\nmillion", "number"),
    )  # fmt: skip
    out = io.StringIO()
    print_answer(answer, out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Answer: **£48.3 million**"
    assert lines[2] == "The council will spend **£48.3 million** on a new leisure centre. [1]"
    assert answer.citations[0].quote == quote  # the quote keeps its exact text and offsets
    from ui.render import answer_message, copy_text

    assert "£48.3 million" in copy_text(answer).splitlines()[0]
    assert "\n" not in answer_message(answer).split('<span class="rag-copy-text">')[0]
