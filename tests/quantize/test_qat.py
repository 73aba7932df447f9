"""Fake quantization in PyTorch equals the Q/DQ graph ONNX Runtime runs, within one quantization step.

The tiny random BERT and its own fp32 export: the planned nodes are bound to their modules, the fake-quant
forward is compared with the Q/DQ model made by the one Q/DQ writer (`placement.quantize_model`) tensor by
tensor (every quantized activation) and at the logits, before and after a few steps that move the weights
and learn the scales; then the float modules come back untouched.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from trt_edge.errors import TrtEdgeError
from trt_edge.quantize import evaluate, placement, qat
from trt_edge.quantize.calibrators import QMAX
from trt_edge.quantize.config import PlacementConfig


def _inputs(tokenizer: Any) -> dict[str, np.ndarray]:
    texts = ["the robot stopped at the red light", "great battery life", "worst update ever, it crashes",
             "meh", "turn left after the second door and wait for the operator to confirm"]
    enc = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="np")
    return {k: v.astype(np.int64) for k, v in enc.items()}


def _ort(model: Any, feed: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # DQ outputs as written
    sess = ort.InferenceSession(evaluate.with_outputs(model, outputs).SerializeToString(), options,
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {i.name: feed[i.name] for i in sess.get_inputs()}), strict=True))


@pytest.fixture()
def tiny(tiny_bert_dir: Path, tiny_bert_onnx: Path) -> tuple[Any, Any, Any, placement.Placement, dict[str, float]]:
    import onnx
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    graph = onnx.load(str(tiny_bert_onnx))
    plan = placement.plan_placement(graph, PlacementConfig())
    feed = _inputs(tokenizer)
    ranges = _ort(graph, feed, plan.activation_tensors())
    amax = {t: float(np.abs(ranges[t]).max()) for t in plan.activation_tensors()}
    return model, tokenizer, graph, plan, amax


def _fake_quant_side(model: Any, fq: qat.FakeQuant, feed: dict[str, np.ndarray]
                     ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The fake-quantized model's logits and every quantizer's output, keyed by the ONNX node it feeds."""
    captured: dict[str, np.ndarray] = {}
    handles = [fq.quantizers[key].register_forward_hook(
        lambda _m, _i, out, t=tensor: captured.__setitem__(t, out.detach().numpy())) for tensor, key in fq.keys.items()]
    with torch.no_grad():
        logits = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.numpy()
    for h in handles:
        h.remove()
    return logits, {b.node: captured[b.activation] for b in fq.bindings}


def _check_against_onnx(logits: np.ndarray, by_node: dict[str, np.ndarray], graph: Any, amax_by_node: dict[str, float],
                        feed: dict[str, np.ndarray]) -> None:
    plan = placement.plan_placement(graph, PlacementConfig())
    assert set(plan.node_names()) == set(by_node)
    qmodel, amax = qat.qdq_model(graph, plan, amax_by_node)
    dq = {t: f"{t.replace(':', '_')}_DequantizeLinear_Output" for t in amax}
    ort = _ort(qmodel, feed, list(dq.values()))
    for p in plan.nodes:
        tensor = p.activations[0]
        step = amax[tensor] / QMAX
        diff = np.abs(by_node[p.node] - ort[dq[tensor]])
        # A value on a rounding boundary may land one step apart (x * (1/s) vs x / s); nothing more.
        assert diff.max() <= step * (1 + 1e-4) + 1e-6, (p.node, diff.max(), step)
        assert np.mean(diff > step * 0.5) < 0.01, p.node
    scale = max(1.0, float(np.abs(ort["logits"]).max()))
    assert np.abs(logits - ort["logits"]).max() <= 0.05 * scale
    assert (logits.argmax(-1) == ort["logits"].argmax(-1)).all()


@pytest.mark.parametrize("learn", [False, True])
def test_fake_quant_forward_equals_qdq_onnx(tiny: Any, learn: bool, tmp_path: Path) -> None:
    import onnx

    from trt_edge.export.exporter import export_onnx

    model, tokenizer, graph, plan, amax = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fq = qat.attach(model, graph, plan, amax, learn_scales=learn)
    assert {b.node for b in fq.bindings} == set(plan.node_names())
    assert len(fq.keys) == len(plan.activation_tensors())  # one quantizer per tensor, shared like the Q/DQ pair
    assert bool(fq.scale_parameters()) is learn
    feed = _inputs(tokenizer)
    logits, by_node = _fake_quant_side(model, fq, feed)
    _check_against_onnx(logits, by_node, graph, fq.amax_by_node(), feed)

    # A few training steps move the weights and (when learned) the scales.
    optim = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = {k: torch.from_numpy(v) for k, v in feed.items()}
    start = fq.amax_by_tensor()
    model.train()
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(**batch).logits, torch.tensor([0, 1, 2, 0, 1]))
        optim.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optim.step()
    model.eval()
    moved = [t for t, a in fq.amax_by_tensor().items() if not np.isclose(a, start[t], rtol=1e-7)]
    assert bool(moved) is learn
    logits, by_node = _fake_quant_side(model, fq, feed)
    amax_by_node = fq.amax_by_node()
    fq.remove()
    fq.remove()  # idempotent
    assert not hasattr(model, qat.SUBMODULE)
    assert set(model.state_dict()) == set(before)  # the float modules again, the same parameter names
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())  # and trained

    # The trained float model re-exported and quantized with the learned ranges runs as it trained.
    path = tmp_path / "model.onnx"
    export_onnx(tmp_path, path, dynamo=False, loaded=types.SimpleNamespace(model=model, tokenizer=tokenizer))
    _check_against_onnx(logits, by_node, onnx.load(str(path)), amax_by_node, feed)


def test_bind_refuses_a_foreign_onnx(tiny: Any, tiny_bert_dir: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    model, _, graph, plan, amax = tiny
    torch.manual_seed(1)
    other = AutoModelForSequenceClassification.from_config(model.config)  # type: ignore[no-untyped-call]
    with pytest.raises(TrtEdgeError, match="cannot tell which PyTorch module"):
        qat.attach(other, graph, plan, amax)
    with pytest.raises(TrtEdgeError, match="no calibrated range"):
        qat.attach(model, graph, plan, {})
    assert not hasattr(model, qat.SUBMODULE)


def test_bind_refuses_bmm_placement(tiny: Any) -> None:
    model, _, graph, _, amax = tiny
    plan = placement.plan_placement(graph, PlacementConfig(quantize_bmm=True))
    with pytest.raises(TrtEdgeError, match="quantize_bmm"):
        qat.attach(model, graph, plan, amax)
