"""The calibrate stage end to end: the real exported MiniLM student (INT8 in ONNX Runtime agrees with
fp32, TensorRT contract, cache, stage.json), the mixed-precision gate on a tiny model, and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trt_edge.config import RunConfig
from trt_edge.errors import TrtEdgeError
from trt_edge.quantize.cache import read_cache

from .helpers import calibrate_config as _config
from .test_placement import check_trt_contract


def test_student_int8_agrees_with_fp32_and_keeps_accuracy(student_run: tuple[Path, Any], student_onnx: Path) -> None:
    import onnx

    from trt_edge.quantize import placement
    from trt_edge.quantize.config import GateConfig, PlacementConfig

    out, record = student_run
    m = record.metrics
    assert m["fp32_accuracy"] > 0.55  # the fixture's head is well above chance (3 classes)
    assert m["argmax_agreement"] >= 0.85
    assert m["fp32_accuracy"] - m["int8_accuracy"] <= 0.01 + 1e-9 and m["gate_passed"]
    assert m["method"] == "entropy" and m["calibration_samples"] == 128
    # The gate's accounting, not one CPU's numerics: which layers the fallback leaves float depends on the
    # machine's rounding, but quantized + gate-float = every planned layer, and the BMMs always stay float.
    plan = placement.plan_placement(onnx.load(str(student_onnx)), PlacementConfig())
    ranges = json.loads((out / "calibration.json").read_text())
    gate_float = ranges["float_layers"]
    assert set(gate_float) <= set(plan.node_names()) and len(gate_float) <= GateConfig().max_float_layers
    assert m["quantized_nodes"] + len(gate_float) == len(plan.nodes) == 20
    assert m["float_nodes"] == len(plan.skipped) + len(gate_float) and len(plan.skipped) == 6
    assert set(gate_float) <= set(m["excluded_layers"])
    for key in ("ort_latency_ms_fp32", "ort_latency_ms_int8"):
        assert m[key] > 0
    stage = json.loads((out / "stage.json").read_text())
    assert set(stage["artifacts"]) == {"onnx", "calibration_cache", "calibration_data", "ranges", "onnx_cpu",
                                      "cpu_candidates", "predictions", "preprocessor"}
    gate = stage["metrics"]["gate"]  # the paired INT8-vs-fp32 table, interval and n
    assert gate["n"] == sum(gate["table"].values()) and gate["interval_points"][0] <= gate["drop_points"]
    assert stage["metrics"]["calibration_sha256"] == _sha(out / "calibration.npz")


def _sha(path: Path) -> str:
    from trt_edge.files import sha256_file

    return sha256_file(path)


def test_student_qdq_model_follows_the_tensorrt_contract(student_run: tuple[Path, Any], student_onnx: Path) -> None:
    import onnx

    from trt_edge.quantize import placement
    from trt_edge.quantize.config import PlacementConfig

    out, _ = student_run
    qmodel = onnx.load(str(out / "model.int8.onnx"))
    plan = placement.plan_placement(onnx.load(str(student_onnx)), PlacementConfig())
    ranges = json.loads((out / "calibration.json").read_text())
    # Layers the accuracy gate left float on this CPU are not quantized, by design: check the others.
    gate_float = set(ranges["float_layers"])
    plan = placement.Placement([p for p in plan.nodes if p.node not in gate_float], plan.skipped)
    check_trt_contract(qmodel, plan)
    per_channel = [p for p in plan.nodes if p.weight]
    assert {p.weight_axis for p in per_channel if p.op_type == "MatMul"} <= {1}
    ranges = json.loads((out / "calibration.json").read_text())
    for tensor in ranges["quantized_activations"]:
        assert ranges["tensors"][tensor]["finite"] and ranges["tensors"][tensor]["amax"] > 0


def test_student_cache_covers_the_graph_and_skips_the_mask(student_run: tuple[Path, Any]) -> None:
    out, record = student_run
    cache = read_cache(out / "calibration.cache", trt_version="10.3")
    ranges = json.loads((out / "calibration.json").read_text())
    assert cache.header == "TRT-100300-EntropyCalibration2"
    assert len(cache.scales) == record.metrics["cache_tensors"] > 50
    for name, scale in cache.scales.items():
        assert np.isfinite(scale) and scale > 0
        assert scale == pytest.approx(ranges["tensors"][name]["amax"] / 127, rel=1e-6)
    assert ranges["not_in_cache"]  # the mask tensors (-inf or finfo.min fill): left out, never given a scale
    for name, why in ranges["not_in_cache"].items():
        assert name not in cache.scales
        assert "mask" in why or not ranges["tensors"][name]["finite"] or ranges["tensors"][name]["amax"] == 0
    for name, scale in cache.scales.items():
        assert scale * 127 < 1e6, name  # no fill value leaked in as a range


def test_tiny_model_gate_and_tensorrt_11_target(tiny_bert_onnx: Path, tiny_bert_dir: Path, demo_data_config: Any,
                                         tmp_path: Path) -> None:
    from trt_edge.quantize.stage import run

    cfg = _config(demo_data_config, tiny_bert_dir, data={"samples": 64}, calibrator={"method": "max"},
                  gate={"budget": 0.0, "max_float_layers": 3, "fail": False}, trt_version="11.0", latency_runs=0)
    record = run(cfg, tiny_bert_onnx, tmp_path / "tiny")
    m = record.metrics
    assert "calibration_cache" not in record.artifacts and "removed implicit" in m["calibration_cache_note"]
    ranges = json.loads((tmp_path / "tiny" / "calibration.json").read_text())
    if m["accuracy_drop_before_fallback"] > 0:  # the random model lost accuracy: the fallback ran
        assert len(ranges["sensitivity"]) == 14 and ranges["fallback_steps"]
        assert m["accuracy_drop_points"] <= m["accuracy_drop_before_fallback"]
        assert set(ranges["float_layers"]) <= set(m["excluded_layers"])
    else:
        assert m["gate_passed"] and not ranges["float_layers"]


def _bad_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_bad_input_is_one_line_exit_2(tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trt_edge.cli import main
    from trt_edge.quantize.stage import resolve_onnx, run

    bad = _bad_onnx(tmp_path / "bad.onnx")
    with pytest.raises(TrtEdgeError, match="expected inputs"):
        run(RunConfig({"calibrate": {"tokenizer": str(tiny_bert_dir)}}), bad, tmp_path / "out")
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", "--onnx", str(bad), "--out", str(tmp_path / "out"), "--tokenizer", str(tiny_bert_dir)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected inputs" in err[0]
    assert not (tmp_path / "out").exists()
    with pytest.raises(TrtEdgeError, match="not found"):
        resolve_onnx(tmp_path / "missing.onnx")
    with pytest.raises(TrtEdgeError, match=r"no stage\.json"):
        resolve_onnx(tmp_path)
    (tmp_path / "garbage.onnx").write_bytes(b"not a model")
    from trt_edge.quantize.stage import load_onnx

    with pytest.raises(TrtEdgeError, match="not a readable ONNX"):
        load_onnx(tmp_path / "garbage.onnx")
    with pytest.raises(TrtEdgeError, match="calibrate: TensorRT version 'ten'"):
        RunConfig({"calibrate": {"trt_version": "ten"}}).section("calibrate")
