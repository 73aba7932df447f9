"""Fixtures of the runtime tests: ONNX files exported from the shared model fixtures.

The export area's `student_onnx` fixture is used when it exists; until then the student is exported here
with `torch.onnx.export` (TorchScript exporter: seconds, where the dynamo exporter takes ~20 s).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


def export_classifier(model_dir: Path, out: Path) -> Path:
    """Export a Hugging Face sequence classifier to `out/model.onnx` with dynamic batch and sequence."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    enc = tok(["a first example", "and a somewhat longer second example"], padding=True, return_tensors="pt")
    names = [n for n in INPUTS if n in enc]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["logits"] = {0: "batch"}
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, tuple(enc[n] for n in names), str(path), input_names=names,
                          output_names=["logits"], dynamic_axes=axes, opset_version=17, dynamo=False)
    return path


@pytest.fixture(scope="session")
def tiny_onnx(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    """The random 2-layer tiny BERT as ONNX (fast; for interface tests): the shared `tiny_bert_onnx`
    fixture when present, else exported here."""
    try:
        return Path(request.getfixturevalue("tiny_bert_onnx"))
    except pytest.FixtureLookupError:
        return export_classifier(tiny_bert_dir, tmp_path_factory.mktemp("tiny-onnx"))


@pytest.fixture(scope="session")
def student_onnx_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                      minilm_student_dir: Path) -> Path:
    """The real exported student: the export area's `student_onnx` fixture when present, else exported here."""
    try:
        found = request.getfixturevalue("student_onnx")
    except pytest.FixtureLookupError:
        return export_classifier(minilm_student_dir, tmp_path_factory.mktemp("student-onnx"))
    path = Path(found)
    return path / "model.onnx" if path.is_dir() else path
