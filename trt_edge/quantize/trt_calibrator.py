"""On-device implicit INT8 calibration for TensorRT 8.5-10.x: an `IInt8EntropyCalibrator2` subclass.

It serves the same calibration set (`calibration.npz`) the calibrate stage used, in fixed-shape
batches [batch_size, max_length] (implicit calibration runs on the calibration profile's one shape),
and reads/writes the same cache file, so an on-device build either reuses our cache (no calibration
run at all) or calibrates on exactly our data. TensorRT is imported only inside
`make_entropy_calibrator`, so importing this module needs neither TensorRT nor a GPU. TensorRT 11
removed calibrators: the factory refuses it and points to `model.int8.onnx`.

Device memory comes from PyTorch's CUDA allocator when available, else from PyCUDA (the Jetson habit).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.lazy import lazy_import
from trt_edge.log import get_logger
from trt_edge.quantize.cache import DEFAULT_ALGORITHM, parse_cache, trt_version_int
from trt_edge.quantize.calib_data import CalibrationSet, load_calibration_set
from trt_edge.trt_version import TrtVersion

if TYPE_CHECKING:
    import tensorrt as trt

log = get_logger("calibrate")


class _DeviceBuffers:
    """One device buffer per input, reused for every batch (torch CUDA tensors or PyCUDA allocations)."""

    def __init__(self) -> None:
        self._torch: Any = None
        self._pycuda: Any = None
        self._keep: dict[str, Any] = {}
        try:
            import torch

            if torch.cuda.is_available():
                self._torch = torch
        except ImportError:
            pass
        if self._torch is None:
            lazy_import("pycuda.autoinit", "on-device calibration needs CUDA memory: install PyTorch with CUDA "
                        "or PyCUDA (`pip install pycuda`)")
            self._pycuda = lazy_import("pycuda.driver")

    def put(self, name: str, array: np.ndarray) -> int:
        """Copy `array` to the device buffer of `name`; return its device pointer."""
        array = np.ascontiguousarray(array)
        if self._torch is not None:
            tensor = self._keep.get(name)
            host = self._torch.from_numpy(array)
            if tensor is None or tuple(tensor.shape) != array.shape or tensor.dtype != host.dtype:
                tensor = self._keep[name] = host.to("cuda")
            else:
                tensor.copy_(host)
            return int(tensor.data_ptr())
        alloc = self._keep.get(name)
        if alloc is None:
            alloc = self._keep[name] = self._pycuda.mem_alloc(array.nbytes)
        self._pycuda.memcpy_htod(alloc, array)
        return int(alloc)


class EntropyCalibratorImpl:
    """The calibrator's behaviour, type-checked on its own; `make_entropy_calibrator` mixes it with
    `tensorrt.IInt8EntropyCalibrator2` (whose `__init__` must be called explicitly)."""

    def __init__(self, data: CalibrationSet, input_names: Sequence[str], batch_size: int,
                 cache_path: str | os.PathLike[str] | None, dtypes: Mapping[str, Any],
                 expected_header: str) -> None:
        if len(data) < batch_size:
            raise TrtEdgeError(f"calibration set has {len(data)} examples, fewer than one batch of {batch_size}")
        self.data = data
        self.input_names = list(input_names)
        self.batch_size = batch_size
        self.cache_path = Path(cache_path) if cache_path else None
        self.dtypes = dict(dtypes)
        self.expected_header = expected_header
        self.next_index = 0
        self.buffers: _DeviceBuffers | None = None

    def get_batch_size(self) -> int:
        return self.batch_size

    def get_batch(self, names: list[str]) -> list[int]:
        """Device pointers of the next full batch, in the order TensorRT names them; [] when done."""
        if self.next_index + self.batch_size > len(self.data):
            return []
        if self.buffers is None:
            self.buffers = _DeviceBuffers()
        stop = self.next_index + self.batch_size
        pointers = []
        for name in names:
            if name not in self.data.inputs:
                raise TrtEdgeError(f"TensorRT asks for input {name!r}; the calibration set has "
                                   f"{sorted(self.data.inputs)}")
            batch = self.data.inputs[name][self.next_index:stop].astype(self.dtypes.get(name, np.int32))
            pointers.append(self.buffers.put(name, batch))
        self.next_index = stop
        return pointers

    def read_calibration_cache(self) -> bytes | None:
        """The cache when it exists and matches this TensorRT and algorithm; else None (calibrate)."""
        if self.cache_path is None or not self.cache_path.is_file():
            return None
        payload = self.cache_path.read_bytes()
        header = payload.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        if header != self.expected_header:
            log.warning("%s: header %s does not match %s; TensorRT will recalibrate", self.cache_path, header,
                        self.expected_header)
            return None
        parse_cache(payload.decode("utf-8"), str(self.cache_path))  # refuse a malformed cache loudly
        return payload

    def write_calibration_cache(self, cache: Any) -> None:
        if self.cache_path is not None:
            from trt_edge.files import atomic_write_bytes

            atomic_write_bytes(self.cache_path, bytes(cache))


def make_entropy_calibrator(calibration_data: str | os.PathLike[str], cache_path: str | os.PathLike[str] | None,
                            batch_size: int = 8, input_names: Sequence[str] = (),
                            dtypes: Mapping[str, Any] | None = None) -> trt.IInt8EntropyCalibrator2:
    """An `IInt8EntropyCalibrator2` over `calibration.npz` that reads/writes `cache_path`.

    input_names: the network's inputs (the build plan's profile names); empty for every input the
        set holds.
    dtypes: numpy dtype per input as the network declares it; defaults to float32 for pixel arrays,
        and for integer inputs int32 before TensorRT 10 (8.x parses int64 ids as int32) and int64 from 10.
    """
    trt_module = lazy_import("tensorrt")
    version = str(trt_module.__version__)
    if not TrtVersion.parse(version).implicit_calibration or not hasattr(trt_module, "IInt8EntropyCalibrator2"):
        raise TrtEdgeError(f"TensorRT {version} has no implicit calibration (removed in 11.0); build "
                           "model.int8.onnx, which carries its Q/DQ scales")
    data = load_calibration_set(calibration_data, input_names, batch_size)
    input_names = list(input_names) or sorted(data.inputs)
    integer = np.int64 if TrtVersion.parse(version).at_least(10) else np.int32

    def default(name: str) -> Any:
        return np.float32 if np.issubdtype(data.inputs[name].dtype, np.floating) else integer

    types = {n: (dtypes or {}).get(n, default(n)) for n in input_names}
    header = f"TRT-{trt_version_int(version)}-{DEFAULT_ALGORITHM}"
    base = trt_module.IInt8EntropyCalibrator2

    def __init__(self: Any) -> None:
        base.__init__(self)
        EntropyCalibratorImpl.__init__(self, data, input_names, batch_size, cache_path, types, header)

    cls = type("TrtEdgeEntropyCalibrator", (EntropyCalibratorImpl, base), {"__init__": __init__})
    return cast("trt.IInt8EntropyCalibrator2", cls())


if TYPE_CHECKING:
    # mypy checks the mixin's methods against the tensorrt-stubs signatures through this combination
    # (the runtime class is built the same way in `make_entropy_calibrator`). Where mypy cannot read the
    # stubs (tensorrt_bindings without py.typed) the base is Any and the ignore applies.
    class _TypeChecked(EntropyCalibratorImpl, trt.IInt8EntropyCalibrator2):  # type: ignore[misc, unused-ignore]
        pass
