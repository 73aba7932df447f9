"""The `trt-edge` command: one method per stage, each a few lines over the library.

Every stage command takes `--config FILE` (YAML) and `--out DIR`; any other `--section.key=value` option
overrides the config, and a bare `--key=value` overrides the command's own section. A user error prints
one line on standard error and exits 2; a failed gate exits 1 with its figures.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from trt_edge.errors import TrtEdgeError


def _summary(record: Any, keys: tuple[str, ...]) -> str:
    metrics = record.metrics
    shown = {k: metrics[k] for k in keys if k in metrics}
    return json.dumps(shown, indent=2, default=str)


class TrtEdge:
    """trt-edge: Hugging Face transformer to a small, fast, verified TensorRT engine for Jetson.

    Stages: distill, prune, export, calibrate, build, profile; `pipeline` runs them all, `report` shows a
    run. Each stage reads files and writes a folder with `stage.json`. Use `trt-edge COMMAND --help`.
    """

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

        record = run(load_config(config or None, overrides, "distill"), out)
        print(_summary(record, ("teacher_accuracy", "student_accuracy", "student_hard_label_accuracy",
                                "teacher_params", "student_params", "train_seconds")))
        print(f"student written to {os.path.join(out, 'model')}", file=sys.stderr)


def _fire_argv(argv: list[str]) -> list[str]:
    """Fire hands `--help` to a command's **overrides; move it behind `--`, where Fire reads it."""
    if "--" in argv:
        return argv
    helps = [a for a in argv if a in ("--help", "-h")]
    if not helps:
        return argv
    return [a for a in argv if a not in ("--help", "-h")] + ["--", "--help"]


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line and exit 2, gate failures exit 1."""
    import fire

    args = _fire_argv(list(sys.argv[1:] if argv is None else argv))
    os.environ.setdefault("PAGER", "cat")
    try:
        fire.Fire(TrtEdge, command=args, name="trt-edge")
    except TrtEdgeError as exc:
        message = str(exc).replace("\n", " ")
        figures = getattr(exc, "figures", None)
        if figures:
            message += " " + json.dumps(figures, default=str)
        print(f"trt-edge: error: {message}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        print("trt-edge: interrupted; finished stages are kept, the interrupted one left nothing behind",
              file=sys.stderr)
        raise SystemExit(130) from None
