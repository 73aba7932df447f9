"""Graph clean-up after export: constant folding, simplification, shape inference, stable node names.

Simplification is onnxslim's (a maintained library: constant folding, dead-node and identity removal,
common sub-expression elimination); we add only what it leaves: shapes inferred on every intermediate
tensor (TensorRT's parser and our lint read them) and node names that are the same on every export of
the same model, scoped by module path where the exporter recorded one, so that TensorRT's per-layer
profile can be traced back to the PyTorch module.

Weights are never rewritten here: a 2:4 sparse weight stays a 2:4 sparse initializer (onnxslim folds
constants but does not change initializer values it does not compute, and we check it in the tests).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from trt_edge.log import get_logger

log = get_logger("export")

# Module prefix of our export wrapper (`LogitsOnly.inner`), which says nothing useful.
_STRIP_PREFIXES = ("inner.",)
_EXPORTER_METADATA = ("namespace", "pkg.torch.onnx.class_hierarchy", "pkg.torch.onnx.fx_node",
                      "pkg.torch.onnx.name_scopes", "pkg.torch.onnx.stack_trace")


def cleanup_model(model: Any, *, slim: bool = True, infer_shapes: bool = True, rename: bool = True,
                  layernorm: bool = False) -> tuple[Any, dict[str, Any]]:
    """Simplify `model` and give its nodes stable names; returns the new model and what was done.

    `layernorm` decomposes LayerNormalization into primitive ops afterwards (for TensorRT 8.5).
    """
    import onnx

    info: dict[str, Any] = {"nodes_before": len(model.graph.node)}
    if slim:
        import onnxslim

        try:
            slimmed = onnxslim.slim(model)
        except Exception as exc:  # a simplifier bug must not lose the export: keep the unsimplified graph
            log.warning("onnxslim failed (%s); keeping the graph unsimplified", str(exc).splitlines()[0][:200])
            info["onnxslim"] = f"failed: {type(exc).__name__}"
        else:
            if isinstance(slimmed, onnx.ModelProto):
                model = slimmed
                info["onnxslim"] = str(getattr(onnxslim, "__version__", "unknown"))
    if layernorm:
        info["layernorm_decomposed"] = decompose_layernorm(model)
    if infer_shapes:
        try:
            model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=False, data_prop=True)
        except Exception as exc:
            log.warning("shape inference failed (%s); intermediate shapes are left unknown", str(exc)[:200])
    if rename:
        stable_node_names(model.graph)
    info["nodes_after"] = len(model.graph.node)
    info["op_counts"] = dict(sorted(Counter(n.op_type for n in model.graph.node).items()))
    return model, info


def _scope(node: Any) -> str:
    """The module path a node came from (`bert.encoder.layer.0.output.dense`), or ''.

    Read from the dynamo exporter's `namespace` metadata
    (`: Root/inner: BertFor.../inner.bert.encoder.layer.0.output.dense: Linear/linear_5: aten.linear`)
    or from a TorchScript-style name (`/inner/bert/encoder/layer.0/output/dense/MatMul`).
    """
    for prop in node.metadata_props:
        if prop.key == "namespace" and "/" in prop.value:
            names = [seg.split(": ")[0].strip() for seg in prop.value.split("/")[:-1]]
            names = [n for n in names if n]
            if names:
                return _clean_scope(names[-1])
    name = node.name or ""
    if name.startswith("/") and name.count("/") >= 2:
        return _clean_scope(".".join(p for p in name.strip("/").split("/")[:-1] if p))
    return ""


def _clean_scope(scope: str) -> str:
    if scope.startswith("_empty_nn_module_stack"):  # torch's placeholder for "no module": the root
        return ""
    for prefix in _STRIP_PREFIXES:
        while scope.startswith(prefix):
            scope = scope[len(prefix):]
    if scope in _STRIP_PREFIXES or scope + "." in _STRIP_PREFIXES:
        return ""
    return re.sub(r"[^A-Za-z0-9_.]", "_", scope)


def stable_node_names(graph: Any, strip_metadata: bool = True) -> None:
    """Rename every node `/module/path/OpType_k` (k counts per module and op, in graph order).

    Deterministic for the same model and exporter, unique, free of the exporters' global counters
    (`node_Add_123`) that shift whenever anything upstream changes, and in the TorchScript exporter's
    `/a/b/Op` form that other tools (and `trt_edge.sparsity.onnx_check`) read module scopes from.
    `strip_metadata` drops the dynamo exporter's per-node metadata (stack traces with this machine's
    file paths, FX node dumps) once the scope is in the name, so two exports are byte-comparable.
    """
    counts: Counter[tuple[str, str]] = Counter()
    for node in graph.node:
        scope = _scope(node)
        key = (scope, node.op_type)
        index = counts[key]
        counts[key] += 1
        prefix = "/" + scope.replace(".", "/") + "/" if scope else "/"
        node.name = f"{prefix}{node.op_type}_{index}"
        if strip_metadata:
            keep = [(p.key, p.value) for p in node.metadata_props if p.key not in _EXPORTER_METADATA]
            del node.metadata_props[:]
            for key_, value in keep:
                node.metadata_props.add(key=key_, value=value)


def decompose_layernorm(model: Any) -> int:
    """Replace every last-axis LayerNormalization by ReduceMean/Sub/Mul/ReduceMean/Add/Sqrt/Div/Mul/Add.

    TensorRT 8.5 (JetPack 5.1) has no LayerNormalization importer; the primitive form is what exporters
    wrote before opset 17 and what 8.5 imports (and fuses into its own normalization kernels). Nodes whose
    mean/inv-std outputs are used, or that normalise other axes, are left as they are. Returns the count.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    nodes: list[Any] = []
    count = 0
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (node.op_type != "LayerNormalization" or node.domain not in ("", "ai.onnx")
                or int(attrs.get("axis", -1)) != -1 or any(o in used for o in node.output[1:] if o)):
            nodes.append(node)
            continue
        scope = node.name.rsplit("/", 1)[0] if node.name and "/" in node.name else f"/layernorm_{count}"
        tag = f"{scope}/ln{count}"
        eps = numpy_helper.from_array(np.array(float(attrs.get("epsilon", 1e-5)), dtype=np.float32), f"{tag}/eps")
        graph.initializer.append(eps)
        axes_name: str | None = None
        if opset >= 18:  # ReduceMean takes its axes as an input from opset 18 on
            axes = numpy_helper.from_array(np.array([-1], dtype=np.int64), f"{tag}/axes")
            graph.initializer.append(axes)
            axes_name = axes.name
        x, scale = node.input[0], node.input[1]
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        y = node.output[0]
        t = {k: f"{tag}/{k}" for k in ("mean", "centered", "squared", "var", "var_eps", "std", "normed", "scaled")}
        nodes += [
            _reduce_mean(x, t["mean"], f"{scope}/ReduceMean", axes_name),
            helper.make_node("Sub", [x, t["mean"]], [t["centered"]], name=f"{scope}/Sub"),
            helper.make_node("Mul", [t["centered"], t["centered"]], [t["squared"]], name=f"{scope}/Mul"),
            _reduce_mean(t["squared"], t["var"], f"{scope}/ReduceMean", axes_name),
            helper.make_node("Add", [t["var"], eps.name], [t["var_eps"]], name=f"{scope}/Add"),
            helper.make_node("Sqrt", [t["var_eps"]], [t["std"]], name=f"{scope}/Sqrt"),
            helper.make_node("Div", [t["centered"], t["std"]], [t["normed"]], name=f"{scope}/Div"),
            helper.make_node("Mul", [t["normed"], scale], [t["scaled"] if bias else y], name=f"{scope}/Mul"),
        ]
        if bias:
            nodes.append(helper.make_node("Add", [t["scaled"], bias], [y], name=f"{scope}/Add"))
        count += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return count


