"""CLI commands of the quantize area (the calibrate and qat stages), mixed into `trt_edge.cli.TrtEdge`."""

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

    @writes_output()
    def qat(self, config: str = "", calibrate: str = "", model: str = "", onnx: str = "", out: str = "runs/qat",
            **overrides: Any) -> None:
        """Quantization-aware distillation of a calibrated model: fake INT8 where calibrate put Q/DQ, every layer INT8.

        The model is fine-tuned with INT8 rounding in its forward pass, exactly at the calibrate stage's Q/DQ
        placement and starting from its ranges, distilling from its own fp32 outputs with the 2:4 masks
        fixed; then exported again as Q/DQ ONNX. fp32, PTQ and QAT are paired on the test split and the one to
        deploy is written as `model.int8.onnx` (QAT's when it passes qat.budget and beats PTQ or needs no
        float layers where PTQ did). With qat.when=auto (the default) it trains only when PTQ needs help.

        Args:
          config: YAML config file (sections `task` and `qat`); empty for the defaults (the task is then the
            one the model's stage recorded).
          calibrate: the calibrate stage folder (with its TensorRT Q/DQ model: calibrate.targets includes
            tensorrt).
          model: the PyTorch model the calibrated ONNX was exported from: a prune, width or distill stage
            folder, or a model folder.
          onnx: the fp32 ONNX calibrate quantized, a .onnx file or the export stage folder; defaults to the
            path calibrate recorded. Refused when its sha256 is not the one calibrate recorded.
          out: output folder; gets `model.int8.onnx` (the one to deploy), `model.qat.onnx` (when QAT ran),
            `calibration.cache` (TensorRT <= 10), `qat.json`, `model/`, test predictions and `stage.json`.
          **overrides: `--qat.when=always`, `--qat.train.max_steps=200`, or bare qat keys such as
            `--when=always`, `--learn_scales=false`, `--budget=0.5`, `--trigger=0.3`, `--train.epochs=2`.
        """
        from trt_edge.config import load_config
        from trt_edge.errors import TrtEdgeError
        from trt_edge.quantize.qat_stage import quantization_aware

        if not calibrate:
            raise TrtEdgeError("qat needs --calibrate CALIBRATE_STAGE_DIR (the folder `trt-edge calibrate` wrote)")
        if not model:
            raise TrtEdgeError("qat needs --model DIR: the prune, width or distill stage folder (or model folder) "
                               "the calibrated ONNX was exported from")
        from trt_edge.preflight import preflight

        run_config = load_config(config or None, overrides, "qat")
        # Every section of the config now; the stage checks its inputs before it loads data or trains.
        preflight(run_config, ["qat"], data=False)
        record = quantization_aware(run_config, calibrate, model, out, onnx=onnx or None)
        print_summary(record, ("qat_ran", "reason", "deployed", "deployed_reason", "fp32_accuracy", "ptq_accuracy",
                               "qat_accuracy", "int8_accuracy", "accuracy_drop_points", "gate_passed",
                               "ptq_float_layers", "quantized_nodes", "seconds"))
        written = [name for name in ("model.int8.onnx", "model.qat.onnx") if os.path.exists(os.path.join(out, name))]
        print(f"written to {out}: {', '.join(written)}", file=sys.stderr)
