"""CLI commands of the pipeline, mixed into `trt_edge.cli.TrtEdge`."""

from __future__ import annotations

import json
import sys
from typing import Any

from trt_edge.guard import writes_output


class PipelineCommands:
    @writes_output(run_folder=True)
    def pipeline(self, config: str = "configs/demo.yaml", out: str = "runs/demo", from_: str = "", to: str = "",
                 force: bool = False, **overrides: Any) -> None:
        """Run every stage, distill to report, each in its own sub-folder of OUT; resumes and skips finished ones.

        Args:
          config: YAML config file with one section per stage. Defaults to configs/demo.yaml.
          out: the run folder; gets one sub-folder per stage, pipeline.json and report/.
          from_: first stage to run (`--from prune`); earlier stages must have finished in OUT.
          to: last stage to run (`--to export`).
          force: rerun the selected stages even when their config and inputs are unchanged.
          **overrides: `--distill.train.epochs=1`, `--pipeline.gates.calibrate=2`, `--qat.when=always`, ...
        """
        from trt_edge.config import load_config
        from trt_edge.pipeline.runner import run_pipeline, summary_rows
        from trt_edge.tasks.spec import get_task

        start = from_ or overrides.pop("from", "") or None
        run_config = load_config(config or None, overrides)
        results = run_pipeline(run_config, out, start=start, stop=to or None, force=force)
        rows = summary_rows(results, get_task(run_config.section("task").type).metric)
        for row in rows:
            shown = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                              if k not in ("stage", "status"))
            print(f"  {row['stage']:<15} {row['status']:<8} {shown}", file=sys.stderr)
        print(json.dumps(rows, indent=2, default=str))
        print(f"report: {out}/report/report.html", file=sys.stderr)

    def report(self, run_dir: str, out: str = "") -> None:
        """Write report.md and a self-contained report.html for a pipeline run folder.

        Args:
          run_dir: the folder `trt-edge pipeline --out` wrote.
          out: where to write the report. Defaults to RUN_DIR/report.
        """
        from pathlib import Path

        from trt_edge.guard import output_folder
        from trt_edge.pipeline.report import write_report

        with output_folder(out or Path(run_dir) / "report") as folder:
            md, page = write_report(run_dir, folder)
        print(md.read_text(encoding="utf-8"))
        print(f"HTML: {page}", file=sys.stderr)
