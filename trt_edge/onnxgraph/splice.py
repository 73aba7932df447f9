"""The splice half of attention fusion: put the nodes an emitter chose in place of each verified block.

The emitters decide *what* a block becomes (our TensorRT plugin node in `plugins.onnx_rewrite`, ONNX
Runtime's contrib ops in `quantize.ort_attention`); this module does the graph surgery they share: the
int32 key-padding mask every fused node reads, the additive bias as one tensor, and the splice itself
(replace, declare the domain, drop what nobody reads any more).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.onnxgraph.attention_verify import FusedLayer, PaddingMask


def eliminate_dead_nodes(graph: Any) -> None:
    """Drop nodes whose outputs nobody reads (repeat until stable), then unused initializers/value_info."""
    outputs = {o.name for o in graph.output}
    while True:
        used = set(outputs)
        for node in graph.node:
            used.update(node.input)
        keep = [n for n in graph.node if any(o in used for o in n.output if o)]
        if len(keep) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(keep)
    used = set(outputs)
    for node in graph.node:
        used.update(node.input)
    inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    produced = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    infos = [v for v in graph.value_info if v.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(infos)


def graph_padding_mask(model: Any, padding_mask: PaddingMask) -> str:
    """The graph input a masked fused node reads (cast to int32): the task's key-padding mask, as
    `padding_mask` names it among the graph's inputs."""
    inits = {i.name for i in model.graph.initializer}
    name = padding_mask(i.name for i in model.graph.input if i.name not in inits)
    if name is None:
        raise TrtEdgeError("an attention block applies a padding mask but the graph has no padding-mask input")
    return name


def mask_cast(model: Any, padding_mask: PaddingMask, output: str, name: str) -> Any:
    """The node casting the graph's key-padding mask to int32 as `output` (what both fused ops read)."""
    from onnx import TensorProto, helper

    return helper.make_node("Cast", [graph_padding_mask(model, padding_mask)], [output], name=name,
                            to=TensorProto.INT32)


def splice_nodes(model: Any, replacements: dict[str, list[Any]], prelude: list[Any], domain: str,
                 initializers: list[Any] | None = None) -> Any:
    """A copy of `model` where every node whose single output is a key of `replacements` becomes those
    nodes; `prelude` goes first, `initializers` are added, nodes nobody reads any more are dropped, and
    the opset of `domain` is declared. The input model is untouched.

    The one splicing step of both attention rewrites (our TensorRT plugin node, ONNX Runtime's CPU ops).
    """
    import onnx
    from onnx import helper

    spliced = onnx.ModelProto()
    spliced.CopyFrom(model)
    graph = spliced.graph
    if initializers:
        graph.initializer.extend(initializers)
    nodes: list[Any] = list(prelude)
    for node in graph.node:
        hit = replacements.get(node.output[0]) if len(node.output) == 1 else None
        nodes.extend(hit if hit is not None else [node])
    del graph.node[:]
    graph.node.extend(nodes)
    eliminate_dead_nodes(graph)
    if not any(op.domain == domain for op in spliced.opset_import):
        spliced.opset_import.append(helper.make_opsetid(domain, 1))
    return spliced


def surviving_softmaxes(spliced: Any) -> set[str]:
    """The Softmax outputs left in a spliced model. A block whose Softmax survives was not removed: some
    tensor inside it is read from outside the block, so the fused node would only add work."""
    return {n.output[0] for n in spliced.graph.node if n.op_type == "Softmax"}


def bias_nodes(layer: FusedLayer, prefix: str) -> tuple[list[Any], str]:
    """Nodes computing a layer's additive bias as one float tensor [1|batch, heads, seq, seq] (the shape
    both our plugin and ONNX Runtime's attention ops take); returns (nodes, tensor name).

    Several bias terms are summed; a term that broadcasts (e.g. [1, 1, seq, seq] or [heads, seq, seq]) is
    expanded against [1, heads, seq, seq], with seq read from the Q projection at run time."""
    from onnx import helper, numpy_helper

    c = layer.candidate
    nodes: list[Any] = []
    tensor = layer.bias_terms[0]
    for i, term in enumerate(layer.bias_terms[1:]):
        nodes.append(helper.make_node("Add", [tensor, term], [f"{prefix}_bias_sum{i}"], name=f"{prefix}_bias_sum{i}"))
        tensor = f"{prefix}_bias_sum{i}"
    if layer.bias_expand:
        head_dims = numpy_helper.from_array(np.array([1, layer.num_heads], np.int64), f"{prefix}_bias_heads")
        nodes += [
            helper.make_node("Constant", [], [f"{prefix}_bias_heads"], value=head_dims),
            helper.make_node("Shape", [c.q_src], [f"{prefix}_bias_seq"], start=1, end=2),
            helper.make_node("Concat", [f"{prefix}_bias_heads", f"{prefix}_bias_seq", f"{prefix}_bias_seq"],
                             [f"{prefix}_bias_shape"], axis=0),
            helper.make_node("Expand", [tensor, f"{prefix}_bias_shape"], [f"{prefix}_bias_full"]),
        ]
        tensor = f"{prefix}_bias_full"
    return nodes, tensor
