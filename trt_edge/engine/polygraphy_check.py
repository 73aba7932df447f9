"""The TensorRT user's own check: Polygraphy comparing the built engine with ONNX Runtime on real inputs.

The on-device bundle carries `polygraphy_inputs.json` (real tokenized examples from the calibration set,
in Polygraphy's own JSON format) and `polygraphy_compare.sh`, which runs, on the device after
`build_on_device.sh`:

    polygraphy run model.onnx --onnxrt --load-inputs polygraphy_inputs.json --save-outputs onnxrt_outputs.json
    polygraphy run engine/model.plan --model-type=engine --trt \\
        --load-inputs polygraphy_inputs.json --load-outputs onnxrt_outputs.json --atol A --rtol R

(Polygraphy's "comparing across runs" recipe: the engine the bundle built is the one checked, not a second
engine `polygraphy run model.onnx --trt --onnxrt` would build with its own settings.)

Polygraphy's JSON format for a list of feed dicts encodes each array as
`{"array": base64(np.save(array, allow_pickle=False)), "polygraphy_class": "ndarray"}`
(polygraphy/json/serde.py), so writing it needs only numpy and json, and reading it never unpickles.
"""

from __future__ import annotations

import base64
import io
import json
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.files import atomic_write_text

INPUTS_JSON = "polygraphy_inputs.json"
SCRIPT = "polygraphy_compare.sh"
ORT_OUTPUTS = "onnxrt_outputs.json"
TYPE_MARKER = "polygraphy_class"  # polygraphy.constants.TYPE_MARKER
# Starting tolerances on logits: fp32/fp16 engines against fp32 ONNX Runtime, and INT8 engines against
# ONNX Runtime running the same Q/DQ graph (TensorRT fuses and reorders the INT8 math, so they differ more).
TOLERANCES = {"fp32": (1e-3, 1e-3), "fp16": (2e-2, 2e-2), "int8": (1e-1, 1e-1)}


