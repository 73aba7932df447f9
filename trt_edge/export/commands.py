"""CLI commands of the export area (`export`, `lint`), mixed into `trt_edge.cli.TrtEdge`.

Heavy modules are imported inside the methods so `trt-edge --help` stays fast and works without them.
"""

from __future__ import annotations

import json as _json
import sys
from typing import Any


class ExportCommands:
    def export(self, model: str, config: str = "", out: str = "runs/export", fuse_attention: bool = False,
               strict: bool = False, **overrides: Any) -> None:
        """Export a classifier to ONNX (model.onnx) and prove parity with PyTorch on the task's test split.

        Args:
          model: a distill or prune stage folder, a Hugging Face classifier folder, or demo:minilm.
          config: YAML config file (sections `task` and `export`); empty for the defaults.
          out: output folder; gets model.onnx, parity.json and stage.json (+ model.fp16.onnx,
            model.fused.onnx when asked).
          fuse_attention: also write model.fused.onnx with attention replaced by the fused plugin node;
            layers it cannot express stay unfused and are reported (the plain export is always kept).
          strict: with --fuse-attention, fail (exit 2) when any attention layer stays unfused.
          **overrides: `--export.opset=18`, `--int32_inputs`, `--fp16`, `--atol=1e-4`, `--exporter=torchscript`,
            `--task.data.source=data.csv`, or any other `export` key bare.
        """
        from trt_edge.cli_util import print_summary
        from trt_edge.config import load_config
        from trt_edge.export.stage import run, summary_line

        if fuse_attention:
            overrides = {**overrides, "fuse_attention": True}
        if strict:
            overrides = {**overrides, "fuse_attention_strict": True}
        record = run(load_config(config or None, overrides, "export"), model, out)
        print_summary(record, ("max_abs_diff", "max_rel_diff", "argmax_agreement", "onnx_bytes", "opset",
                               "exporter", "lint"))
        print(summary_line(record), file=sys.stderr)

    def lint(self, onnx: str, trt: str = "10.3", dla: bool = False, json: bool = False) -> None:
        """Check an ONNX file against what TensorRT will import, without TensorRT.

        Reports ops and attributes the TensorRT version does not import (errors: exit 1), INT64 tensors it
        casts, data-dependent shapes, attention that misses the MHA fusion pattern, and with --dla the
        layers that cannot run on the DLA (warnings: exit 0).

        Args:
          onnx: the ONNX file.
          trt: TensorRT version of the target: 8.5 (JetPack 5), 8.6 (JetPack 6.0), 10.3 (JetPack 6.1/6.2),
            10.13 (JetPack 7.0/7.1), 11 (11.x). Defaults to 10.3.
          dla: also report which layers cannot run on the DLA (Orin).
          json: print the full report as JSON instead of text.
        """
        from trt_edge.errors import GateError
        from trt_edge.export.lint import lint_file

        result = lint_file(onnx, str(trt), bool(dla))
        if json:
            print(_json.dumps(result.to_dict(), indent=2, default=str))
        else:
            print(result.to_text())
        if result.errors:
            raise GateError(f"{onnx}: {len(result.errors)} problems TensorRT {trt} will refuse (see above)",
                            {"errors": len(result.errors), "warnings": len(result.warnings)})
