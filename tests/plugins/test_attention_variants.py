"""Attention beyond BERT (issue 15): an additive position bias (MPNet) and attention without a padding mask
(ViT), through the TensorRT-plugin rewrite (checked by its CPU reference) and the CPU fusion; the node
contract (has_mask / has_bias and the inputs they imply)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trt_edge.onnxgraph.attention_verify import attention_reference
from trt_edge.onnxgraph.runtime import compare_models
from trt_edge.plugins.onnx_rewrite import fuse_attention
from trt_edge.plugins.ort_reference import PLUGIN_DOMAIN, PLUGIN_NAME, expand_fused_attention
from trt_edge.quantize.ort_attention import fuse_attention_ort

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

TOLERANCE = 1e-3


def _attrs(node: Any) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def test_reference_adds_the_bias_before_the_mask() -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 5, 64)).astype(np.float32) for _ in range(3))
    bias = rng.standard_normal((1, 2, 5, 5))
    mask = np.ones((2, 5), np.int64)
    mask[1, 3:] = 0
    got = attention_reference(q, k, v, mask, 2, 32, 0.125, bias=bias)
    scores = np.einsum("bqnh,bknh->bnqk", q.reshape(2, 5, 2, 32), k.reshape(2, 5, 2, 32)) * 0.125 + bias
    scores = np.where(mask[:, None, None, :] == 0, -np.inf, scores)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    want = np.einsum("bnqk,bknh->bqnh", probs, v.reshape(2, 5, 2, 32)).reshape(2, 5, 64)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("has_mask", "has_bias"), [(0, 0), (0, 1), (1, 1)])
def test_expansion_follows_the_contract(has_mask: int, has_bias: int) -> None:
    rng = np.random.default_rng(1)
    hidden = 64
    names = ["q", "k", "v"] + (["mask"] if has_mask else []) + (["bias"] if has_bias else [])
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["b", "s", hidden]) for n in ("q", "k", "v")]
    if has_mask:
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.INT32, ["b", "s"]))
    if has_bias:
        inputs.append(helper.make_tensor_value_info("bias", TensorProto.FLOAT, [1, 2, "s", "s"]))
    node = helper.make_node(PLUGIN_NAME, names, ["out"], domain=PLUGIN_DOMAIN, plugin_version="1",
                            plugin_namespace="", num_heads=2, head_size=32, scale=0.2, causal=0,
                            has_mask=has_mask, has_bias=has_bias)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(PLUGIN_DOMAIN, 1)])
    import onnxruntime as ort

    feed: dict[str, np.ndarray] = {n: rng.standard_normal((2, 6, hidden)).astype(np.float32) for n in ("q", "k", "v")}
    mask = np.ones((2, 6), np.int32)
    mask[0, 4:] = 0
    bias = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    if has_mask:
        feed["mask"] = mask
    if has_bias:
        feed["bias"] = bias
    sess = ort.InferenceSession(expand_fused_attention(model).SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, feed)[0]
    want = attention_reference(feed["q"], feed["k"], feed["v"], mask if has_mask else None, 2, 32, 0.2,
                               bias=bias if has_bias else None)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    del model.graph.node[0].input[-1]  # one input short of what the flags promise
    if has_mask or has_bias:
        with pytest.raises(ValueError, match="the contract wants"):
            expand_fused_attention(model)


def _feeds(path: Path, rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    import onnxruntime as ort

    names = [i.name for i in ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()]
    feeds = []
    for batch, seq in ((3, 16), (2, 9)):
        if names == ["pixel_values"]:
            feeds.append({"pixel_values": rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)})
            continue
        mask = np.ones((batch, seq), np.int64)
        mask[1, seq // 2:] = 0
        feed = {"input_ids": rng.integers(5, 500, (batch, seq)), "attention_mask": mask}
        feeds.append({n: feed.get(n, np.zeros((batch, seq), np.int64)) for n in names})
    return feeds


@pytest.fixture(scope="module")
def mpnet_onnx(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    """A tiny random MPNet classifier (relative position bias in every layer), exported by the kit."""
    from tests.matrix.families import build
    from trt_edge.export.exporter import export_onnx

    folder = build("mpnet", minilm_dir, tmp_path_factory.mktemp("mpnet"))
    path = folder / "model.onnx"
    export_onnx(folder, path, dynamo=False)
    return path


@pytest.fixture(scope="module")
def vit_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random ViTForImageClassification exported with torch.onnx, input `pixel_values` (no mask)."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                       image_size=32, patch_size=8, num_labels=3, initializer_range=0.1)
    model = ViTForImageClassification(config).eval()

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.inner(pixel_values=pixel_values).logits

    path = tmp_path_factory.mktemp("vit") / "model.onnx"
    torch.onnx.export(Logits(), (torch.randn(2, 3, 32, 32),), str(path), input_names=["pixel_values"],
                      output_names=["logits"], opset_version=17, dynamo=False,
                      dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}})
    return path


def test_mpnet_relative_bias_fuses_on_both_targets(mpnet_onnx: Path) -> None:
    model = onnx.load(str(mpnet_onnx))
    feeds = _feeds(mpnet_onnx, np.random.default_rng(2))
    from tests.matrix.families import LAYERS

    fused, layers, unfused = fuse_attention(model, feeds)
    onnx.checker.check_model(fused)
    assert unfused == [] and len(layers) == LAYERS
    nodes = [n for n in fused.graph.node if n.op_type == PLUGIN_NAME]
    for node in nodes:
        attrs = _attrs(node)
        assert attrs["has_mask"] == 1 and attrs["has_bias"] == 1 and len(node.input) == 5
    casts = {n.output[0]: helper.get_attribute_value(n.attribute[0]) for n in fused.graph.node if n.op_type == "Cast"}
    assert casts[nodes[0].input[3]] == TensorProto.INT32 and casts[nodes[0].input[4]] == TensorProto.FLOAT16
    figures = compare_models(model, expand_fused_attention(fused), feeds)
    assert figures["max_abs_diff"] <= TOLERANCE and figures["argmax_agreement"] == 1.0, figures
    # The bias matters: a fused model without it is measurably different.
    for node in nodes:
        del node.input[4]
        for attr in node.attribute:
            if attr.name == "has_bias":
                attr.i = 0
    assert compare_models(model, expand_fused_attention(fused), feeds)["max_abs_diff"] > 10 * TOLERANCE

    cpu, report = fuse_attention_ort(model, feeds)
    assert report.summary() == f"MultiHeadAttention with attention_bias×{LAYERS}" and report.unfused == []
    mha = [n for n in cpu.graph.node if n.op_type == "MultiHeadAttention"]
    assert all(len(n.input) == 6 and n.input[4] and n.input[5] for n in mha)
    figures = compare_models(model, cpu, feeds)
    assert figures["max_abs_diff"] <= TOLERANCE and figures["argmax_agreement"] == 1.0, figures


def test_vit_attention_without_a_mask_fuses_on_both_targets(vit_onnx: Path) -> None:
    model = onnx.load(str(vit_onnx))
    feeds = _feeds(vit_onnx, np.random.default_rng(3))
    fused, layers, unfused = fuse_attention(model, feeds)
    assert unfused == [] and len(layers) == 2
    for node in (n for n in fused.graph.node if n.op_type == PLUGIN_NAME):
        attrs = _attrs(node)
        assert attrs["has_mask"] == 0 and attrs["has_bias"] == 0 and len(node.input) == 3
    figures = compare_models(model, expand_fused_attention(fused), feeds)
    assert figures["max_abs_diff"] <= TOLERANCE and figures["argmax_agreement"] == 1.0, figures
    cpu, report = fuse_attention_ort(model, feeds)
    assert report.unfused == [] and all(not layer["has_mask"] for layer in report.layers)
    figures = compare_models(model, cpu, feeds)
    assert figures["max_abs_diff"] <= TOLERANCE and figures["argmax_agreement"] == 1.0, figures


def test_lint_gives_the_matchers_verdict(mpnet_onnx: Path, tmp_path: Path) -> None:
    """The lint and `export --fuse-attention` name the same cause: the lint reports the matcher's own
    structural verdict (MPNet: a plugin candidate, though TensorRT's own MHA fusion misses it)."""
    from trt_edge.export.lint import lint_file
    from trt_edge.onnxgraph.attention_match import find_attention_candidates

    result = lint_file(mpnet_onnx, "10.3")
    assert all(block["plugin_candidate"] and block["plugin_reason"] == "" for block in result.attention)
    assert any(f.code == "plugin-fusion" and f.severity == "info" for f in result.findings)
    # A block the plugin cannot take (the Q.Kᵀ scores feed the softmax through a Sqrt): the same reason.
    model = onnx.load(str(mpnet_onnx))
    softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
    sqrt = helper.make_node("Sqrt", [softmax.input[0]], ["broken_scores"])
    softmax.input[0] = "broken_scores"
    model.graph.node.insert(list(model.graph.node).index(softmax), sqrt)
    path = tmp_path / "broken.onnx"
    onnx.save(model, str(path))
    _, rejected = find_attention_candidates(model)
    linted = {b["softmax"]: b["plugin_reason"] for b in lint_file(path, "10.3").attention}
    assert rejected and all(linted.get(r["layer"], r["reason"]) == r["reason"] for r in rejected)
    assert any(f.code == "plugin-fusion" and f.severity == "warning" for f in lint_file(path, "10.3").findings)
