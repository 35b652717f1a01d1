"""Every command the README shows in a block marked <!-- tested --> runs, in order, as a user
would type it (bash, the installed `rag`, the real model), in a fresh folder holding a copy of
examples/. Each must exit 0 without a traceback; a few outputs are checked for what the README
says they print. `rag serve` lines are started, must answer over HTTP, and are stopped."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rag.cli import build_parser
from tests.conftest import REPO, served_url, start_server, wait_for_http

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
# What a line's output must hold (the README shows it), by the line's start.
EXPECTED = {
    'rag ask "What rate did the Fed keep?"': "Answer: **3.75%**",
    "rag list   ": "1–6 of 6 documents",
    "rag show fed": "Fed holds rates steady as inflation cools",
    'rag ask "How many workers are employed': "Sept. 18, 2026: The project now employs about **2,300** workers",
    'rag ask "How much will the Harbor Street': "Sources differ on Sept. 18, 2026: Harbor Herald:",
    "rag timeline": "changed: $2.1 billion",
    "rag show examples/stories": "2026-09-18, from the printed Updated line",
    "cp examples/stories": "already indexed as tunnel-march-",
    "printf 'How much will the Riverside": "(searched for: Who will pay for two thirds of Riverside bridge repairs?)",
    "rag list --title bridge --json": '"title": "Riverside bridge repairs to start in spring"',
    'rag remove "Researchers sequence"': "Removed 1 document: genome-",
    "RAG_CHUNK_TOKENS=192 rag status": "chunk tokens 192",
    "rag --version": "rag 0.",
    "python -c 'from rag import RAG": "Who will pay for two thirds of Riverside bridge repairs?",
    "RAG_ALLOW_PRIVATE_URLS=true rag index http": "1 new document is a copy of an article already indexed",
    'rag ask "How many dengue cases': "also published by: Riverside Local News (https://riverside.example/2026/dengue/)",
    "RAG_ALLOW_PRIVATE_URLS=true timeout": "5 added, 0 updated, 3 unchanged, 0 removed",
    'rag ask "How much will the bridge repairs cost?" --index-dir milvus-index': "Answer: **14.2 million euros**",
    "rag status --index-dir milvus-index": "backend milvus milvus uri milvus-index/milvus.db",
}


def readme_commands(readme: str) -> list[str]:
    """The lines of every ```sh block right after a <!-- tested --> marker, and each such
    ```python block as one `python -c` command, in the README's order."""
    commands: list[str] = []
    for kind, block in re.findall(r"<!-- tested -->\n```(sh|python)\n(.*?)```", readme, re.DOTALL):
        if kind == "python":
            commands.append(f"python -c {shlex.quote(block)}")
            continue
        lines = [line.strip() for line in block.splitlines()]
        commands += [line for line in lines if line and not line.startswith(("#", ". .venv/bin/activate"))]
    return commands


def test_the_readme_shows_every_command_and_tests_most_blocks() -> None:
    commands = readme_commands((REPO / "README.md").read_text())
    subcommands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    shown = {m.group(1) for line in commands for m in re.finditer(r"\brag ([a-z]+)", line)}
    assert set(subcommands) <= shown, f"no tested README line runs: {sorted(set(subcommands) - shown)}"
    assert len(commands) >= 30


def test_every_tested_readme_command_runs(tmp_path: Path) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAG_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    outputs: dict[str, str] = {}
    background: list[subprocess.Popen[bytes]] = []
    try:
        run_all(tmp_path, env, outputs, background)
    finally:
        for proc in background:
            proc.terminate()
            proc.wait(10)
    for start, expected in EXPECTED.items():
        (line,) = [line for line in outputs if line.startswith(start)]
        assert expected in " ".join(outputs[line].split()), f"{line} printed:\n{outputs[line][-2000:]}"
    assert len(json.loads((tmp_path / "bridge.json").read_text())["turns"]) == 3
    assert "_shtab_rag" in (tmp_path / "rag-completion.bash").read_text()
    made = {p.name for p in tmp_path.iterdir()}
    assert {"runs", "squad-index", "rag-192", ".rag", "web-index", "milvus-index"} <= made


def run_all(
    tmp_path: Path, env: dict[str, str], outputs: dict[str, str], background: list[subprocess.Popen[bytes]]
) -> None:
    for line in readme_commands((REPO / "README.md").read_text()):
        if line.startswith("rag serve"):
            outputs[line] = serve(line, tmp_path, env)
            continue
        if line.split("#")[0].rstrip().endswith("&"):
            # A server the next lines use (python -m http.server ... &): started as the line says,
            # stopped when the test ends, as `kill %1` would.
            command = line.split("#")[0].rstrip().removesuffix("&")
            log = tmp_path / "background.log"
            background.append(start_server(["bash", "-c", f"cd {tmp_path} && exec {command}"], log, env))
            port = re.search(r"http\.server (\d+)", command)
            if port:
                wait_for_http(f"http://127.0.0.1:{port.group(1)}/", background[-1], command, log)
            continue
        started = time.monotonic()
        done = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        print(f"{time.monotonic() - started:5.1f} s  {line[:100]}")
        assert done.returncode == 0 and "Traceback" not in done.stderr, (
            f"{line}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
        outputs[line] = done.stdout + done.stderr


def serve(line: str, cwd: Path, env: dict[str, str]) -> str:
    """Start a README `rag serve` line on a free port, check that it answers, stop it."""
    log = cwd / f"serve-{len(list(cwd.glob('serve-*.log')))}.log"
    command = line.split("#")[0].strip() + " --port 0"  # any free port; the server prints which
    proc = start_server(["bash", "-c", f"cd {cwd} && exec {command}"], log, env)
    try:
        url = served_url(proc, log, command)
        key = "alice:secret" if "--auth alice:secret" in line else "any"
        models = httpx.get(url + "v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert models.status_code == 200 and models.json()["data"][0]["id"] == "rag"
        if "--collection papers=" in line:
            assert [m["id"] for m in models.json()["data"]] == ["rag", "papers"]
        if "--auth" in line:
            assert httpx.get(url + "v1/models", timeout=30).status_code == 401
    finally:
        proc.terminate()
        proc.wait(30)
    return log.read_text()
