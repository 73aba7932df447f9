"""The run report from stage records: table rows, speed-ups, plots, and rendering in headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from trt_edge import stats
from trt_edge.errors import TrtEdgeError
from trt_edge.files import atomic_write_json
from trt_edge.pipeline.report import collect, write_report
from trt_edge.stage import StageRecord

from .chromium import chromium, render


def _stage(root: Path, name: str, metrics: dict, artifacts: dict | None = None, files: dict | None = None) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    for rel, text in (files or {}).items():
        (folder / rel).write_text(text)
    StageRecord(stage=name, config={}, metrics=metrics, artifacts=artifacts or {}).write(folder)


def _flip(rng: np.random.Generator, labels: np.ndarray, error: float) -> np.ndarray:
    """Predictions right except on a random `error` share of the examples."""
    pred = labels.copy()
    wrong = rng.random(len(labels)) < error
    pred[wrong] = (labels[wrong] + 1) % 3
    return pred


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    root = tmp_path / "run"
    rng = np.random.default_rng(0)
    labels = rng.choice(3, size=600, p=[0.5, 0.3, 0.2])
    teacher = _flip(rng, labels, 0.13)
    student = np.where(rng.random(600) < 0.04, (teacher + 1) % 3, teacher)
    hard = np.zeros(600, dtype=np.int64)  # collapsed to the majority class: a warning
    sparse = np.where(rng.random(600) < 0.01, (student + 1) % 3, student)
    int8 = np.where(rng.random(600) < 0.01, (sparse + 1) % 3, sparse)
    cpu = sparse.copy()
    d_gate = stats.judge_predictions("distill", "student vs teacher", teacher, student, labels, None).to_dict()
    p_gate = stats.judge_predictions("prune", "sparse vs dense student", student, sparse, labels, None).to_dict()
    c_gate = stats.judge_predictions("calibrate.gate", "INT8 Q/DQ vs fp32 ONNX", sparse, int8, labels, 1.0,
                                     1.0).to_dict()
    _stage(root, "distill", {"teacher_accuracy": 0.866, "teacher_macro_f1": 0.84, "student_accuracy": 0.865,
                             "student_macro_f1": 0.838, "student_hard_label_accuracy": 0.85,
                             "teacher_params": 22_700_000, "student_params": 17_400_000,
                             "teacher_weight_bytes": 91_000_000, "student_weight_bytes": 69_600_000,
                             "gate": d_gate, "data": {"label_names": ["anger", "joy", "sadness"]}})
    stats.save_predictions(root / "distill", labels, teacher=teacher, student=student, hard_label=hard)
    _stage(root, "prune", {"sparse_accuracy": 0.864, "sparse_macro_f1": 0.839, "gate": p_gate,
                           "layers": {"encoder.layer.0.attention.self.query.weight": {
                               "kept_magnitude": 0.71, "kept_magnitude_without_permutation": 0.69,
                               "input_channels_permuted": "attention"}}})
    stats.save_predictions(root / "prune", labels, dense=student, sparse=sparse)
    _stage(root, "export", {"onnx_bytes": 69_600_000, "max_abs_diff": 2e-6, "argmax_agreement": 1.0,
                            "parity_shapes": [{"batch": 1, "sequence": 16}, {"batch": 8, "sequence": 64}]})
    (root / "export" / "stage.json").write_text(
        (root / "export" / "stage.json").read_text().replace('"config": {}', '"config": {"task": {"max_length": 128}}'))
    _stage(root, "calibrate", {"fp32_accuracy": 0.864, "int8_accuracy": 0.86, "int8_macro_f1": 0.83,
                               "method": "entropy", "cpu_accuracy": 0.862, "cpu_artifact": "dynamic-int8",
                               "cpu_onnx_bytes": 30_000_000, "gate": c_gate},
           {"onnx": "model.int8.onnx", "onnx_cpu": "model.cpu.onnx", "ranges": "ranges.json"},
           {"model.int8.onnx": "x" * 2000, "model.cpu.onnx": "y" * 1000,
            "ranges.json": json.dumps({"float_layers": ["/l1/MatMul"], "skipped": {"/attn/MatMul": "bmm"},
                                       "placement": [{"node": "/l0/MatMul", "op_type": "MatMul",
                                                      "kind": "projection"},
                                                     {"node": "/l1/MatMul", "op_type": "MatMul",
                                                      "kind": "projection"}]})})
    stats.save_predictions(root / "calibrate", labels, fp32=sparse, int8=int8, cpu=cpu)
    # the distill budget was loosened from 3.0 to 6.0
    atomic_write_json(root / "pipeline.json", {"config": {"pipeline": {"gates": {"distill": 6.0, "prune": 1.5,
                                                                                 "calibrate": 1.0}}}})
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
        "accuracy_vs_latency.png", "accuracy_vs_size.png", "accuracy_per_stage.png", "latency_percentiles.png"}


def test_report_states_the_verdict_first(run_dir: Path, tmp_path: Path) -> None:
    md, _ = write_report(run_dir, tmp_path / "report")
    text = md.read_text()
    first = text.split("## Gates")[0]
    # what to deploy, per target, with size, speed-up and accuracy against the teacher with an interval
    assert "Deploy build/bundle and calibrate/model.cpu.onnx: all 4 gates with a budget passed" in first
    assert "TensorRT (Jetson)" in first and "CPU (ONNX Runtime)" in first
    assert "5.0× (b1 s64)" in first  # the CPU artifact against the teacher, from comparison.json
    assert re.search(r"\[[+-]\d+\.\d\d, [+-]\d+\.\d\d\], n=600", first)  # accuracy vs teacher with its interval
    gates = text.split("## Gates")[1].split("## Warnings")[0]
    for gate in ("pipeline.gates.distill", "pipeline.gates.prune", "pipeline.gates.calibrate", "calibrate.gate"):
        assert f"| {gate} |" in gates
    assert "6 (loosened from 3)" in gates
    warnings = text.split("## Warnings")[1].split("## Models")[0]
    assert "hard labels only (ablation) predicts class 'anger' for 100%" in warnings
    assert "parity grid reaches sequence length 64, short of the task's max_length 128" in warnings
    assert "## Confusion: teacher" in text and "## Confusion: student INT8 Q/DQ (TensorRT)" in text
    assert "## Per-layer 2:4 sparsity" in text and "| /l1/MatMul | MatMul | float |" in text


def test_plots_never_place_text_beside_points(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.axes

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a label placed next to a point can overlap another; use the legend")

    monkeypatch.setattr(matplotlib.axes.Axes, "annotate", refuse)
    monkeypatch.setattr(matplotlib.axes.Axes, "text", refuse)
    write_report(run_dir, tmp_path / "report")


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


def test_report_lists_the_width_gate_with_its_interval(run_dir: Path, tmp_path: Path) -> None:
    predictions = stats.load_predictions(run_dir / "distill" / stats.PREDICTIONS_FILE)
    labels, dense = predictions["labels"], predictions["student"]
    narrow = np.where(np.arange(len(labels)) % 25 == 0, (dense + 1) % 3, dense)  # 4% of answers changed
    gate = stats.judge_predictions("width", "width-pruned vs dense student", dense, narrow, labels, None).to_dict()
    _stage(run_dir, "width", {"dense_accuracy": 0.865, "width_accuracy": 0.85, "gate": gate,
                              "structure": {"heads": 6, "head_dim": 32, "ffn": 768}})
    stats.save_predictions(run_dir / "width", labels, dense=dense, width=narrow)
    write_report(run_dir, tmp_path / "again")
    text = (tmp_path / "again" / "report.md").read_text()
    gates = text.split("## Gates")[1].split("## Warnings")[0]
    row = next(line for line in gates.splitlines() if "width-pruned vs dense student" in line)
    assert re.search(r"\| [+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\] \| 600 \|", row), row


def test_no_sequence_length_warning_for_an_image_task(run_dir: Path) -> None:
    from trt_edge.pipeline.verdict import parity_warnings

    shapes = [{"batch": 1, "sequence": 0, "max_abs_diff": 1e-6}]
    text = {"config": {"task": {"type": "text-classification", "max_length": 128}},
            "metrics": {"parity_shapes": [{"batch": 1, "sequence": 64, "max_abs_diff": 1e-6}]}}
    image = {"config": {"task": {"type": "image-classification", "max_length": 128}},
             "metrics": {"parity_shapes": shapes}}
    assert len(parity_warnings({"export": text})) == 1
    assert parity_warnings({"export": image, "export-teacher": image}) == []


def test_report_says_2to4_buys_no_tensorrt_speed_on_a_xavier_target(run_dir: Path, tmp_path: Path) -> None:
    """Issue 33 item 2: a run that 2:4-pruned for a target without sparse tensor cores says so in the
    report (from the run config's target, or the build plan's device when the build ran); an Orin run
    does not."""
    note = "2:4 sparsity brings no TensorRT speed-up on Jetson AGX Xavier"
    md, html = write_report(run_dir, tmp_path / "orin")
    assert "no TensorRT speed-up" not in md.read_text()  # the fixture's run has the default (Orin) target
    pipeline = json.loads((run_dir / "pipeline.json").read_text())
    pipeline["config"]["target"] = {"device": "agx-xavier", "jetpack": "5.1.2", "trt_version": "8.5"}
    atomic_write_json(run_dir / "pipeline.json", pipeline)
    md, html = write_report(run_dir, tmp_path / "xavier")
    warnings = md.read_text().split("## Warnings")[1].split("## Models")[0]
    assert note in warnings and "CPU artifact" in warnings
    assert note in html.read_text()
    # The build stage's plan is what the run was built for: it wins over the config.
    StageRecord(stage="build", config={"plan": {"device": "agx-orin-64gb", "sparse_weights": True}},
                artifacts={"bundle": "bundle"}).write(run_dir / "build")
    md, _ = write_report(run_dir, tmp_path / "built")
    assert note not in md.read_text()


def test_a_cpu_candidate_lost_to_a_bug_is_a_report_warning(run_dir: Path, tmp_path: Path) -> None:
    """Issue 33 item 4: an unexpected exception in a CPU candidate, recorded by calibrate, is listed under
    Warnings in both reports and in the report stage's record, with the exception type and message."""
    from trt_edge.config import RunConfig
    from trt_edge.pipeline.report import run

    record = run_dir / "calibrate" / "stage.json"
    data = json.loads(record.read_text())
    warning = "CPU candidate fused not built: unexpected TypeError: 'NodeProto' object is not subscriptable"
    data["metrics"]["warnings"] = [warning]
    record.write_text(json.dumps(data))
    md, page = write_report(run_dir, tmp_path / "report")
    warnings = md.read_text().split("## Warnings")[1].split("## Models")[0]
    assert f"- calibrate: {warning}" in warnings
    assert "TypeError: &#x27;NodeProto&#x27; object is not subscriptable" in page.read_text()
    stage = run(RunConfig({}), run_dir, tmp_path / "report-stage")
    assert f"calibrate: {warning}" in stage.metrics["warnings"]


