"""Lazy imports of heavy or optional libraries, with an install hint when one is missing.

TensorRT, cuda-python, PyCUDA, matplotlib and onnxruntime.quantization are imported only where they are
used, so that every command's `--help` and every CPU-only path works without them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from trt_edge.errors import TrtEdgeError

_HINTS: dict[str, str] = {
    "tensorrt": "TensorRT is not installed: on a Jetson it comes with JetPack (python3-libnvinfer); "
    "elsewhere `pip install tensorrt` from NVIDIA's index",
    "cuda.bindings": "cuda-python is not installed: `pip install cuda-python`",
    "pycuda": "PyCUDA is not installed: `pip install pycuda`",
    "matplotlib": "matplotlib is not installed: `pip install matplotlib`",
    "onnxruntime": "onnxruntime is not installed: `pip install onnxruntime`",
    "onnxruntime.quantization": "onnxruntime is not installed: `pip install onnxruntime`",
    "modelopt": "NVIDIA ModelOpt is not installed: `pip install nvidia-modelopt` (benchmarks only)",
}


def lazy_import(name: str, hint: str | None = None) -> ModuleType:
    """Import `name` now, or raise `TrtEdgeError` with how to install it."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        message = hint or _HINTS.get(name) or f"{name} is not installed ({exc})"
        raise TrtEdgeError(message) from exc
    if name == "tensorrt" and not _is_real_tensorrt(module):
        raise TrtEdgeError(_HINTS["tensorrt"] + " (only type stubs were found)")
    return module


def _is_real_tensorrt(module: ModuleType) -> bool:
    # `tensorrt-stubs` installs a bare `tensorrt/` folder of .pyi files, which Python imports as an
    # empty namespace package. The real bindings always carry a version string.
    return getattr(module, "__file__", None) is not None and hasattr(module, "__version__")


def has_module(name: str) -> bool:
    """Whether `name` imports (and, for TensorRT, is the real library rather than stubs)."""
    try:
        lazy_import(name)
    except TrtEdgeError:
        return False
    return True


def tensorrt_version() -> str | None:
    """The installed TensorRT version, or None when TensorRT is absent."""
    try:
        return str(lazy_import("tensorrt").__version__)
    except TrtEdgeError:
        return None
