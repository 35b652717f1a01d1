"""`rag index --ray`: documents embedded by actors on a real Ray head on 127.0.0.1, started by the
test and stopped by its process group (never `ray stop`, which stops every Ray on the machine)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rag.config import Config, ConfigError
from tests.conftest import NEWS, REPO, free_port, stop_group

pytestmark = pytest.mark.slow
RAY = Path(sys.executable).with_name("ray")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@pytest.fixture(scope="module")
def ray_head() -> Iterator[tuple[str, Path]]:
    """A Ray head with 2 CPUs; yields its address and its session folder (worker logs)."""
    port = free_port()
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    log = temp / "head.log"
    with log.open("wb") as out:
        head = subprocess.Popen(
            [str(RAY), "start", "--head", "--block", "--port", str(port), "--node-ip-address", "127.0.0.1",
             "--num-cpus", "2", "--include-dashboard", "false", "--temp-dir", str(temp), "--disable-usage-stats"],
            env=ENV, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        started = time.monotonic()
        while "Ray runtime started" not in log.read_text(errors="replace"):
            assert head.poll() is None, f"ray start exited:\n{log.read_text()}"
            assert time.monotonic() - started < 120, f"the Ray head did not start:\n{log.read_text()}"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", temp
    finally:
        # SIGTERM to `ray start --block` alone: it drains the node through its GCS and stops its
        # own processes (about 2 s). Sent to the whole group, the GCS died first and the drain
        # waited 30 s for it.
        head.terminate()
        try:
            head.wait(60)
        finally:
            stop_group(head)  # whatever outlived it


def rag(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args], env=ENV, capture_output=True, text=True, timeout=300, cwd=REPO
    )


def vectors(index_dir: Path) -> dict[str, np.ndarray]:
    db = sqlite3.connect(index_dir / "store.sqlite")
    try:
        return {
            h: np.frombuffer(v, dtype=np.float32) for h, v in db.execute("SELECT text_hash, vector FROM embeddings")
        }
    finally:
        db.close()


def test_ray_actors_embed_the_same_vectors_as_one_process(ray_head: tuple[str, Path], tmp_path: Path) -> None:
    address, session = ray_head
    on_ray = rag("index", str(NEWS), "--index-dir", str(tmp_path / "ray"), "--ray", address, "--no-progress")
    assert on_ray.returncode == 0, on_ray.stderr
    assert f"Embedded on the Ray cluster at {address} by 2 workers." in on_ray.stdout
    alone = rag("index", str(NEWS), "--index-dir", str(tmp_path / "alone"), "--no-progress")
    assert alone.returncode == 0, alone.stderr
    got, want = vectors(tmp_path / "ray"), vectors(tmp_path / "alone")
    assert set(got) == set(want) and len(got) >= 10
    assert max(float(np.abs(got[h] - want[h]).max()) for h in want) <= 1e-5
    # The work ran in the cluster's workers: their logs name the actor class.
    logs = " ".join(p.read_text(errors="replace") for p in session.glob("session_*/logs/worker-*.out"))
    assert "_EncoderActor" in logs
    # Nothing new to embed: the cluster is not even contacted.
    again = rag("index", str(NEWS), "--index-dir", str(tmp_path / "ray"), "--ray", address, "--no-progress")
    assert "0 chunks were embedded" in again.stdout and "Ray cluster" not in again.stdout


def test_ray_workers_and_the_address_come_from_settings(ray_head: tuple[str, Path], tmp_path: Path) -> None:
    address, _ = ray_head
    config = tmp_path / "rag.toml"
    config.write_text("ray_workers = 1\n")
    done = subprocess.run(
        [sys.executable, "-m", "rag.cli", "index", str(NEWS / "dengue.md"), "--index-dir", str(tmp_path / "i"),
         "--config", str(config), "--no-progress"],
        env={**ENV, "RAG_RAY_ADDRESS": address}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"Embedded on the Ray cluster at {address} by 1 worker." in done.stdout


def test_an_unreachable_cluster_is_a_one_line_error(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    done = rag("index", str(NEWS), "--index-dir", str(tmp_path / "i"), "--ray", f"127.0.0.1:{port}")
    assert done.returncode == 2
    assert done.stderr.startswith(f"rag: error: cannot reach the Ray cluster at '127.0.0.1:{port}'")
    assert "Traceback" not in done.stderr
    bad = rag("index", str(NEWS), "--index-dir", str(tmp_path / "i"), "--ray", "nonsense")
    assert "must look like HOST:PORT, ray://HOST:PORT or auto" in bad.stderr
    with pytest.raises(ConfigError, match="ray_workers=-1"):
        Config(ray_workers=-1)


def test_the_ray_flags_set_the_settings() -> None:
    from rag.cli import build_parser
    from rag.cli.commands import config_from_args

    both = config_from_args(build_parser().parse_args(["index", "x", "--ray", "10.0.0.5:6379", "--ray-workers", "3"]))
    assert (both.ray_address, both.ray_workers) == ("10.0.0.5:6379", 3)
    bare = config_from_args(build_parser().parse_args(["index", "x", "--ray"]))
    assert (bare.ray_address, bare.ray_workers) == ("auto", 0)
    assert config_from_args(build_parser().parse_args(["index", "x"])).ray_address is None
