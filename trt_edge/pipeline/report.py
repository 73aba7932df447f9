"""`trt-edge report RUN_DIR`: one Markdown page and one self-contained HTML page for a run.

The verdict comes first (`trt_edge.pipeline.verdict`): what to deploy for each target with its size,
speed-up and accuracy against the teacher (paired 95% intervals), every gate's status, and warnings.
Then a table of every model of the run (teacher, student, hard-label ablation, sparse student, INT8 artifacts,
engine) with accuracy, macro-F1, parameters, sizes and side-by-side ONNX Runtime latency, and plots:
accuracy vs latency, accuracy vs size, accuracy per stage. Everything is read from the stage folders'
`stage.json` files and the profile step's `comparison.json`; nothing is recomputed.

A task judged against a reference model rather than labels (`TaskAdapter.uses_labels` False: sentence
embeddings) has no classes: its Models table shows each model's scores against the teacher's saved test
outputs (`Verdict.scores`: recall@10 of the teacher's neighbours, mean cosine, kNN accuracy on labels
where the data has them), its plots the task's metric, and no confusion tables.

A run with the qat stage also times QAT's Q/DQ model beside PTQ's, shows fp32, PTQ and QAT side by side
(each INT8 model's paired interval against fp32, the layers each leaves in float) and names in the verdict
the INT8 model the stage deployed and why (`verdict.deploy_choice`).

A segmentation or detection run also shows its first test images with the teacher's and the final model's
predictions drawn side by side (`pipeline.overlays`: PNGs next to report.md, inline in the HTML).
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge import stats
from trt_edge.artifacts import BUNDLE, COMPARISON, HTML, MANIFEST, ONNX, ONNX_QAT, PLAN, RANGES, REPORT, StageDescriptor
from trt_edge.config import RunConfig
from trt_edge.errors import TrtEdgeError
from trt_edge.files import atomic_write_bytes, atomic_write_text
from trt_edge.pipeline.compare import shape_key, shape_label
from trt_edge.pipeline.overlays import html_section as overlay_html
from trt_edge.pipeline.overlays import make_overlays
from trt_edge.pipeline.overlays import markdown as overlay_markdown
from trt_edge.pipeline.verdict import QAT_LABEL, Target, Verdict, build_verdict, confusion
from trt_edge.stage import STAGE_FILE, StageRecord, read_stage, stage_output
from trt_edge.tasks.spec import task_for_record

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
    # a task judged against a reference model: the model's figures against the teacher's saved outputs
    # (`Verdict.scores`), shown as the table's figure columns instead of accuracy and macro-F1
    scores: dict[str, float] = field(default_factory=dict)


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
    if "profile" in stages and COMPARISON in stages["profile"].get("artifacts", {}):
        comparison = json.loads((run_dir / "profile" / stages["profile"]["artifacts"][COMPARISON]).read_text())
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
        spec = task_for_record(stages["export"])
        parity = (f"least cosine {e.get('min_cosine', float('nan')):.6f}" if spec is not None and spec.pooled
                  else f"argmax agreement {e.get('argmax_agreement', float('nan')):.4f}")
        rows.append(Row("student ONNX fp32", "export", _first(stages.get("calibrate", {}).get("metrics", {}),
                                                              "fp32_accuracy"), None, None,
                        e.get("onnx_bytes"), "onnx", "student fp32",
                        note=f"parity vs PyTorch: max |Δ{'' if spec is not None and spec.pooled else 'logit'}| "
                             f"{e.get('max_abs_diff', float('nan')):.2e}, {parity}"))
    if "calibrate" in stages:
        c = stages["calibrate"]["metrics"]
        arts = stages["calibrate"].get("artifacts", {})
        qdq = run_dir / "calibrate" / arts[ONNX] if ONNX in arts else None
        rows.append(Row("student INT8 Q/DQ (TensorRT)", "calibrate", c.get("int8_accuracy"),
                        _first(c, "int8_macro_f1"), None, qdq.stat().st_size if qdq and qdq.is_file() else None, "onnx",
                        "student INT8 Q/DQ (TensorRT)", note=f"{c.get('method', '')} calibration"))
        if c.get("cpu_accuracy") is not None:
            rows.append(Row("student INT8 (CPU)", "calibrate", c.get("cpu_accuracy"), c.get("cpu_macro_f1"), None,
                            c.get("cpu_onnx_bytes"), "onnx", "student INT8 (CPU)",
                            note=f"chosen CPU artifact: {c.get('cpu_artifact', '')}"))
    qat = stages.get("qat")
    if qat is not None and qat.get("metrics", {}).get("qat_ran") and ONNX_QAT in qat.get("artifacts", {}):
        q = qat["metrics"]
        path = run_dir / "qat" / qat["artifacts"][ONNX_QAT]
        fate = "deployed" if q.get("deployed") == "qat" else "not deployed"
        rows.append(Row(QAT_LABEL, "qat", q.get("qat_accuracy"), _first(q, "qat_macro_f1"), None,
                        path.stat().st_size if path.is_file() else None, "onnx", QAT_LABEL,
                        note=f"quantization-aware distillation, every planned layer INT8; {fate}: "
                             f"{q.get('deployed_reason', '')}"))
    for point in comparison.get("shapes", []):
        key = shape_key(point)
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
    if kind == "cos":
        return f"{float(value):.4f}"
    return str(value)


# Headers of the figures `Verdict.scores` holds (a task judged against a reference model); a figure not
# listed prints as its key. Scores that are no figure of the model (counts, the best-epoch pick) are left out.
SCORE_HEADERS = {"recall_at_10": "recall@10 of the teacher's neighbours", "mean_cosine": "mean cosine to the teacher",
                 "knn_accuracy": "kNN accuracy (labels)", "knn_macro_f1": "kNN macro-F1 (labels)"}
NOT_FIGURES = ("examples", "k", "score")


def score_columns(rows: list[Row]) -> list[str]:
    """The figure keys any row's `scores` holds, in first-seen order."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r.scores if k not in NOT_FIGURES and k not in keys]
    return keys


