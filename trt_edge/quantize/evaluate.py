"""ONNX Runtime helpers of the calibrate stage: sessions, tensors of interest, predictions, latency.

Calibration runs the fp32 graph with extra outputs (the tensors whose ranges we need); evaluation runs
the fp32 and Q/DQ graphs on the same token arrays so their accuracies and argmax agreement compare like
with like. Sessions are built from in-memory protos, so candidate models of the mixed-precision search
never touch the disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.lazy import lazy_import
from trt_edge.tasks.spec import padding_mask_input, task_for_inputs, task_spec

_ORT_DTYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32}


def check_model_io(model: Any, source: str) -> list[str]:
    """The model's input names, after checking it is an export of a declared task (the spec's inputs
    and output; integer token inputs for text)."""
    from trt_edge.tasks.spec import task_for_onnx

    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    outputs = [o.name for o in model.graph.output]
    try:
        spec = task_for_onnx(model, source)
    except TrtEdgeError:
        spec = task_spec(None)  # say what an export of the default task looks like
    spec.check_onnx_io(names, outputs, source)
    for value in model.graph.input:
        if value.name in names and spec.input(value.name).dtype.startswith("int") and \
                value.type.tensor_type.elem_type not in (6, 7):  # int32, int64
            raise TrtEdgeError(f"{source}: input {value.name!r} must be int32 or int64 token ids")
    return names


def session(model: Any, threads: int | None = None, disabled_optimizers: Sequence[str] | None = None) -> Any:
    """An ONNX Runtime CPU session from a ModelProto (or a path), all graph optimizations on except
    `disabled_optimizers` (None: as the model's metadata hint says, see `runtime.ort.create_session`)."""
    from trt_edge.runtime.ort import create_session

    ort = lazy_import("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    payload = model if isinstance(model, str) else model.SerializeToString()
    try:
        return create_session(payload, options, ["CPUExecutionProvider"], disabled_optimizers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise TrtEdgeError(f"ONNX Runtime cannot load the model ({str(exc).splitlines()[0][:200]})") from exc


def input_dtypes(sess: Any) -> dict[str, Any]:
    return {i.name: _ORT_DTYPES.get(i.type, np.int64) for i in sess.get_inputs()}


def with_outputs(model: Any, names: Iterable[str]) -> Any:
    """A copy of `model` that also outputs `names` (float tensors), for calibration."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    existing = {o.name for o in out.graph.output}
    for name in names:
        if name not in existing:
            out.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return out


def float_activations(model: Any) -> list[str]:
    """Every float32 tensor computed by the graph (node outputs), in graph order, by shape inference."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shape inference can fail on exotic graphs: fall back to declared types
        inferred = model
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.output)}
    names: list[str] = []
    for node in model.graph.node:
        if node.op_type in ("Constant", "Shape"):
            continue
        for o in node.output:
            if o and types.get(o) == onnx.TensorProto.FLOAT:
                names.append(o)
    return names


def output_name(sess: Any) -> str:
    """The output a task declares among the session's outputs (`check_model_io` checked the graph has it:
    `logits`, `sentence_embedding`); the first output of a graph whose inputs are no task's."""
    outputs = [o.name for o in sess.get_outputs()]
    try:
        task_for_inputs([i.name for i in sess.get_inputs()], "the model")
    except TrtEdgeError:
        return str(outputs[0])
    from trt_edge.tasks.spec import TASKS

    declared = [s.output for s in TASKS.values() if s.output in outputs]
    return declared[0] if declared else str(outputs[0])


def predict(sess: Any, arrays: dict[str, np.ndarray], lengths: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Logits for every example; batches of similar length, each trimmed to its longest example."""
    dtypes = input_dtypes(sess)
    order = np.argsort(lengths, kind="stable")
    sequence = padding_mask_input(arrays) is not None  # token arrays to trim; pixels and audio are fed whole
    chunks = []
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(int(lengths[idx].max()), 1)
        feed = {n: (arrays[n][idx, :width] if sequence and arrays[n].ndim == 2 else arrays[n][idx])
                .astype(dtypes.get(n, np.int64)) for n in dtypes}
        chunks.append(sess.run([output_name(sess)], feed)[0])
    logits = np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)
    result = np.empty_like(logits)
    result[order] = logits
    return result


def latency_ms(sessions: Sequence[Any], feed: dict[str, np.ndarray], runs: int, warmup: int = 10,
               chunk: int = 20) -> list[float]:
    """Median latency (ms) of each session on the same feed, runs interleaved in chunks so drift and
    another session's spinning threads hit every model alike.

    Each chunk is re-warmed (`trt_edge.timing.rewarm`, at least `warmup` runs) and at least `chunk` runs
    long: right after a switch the previous session's threads still spin and caches hold its weights, and
    with short chunks that transient dominated (6-run chunks read a 4 ms model as 8 ms on the 2-core
    build machine).
    """
    from trt_edge.timing import interleaved

    chunk = max(1, min(chunk, runs))
    calls = []
    for sess in sessions:
        dtypes = input_dtypes(sess)
        typed = {name: feed[name].astype(dtypes[name]) for name in dtypes}
        output = output_name(sess)
        calls.append(lambda sess=sess, typed=typed, output=output: sess.run([output], typed))
    samples = interleaved(calls, rounds=-(-runs // chunk), runs=chunk, rewarm_runs=warmup)
    return [float(np.median(t)) for t in samples]