def encode_array(array: np.ndarray) -> dict[str, str]:
    """One array in Polygraphy's JSON encoding (np.save without pickle, base64)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return {"array": base64.b64encode(buffer.getvalue()).decode("ascii"), TYPE_MARKER: "ndarray"}


def decode_array(obj: dict[str, Any]) -> np.ndarray:
    """The inverse of `encode_array` (no pickle)."""
    return np.asarray(np.load(io.BytesIO(base64.b64decode(obj["array"], validate=True)), allow_pickle=False))


def dump_feeds(feeds: Sequence[dict[str, np.ndarray]]) -> str:
    """A list of feed dicts as the JSON `polygraphy run --load-inputs` reads."""
    return json.dumps([{name: encode_array(a) for name, a in feed.items()} for feed in feeds])


def load_feeds(text: str) -> list[dict[str, np.ndarray]]:
    return [{name: decode_array(obj) for name, obj in feed.items()} for feed in json.loads(text)]


def real_feeds(calibration_data: Path, inputs: Sequence[tuple[str, Any]], profiles: Sequence[Any],
               batch_sizes: Sequence[int] = (1, 8), per_batch_size: int = 2) -> list[dict[str, np.ndarray]]:
    """A few batches of real examples (the calibration set's), within the engine's optimization profile.

    `inputs` are (name, numpy dtype) of the ONNX model; `profiles` the plan's `InputProfile`s. Batches
    are cut to each bucket's length as `CalibrationSet.batches` does, so short and long rows both appear.
    """
    from trt_edge.quantize.calib_data import load_calibration_set

    names = [n for n, _ in inputs]
    dtypes = dict(inputs)
    calib = load_calibration_set(calibration_data, names)
    limits = {p.name: (p.min, p.max) for p in profiles}
    feeds: list[dict[str, np.ndarray]] = []
    for batch in batch_sizes:
        taken = 0
        for feed in calib.batches(batch, buckets=(16, 32, 64), names=names, dtypes=dtypes):
            first = next(iter(feed.values()))
            if first.shape[0] != batch or not _within(feed, limits):
                continue
            feeds.append(feed)
            taken += 1
            if taken >= per_batch_size:
                break
    return feeds


def _within(feed: dict[str, np.ndarray], limits: dict[str, tuple[Sequence[int], Sequence[int]]]) -> bool:
    for name, array in feed.items():
        if name not in limits:
            continue
        low, high = limits[name]
        if any(not lo <= d <= hi for d, lo, hi in zip(array.shape, low, high, strict=False)):
            return False
    return True


def render_script(onnx_name: str, precision: str, plugins: Sequence[str] = ()) -> str:
    """`polygraphy_compare.sh`: ONNX Runtime outputs first, then the built engine compared against them."""
    kind = "int8" if "int8" in precision or precision in ("best", "fp8-qdq") else (
        "fp16" if precision in ("fp16", "auto") else "fp32")
    atol, rtol = TOLERANCES[kind]
    # bundle-relative libraries (the fused-attention plugin build_on_device.sh builds) are found from $HERE
    plugin_args = "".join(f" --plugins {shlex.quote(p)}" if p.startswith("/") else f' --plugins "$HERE/{p}"'
                          for p in plugins)
    return f"""#!/usr/bin/env bash
# Compare the engine built by build_on_device.sh with ONNX Runtime on saved real inputs, with Polygraphy
# (pip install polygraphy onnxruntime on the device). Usage: ./{SCRIPT} [ENGINE]   (default: ./engine/model.plan)
# Tolerances are a starting point for a {kind} engine; override with ATOL=... RTOL=... ./{SCRIPT}
set -euo pipefail
HERE="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
ENGINE="${{1:-$HERE/engine/model.plan}}"
ATOL="${{ATOL:-{atol:g}}}"
RTOL="${{RTOL:-{rtol:g}}}"
if ! command -v polygraphy >/dev/null; then
  echo "{SCRIPT}: polygraphy not found (pip install polygraphy onnxruntime)" >&2; exit 2
fi
if [ ! -f "$ENGINE" ]; then
  echo "{SCRIPT}: no engine at $ENGINE; run ./build_on_device.sh first" >&2; exit 2
fi
polygraphy run "$HERE/{onnx_name}" --onnxrt --load-inputs "$HERE/{INPUTS_JSON}" --save-outputs "$HERE/{ORT_OUTPUTS}"
polygraphy run "$ENGINE" --model-type=engine --trt{plugin_args} --load-inputs "$HERE/{INPUTS_JSON}" \\
    --load-outputs "$HERE/{ORT_OUTPUTS}" --atol "$ATOL" --rtol "$RTOL"
"""


def write_polygraphy_check(folder: Path, *, onnx_name: str, precision: str, calibration_data: Path | None,
                           inputs: Sequence[tuple[str, Any]], profiles: Sequence[Any],
                           plugins: Sequence[str] = ()) -> dict[str, Any]:
    """Write the inputs and the script into the bundle `folder`; returns what to record in stage.json."""
    if calibration_data is None or not Path(calibration_data).is_file():
        return {"polygraphy": None, "polygraphy_note": "no calibration set with this ONNX, so no saved real "
                "inputs: run `polygraphy run model.onnx --onnxrt --trt` with a data loader of your own"}
    from trt_edge.errors import TrtEdgeError

    try:
        feeds = real_feeds(Path(calibration_data), inputs, profiles)
    except TrtEdgeError as exc:  # the build does not need these inputs: say why they are missing, go on
        return {"polygraphy": None, "polygraphy_note": f"no saved real inputs: {exc}"}
    if not feeds:
        return {"polygraphy": None, "polygraphy_note": "no calibration batch fits the engine's profile"}
    atomic_write_text(folder / INPUTS_JSON, dump_feeds(feeds))
    script = folder / SCRIPT
    atomic_write_text(script, render_script(onnx_name, precision, plugins))
    script.chmod(0o755)
    shapes = sorted({tuple(next(iter(f.values())).shape) for f in feeds})
    return {"polygraphy": SCRIPT, "polygraphy_inputs": INPUTS_JSON, "polygraphy_batches": len(feeds),
            "polygraphy_shapes": [list(s) for s in shapes]}