def _reduce_mean(x: str, out: str, name: str, axes_name: str | None) -> Any:
    """ReduceMean over the last axis, keeping it: axes as an attribute (opset <= 17) or an input (18+)."""
    from onnx import helper

    if axes_name is None:
        return helper.make_node("ReduceMean", [x], [out], name=name, axes=[-1], keepdims=1)
    return helper.make_node("ReduceMean", [x, axes_name], [out], name=name, keepdims=1)


def recompose_layernorm(model: Any) -> int:
    """Turn `decompose_layernorm`'s primitive ops back into LayerNormalization (opset 17+); returns the count.

    The decomposed form is for TensorRT 8.5 only. ONNX Runtime's transformer optimizer cannot fuse it (its
    LayerNorm fusion wants `Pow(x, 2)`, and its simplified-LayerNorm fusion raises a TypeError on
    `Mul(x, x)`, onnxruntime 1.32), so a CPU graph made from such an export first gets the one op back.
    Only the exact pattern written above is matched: ReduceMean, Sub, Mul(d, d), ReduceMean, Add(eps),
    Sqrt, Div, Mul(scale) and an optional Add of a constant bias, each intermediate used only there.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 17:
        return 0
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in dict.fromkeys(n.input):  # a node reading a tensor twice (Mul(d, d)) is one consumer
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}

    def only_user(tensor: str, op_type: str) -> Any | None:
        users = consumers.get(tensor, [])
        if tensor in outputs or len(users) != 1 or users[0].op_type != op_type:
            return None
        return users[0]

    def last_axis_mean(node: Any) -> bool:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if int(attrs.get("keepdims", 1)) != 1:
            return False
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1:
            value = constants.get(node.input[1])
            axes = None if value is None else value.reshape(-1).tolist()
        return axes is not None and list(axes) == [-1]

    # Nodes are keyed by their first output (unique in a valid graph): protobuf may wrap one node in a
    # new Python object on every iteration, so object identity is not a key.
    replaced: dict[str, Any] = {}  # the pattern's first ReduceMean output -> its LayerNormalization
    dropped: set[str] = set()
    spare: set[str] = set()  # the epsilon and axes constants the patterns used
    for mean in graph.node:
        if mean.op_type != "ReduceMean" or not last_axis_mean(mean):
            continue
        x = mean.input[0]
        sub = only_user(mean.output[0], "Sub")
        if sub is None or list(sub.input) != [x, mean.output[0]]:
            continue
        centered = sub.output[0]
        users = consumers.get(centered, [])
        square = next((n for n in users if n.op_type == "Mul" and list(n.input) == [centered, centered]), None)
        div = next((n for n in users if n.op_type == "Div" and list(n.input[:1]) == [centered]), None)
        if square is None or div is None or len(users) != 2 or centered in outputs:
            continue
        var = only_user(square.output[0], "ReduceMean")
        add = only_user(var.output[0], "Add") if var is not None and last_axis_mean(var) else None
        if var is None or add is None or add.input[0] != var.output[0]:
            continue
        eps = constants.get(add.input[1])
        sqrt = only_user(add.output[0], "Sqrt")
        if eps is None or eps.size != 1 or sqrt is None or div.input[1] != sqrt.output[0]:
            continue
        scale_mul = only_user(div.output[0], "Mul")
        if (scale_mul is None or scale_mul.input[0] != div.output[0] or scale_mul.input[1] not in constants
                or len(consumers.get(sqrt.output[0], [])) != 1):
            continue
        chain = [mean, sub, square, var, add, sqrt, div, scale_mul]
        inputs = [x, scale_mul.input[1]]
        y = scale_mul.output[0]
        bias_add = only_user(y, "Add")
        if bias_add is not None and bias_add.input[0] == y:
            bias = constants.get(bias_add.input[1])
            if bias is not None and bias.ndim == 1:
                chain.append(bias_add)
                inputs.append(bias_add.input[1])
                y = bias_add.output[0]
        name = mean.name.rsplit("/", 1)[0] + "/LayerNormalization" if "/" in mean.name else ""
        replaced[mean.output[0]] = helper.make_node("LayerNormalization", inputs, [y], name=name or None,
                                                    axis=-1, epsilon=float(eps.reshape(-1)[0]))
        dropped.update(n.output[0] for n in chain[1:])
        spare.update([add.input[1], *mean.input[1:], *var.input[1:]])
    if not replaced:
        return 0
    nodes = [replaced.get(n.output[0], n) for n in graph.node if not n.output or n.output[0] not in dropped]
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input} | outputs
    keep = [i for i in graph.initializer if i.name not in spare or i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return len(replaced)
