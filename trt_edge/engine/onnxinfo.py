"""What the build needs to know about an ONNX file before TensorRT sees it: its inputs (names, types,
dynamic axes: they drive the optimization profiles) and whether the parser would reject it.

The check runs the export area's TensorRT lint (`trt_edge.export.lint`) when it is installed, and
`onnx.checker` always, so a broken file is refused here in one line instead of on the device.
"""

from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trt_edge.engine.plan import OnnxInput
from trt_edge.errors import TrtEdgeError

if TYPE_CHECKING:
    from trt_edge.tasks.spec import TaskSpec

_ELEM_TYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
               10: "float16", 11: "float64", 16: "bfloat16", 17: "float8e4m3fn"}


def _load(path: Path) -> Any:
    if not path.is_file():
        raise TrtEdgeError(f"ONNX file not found: {path}")
    stat = path.stat()
    return _load_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _load_cached(path: str, mtime_ns: int, size: int) -> Any:
    # Keyed by mtime and size too, so an edited file is read again; the stage reads one file thrice.
    import onnx

    try:
        return onnx.load(path, load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends: not an ONNX file at all
        raise TrtEdgeError(f"{path}: not a readable ONNX model ({type(exc).__name__}); re-export it") from exc


def onnx_inputs(path: str | os.PathLike[str]) -> list[OnnxInput]:
    """The graph inputs that are not initializers, with dims as int, dim_param string or None."""
    model = _load(Path(path))
    inits = {i.name for i in model.graph.initializer}
    return [_value_info(value) for value in model.graph.input if value.name not in inits]


def onnx_outputs(path: str | os.PathLike[str]) -> list[OnnxInput]:
    """The graph outputs, described like the inputs (name, element type name, dims): what a serving
    config (`engine.triton`) declares for them."""
    return [_value_info(value) for value in _load(Path(path)).graph.output]


def _value_info(value: Any) -> OnnxInput:
    tensor = value.type.tensor_type
    dims: list[int | str | None] = []
    for d in tensor.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(str(d.dim_param))
        else:
            dims.append(None)
    return OnnxInput(value.name, _ELEM_TYPES.get(int(tensor.elem_type), f"type{tensor.elem_type}"), tuple(dims))


def onnx_task(path: str | os.PathLike[str]) -> TaskSpec | None:
    """The task of an ONNX file (the `trt_edge.task` its exporter recorded, else its inputs and output:
    `task_for_onnx`), None for a graph of no known task; an unreadable file is refused in one line."""
    from trt_edge.tasks.spec import task_for_onnx

    model = _load(Path(path))
    try:
        return task_for_onnx(model, str(path))
    except TrtEdgeError:  # inputs of no task: the runner says what it expected
        return None


def task_name(path: str | os.PathLike[str]) -> str | None:
    """The name of an ONNX file's task for a manifest (None: of no known task)."""
    spec = onnx_task(path)
    return spec.name if spec is not None else None


def external_data_files(path: str | os.PathLike[str]) -> list[Path]:
    """The external-data files an ONNX model refers to (they travel with it into a bundle)."""
    model = _load(Path(path))
    base = Path(path).parent
    names: set[str] = set()
    for init in model.graph.initializer:
        if init.data_location == 1:  # TensorProto.EXTERNAL
            for entry in init.external_data:
                if entry.key == "location":
                    names.add(entry.value)
    outside = [n for n in sorted(names) if not n or n != os.path.basename(n) or n in (".", "..") or "\\" in n]
    if outside:
        raise TrtEdgeError(f"{path}: external data {outside[0][:80]!r} is not a file next to the model; refusing data "
                           "from outside its folder (re-export with the data beside the ONNX)")
    missing = [n for n in sorted(names) if not (base / n).is_file()]
    if missing:
        raise TrtEdgeError(f"{path}: external data file(s) {', '.join(missing)} missing next to it; re-export")
    return [base / n for n in sorted(names)]


def has_qdq(path: str | os.PathLike[str]) -> bool:
    """Whether the graph holds QuantizeLinear/DequantizeLinear nodes (an explicitly quantized model)."""
    model = _load(Path(path))
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def check_onnx(path: str | os.PathLike[str], trt_version: str | None = None, dla: bool = False) -> list[str]:
    """Refuse an ONNX TensorRT's parser would reject (one line); return the lint's warnings."""
    import onnx

    p = Path(path)
    _load(p)
    try:
        onnx.checker.check_model(str(p))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrtEdgeError(f"{p}: fails onnx.checker ({first}); TensorRT's parser would reject it: re-export") from exc
    return _export_lint(p, trt_version, dla)


def _export_lint(path: Path, trt_version: str | None, dla: bool) -> list[str]:
    """The export area's TensorRT lint (`trt_edge.export.lint.lint_file`), where it is installed."""
    try:
        lint = importlib.import_module("trt_edge.export.lint")
    except ImportError:
        return []
    lint_file = getattr(lint, "lint_file", None)
    if lint_file is None or trt_version is None:
        return []
    try:
        result = lint_file(path, trt_version, dla)
    except TrtEdgeError as exc:  # e.g. no lint table for this TensorRT version
        return [f"lint skipped: {exc}"]
    errors = [f"{f.code}: {f.message}" for f in getattr(result, "errors", [])]
    if errors:
        more = f" (and {len(errors) - 1} more; run trt-edge lint)" if len(errors) > 1 else ""
        raise TrtEdgeError(f"{path}: TensorRT {trt_version} would reject it: {errors[0]}{more}")
    return [f"lint {f.code}: {f.message}" for f in getattr(result, "warnings", [])]
