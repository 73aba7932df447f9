"""The qat stage on the real 3-layer MiniLM student and its calibrate folder: QAT runs, its Q/DQ model
passes the placement audit PTQ's passes and runs in ONNX Runtime, fp32/PTQ/QAT are paired on one test
split; `auto` passes PTQ's model on untouched when PTQ needs no help; bad inputs fail before training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trt_edge.config import RunConfig
from trt_edge.errors import TrtEdgeError
from trt_edge.quantize import evaluate, placement
from trt_edge.quantize.config import PlacementConfig
from trt_edge.quantize.qat_stage import quantization_aware
from trt_edge.stats import load_predictions

from .helpers import calibrate_config
from .test_placement import check_trt_contract


def _config(data_config: Any, tokenizer: Path, **qat: Any) -> RunConfig:
    base = calibrate_config(data_config, tokenizer, targets=["tensorrt", "cpu"], cpu={"runs": 3})
    return RunConfig({**base.raw, "qat": {"train": {"max_steps": 3, "batch_size": 16}, **qat}})


def test_qat_stage_runs_and_writes_an_audited_qdq_model(student_run: tuple[Path, Any], minilm_student_dir: Path,
                                                        student_onnx: Path, demo_data_config: Any,
                                                        tmp_path: Path) -> None:
    import onnx

    cal_dir, _ = student_run
    cfg = _config(demo_data_config, minilm_student_dir, when="always")
    record = quantization_aware(cfg, cal_dir, minilm_student_dir, tmp_path / "qat", onnx=student_onnx)
    m = record.metrics
    assert m["qat_ran"] and m["deployed"] in ("qat", "ptq") and m["qat_float_layers"] == []
    out = tmp_path / "qat"
    qmodel = onnx.load(str(out / "model.qat.onnx"))
    plan = placement.plan_placement(onnx.load(str(student_onnx)), PlacementConfig())
    assert m["quantized_nodes"] == len(plan.nodes)  # every planned layer INT8: no float fallback
    check_trt_contract(qmodel, plan)  # the audit PTQ's model passes: placement, scales, per-channel weights
    preds = load_predictions(out / "test_predictions.npz")
    assert {"fp32", "ptq", "qat", "int8", "labels"} <= set(preds)
    assert len({v.shape[0] for v in preds.values()}) == 1
    # ONNX Runtime runs the QAT model and agrees with what the stage recorded.
    sess = evaluate.session(qmodel)
    assert np.isfinite(preds["qat"]).all() and sess.get_outputs()[0].name == "logits"
    for key in ("fp32_accuracy", "ptq_accuracy", "qat_accuracy"):
        assert 0.0 <= m[key] <= 1.0
    assert m["gate"]["n"] == len(preds["labels"])
    deployed = (out / "model.int8.onnx").read_bytes()
    assert deployed == ((out / "model.qat.onnx").read_bytes() if m["deployed"] == "qat"
                        else (cal_dir / "model.int8.onnx").read_bytes())


def test_qat_auto_passes_ptq_on(student_run: tuple[Path, Any], minilm_student_dir: Path, student_onnx: Path,
                                demo_data_config: Any, tmp_path: Path) -> None:
    cal_dir, _ = student_run
    cfg = _config(demo_data_config, minilm_student_dir, when="auto", trigger=100.0)
    record = quantization_aware(cfg, cal_dir, minilm_student_dir, tmp_path / "qat", onnx=student_onnx)
    assert not record.metrics["qat_ran"] and record.metrics["deployed"] == "ptq"
    assert (tmp_path / "qat" / "model.int8.onnx").read_bytes() == (cal_dir / "model.int8.onnx").read_bytes()


def test_qat_refuses_another_onnx_before_training(student_run: tuple[Path, Any], minilm_student_dir: Path,
                                                  tiny_bert_onnx: Path, demo_data_config: Any,
                                                  tmp_path: Path) -> None:
    cal_dir, _ = student_run
    cfg = _config(demo_data_config, minilm_student_dir, when="always")
    with pytest.raises(TrtEdgeError, match="sha256 differs"):
        quantization_aware(cfg, cal_dir, minilm_student_dir, tmp_path / "qat", onnx=tiny_bert_onnx)
    with pytest.raises(TrtEdgeError, match="not a finished calibrate stage"):
        quantization_aware(cfg, tmp_path, minilm_student_dir, tmp_path / "qat2", onnx=tiny_bert_onnx)
    assert not (tmp_path / "qat").exists()
