"""Read TensorRT's engine-inspector JSON and the build log: which precision each layer runs in, and
whether 2:4 sparse kernels were actually picked.

Pure Python: it reads text written by `IEngineInspector` (or `trtexec --exportLayerInfo`) and by the
builder's logger, so the report is tested here on the documented formats and works on files brought
back from a device. Both inspector schemas are accepted (facts §3.4): TensorRT 10 lists `Bindings`
(names) and a combined `Format/Datatype` string per tensor; TensorRT 11 lists `I/O Tensors` (objects)
and splits the format from the data type. With `LAYER_NAMES_ONLY` verbosity the layers are bare names.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trt_edge.errors import TrtEdgeError

# Tokens in a TensorRT format/type string -> canonical precision names, most specific first.
_DTYPE_TOKENS: tuple[tuple[str, str], ...] = (
    (r"\bFP8\b|\bFloat8\b|\bE4M3\b", "fp8"),
    (r"\bFP4\b|\bE2M1\b", "fp4"),
    (r"\bBF16\b|\bBFloat16\b", "bf16"),
    (r"\bFP16\b|\bHalf\b|\bFloat16\b", "fp16"),
    (r"\bFP32\b|\bFloat\b|\bFloat32\b", "fp32"),
    (r"\bInt8\b|\bINT8\b", "int8"),
    (r"\bInt4\b|\bINT4\b", "int4"),
    (r"\bInt32\b|\bINT32\b", "int32"),
    (r"\bInt64\b|\bINT64\b", "int64"),
    (r"\bUInt8\b|\bUINT8\b", "uint8"),
    (r"\bBool\b|\bBOOL\b", "bool"),
)
_ELIGIBLE = re.compile(r"\(Sparsity\).*?(?:eligible for sparse math|eligible to use sparse tactics)\s*:\s*(.*)$",
                       re.IGNORECASE)
_PICKED = re.compile(r"\(Sparsity\).*?(?:picked sparse implementation for layers|using sparse tactics)\s*:\s*(.*)$",
                     re.IGNORECASE)


def dtype_of(text: str | None) -> str | None:
    """Canonical precision named in a TensorRT type/format string ("Row major linear FP16" -> fp16)."""
    if not text:
        return None
    for pattern, name in _DTYPE_TOKENS:
        if re.search(pattern, text, re.IGNORECASE):
            return name
    return None


@dataclass
class TensorInfo:
    """A layer input/output or engine I/O tensor as the inspector describes it."""

    name: str
    dtype: str | None = None
    format: str | None = None
    dimensions: list[int] | None = None
    io_mode: str | None = None
    profile: list[dict[str, Any]] | None = None


@dataclass
class LayerInfo:
    """One engine layer: what it is, the precision it runs in, and its sparsity fields."""

    name: str
    layer_type: str | None = None
    precision: str | None = None
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    weights_type: str | None = None
    has_sparse_weights: bool | None = None
    tactic: str | None = None
    origin: str | None = None

    @property
    def sparse_tactic(self) -> bool:
        """A sparse kernel was chosen: `HasSparseWeights: 1`, or a tactic name that says sparse
        (the name pattern is unverified on devices, facts §4)."""
        return bool(self.has_sparse_weights) or bool(self.tactic and "sparse" in self.tactic.lower())


@dataclass
class EngineInfo:
    """The parsed inspector document."""

    schema: str  # "trt10" (Bindings), "trt11" (I/O Tensors) or "unknown"
    layers: list[LayerInfo]
    io_tensors: list[TensorInfo]
    detailed: bool

    def precisions(self) -> dict[str, int]:
        """How many layers run in each precision (`unknown` where the inspector does not say)."""
        return dict(Counter(layer.precision or "unknown" for layer in self.layers))

    def sparse_layers(self) -> list[str]:
        return [layer.name for layer in self.layers if layer.sparse_tactic]


def _get(d: Mapping[str, Any], *keys: str) -> Any:
    lower = {k.lower(): v for k, v in d.items()}
    for key in keys:
        if key in d:
            return d[key]
        if key.lower() in lower:
            return lower[key.lower()]
    return None


def _tensor(d: Any) -> TensorInfo:
    if isinstance(d, str):
        return TensorInfo(name=d)
    if not isinstance(d, Mapping):
        return TensorInfo(name=str(d))
    combined = _get(d, "Format/Datatype")
    dtype_text = _get(d, "DataType", "Datatype", "Data Type") or combined
    fmt = _get(d, "Format") or combined
    dims = _get(d, "Dimensions")
    profile = _get(d, "ProfileInfo")
    return TensorInfo(
        name=str(_get(d, "Name") or ""),
        dtype=dtype_of(str(dtype_text)) if dtype_text is not None else None,
        format=str(fmt) if fmt is not None else None,
        dimensions=[int(x) for x in dims] if isinstance(dims, list) and all(isinstance(x, int) for x in dims)
        else None,
        io_mode=str(_get(d, "IOMode")) if _get(d, "IOMode") is not None else None,
        profile=list(profile) if isinstance(profile, list) else None,
    )


def _layer(d: Any) -> LayerInfo:
    if isinstance(d, str):  # LAYER_NAMES_ONLY verbosity
        return LayerInfo(name=d)
    if not isinstance(d, Mapping):
        raise TrtEdgeError(f"inspector JSON: a layer is {type(d).__name__}, expected an object or a name")
    inputs = [_tensor(t) for t in _get(d, "Inputs") or []]
    outputs = [_tensor(t) for t in _get(d, "Outputs") or []]
    weights = _get(d, "Weights")
    weights_type = dtype_of(str(_get(weights, "Type"))) if isinstance(weights, Mapping) else None
    sparse = _get(d, "HasSparseWeights", "AllowSparse")
    # The precision a layer computes in: its weights' type where it has weights (a Q/DQ conv has INT8
    # weights and may output FP16), else its first output's type, else its first input's.
    precision = weights_type or next((t.dtype for t in outputs if t.dtype), None) or next(
        (t.dtype for t in inputs if t.dtype), None)
    tactic = _get(d, "TacticName")
    return LayerInfo(
        name=str(_get(d, "Name") or ""), layer_type=_get(d, "LayerType"), precision=precision, inputs=inputs,
        outputs=outputs, weights_type=weights_type,
        has_sparse_weights=None if sparse is None else bool(int(sparse)),
        tactic=str(tactic) if tactic is not None else None,
        origin=str(_get(d, "Origin")) if _get(d, "Origin") is not None else None,
    )


def parse_engine_info(data: str | bytes | Mapping[str, Any], source: str = "inspector JSON") -> EngineInfo:
    """Parse `IEngineInspector.get_engine_information(JSON)` output (TensorRT 10 or 11 schema)."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise TrtEdgeError(f"{source}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, Mapping) or not isinstance(_get(data, "Layers"), list):
        raise TrtEdgeError(f"{source}: not engine-inspector output (no `Layers` list)")
    layers = [_layer(x) for x in _get(data, "Layers")]
    if _get(data, "I/O Tensors") is not None:
        schema, io = "trt11", [_tensor(t) for t in _get(data, "I/O Tensors")]
    elif _get(data, "Bindings") is not None:
        schema, io = "trt10", [_tensor(t) for t in _get(data, "Bindings")]
    else:
        schema, io = "unknown", []
    detailed = any(layer.layer_type is not None for layer in layers)
    return EngineInfo(schema=schema, layers=layers, io_tensors=io, detailed=detailed)


