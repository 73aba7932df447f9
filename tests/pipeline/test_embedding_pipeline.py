"""`trt-edge pipeline` for `task.type: sentence-embedding` on tiny random sentence-transformers folders of three
families (BERT, MPNet, XLM-R): every stage runs, and the records, gates, exported graph, bundle and report say
what an embedding model needs (recall@10 of the teacher's neighbours with bootstrap intervals; no classes).

One run per family (module-scoped), each well under a minute on 2 cores: 240 tweets, one training epoch, a
one-layer student, three recovery steps. BERT also builds the CPU artifact, so the report's and the side-by-side
timing's CPU rows are covered once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.modeling.embedding_helpers import write_st_folder
from trt_edge import stats
from trt_edge.config import RunConfig
from trt_edge.pipeline.runner import run_pipeline
from trt_edge.stage import STAGE_FILE, read_stage

FAMILIES = ("bert", "mpnet", "xlm-roberta")
STAGES = ("distill", "prune", "export", "export-teacher", "calibrate", "qat", "build", "profile", "report")
TASK = "sentence-embedding"


def _config(teacher: Path, data: dict[str, Any], cache: Path, cpu: bool) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "tiny-embedding",
        "task": {"type": TASK, "max_length": 32, "eval_batch_size": 64, "data": data},
        "distill": {"teacher": str(teacher), "student": {"layers": [1]}, "train": {"epochs": 1, "batch_size": 32},
                    "cache_dir": str(cache)},
        "prune": {"train": {"epochs": 1, "batch_size": 32, "max_steps": 3}, "permutation_seconds": 0.5,
                  "cache_dir": str(cache)},
        "export": {"parity_batch_sizes": [1, 2], "parity_sequence_lengths": [16, 32], "parity_max_examples": 8},
        "calibrate": {"data": {"samples": 32, "length_buckets": [16, 32]}, "latency_runs": 3,
                      "targets": ["tensorrt", "cpu"] if cpu else ["tensorrt"],
                      "gate": {"budget": 100.0, "mixed_precision": False}, "cpu": {"budget": 100.0}},
        "pipeline": {"gates": {"distill": 100.0, "prune": 100.0, "calibrate": 100.0}, "overall_budget": 100.0,
                     "compare_shapes": [[1, 16]], "compare_rounds": 1, "compare_runs": 2},
    }


@pytest.fixture(scope="module", params=FAMILIES)
def embedding_run(request: pytest.FixtureRequest, minilm_dir: Path, demo_data_config: Any,
                  tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    """(family, sentence-transformers teacher folder, finished run folder)."""
    family = str(request.param)
    root = tmp_path_factory.mktemp(f"se-{family}")
    teacher = write_st_folder(family, minilm_dir, root / "teacher", mode="mean", normalize=True)
    data = demo_data_config.replace(max_examples=240, train_size=160, validation_size=40, test_size=40).to_dict()
    raw = _config(teacher, data, root / "cache", cpu=family == "bert")
    if family == "bert":  # one family per task trains QAT (the others pass PTQ on with `auto`)
        raw["qat"] = {"when": "always", "train": {"max_steps": 2, "batch_size": 32}}
    run_dir = root / "run"
    results = run_pipeline(RunConfig(raw), run_dir)
    assert [r.name for r in results] == list(STAGES)
    return family, teacher, run_dir


def _gates(run_dir: Path) -> list[dict[str, Any]]:
    out = []
    for name in ("distill", "prune", "calibrate"):
        metrics = read_stage(run_dir / name)["metrics"]
        out += [metrics[k] for k in ("gate", "cpu_gate") if k in metrics]
    return out


def test_every_stage_records_an_embedding_model(embedding_run: tuple[str, Path, Path]) -> None:
    _, _, run_dir = embedding_run
    for name in STAGES:
        assert (run_dir / name / STAGE_FILE).is_file(), name
        record = read_stage(run_dir / name)
        task = (record.get("config") or {}).get("task")
        if task is not None:
            assert task["type"] == TASK, name
    distill = read_stage(run_dir / "distill")["metrics"]
    assert 0.0 <= distill["student_recall_at_10"] <= 1.0
    assert "teacher_accuracy" not in distill and "student_accuracy" not in distill
    # the saved test outputs are vectors of one width for every model of a stage
    for name, keys in (("distill", ("teacher", "student")), ("prune", ("dense", "sparse")),
                       ("calibrate", ("fp32", "int8"))):
        saved = stats.load_predictions(run_dir / name / stats.PREDICTIONS_FILE)
        assert all(saved[k].ndim == 2 and saved[k].shape[0] == len(saved["labels"]) for k in keys), name


def test_embedding_gates_are_bootstrap_intervals_around_the_drop(embedding_run: tuple[str, Path, Path]) -> None:
    family, _, run_dir = embedding_run
    gates = _gates(run_dir)
    assert len(gates) == (4 if family == "bert" else 3)  # distill, prune, calibrate (+ the CPU artifact)
    report_gates = read_stage(run_dir / "report")["metrics"]["gates"]
    overall = [g for g in report_gates if g["gate"] == "pipeline.overall_budget"]
    assert len(overall) == 1 and overall[0]["budget_points"] == 100.0
    for g in [*gates, *[g for g in report_gates if g["gate"].startswith("pipeline.")]]:
        assert stats.is_bootstrap(g), g["gate"]
        lo, hi = g["interval_points"]
        assert lo - 1e-9 <= g["drop_points"] <= hi + 1e-9, g["gate"]
        assert g["passed"], g["gate"]
    # the overall gate is the final (deployed: the qat stage's int8 row, QAT's or PTQ's) INT8 model's recall
    # of the teacher's own neighbours
    teacher = stats.load_predictions(run_dir / "distill" / stats.PREDICTIONS_FILE)["teacher"]
    deployed = stats.load_predictions(run_dir / "qat" / stats.PREDICTIONS_FILE)["int8"]
    int8 = stats.load_predictions(run_dir / "calibrate" / stats.PREDICTIONS_FILE)["int8"]
    from trt_edge.tasks.retrieval import recall_at_k

    assert overall[0]["new_accuracy"] == pytest.approx(float(recall_at_k(teacher, deployed, 10).mean()))
    assert overall[0]["ref_accuracy"] == 1.0
    # the teacher's test vectors travel prune -> export -> calibrate, which judges INT8 by them against fp32
    from trt_edge.artifacts import stage_predictions

    for stage in ("prune", "export"):
        np.testing.assert_array_equal(stage_predictions(run_dir / stage)["teacher"], teacher)
    fp32 = stats.load_predictions(run_dir / "calibrate" / stats.PREDICTIONS_FILE)["fp32"]
    gate = read_stage(run_dir / "calibrate")["metrics"]["gate"]
    assert "teacher" in gate["bootstrap"]["unit"]
    assert gate["drop_points"] == pytest.approx(
        100 * float(recall_at_k(teacher, fp32, 10).mean() - recall_at_k(teacher, int8, 10).mean()))


def test_exported_graph_gives_the_vector_and_the_bundle_names_the_task(embedding_run: tuple[str, Path, Path]) -> None:
    import onnx

    _, teacher, run_dir = embedding_run
    width = json.loads((teacher / "1_Pooling" / "config.json").read_text())["embedding_dimension"]
    for name in ("export", "export-teacher", "calibrate"):
        record = read_stage(run_dir / name)
        model = onnx.load(str(run_dir / name / record["artifacts"]["onnx"]), load_external_data=False)
        (out,) = model.graph.output
        assert out.name == "sentence_embedding", name
        assert out.type.tensor_type.shape.dim[1].dim_value == width, name
    build = read_stage(run_dir / "build")
    bundle = run_dir / "build" / build["artifacts"]["bundle"]
    manifest = json.loads((bundle / "model.plan.json.template").read_text())
    assert manifest["task"] == TASK


def test_report_speaks_of_recall_not_classes(embedding_run: tuple[str, Path, Path]) -> None:
    family, _, run_dir = embedding_run
    md = (run_dir / "report" / "report.md").read_text()
    html = (run_dir / "report" / "report.html").read_text()
    assert "recall@10 of the teacher's neighbours" in md and "mean cosine to the teacher" in md
    assert "kNN accuracy (labels)" in md  # the tweets carry labels
    assert "Confusion" not in md and "Confusion" not in html and "predicts class" not in md
    assert "(bootstrap)" in md
    models = md.split("## Models", 1)[1].split("\n\n", 2)[1]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in models.splitlines()[2:]}
    expected = {"teacher", "student (distilled)", "sparse student (2:4)", "student INT8 Q/DQ (TensorRT)"}
    if family == "bert":
        expected.add("student INT8 (CPU)")
    assert expected <= set(rows)
    assert "| 100.00% | 1.0000 |" in rows["teacher"]  # the teacher against its own neighbours and vectors
    for name in expected:
        cells = rows[name].split(" | ")
        assert cells[1].endswith("%") and cells[2] != "–", name  # recall and cosine (same dimension) shown


def test_side_by_side_timing_covers_every_onnx_model(embedding_run: tuple[str, Path, Path]) -> None:
    family, _, run_dir = embedding_run
    comparison = json.loads((run_dir / "profile" / "comparison.json").read_text())
    labels = [m["label"] for m in comparison["models"]]
    expected = ["teacher fp32", "student fp32", "student INT8 Q/DQ (TensorRT)"]
    # bert's run trains QAT (its Q/DQ file is timed beside PTQ's) and has the CPU artifact
    assert labels == expected + (["student INT8 Q/DQ (QAT)", "student INT8 (CPU)"] if family == "bert" else [])
    assert comparison["reference"] == "teacher fp32"
    (point,) = comparison["shapes"]
    assert set(point["latency_ms"]) == set(labels)
    assert all(np.isfinite(point["speedup_vs_first"][label]) and point["speedup_vs_first"][label] > 0
               for label in labels)


def test_qat_trains_on_this_task_where_asked(embedding_run: tuple[str, Path, Path]) -> None:
    """QAT trains on this task's model where the config asks (tests/pipeline/test_qat_pipeline.py's check)."""
    from .test_qat_pipeline import check_qat_where_asked

    family, _, run_dir = embedding_run
    check_qat_where_asked(run_dir, trained=family == "bert")
