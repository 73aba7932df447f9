"""The `trt-edge` command: one method per stage, each a few lines over the library.

Every stage command takes `--config FILE` (YAML) and `--out DIR`; any other `--section.key=value` option
overrides the config, and a bare `--key=value` overrides the command's own section. A user error prints
one line on standard error and exits 2; a failed gate exits 1 with its figures.
"""

from __future__ import annotations

import json
import os
import sys

from trt_edge.distill.commands import DistillCommands
from trt_edge.engine.commands import EngineCommands
from trt_edge.errors import TrtEdgeError
from trt_edge.export.commands import ExportCommands
from trt_edge.log import report_repeats
from trt_edge.pipeline.commands import PipelineCommands
from trt_edge.profile.commands import ProfileCommands
from trt_edge.quantize.commands import CalibrateCommands
from trt_edge.sparsity.commands import PruneCommands
from trt_edge.tasks.commands import DataCommands


class TrtEdge(DistillCommands, PruneCommands, ExportCommands, CalibrateCommands, EngineCommands,
              ProfileCommands, PipelineCommands, DataCommands):
    """trt-edge: Hugging Face transformer to a small, fast, verified TensorRT engine for Jetson.

    Stages: distill, prune, export, calibrate, qat, build, profile; `pipeline` runs them all, `report` shows a
    run. Each stage reads files and writes a folder with `stage.json`. `scenes` writes the synthetic
    segmentation/detection demo data, `check-data` checks such a data set. Use `trt-edge COMMAND --help`.
    """


def _fire_argv(argv: list[str]) -> list[str]:
    """Fire hands `--help` to a command's **overrides; move it behind `--`, where Fire reads it."""
    if "--" in argv:
        return argv
    helps = [a for a in argv if a in ("--help", "-h")]
    if not helps:
        return argv
    return [a for a in argv if a not in ("--help", "-h")] + ["--", "--help"]


def _config_help(args: list[str], exc: SystemExit) -> None:
    """After Fire's help of a stage command, list the config keys that command reads (types, defaults)."""
    if exc.code not in (0, None) or args[-2:] != ["--", "--help"] or not args[:1]:
        return
    from trt_edge.config_doc import help_text

    text = help_text(args[0].replace("-", "_"))
    if text:
        sys.stdout.flush()
        print(text)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line and exit 2, gate failures exit 1."""
    import fire

    from trt_edge.cli_util import verbatim_argv

    os.environ.setdefault("PAGER", "cat")
    try:
        args = verbatim_argv(_fire_argv(list(sys.argv[1:] if argv is None else argv)), TrtEdge)
        fire.Fire(TrtEdge, command=args, name="trt-edge")
        report_repeats()  # warnings said once (`warn_once`) that came again: how often
    except SystemExit as exc:
        _config_help(args, exc)
        raise
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
