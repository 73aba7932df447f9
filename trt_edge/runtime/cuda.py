"""Device memory, streams and CUDA graphs for the TensorRT runner, over whichever CUDA binding is installed.

Three idioms exist in TensorRT code (facts §3.2), and a Jetson may have any of them:

1. cuda-python: `cuda.bindings.runtime` (cuda-python >= 12.6; the only layout in 13.x, so JetPack 7 /
   CUDA 13 needs it), falling back to the old `from cuda import cudart`. Every call returns
   `(err, *results)`, checked by `_check`.
2. PyCUDA (the Jetson habit): `pycuda.driver` with `pycuda.autoinit`. No CUDA graphs here.
3. PyTorch CUDA tensors, where torch has CUDA (NVIDIA's Jetson wheels do).

`open_backend("auto")` picks the first that imports, in that order. Each backend hands out raw device
pointers (ints) for `set_tensor_address` and a stream handle for `execute_async_v3`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError

BACKENDS = ("cuda-python", "pycuda", "torch")


class CudaBackend(ABC):
    """Allocation, copies, one stream, and (where supported) CUDA-graph capture."""

    name = "cuda"
    supports_graphs = False

    @abstractmethod
    def malloc(self, nbytes: int) -> int: ...

    @abstractmethod
    def free(self, ptr: int) -> None: ...

    @abstractmethod
    def htod(self, ptr: int, array: np.ndarray) -> None:
        """Copy `array` (C-contiguous) to device memory at `ptr`, on the stream."""

    @abstractmethod
    def dtoh(self, array: np.ndarray, ptr: int) -> None:
        """Copy device memory at `ptr` into `array` (C-contiguous), on the stream."""

    @property
    @abstractmethod
    def stream(self) -> int:
        """The stream handle for `execute_async_v3`."""

    @abstractmethod
    def synchronize(self) -> None: ...

    def begin_capture(self) -> None:
        raise TrtEdgeError(f"{self.name}: CUDA graphs are not supported with this binding")

    def end_capture(self) -> Any:
        raise TrtEdgeError(f"{self.name}: CUDA graphs are not supported with this binding")

    def launch(self, graph: Any) -> None:
        raise TrtEdgeError(f"{self.name}: CUDA graphs are not supported with this binding")

    def destroy_graph(self, graph: Any) -> None:
        return None

    def close(self) -> None:
        return None


class CudaPythonBackend(CudaBackend):
    """cuda-python's runtime API (`cuda.bindings.runtime`, or the pre-12.6 `cuda.cudart`)."""

    name = "cuda-python"
    supports_graphs = True

    def __init__(self) -> None:
        self.cudart = _import_first(("cuda.bindings.runtime", "cuda.cudart"))
        if self.cudart is None:
            raise TrtEdgeError("cuda-python is not installed: `pip install cuda-python`")
        self._stream = self._check(self.cudart.cudaStreamCreate(), "cudaStreamCreate")

    def _check(self, result: Any, what: str) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            name = self.cudart.cudaGetErrorName(err)[1]
            raise TrtEdgeError(f"CUDA error in {what}: {name.decode() if isinstance(name, bytes) else name}")
        if not rest:
            return None
        return rest[0] if len(rest) == 1 else tuple(rest)

    def malloc(self, nbytes: int) -> int:
        return int(self._check(self.cudart.cudaMalloc(max(nbytes, 1)), "cudaMalloc"))

    def free(self, ptr: int) -> None:
        self._check(self.cudart.cudaFree(ptr), "cudaFree")

    def htod(self, ptr: int, array: np.ndarray) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.cudart.cudaMemcpyAsync(ptr, array.ctypes.data, array.nbytes, kind, self._stream),
                    "cudaMemcpyAsync(HtoD)")

    def dtoh(self, array: np.ndarray, ptr: int) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.cudart.cudaMemcpyAsync(array.ctypes.data, ptr, array.nbytes, kind, self._stream),
                    "cudaMemcpyAsync(DtoH)")

    @property
    def stream(self) -> int:
        return _handle(self._stream)

    def synchronize(self) -> None:
        self._check(self.cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def begin_capture(self) -> None:
        mode = self.cudart.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal
        self._check(self.cudart.cudaStreamBeginCapture(self._stream, mode), "cudaStreamBeginCapture")

    def end_capture(self) -> Any:
        graph = self._check(self.cudart.cudaStreamEndCapture(self._stream), "cudaStreamEndCapture")
        exec_graph = self._check(self.cudart.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        self._check(self.cudart.cudaGraphDestroy(graph), "cudaGraphDestroy")
        return exec_graph

    def launch(self, graph: Any) -> None:
        self._check(self.cudart.cudaGraphLaunch(graph, self._stream), "cudaGraphLaunch")

    def destroy_graph(self, graph: Any) -> None:
        self._check(self.cudart.cudaGraphExecDestroy(graph), "cudaGraphExecDestroy")

    def close(self) -> None:
        self._check(self.cudart.cudaStreamDestroy(self._stream), "cudaStreamDestroy")


class PyCudaBackend(CudaBackend):
    """PyCUDA: `pycuda.autoinit` makes the context; allocations are kept alive by reference."""

    name = "pycuda"

    def __init__(self) -> None:
        try:
            importlib.import_module("pycuda.autoinit")
            self.driver: Any = importlib.import_module("pycuda.driver")
        except ImportError as exc:
            raise TrtEdgeError("PyCUDA is not installed: `pip install pycuda`") from exc
        self._stream = self.driver.Stream()
        self._allocs: dict[int, Any] = {}

    def malloc(self, nbytes: int) -> int:
        alloc = self.driver.mem_alloc(max(nbytes, 1))
        self._allocs[int(alloc)] = alloc
        return int(alloc)

    def free(self, ptr: int) -> None:
        alloc = self._allocs.pop(ptr, None)
        if alloc is not None:
            alloc.free()

    def htod(self, ptr: int, array: np.ndarray) -> None:
        self.driver.memcpy_htod_async(ptr, array, self._stream)

    def dtoh(self, array: np.ndarray, ptr: int) -> None:
        self.driver.memcpy_dtoh_async(array, ptr, self._stream)

    @property
    def stream(self) -> int:
        return int(self._stream.handle)

    def synchronize(self) -> None:
        self._stream.synchronize()


class TorchBackend(CudaBackend):
    """PyTorch CUDA tensors as raw buffers, a torch stream, and `torch.cuda.CUDAGraph` for capture."""

    name = "torch"
    supports_graphs = True

    def __init__(self) -> None:
        try:
            self.torch: Any = importlib.import_module("torch")
        except ImportError as exc:
            raise TrtEdgeError("torch is not installed") from exc
        if not self.torch.cuda.is_available():
            raise TrtEdgeError("torch has no CUDA device here; install cuda-python or PyCUDA for the TensorRT runner")
        self._stream = self.torch.cuda.Stream()
        self._buffers: dict[int, Any] = {}
        self._graph: Any = None

    def malloc(self, nbytes: int) -> int:
        buf = self.torch.empty(max(nbytes, 1), dtype=self.torch.uint8, device="cuda")
        self._buffers[int(buf.data_ptr())] = buf
        return int(buf.data_ptr())

    def free(self, ptr: int) -> None:
        self._buffers.pop(ptr, None)

    def _view(self, ptr: int, nbytes: int) -> Any:
        for base, buf in self._buffers.items():
            if base <= ptr and ptr + nbytes <= base + buf.numel():
                return buf[ptr - base:ptr - base + nbytes]
        raise TrtEdgeError("torch backend: pointer not allocated by this runner")

    def htod(self, ptr: int, array: np.ndarray) -> None:
        src = self.torch.from_numpy(array.reshape(-1).view(np.uint8))
        with self.torch.cuda.stream(self._stream):
            self._view(ptr, array.nbytes).copy_(src, non_blocking=False)

    def dtoh(self, array: np.ndarray, ptr: int) -> None:
        with self.torch.cuda.stream(self._stream):
            host = self._view(ptr, array.nbytes).cpu()
        array.reshape(-1).view(np.uint8)[:] = host.numpy()

    @property
    def stream(self) -> int:
        return int(self._stream.cuda_stream)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def begin_capture(self) -> None:
        self._graph = self.torch.cuda.CUDAGraph()
        self._graph.capture_begin()

    def end_capture(self) -> Any:
        self._graph.capture_end()
        graph, self._graph = self._graph, None
        return graph

    def launch(self, graph: Any) -> None:
        graph.replay()


def _import_first(names: tuple[str, ...]) -> Any:
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _handle(obj: Any) -> int:
    """The raw handle of a cuda-python object: `cuda.bindings.utils.get_cuda_native_handle` where it
    exists (cuda-bindings 13 deprecates `int(obj)`), else `int(obj)` (12.x)."""
    utils = _import_first(("cuda.bindings.utils",))
    native = getattr(utils, "get_cuda_native_handle", None) if utils is not None else None
    return int(native(obj)) if callable(native) else int(obj)


def open_backend(kind: str = "auto") -> CudaBackend:
    """The device-memory backend: `auto` tries cuda-python, PyCUDA, then torch."""
    makers: dict[str, type[CudaBackend]] = {"cuda-python": CudaPythonBackend, "pycuda": PyCudaBackend,
                                            "torch": TorchBackend}
    if kind != "auto":
        if kind not in makers:
            raise TrtEdgeError(f"device_memory must be auto or one of {', '.join(BACKENDS)}, got {kind!r}")
        return makers[kind]()
    reasons = []
    for name in BACKENDS:
        try:
            return makers[name]()
        except TrtEdgeError as exc:
            reasons.append(f"{name}: {exc}")
    raise TrtEdgeError("no CUDA binding for device memory (" + "; ".join(reasons) + "); `pip install cuda-python`")
