"""TensorRT runner: a plan checked against its manifest, run with the name-based API (TensorRT 8.5+).

`activate` checks `model.plan.json` first (TensorRT version, compute capability, plan and plugin hashes,
host code), so a mismatched plan is refused with what to rebuild instead of failing inside
`deserialize_cuda_engine`; then it loads the plan's plugins, deserializes, and creates one execution
context. `infer` sets each input's shape (`set_input_shape`), binds device buffers
(`set_tensor_address`; buffers grow and are reused), copies in, runs `execute_async_v3`, copies out.
With `cuda_graph=True` the enqueue is captured once per input-shape signature (after one plain run, as
NVIDIA's demos do) and replayed.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.engine.manifest import check_manifest, detect_runtime_env, manifest_path_for, read_manifest
from trt_edge.engine.trt_api import trt
from trt_edge.errors import TrtEdgeError
from trt_edge.log import get_logger
from trt_edge.runtime.base import Runner, TensorMeta
from trt_edge.runtime.cuda import CudaBackend, open_backend

log = get_logger("runtime")


class TensorRTRunner(Runner):
    """Run a TensorRT plan.

    Args:
      plan_path: the `.plan` file.
      manifest_path: its manifest; default `<plan>.json` next to it. A plan without one is refused.
      allow_host_code: run a plan that embeds host code (version-compatible, serialized plugins).
      device_memory: `auto`, `cuda-python`, `pycuda` or `torch` (see `trt_edge.runtime.cuda`).
      cuda_graph: capture the enqueue in a CUDA graph per input-shape signature and replay it.
    """

    name = "tensorrt"

    def __init__(self, plan_path: str | os.PathLike[str], manifest_path: str | os.PathLike[str] | None = None,
                 allow_host_code: bool = False, device_memory: str = "auto", cuda_graph: bool = False) -> None:
        super().__init__()
        self.plan_path = Path(plan_path)
        self.manifest_path = Path(manifest_path) if manifest_path is not None else manifest_path_for(self.plan_path)
        self.allow_host_code = allow_host_code
        self.device_memory = device_memory
        self.cuda_graph = cuda_graph
        self.manifest: dict[str, Any] = {}
        self.warnings: list[str] = []
        self._engine: trt.ICudaEngine | None = None
        self._context: trt.IExecutionContext | None = None
        self._backend: CudaBackend | None = None
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, capacity in bytes)
        self._graphs: dict[tuple[tuple[int, ...], ...], Any] = {}
        self._inputs: list[TensorMeta] = []
        self._outputs: list[TensorMeta] = []

    # activation --------------------------------------------------------------------------------
    def activate_impl(self) -> None:
        if not self.plan_path.is_file():
            raise TrtEdgeError(f"{self.plan_path}: no such plan file")
        if self.plan_path.stat().st_size == 0:
            raise TrtEdgeError(f"{self.plan_path}: empty plan file; rebuild it")
        self.manifest = read_manifest(self.manifest_path)
        env = detect_runtime_env()
        self.warnings = check_manifest(self.plan_path, self.manifest_path, env, allow_host_code=self.allow_host_code)
        for warning in self.warnings:
            log.warning("%s: %s", self.plan_path, warning)
        for entry in self.manifest.get("plugins") or []:
            lib = Path(str(entry["path"]))
            ctypes.CDLL(str(lib if lib.is_absolute() else self.manifest_path.parent / lib), mode=ctypes.RTLD_GLOBAL)
        logger = trt.Logger(trt.Logger.WARNING)
        if hasattr(trt, "init_libnvinfer_plugins"):
            trt.init_libnvinfer_plugins(logger, "")
        runtime = trt.Runtime(logger)
        if self.allow_host_code and hasattr(runtime, "engine_host_code_allowed"):
            runtime.engine_host_code_allowed = True
        dla = self.manifest.get("dla_core")
        if dla is not None:
            runtime.DLA_core = int(dla)
        engine = runtime.deserialize_cuda_engine(self.plan_path.read_bytes())
        if engine is None:
            raise TrtEdgeError(f"{self.plan_path}: TensorRT {trt.__version__} cannot deserialize it (corrupt, "
                               "truncated, or built by another TensorRT/GPU); rebuild it on this device")
        context = engine.create_execution_context()
        if context is None:
            raise TrtEdgeError(f"{self.plan_path}: could not create an execution context (out of device memory?)")
        self._engine, self._context = engine, context
        self._runtime = runtime  # keep the runtime alive as long as the engine
        self._backend = open_backend(self.device_memory)
        if self.cuda_graph and not self._backend.supports_graphs:
            log.warning("CUDA graphs are not available with %s; running without them", self._backend.name)
            self.cuda_graph = False
        self._inputs, self._outputs = [], []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            shape = engine.get_tensor_shape(name)
            meta = TensorMeta(name, tuple(None if int(shape[d]) < 0 else int(shape[d]) for d in range(len(shape))),
                              np.dtype(trt.nptype(engine.get_tensor_dtype(name))))
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self._inputs.append(meta)
            else:
                self._outputs.append(meta)

    def deactivate_impl(self) -> None:
        backend = self._backend
        if backend is not None:
            for graph in self._graphs.values():
                backend.destroy_graph(graph)
            for ptr, _ in self._buffers.values():
                backend.free(ptr)
            backend.close()
        self._graphs.clear()
        self._buffers.clear()
        self._context = None
        self._engine = None
        self._backend = None

    def inputs_impl(self) -> Sequence[TensorMeta]:
        return self._inputs

    def outputs_impl(self) -> Sequence[TensorMeta]:
        return self._outputs

    def profile_shapes(self, name: str, profile: int = 0) -> tuple[list[int], list[int], list[int]]:
        """(min, opt, max) of an input in an optimization profile."""
        if self._engine is None:
            raise RuntimeError("tensorrt: not active")
        lo, mid, hi = self._engine.get_tensor_profile_shape(name, profile)
        return ([int(lo[i]) for i in range(len(lo))], [int(mid[i]) for i in range(len(mid))],
                [int(hi[i]) for i in range(len(hi))])

    # inference ---------------------------------------------------------------------------------
    def _buffer(self, name: str, nbytes: int) -> int:
        assert self._backend is not None
        ptr, capacity = self._buffers.get(name, (0, 0))
        if nbytes > capacity:
            if ptr:
                self._backend.free(ptr)
            ptr = self._backend.malloc(nbytes)
            self._buffers[name] = (ptr, nbytes)
            for graph in self._graphs.values():  # captured graphs point at the old buffers
                self._backend.destroy_graph(graph)
            self._graphs.clear()
        return ptr

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        context, backend = self._context, self._backend
        if context is None or backend is None:
            raise RuntimeError("tensorrt: not active")
        arrays = {m.name: np.ascontiguousarray(feed[m.name], dtype=m.dtype) for m in self._inputs}
        for name, array in arrays.items():
            if not context.set_input_shape(name, trt.Dims(list(array.shape))):
                lo, _, hi = self.profile_shapes(name)
                raise TrtEdgeError(f"tensorrt: input {name} shape {list(array.shape)} is outside the engine's "
                                   f"profile (min {lo}, max {hi}); rebuild with a wider build.batch/build.sequence")
            context.set_tensor_address(name, self._buffer(name, array.nbytes))
        results: dict[str, np.ndarray] = {}
        for meta in self._outputs:
            dims = context.get_tensor_shape(meta.name)
            shape = tuple(int(dims[i]) for i in range(len(dims)))
            results[meta.name] = np.empty(shape, dtype=meta.dtype)
            context.set_tensor_address(meta.name, self._buffer(meta.name, results[meta.name].nbytes))
        for name, array in arrays.items():
            backend.htod(self._buffers[name][0], array)
        key = tuple(a.shape for a in arrays.values())
        if self.cuda_graph and key in self._graphs:
            backend.launch(self._graphs[key])
        else:
            if not context.execute_async_v3(backend.stream):
                raise TrtEdgeError("tensorrt: execute_async_v3 failed (see the TensorRT log above)")
            if self.cuda_graph:
                backend.synchronize()  # the plain run first, then capture (NVIDIA demo practice)
                backend.begin_capture()
                context.execute_async_v3(backend.stream)
                self._graphs[key] = backend.end_capture()
        for name, array in results.items():
            backend.dtoh(array, self._buffers[name][0])
        backend.synchronize()
        return results

    # per-layer times ---------------------------------------------------------------------------
    def layer_times(self, feed: Mapping[str, np.ndarray], runs: int = 20) -> dict[str, list[float]]:
        """Per-layer times (ms) over `runs` inferences, through TensorRT's IProfiler.

        Layer names are meaningful when the plan was built with profiling verbosity `layer_names_only` or
        `detailed` (trt-edge's default). With a profiler attached, enqueue waits for the layer timings, so
        this runs separately from the latency benchmark; CUDA-graph replay is off while it runs.
        """
        context = self._context
        if context is None:
            raise RuntimeError("tensorrt: not active")
        times: dict[str, list[float]] = {}
        graphs, self.cuda_graph = self.cuda_graph, False
        context.profiler = _layer_timer(times)
        try:
            for _ in range(runs):
                self.infer_impl(feed)
        finally:
            context.profiler = None  # type: ignore[assignment, unused-ignore]
            self.cuda_graph = graphs
        return times


def _layer_timer(times: dict[str, list[float]]) -> trt.IProfiler:
    """An IProfiler that appends each reported layer time to `times`."""

    class LayerTimer(trt.IProfiler):  # type: ignore[misc, unused-ignore]
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            times.setdefault(layer_name, []).append(float(ms))

    return LayerTimer()

