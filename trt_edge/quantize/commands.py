"""CLI commands of the calibrate stage, mixed into `trt_edge.cli.TrtEdge`."""

from __future__ import annotations

import os
import sys
from typing import Any

from trt_edge.cli_util import print_summary
from trt_edge.guard import writes_output


class CalibrateCommands:
    @writes_output()
    def calibrate(self, config: str = "", onnx: str = "", out: str = "runs/calibrate", target: str = "",
                  **overrides: Any) -> None:
        """INT8-calibrate an exported ONNX model: Q/DQ ONNX for TensorRT, calibration cache, accuracy gate.

        Args:
          config: YAML config file (sections `task` and `calibrate`); empty for the defaults.
          onnx: the fp32 model, a .onnx file or an export stage folder.
          out: output folder; gets `model.int8.onnx`, `calibration.cache` (TensorRT <= 10),
            `calibration.npz`, `calibration.json` and `stage.json` (+ `model.cpu.onnx` for target cpu).
          target: `tensorrt`, `cpu` (the fastest ONNX Runtime CPU artifact within the accuracy budget) or
            `tensorrt,cpu`; overrides calibrate.targets. Defaults to the config's targets (tensorrt).
          **overrides: `--calibrate.calibrator.method=max`, `--task.max_length=64`, or bare calibrate keys
            such as `--trt_version=8.5.2`, `--tokenizer=MODEL_DIR`, `--gate.budget=0.5`,
            `--placement.quantize_bmm=true`, `--data.samples=256`.
        """
        from trt_edge.config import load_config
        from trt_edge.errors import TrtEdgeError
        from trt_edge.quantize.stage import run

        if not onnx:
            raise TrtEdgeError("calibrate needs --onnx FILE_OR_EXPORT_STAGE_DIR")
        if target:
            targets = target.split(",") if isinstance(target, str) else list(target)
            overrides = {**overrides, "calibrate.targets": [t.strip() for t in targets]}
        from trt_edge.preflight import preflight

        run_config = load_config(config or None, overrides, "calibrate")
        # Every section of the config now; the stage checks its input before the data, so the data waits for it.
        preflight(run_config, ["calibrate"], data=False)
        record = run(run_config, onnx, out)
        print_summary(record, ("fp32_accuracy", "int8_accuracy", "accuracy_drop_points", "argmax_agreement",
                               "method", "calibration_samples", "quantized_nodes", "float_nodes",
                               "excluded_layers", "ort_latency_ms_fp32", "ort_latency_ms_int8", "cpu_artifact",
                               "cpu_accuracy", "cpu_speedup_vs_fp32"))
        written = [name for name in ("model.int8.onnx", "model.cpu.onnx") if os.path.exists(os.path.join(out, name))]
        print(f"written to {out}: {', '.join(written)}", file=sys.stderr)
