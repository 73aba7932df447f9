"""trtexec output into the profile format: the performance summary, --exportProfile, --exportTimes and
--exportLayerInfo (../shared/reference/tensorrt-jetson-facts.md §6).

Tolerant by design, as NVIDIA's own `parse_trtexec_log.py` is: find `=== Performance summary ===`, split
`key: value`, split statistics on `,` then `=`. The percentile set depends on `--percentile`, lines carry a
timestamp prefix or not, some versions add `End-to-End Host Latency`; whatever is absent stays absent.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from trt_edge.errors import TrtEdgeError
from trt_edge.profile.harness import latency_stats

_PREFIX = re.compile(r"^(?:\[\d{2}/\d{2}/\d{4}-\d{2}:\d{2}:\d{2}\]\s*)?(?:\[[IWEVF]\]\s*)?")
_STAT = re.compile(r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\))\s*=\s*([-\d.eE+]+)\s*(ms|s|us)?")
_UNIT = {"ms": 1.0, "s": 1e3, "us": 1e-3, None: 1.0}
# summary key -> our key
_KEYS = {
    "latency": "latency_ms", "enqueue time": "enqueue_ms", "h2d latency": "h2d_ms",
    "gpu compute time": "device_ms", "d2h latency": "d2h_ms", "end-to-end host latency": "end_to_end_ms",
}


def _read(path: str | os.PathLike[str], what: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise TrtEdgeError(f"{what} not found: {p}")
    try:
        return p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise TrtEdgeError(f"{p}: unreadable ({exc})") from exc


def _load_json(path: str | os.PathLike[str], what: str) -> Any:
    try:
        return json.loads(_read(path, what))
    except json.JSONDecodeError as exc:
        raise TrtEdgeError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); is it a trtexec {what}?") from exc
    except RecursionError as exc:
        raise TrtEdgeError(f"{path}: JSON nested too deeply; is it a trtexec {what}?") from exc


def parse_stats(text: str) -> dict[str, float]:
    """`min = 1 ms, max = 2 ms, ..., percentile(99%) = 2 ms` -> {min, max, mean, median, p99} in ms."""
    out: dict[str, float] = {}
    for m in _STAT.finditer(text):
        key = f"p{float(m.group(2)):g}" if m.group(2) else m.group(1)
        out[key] = float(m.group(3)) * _UNIT[m.group(4)]
    return out


def parse_summary(text: str) -> dict[str, Any]:
    """The performance summary of a trtexec log. Raises TrtEdgeError when the log has none."""
    lines = [_PREFIX.sub("", line).strip() for line in text.splitlines()]
    try:
        start = next(i for i, line in enumerate(lines) if "=== Performance summary ===" in line)
    except StopIteration:
        raise TrtEdgeError("no '=== Performance summary ===' in the trtexec log; was inference skipped "
                           "(--skipInference) or did the run fail?") from None
    out: dict[str, Any] = {"warnings": []}
    for line in lines[start + 1:]:
        if line.startswith("===") or line.startswith("&&&&"):
            if line.startswith("&&&&"):
                out["status"] = "PASSED" if "PASSED" in line else "FAILED" if "FAILED" in line else line
                if m := re.search(r"\[TensorRT v(\d+)\]", line):
                    out["tensorrt_version_code"] = int(m.group(1))
            break
        if line.startswith("*"):
            out["warnings"].append(line.lstrip("* ").strip())
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        k = key.strip().lower()
        if k == "throughput":
            if m := re.match(r"\s*([\d.eE+-]+)\s*qps", value):
                out["throughput_qps"] = float(m.group(1))
        elif k in _KEYS:
            stats = parse_stats(value)
            if stats:
                out[_KEYS[k]] = stats
        elif k in ("total host walltime", "total gpu compute time") and (
                m := re.match(r"\s*([\d.eE+-]+)\s*(ms|s)?", value)):
            out[k.replace(" ", "_") + "_s"] = float(m.group(1)) * (_UNIT[m.group(2)] / 1e3)
    for line in lines:
        if m := re.search(r"\bcoefficient of variance = ([\d.]+)%", line):
            out["device_cv_pct"] = float(m.group(1))
    if "latency_ms" not in out and "device_ms" not in out:
        raise TrtEdgeError("the trtexec performance summary holds no Latency or GPU Compute Time line")
    return out


def parse_command(text: str) -> str | None:
    """The trtexec command line from the `&&&& RUNNING`/`PASSED` line, when the log has it."""
    for line in text.splitlines():
        if m := re.search(r"&&&& \w+ TensorRT\.trtexec \[TensorRT v\d+\] # (.*)$", line):
            return m.group(1).strip()
    return None


def parse_export_profile(data: Any) -> dict[str, Any]:
    """`--exportProfile` JSON: `[{"count": N}, {"name", "timeMs", "averageMs", "medianMs", "percentage"}, ...]`."""
    if not isinstance(data, list):
        raise TrtEdgeError("a trtexec --exportProfile file is a JSON list ([{\"count\": N}, {\"name\": ...}])")
    count = None
    layers: list[dict[str, Any]] = []
    for item in data:
        if not isinstance(item, dict):
            continue
        if "count" in item and "name" not in item:
            count = int(item["count"])
            continue
        if "name" not in item:
            continue
        avg = item.get("averageMs", item.get("timeMs"))
        layers.append({"name": str(item["name"]), "op": None,
                       "mean_ms": None if avg is None else float(avg),
                       "median_ms": None if item.get("medianMs") is None else float(item["medianMs"]),
                       "total_ms": None if item.get("timeMs") is None else float(item["timeMs"]),
                       "percent": None if item.get("percentage") is None else float(item["percentage"])})
    layers.sort(key=lambda x: -(x["mean_ms"] or 0.0))
    total = sum(x["mean_ms"] or 0.0 for x in layers)
    return {"source": "trtexec --exportProfile", "runs": count, "total_ms": total, "layers": layers}


def parse_export_times(data: Any) -> dict[str, Any]:
    """`--exportTimes` JSON: one object per iteration with `latencyMs`, `computeMs`, `h2dMs`, ..."""
    if not isinstance(data, list):
        raise TrtEdgeError("a trtexec --exportTimes file is a JSON list of per-iteration objects")
    rows = [r for r in data if isinstance(r, dict)]
    latency = [float(r["latencyMs"]) for r in rows if "latencyMs" in r]
    compute = [float(r["computeMs"]) for r in rows if "computeMs" in r]
    out: dict[str, Any] = {"iterations": len(rows), "samples_ms": latency}
    if latency:
        out["latency_ms"] = latency_stats(latency)
    if compute:
        out["device_ms"] = latency_stats(compute)
        out["device_samples_ms"] = compute
    for key, name in (("h2dMs", "h2d_ms"), ("d2hMs", "d2h_ms")):
        vals = [float(r[key]) for r in rows if key in r]
        if vals:
            out[name] = latency_stats(vals)
    starts = [float(r["startEnqMs"]) for r in rows if "startEnqMs" in r]
    ends = [float(r.get("endD2hMs") or r.get("endComputeMs") or 0.0) for r in rows if "startEnqMs" in r]
    if starts and ends:
        out["duration_s"] = (max(ends) - min(starts)) / 1e3
    return out


def parse_layer_info(data: Any) -> dict[str, dict[str, Any]]:
    """`--exportLayerInfo` (engine inspector JSON, TRT 10 `Bindings` or TRT 11 `I/O Tensors` schema):
    per layer name its type, output precision/format and whether it runs sparse weights."""
    layers = data.get("Layers") if isinstance(data, dict) else data if isinstance(data, list) else None
    if not isinstance(layers, list):
        raise TrtEdgeError("a trtexec --exportLayerInfo file holds {\"Layers\": [...]} (build with "
                           "--profilingVerbosity=detailed for per-layer detail)")
    out: dict[str, dict[str, Any]] = {}
    for i, layer in enumerate(layers):
        if isinstance(layer, str):  # profilingVerbosity=layer_names_only: just names
            out[layer] = {"index": i}
            continue
        if not isinstance(layer, dict):
            continue
        name = str(layer.get("Name", i))
        outputs = layer.get("Outputs") or []
        first = outputs[0] if outputs and isinstance(outputs[0], dict) else {}
        fmt = first.get("Format/Datatype") or first.get("DataType") or first.get("Format")
        sparse = layer.get("HasSparseWeights", layer.get("AllowSparse"))
        out[name] = {"index": i, "type": layer.get("LayerType"), "format": fmt,
                     "sparse": None if sparse is None else bool(int(sparse)), "tactic": layer.get("TacticName"),
                     "origin": layer.get("Origin")}
    return out


def _precision(fmt: str | None) -> str | None:
    if not fmt:
        return None
    for word, name in (("Int8", "int8"), ("INT8", "int8"), ("FP16", "fp16"), ("Half", "fp16"), ("BF16", "bf16"),
                       ("FP8", "fp8"), ("FP32", "fp32"), ("Float", "fp32"), ("Int32", "int32"), ("INT32", "int32")):
        if word in fmt:
            return name
    return None


def profile_from_trtexec(log: str | os.PathLike[str] | None = None,
                         export_profile: str | os.PathLike[str] | None = None,
                         export_times: str | os.PathLike[str] | None = None,
                         layer_info: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The profile (the same dict `profile.json` holds) of trtexec's files: one run, layers, metadata."""
    if not any((log, export_profile, export_times, layer_info)):
        raise TrtEdgeError("give a trtexec log and/or --export-profile / --export-times / --layer-info files")
    run: dict[str, Any] = {"batch": None, "seq": None, "backend": "tensorrt (trtexec)"}
    profile: dict[str, Any] = {"source": "trtexec", "runs": [run], "layers": None, "power": {"available": False,
                               "note": "trtexec measures no power; run `trt-edge profile` on the device for energy"}}
    sources: dict[str, str] = {}
    if log:
        text = _read(log, "trtexec log")
        summary = parse_summary(text)
        sources["log"] = str(log)
        profile["command"] = parse_command(text)
        if m := re.search(r"--shapes=(\S+)", profile["command"] or ""):
            run["shapes"] = m.group(1)
        run.update({k: v for k, v in summary.items() if k not in ("warnings", "status")})
        run["warnings"] = summary["warnings"]
        if "throughput_qps" in summary:
            run["throughput_qps"] = summary["throughput_qps"]
        profile["status"] = summary.get("status")
    if export_times:
        times = parse_export_times(_load_json(export_times, "--exportTimes file"))
        sources["export_times"] = str(export_times)
        # Stats from every iteration supersede the summary's (same numbers, finer, with p95/p99 always).
        run.update(times)
    if export_profile:
        profile["layers"] = parse_export_profile(_load_json(export_profile, "--exportProfile file"))
        sources["export_profile"] = str(export_profile)
    if layer_info:
        info = parse_layer_info(_load_json(layer_info, "--exportLayerInfo file"))
        sources["layer_info"] = str(layer_info)
        profile["layer_info"] = info
        if profile["layers"]:
            for layer in profile["layers"]["layers"]:
                meta = info.get(layer["name"])
                if meta:
                    layer["op"] = meta.get("type")
                    layer["precision"] = _precision(meta.get("format"))
                    layer["sparse"] = meta.get("sparse")
    profile["trtexec_files"] = sources
    return profile
