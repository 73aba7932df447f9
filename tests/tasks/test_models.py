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


def test_pickle_side_doors_and_broken_weights_are_refused(tmp_path: Path, tiny_bert_dir: Path) -> None:
    from trt_edge.guard import weight_hashes

    # A pickle next to an unrelated .safetensors file: not model.safetensors, so transformers would
    # take the pickle; refused before transformers sees it.
    side = tmp_path / "side"
    shutil.copytree(tiny_bert_dir, side)
    (side / "model.safetensors").rename(side / "adapter.safetensors")
    (side / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(TrtEdgeError, match="pickled"):
        load_classifier(side, LABELS)
    (side / "pytorch_model.bin").unlink()
    with pytest.raises(TrtEdgeError, match=r"no model\.safetensors"):
        load_classifier(side, LABELS)
    # With model.safetensors present the pickle is never read (use_safetensors=True): it loads.
    (side / "adapter.safetensors").rename(side / "model.safetensors")
    (side / "pytorch_model.bin").write_bytes(b"not even a pickle")
    assert load_classifier(side, LABELS).head_trained
    # A shard index that points outside the folder.
    outside = tmp_path / "outside"
    shutil.copytree(tiny_bert_dir, outside)
    (outside / "model.safetensors").rename(tmp_path / "elsewhere.safetensors")
    for target in ("../elsewhere.safetensors", str(tmp_path / "elsewhere.safetensors"), "sub/x.safetensors"):
        (outside / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": target}}))
        with pytest.raises(TrtEdgeError, match="outside"):
            load_classifier(outside, LABELS)
    # Truncated, random and empty weights: one clear line, never a SafetensorError.
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bert_dir, broken)
    data = (broken / "model.safetensors").read_bytes()
    for content in (data[: len(data) // 2], b"\x07" * 4096, b"", data[:6]):
        (broken / "model.safetensors").write_bytes(content)
        with pytest.raises(TrtEdgeError, match=r"truncated|not a safetensors"):
            load_classifier(broken, LABELS)
    hashes = weight_hashes(tiny_bert_dir, "model")
    assert list(hashes) == ["model/model.safetensors"] and len(hashes["model/model.safetensors"]) == 64


def test_a_folder_without_tokenizer_files_is_refused(tmp_path: Path, tiny_bert_dir: Path) -> None:
    folder = tmp_path / "notok"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(tiny_bert_dir / name, folder / name)
    with pytest.raises(TrtEdgeError, match="no vocabulary"):
        load_classifier(folder, LABELS)
