"""TensorRT, imported on first use, and typed against `tensorrt-stubs` for mypy.

`from trt_edge.engine.trt_api import trt` gives mypy the real stubs (so every builder and runtime call
is type-checked against TensorRT 10.13's API) while at run time `trt` is a proxy that imports TensorRT
through `trt_edge.lazy.lazy_import` on the first attribute access: a machine without TensorRT gets the
install hint, and the stubs' empty namespace package is never mistaken for TensorRT. Version gates use
`hasattr`/`getattr` on the live module, never enum integers (renumbered in TensorRT 11).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from trt_edge.lazy import lazy_import

__all__ = ["LazyModule", "enum_member", "trt", "trt_version"]


class LazyModule:
    """A module proxy: `lazy_import(name)` on the first attribute access."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def _load(self) -> ModuleType:
        if self._module is None:
            self._module = lazy_import(self._name)
        return self._module

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)


if TYPE_CHECKING:
    import tensorrt as trt
else:
    trt = LazyModule("tensorrt")


def trt_version() -> str:
    """The running TensorRT's version (raises the install hint without TensorRT)."""
    return str(trt.__version__)


def enum_member(enum: Any, name: str, what: str) -> Any:
    """`enum.NAME` of the running TensorRT, or a clear error that this version lacks it."""
    from trt_edge.errors import TrtEdgeError

    member = getattr(enum, name, None)
    if member is None:
        raise TrtEdgeError(f"TensorRT {trt_version()} has no {what}.{name}; this build option needs another version")
    return member
