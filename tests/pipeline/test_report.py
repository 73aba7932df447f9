"""The run report from stage records: table rows, speed-ups, plots, and rendering in headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.pipeline.report import collect, write_report
from trt_edge.stage import StageRecord

from .chromium import chromium, render


def _stage(root: Path, name: str, metrics: dict, artifacts: dict | None = None, files: dict | None = None) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    for rel, text in (files or {}).items():
        (folder / rel).write_text(text)
    StageRecord(stage=name, config={}, metrics=metrics, artifacts=artifacts or {}).write(folder)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    root = tmp_path / "run"
    _stage(root, "distill", {"teacher_accuracy": 0.866, "teacher_macro_f1": 0.84, "student_accuracy": 0.865,
                             "student_macro_f1": 0.838, "student_hard_label_accuracy": 0.85,
                             "teacher_params": 22_700_000, "student_params": 17_400_000,
                             "teacher_weight_bytes": 91_000_000, "student_weight_bytes": 69_600_000})
    _stage(root, "prune", {"sparse_accuracy": 0.864, "sparse_macro_f1": 0.839})
    _stage(root, "export", {"onnx_bytes": 69_600_000, "max_abs_diff": 2e-6, "argmax_agreement": 1.0})
    _stage(root, "calibrate", {"fp32_accuracy": 0.864, "int8_accuracy": 0.86, "int8_macro_f1": 0.83,
                               "method": "entropy", "cpu_accuracy": 0.862, "cpu_artifact": "dynamic-int8",
                               "cpu_onnx_bytes": 30_000_000})
    labels = ["teacher fp32", "student fp32", "student INT8 Q/DQ (TensorRT)", "student INT8 (CPU)"]
    medians = [6.0, 3.0, 5.5, 1.2]
    comparison = {"models": [{"label": label} for label in labels], "reference": labels[0],
                  "onnxruntime": "1.32.0", "threads": 2, "method": "interleaved",
                  "shapes": [{"batch": 1, "seq": 64,
                              "latency_ms": {label: {"median": m} for label, m in zip(labels, medians, strict=True)},
                              "speedup_vs_first": {label: 6.0 / m for label, m in zip(labels, medians, strict=True)}}]}
    _stage(root, "profile", {}, {"comparison": "comparison.json"}, {"comparison.json": json.dumps(comparison)})
    _stage(root, "build", {}, {"bundle": "bundle"}, {"bundle": "x"})
    return root


def test_report_table_and_speedups(run_dir: Path, tmp_path: Path) -> None:
    rows, comparison, _ = collect(run_dir)
    assert comparison["reference"] == "teacher fp32"
    by_model = {r.model: r for r in rows}
    assert by_model["teacher"].latency_ms == {"b1s64": 6.0}
    assert by_model["student INT8 (CPU)"].accuracy == 0.862
    assert by_model["sparse student (2:4)"].latency_ms == {"b1s64": 3.0}
    md, page = write_report(run_dir, tmp_path / "report")
    assert "<h2>Speed-up against teacher fp32" in page.read_text()
    text = md.read_text()
    assert "| b1 s64 | 1.00× | 2.00× | 1.09× | 5.00× |" in text
    assert "on-device build bundle" in text
    assert {p.name for p in (tmp_path / "report").glob("*.png")} == {
        "accuracy_vs_latency.png", "accuracy_vs_size.png", "accuracy_per_stage.png"}


def test_report_shows_the_width_step_with_its_size_speed_and_accuracy(run_dir: Path, tmp_path: Path) -> None:
    _stage(run_dir, "width", {"width_accuracy": 0.861, "width_macro_f1": 0.835, "params": 12_000_000,
                              "weight_bytes": 48_000_000, "structure": {"heads": 6, "head_dim": 32, "ffn": 768}})
    comparison_path = run_dir / "profile" / "comparison.json"
    comparison = json.loads(comparison_path.read_text())
    comparison["shapes"][0]["latency_ms"]["student width-pruned fp32"] = {"median": 2.0}
    comparison["shapes"][0]["speedup_vs_first"]["student width-pruned fp32"] = 3.0
    comparison_path.write_text(json.dumps(comparison))
    rows, _, _ = collect(run_dir)
    by_model = {r.model: r for r in rows}
    width = by_model["width-pruned student"]
    assert (width.accuracy, width.params, width.size_bytes) == (0.861, 12_000_000, 48_000_000)
    assert width.latency_ms == {"b1s64": 2.0} and "6 heads x 32, feed-forward 768" in width.note
    assert by_model["sparse student (2:4)"].params == 12_000_000  # 2:4 on the narrow model
    assert by_model["student (distilled)"].latency_ms == {}  # its ONNX is not in this run
    assert [r.model for r in rows].index("width-pruned student") < [r.model for r in rows].index(
        "sparse student (2:4)")


def test_report_of_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(TrtEdgeError, match="no finished distill stage"):
        write_report(tmp_path, tmp_path / "out")
    with pytest.raises(TrtEdgeError, match="run folder not found"):
        write_report(tmp_path / "missing", tmp_path / "out")


@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(run_dir: Path, tmp_path: Path) -> None:
    _, html = write_report(run_dir, tmp_path / "report")
    png = tmp_path / "report.png"
    dom = render(html, png)
    assert dom.count("<tr>") >= 7 and "student INT8 (CPU)" in dom
    assert dom.count('src="data:image/png;base64,') == 3
    import matplotlib.image

    pixels = matplotlib.image.imread(str(png))
    assert pixels.shape[0] >= 1000 and pixels.std() > 0.05
