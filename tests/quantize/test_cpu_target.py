"""CPU-target candidates on the real exported student: built, portable, evaluated, the winner within budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from trt_edge.quantize.calib_data import tokenize_padded
from trt_edge.quantize.cpu_target import build_candidates, latency_feeds, select_cpu_artifact
from trt_edge.tasks.data import load_data


@pytest.fixture(scope="module")
def candidates(student_onnx: Path, minilm_student_dir: Path, demo_data_config, tmp_path_factory):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_student_dir)
    data = load_data(demo_data_config)
    names = [i.name for i in onnx.load(str(student_onnx), load_external_data=False).graph.input]
    calib, _ = tokenize_padded(tok, data.train.texts[:64], 64, names)
    feeds = [{k: v[i:i + 16] for k, v in calib.items()} for i in range(0, 64, 16)]
    built = build_candidates(student_onnx, feeds, tmp_path_factory.mktemp("cpu"))
    arrays, lengths = tokenize_padded(tok, data.test.texts, 64, names)
    return built, arrays, lengths, np.asarray(data.test.labels), tok, data, names


def test_quantized_candidates_are_built_and_portable(candidates) -> None:  # type: ignore[no-untyped-def]
    built = {c.name: c for c in candidates[0]}
    for name in ("fp32", "dynamic-int8", "u8s8-qdq"):
        assert built[name].path is not None, built[name].note
    dyn = onnx.load(str(built["dynamic-int8"].path))
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in dyn.graph.node)
    qdq = onnx.load(str(built["u8s8-qdq"].path))
    inits = {i.name: i for i in qdq.graph.initializer}
    zero_points = [inits[n.input[2]] for n in qdq.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert zero_points and all(z.data_type == onnx.TensorProto.UINT8 for z in zero_points)
    for candidate in built.values():
        if candidate.path is not None:  # portable: no CPU-specific layouts saved into the artifact
            ops = {n.op_type for n in onnx.load(str(candidate.path)).graph.node}
            assert not any(op.startswith("NCHWc") or op == "ReorderInput" for op in ops)


def test_winner_is_within_budget_and_fp32_agrees_with_itself(candidates) -> None:  # type: ignore[no-untyped-def]
    built, arrays, lengths, labels, tok, data, names = candidates
    feeds = latency_feeds(tok, data.test.texts, names, shapes=((1, 64),))
    winner = select_cpu_artifact(built, arrays, lengths, labels, budget_points=1.0, feeds=feeds, runs=5)
    fp32 = next(c for c in built if c.name == "fp32")
    assert fp32.agreement == 1.0 and fp32.passed
    assert winner.passed and winner.accuracy is not None and fp32.accuracy is not None
    assert (fp32.accuracy - winner.accuracy) * 100 <= 1.0
    for c in built:
        if c.path is not None:
            assert c.accuracy is not None and "b1s64" in c.latency_ms
            assert c.agreement is not None and c.agreement > 0.8, (c.name, c.agreement)