def test_report_of_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(TrtEdgeError, match="no finished distill stage"):
        write_report(tmp_path, tmp_path / "out")
    with pytest.raises(TrtEdgeError, match="run folder not found"):
        write_report(tmp_path / "missing", tmp_path / "out")


MEASURE = """<script>
const v = document.getElementById('verdict').getBoundingClientRect();
document.body.setAttribute('data-verdict-bottom', String(v.bottom));
document.body.setAttribute('data-scroll-width', String(document.documentElement.scrollWidth));
document.body.setAttribute('data-client-width', String(document.documentElement.clientWidth));
</script></body>"""


@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium (apt-get install chromium)")
@pytest.mark.parametrize(("width", "height"), [(390, 844), (1280, 800)])
def test_report_renders_in_headless_chromium(run_dir: Path, tmp_path: Path, width: int, height: int) -> None:
    """Phone and desktop widths: the verdict is on the first screen, nothing overflows the page sideways."""
    _, html = write_report(run_dir, tmp_path / "report")
    measured = tmp_path / "measured.html"
    measured.write_text(html.read_text().replace("</body>", MEASURE))
    png = tmp_path / f"report-{width}.png"
    dom = render(measured, png, width=width, height=height)
    assert dom.count("<tr>") >= 7 and "student INT8 (CPU)" in dom
    assert dom.count('src="data:image/png;base64,') == 4
    attrs = {k: float(v) for k, v in re.findall(r'data-([a-z-]+)="([0-9.]+)"', dom)}
    bottom = attrs["verdict-bottom"]
    assert 0 < bottom <= height, f"the verdict ends at {bottom} px, below the first screen"
    assert attrs["scroll-width"] <= attrs["client-width"] + 1, "the page scrolls sideways (a table or image too wide)"
    import matplotlib.image

    pixels = matplotlib.image.imread(str(png))
    assert pixels.shape[1] == width and pixels.shape[0] == height and pixels.std() > 0.05
    top = pixels[: height // 3]
    assert top.std() > 0.05  # the first screen is drawn (headline, target cards), not blank


def test_report_data_section_counts_dropped_and_conflicting_examples(run_dir: Path, tmp_path: Path) -> None:
    path = run_dir / "distill" / "stage.json"
    record = json.loads(path.read_text())
    record["metrics"]["data"].update({"sizes": {"train": 4000, "validation": 500, "test": 1500},
                                      "duplicates": {"duplicates_dropped": 298, "conflicting_texts": 109,
                                                     "conflicting_dropped": 0}})
    path.write_text(json.dumps(record))
    md, page = write_report(run_dir, tmp_path / "report")
    data = md.read_text().split("## Data")[1].split("\n## ")[0]
    assert "| examples (train / validation / test) | 4,000 / 500 / 1,500 |" in data
    assert "| repeated examples dropped (task.data.drop_duplicates) | 298 |" in data
    assert "109: the first label kept" in data
    assert "<summary>Data</summary>" in page.read_text()


def test_speedup_caption_says_where_the_sequences_stop(run_dir: Path, tmp_path: Path) -> None:
    path = run_dir / "profile" / "comparison.json"
    comparison = json.loads(path.read_text())
    comparison["max_length"] = 64
    path.write_text(json.dumps(comparison))
    md, _ = write_report(run_dir, tmp_path / "report")
    assert "sequence s up to task.max_length 64, where the engine's profile ends" in md.read_text()


def test_gates_tell_the_two_exports_apart_and_shapes_use_the_tasks_words(run_dir: Path, tmp_path: Path) -> None:
    """The export parity gate runs on the student and on the teacher: two rows, `export (student)` and
    `export (teacher)`. A comparison timed on images labels its shapes `b1 56x56`, never `b1 s1`."""
    rng = np.random.default_rng(1)
    labels = rng.choice(3, size=100)
    gate = stats.judge_predictions("export", "ONNX fp32 vs PyTorch", labels, labels, labels, None).to_dict()
    record = json.loads((run_dir / "export" / "stage.json").read_text())
    record["metrics"]["gate"] = gate
    (run_dir / "export" / "stage.json").write_text(json.dumps(record))
    _stage(run_dir, "export-teacher", {"onnx_bytes": 91_000_000, "max_abs_diff": 1e-6, "argmax_agreement": 1.0,
                                       "gate": gate})
    folder = run_dir / "profile"
    comparison = json.loads((folder / "comparison.json").read_text())
    comparison["shapes"][0].update({"seq": 1, "shape": "b1 56x56"})
    (folder / "comparison.json").write_text(json.dumps(comparison))
    md, _ = write_report(run_dir, tmp_path / "report")
    text = md.read_text()
    gates = text.split("## Gates")[1].split("## Warnings")[0]
    assert "| export (student) |" in gates and "| export (teacher) |" in gates and "| export |" not in gates
    assert "| b1 56x56 | 1.00× | 2.00× |" in text and "ORT ms b1 56x56" in text
    assert "5.0× (b1 56x56)" in text.split("## Gates")[0]
    assert "b1 s1" not in text


def test_a_bootstrap_gate_shows_its_method_and_a_table_gate_reads_as_before(run_dir: Path, tmp_path: Path) -> None:
    md, page = write_report(run_dir, tmp_path / "before")
    assert "bootstrap" not in md.read_text() and "bootstrap" not in page.read_text()
    # the prune stage judged on per-query recall@10 instead of a paired table
    recall = np.random.default_rng(0).choice([1.0, 0.9, 0.8], size=600, p=[0.9, 0.08, 0.02])
    gate = stats.judge_scores("prune", "sparse vs dense student", np.ones(600), recall, None).to_dict()
    record = json.loads((run_dir / "prune" / "stage.json").read_text())
    record["metrics"]["gate"] = gate
    (run_dir / "prune" / "stage.json").write_text(json.dumps(record))
    md, page = write_report(run_dir, tmp_path / "after")
    text = md.read_text()
    gates = text.split("## Gates")[1].split("## Warnings")[0]
    assert f"rows marked (bootstrap): {stats.bootstrap_method()}" in gates and stats.METHOD in gates
    row = next(line for line in gates.splitlines() if "| pipeline.gates.prune |" in line)
    assert re.search(r"\| [+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\] \(bootstrap\) \| 600 \|", row), row
    calibrate = next(line for line in gates.splitlines() if "| pipeline.gates.calibrate |" in line)
    assert "bootstrap" not in calibrate
    assert "rows marked (bootstrap)" in page.read_text()
