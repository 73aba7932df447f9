"""Q/DQ placement on a real export (tiny BERT): the TensorRT contract node by node, the mask path,
exclusions, BMM option, ONNX Runtime execution, and 2:4 weights surviving quantization."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.quantize import evaluate, placement
from trt_edge.quantize.config import PlacementConfig


def _load(path: Path) -> Any:
    import onnx

    return onnx.load(str(path))


def _amax_for(plan: placement.Placement, value: float = 4.0) -> dict[str, float]:
    return {t: value for t in plan.activation_tensors()}


def _producers(model: Any) -> dict[str, Any]:
    return {o: n for n in model.graph.node for o in n.output}


def check_trt_contract(qmodel: Any, plan: placement.Placement) -> None:
    """Every rule of the placement, checked on a quantized model (shared with the stage test)."""
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in qmodel.graph.initializer}
    producers = _producers(qmodel)
    nodes = {n.name: n for n in qmodel.graph.node}
    qdq = [n for n in qmodel.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    for n in qdq:
        zero = inits[n.input[2]]
        assert zero.dtype == np.int8 and np.all(zero == 0), n.name
        assert np.all(inits[n.input[1]] > 0) and inits[n.input[1]].dtype == np.float32
    mask = placement.mask_path_tensors(qmodel)
    for n in qmodel.graph.node:
        if n.op_type == "QuantizeLinear":
            assert n.input[0] not in mask, f"Q/DQ on the mask path: {n.name}"
            src = producers.get(n.input[0])
            assert src is None or src.op_type not in ("MatMul", "Gemm"), f"output of {src.name} quantized"
    for p in plan.nodes:
        node = nodes[p.node]
        for i, name in enumerate(node.input[:2]):
            dq = producers[name]
            assert dq.op_type == "DequantizeLinear", f"{p.node} input {i} is not quantized"
            q = producers[dq.input[0]]
            assert q.op_type == "QuantizeLinear"
            scale = inits[dq.input[1]]
            axis = next((a.i for a in dq.attribute if a.name == "axis"), None)
            if p.kind == "projection" and i == 1:
                weight = inits[q.input[0]]
                assert weight.dtype == np.float32  # the float initializer stays (2:4 pattern intact)
                want_axis = 0 if (node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)) \
                    else 1
                assert axis == want_axis and scale.shape == (weight.shape[want_axis],), p.node
                reduce = tuple(d for d in range(weight.ndim) if d != want_axis)
                np.testing.assert_allclose(scale, np.abs(weight).max(axis=reduce) / 127, rtol=1e-6)
            else:
                assert scale.shape == () and axis is None, f"{p.node}: activation not per-tensor"


def test_plan_quantizes_projections_and_skips_bmm_and_mask(tiny_bert_onnx: Path) -> None:
    model = _load(tiny_bert_onnx)
    plan = placement.plan_placement(model, PlacementConfig())
    kinds = {p.kind for p in plan.nodes}
    assert kinds == {"projection"}
    # 2 layers x (q, k, v, attention output, FFN in, FFN out) + pooler + classifier.
    assert len(plan.nodes) == 14
    assert sum("attention BMM" in why for why in plan.skipped.values()) == 4
    assert placement.mask_path_tensors(model)  # the mask has its own sub-graph
    with_bmm = placement.plan_placement(model, PlacementConfig(quantize_bmm=True))
    assert sum(p.kind == "bmm" for p in with_bmm.nodes) == 4
    for p in with_bmm.nodes:
        assert not set(p.activations) & placement.mask_path_tensors(model)


def test_quantized_model_follows_the_contract_and_runs(tiny_bert_onnx: Path) -> None:
    model = _load(tiny_bert_onnx)
    for cfg in (PlacementConfig(), PlacementConfig(quantize_bmm=True)):
        plan = placement.plan_placement(model, cfg)
        qmodel = placement.quantize_model(model, plan, _amax_for(plan))
        check_trt_contract(qmodel, plan)
        import onnx

        onnx.checker.check_model(qmodel)
        names = evaluate.check_model_io(qmodel, "q")
        rng = np.random.default_rng(0)
        ids = rng.integers(100, 1000, size=(2, 12))
        mask = np.ones((2, 12), dtype=np.int64)
        mask[1, 7:] = 0
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        arrays = {n: arrays[n] for n in names}
        lengths = mask.sum(1)
        ref = evaluate.predict(evaluate.session(model), arrays, lengths)
        out = evaluate.predict(evaluate.session(qmodel), arrays, lengths)
        assert out.shape == ref.shape and np.all(np.isfinite(out))
        assert np.abs(out - ref).max() < 0.5  # a random 32-wide model: close, not equal


def test_exclusions_and_float_nodes(tiny_bert_onnx: Path) -> None:
    model = _load(tiny_bert_onnx)
    full = placement.plan_placement(model, PlacementConfig())
    first = full.nodes[0].node
    plan = placement.plan_placement(model, PlacementConfig(exclude=[first, r".*intermediate.*"]))
    assert first in plan.skipped and first not in plan.node_names()
    assert not any("intermediate" in n for n in plan.node_names())
    assert any("intermediate" in n for n in plan.skipped)
    # A node left float by the gate keeps its original float input; its siblings stay quantized.
    qmodel = placement.quantize_model(model, full, _amax_for(full), float_nodes={first})
    node = next(n for n in qmodel.graph.node if n.name == first)
    assert node.input[0] == full.nodes[0].activations[0]
    assert node.input[1] == full.nodes[0].weight
    assert sum(n.op_type == "QuantizeLinear" for n in qmodel.graph.node) < \
        sum(n.op_type == "QuantizeLinear" for n in placement.quantize_model(model, full, _amax_for(full)).graph.node)


def test_refuses_unusable_ranges_and_old_opsets(tiny_bert_onnx: Path) -> None:
    model = _load(tiny_bert_onnx)
    plan = placement.plan_placement(model, PlacementConfig())
    bad = _amax_for(plan)
    bad[plan.nodes[0].activations[0]] = float("inf")
    with pytest.raises(TrtEdgeError, match="not finite"):
        placement.quantize_model(model, plan, bad)
    bad[plan.nodes[0].activations[0]] = 0.0
    with pytest.raises(TrtEdgeError, match="range is zero"):
        placement.quantize_model(model, plan, bad)
    old = _load(tiny_bert_onnx)
    for op in old.opset_import:
        if op.domain in ("", "ai.onnx"):
            op.version = 12
    with pytest.raises(TrtEdgeError, match="opset 12"):
        placement.quantize_model(old, plan, _amax_for(plan))


def _prune_24(weight: np.ndarray, axis: int) -> np.ndarray:
    """Keep the 2 largest of every 4 consecutive values along `axis` (the reduction axis)."""
    w = np.moveaxis(weight, axis, -1).copy()
    groups = w.reshape(-1, 4)
    drop = np.argsort(np.abs(groups), axis=1)[:, :2]
    np.put_along_axis(groups, drop, 0.0, axis=1)
    return np.moveaxis(groups.reshape(w.shape), -1, axis)


def test_sparse_weights_keep_their_pattern(tiny_bert_onnx: Path, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    model = _load(tiny_bert_onnx)
    plan = placement.plan_placement(model, PlacementConfig())
    inits = {i.name: i for i in model.graph.initializer}
    sparse: dict[str, np.ndarray] = {}
    for p in plan.nodes:
        assert p.weight is not None and p.weight_axis is not None
        w = numpy_helper.to_array(inits[p.weight])
        if w.shape[1 - p.weight_axis] % 4:
            continue
        sparse[p.weight] = _prune_24(w, 1 - p.weight_axis)  # the reduction axis is the other one
        inits[p.weight].CopyFrom(numpy_helper.from_array(sparse[p.weight], p.weight))
    assert len(sparse) >= 12
    qmodel = placement.quantize_model(model, plan, _amax_for(plan))
    path = tmp_path / "sparse.int8.onnx"
    onnx.save(qmodel, str(path))
    after = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    for name, w in sparse.items():
        np.testing.assert_array_equal(after[name], w)  # the stored float weight is untouched
    try:
        from trt_edge.sparsity.onnx_check import check_onnx_sparsity
    except ImportError:  # the sparsity area's checker is not there: the direct checks above stand
        return
    report = check_onnx_sparsity(path)
    rows = [r for r in report.rows if r.name in sparse]
    assert len(rows) == len(sparse)
    assert all(r.is_2to4 for r in rows), [r.name for r in rows if not r.is_2to4]
    assert all("QuantizeLinear" in r.path and "DequantizeLinear" in r.path for r in rows)
    # The stage's own check: a sparsity.json next to the fp32 export lists the tensors that must survive.
    import json

    from trt_edge.quantize.stage import check_qdq_sparsity
    from trt_edge.sparsity.report import SPARSITY_FORMAT

    export = tmp_path / "export"
    export.mkdir()
    (export / "sparsity.json").write_text(json.dumps({"format": SPARSITY_FORMAT,
                                                      "tensors": {n: {"pattern": "2:4"} for n in sparse}}))
    facts = check_qdq_sparsity(path, export / "model.onnx")
    assert facts["sparse_pattern_intact"] and facts["sparse_tensors_listed"] == len(sparse)
    assert facts["weights_2to4"] >= len(sparse)
    broken = next(iter(sparse))
    for init in qmodel.graph.initializer:
        if init.name == broken:  # a dense weight where a pruned one was listed must be caught
            init.CopyFrom(numpy_helper.from_array(np.ones_like(sparse[broken]), broken))
    onnx.save(qmodel, str(path))
    with pytest.raises(RuntimeError, match="broke the 2:4 pattern"):
        check_qdq_sparsity(path, export / "model.onnx")