def table(rows: list[Row], shapes: list[str],
          labels: dict[str, str] | None = None) -> tuple[list[str], list[list[str]]]:
    """The Models table; `labels` print the shape keys (`b1s64`) as the task words them (`b1 224x224`).
    Rows with `scores` (a task judged against the teacher's outputs) show those figures instead of
    accuracy and macro-F1; a figure a model lacks (cosine across dimensions) prints as a dash."""
    names = labels or {}
    columns = score_columns(rows)
    if columns:
        figures = [SCORE_HEADERS.get(k, k.replace("_", " ")) for k in columns]
        values = [[_fmt(r.scores.get(k), "acc" if k != "mean_cosine" else "cos") for k in columns] for r in rows]
    else:
        figures = ["accuracy", "macro-F1"]
        values = [[_fmt(r.accuracy, "acc"), _fmt(r.macro_f1, "acc")] for r in rows]
    head = ["model", *figures, "parameters", "size", *[f"ORT ms {names.get(s, s)}" for s in shapes], "note"]
    body = [[r.model, *v, _fmt(r.params, "params"),
             _fmt(r.size_bytes, "bytes") + (f" ({r.size_kind})" if r.size_bytes else ""),
             *[_fmt(r.latency_ms.get(s), "ms") for s in shapes], r.note] for r, v in zip(rows, values, strict=True)]
    return head, body


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


MARKERS = "osD^vP*Xph"


def _pyplot() -> Any:
    from trt_edge.lazy import lazy_import

    matplotlib = lazy_import("matplotlib")
    matplotlib.use("Agg")
    return lazy_import("matplotlib.pyplot")


def _reference_shape(shapes: list[str]) -> str:
    ref = f"b{REFERENCE_SHAPE[0]}s{REFERENCE_SHAPE[1]}"
    return ref if ref in shapes else (shapes[0] if shapes else ref)


