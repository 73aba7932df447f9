"""A roofline estimate: the latency floor of a model on each catalog device, from its FLOPs and bytes.

FLOPs are counted on the ONNX graph at a concrete batch and sequence length: every MatMul and Gemm,
2 x M x N x K (attention score and context products included; element-wise work is ignored, it is
small next to the GEMMs of an encoder). Bytes are the GEMM weights at the precision asked, each weight
read once per inference; for `+2:4` rows every GEMM weight is assumed 2:4-sparse: twice the tensor
rate and compressed weights (half the values plus 2-bit positions). The floor on a device is
max(FLOPs / peak, bytes / bandwidth) with the peaks of `trt_edge/data/devices.yaml`. It is an ESTIMATE
from datasheet figures, several of which are marked unverified in the catalog, of a bound no real
engine reaches (kernels never run at peak); useful to compare devices and precisions, never as a
prediction.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trt_edge.devices import Device, devices
from trt_edge.errors import TrtEdgeError

BYTES = {"fp32": 4, "fp16": 2, "int8": 1}
# Share of the dense bytes a 2:4-compressed weight keeps: half the values plus 2 bits of position per kept
# value (the sparse tensor core format; an estimate, metadata layout unverified).
SPARSE_BYTES = {"fp16": (2 * 2 + 2 * 2 / 8) / (4 * 2), "int8": (2 * 1 + 2 * 2 / 8) / (4 * 1)}
NOTE = ("Estimate from datasheet peaks (several unverified, see each row's `unverified`): GEMM FLOPs / peak "
        "tensor throughput vs GEMM weight bytes / memory bandwidth. A floor no engine reaches, not a prediction.")


def _fix_inputs(model: Any, batch: int, seq: int) -> None:
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                continue
            dim.ClearField("dim_param")
            dim.dim_value = batch if axis == 0 else seq


def _shape_map(model: Any) -> dict[str, list[int | None]]:
    """Inferred shapes by tensor name; a dimension shape inference left symbolic is None."""
    out: dict[str, list[int | None]] = {}
    for value in [*model.graph.value_info, *model.graph.input, *model.graph.output]:
        if value.type.tensor_type.HasField("shape"):
            out[value.name] = [int(d.dim_value) if d.HasField("dim_value") else None
                               for d in value.type.tensor_type.shape.dim]
    for init in model.graph.initializer:
        out[init.name] = [int(d) for d in init.dims]
    return out


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def _gemm_flops(op: str, a: list[int | None], b: list[int | None], out: list[int | None],
                trans_a: int = 0, trans_b: int = 0) -> int | None:
    """2 x batch x M x N x K, each factor taken from whichever of A, B and the output knows it: ONNX
    shape inference leaves some dimensions symbolic (after the attention-mask broadcast, say) even at
    fixed input shapes, but never all three views of the same dimension."""
    if op == "Gemm":
        if len(a) != 2 or len(b) != 2:
            return None
        m, k = (a[1], a[0]) if trans_a else (a[0], a[1])
        kb, n = (b[1], b[0]) if trans_b else (b[0], b[1])
        m, n, k = _first(m, out[0] if out else None), _first(n, out[1] if len(out) > 1 else None), _first(k, kb)
        return 2 * m * n * k if None not in (m, n, k) else None  # type: ignore[operator]
    if len(a) < 2 or len(b) < 1:
        return None
    k = _first(a[-1], b[-2] if len(b) >= 2 else b[0])
    m = _first(a[-2], out[-2] if len(out) >= 2 else None)
    n = _first(b[-1] if len(b) >= 2 else 1, out[-1] if out else None)
    batch = 1
    rank = max(len(a), len(b), len(out)) - 2
    for i in range(1, rank + 1):  # batch dimensions, from the right, broadcast
        dims = [s[-2 - i] for s in (out, a, b) if len(s) >= 2 + i]
        known = [d for d in dims if d is not None]
        if not known:
            return None
        batch *= max(known)
    if None in (m, n, k):
        return None
    return 2 * batch * m * n * k  # type: ignore[operator]


def model_costs(onnx_path: str | os.PathLike[str], batch: int = 1, seq: int = 128) -> dict[str, Any]:
    """GEMM FLOPs, GEMM weight parameters and the count of GEMMs whose shape could not be inferred."""
    import onnx

    path = Path(onnx_path)
    if not path.is_file():
        raise TrtEdgeError(f"{path}: no such ONNX file")
    model = onnx.load(str(path), load_external_data=False)
    _fix_inputs(model, batch, seq)
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError and friends
        raise TrtEdgeError(f"{path}: shape inference failed at batch={batch} seq={seq}: {exc}") from exc
    shapes = _shape_map(model)
    inits = {i.name for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}

    def weight_source(name: str) -> str | None:
        # A weight reaches a GEMM directly, or through DequantizeLinear (after a QuantizeLinear when the
        # Q/DQ graph keeps fp32 weights for TensorRT to fold), Transpose, Cast.
        seen = 0
        while name not in inits and seen < 4:
            node = producers.get(name)
            if node is None or node.op_type not in ("DequantizeLinear", "QuantizeLinear", "Transpose", "Cast",
                                                    "Identity"):
                return None
            name = node.input[0]
            seen += 1
        return name if name in inits else None

    flops = 0
    weight_params = 0
    gemms = unknown = 0
    counted: set[str] = set()
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm", "MatMulInteger"):
            continue
        gemms += 1
        a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
        out = shapes.get(node.output[0]) or []
        attrs = {x.name: int(x.i) for x in node.attribute if x.name in ("transA", "transB")}
        f = None if a is None or b is None else _gemm_flops(node.op_type, a, b, out, attrs.get("transA", 0),
                                                             attrs.get("transB", 0))
        if f is None:
            unknown += 1
            continue
        flops += f
        w = weight_source(node.input[1])
        if w is not None and w not in counted and b is not None and None not in b:
            counted.add(w)
            weight_params += math.prod(d for d in b if d is not None)
    return {"batch": batch, "seq": seq, "gemm_flops": flops, "gemm_weight_params": weight_params,
            "gemms": gemms, "gemms_without_shape": unknown}


def _peak(dev: Device, precision: str, sparse: bool) -> tuple[float | None, list[str]]:
    """Peak GPU tensor throughput in TOPS/TFLOPS and the catalog fields it used."""
    if precision == "fp16":
        value, used = dev.figure("gpu_fp16_tflops_dense"), ["gpu_fp16_tflops_dense"]
    elif precision == "int8":
        value, used = dev.figure("gpu_int8_tops_dense"), ["gpu_int8_tops_dense"]
    else:
        return None, []
    if value is None:
        return None, used
    if sparse:
        if not dev.sparsity_2to4:
            return None, used
        value = 2 * float(value)
    return float(value), used


def roofline(costs: dict[str, Any], precisions: Sequence[str] = ("fp16", "int8"), sparse: bool = False,
             device_keys: Sequence[str] | None = None) -> dict[str, Any]:
    """Latency floor per device and precision for the costs of `model_costs`."""
    rows = []
    table = devices()
    for key, dev in table.items():
        if device_keys and key not in device_keys:
            continue
        bandwidth = dev.figure("memory_bandwidth_gbs")
        for precision in precisions:
            if precision not in BYTES:
                raise TrtEdgeError(f"unknown roofline precision {precision!r}; use one of {', '.join(BYTES)}")
            for sp in ((False, True) if sparse else (False,)):
                peak, used = _peak(dev, precision, sp)
                if peak is None or bandwidth is None:
                    continue
                weight_bytes = costs["gemm_weight_params"] * BYTES[precision]
                if sp:
                    weight_bytes *= SPARSE_BYTES[precision]
                compute_ms = costs["gemm_flops"] / (peak * 1e12) * 1e3
                memory_ms = weight_bytes / (float(bandwidth) * 1e9) * 1e3
                unverified = sorted({f for f in [*used, "memory_bandwidth_gbs"] if f in dev.unverified})
                rows.append({"device": key, "name": dev.name, "precision": precision + ("+2:4" if sp else ""),
                             "peak_tops": peak, "bandwidth_gbs": float(bandwidth),
                             "compute_ms": round(compute_ms, 5), "memory_ms": round(memory_ms, 5),
                             "floor_ms": round(max(compute_ms, memory_ms), 5),
                             "bound": "compute" if compute_ms >= memory_ms else "memory",
                             "unverified": unverified})
    return {"note": NOTE, "costs": costs, "rows": rows}
