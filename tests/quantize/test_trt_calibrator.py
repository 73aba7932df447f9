"""The TensorRT calibrator: importable without TensorRT, serves our set and cache; the real subclass
is built only where TensorRT is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.lazy import has_module
from trt_edge.quantize.cache import write_cache
from trt_edge.quantize.calib_data import CalibrationSet
from trt_edge.quantize.trt_calibrator import EntropyCalibratorImpl, make_entropy_calibrator


def _set(n: int = 10, width: int = 8) -> CalibrationSet:
    ids = np.arange(n * width, dtype=np.int64).reshape(n, width)
    return CalibrationSet({"input_ids": ids, "attention_mask": np.ones_like(ids)}, np.full(n, width),
                          np.zeros(n, dtype=np.int64))


def test_impl_reads_only_a_matching_cache(tmp_path: Path) -> None:
    cache = tmp_path / "calibration.cache"
    impl = EntropyCalibratorImpl(_set(), ["input_ids", "attention_mask"], 4, cache, {},
                                 "TRT-100300-EntropyCalibration2")
    assert impl.get_batch_size() == 4
    assert impl.read_calibration_cache() is None  # no file yet: TensorRT calibrates
    write_cache(cache, {"a": 1.0}, "10.3")
    assert impl.read_calibration_cache() == cache.read_bytes()
    write_cache(cache, {"a": 1.0}, "8.6")
    assert impl.read_calibration_cache() is None  # another version: TensorRT would reject it
    impl.write_calibration_cache(memoryview(b"TRT-100300-EntropyCalibration2\na: 3f800000\n"))
    assert cache.read_text().startswith("TRT-100300-")
    impl.next_index = 8  # 10 examples, batches of 4: the third batch is incomplete -> done
    assert impl.get_batch(["input_ids", "attention_mask"]) == []
    with pytest.raises(TrtEdgeError, match="fewer than one batch"):
        EntropyCalibratorImpl(_set(2), ["input_ids"], 4, None, {}, "h")


@pytest.mark.skipif(has_module("tensorrt"), reason="checks the message given without TensorRT")
def test_factory_needs_tensorrt(tmp_path: Path) -> None:
    _set().save(tmp_path / "c.npz")
    with pytest.raises(TrtEdgeError, match="TensorRT"):
        make_entropy_calibrator(tmp_path / "c.npz", tmp_path / "c.cache", batch_size=4)


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_real_calibrator_serves_device_batches(tmp_path: Path) -> None:
    import tensorrt as trt

    _set().save(tmp_path / "c.npz")
    calibrator = make_entropy_calibrator(tmp_path / "c.npz", tmp_path / "c.cache", batch_size=4)
    assert isinstance(calibrator, trt.IInt8EntropyCalibrator2)
    assert calibrator.get_batch_size() == 4
    pointers = calibrator.get_batch(["input_ids", "attention_mask"])
    assert len(pointers) == 2 and all(isinstance(p, int) and p for p in pointers)
    assert calibrator.get_batch(["input_ids", "attention_mask"]) != []
    assert calibrator.get_batch(["input_ids", "attention_mask"]) == []
