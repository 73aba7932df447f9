"""The one index over an ONNX graph, and the one node-attribute reader.

Every pass that reads a graph (the attention matcher and its emitters, the TensorRT lint, the 2:4 check
of exported weights, the Q/DQ placement) needs the same few maps: which node produces a tensor, which
nodes read it, which tensors are stored constants and what their values are, and the element type and
rank the graph declares. They are built here once, the same way for all of them, so two passes can never
disagree about what counts as a constant.

This module imports only onnx and numpy (see docs/DEVELOPING.md, "The ONNX graph library").
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Constant-node attributes that carry a value, and the dtype ONNX gives each.
_CONSTANT_ATTRIBUTES = {"value": None, "value_float": np.float32, "value_floats": np.float32,
                        "value_int": np.int64, "value_ints": np.int64}


def attr(node: Any, name: str, default: Any = None) -> Any:
    """The value of attribute `name` of an ONNX node (ints, floats, lists, tensors as onnx returns them;
    strings decoded to str), or `default` when the node does not set it."""
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            value = helper.get_attribute_value(attribute)
            return value.decode() if isinstance(value, bytes) else value
    return default


class GraphIndex:
    """Producers, consumers, initializers, constant values and declared types of one onnx.GraphProto.

    Built once per graph and read only: a pass that changes the graph builds a new index. Constant values
    are converted to numpy on first use (a model's weights are not copied unless a pass asks for them).
    """

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.nodes: list[Any] = list(graph.node)
        self.producer: dict[str, Any] = {}
        self.consumers: dict[str, list[Any]] = {}
        for node in self.nodes:
            for out in node.output:
                if out:
                    self.producer[out] = node
            for inp in node.input:
                if inp:
                    self.consumers.setdefault(inp, []).append(node)
        self.initializers: dict[str, Any] = {t.name: t for t in graph.initializer}
        self.graph_outputs = {o.name for o in graph.output}
        # The inputs a caller feeds (an input that is also an initializer is a stored default, not fed).
        self.graph_inputs = [i for i in graph.input if i.name not in self.initializers]
        self.types: dict[str, tuple[int, int | None]] = {}
        for value in [*graph.input, *graph.value_info, *graph.output]:
            tensor_type = value.type.tensor_type
            rank = len(tensor_type.shape.dim) if tensor_type.HasField("shape") else None
            self.types[value.name] = (tensor_type.elem_type, rank)
        for t in graph.initializer:
            self.types[t.name] = (t.data_type, len(t.dims))
        self._values: dict[str, np.ndarray | None] = {}

    def op(self, tensor: str) -> str | None:
        """The op type of the node producing `tensor` (None for a graph input or initializer)."""
        node = self.producer.get(tensor)
        return None if node is None else str(node.op_type)

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer or of a `Constant` node's output; None for a computed tensor."""
        if not name:
            return None
        if name not in self._values:
            self._values[name] = self._read_constant(name)
        return self._values[name]

    def _read_constant(self, name: str) -> np.ndarray | None:
        from onnx import helper, numpy_helper

        if name in self.initializers:
            return np.asarray(numpy_helper.to_array(self.initializers[name]))
        node = self.producer.get(name)
        if node is None or node.op_type != "Constant" or len(node.output) != 1:
            return None
        for attribute in node.attribute:
            if attribute.name in _CONSTANT_ATTRIBUTES:
                value = helper.get_attribute_value(attribute)
                if attribute.name == "value":
                    return np.asarray(numpy_helper.to_array(value))
                return np.asarray(value, dtype=_CONSTANT_ATTRIBUTES[attribute.name])
        return None

    def is_scalar_constant(self, tensor: str) -> bool:
        """Whether `tensor` is a stored constant holding one element (a scale factor, say)."""
        value = self.constant(tensor)
        return value is not None and value.size == 1

    def is_constant(self, name: str) -> bool:
        """Whether `name` is known before run time: an initializer, or a Constant/ConstantOfShape whose
        inputs are constant (what TensorRT folds at build time)."""
        if name in self.initializers:
            return True
        node = self.producer.get(name)
        return node is not None and node.op_type in ("Constant", "ConstantOfShape") and all(
            self.is_constant(i) for i in node.input if i)

    def rank(self, name: str) -> int | None:
        """The rank the graph declares for `name` (after shape inference, if the caller ran it), or None."""
        return self.types.get(name, (0, None))[1]

    def is_used(self, name: str) -> bool:
        """Whether a node or a graph output reads `name`."""
        return bool(name) and (name in self.graph_outputs or bool(self.consumers.get(name)))
