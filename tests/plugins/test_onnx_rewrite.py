"""The attention rewrite: the CPU reference, the ONNX decomposition of the fused node, the pattern checks
on small hand-built graphs (padding, causal, wrong mask, unsupported head size, no attention), and the
real student end to end (`fuse_attention_file`: fused vs unfused parity in ONNX Runtime)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.onnxgraph.attention_verify import attention_reference
from trt_edge.plugins.onnx_rewrite import fuse_attention, fuse_attention_file, parity
from trt_edge.plugins.ort_reference import PLUGIN_DOMAIN, PLUGIN_NAME, expand_fused_attention

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _naive(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray, heads: int, causal: bool) -> np.ndarray:
    """A loop-per-head softmax attention, written independently of attention_reference."""
    b, s, hidden = q.shape
    h = hidden // heads
    out = np.zeros((b, s, hidden))
    for bi in range(b):
        for n in range(heads):
            sl = slice(n * h, (n + 1) * h)
            for i in range(s):
                keys = [j for j in range(s) if mask[bi, j] != 0 and (not causal or j <= i)]
                if not keys:
                    continue
                logits = np.array([q[bi, i, sl] @ k[bi, j, sl] / np.sqrt(h) for j in keys])
                w = np.exp(logits - logits.max())
                w /= w.sum()
                out[bi, i, sl] = sum(wj * v[bi, j, sl] for wj, j in zip(w, keys, strict=True))
    return out


@pytest.mark.parametrize("causal", [False, True])
def test_reference_matches_naive_attention(causal: bool) -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 7, 64)).astype(np.float32) for _ in range(3))
    mask = np.ones((2, 7), np.int64)
    mask[1, 4:] = 0
    got = attention_reference(q, k, v, mask, 2, 32, 1 / np.sqrt(32), causal)
    np.testing.assert_allclose(got, _naive(q, k, v, mask, 2, causal), rtol=1e-5, atol=1e-5)


def test_reference_fully_masked_rows_are_zero() -> None:
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((1, 4, 32)).astype(np.float32) for _ in range(3))
    got = attention_reference(q, k, v, np.zeros((1, 4), np.int64), 1, 32, 0.2)
    assert np.all(got == 0)
    with pytest.raises(ValueError, match="hidden size"):
        attention_reference(q, k, v, None, 2, 32, 0.2)


def _fused_node_model(heads: int, head_size: int, scale: float, causal: int) -> Any:
    hidden = heads * head_size
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["b", "s", hidden]) for n in ("q", "k", "v")]
    mask = helper.make_tensor_value_info("mask", TensorProto.INT64, ["b", "s"])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b", "s", hidden])
    node = helper.make_node(PLUGIN_NAME, ["q", "k", "v", "mask"], ["out"], domain=PLUGIN_DOMAIN,
                            plugin_version="1", plugin_namespace="", num_heads=heads,
                            head_size=head_size, scale=scale, causal=causal)
    graph = helper.make_graph([node], "fused", [*io, mask], [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid(PLUGIN_DOMAIN, 1)])


@pytest.mark.parametrize("causal", [0, 1])
def test_onnx_expansion_computes_the_reference(causal: int) -> None:
    rng = np.random.default_rng(2)
    model = expand_fused_attention(_fused_node_model(3, 32, 0.3, causal))
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    q, k, v = (rng.standard_normal((2, 9, 96)).astype(np.float32) for _ in range(3))
    mask = np.ones((2, 9), np.int64)
    mask[0, 6:] = 0
    mask[1, :] = 0  # a fully padded row: zeros, as the kernel writes
    (got,) = sess.run(None, {"q": q, "k": k, "v": v, "mask": mask})
    np.testing.assert_allclose(got, attention_reference(q, k, v, mask, 3, 32, 0.3, bool(causal)), atol=2e-5)
    assert np.all(got[1] == 0)


def _attention_model(heads: int, head_size: int, mask_kind: str, layers: int = 1, seed: int = 0) -> Any:
    """A BERT-like stack of self-attention blocks in the exported form (projections, head split,
    scaled QKᵀ, Where(mask, 0, -inf), softmax, NaN guard, ·V, head merge, output projection)."""
    rng = np.random.default_rng(seed)
    hidden = heads * head_size
    inits: list[Any] = []
    nodes: list[Any] = []

    def init(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    init("split", np.array([0, 0, heads, head_size], np.int64))
    init("merge", np.array([0, 0, hidden], np.int64))
    init("zero", np.array(0.0, np.float32))
    init("ninf", np.array(-np.inf, np.float32))
    init("sqrt_scale", np.array(head_size ** -0.25, np.float32))
    init("axes12", np.array([1, 2], np.int64))
    init("axes01", np.array([0, 1], np.int64))
    init("i0", np.array(0, np.int64))
    nodes.append(helper.make_node("Cast", ["attention_mask"], ["keep"], to=TensorProto.BOOL))
    if mask_kind == "padding":
        nodes.append(helper.make_node("Unsqueeze", ["keep", "axes12"], ["keep4"]))  # [B,1,1,S] keys
    elif mask_kind == "causal":
        nodes += [
            helper.make_node("Shape", ["attention_mask"], ["am_shape"]),
            helper.make_node("Gather", ["am_shape", "one_idx"], ["seq"], axis=0),
            helper.make_node("Range", ["i0", "seq", "one"], ["pos"]),
            helper.make_node("Unsqueeze", ["pos", "ax0"], ["kpos"]),
            helper.make_node("Unsqueeze", ["pos", "ax1"], ["qpos"]),
            helper.make_node("LessOrEqual", ["kpos", "qpos"], ["past"]),
            helper.make_node("Unsqueeze", ["keep", "axes12"], ["keep_pad"]),
            helper.make_node("And", ["keep_pad", "past"], ["keep4"]),
        ]
        init("one_idx", np.array(1, np.int64))
        init("one", np.array(1, np.int64))
        init("ax0", np.array([0], np.int64))
        init("ax1", np.array([1], np.int64))
    else:  # "query": masks query rows instead of keys, which the plugin cannot express
        init("axes13", np.array([1, 3], np.int64))
        nodes.append(helper.make_node("Unsqueeze", ["keep", "axes13"], ["keep4"]))
    nodes.append(helper.make_node("Where", ["keep4", "zero", "ninf"], ["bias"]))
    x = "x"
    for layer in range(layers):
        p = f"l{layer}_"
        for t in ("q", "k", "v", "o"):
            init(p + t + "_w", (rng.standard_normal((hidden, hidden)) / np.sqrt(hidden)).astype(np.float32))
            init(p + t + "_b", (rng.standard_normal(hidden) * 0.1).astype(np.float32))
        for t in ("q", "k", "v"):
            nodes += [helper.make_node("MatMul", [x, p + t + "_w"], [p + t + "_mm"]),
                      helper.make_node("Add", [p + t + "_mm", p + t + "_b"], [p + t]),
                      helper.make_node("Reshape", [p + t, "split"], [p + t + "4"])]
        nodes += [
            helper.make_node("Transpose", [p + "q4"], [p + "qh"], perm=[0, 2, 1, 3]),
            helper.make_node("Transpose", [p + "k4"], [p + "kt"], perm=[0, 2, 3, 1]),
            helper.make_node("Transpose", [p + "v4"], [p + "vh"], perm=[0, 2, 1, 3]),
            helper.make_node("Mul", [p + "qh", "sqrt_scale"], [p + "qs"]),
            helper.make_node("Mul", [p + "kt", "sqrt_scale"], [p + "ks"]),
            helper.make_node("MatMul", [p + "qs", p + "ks"], [p + "scores"]),
            helper.make_node("Add", [p + "scores", "bias"], [p + "masked"]),
            helper.make_node("Softmax", [p + "masked"], [p + "probs0"], axis=-1, name=f"layer{layer}.softmax"),
            helper.make_node("IsNaN", [p + "probs0"], [p + "nan"]),
            helper.make_node("Where", [p + "nan", "zero", p + "probs0"], [p + "probs"]),
            helper.make_node("MatMul", [p + "probs", p + "vh"], [p + "ctx"]),
            helper.make_node("Transpose", [p + "ctx"], [p + "ctx_t"], perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", [p + "ctx_t", "merge"], [p + "merged"]),
            helper.make_node("MatMul", [p + "merged", p + "o_w"], [p + "o_mm"]),
            helper.make_node("Add", [p + "o_mm", p + "o_b"], [p + "out"]),
        ]
        x = p + "out"
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    graph = helper.make_graph(
        nodes, "attention", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", hidden]),
                             helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", hidden])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _feeds(hidden: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    feeds = []
    for b, s in ((2, 6), (3, 11)):
        mask = np.ones((b, s), np.int64)
        mask[-1, s // 2:] = 0
        feeds.append({"x": rng.standard_normal((b, s, hidden)).astype(np.float32), "attention_mask": mask})
    return feeds


def _fused_nodes(model: Any) -> list[Any]:
    return [n for n in model.graph.node if n.op_type == PLUGIN_NAME]


@pytest.mark.parametrize("mask_kind", ["padding", "causal"])
def test_rewrite_fuses_every_layer_and_keeps_parity(mask_kind: str) -> None:
    model = _attention_model(2, 32, mask_kind, layers=2)
    feeds = _feeds(64)
    fused, layers, unfused = fuse_attention(model, feeds)
    onnx.checker.check_model(fused)
    assert unfused == []
    assert [layer.candidate.layer for layer in layers] == ["layer0.softmax", "layer1.softmax"]
    assert not any(n.op_type in ("Softmax", "Transpose", "Reshape") for n in fused.graph.node)
    nodes = _fused_nodes(fused)
    assert len(nodes) == 2
    attrs = {a.name: helper.get_attribute_value(a) for a in nodes[0].attribute}
    assert attrs["plugin_version"] == b"1" and attrs["plugin_namespace"] == b""
    assert attrs["num_heads"] == 2 and attrs["head_size"] == 32
    assert attrs["scale"] == pytest.approx(32 ** -0.5, rel=1e-6)
    assert attrs["causal"] == (1 if mask_kind == "causal" else 0)
    assert nodes[0].domain == PLUGIN_DOMAIN
    casts = [helper.get_attribute_value(n.attribute[0]) for n in fused.graph.node if n.op_type == "Cast"]
    assert casts.count(TensorProto.FLOAT16) == 6 and casts.count(TensorProto.INT32) == 1  # fp16 kernel I/O
    figures = parity(model, fused, feeds)
    assert 0 < figures["max_abs_diff"] < 1e-2  # fp16 rounding of the kernel's I/O, nothing more
    assert figures["argmax_agreement"] == 1.0


def test_parity_detects_a_wrong_attribute() -> None:
    model = _attention_model(2, 32, "padding")
    feeds = _feeds(64)
    fused, _, _ = fuse_attention(model, feeds)
    for attr in _fused_nodes(fused)[0].attribute:
        if attr.name == "scale":
            attr.f *= 2.0
    assert parity(model, fused, feeds)["max_abs_diff"] > 1e-2


def test_query_mask_is_reported_not_fused() -> None:
    model = _attention_model(2, 32, "query")
    with pytest.raises(TrtEdgeError, match="not a key-padding"):
        fuse_attention(model, _feeds(64))


def test_unsupported_head_size_is_reported() -> None:
    model = _attention_model(2, 8, "padding")
    with pytest.raises(TrtEdgeError, match="head size 8 is not supported"):
        fuse_attention(model, _feeds(16))


def test_model_without_attention_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(TrtEdgeError, match="no attention pattern recognised"):
        fuse_attention_file(path, tmp_path / "out.onnx", [{"x": np.ones((1, 4), np.float32)}])
    assert not (tmp_path / "out.onnx").exists()
    with pytest.raises(TrtEdgeError, match="not found"):
        fuse_attention_file(tmp_path / "missing.onnx", tmp_path / "out.onnx", [])


def test_real_student_fused_vs_unfused_parity(student_onnx: Path, minilm_student_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_student_dir)
    texts = ["I love this so much!", "worst day ever, the bus never came and it rained",
             "ok", "not sure how I feel about the new update, some parts are fine"]
    sess_inputs = {i.name: i.type for i in ort.InferenceSession(str(student_onnx)).get_inputs()}
    feeds = []
    for batch in (texts, texts[:2]):
        enc = tokenizer(batch, padding=True, return_tensors="np")
        feed = {name: np.asarray(enc[name]).astype(np.int32 if "int32" in kind else np.int64)
                for name, kind in sess_inputs.items()}
        feeds.append(feed)
    assert any((f["attention_mask"] == 0).any() for f in feeds)  # real padding in the check
    out = tmp_path / "model.fused.onnx"
    metrics = fuse_attention_file(student_onnx, out, feeds)
    print("student fusion:", {k: metrics[k] for k in ("fused_layers", "unfused", "max_abs_diff", "argmax_agreement")})
    assert len(metrics["fused_layers"]) == 3 and metrics["unfused"] == []
    assert metrics["max_abs_diff"] < 1e-2  # logits; the fp16 I/O of the kernel is the only difference
    assert metrics["argmax_agreement"] == 1.0
    assert all(layer["num_heads"] == 12 and layer["head_size"] == 32 for layer in metrics["layers"])
    fused = onnx.load(str(out))
    onnx.checker.check_model(fused)
    assert len(_fused_nodes(fused)) == 3
    assert not any(n.op_type == "Softmax" for n in fused.graph.node)
    assert [i.name for i in fused.graph.input] == [i.name for i in onnx.load(str(student_onnx)).graph.input]