def plots(rows: list[Row], shapes: list[str], comparison: dict[str, Any] | None = None,
          metric_words: str = "accuracy") -> dict[str, str]:
    """Base64 PNGs: accuracy vs latency, accuracy vs size, latency percentiles, accuracy per stage.
    `metric_words` names the figure plotted (`Row.accuracy`: the task's metric, `Verdict.metric_words`);
    the PNG names stay `accuracy_*` so links to them keep working.

    Models are told apart by marker and colour with a legend below the axes, never by text placed next
    to a point: three models of nearly equal accuracy and size would print their names on top of each other.
    """
    plt = _pyplot()
    out: dict[str, str] = {}
    ref = _reference_shape(shapes)
    ref_label = next((shape_label(p) for p in (comparison or {}).get("shapes", [])
                      if shape_key(p) == ref), ref)
    acc = {r.model: 100 * r.accuracy for r in rows if r.accuracy is not None}
    style = {r.model: (MARKERS[i % len(MARKERS)], f"C{i % 10}") for i, r in enumerate(rows)}
    latency = [(r.model, r.latency_ms[ref], acc[r.model]) for r in rows if r.model in acc and ref in r.latency_ms]
    size = [(r.model, r.size_bytes / 1e6, acc[r.model]) for r in rows if r.model in acc and r.size_bytes]
    title_word = metric_words[:1].upper() + metric_words[1:]
    ylabel = f"test {metric_words} (%)"
    for key, points, xlabel, title in (
        ("accuracy_vs_latency", latency, f"ONNX Runtime CPU latency, median ms ({ref_label})",
         f"{title_word} vs latency"),
        ("accuracy_vs_size", size, "size on disk (MB)", f"{title_word} vs size"),
    ):
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(6, 4.2))
        merged: dict[tuple[float, float], list[str]] = {}
        for label, x, y in points:  # the same file reached by two stages: one point, both names in the legend
            merged.setdefault((round(x, 6), round(y, 6)), []).append(label)
        for (x, y), labels in merged.items():
            marker, colour = style[labels[0]]
            ax.scatter(x, y, s=70, marker=marker, color=colour, label=" = ".join(labels), alpha=0.85,
                       edgecolors="black", linewidths=0.5)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
        out[key] = _png(fig)
        plt.close(fig)
    percentiles = _percentile_points(comparison or {}, ref)
    if percentiles:
        fig, ax = plt.subplots(figsize=(6, 0.55 * len(percentiles) + 1.6))
        names = [p[0] for p in percentiles][::-1]
        ys = np.arange(len(names))
        for j, (stat, colour) in enumerate((("median", "#4c72b0"), ("p90", "#dd8452"), ("p99", "#c44e52"))):
            values = [dict(p[1]).get(stat, np.nan) for p in percentiles][::-1]
            ax.barh(ys + (j - 1) * 0.26, values, height=0.26, color=colour, label=stat)
        ax.set_yticks(ys, names, fontsize=8)
        ax.set_xlabel(f"ONNX Runtime CPU latency, ms ({ref_label})")
        ax.set_title("Latency percentiles")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, fontsize=8, frameon=False)
        out["latency_percentiles"] = _png(fig)
        plt.close(fig)
    if acc:
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(acc) + 1.4))
        ax.barh(list(acc)[::-1], list(acc.values())[::-1], color="#4c72b0")
        ax.set_xlim(max(0.0, min(acc.values()) - 10), 100)
        ax.set_xlabel(ylabel)
        ax.set_title(f"{title_word} at every stage")
        out["accuracy_per_stage"] = _png(fig)
        plt.close(fig)
    return out


def _percentile_points(comparison: dict[str, Any], ref: str) -> list[tuple[str, list[tuple[str, float]]]]:
    for point in comparison.get("shapes", []):
        if shape_key(point) == ref:
            return [(label, [(k, float(v)) for k, v in st.items() if k in ("median", "p90", "p99")])
                    for label, st in point.get("latency_ms", {}).items()]
    return []


# ---- the verdict and the tables under it ---------------------------------------------------------------


def _ci(g: dict[str, Any] | None) -> str:
    if not g:
        return "–"
    lo, hi = g["interval_points"]
    return f"{g['drop_points']:+.2f} [{lo:+.2f}, {hi:+.2f}]{_method_mark(g)}"


def _method_mark(g: dict[str, Any]) -> str:
    """`(bootstrap)` beside a bootstrap interval (its full method is named above the gate table); nothing
    beside a Newcombe one, so a classification report reads as before."""
    return " (bootstrap)" if stats.is_bootstrap(g) else ""


def _methods(v: Verdict) -> str:
    """The interval methods of the gate table: Newcombe's, plus each bootstrap method a gate used."""
    boot = sorted({str(g.get("method")) for g in v.gates if stats.is_bootstrap(g)})
    if boot and all(stats.is_bootstrap(g) for g in v.gates):  # no Newcombe row (an embedding run): none named
        return "; ".join(f"rows marked (bootstrap): {m}" for m in boot)
    return stats.METHOD + "".join(f"; rows marked (bootstrap): {m}" for m in boot)


