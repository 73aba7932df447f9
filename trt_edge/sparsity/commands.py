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
    def prune(self, config: str = "", model: str = "", out: str = "runs/prune", method: str = "2:4",
              **overrides: Any) -> None:
        """Prune a model (2:4 structured sparsity, or width: fewer heads and neurons), recover its accuracy.

        Args:
          config: YAML config file (sections `task` and `prune`, or `width` for --method width); empty for
            the defaults.
          model: a distill stage folder (student model/ and teacher/) or a Hugging Face model folder.
          out: output folder; gets `model/` (with `sparsity.json` inside for 2:4) and `stage.json`.
          method: `2:4` (zeros in a 2-of-4 pattern, for sparse tensor cores) or `width` (whole attention heads
            and feed-forward neurons removed: smaller layers, faster on every chip). Defaults to `2:4`.
          **overrides: keys of the method's section, dotted (`--prune.schedule=gradual`,
            `--width.keep_ffn=0.5`, `--task.data.source=data.csv`) or bare (`--permute=false`,
            `--train.max_steps=20`, `--keep_heads=0.75`, `--target_speedup=3`).
        """
        import importlib

        from trt_edge.config import load_config
        from trt_edge.configbase import nearest
        from trt_edge.errors import TrtEdgeError
        from trt_edge.sparsity.config import PRUNE_METHODS

        if method not in PRUNE_METHODS:
            raise TrtEdgeError(f"unknown prune method {method!r}{nearest(str(method), PRUNE_METHODS)}; "
                               f"methods: {', '.join(PRUNE_METHODS)}")
        if not model:
            raise TrtEdgeError("give --model DIR: a distill stage folder or a Hugging Face model folder")
        spec = PRUNE_METHODS[method]
        module_name, _, function = spec.stage.partition(":")
        run = getattr(importlib.import_module(module_name), function)
        from trt_edge.preflight import preflight

        run_config = load_config(config or None, overrides, spec.section)
        # Without a task section prune reads the task its input's distill stage recorded: no data check here.
        preflight(run_config, ["prune"], data=bool(run_config.raw.get("task")))
        record = run(run_config, model, out)
        if method == "width":
            keys: tuple[str, ...] = ("dense_accuracy", "pruned_accuracy_before_recovery", "width_accuracy",
                                     "dense_params", "params", "structure", "onnx_bytes", "seconds")
        else:
            keys = ("dense_accuracy", "pruned_accuracy_before_recovery", "sparse_accuracy", "kept_magnitude",
                    "kept_magnitude_without_permutation", "sparse_layers", "skipped_layers", "checker_pass_rate",
                    "seconds")
        print_summary(record, keys)
        print(f"pruned model written to {os.path.join(out, 'model')}", file=sys.stderr)

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
        from trt_edge.files import atomic_write_json
        from trt_edge.guard import check_report_file
        from trt_edge.sparsity import check_sparsity

        kind = "trt-edge sparsity check"
        if json_out:
            check_report_file(json_out, kind)  # before the check: a user's file is never replaced
        report = check_sparsity(path, sparsity_json or None)
        if not quiet:
            print(report.to_table())
        else:
            print(json.dumps(report.summary(), default=str))
        if json_out:
            atomic_write_json(json_out, {"kind": kind, **report.to_dict()})
        if not report.ok:
            raise GateError(f"{len(report.violations)} tensor(s) listed in sparsity.json lost the 2:4 pattern: "
                            f"{', '.join(report.violations[:5])}{' ...' if len(report.violations) > 5 else ''}",
                            {"violations": len(report.violations), "expected": len(report.expected)})