def read_engine_info(path: str | Path) -> EngineInfo:
    p = Path(path)
    if not p.is_file():
        raise TrtEdgeError(f"{p}: no such inspector JSON")
    return parse_engine_info(p.read_text(encoding="utf-8", errors="replace"), str(p))


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def parse_sparsity_log(lines: Iterable[str]) -> dict[str, list[str]]:
    """The `(Sparsity)` lines of a VERBOSE build log: eligible layers and those given sparse kernels.

    Both phrasings are read: the 8.x guide's "Layers eligible for sparse math: …" / "picked sparse
    implementation for layers: …" and the later "eligible to use sparse tactics: …" / "using sparse
    tactics: …"."""
    eligible: list[str] = []
    picked: list[str] = []
    raw: list[str] = []
    for line in lines:
        if "(Sparsity)" not in line:
            continue
        raw.append(line.rstrip())
        if m := _ELIGIBLE.search(line):
            eligible += _names(m.group(1))
        elif m := _PICKED.search(line):
            picked += _names(m.group(1))
    return {"eligible": eligible, "picked": picked, "lines": raw}


def sparsity_report(requested: bool, engine: EngineInfo | None, log_lines: Sequence[str] = ()) -> dict[str, Any]:
    """Whether sparsity was asked for and what the engine got; `warning` is set when it was asked for and
    no layer got a sparse kernel (the build then ran dense: prune first, or the tactics were slower)."""
    log = parse_sparsity_log(log_lines)
    from_inspector = engine.sparse_layers() if engine is not None else []
    sparse = sorted(set(from_inspector) | set(log["picked"]))
    report: dict[str, Any] = {
        "requested": requested,
        "eligible_layers": log["eligible"],
        "sparse_layers": sparse,
        "sparse_layers_inspector": from_inspector,
        "sparse_layers_log": log["picked"],
        "log_lines": log["lines"],
        "evidence": [name for name, ok in (("inspector", engine is not None and engine.detailed),
                                           ("log", bool(log["lines"]))) if ok],
        "warning": None,
    }
    if requested and not sparse:
        if not report["evidence"]:
            report["warning"] = ("sparsity was requested but there is no evidence either way: build with "
                                 "profiling_verbosity detailed and verbose_log to see which layers got sparse kernels")
        else:
            eligible = (f"{len(log['eligible'])} layer(s) were eligible but " if log["eligible"]
                        else "no layer was eligible and ")
            report["warning"] = (f"SPARSITY REQUESTED BUT NOT APPLIED: {eligible}no layer got a sparse kernel; "
                                 "check the weights carry the 2:4 pattern (trt-edge check-sparsity) and the "
                                 "precision is fp16/int8")
    return report


def precision_report(engine: EngineInfo | None) -> dict[str, Any]:
    """Per-layer precision (name, type, precision, sparse) and the count per precision."""
    if engine is None:
        return {"available": False, "layers": [], "counts": {}}
    return {
        "available": engine.detailed,
        "schema": engine.schema,
        "counts": engine.precisions(),
        "layers": [{"name": layer.name, "type": layer.layer_type, "precision": layer.precision,
                    "sparse": layer.sparse_tactic, "tactic": layer.tactic} for layer in engine.layers],
    }


def engine_info_dict(engine: EngineInfo) -> dict[str, Any]:
    return asdict(engine)
