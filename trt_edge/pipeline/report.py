"""`trt-edge report RUN_DIR`: one Markdown page and one self-contained HTML page for a run.

A table of every model of the run (teacher, student, hard-label ablation, sparse student, INT8 artifacts,
engine) with accuracy, macro-F1, parameters, sizes and side-by-side ONNX Runtime latency, and plots:
accuracy vs latency, accuracy vs size, accuracy per stage. Everything is read from the stage folders'
`stage.json` files and the profile step's `comparison.json`; nothing is recomputed.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trt_edge.config import RunConfig
from trt_edge.errors import TrtEdgeError
from trt_edge.stage import STAGE_FILE, StageRecord, atomic_write_text, read_stage, stage_output

REFERENCE_SHAPE = (1, 64)


@dataclass
class Row:
    model: str
    stage: str
    accuracy: float | None = None
    macro_f1: float | None = None
    params: int | None = None
    size_bytes: int | None = None
    size_kind: str = ""
    latency_label: str | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)  # "b1s64" -> median ms
    note: str = ""


def _stages(run_dir: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for folder in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        if (folder / STAGE_FILE).is_file():
            out[folder.name] = read_stage(folder)
    return out


def _first(metrics: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if metrics.get(key) is not None:
            return metrics[key]
    return None


def collect(run_dir: Path) -> tuple[list[Row], dict[str, Any], dict[str, dict[str, Any]]]:
    stages = _stages(run_dir)
    if "distill" not in stages:
        raise TrtEdgeError(f"{run_dir}: no finished distill stage here; is it a `trt-edge pipeline` run folder?")
    comparison: dict[str, Any] = {}
    if "profile" in stages and "comparison" in stages["profile"].get("artifacts", {}):
        comparison = json.loads((run_dir / "profile" / stages["profile"]["artifacts"]["comparison"]).read_text())
    d = stages["distill"]["metrics"]
    rows = [
        Row("teacher", "distill", d.get("teacher_accuracy"), d.get("teacher_macro_f1"), d.get("teacher_params"),
            d.get("teacher_weight_bytes"), "safetensors", "teacher fp32"),
        Row("student (distilled)", "distill", d.get("student_accuracy"), d.get("student_macro_f1"),
            d.get("student_params"), d.get("student_weight_bytes"), "safetensors",
            None if "prune" in stages or "width" in stages else "student fp32"),
    ]
    if d.get("student_hard_label_accuracy") is not None:
        rows.append(Row("student, hard labels only (ablation)", "distill", d.get("student_hard_label_accuracy"),
                        d.get("student_hard_label_macro_f1"), d.get("student_params"), None, "",
                        note="same student and budget, no teacher"))
    params = d.get("student_params")
    if "width" in stages:
        w = stages["width"]["metrics"]
        params = w.get("params")
        shape = w.get("structure") or {}
        rows.append(Row("width-pruned student", "width", w.get("width_accuracy"), w.get("width_macro_f1"), params,
                        w.get("weight_bytes"), "safetensors",
                        "student width-pruned fp32",
                        note=f"{shape.get('heads', '?')} heads x {shape.get('head_dim', '?')}, feed-forward "
                             f"{shape.get('ffn', '?')} per layer; timed as its fp32 ONNX"))
    if "prune" in stages:
        p = stages["prune"]["metrics"]
        rows.append(Row("sparse student (2:4)", "prune", _first(p, "sparse_accuracy"),
                        _first(p, "sparse_macro_f1"), params,
                        _first(p, "weight_bytes", "sparse_weight_bytes"), "safetensors", "student fp32",
                        note="2:4 pattern; ONNX Runtime on CPU runs it dense"))
    if "export" in stages:
        e = stages["export"]["metrics"]
        rows.append(Row("student ONNX fp32", "export", _first(stages.get("calibrate", {}).get("metrics", {}),
                                                              "fp32_accuracy"), None, None,
                        e.get("onnx_bytes"), "onnx", "student fp32",
                        note=f"parity vs PyTorch: max |Δlogit| {e.get('max_abs_diff', float('nan')):.2e}, "
                             f"argmax agreement {e.get('argmax_agreement', float('nan')):.4f}"))
    if "calibrate" in stages:
        c = stages["calibrate"]["metrics"]
        arts = stages["calibrate"].get("artifacts", {})
        qdq = run_dir / "calibrate" / arts["onnx"] if "onnx" in arts else None
        rows.append(Row("student INT8 Q/DQ (TensorRT)", "calibrate", c.get("int8_accuracy"),
                        _first(c, "int8_macro_f1"), None, qdq.stat().st_size if qdq and qdq.is_file() else None, "onnx",
                        "student INT8 Q/DQ (TensorRT)", note=f"{c.get('method', '')} calibration"))
        if c.get("cpu_accuracy") is not None:
            rows.append(Row("student INT8 (CPU)", "calibrate", c.get("cpu_accuracy"), c.get("cpu_macro_f1"), None,
                            c.get("cpu_onnx_bytes"), "onnx", "student INT8 (CPU)",
                            note=f"chosen CPU artifact: {c.get('cpu_artifact', '')}"))
    for point in comparison.get("shapes", []):
        key = f"b{point['batch']}s{point['seq']}"
        for row in rows:
            if row.latency_label and row.latency_label in point["latency_ms"]:
                row.latency_ms[key] = point["latency_ms"][row.latency_label]["median"]
    return rows, comparison, stages


def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "–"
    if kind == "acc":
        return f"{100 * float(value):.2f}%"
    if kind == "bytes":
        return f"{float(value) / 1e6:.1f} MB"
    if kind == "params":
        return f"{float(value) / 1e6:.2f} M"
    if kind == "ms":
        return f"{float(value):.2f}"
    return str(value)


def table(rows: list[Row], shapes: list[str]) -> tuple[list[str], list[list[str]]]:
    head = ["model", "accuracy", "macro-F1", "parameters", "size", *[f"ORT ms {s}" for s in shapes], "note"]
    body = [[r.model, _fmt(r.accuracy, "acc"), _fmt(r.macro_f1, "acc"), _fmt(r.params, "params"),
             _fmt(r.size_bytes, "bytes") + (f" ({r.size_kind})" if r.size_bytes else ""),
             *[_fmt(r.latency_ms.get(s), "ms") for s in shapes], r.note] for r in rows]
    return head, body


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def plots(rows: list[Row], shapes: list[str]) -> dict[str, str]:
    """Base64 PNGs: accuracy vs latency, accuracy vs size, accuracy per stage."""
    from trt_edge.lazy import lazy_import

    matplotlib = lazy_import("matplotlib")
    matplotlib.use("Agg")
    plt = lazy_import("matplotlib.pyplot")
    out: dict[str, str] = {}
    ref = f"b{REFERENCE_SHAPE[0]}s{REFERENCE_SHAPE[1]}"
    ref = ref if ref in shapes else (shapes[0] if shapes else ref)
    acc = {r.model: 100 * r.accuracy for r in rows if r.accuracy is not None}
    latency = [(r.model, r.latency_ms[ref], acc[r.model]) for r in rows if r.model in acc and ref in r.latency_ms]
    size = [(r.model, r.size_bytes / 1e6, acc[r.model]) for r in rows if r.model in acc and r.size_bytes]
    for key, points, xlabel, title in (
        ("accuracy_vs_latency", latency, f"ONNX Runtime CPU latency, median ms ({ref})", "Accuracy vs latency"),
        ("accuracy_vs_size", size, "size on disk (MB)", "Accuracy vs size"),
    ):
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        merged: dict[tuple[float, float], list[str]] = {}
        for label, x, y in points:  # the same model file reached by two stages gets one point, both names
            merged.setdefault((round(x, 6), round(y, 6)), []).append(label)
        for (x, y), labels in merged.items():
            ax.scatter(x, y, s=60)
            ax.annotate(" / ".join(labels), (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        out[key] = _png(fig)
        plt.close(fig)
    if acc:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        ax.barh(list(acc)[::-1], list(acc.values())[::-1], color="#4c72b0")
        ax.set_xlim(max(0.0, min(acc.values()) - 10), 100)
        ax.set_xlabel("test accuracy (%)")
        ax.set_title("Accuracy at every stage")
        out["accuracy_per_stage"] = _png(fig)
        plt.close(fig)
    return out


def _markdown(run_dir: Path, head: list[str], body: list[list[str]], stages: dict[str, dict[str, Any]],
              comparison: dict[str, Any], images: dict[str, str]) -> str:
    lines = [f"# trt-edge report: {run_dir.name}", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    lines += ["", _latency_note(comparison), ""]
    lines += _speedups(comparison)
    if "build" in stages:
        b = stages["build"]
        lines += ["## Engine", "", _engine_note(b), ""]
    lines += ["## Stages", "", "| stage | finished | key metrics |", "|---|---|---|"]
    for name, s in stages.items():
        keys = [k for k in s.get("metrics", {}) if isinstance(s["metrics"][k], (int, float))][:6]
        shown = ", ".join(f"{k}={_short(s['metrics'][k])}" for k in keys)
        lines.append(f"| {name} | {s.get('finished', '')} | {shown} |")
    lines += ["", "Plots: " + ", ".join(f"`{k}.png`" for k in images) if images else ""]
    return "\n".join(lines) + "\n"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _latency_note(comparison: dict[str, Any]) -> str:
    if not comparison:
        return "No latency comparison in this run (the profile step did not run)."
    return (f"Latency: ONNX Runtime {comparison.get('onnxruntime')} on this machine's CPU "
            f"({comparison.get('threads')} threads), {comparison.get('method')}.")


def _speedups(comparison: dict[str, Any]) -> list[str]:
    if not comparison.get("shapes"):
        return []
    lines = [f"Speed-up against {comparison.get('reference')} (median latency ratio, same run):", ""]
    labels = [m["label"] for m in comparison["models"]]
    lines += ["| shape | " + " | ".join(labels) + " |", "|" + "---|" * (len(labels) + 1)]
    for p in comparison["shapes"]:
        lines.append(f"| b{p['batch']} s{p['seq']} | "
                     + " | ".join(f"{p['speedup_vs_first'][label]:.2f}×" for label in labels) + " |")
    return [*lines, ""]


def _engine_note(build: dict[str, Any]) -> str:
    arts = build.get("artifacts", {})
    if "plan" in arts:
        return f"TensorRT plan built: `build/{arts['plan']}` with manifest `build/{arts.get('manifest', '')}`."
    if "bundle" in arts:
        return (f"No TensorRT here: an on-device build bundle was written to `build/{arts['bundle']}`; run its "
                "`build_on_device.sh` on the Jetson, then `trt-edge profile --engine` there.")
    return "Build stage output: " + ", ".join(f"{k}: {v}" for k, v in arts.items())


def _speedup_table(comparison: dict[str, Any]) -> tuple[str, list[str], list[list[str]]] | None:
    if not comparison.get("shapes"):
        return None
    labels = [m["label"] for m in comparison["models"]]
    rows = [[f"b{p['batch']} s{p['seq']}", *(f"{p['speedup_vs_first'][label]:.2f}×" for label in labels)]
            for p in comparison["shapes"]]
    return f"Speed-up against {comparison.get('reference')} (median latency ratio, same run)", ["shape", *labels], rows


def _html(title: str, head: list[str], body: list[list[str]], markdown_extra: list[str],
          images: dict[str, str], speedups: tuple[str, list[str], list[list[str]]] | None = None) -> str:
    esc = html.escape
    speed = ""
    if speedups is not None:
        caption, s_head, s_rows = speedups
        speed = (f"<h2>{esc(caption)}</h2><table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in s_head)
                 + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
                                                    for row in s_rows) + "</tbody></table>")
    rows = "\n".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in body)
    figs = "\n".join(f'<figure><img alt="{esc(k)}" src="data:image/png;base64,{v}">'
                     f'<figcaption>{esc(k.replace("_", " "))}</figcaption></figure>' for k, v in images.items())
    extra = "\n".join(f"<p>{esc(p)}</p>" for p in markdown_extra if p)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.35rem 0.6rem; text-align: right; }}
td:first-child, th:first-child, td:last-child {{ text-align: left; }}
th {{ background: #f0f3f8; }}
figure {{ display: inline-block; margin: 0.5rem; }} img {{ max-width: 560px; }}
</style></head><body>
<h1>{esc(title)}</h1>
<table><thead><tr>{"".join(f"<th>{esc(h)}</th>" for h in head)}</tr></thead>
<tbody>
{rows}
</tbody></table>
{extra}
{speed}
<div class="plots">{figs}</div>
</body></html>
"""