def target_table(v: Verdict) -> tuple[list[str], list[list[str]]]:
    head = ["target", "deploy", "size", "speed-up vs teacher", f"{v.metric_words} vs teacher (drop, 95% CI, points)",
            "how"]
    body = []
    for t in v.targets:
        speed = ", ".join(f"{x:.1f}× ({s})" for s, x in t.speedup.items()) or "not measured"
        vt = t.vs_teacher
        acc = (f"{100 * vt['new_accuracy']:.2f}% vs {100 * vt['ref_accuracy']:.2f}%: {_ci(vt)}, n={vt['n']}"
               if vt else "–")
        body.append([t.target, t.artifact, _fmt(t.size_bytes, "bytes"), f"{speed}; {t.speedup_note}", acc, t.how])
    return head, body


def gate_table(v: Verdict) -> tuple[list[str], list[list[str]]]:
    head = ["gate", "compares", "drop, 95% CI (points)", "n", "budget", "status"]
    body = []
    for g in v.gates:
        budget = "–" if g.get("budget_points") is None else f"{g['budget_points']:g}"
        if g.get("loosened"):
            budget += f" (loosened from {g['default_budget_points']:g})"
        body.append([g["gate"], g["compares"], _ci(g), f"{g['n']:,}", budget, g["status"]])
    return head, body


def confusion_tables(v: Verdict) -> list[tuple[str, list[str], list[list[str]]]]:
    """Teacher and final model: counts by true (rows) and predicted (columns) class, with recall. None for
    a task not judged on labels (its outputs are no classes, whatever labels the data carries)."""
    if v.labels is None or not v.uses_labels:
        return []
    names = v.label_names or [str(i) for i in range(int(v.labels.max()) + 1)]
    final = next((m for m in (v.int8_model, "student INT8 Q/DQ (TensorRT)", "student INT8 (CPU)",
                              "sparse student (2:4)", "width-pruned student", "student (distilled)")
                  if m in v.predictions), None)
    out = []
    for model in [m for m in ("teacher", final) if m and m in v.predictions]:
        matrix = confusion(v.labels, v.predictions[model], len(names))
        head = ["true \\ predicted", *names, "recall"]
        body = []
        for i, name in enumerate(names):
            total = int(matrix[i].sum())
            recall = f"{100 * matrix[i, i] / total:.1f}%" if total else "–"
            body.append([name, *(str(int(c)) for c in matrix[i]), recall])
        share = [f"{100 * matrix[:, j].sum() / max(1, matrix.sum()):.0f}%" for j in range(len(names))]
        body.append(["share of predictions", *share, ""])
        out.append((f"Confusion: {model}", head, body))
    return out


def data_table(stages: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]] | None:
    """What the run trained and judged on, and what loading changed: split sizes, classes, repeated and
    contradictory examples dropped or resolved, files decoded with the fallback encoding."""
    data = stages.get("distill", {}).get("metrics", {}).get("data")
    if not isinstance(data, dict):
        return None
    body = []
    sizes = data.get("sizes") or {}
    if sizes:
        body.append(["examples (train / validation / test)",
                     " / ".join(f"{sizes.get(n, 0):,}" for n in ("train", "validation", "test"))])
    names = data.get("label_names") or []
    if names:
        body.append(["classes", f"{len(names)}: {', '.join(map(str, names))}"])
    dup = data.get("duplicates") or {}
    body.append(["repeated examples dropped (task.data.drop_duplicates)", f"{dup.get('duplicates_dropped', 0):,}"])
    if dup.get("conflicting_texts"):
        fate = (f"every copy dropped ({dup['conflicting_dropped']:,} examples)" if dup.get("conflicting_dropped")
                else "the first label kept")
        body.append(["examples with two labels (task.data.conflicting_labels)",
                     f"{dup['conflicting_texts']:,}: {fate}"])
    decoding = data.get("decoding") or {}
    if decoding.get("fallback_files"):
        body.append(["files read with task.data.fallback_encoding", ", ".join(decoding["fallback_files"])])
    if decoding.get("replaced_chars"):
        body.append(["undecodable bytes replaced by U+FFFD", f"{decoding['replaced_chars']:,} in "
                     f"{len(decoding.get('replaced_files', []))} files"])
    return ["", "value"], body


def sparsity_table(stages: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]] | None:
    metrics = stages.get("prune", {}).get("metrics", {})
    layers = metrics.get("layers")
    if not layers:
        return None
    head = ["layer (2:4)", "kept magnitude", "without permutation", "input channels permuted"]
    body = [[name, f"{100 * float(d.get('kept_magnitude', 0)):.1f}%",
             f"{100 * float(d.get('kept_magnitude_without_permutation', 0)):.1f}%",
             str(d.get("input_channels_permuted") or "–")] for name, d in layers.items()]
    convolutions = metrics.get("dense_convolutions") or {}
    if convolutions:  # one row for all of them: left dense, and why
        names = sorted(convolutions)
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        plural = "s" if len(names) > 1 else ""
        body.append([f"{len(names)} convolution{plural} ({shown})", "dense", "–", str(convolutions[names[0]])])
    return head, body


