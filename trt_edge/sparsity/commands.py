"""CLI commands of the sparsity area, mixed into `trt_edge.cli.TrtEdge`: `prune` and `check-sparsity`."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from trt_edge.cli_util import print_summary
from trt_edge.guard import writes_output


class PruneCommands:
    @writes_output()
    def prune(self, config: str = "", model: str = "", out: str = "runs/prune", **overrides: Any) -> None:
        """Prune a model to 2:4 structured sparsity, recover its accuracy, and prove the pattern.

        Args:
          config: YAML config file (sections `task` and `prune`); empty for the defaults.
          model: a distill stage folder (student model/ and teacher/) or a Hugging Face model folder.
          out: output folder; gets `model/` (with `sparsity.json` inside) and `stage.json`.
          **overrides: `--prune.schedule=gradual`, `--task.data.source=data.csv`, or bare prune keys such
            as `--permute=false`, `--train.epochs=1`, `--train.max_steps=20`, `--exclude='["classifier", "pooler"]'`.
        """
        from trt_edge.config import load_config
        from trt_edge.errors import TrtEdgeError
        from trt_edge.sparsity.stage import run

        if not model:
            raise TrtEdgeError("give --model DIR: a distill stage folder or a Hugging Face model folder")
        from trt_edge.preflight import preflight

        run_config = load_config(config or None, overrides, "prune")
        # Without a task section prune reads the task its input's distill stage recorded: no data check here.
        preflight(run_config, ["prune"], data=bool(run_config.raw.get("task")))
        record = run(run_config, model, out)
        print_summary(record, ("dense_accuracy", "pruned_accuracy_before_recovery", "sparse_accuracy",
                               "kept_magnitude", "kept_magnitude_without_permutation", "sparse_layers",
                               "skipped_layers", "checker_pass_rate", "seconds"))
        print(f"sparse model written to {os.path.join(out, 'model')}", file=sys.stderr)

    def check_sparsity(self, path: str, sparsity_json: str = "", json_out: str = "", quiet: bool = False) -> None:
        """Check 2:4 sparsity in a model folder or an ONNX file; exit 1 if a listed tensor lost it.

        Args:
          path: a pruned model folder (safetensors + sparsity.json), an ONNX file, or a stage folder
            (prune, export or calibrate) whose `model`/`onnx` artifact is checked.
          sparsity_json: the sparsity.json naming the tensors that must be 2:4 (a file or a folder holding
            one). Defaults to the one inside the model folder, or next to the ONNX file.
          json_out: also write the full report as JSON to this file.
          quiet: print only the one-line summary, not the per-tensor table.
        """
        from trt_edge.errors import GateError
        from trt_edge.sparsity import check_sparsity
        from trt_edge.stage import atomic_write_json

        report = check_sparsity(path, sparsity_json or None)
        if not quiet:
            print(report.to_table())
        else:
            print(json.dumps(report.summary(), default=str))
        if json_out:
            atomic_write_json(json_out, report.to_dict())
        if not report.ok:
            raise GateError(f"{len(report.violations)} tensor(s) listed in sparsity.json lost the 2:4 pattern: "
                            f"{', '.join(report.violations[:5])}{' ...' if len(report.violations) > 5 else ''}",
                            {"violations": len(report.violations), "expected": len(report.expected)})