def write_report(run_dir: str | Path, out: str | Path) -> tuple[Path, Path]:
    """Write `report.md`, `report.html` and the plot PNGs of `run_dir` into `out`."""
    root = Path(run_dir)
    if not root.is_dir():
        raise TrtEdgeError(f"run folder not found: {root}")
    rows, comparison, stages = collect(root)
    shapes = [f"b{p['batch']}s{p['seq']}" for p in comparison.get("shapes", [])]
    head, body = table(rows, shapes)
    images = plots(rows, shapes)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    md = _markdown(root, head, body, stages, comparison, images)
    for name, data in images.items():
        (folder / f"{name}.png").write_bytes(base64.b64decode(data))
    md_path = atomic_write_text(folder / "report.md", md)
    extra = [_latency_note(comparison)]
    if "build" in stages:
        extra.append(_engine_note(stages["build"]))
    html_path = atomic_write_text(folder / "report.html", _html(f"trt-edge report: {root.name}", head, body,
                                                                 extra, images, _speedup_table(comparison)))
    return md_path, html_path


def run(config: RunConfig, run_dir: Path, out: str | Path) -> StageRecord:
    """The pipeline's report step."""
    record = StageRecord(stage="report", config={"pipeline": config.raw.get("pipeline")},
                         artifacts={"report": "report.md", "html": "report.html"})
    with stage_output(out) as tmp:
        write_report(run_dir, tmp)
        rows, _, _ = collect(Path(run_dir))
        record.metrics = {r.model: r.accuracy for r in rows if r.accuracy is not None}
        record.write(tmp)
    return record
