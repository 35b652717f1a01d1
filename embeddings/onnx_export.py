"""Export a sentence-transformers model to ONNX once, for the ONNX Runtime encoder.

    python -m embeddings.onnx_export [--model NAME_OR_FOLDER] [--force]

The export runs on this machine from the installed model (no download) and is cached in
``$XDG_CACHE_HOME/rag-articles/onnx`` (``~/.cache`` by default), in a folder named after the
model and a fingerprint of its files and of the tool versions, so a changed model or a new
onnxruntime gives a new export instead of a stale one. The encoder calls :func:`exported`
itself on first use; `make` runs this module at install time so that no question waits for it.

Steps (about 15 s on two cores, with torch):
1. the transformer is traced to ONNX (opset 17) with eager attention, which ONNX Runtime's
   BERT optimizer recognises;
2. for BERT-type models that optimizer fuses attention, layer norms and GELU (``model.onnx``);
3. ``model-int8.onnx`` is the same graph with weights quantised to int8 per channel and
   activations quantised on the fly (onnxruntime's dynamic quantisation).
The tokenizer (``tokenizer.json``) and the pooling settings (``encoder.json``) are saved beside
them, so running the export needs neither torch nor sentence-transformers.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

# Bump when the steps above change, so caches made by older code are not reused.
EXPORT_VERSION = 1
FP32_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
SETTINGS_FILE = "encoder.json"
POOLINGS = ("mean", "cls")


class ExportError(RuntimeError):
    """The model cannot be exported to ONNX; the message says why and what to use instead."""


@dataclass(frozen=True)
class EncoderSettings:
    """What the ONNX encoder needs besides the graph: how sentence-transformers pooled."""

    pooling: str
    normalize: bool
    max_seq_length: int
    dim: int
    inputs: tuple[str, ...]

    @classmethod
    def read(cls, folder: Path) -> EncoderSettings:
        data = json.loads((folder / SETTINGS_FILE).read_text(encoding="utf-8"))
        return cls(**{**data, "inputs": tuple(data["inputs"])})


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rag-articles" / "onnx"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"


def fingerprint(model_dir: Path) -> str:
    """Names, sizes and modification times of the model's files, and the exporting tools'
    versions: cheap to compute on every start (no file is read), and any change gives a new one."""
    digest = hashlib.sha256(f"v{EXPORT_VERSION} onnxruntime {_version('onnxruntime')}".encode())
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(model_dir)} {stat.st_size} {int(stat.st_mtime)}\n".encode())
    return digest.hexdigest()[:16]


def export_folder(model_dir: Path) -> Path:
    # The bundled model sits in a folder called "model"; its parent names it.
    name = "-".join(model_dir.parts[-2:]) if model_dir.name == "model" else model_dir.name
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[-60:]
    return cache_root() / f"{slug}-{fingerprint(model_dir)}"


def exported(model_dir: Path, *, force: bool = False) -> Path:
    """The folder holding ``model_dir``'s export, made now if it is not cached yet."""
    folder = export_folder(model_dir)
    if (folder / SETTINGS_FILE).exists() and not force:
        return folder
    print(f"Exporting the embedding model to ONNX once (about 15 s): {folder}", file=sys.stderr, flush=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(folder.parent)
    # Built in a temporary folder and renamed into place: a killed export leaves no half-written
    # model behind, and of two processes exporting at once the second simply uses the first's.
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
    try:
        _export(model_dir, work)
        if force and folder.exists():
            shutil.rmtree(folder)
        with contextlib.suppress(OSError):
            work.rename(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not (folder / SETTINGS_FILE).exists():  # pragma: no cover - the rename failed for another reason
        raise ExportError(f"could not write the ONNX export to {folder}")
    return folder


def _remove_abandoned(root: Path) -> None:
    """Drop work folders of exports killed more than an hour ago (about 110 MB each)."""
    cutoff = time.time() - 3600
    for work in root.glob(".export-*"):
        with contextlib.suppress(OSError):
            if work.stat().st_mtime < cutoff:
                shutil.rmtree(work, ignore_errors=True)


def _export(model_dir: Path, out: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # "Loading weights" is noise here

    try:
        model = SentenceTransformer(str(model_dir), device="cpu", model_kwargs={"attn_implementation": "eager"})
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot load a sentence-transformers model from {model_dir}: {exc}") from exc
    transformer: Any = model[0].auto_model
    transformer.eval()
    tokenizer: Any = model.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise ExportError(f"{model_dir} has no fast tokenizer (tokenizer.json); use encoder_backend = 'torch'")
    tokenizer.backend_tokenizer.save(str(out / TOKENIZER_FILE))
    sample = tokenizer(["a question", "a somewhat longer passage of text"], padding=True, return_tensors="pt")
    names = tuple(n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample)
    settings = _settings(model, names)

    class Hidden(torch.nn.Module):
        """The transformer's last hidden state from positional inputs, as ONNX wants them."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = transformer

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, inputs, strict=True))).last_hidden_state  # type: ignore[no-any-return]

    raw = out / "raw.onnx"
    axes = {name: {0: "batch", 1: "tokens"} for name in (*names, "last_hidden_state")}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python conditionals and index ops
        torch.onnx.export(
            Hidden(),
            tuple(sample[n] for n in names),
            str(raw),
            input_names=list(names),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,  # the TorchScript exporter needs no onnxscript and gives a graph the optimizer knows
        )
    config = transformer.config
    if config.model_type == "bert":
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(
            str(raw), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size
        )
        optimized.save_model_to_file(str(out / FP32_FILE))
        raw.unlink()
    else:
        raw.rename(out / FP32_FILE)
    quantize_int8(out / FP32_FILE, out / INT8_FILE)
    (out / SETTINGS_FILE).write_text(json.dumps(asdict(settings), indent=1))


def _settings(model: Any, inputs: tuple[str, ...]) -> EncoderSettings:
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    modules = list(model)
    pooling = next((m for m in modules if isinstance(m, Pooling)), None)
    mode = getattr(pooling, "pooling_mode", None) if pooling is not None else None
    if mode not in POOLINGS or any(not isinstance(m, Pooling | Normalize) for m in modules[1:]):
        raise ExportError(
            f"the ONNX encoder handles models made of a transformer, {' or '.join(POOLINGS)} pooling and "
            f"normalisation; this one has {[type(m).__name__ for m in modules]}. Use encoder_backend = 'torch'"
        )
    return EncoderSettings(
        pooling=str(mode),
        normalize=any(isinstance(m, Normalize) for m in modules),
        max_seq_length=int(model.max_seq_length),
        dim=int(model.get_embedding_dimension()),
        inputs=inputs,
    )


def quantize_int8(source: Path, target: Path) -> None:
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing" advice, printed per call
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,  # 0.96 worst-case cosine to torch on the dev sets, against 0.75 per tensor
        # The fused operators come from onnxruntime's own domain, which ONNX's shape inference
        # does not know; their outputs are float.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def main(argv: list[str] | None = None) -> None:
    from embeddings.models import BUNDLED_MODEL, ModelLoadError, model_folder

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=BUNDLED_MODEL, help="a sentence-transformers folder (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="export again even when a cached export exists")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        folder = exported(model_folder(args.model), force=args.force)
    except (ExportError, ModelLoadError) as exc:
        parser.exit(1, f"error: {exc}\n")
    print(folder)


if __name__ == "__main__":
    main()
