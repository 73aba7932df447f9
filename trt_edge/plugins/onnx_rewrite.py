"""Replace each attention block of an exported BERT-family ONNX model with our TensorRT fused-attention node.

The blocks are found, checked and spliced by the ONNX graph library (`trt_edge.onnxgraph`: the pattern in
`attention_match`, the numeric checks in `attention_verify`, the surgery in `splice`); this module is the
TensorRT emitter. Every verified block becomes

    Cast<fp32>(TrtEdgeFusedAttention(Cast<fp16>(q_src), Cast<fp16>(k_src), Cast<fp16>(v_src),
                                     Cast<int32>(attention_mask))) -> out
        domain "trt_edge"; attributes plugin_version ("1" IPluginV3 for TensorRT 10+, "2"
        IPluginV2DynamicExt for 8.5/8.6: `generation.plugin_generation`), plugin_namespace "",
        num_heads, head_size, scale, causal

which TensorRT's ONNX parser hands to our IPluginV3 (op_type = plugin name, see
reference/tensorrt-jetson-facts.md §5.3). On top of the library's checks, a block is fused only if its
head size and sequence length are within the kernel's limits (`KERNEL_LIMITS`).

Any layer that fails a check is left as it is and reported with the reason. The rewritten model is then
checked end to end: every fused node is expanded back into standard ONNX ops from its attributes alone
(`ort_reference.expand_fused_attention`) and run in ONNX Runtime against the original model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.log import get_logger
from trt_edge.onnxgraph.attention_match import AttentionNotFused, find_attention_candidates, summarize
from trt_edge.onnxgraph.attention_verify import FusedLayer, KernelLimits, verify_candidates
from trt_edge.onnxgraph.runtime import compare_models
from trt_edge.onnxgraph.splice import bias_nodes, mask_cast, splice_nodes, surviving_softmaxes
from trt_edge.plugins.ort_reference import (
    MAX_SEQ_LEN,
    PLUGIN_DOMAIN,
    PLUGIN_NAME,
    PLUGIN_NAMESPACE,
    SUPPORTED_HEAD_SIZES,
    expand_fused_attention,
)
from trt_edge.tasks.spec import padding_mask_input

log = get_logger("export")

MASK_INT32 = "trt_edge_attention_mask_i32"
# What our CUDA kernel takes (plugins/fused_attention): a block outside these stays unfused.
KERNEL_LIMITS = KernelLimits(head_sizes=SUPPORTED_HEAD_SIZES, max_seq_len=MAX_SEQ_LEN)


def rewrite_model(model: Any, layers: list[FusedLayer], trt_version: str | None = None) -> Any:
    """A copy of `model` where each verified block is one fused node; the input model is untouched.

    Node inputs follow the contract (docs/plugins.md): q, k, v, the int32 key-padding mask when
    `has_mask`, the fp16 additive bias when `has_bias`; both flags are always written. `trt_version` is
    the target TensorRT: the node names the plugin generation that version's ONNX parser resolves (None:
    TensorRT 10+, IPluginV3).
    """
    from onnx import TensorProto, helper

    from trt_edge.plugins.generation import node_attributes

    plugin_attributes = node_attributes(trt_version)
    replacements: dict[str, list[Any]] = {}
    for i, layer in enumerate(layers):
        c = layer.candidate
        name = f"{PLUGIN_NAME}_{i}"
        # The kernel is fp16 in, fp16 out: explicit Casts make the node's I/O types part of the graph, so
        # a strongly typed TensorRT network sees exactly what the plugin supports (weakly typed builds
        # fold the casts into reformats).
        halves = [f"{name}_{t}_fp16" for t in ("q", "k", "v")]
        nodes = [helper.make_node("Cast", [src], [half], name=f"{half}_cast", to=TensorProto.FLOAT16)
                 for src, half in zip((c.q_src, c.k_src, c.v_src), halves, strict=True)]
        inputs = [*halves]
        if layer.has_mask:
            inputs.append(MASK_INT32)
        if layer.has_bias:
            extra, bias = bias_nodes(layer, name)
            nodes += extra
            nodes.append(helper.make_node("Cast", [bias], [f"{name}_bias_fp16"], name=f"{name}_bias_cast",
                                          to=TensorProto.FLOAT16))
            inputs.append(f"{name}_bias_fp16")
        nodes.append(helper.make_node(
            PLUGIN_NAME, inputs, [f"{name}_out_fp16"], name=name,
            domain=PLUGIN_DOMAIN, **plugin_attributes,
            num_heads=layer.num_heads, head_size=layer.head_size, scale=float(layer.scale),
            causal=int(layer.causal), has_mask=int(layer.has_mask), has_bias=int(layer.has_bias)))
        nodes.append(helper.make_node("Cast", [f"{name}_out_fp16"], [c.output], name=f"{name}_out_cast",
                                      to=TensorProto.FLOAT))
        replacements[c.output] = nodes
    prelude = []
    if any(layer.has_mask for layer in layers):
        prelude.append(mask_cast(model, padding_mask_input, MASK_INT32, "trt_edge_attention_mask_cast"))
    return splice_nodes(model, replacements, prelude, PLUGIN_DOMAIN)


def fuse_attention(model: Any, feeds: list[dict[str, np.ndarray]], trt_version: str | None = None
                   ) -> tuple[Any, list[FusedLayer], list[dict[str, str]]]:
    """Find, verify and fuse every attention block of `model` (onnx.ModelProto) for TensorRT `trt_version`
    (None: 10+; see `rewrite_model`).

    Returns:
        tuple: (fused model, fused layers, unfused [{"layer", "reason"}]).

    Raises:
        TrtEdgeError: no attention block was recognised, or none passed its checks.
    """
    if not feeds:
        raise TrtEdgeError("fuse_attention needs at least one feed (dict of input arrays) for its checks")
    candidates, rejected = find_attention_candidates(model)
    if not candidates:
        detail = summarize(rejected) or "the model has no Softmax"
        raise AttentionNotFused(f"no attention pattern recognised in the ONNX model ({detail}); "
                                "run without attention fusion", rejected)
    layers, unfused = verify_candidates(model, candidates, feeds, padding_mask_input, KERNEL_LIMITS)
    unfused = rejected + unfused
    while layers:
        fused = rewrite_model(model, layers, trt_version)
        left = surviving_softmaxes(fused)
        stuck = [layer for layer in layers if layer.candidate.softmax in left]
        if not stuck:
            break
        for layer in stuck:
            unfused.append({"layer": layer.candidate.layer,
                            "reason": "tensors inside the block are used outside it; fusing would not remove it"})
        layers = [layer for layer in layers if layer not in stuck]
    if not layers:
        raise AttentionNotFused(f"attention blocks were found but none can be fused ({summarize(unfused)})",
                                unfused)
    for item in unfused:
        log.warning("attention not fused at %s: %s", item["layer"], item["reason"])
    return fused, layers, unfused


def parity(original: Any, fused: Any, feeds: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Fused (expanded to standard ops) vs original on the feeds (see `compare_models`)."""
    return compare_models(original, expand_fused_attention(fused), feeds)


