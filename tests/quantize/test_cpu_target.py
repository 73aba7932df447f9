"""The CPU target (issue 10): candidates from the same calibration set, portable, measured, the winner within
the accuracy budget. The real student is calibrated once in test_stage.py with targets [tensorrt, cpu]."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import pytest

from trt_edge.config import RunConfig


def test_cpu_candidates_are_built_portable_and_the_winner_is_within_budget(
        student_run: tuple[Path, Any]) -> None:
    out, record = student_run
    m = record.metrics
    table = {c["name"]: c for c in json.loads((out / "cpu_candidates.json").read_text())["candidates"]}
    for name in ("fp32", "dynamic-int8", "u8s8-qdq"):
        assert table[name]["path"], table[name]["note"]
        assert table[name]["accuracy"] is not None and "b1s64" in table[name]["latency_ms"]
    assert table["fp32"]["agreement"] == 1.0
    # Our attention fusion found all three blocks of the real student (ONNX Runtime's optimizer finds none).
    assert "attention Attention×3" in table["fused"]["note"], table["fused"]["note"]
    # Every file is timed under each session variant as well, as its own row.
    assert {"fp32/no-sln", "fused-dynamic-int8/no-sln"} <= set(table)
    assert table["fused-dynamic-int8/no-sln"]["disabled_optimizers"] == ["SkipLayerNormFusion"]
    # int8 embeddings too: the dynamic candidates are well under half the fp32 file (weights are 4x smaller)
    assert table["fused-dynamic-int8"]["bytes"] < 0.4 * table["fp32"]["bytes"]
    assert "b1s128" in table["fused-dynamic-int8/no-sln"]["latency_ms"]
    winner = table[m["cpu_artifact"]]
    assert winner["passed"] and (table["fp32"]["accuracy"] - m["cpu_accuracy"]) * 100 <= 1.0
    cpu = onnx.load(str(out / record.artifacts["onnx_cpu"]))
    ops = {n.op_type for n in cpu.graph.node}
    assert not any(op.startswith("NCHWc") or op == "ReorderInput" for op in ops)  # portable graph level
    # The session variant that won travels with the file (and only then).
    from trt_edge.runtime.ort import DISABLED_OPTIMIZERS_KEY

    hint = {p.key: p.value for p in cpu.metadata_props}.get(DISABLED_OPTIMIZERS_KEY, "")
    assert hint.split(",") == winner["disabled_optimizers"] if hint else winner["disabled_optimizers"] == []
    assert m["cpu_disabled_optimizers"] == winner["disabled_optimizers"]
    # The TensorRT artifact is still the signed Q/DQ model; the CPU one is a different file.
    assert record.artifacts["onnx"] == "model.int8.onnx" and record.artifacts["onnx_cpu"] == "model.cpu.onnx"


def test_cpu_only_target_writes_no_tensorrt_artifacts(tiny_bert_onnx: Path, tiny_bert_dir: Path,
                                                      demo_data_config: Any, tmp_path: Path) -> None:
    from trt_edge.quantize.stage import run

    cfg = RunConfig({"task": {"max_length": 32, "data": demo_data_config.to_dict()},
                     "calibrate": {"targets": ["cpu"], "data": {"samples": 32}, "tokenizer": str(tiny_bert_dir),
                                   "cpu": {"runs": 2, "candidates": ["fp32", "dynamic-int8", "u8s8-qdq"],
                                           "budget": 100.0}}})
    record = run(cfg, tiny_bert_onnx, tmp_path / "cpu")
    assert set(record.artifacts) == {"onnx_cpu", "cpu_candidates", "calibration_data", "predictions",
                                     "preprocessor"}
    assert not (tmp_path / "cpu" / "model.int8.onnx").exists()
    qdq = onnx.load(str(tmp_path / "cpu" / "model.cpu.onnx"))
    if record.metrics["cpu_artifact"] == "u8s8-qdq":
        inits = {i.name: i for i in qdq.graph.initializer}
        zps = [inits[n.input[2]] for n in qdq.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
        assert zps and all(z.data_type == onnx.TensorProto.UINT8 for z in zps)


def test_a_candidate_lost_to_an_unexpected_exception_is_a_stage_warning(
        tiny_bert_onnx: Path, tiny_bert_dir: Path, demo_data_config: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 33 item 4: a bug that costs a candidate (here a TypeError) is a WARNING naming the exception in
    the log and in stage.json's `warnings`; a known refusal (TrtEdgeError) stays a quiet reason."""
    from trt_edge.errors import TrtEdgeError
    from trt_edge.quantize import cpu_target
    from trt_edge.quantize.stage import run
    from trt_edge.stage import read_stage

    def bug(*_: Any) -> str:
        raise TypeError("'NodeProto' object is not subscriptable")

    def refusal(*_: Any) -> str:
        raise TrtEdgeError("not applicable to this graph")

    import logging

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.INFO)
            self.records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    collect = Collect()
    logging.getLogger("trt_edge").addHandler(collect)
    monkeypatch.setattr(cpu_target, "_u8s8", bug)
    monkeypatch.setattr(cpu_target, "_dynamic", refusal)
    cfg = RunConfig({"task": {"max_length": 32, "data": demo_data_config.to_dict()},
                     "calibrate": {"targets": ["cpu"], "data": {"samples": 16}, "tokenizer": str(tiny_bert_dir),
                                   "cpu": {"runs": 2, "candidates": ["fp32", "dynamic-int8", "u8s8-qdq"],
                                           "budget": 100.0}}})
    try:
        record = run(cfg, tiny_bert_onnx, tmp_path / "cpu")
    finally:
        logging.getLogger("trt_edge").removeHandler(collect)
    expected = "CPU candidate u8s8-qdq not built: unexpected TypeError: 'NodeProto' object is not subscriptable"
    assert record.metrics["warnings"] == [expected]
    assert read_stage(tmp_path / "cpu")["metrics"]["warnings"] == [expected]
    table = {c["name"]: c for c in record.metrics["cpu_candidates"]}
    assert table["u8s8-qdq"]["error"] == "TypeError: 'NodeProto' object is not subscriptable"
    assert table["dynamic-int8"]["error"] is None and "not applicable" in table["dynamic-int8"]["note"]
    warned = [r.getMessage() for r in collect.records
              if r.levelno == logging.WARNING and "CPU candidate" in r.getMessage()]
    assert len(warned) == 1 and "u8s8-qdq" in warned[0] and "TypeError" in warned[0], warned


