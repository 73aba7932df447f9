"""The TensorRT calibration-cache text format: header versions, hex scales, round trip, refusals."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.quantize.cache import (
    format_cache,
    hex_to_scale,
    parse_cache,
    read_cache,
    scale_to_hex,
    supports_implicit_calibration,
    trt_version_int,
    write_cache,
)


@pytest.mark.parametrize(("version", "number"), [("10.3", 100300), ("10.3.0", 100300), ("10.13", 101300),
                                                  ("10.13.3.9", 101303), ("8.5.2", 8502), ("8.6", 8600),
                                                  ("8.6.1", 8601)])
def test_version_numbers_follow_nv_tensorrt_version(version: str, number: int) -> None:
    assert trt_version_int(version) == number


def test_documented_hex_values() -> None:
    assert scale_to_hex(1.0) == "3f800000"
    assert hex_to_scale("3f800000") == 1.0
    # The reference's example line: 3c008912 is amax about 1.0 (scale 1/127.5).
    assert hex_to_scale("3c008912") == pytest.approx(0.0078452, rel=1e-4)
    assert scale_to_hex(2.0 / 127) == struct.pack(">f", 2.0 / 127).hex()


def test_format_matches_the_documented_layout() -> None:
    text = format_cache({"input": 1.0, "/conv1/Conv_output_0": 0.5}, "10.3")
    assert text == "TRT-100300-EntropyCalibration2\ninput: 3f800000\n/conv1/Conv_output_0: 3f000000\n"
    assert format_cache({"x": 1.0}, "8.5.2").startswith("TRT-8502-EntropyCalibration2\n")


def test_round_trip(tmp_path: Path) -> None:
    scales = {"a": 0.0123, "/m/layer.0/attention/self/Reshape_4_output_0": 7.5 / 127, "name: with colon": 1e-3}
    path = write_cache(tmp_path / "calibration.cache", scales, "10.3")
    cache = read_cache(path, trt_version="10.3")
    assert cache.version == 100300 and cache.algorithm == "EntropyCalibration2"
    assert list(cache.scales) == list(scales)
    for name, scale in scales.items():
        assert cache.scales[name] == pytest.approx(scale, rel=1e-7)  # float32 precision
    assert cache.amax("a") == pytest.approx(0.0123 * 127, rel=1e-6)


def test_refuses_tensorrt_11_and_bad_scales(tmp_path: Path) -> None:
    assert supports_implicit_calibration("10.13") and not supports_implicit_calibration("11.0")
    with pytest.raises(TrtEdgeError, match="removed implicit INT8 calibration"):
        write_cache(tmp_path / "c", {"a": 1.0}, "11.1")
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(TrtEdgeError, match="positive and finite"):
            format_cache({"a": bad}, "10.3")
    with pytest.raises(TrtEdgeError, match=r"MAJOR\.MINOR"):
        trt_version_int("ten")
    assert not (tmp_path / "c").exists()


def test_reader_refuses_other_version_algorithm_and_garbage(tmp_path: Path) -> None:
    path = write_cache(tmp_path / "c.cache", {"a": 1.0}, "8.6")
    with pytest.raises(TrtEdgeError, match="made for TensorRT version 8600"):
        read_cache(path, trt_version="10.3")
    other = tmp_path / "minmax.cache"
    other.write_text("TRT-100300-MinMaxCalibration\na: 3f800000\n")
    with pytest.raises(TrtEdgeError, match="algorithm is MinMaxCalibration"):
        read_cache(other, trt_version="10.3")
    assert read_cache(other, algorithm="MinMaxCalibration").scales == {"a": 1.0}
    with pytest.raises(TrtEdgeError, match="not a TensorRT cache header"):
        parse_cache("hello\n")
    with pytest.raises(TrtEdgeError, match="8 hex digits"):
        parse_cache("TRT-100300-EntropyCalibration2\na: xyz\n")
    with pytest.raises(TrtEdgeError, match="not found"):
        read_cache(tmp_path / "missing.cache")