def fuse_attention_file(onnx_path: Path, out_path: Path, feeds: list[dict[str, np.ndarray]],
                        trt_version: str | None = None) -> dict[str, Any]:
    """Fuse the attention blocks of an ONNX file, write the result, and check it against the original.

    Args:
        onnx_path (Path): the exported (unfused) model.
        out_path (Path): where the fused model goes (written atomically).
        feeds (list[dict[str, np.ndarray]]): input batches used for the per-layer checks and the parity.
        trt_version (str | None): the target TensorRT, which picks the plugin generation. Defaults to None
            (TensorRT 10+, IPluginV3).

    Returns:
        dict: {"fused_layers": [...], "unfused": [{"layer", "reason"}], "max_abs_diff": float,
        "argmax_agreement": float, plus "layers" (per fused layer: heads, head size, scale, causal,
        check error) and "plugin" (name, version, namespace, generation)}.

    Raises:
        TrtEdgeError: the file is missing or unreadable, or no attention pattern was recognised/fusable.
    """
    import onnx

    from trt_edge.files import atomic_write_bytes
    from trt_edge.plugins.generation import plugin_generation

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise TrtEdgeError(f"ONNX model not found: {onnx_path}")
    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:  # onnx raises several types for a bad file
        raise TrtEdgeError(f"cannot read ONNX model {onnx_path}: {exc}") from exc
    generation = plugin_generation(trt_version)  # checked before the expensive work
    fused, layers, unfused = fuse_attention(model, feeds, trt_version)
    onnx.checker.check_model(fused)
    atomic_write_bytes(out_path, fused.SerializeToString())
    figures = parity(model, fused, feeds)
    log.info("fused %d attention layers (%d not fused); parity max |diff| %.3g, arg-max agreement %.4f",
             len(layers), len(unfused), figures["max_abs_diff"], figures["argmax_agreement"])
    return {
        "fused_layers": [layer.candidate.layer for layer in layers],
        "unfused": unfused,
        "max_abs_diff": figures["max_abs_diff"],
        "argmax_agreement": figures["argmax_agreement"],
        "layers": [{"layer": layer.candidate.layer, "num_heads": layer.num_heads, "head_size": layer.head_size,
                    "scale": layer.scale, "causal": layer.causal, "has_mask": layer.has_mask,
                    "has_bias": layer.has_bias, "check_max_abs_diff": layer.max_abs_diff}
                   for layer in layers],
        "plugin": {"name": PLUGIN_NAME, "version": generation.plugin_version, "namespace": PLUGIN_NAMESPACE,
                   "generation": generation.interface},
    }
