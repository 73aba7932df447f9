"""TensorRT's calibration-cache text format (implicit INT8, TensorRT 8.x-10.x): writer and reader.

The format, as TensorRT writes and reads it:

    TRT-100300-EntropyCalibration2
    input_ids: 3c008912
    /encoder/layer.0/Add_output_0: 3f9db09c

The header is `TRT-<NV_TENSORRT_VERSION>-<algorithm>`; the version number is `major*10000 +
minor*100 + patch` from TensorRT 10 (10.3.0 -> 100300) and the 4-digit `major*1000 + minor*100 + patch`
form before (8.5.2 -> 8502). Every other line is `<tensor name>: <8 hex digits>`, the big-endian
IEEE-754 float32 bit pattern of the tensor's scale (amax / 127): 1.0 -> `3f800000`. TensorRT rejects a
cache whose header does not match its version and calibrator algorithm and recalibrates, so we refuse
to read one made for another target. TensorRT 11 removed implicit calibration: no cache is written for
it (the Q/DQ ONNX carries the scales).
"""

from __future__ import annotations

import math
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trt_edge.errors import TrtEdgeError
from trt_edge.files import atomic_write_text
from trt_edge.trt_version import TrtVersion

ALGORITHMS = ("EntropyCalibration2", "EntropyCalibration", "MinMaxCalibration", "LegacyCalibration")
DEFAULT_ALGORITHM = "EntropyCalibration2"
_HEADER = re.compile(r"^TRT-(\d+)-([A-Za-z0-9]+)$")


def parse_trt_version(version: str) -> tuple[int, int, int]:
    """`"10.3"` -> (10, 3, 0), through the kit's one version type (`trt_edge.trt_version`)."""
    v = TrtVersion.supported(version)
    return v.major, v.minor, v.patch


def supports_implicit_calibration(version: str) -> bool:
    """Whether TensorRT `version` still reads calibration caches (8.x-10.x; removed in 11.0)."""
    return TrtVersion.supported(version).implicit_calibration


def trt_version_int(version: str) -> int:
    """NV_TENSORRT_VERSION for `version`: 10.3 -> 100300, 10.13.0 -> 101300, 8.5.2 -> 8502."""
    return TrtVersion.supported(version).code


def scale_to_hex(scale: float) -> str:
    """The 8 hex digits of a float32 scale's bit pattern, as the cache stores it (1.0 -> 3f800000)."""
    return struct.pack(">f", scale).hex()


def hex_to_scale(text: str) -> float:
    if not re.fullmatch(r"[0-9a-fA-F]{8}", text):
        raise ValueError(f"{text!r} is not 8 hex digits")
    return float(struct.unpack(">f", bytes.fromhex(text))[0])


@dataclass
class CalibrationCache:
    """A parsed cache: version number, algorithm and scale per tensor (in file order)."""

    version: int
    algorithm: str = DEFAULT_ALGORITHM
    scales: dict[str, float] = field(default_factory=dict)

    @property
    def header(self) -> str:
        return f"TRT-{self.version}-{self.algorithm}"

    def amax(self, name: str) -> float:
        return self.scales[name] * 127.0


def format_cache(scales: Mapping[str, float], trt_version: str, algorithm: str = DEFAULT_ALGORITHM) -> str:
    """The cache text for `scales` (tensor name -> scale = amax/127), for target `trt_version`."""
    if not supports_implicit_calibration(trt_version):
        raise TrtEdgeError(
            f"TensorRT {trt_version} removed implicit INT8 calibration, so it reads no calibration cache; "
            "build model.int8.onnx (explicit Q/DQ) instead, or target TensorRT 10.x or older"
        )
    if algorithm not in ALGORITHMS:
        raise TrtEdgeError(f"unknown calibration algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    lines = [f"TRT-{trt_version_int(trt_version)}-{algorithm}"]
    for name, scale in scales.items():
        if "\n" in name or not name:
            raise TrtEdgeError(f"tensor name {name!r} cannot be written to a calibration cache")
        value = float(scale)
        if not math.isfinite(value) or value <= 0:
            raise TrtEdgeError(
                f"tensor {name!r} has scale {value}: a calibration scale must be positive and finite "
                "(a constant or non-finite activation); exclude it or fix the calibration data"
            )
        lines.append(f"{name}: {scale_to_hex(value)}")
    return "\n".join(lines) + "\n"


def write_cache(path: str | os.PathLike[str], scales: Mapping[str, float], trt_version: str,
                algorithm: str = DEFAULT_ALGORITHM) -> Path:
    """Write the cache atomically; refuses TensorRT >= 11 and non-positive or non-finite scales."""
    return atomic_write_text(path, format_cache(scales, trt_version, algorithm))


def parse_cache(text: str, source: str = "calibration cache") -> CalibrationCache:
    lines = [line.rstrip("\r") for line in text.splitlines() if line.strip()]
    if not lines:
        raise TrtEdgeError(f"{source}: empty calibration cache")
    match = _HEADER.match(lines[0].strip())
    if not match:
        raise TrtEdgeError(f"{source}: first line {lines[0][:60]!r} is not a TensorRT cache header "
                           "(TRT-<version>-<algorithm>)")
    cache = CalibrationCache(int(match.group(1)), match.group(2))
    for lineno, line in enumerate(lines[1:], 2):
        name, sep, value = line.rpartition(": ")
        if not sep or not name:
            raise TrtEdgeError(f"{source}:{lineno}: expected '<tensor>: <8 hex digits>', got {line[:80]!r}")
        try:
            cache.scales[name] = hex_to_scale(value.strip())
        except ValueError as exc:
            raise TrtEdgeError(f"{source}:{lineno}: {exc}") from exc
    return cache


def read_cache(path: str | os.PathLike[str], trt_version: str | None = None,
               algorithm: str | None = DEFAULT_ALGORITHM) -> CalibrationCache:
    """Read a cache; with `trt_version`/`algorithm`, refuse one made for another target (TensorRT would
    reject it and silently recalibrate)."""
    p = Path(path)
    if not p.is_file():
        raise TrtEdgeError(f"calibration cache not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TrtEdgeError(f"{p}: unreadable calibration cache ({exc})") from exc
    cache = parse_cache(text, str(p))
    if trt_version is not None:
        want = trt_version_int(trt_version)
        if cache.version != want:
            raise TrtEdgeError(f"{p}: cache was made for TensorRT version {cache.version}, the target "
                               f"{trt_version} expects {want}; recalibrate for the target")
    if algorithm is not None and cache.algorithm != algorithm:
        raise TrtEdgeError(f"{p}: cache algorithm is {cache.algorithm}, expected {algorithm}; "
                           "recalibrate with the matching calibrator")
    return cache