QAT_CAPTION = "INT8 side by side: fp32, PTQ (calibrate) and QAT (qat stage)"


def qat_table(stages: dict[str, dict[str, Any]], metric: str = "accuracy",
              metric_words: str = "accuracy") -> tuple[list[str], list[list[str]]] | None:
    """The qat stage's three models on one test split: the fp32 ONNX, PTQ's INT8 and QAT's INT8, each INT8
    one with its paired interval against fp32, the layers it leaves in higher precision, and which one is
    deployed and why. None without a qat stage. Read from the qat record alone (it pairs all three)."""
    m = (stages.get("qat") or {}).get("metrics")
    if not m:
        return None
    deployed = m.get("deployed")
    head = ["model", f"test {metric_words}", "drop vs fp32, 95% CI (points)", "n",
            "layers left in higher precision", "deployed"]
    floats = m.get("ptq_float_layers") or []
    ptq_gate = m.get("ptq_gate") if stats.is_gate_record(m.get("ptq_gate")) else None
    body = [["student ONNX fp32", _fmt(m.get(f"fp32_{metric}"), "acc"), "reference", "–", "all (fp32)", ""],
            ["PTQ INT8 Q/DQ (calibrate)", _fmt(m.get(f"ptq_{metric}"), "acc"), _ci(ptq_gate),
             f"{ptq_gate['n']:,}" if ptq_gate else "–",
             f"{len(floats)}: {', '.join(floats)}" if floats else "none",
             f"yes: {m.get('deployed_reason', '')}" if deployed == "ptq" else "no"]]
    if m.get("qat_ran"):
        gate = m.get("gate") if stats.is_gate_record(m.get("gate")) else None
        qat_floats = m.get("qat_float_layers") or []
        body.append(["QAT INT8 Q/DQ (qat stage)", _fmt(m.get(f"qat_{metric}"), "acc"), _ci(gate),
                     f"{gate['n']:,}" if gate else "–",
                     f"{len(qat_floats)}: {', '.join(qat_floats)}" if qat_floats else "none",
                     f"yes: {m.get('deployed_reason', '')}" if deployed == "qat" else
                     f"no: {m.get('deployed_reason', '')}"])
    else:
        body.append(["QAT INT8 Q/DQ (qat stage)", "–", "–", "–", "–", f"did not run: {m.get('reason', '')}"])
    return head, body


def precision_table(run_dir: Path, stages: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]] | None:
    cal = stages.get("calibrate")
    ranges = (cal or {}).get("artifacts", {}).get(RANGES)
    if not ranges or not (run_dir / "calibrate" / ranges).is_file():
        return None
    doc = json.loads((run_dir / "calibrate" / ranges).read_text(encoding="utf-8"))
    floated = set(doc.get("float_layers", []))
    head = ["layer", "op", "precision (Q/DQ ONNX)", "why"]
    body = []
    for p in doc.get("placement", []):
        name = p.get("node", "")
        precision = "float" if name in floated else "INT8"
        why = ("accuracy gate: among the most sensitive layers" if name in floated
               else f"{p.get('kind', '')} inputs quantized")
        body.append([name, p.get("op_type", ""), precision, why])
    for name, why in sorted(doc.get("skipped", {}).items()):
        body.append([name, "", "float", str(why)])
    return head, body


def _markdown(run_dir: Path, v: Verdict, head: list[str], body: list[list[str]], stages: dict[str, dict[str, Any]],
              comparison: dict[str, Any], images: dict[str, str], extra_tables: list[tuple[str, list[str],
                                                                                          list[list[str]]]],
              overlay_lines: list[str] | None = None) -> str:
    lines = [f"# trt-edge report: {run_dir.name}", "", f"**{v.headline}**", ""]
    t_head, t_body = target_table(v)
    lines += _md_table(t_head, t_body)
    g_head, g_body = gate_table(v)
    lines += ["## Gates", "", f"Paired on the same test examples; {_methods(v)}.", ""]
    lines += _md_table(g_head, g_body)
    if v.warnings:
        lines += ["## Warnings", "", *[f"- {w}" for w in v.warnings], ""]
    lines += ["## Models", ""]
    lines += _md_table(head, body)
    lines += [_latency_note(comparison), ""]
    lines += _speedups(comparison)
    lines += overlay_lines or []
    for caption, e_head, e_body in extra_tables:
        lines += [f"## {caption}", ""]
        lines += _md_table(e_head, e_body)
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


