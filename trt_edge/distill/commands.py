"""CLI commands of the distill stage, mixed into `trt_edge.cli.TrtEdge`."""

from __future__ import annotations

import os
import sys
from typing import Any

from trt_edge.cli_util import print_summary
from trt_edge.guard import writes_output


class DistillCommands:
    @writes_output()
    def distill(self, config: str = "", out: str = "runs/distill", **overrides: Any) -> None:
        """Distill a teacher into a smaller student (fine-tuning the teacher first if it has no head).

        Args:
          config: YAML config file (sections `task` and `distill`); empty for the defaults.
          out: output folder; gets `model/` (the student), `teacher/` and `stage.json`.
          **overrides: `--distill.temperature=4`, `--task.data.source=data.csv`, or bare distill keys
            such as `--temperature=4`, `--student.layers=[0,3]`, `--train.epochs=1`.
        """
        from trt_edge.config import load_config
        from trt_edge.distill.stage import run
        from trt_edge.preflight import preflight

        run_config = load_config(config or None, overrides, "distill")
        preflight(run_config, ["distill"])  # the student folder is read after teacher fine-tuning: check it now
        record = run(run_config, out)
        print_summary(record, ("teacher_accuracy", "student_accuracy", "student_hard_label_accuracy",
                               "teacher_params", "student_params", "train_seconds"))
        print(f"student written to {os.path.join(out, 'model')}", file=sys.stderr)
