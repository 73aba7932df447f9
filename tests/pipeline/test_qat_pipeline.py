"""The qat stage in a pipeline (issue 31): a tiny 2:4-pruned run with `qat.when: always` goes through build,
profile and report with QAT's model beside PTQ's, the TensorRT target and the verdict naming the deployed
one; with `when: auto` and PTQ within its trigger the stage passes PTQ's model on and nothing else changes;
the qat stage's input hash covers only the stages it reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trt_edge.artifacts import StageDescriptor
from trt_edge.config import RunConfig
from trt_edge.files import sha256_file
from trt_edge.pipeline import runner
from trt_edge.pipeline.config import PipelineConfig
from trt_edge.pipeline.report import QAT_CAPTION
from trt_edge.pipeline.runner import RUN_FILE, run_pipeline
from trt_edge.pipeline.verdict import QAT_LABEL, TRT_LABEL
from trt_edge.stage import StageRecord, read_stage, stage_output
from trt_edge.stats import load_predictions

from .test_pipeline import _check_rendered, tiny_raw

# export-teacher left out: the teacher's ONNX adds nothing the qat stage reads (and costs an export)
STAGES = ["distill", "prune", "export", "calibrate", "qat", "build", "profile", "report"]


@pytest.fixture(scope="module")
def qat_run(tiny_bert_dir: Path, demo_data_config: Any,
            tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, dict[str, str]]:
    """(config, run folder, stage -> status) of a tiny run that trains QAT for two steps."""
    root = tmp_path_factory.mktemp("qat-run")
    raw = tiny_raw(tiny_bert_dir, demo_data_config, root / "cache")
    raw["name"] = "tiny-qat"
    raw["qat"] = {"when": "always", "train": {"max_steps": 2, "batch_size": 32}, "budget": 100.0}
    raw["pipeline"]["stages"] = STAGES
    raw["pipeline"]["gates"]["qat"] = 100.0
    results = run_pipeline(RunConfig(raw), root / "run")
    return raw, root / "run", {r.name: r.status for r in results}


def check_qat_where_asked(run_dir: Path, trained: bool) -> None:
    """The task pipelines' QAT check: where the config asked (`qat.when: always`) QAT trained with every
    planned layer INT8, the 2:4 pattern intact and fp32/PTQ/QAT paired on one test split; elsewhere `auto`
    passed PTQ on."""
    m = read_stage(run_dir / "qat")["metrics"]
    assert m["qat_ran"] is trained
    if m["qat_ran"]:
        assert m["quantized_nodes"] > 0 and m["qat_float_layers"] == [] and m["sparse_pattern_intact"]
        assert (run_dir / "qat" / "model.qat.onnx").is_file()
        preds = load_predictions(run_dir / "qat" / "test_predictions.npz")
        assert {"fp32", "ptq", "qat", "int8"} <= set(preds)


def test_qat_runs_in_the_pipeline_and_build_takes_the_deployed_model(
        qat_run: tuple[dict[str, Any], Path, dict[str, str]]) -> None:
    _, run_dir, status = qat_run
    assert list(status) == STAGES and set(status.values()) == {"ran"}
    qat = read_stage(run_dir / "qat")
    m, arts = qat["metrics"], qat["artifacts"]
    assert m["qat_ran"] and m["deployed"] in ("qat", "ptq") and m["qat_float_layers"] == []
    assert m["sparse_pattern_intact"] and m["sparse_tensors_listed"] > 0  # 2:4 masks kept through QAT
    deployed = run_dir / "qat" / arts["onnx"]
    expected = run_dir / ("qat/model.qat.onnx" if m["deployed"] == "qat" else "calibrate/model.int8.onnx")
    assert deployed.read_bytes() == expected.read_bytes()
    # build reads the qat folder: its ONNX and the calibration set carried on from calibrate
    build = read_stage(run_dir / "build")
    assert build["inputs"]["onnx"] == sha256_file(deployed)
    carried = run_dir / "qat" / arts["calibration_data"]
    assert sha256_file(carried) == sha256_file(run_dir / "calibrate" / read_stage(run_dir / "calibrate")
                                               ["artifacts"]["calibration_data"])
    # the pipeline's qat gate: deployed INT8 vs fp32, paired on the qat stage's test predictions
    gates = json.loads((run_dir / RUN_FILE).read_text())["gates"]
    preds = load_predictions(run_dir / "qat" / "test_predictions.npz")
    assert gates["qat"]["n"] == len(preds["labels"]) and gates["qat"]["passed"]
    assert np.array_equal(preds["int8"], preds["qat"] if m["deployed"] == "qat" else preds["ptq"])


def test_report_shows_fp32_ptq_and_qat_and_names_the_deployed_model(
        qat_run: tuple[dict[str, Any], Path, dict[str, str]], tmp_path: Path) -> None:
    _, run_dir, _ = qat_run
    m = read_stage(run_dir / "qat")["metrics"]
    comparison = json.loads((run_dir / "profile" / "comparison.json").read_text())
    labels = {x["label"]: x["onnx"] for x in comparison["models"]}
    assert labels[QAT_LABEL] == "qat/model.qat.onnx" and TRT_LABEL in labels  # timed side by side
    md = (run_dir / "report" / "report.md").read_text()
    headline = md.splitlines()[2]
    which = "QAT's" if m["deployed"] == "qat" else "PTQ's"
    assert f"{which} INT8 model deployed: {m['deployed_reason']}" in headline, headline
    assert "builds the engine from `qat/model.int8.onnx`" in md  # the TensorRT target: the qat stage's file
    section = md.split(f"## {QAT_CAPTION}", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in section.splitlines() if line.startswith("| ") and "---" not in line}
    assert set(rows) >= {"student ONNX fp32", "PTQ INT8 Q/DQ (calibrate)", "QAT INT8 Q/DQ (qat stage)"}
    qat_row = rows["QAT INT8 Q/DQ (qat stage)"]
    assert qat_row[0] == f"{100 * m['qat_accuracy']:.2f}%" and "[" in qat_row[1]  # figure, paired interval
    assert qat_row[3] == "none"  # QAT leaves no layer in float
    assert qat_row[4].startswith("yes" if m["deployed"] == "qat" else "no")
    assert rows["PTQ INT8 Q/DQ (calibrate)"][4].startswith("yes" if m["deployed"] == "ptq" else "no")
    assert f"| {QAT_LABEL} |" in md  # the Models table row
    html = run_dir / "report" / "report.html"
    assert QAT_CAPTION in html.read_text()
    _check_rendered(html, tmp_path / "report.png")


def test_a_run_that_deploys_qat_says_so_everywhere(qat_run: tuple[dict[str, Any], Path, dict[str, str]],
                                                  tmp_path: Path) -> None:
    """The same run as if QAT had won (tiny random models tie, so the record is edited): the verdict, the
    TensorRT target's figures, the gate table, the side-by-side table and the confusion table all follow
    QAT's model; an implicit-INT8 build of QAT's model is refused in one line."""
    import shutil

    from trt_edge.config import load_config
    from trt_edge.engine.stage import run as build
    from trt_edge.errors import TrtEdgeError
    from trt_edge.pipeline.report import write_report

    _, source, _ = qat_run
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir, ignore=shutil.ignore_patterns("report"))
    record = json.loads((run_dir / "qat" / "stage.json").read_text())
    assert record["metrics"]["qat_ran"]  # runs before the `auto` test below turns the stage into a copy
    record["metrics"].update(deployed="qat", deployed_reason="lost 0.10 points, PTQ 0.90")
    (run_dir / "qat" / "stage.json").write_text(json.dumps(record))
    md = write_report(run_dir, tmp_path / "report")[0].read_text()
    assert "QAT's INT8 model deployed: lost 0.10 points, PTQ 0.90." in md.splitlines()[2]
    assert "| qat.gate |" in md  # QAT's own gate is listed once its model is the deployed one
    assert "yes: lost 0.10 points" in md.split(f"## {QAT_CAPTION}", 1)[1].split("\n## ", 1)[0]
    assert f"## Confusion: {QAT_LABEL}" in md and "## Per-layer precision of PTQ's model" in md
    with pytest.raises(TrtEdgeError, match="build it with precision int8-qdq"):
        build(load_config(None, {"build.precision": "int8-cache"}, "build"), run_dir / "qat", tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_auto_passes_ptq_on_and_a_rerun_skips_everything(
        qat_run: tuple[dict[str, Any], Path, dict[str, str]]) -> None:
    raw, run_dir, _ = qat_run
    raw = json.loads(json.dumps(raw))
    raw["qat"] = {"when": "auto", "trigger": 100.0}
    status = {r.name: r.status for r in run_pipeline(RunConfig(raw), run_dir)}
    assert status["calibrate"] == "skipped" and status["qat"] == "ran"  # only its config changed
    m = read_stage(run_dir / "qat")["metrics"]
    assert not m["qat_ran"] and m["deployed"] == "ptq" and "within qat.trigger" in m["reason"]
    ptq = (run_dir / "calibrate" / "model.int8.onnx").read_bytes()
    assert (run_dir / "qat" / "model.int8.onnx").read_bytes() == ptq
    assert not (run_dir / "qat" / "model.qat.onnx").exists()
    cal_preds, qat_preds = (load_predictions(run_dir / s / "test_predictions.npz") for s in ("calibrate", "qat"))
    assert qat_preds["labels"].dtype == cal_preds["labels"].dtype  # carried on as saved, not re-cast
    assert np.array_equal(qat_preds["labels"], cal_preds["labels"])
    assert np.array_equal(qat_preds["ptq"], cal_preds["int8"]) and np.array_equal(qat_preds["int8"], cal_preds["int8"])
    labels = {x["label"] for x in json.loads((run_dir / "profile" / "comparison.json").read_text())["models"]}
    assert QAT_LABEL not in labels
    md = (run_dir / "report" / "report.md").read_text()
    assert "PTQ's INT8 model deployed: QAT did not run" in md.splitlines()[2]
    assert "did not run: PTQ lost" in md and f"| {QAT_LABEL} |" not in md
    assert all(r.status == "skipped" for r in run_pipeline(RunConfig(raw), run_dir))


def test_qat_input_hash_covers_the_stages_it_reads(tmp_path: Path) -> None:
    stages = ["distill", "export", "export-teacher", "calibrate", "qat"]

    def write(name: str, **metrics: Any) -> None:
        with stage_output(tmp_path / name) as tmp:
            StageRecord(stage=name, config={}, metrics=metrics).write(tmp)

    for name in stages[:-1]:
        write(name, seconds=1.0)
    before = runner._input_hash("qat", tmp_path, stages, tmp_path)
    write("export-teacher", seconds=2.0)  # not read by qat: no retraining
    assert runner._input_hash("qat", tmp_path, stages, tmp_path) == before
    write("calibrate", seconds=2.0)
    assert runner._input_hash("qat", tmp_path, stages, tmp_path) != before
    assert isinstance(runner.SPECS["qat"], StageDescriptor) and runner.SPECS["qat"].reads_run


def test_qat_needs_export_and_calibrate_in_the_stages() -> None:
    with pytest.raises(ValueError, match=r"qat .* needs export and calibrate"):
        PipelineConfig(stages=["distill", "export", "qat"])
    assert "qat" in PipelineConfig().stages  # in the default list: `auto` costs a copy when PTQ needs no help


def test_qat_composes_with_width_pruning_and_2to4(tiny_bert_dir: Path, demo_data_config: Any,
                                                  tmp_path: Path) -> None:
    """Heads and neurons removed, then 2:4, then QAT: the binding follows the pruned shapes, the masks hold."""
    raw = tiny_raw(tiny_bert_dir, demo_data_config, tmp_path / "cache")
    raw["name"] = "tiny-width-qat"
    raw["width"] = {"keep_heads": 0.5, "keep_ffn": 0.5, "steps": 1, "calibration_samples": 16,
                    "train": {"epochs": 1, "batch_size": 32, "max_steps": 2}}
    raw["qat"] = {"when": "always", "train": {"max_steps": 2, "batch_size": 32}, "budget": 100.0}
    raw["pipeline"]["stages"] = ["distill", "width", "prune", "export", "calibrate", "qat"]
    run_pipeline(RunConfig(raw), tmp_path / "run")
    width = read_stage(tmp_path / "run" / "width")["metrics"]
    assert width["structure"]["ffn"] < width["dense_structure"]["ffn"]
    m = read_stage(tmp_path / "run" / "qat")["metrics"]
    assert m["qat_ran"] and m["qat_float_layers"] == [] and m["quantized_nodes"] > 0
    assert m["sparse_pattern_intact"] and m["sparse_tensors_listed"] > 0
    preds = load_predictions(tmp_path / "run" / "qat" / "test_predictions.npz")
    assert np.isfinite(preds["qat"]).all() and preds["qat"].shape == preds["fp32"].shape



def test_qat_command_on_a_runs_folders(qat_run: tuple[dict[str, Any], Path, dict[str, str]], tmp_path: Path) -> None:
    """`trt-edge qat` alone, in a subprocess, on the run's calibrate, prune and export folders (the task comes
    from the model's stage record): one JSON summary, the stage folder, and the ONNX build would read."""
    import subprocess
    import sys

    from .test_pipeline import ENV

    _, run_dir, _ = qat_run
    out = tmp_path / "qat"
    proc = subprocess.run([sys.executable, "-m", "trt_edge", "qat", "--calibrate", str(run_dir / "calibrate"),
                           "--model", str(run_dir / "prune"), "--onnx", str(run_dir / "export"), "--out", str(out),
                           "--when=always", "--train.max_steps=1"],
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["qat_ran"] and summary["deployed"] in ("qat", "ptq") and summary["ptq_float_layers"] == []
    assert {"model.int8.onnx", "model.qat.onnx", "stage.json"} <= {p.name for p in out.iterdir()}
    assert read_stage(out)["metrics"]["train"]["steps"] == 1


def test_a_missed_calibrate_budget_is_handed_to_qat_when_it_follows() -> None:
    """The gate decides: with a qat stage that may train, PTQ over its budget is QAT's cue (calibrate writes
    its folder instead of raising; the pipeline gate waits for qat, whose deployed model meets the same
    budget); without one, the run stops at calibrate as before."""
    from trt_edge.errors import GateError

    cfg = PipelineConfig(gates={"calibrate": 1.0})
    missed = {"fp32_accuracy": 0.90, "int8_accuracy": 0.88}
    with pytest.raises(GateError, match="calibrate"):
        runner._judge("calibrate", missed, cfg, "accuracy", False, None)
    verdict, deferred = runner._judge("calibrate", missed, cfg, "accuracy", True, None)
    assert verdict is None and deferred == 1.0
    handed = cfg.replace(gates={**cfg.gates, "qat": deferred})
    with pytest.raises(GateError, match="qat"):
        runner._judge("qat", {**missed, "deployed": "ptq"}, handed, "accuracy", True, deferred)
    kept = {"fp32_accuracy": 0.90, "int8_accuracy": 0.895, "deployed": "qat"}
    assert runner._judge("qat", kept, handed, "accuracy", True, deferred)[1] == deferred

    raw: dict[str, Any] = {"calibrate": {"gate": {"budget": 0.5}}, "qat": {"when": "auto"}}
    config = RunConfig(raw)
    assert runner.qat_follows(config, ["calibrate", "qat"])
    assert not runner.qat_follows(RunConfig({"qat": {"when": "never"}}), ["calibrate", "qat"])
    assert not runner.qat_follows(config, ["calibrate"])
    deferring = runner._calibrate_deferring(config)
    assert deferring.section("calibrate").gate.fail is False and deferring.section("calibrate").gate.budget == 0.5
    assert raw["calibrate"]["gate"] == {"budget": 0.5}  # the run's own config is not changed
