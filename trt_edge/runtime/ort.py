"""ONNX Runtime runner: the reference backend on any machine, and the CUDA/TensorRT EPs where installed.

The same `Runner` interface as the TensorRT runner, so accuracy checks and the profiler measure an ONNX
model on a laptop exactly as they measure an engine on a Jetson. CPU is the default; a requested
provider that this onnxruntime build does not have is an error (a silent fallback to CPU would make a
"GPU" timing a CPU timing).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.lazy import lazy_import
from trt_edge.runtime.base import Runner, TensorMeta

# ONNX Runtime's type strings ("tensor(float)") -> numpy dtypes.
_ORT_TYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}

# Short names accepted for `providers`, so configs and the CLI can say `cuda` instead of the class name.
PROVIDER_ALIASES: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}


# Model metadata key (ONNX `metadata_props`) naming ONNX Runtime graph optimizers to disable for this
# model, comma-separated. The CPU target writes it when switching a fusion off measured faster (ONNX Runtime
# 1.32's SkipLayerNormalization kernel is slower than Add + LayerNormalization on x86); every trt-edge
# session honours it, and a user's own session can pass the same list as `disabled_optimizers`.
DISABLED_OPTIMIZERS_KEY = "trt_edge.ort.disabled_optimizers"


def disabled_optimizers_hint(session: Any) -> list[str]:
    """The optimizers the loaded model asks to disable (`DISABLED_OPTIMIZERS_KEY`), in order."""
    meta = session.get_modelmeta().custom_metadata_map
    return [name.strip() for name in meta.get(DISABLED_OPTIMIZERS_KEY, "").split(",") if name.strip()]


def create_session(model: str | bytes, options: Any, providers: Sequence[str],
                   disabled_optimizers: Sequence[str] | None = None) -> Any:
    """An InferenceSession that honours the model's disabled-optimizer hint.

    `disabled_optimizers` None means "as the model's metadata says" (one extra session build when the
    model carries the hint); a list, even empty, is used as given (the CPU target measures both ways).
    Errors are onnxruntime's own; callers turn them into TrtEdgeError with the model's name.
    """
    ort = lazy_import("onnxruntime")
    if disabled_optimizers is not None:
        return ort.InferenceSession(model, sess_options=options, providers=list(providers),
                                    disabled_optimizers=list(disabled_optimizers))
    session = ort.InferenceSession(model, sess_options=options, providers=list(providers))
    hint = disabled_optimizers_hint(session)
    if hint:
        session = ort.InferenceSession(model, sess_options=options, providers=list(providers),
                                       disabled_optimizers=hint)
    return session


def ort_dtype(type_str: str) -> np.dtype[Any]:
    """numpy dtype of an ONNX Runtime type string; an unknown type is an error (no silent float32)."""
    if type_str not in _ORT_TYPES:
        raise TrtEdgeError(f"onnxruntime tensor type {type_str!r} is not supported by trt-edge's runner")
    dtype: np.dtype[Any] = np.dtype(_ORT_TYPES[type_str])
    return dtype


def _shape(shape: Sequence[Any]) -> tuple[int | str | None, ...]:
    # ORT reports a dynamic axis as its symbolic name (str) or None; a fixed one as int.
    out: list[int | str | None] = []
    for dim in shape:
        if isinstance(dim, bool):
            out.append(None)
        elif isinstance(dim, int):
            out.append(dim if dim >= 0 else None)
        elif isinstance(dim, str):
            out.append(dim)
        else:
            out.append(None)
    return tuple(out)


def resolve_providers(providers: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """Full provider names in priority order; CPU is appended as the last fallback for unsupported ops.

    A provider the installed onnxruntime lacks is refused with the list of those it has.
    """
    if not providers:
        return ["CPUExecutionProvider"]
    names = [PROVIDER_ALIASES.get(p.lower(), p) for p in providers]
    missing = [n for n in names if n not in available]
    if missing:
        raise TrtEdgeError(
            f"onnxruntime execution provider(s) {', '.join(missing)} not available in this onnxruntime "
            f"build (available: {', '.join(available)}); install onnxruntime-gpu for CUDA/TensorRT"
        )
    if "CPUExecutionProvider" not in names:
        names.append("CPUExecutionProvider")
    return names


class OnnxRuntimeRunner(Runner):
    """Run an ONNX model with ONNX Runtime.

    Args:
      onnx_path: the .onnx file (external data next to it is found by ONNX Runtime).
      providers: execution providers in priority order (`cpu`, `cuda`, `tensorrt` or full names);
        None means CPU only.
      intra_op_threads: threads per operator; None leaves ONNX Runtime's default (all cores).
      enable_profiling: write ONNX Runtime's JSON profile; its path is `profile_file` after `close()`.
    """

    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, providers: Sequence[str] | None = None,
                 intra_op_threads: int | None = None, enable_profiling: bool = False) -> None:
        super().__init__()
        self.onnx_path = Path(onnx_path)
        self.requested_providers = list(providers) if providers else None
        self.intra_op_threads = intra_op_threads
        self.enable_profiling = enable_profiling
        self.providers: list[str] = []
        self.disabled_optimizers: list[str] = []
        self.profile_file: Path | None = None
        self._session: Any = None
        self._inputs: list[TensorMeta] = []
        self._outputs: list[TensorMeta] = []
        if intra_op_threads is not None and intra_op_threads < 1:
            raise TrtEdgeError(f"intra_op_threads must be at least 1, got {intra_op_threads}")

    def activate_impl(self) -> None:
        if not self.onnx_path.is_file():
            raise TrtEdgeError(f"{self.onnx_path}: no such ONNX file")
        ort = lazy_import("onnxruntime")
        options = ort.SessionOptions()
        options.log_severity_level = 4  # failures reach the user as one TrtEdgeError line, not ORT's log too
        if self.intra_op_threads is not None:
            options.intra_op_num_threads = self.intra_op_threads
        if self.enable_profiling:
            options.enable_profiling = True
            options.profile_file_prefix = str(self.onnx_path.with_suffix("")) + "_ort_profile"
        providers = resolve_providers(self.requested_providers, ort.get_available_providers())
        try:
            self._session = create_session(str(self.onnx_path), options, providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... classes
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrtEdgeError(f"{self.onnx_path}: onnxruntime cannot load it: {first}") from exc
        self.providers = list(self._session.get_providers())
        self.disabled_optimizers = disabled_optimizers_hint(self._session)
        self._inputs = [TensorMeta(i.name, _shape(i.shape), ort_dtype(i.type)) for i in self._session.get_inputs()]
        self._outputs = [TensorMeta(o.name, _shape(o.shape), ort_dtype(o.type))
                         for o in self._session.get_outputs()]

    def deactivate_impl(self) -> None:
        if self._session is not None and self.enable_profiling:
            path = self._session.end_profiling()
            self.profile_file = Path(path) if path else None
            if self.profile_file is not None and not self.profile_file.is_absolute():
                self.profile_file = Path(os.getcwd()) / self.profile_file
        self._session = None

    def inputs_impl(self) -> Sequence[TensorMeta]:
        return self._inputs

    def outputs_impl(self) -> Sequence[TensorMeta]:
        return self._outputs

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self._outputs]
        arrays = {k: np.ascontiguousarray(v) for k, v in feed.items()}
        try:
            results = self._session.run(names, arrays)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrtEdgeError(f"{self.name}: inference failed: {first}") from exc
        return {n: np.asarray(r) for n, r in zip(names, results, strict=True)}