def _md_table(head: list[str], body: list[list[str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    return ["| " + " | ".join(map(cell, head)) + " |", "|" + "---|" * len(head),
            *["| " + " | ".join(map(cell, row)) + " |" for row in body], ""]


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _latency_note(comparison: dict[str, Any]) -> str:
    if not comparison:
        return "No latency comparison in this run (the profile step did not run)."
    return (f"Latency: ONNX Runtime {comparison.get('onnxruntime')} on this machine's CPU "
            f"({comparison.get('threads')} threads), {comparison.get('method')}.")


def _speedups(comparison: dict[str, Any]) -> list[str]:
    table = _speedup_table(comparison)
    if table is None:
        return []
    caption, head, rows = table
    return [f"{caption}:", "", *_md_table(head, rows)]


def _engine_note(build: dict[str, Any]) -> str:
    arts = build.get("artifacts", {})
    if PLAN in arts:
        return f"TensorRT plan built: `build/{arts[PLAN]}` with manifest `build/{arts.get(MANIFEST, '')}`."
    if BUNDLE in arts:
        return (f"No TensorRT here: an on-device build bundle was written to `build/{arts[BUNDLE]}`; run its "
                "`build_on_device.sh` on the Jetson, then `trt-edge profile --engine` there.")
    return "Build stage output: " + ", ".join(f"{k}: {v}" for k, v in arts.items())


def _speedup_table(comparison: dict[str, Any]) -> tuple[str, list[str], list[list[str]]] | None:
    if not comparison.get("shapes"):
        return None
    labels = [m["label"] for m in comparison["models"]]
    rows = [[shape_label(p), *(f"{p['speedup_vs_first'][label]:.2f}×" for label in labels)]
            for p in comparison["shapes"]]
    for p in comparison["shapes"]:  # audio: clips per second and the real-time factor of each model
        if p.get("real_time_factor"):
            rows.append([f"{shape_label(p)} clips/s, real-time factor",
                         *(f"{p['clips_per_s'][label]:g}/s, {p['real_time_factor'][label]:g}× real time"
                           for label in labels)])
    caption = f"Speed-up against {comparison.get('reference')} (median latency ratio, same run, at each shape"
    if comparison.get("example_seconds"):
        caption += f"; clips of {comparison['example_seconds']:g} s: real-time factor = audio seconds per compute " \
                   "second"
    if comparison.get("max_length"):
        caption += f"; batch b, sequence s up to task.max_length {comparison['max_length']}, where the engine's " \
                   "profile ends"
    return caption + ")", ["shape", *labels], rows


CSS = """
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 0.8rem; max-width: 1200px; color: #222;
       line-height: 1.4; }
h1 { font-size: 1.3rem; margin: 0.2rem 0 0.5rem; }
h2 { font-size: 1.1rem; margin: 1.4rem 0 0.4rem; }
.verdict { border-left: 6px solid #2a7f3f; background: #eef7f0; padding: 0.6rem 0.8rem; margin: 0.5rem 0; }
.verdict.not-ready { border-color: #b3261e; background: #fbeeed; }
.verdict p.headline { font-size: 1.05rem; font-weight: 600; margin: 0 0 0.4rem; }
.targets { display: flex; flex-wrap: wrap; gap: 0.6rem; }
.target { flex: 1 1 260px; background: #fff; border: 1px solid #d5dbe3; border-radius: 6px; padding: 0.5rem 0.7rem;
          font-size: 0.9rem; overflow-wrap: anywhere; }
.target b { display: block; }
.warnings li { color: #8a4b00; margin: 0.2rem 0; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.5rem; text-align: right; vertical-align: top; }
td:first-child, th:first-child { text-align: left; }
td.text { text-align: left; }
th { background: #f0f3f8; }
figure { display: inline-block; margin: 0.5rem 0.5rem 0.5rem 0; max-width: 100%; }
img { max-width: 100%; height: auto; }
.overlays .pair { display: flex; flex-wrap: wrap; gap: 0.5rem; }
.overlays img { image-rendering: pixelated; min-width: 160px; }
details summary { cursor: pointer; font-weight: 600; margin: 0.8rem 0 0.3rem; }
"""


def _html_table(head: list[str], body: list[list[str]], text_columns: tuple[int, ...] = ()) -> str:
    esc = html.escape
    text = ' class="text"'
    rows = "".join("<tr>" + "".join(f"<td{text if i in text_columns else ''}>{esc(c)}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in body)
    return (f'<div class="scroll"><table><thead><tr>{"".join(f"<th>{esc(h)}</th>" for h in head)}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")


def _html(title: str, v: Verdict, head: list[str], body: list[list[str]], notes: list[str],
          images: dict[str, str], speedups: tuple[str, list[str], list[list[str]]] | None,
          extra_tables: list[tuple[str, list[str], list[list[str]]]], overlay_html: str = "") -> str:
    esc = html.escape
    cards = "".join(
        f'<div class="target"><b>{esc(t.target)}</b>deploy <code>{esc(t.artifact)}</code> '
        f"({esc(_fmt(t.size_bytes, 'bytes'))})<br>speed-up vs teacher: "
        f"{esc(', '.join(f'{x:.1f}× ({s})' for s, x in t.speedup.items()) or 'not measured')}<br>"
        f"{esc(v.metric_words)} vs teacher: {esc(_target_accuracy(t))}</div>" for t in v.targets)
    g_head, g_body = gate_table(v)
    gates = _html_table(g_head, g_body, (1, 5))
    warnings = ("<h2>Warnings</h2><ul class=\"warnings\">" + "".join(f"<li>{esc(w)}</li>" for w in v.warnings)
                + "</ul>") if v.warnings else ""
    t_head, t_body = target_table(v)
    speed = ""
    if speedups is not None:
        caption, s_head, s_rows = speedups
        speed = f"<h2>{esc(caption)}</h2>" + _html_table(s_head, s_rows)
    figs = "\n".join(f'<figure><img alt="{esc(k)}" src="data:image/png;base64,{d}">'
                     f'<figcaption>{esc(k.replace("_", " "))}</figcaption></figure>' for k, d in images.items())
    opened = ("Confusion", QAT_CAPTION)  # shown unfolded: the final model's errors, the PTQ/QAT choice
    extra = "".join(f"<details{' open' if caption.startswith(opened) else ''}><summary>{esc(caption)}"
                    f"</summary>{_html_table(e_head, e_body, (0,) if caption.startswith('Confusion') else (0, 1, 3))}"
                    "</details>" for caption, e_head, e_body in extra_tables)
    para = "\n".join(f"<p>{esc(p)}</p>" for p in notes if p)
    ready = "" if v.ready else " not-ready"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{CSS}</style></head><body>
<h1>{esc(title)}</h1>
<section class="verdict{ready}" id="verdict">
<p class="headline">{esc(v.headline)}</p>
<div class="targets">{cards}</div>
</section>
<h2>Gates</h2>
<p>Each model against its parent on the same test examples; {esc(_methods(v))}.</p>
{gates}
{warnings}
<h2>Deployment targets</h2>
{_html_table(t_head, t_body, (1, 3, 4, 5))}
<h2>Models</h2>
{_html_table(head, body, (len(head) - 1,))}
{para}
{speed}
<div class="plots">{figs}</div>
{overlay_html}
{extra}
</body></html>
"""


def _target_accuracy(t: Target) -> str:
    vt = t.vs_teacher
    if not vt:
        return "–"
    lo, hi = vt["interval_points"]
    return (f"{100 * vt['new_accuracy']:.2f}% vs {100 * vt['ref_accuracy']:.2f}%, drop {vt['drop_points']:+.2f} "
            f"points (95% CI [{lo:+.2f}, {hi:+.2f}]{_method_mark(vt)}, n={vt['n']:,})")


def _verdict(root: Path, stages: dict[str, dict[str, Any]], comparison: dict[str, Any]) -> Verdict:
    """The verdict plus the warnings the calibrate stage recorded (a CPU candidate lost to an unexpected
    exception): a bug that cost the user the fastest artifact belongs in the report, not only in a log; and
    the build's lint of attention blocks left unfused, with their reasons (a decoder's cross-attention,
    SegFormer's reduced keys): what the engine will not fuse is part of what the user gets."""
    v = build_verdict(root, stages, comparison)
    recorded = stages.get("calibrate", {}).get("metrics", {}).get("warnings") or []
    v.warnings.extend(f"calibrate: {w}" for w in recorded if isinstance(w, str))
    built = stages.get("build", {}).get("metrics", {}).get("warnings") or []
    from trt_edge.export.lint.attention import FUSION_LINT_CODE

    fusion = f"lint {FUSION_LINT_CODE}:"  # how the build records a lint warning (`engine.onnxinfo`)
    v.warnings.extend(f"build: {w}" for w in built if isinstance(w, str) and w.startswith(fusion))
    return v


def _scored(rows: list[Row], v: Verdict) -> None:
    """For a task judged against a reference model, every row's figures are its scores against the
    teacher's saved outputs (`Verdict.scores`), one measure for all: a stage's own figures are each
    against that stage's parent (INT8 against its fp32 input). A model without saved outputs shows none.
    A task judged on labels has scores only where its outputs are dense (segmentation: each model's mIoU,
    pixel accuracy and per-class IoU from its saved test logits); classification rows keep their own."""
    if v.uses_labels and not v.scores:
        return
    for r in rows:
        r.scores = dict(v.scores.get(r.model, {}))
        r.accuracy, r.macro_f1 = r.scores.get(v.metric), None


def _collect_judged(root: Path) -> tuple[list[Row], dict[str, Any], dict[str, dict[str, Any]], Verdict]:
    rows, comparison, stages = collect(root)
    v = _verdict(root, stages, comparison)
    _scored(rows, v)
    return rows, comparison, stages, v


def write_report(run_dir: str | Path, out: str | Path) -> tuple[Path, Path]:
    """Write `report.md`, `report.html` and the plot PNGs of `run_dir` into `out`."""
    root = Path(run_dir)
    if not root.is_dir():
        raise TrtEdgeError(f"run folder not found: {root}")
    rows, comparison, stages, v = _collect_judged(root)
    shapes = [shape_key(p) for p in comparison.get("shapes", [])]
    head, body = table(rows, shapes, {k: shape_label(p) for k, p in zip(shapes, comparison.get("shapes", []),
                                                                         strict=True)})
    images = plots(rows, shapes, comparison, v.metric_words)
    extra_tables = confusion_tables(v)
    precision = "Per-layer precision"
    if v.int8_model == QAT_LABEL:
        precision += " of PTQ's model (QAT's, deployed, has every planned layer INT8)"
    for caption, maker in ((QAT_CAPTION, qat_table(stages, v.metric, v.metric_words)), ("Data", data_table(stages)),
                           ("Per-layer 2:4 sparsity", sparsity_table(stages)),
                           (precision, precision_table(root, stages))):
        if maker is not None:
            extra_tables.append((caption, *maker))
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    drawn, overlay_note = make_overlays(root, stages)
    md = _markdown(root, v, head, body, stages, comparison, images, extra_tables, overlay_markdown(drawn, overlay_note))
    for name, data in images.items():
        atomic_write_bytes(folder / f"{name}.png", base64.b64decode(data))
    for o in drawn:
        atomic_write_bytes(folder / o.teacher_file, o.teacher_png)
        atomic_write_bytes(folder / o.final_file, o.final_png)
    md_path = atomic_write_text(folder / "report.md", md)
    notes = [_latency_note(comparison)]
    if "build" in stages:
        notes.append(_engine_note(stages["build"]))
    html_path = atomic_write_text(folder / "report.html", _html(f"trt-edge report: {root.name}", v, head, body,
                                                                 notes, images, _speedup_table(comparison),
                                                                 extra_tables, overlay_html(drawn, overlay_note)))
    return md_path, html_path


def run(config: RunConfig, run_dir: Path, out: str | Path) -> StageRecord:
    """The pipeline's report step."""
    record = StageRecord(stage="report", config={"pipeline": config.raw.get("pipeline")},
                         artifacts={REPORT: "report.md", HTML: "report.html"})
    with stage_output(out) as tmp:
        write_report(run_dir, tmp)
        rows, _, _, verdict = _collect_judged(Path(run_dir))
        record.metrics = {r.model: r.accuracy for r in rows if r.accuracy is not None}
        record.metrics.update({"verdict": verdict.headline, "ready": verdict.ready, "warnings": verdict.warnings,
                               "gates": verdict.gates})
        record.write(tmp, declared=STAGE.produces)
    return record


# The last stage: reads the whole run, writes report.md and report.html.
STAGE = StageDescriptor("report", ("pipeline",), run, reads_run=True, produces=(REPORT, HTML))
