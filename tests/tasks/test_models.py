"""Model loading: local folders only, safetensors only, heads detected."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.tasks.models import load_classifier, resolve_model_path

LABELS = ["negative", "neutral", "positive"]


def test_bare_encoder_gets_a_fresh_head(minilm_dir: Path) -> None:
    loaded = load_classifier("demo:minilm", LABELS)
    assert not loaded.head_trained
    assert loaded.model.config.id2label == dict(enumerate(LABELS))
    assert resolve_model_path("demo:minilm") == minilm_dir


def test_saved_head_with_matching_labels_is_trained(tiny_bert_dir: Path) -> None:
    assert load_classifier(tiny_bert_dir, LABELS).head_trained
    other = load_classifier(tiny_bert_dir, ["cat", "dog", "fish"])
    assert not other.head_trained and "re-initialised" in other.head_note
    assert not load_classifier(tiny_bert_dir, ["a", "b"]).head_trained


def test_folder_problems_are_clear(tmp_path: Path, tiny_bert_dir: Path) -> None:
    with pytest.raises(TrtEdgeError, match="model folder not found"):
        load_classifier(tmp_path / "nothing", LABELS)
    with pytest.raises(TrtEdgeError, match=r"no config\.json"):
        load_classifier(tmp_path, LABELS)
    folder = tmp_path / "noweights"
    shutil.copytree(tiny_bert_dir, folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(TrtEdgeError, match="no model weights"):
        load_classifier(folder, LABELS)
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(TrtEdgeError, match="pickled"):
        load_classifier(folder, LABELS)
    bad = tmp_path / "badconfig"
    shutil.copytree(tiny_bert_dir, bad)
    (bad / "config.json").write_text(json.dumps({"model_type": "no-such-arch"}))
    with pytest.raises(TrtEdgeError, match="not a model config"):
        load_classifier(bad, LABELS)