def test_cpu_candidates_print_no_onnxruntime_noise(tiny_bert_onnx: Path, tmp_path: Path,
                                                   capfd: pytest.CaptureFixture[str],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Issue 33 item 8: ONNX Runtime's quantizer asks for its pre-processing script and its optimizer for a
    `pytorch` producer, 3-4 times per calibrate; the user can act on neither. None of it reaches stderr, and
    no root logging handler is left behind by the quantizer's `logging.warning()`."""
    import logging

    import numpy as np

    from trt_edge.quantize.cpu_target import build_candidates

    handlers = list(logging.getLogger().handlers)
    rng = np.random.default_rng(0)
    feeds = [{"input_ids": rng.integers(5, 90, (2, 16)).astype(np.int64),
              "attention_mask": np.ones((2, 16), np.int64), "token_type_ids": np.zeros((2, 16), np.int64)}
             for _ in range(2)]
    built = build_candidates(tiny_bert_onnx, feeds, tmp_path / "work")
    assert all(c.path is not None for c in built), [c.note for c in built]
    # Under pytest the root logger has pytest's handlers, so library records land in caplog, not stderr.
    err = capfd.readouterr().err + "\n".join(r.getMessage() for r in caplog.records)
    for noise in ("pre-processing", "Model producer not matched", "WARNING:root"):
        assert noise not in err, err
    assert logging.getLogger().handlers == handlers


@pytest.mark.parametrize("bad", [{"candidates": ["fp32", "turbo"]}, {"candidates": ["dynamic-int8"]}])
def test_bad_cpu_config(bad: dict[str, Any]) -> None:
    from trt_edge.errors import TrtEdgeError

    with pytest.raises(TrtEdgeError, match=r"CPU candidate|must include fp32"):
        RunConfig({"calibrate": {"cpu": bad}}).section("calibrate")


def test_size_decides_between_candidates_equally_fast() -> None:
    """Issue 15: a 125 MB fp32 fusion and a 53 MB dynamic INT8 file at the same speed within noise: the
    smaller wins; a clearly faster one still wins whatever its size; failing or slower ones never do."""
    from trt_edge.quantize.cpu_target import LATENCY_NOISE, CpuCandidate, smallest_within_noise

    def cand(name: str, ms: float, mb: float, passed: bool = True, variant: bool = False) -> CpuCandidate:
        return CpuCandidate(name, Path(f"{name}.onnx"), latency_ms={"b1s64": ms, "b1s128": 2 * ms},
                            passed=passed, bytes=int(mb * 1e6),
                            disabled_optimizers=["SkipLayerNormFusion"] if variant else [])

    fused = cand("fused", 1.00, 124.6)
    tie = 1.0 + LATENCY_NOISE / 2
    dyn = cand("dynamic-int8", tie, 53.1)
    tiny_but_slow = cand("u8s8-qdq", 1.0 + 3 * LATENCY_NOISE, 20.0)
    failed = cand("fused-dynamic-int8", 0.99, 10.0, passed=False)
    variant = cand("dynamic-int8/no-sln", tie, 5.0, variant=True)  # not re-evaluated: never a tie-winner
    assert smallest_within_noise([fused, dyn, tiny_but_slow, failed, variant], fused) is dyn
    assert smallest_within_noise([fused, tiny_but_slow], fused) is fused
    assert smallest_within_noise([dyn, fused], dyn) is dyn
