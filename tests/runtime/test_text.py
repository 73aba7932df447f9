"""End-to-end text classification through a runner, and `trt-edge run --onnx`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.runtime.ort import OnnxRuntimeRunner
from trt_edge.runtime.text import TextClassifier, softmax
from trt_edge.tasks.spec import preprocessor_dir as find_tokenizer

from .texts import DEMO_TEXTS

TEXTS = DEMO_TEXTS


def test_student_classifies_like_pytorch(student_onnx_file: Path, minilm_student_dir: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_student_dir)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_student_dir).eval()
    with torch.inference_mode():
        ref = model(**tok(TEXTS, padding=True, truncation=True, max_length=64, return_tensors="pt")).logits.numpy()
    classifier = TextClassifier.from_model_file(OnnxRuntimeRunner(student_onnx_file), student_onnx_file,
                                                minilm_student_dir, max_length=64, batch_size=4)
    predictions = classifier.classify(TEXTS)
    assert [p.index for p in predictions] == ref.argmax(-1).tolist()
    labels = [model.config.id2label[i] for i in ref.argmax(-1)]
    assert [p.label for p in predictions] == labels
    for p in predictions:
        assert abs(sum(p.probabilities.values()) - 1) < 1e-4
    np.testing.assert_allclose(classifier.logits(TEXTS), ref, atol=1e-3)


def test_tokenizer_discovery(tiny_onnx: Path, tiny_bert_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TrtEdgeError, match="pass --tokenizer"):
        find_tokenizer(tiny_onnx)
    assert find_tokenizer(tiny_onnx, tiny_bert_dir) == tiny_bert_dir
    with pytest.raises(TrtEdgeError, match="no tokenizer files"):
        find_tokenizer(tiny_onnx, tmp_path)
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "tokenizer" / "vocab.txt").write_text("[PAD]\n")
    assert find_tokenizer(tmp_path / "model.plan") == tmp_path / "tokenizer"


def test_softmax_is_stable() -> None:
    p = softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0]])


def test_cli_run_onnx(tiny_onnx: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trt_edge.cli import main

    main(["run", "--onnx", str(tiny_onnx), "--tokenizer", str(tiny_bert_dir), "--text", "so happy today"])
    line = json.loads(capsys.readouterr().out.strip())
    assert line["label"] in ("negative", "neutral", "positive")
    assert set(line["probabilities"]) == {"negative", "neutral", "positive"}
    with pytest.raises(SystemExit) as info:
        main(["run", "--onnx", str(tiny_onnx), "--engine", "x.plan", "--text", "hi"])
    assert info.value.code == 2


def test_cli_run_engine_without_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trt_edge.cli import main

    plan = tmp_path / "model.plan"
    plan.write_bytes(b"not checked without a manifest")
    with pytest.raises(SystemExit) as info:
        main(["run", "--engine", str(plan), "--text", "hi"])
    assert info.value.code == 2
    assert "manifest missing" in capsys.readouterr().err
