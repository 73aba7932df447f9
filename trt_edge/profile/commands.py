"""CLI commands of the profile area (`profile`, `tegrastats`), mixed into `trt_edge.cli.TrtEdge`.

Keep each method a few lines: build the config, call the library, print a short summary. Import heavy
modules inside the method so `trt-edge --help` stays fast and works without optional libraries.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from trt_edge.cli_util import print_summary
from trt_edge.errors import TrtEdgeError
from trt_edge.guard import writes_output


def int_list(value: Any, what: str) -> list[int] | None:
    """`1,8` (Fire hands it over as a tuple), `8`, `[1, 8]` or `"1,8"` -> [1, 8]; None/"" -> None."""
    if value is None or value == "":
        return None
    items = value if isinstance(value, (list, tuple)) else str(value).replace(" ", "").strip("[]()").split(",")
    try:
        out = [int(v) for v in items if str(v) != ""]
    except (TypeError, ValueError):
        raise TrtEdgeError(f"--{what} takes comma-separated integers such as 1,8; got {value!r}") from None
    if not out:
        raise TrtEdgeError(f"--{what} is empty")
    return out


class ProfileCommands:
    """Commands of the profile area."""

    @writes_output()
    def profile(self, engine: str = "", onnx: str = "", out: str = "runs/profile", config: str = "",
                batch: Any = None, seq: Any = None, iterations: int | None = None, duration: float | None = None,
                power: str = "", trtexec_log: str = "", export_profile: str = "", export_times: str = "",
                layer_info: str = "", **overrides: Any) -> None:
        """Time a model (latency percentiles, throughput, per-layer times, power and energy on a Jetson).

        Args:
          engine: a TensorRT plan (or a build stage folder) to time with the TensorRT runner.
          onnx: an ONNX file (or an export/calibrate stage folder) to time with ONNX Runtime.
          out: output folder: profile.json, profile.md, profile.html, plots/ and stage.json.
          config: YAML config (sections `task` for real input texts, `profile`); empty for the defaults.
          batch: batch sizes to sweep, e.g. 1,8. Defaults to 1.
          seq: sequence lengths to sweep, e.g. 64,128. Defaults to the task's max_length.
          iterations: timed runs per sweep point (default 100), or
          duration: seconds per sweep point instead.
          power: auto (Jetson rails when present), off, tegrastats or ina3221.
          trtexec_log: instead of timing, read a trtexec log (with --export-profile, --export-times,
            --layer-info for its exported JSON files) into the same report.
          export_profile: trtexec --exportProfile JSON.
          export_times: trtexec --exportTimes JSON.
          layer_info: trtexec --exportLayerInfo JSON.
          **overrides: profile keys such as `--warmup=20`, `--layers=false`, `--power.rails=[VDD_IN]`,
            `--inputs=random`, or `--task.max_length=64`.
        """
        from trt_edge.config import load_config
        from trt_edge.profile.stage import run, run_trtexec

        keys = ("median_ms", "p90_ms", "p99_ms", "throughput_ips", "real_time_factor", "mj_per_inference", "power",
                "inputs", "points")
        if trtexec_log or export_profile or export_times or layer_info:
            if engine or onnx:
                raise TrtEdgeError("give either a model to time (--engine/--onnx) or trtexec files, not both")
            record = run_trtexec(trtexec_log or None, out, export_profile or None, export_times or None,
                                 layer_info or None)
            print_summary(record, keys)
            print(f"report written to {os.path.join(out, 'profile.html')}", file=sys.stderr)
            return
        if bool(engine) == bool(onnx):
            raise TrtEdgeError("give exactly one of --engine FILE or --onnx FILE (or --trtexec-log LOG)")
        if iterations is not None and duration is not None:
            raise TrtEdgeError("give --iterations or --duration, not both")
        options: dict[str, Any] = dict(overrides)
        for key, value in (("batch", int_list(batch, "batch")), ("seq", int_list(seq, "seq")),
                           ("iterations", iterations), ("duration_s", duration)):
            if value is not None:
                options[key] = value
        if power:
            options["power.source"] = power
        record = run(load_config(config or None, options, "profile"), engine or onnx, out)
        print_summary(record, keys)
        print(f"report written to {os.path.join(out, 'profile.html')}", file=sys.stderr)

    def tegrastats(self, log: str, json: bool = False) -> None:
        """Summarise a saved tegrastats log: per-rail mean/max power, GPU and EMC load, temperatures.

        Args:
          log: a file of tegrastats lines (e.g. from `tegrastats --interval 100 --logfile x.log`).
          json: print the summary as JSON instead of a table.
        """
        import json as _json

        from trt_edge.profile.tegrastats import parse_log

        parsed = parse_log(log)
        summary = parsed.summary()
        if not parsed.samples:
            raise TrtEdgeError(f"{log}: no tegrastats line found ({parsed.malformed} unreadable lines)")
        if json:
            print(_json.dumps(summary, indent=2))
            return
        print(format_summary(summary))


def format_summary(summary: dict[str, Any]) -> str:
    """The tegrastats summary as a short plain-text table."""
    lines = [f"{summary['samples']} samples, {summary['malformed_lines']} unreadable lines"]
    if summary["rails_mw"]:
        unit = " (no unit in the log: read as mW)" if summary.get("rails_without_unit") else ""
        lines.append(f"{'rail':<20} {'mean W':>8} {'max W':>8}{unit}")
        for name, s in summary["rails_mw"].items():
            if s:
                lines.append(f"{name:<20} {s['mean'] / 1e3:>8.3f} {s['max'] / 1e3:>8.3f}")
    for key, label in (("gpu_load_pct", "GPU load %"), ("gpu_mhz", "GPU MHz"), ("emc_load_pct", "EMC load %"),
                       ("ram_used_mb", "RAM used MB")):
        s = summary.get(key)
        if s:
            lines.append(f"{label:<20} {s['mean']:>8.1f} {s['max']:>8.1f}  (mean, max)")
    if summary["temps_c"]:
        lines.append(f"{'temperature C':<20} {'mean':>8} {'max':>8}")
        for name, s in summary["temps_c"].items():
            if s:
                lines.append(f"{name:<20} {s['mean']:>8.1f} {s['max']:>8.1f}")
    return "\n".join(lines)
