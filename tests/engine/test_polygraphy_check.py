"""The bundle's Polygraphy check: real inputs in Polygraphy's JSON format, and the comparison script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trt_edge.config import RunConfig
from trt_edge.engine.polygraphy_check import (
    INPUTS_JSON,
    SCRIPT,
    decode_array,
    dump_feeds,
    encode_array,
    load_feeds,
    render_script,
)
from trt_edge.stage import StageRecord

TEXTS = ["i am so happy today", "this is awful and sad", "what a calm morning", "angry about the delay",
         "nothing much", "a long day at work that never seemed to end and kept going on and on"] * 6


def test_arrays_round_trip_in_polygraphys_encoding() -> None:
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    obj = encode_array(a)
    assert obj["polygraphy_class"] == "ndarray" and set(obj) == {"array", "polygraphy_class"}
    back = decode_array(json.loads(json.dumps(obj)))
    assert back.dtype == np.int32 and (back == a).all()
    feeds = load_feeds(dump_feeds([{"input_ids": a, "attention_mask": a > 2}]))
    assert feeds[0]["attention_mask"].dtype == np.bool_


def test_script_compares_the_built_engine_with_onnx_runtime() -> None:
    text = render_script("model.onnx", "int8-qdq", plugins=["/opt/lib/libtrt_edge_plugins.so",
                                                            "plugins/build/libtrt_edge_attention_plugin.so"])
    assert '--plugins "$HERE/plugins/build/libtrt_edge_attention_plugin.so"' in text
    assert '--onnxrt --load-inputs "$HERE/polygraphy_inputs.json" --save-outputs "$HERE/onnxrt_outputs.json"' in text
    assert '"$ENGINE" --model-type=engine --trt --plugins /opt/lib/libtrt_edge_plugins.so' in text
    assert '--load-outputs "$HERE/onnxrt_outputs.json" --atol "$ATOL" --rtol "$RTOL"' in text
    assert 'ATOL="${ATOL:-0.1}"' in text
    assert 'ATOL="${ATOL:-0.001}"' in render_script("model.onnx", "fp32")
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0


def _calibrate_folder(root: Path, onnx_dir: Path) -> Path:
    """A calibrate-stage layout with a real calibration set tokenized from texts."""
    import shutil

    from transformers import AutoTokenizer

    from trt_edge.engine.onnxinfo import onnx_inputs
    from trt_edge.quantize.calib_data import CalibrationSet
    from trt_edge.tasks.text_classification import tokenize_padded

    folder = root / "calibrate"
    folder.mkdir(parents=True)
    shutil.copy(onnx_dir / "model.onnx", folder / "model.int8.onnx")
    tokenizer = AutoTokenizer.from_pretrained(str(onnx_dir))
    names = [i.name for i in onnx_inputs(onnx_dir / "model.onnx")]
    arrays, lengths = tokenize_padded(tokenizer, TEXTS, 32, names)
    CalibrationSet(arrays, lengths, np.zeros(len(TEXTS), dtype=np.int64)).save(folder / "calibration.npz")
    StageRecord(stage="calibrate", config={"task": {"max_length": 32}}, environment={},
                artifacts={"onnx": "model.int8.onnx", "calibration_data": "calibration.npz"}).write(folder)
    return folder


def test_bundle_carries_real_inputs_and_the_script(tiny_onnx_dir: Path, tmp_path: Path) -> None:
    from trt_edge.engine.stage import run

    folder = _calibrate_folder(tmp_path, tiny_onnx_dir)
    record = run(RunConfig({"build": {"precision": "fp32", "trt_version": "10.3"}}), folder, tmp_path / "build",
                 bundle=True)
    bundle = tmp_path / "build" / "bundle"
    assert record.metrics["polygraphy"] == SCRIPT
    feeds = load_feeds((bundle / INPUTS_JSON).read_text())
    assert {f["input_ids"].shape[0] for f in feeds} == {1, 8}  # batch 1 and 8, real token ids
    assert all(f["input_ids"].shape[1] <= 32 and f["input_ids"].dtype == np.int64 for f in feeds)
    assert all((f["input_ids"][:, 0] == f["input_ids"][0, 0]).all() for f in feeds)  # [CLS] first
    assert os.access(bundle / SCRIPT, os.X_OK)
    assert b"pickle" not in (bundle / INPUTS_JSON).read_bytes()


def test_polygraphy_reads_the_inputs_and_runs_onnx_runtime(tiny_onnx_dir: Path, tmp_path: Path) -> None:
    """The first half of the script, for real, where Polygraphy is installed (no TensorRT needed)."""
    pytest.importorskip("polygraphy", reason="needs Polygraphy (pip install polygraphy)")
    from trt_edge.engine.stage import run

    folder = _calibrate_folder(tmp_path, tiny_onnx_dir)
    run(RunConfig({"build": {"precision": "fp32", "trt_version": "10.3"}}), folder, tmp_path / "build", bundle=True)
    bundle = tmp_path / "build" / "bundle"
    out = tmp_path / "ort.json"
    cmd = [sys.executable, "-c", "import sys; from polygraphy.tools import main; sys.exit(main())", "run",
           str(bundle / "model.onnx"), "--onnxrt", "--load-inputs", str(bundle / INPUTS_JSON),
           "--save-outputs", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    from polygraphy.json import load_json

    results = load_json(str(out))
    runs = [iteration for _, iterations in results.items() for iteration in iterations]
    assert len(runs) == len(load_feeds((bundle / INPUTS_JSON).read_text()))
    assert all(np.isfinite(np.asarray(r["logits"])).all() for r in runs)
