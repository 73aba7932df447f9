"""`trt-edge pipeline` for `task.type: object-detection` on tiny random detectors (issue 28): every stage runs on
COCO demo scenes built from a fake Fashion-MNIST folder, and the records, gates, exported graph, bundle and
report say what a detector needs (logits and boxes in one packed output, COCO mAP, paired bootstrap gates
over images, cross-attention left unfused with its reason); `trt-edge run --image --overlay` prints boxes in
the input's pixels and draws them.

Two families, one run each (module-scoped), about half a minute each on 2 cores: YOLOS (a plain ViT: its
student keeps layers 0 and 2, `distill.student.layers`) with the CPU artifact, and DETR (a ResNet + encoder-
decoder: its student is a separate folder with one encoder and one decoder layer, `distill.student.model`).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trt_edge.config import RunConfig
from trt_edge.pipeline.runner import run_pipeline
from trt_edge.stage import STAGE_FILE, read_stage
from trt_edge.tasks.scenes import coco_categories, write_scenes

sys.path.insert(0, str(Path(__file__).parents[1] / "tasks"))
from vision_helpers import write_detection_model, write_fashion_mnist

STAGES = ("distill", "prune", "export", "export-teacher", "calibrate", "qat", "build", "profile", "report")
TASK = "object-detection"
SIZE = 32
QUERIES = 6
NAMES = [c["name"] for c in coco_categories()]  # the scenes' categories, in id order


def _config(data: Path, teacher: Path, student: dict[str, Any], cache: Path, cpu: bool) -> dict[str, Any]:
    return {
        "task": {"type": TASK, "eval_batch_size": 16, "data": {"source": str(data)}},
        "distill": {"teacher": str(teacher), "teacher_finetune": "always",
                    "teacher_train": {"epochs": 1, "batch_size": 8, "max_steps": 2, "learning_rate": 1e-3},
                    "student": student, "train": {"epochs": 1, "batch_size": 8, "max_steps": 2},
                    "ablation": False, "cache_dir": str(cache)},
        "prune": {"train": {"epochs": 1, "batch_size": 8, "max_steps": 2}, "permutation_seconds": 0.2,
                  "cache_dir": str(cache)},
        "export": {"parity_batch_sizes": [1, 3]},
        "calibrate": {"targets": ["tensorrt", "cpu"] if cpu else ["tensorrt"], "data": {"samples": 8},
                      "latency_runs": 2, "gate": {"budget": 100.0, "mixed_precision": False},
                      "cpu": {"runs": 2, "budget": 100.0, "candidates": ["fp32", "dynamic-int8"]}},
        "pipeline": {"gates": {"distill": 100.0, "prune": 100.0, "calibrate": 100.0},
                     "compare_shapes": [[1, 1]], "compare_rounds": 1, "compare_runs": 2},
    }


@pytest.fixture(scope="module", params=("yolos", "detr"))
def det_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(family, finished run folder)."""
    family = str(request.param)
    root = tmp_path_factory.mktemp(f"det-{family}")
    (root / "scenes").mkdir()
    write_scenes(root / "scenes", "detection", 30, SIZE, 0, source=write_fashion_mnist(root / "fmnist"))
    teacher = write_detection_model(root / "teacher", family, NAMES, SIZE)
    if family == "yolos":
        student: dict[str, Any] = {"layers": [0, 2]}
    else:
        student = {"model": str(write_detection_model(root / "student", family, NAMES, SIZE,
                                                      encoder_layers=1, decoder_layers=1))}
    raw = _config(root / "scenes", teacher, student, root / "cache", cpu=family == "yolos")
    if family == "detr":  # one family per task trains QAT (the others pass PTQ on with `auto`)
        raw["qat"] = {"when": "always", "train": {"max_steps": 2, "batch_size": 8}}
    results = run_pipeline(RunConfig(raw), root / "run")
    assert [r.name for r in results] == list(STAGES)
    return family, root / "run"


def test_every_stage_records_a_detection_model(det_run: tuple[str, Path]) -> None:
    _, run_dir = det_run
    for name in STAGES:
        assert (run_dir / name / STAGE_FILE).is_file(), name
        task = (read_stage(run_dir / name).get("config") or {}).get("task")
        if task is not None:
            assert task["type"] == TASK, name
    distill = read_stage(run_dir / "distill")["metrics"]
    assert 0.0 <= distill["student_map"] <= distill["student_map_50"] <= 1.0
    assert 0.0 <= distill["teacher_map"] <= 1.0


def test_gates_are_paired_bootstraps_of_per_image_ap(det_run: tuple[str, Path]) -> None:
    _, run_dir = det_run
    for name in ("distill", "prune", "calibrate"):
        text = json.dumps(read_stage(run_dir / name)["metrics"]["gate"])
        assert "per-image AP" in text and "bootstrap" in text.lower(), name


def test_the_export_packs_logits_and_boxes_with_a_dynamic_batch(det_run: tuple[str, Path]) -> None:
    import onnx

    from trt_edge.sparsity.onnx_check import check_onnx_sparsity

    _, run_dir = det_run
    model = onnx.load(str(run_dir / "export" / "model.onnx"), load_external_data=False)
    (out,) = model.graph.output
    dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    assert out.name == "detections" and dims == ["batch", QUERIES, len(NAMES) + 1 + 4]
    (pixels,) = model.graph.input
    assert [d.dim_param or d.dim_value for d in pixels.type.tensor_type.shape.dim] == ["batch", 3, SIZE, SIZE]
    assert {p.key: p.value for p in model.metadata_props}.get("trt_edge.task") == TASK
    export = read_stage(run_dir / "export")["metrics"]
    assert export["argmax_agreement"] >= 0.99 and export["max_abs_diff"] < 1e-3  # classes per query agree
    assert read_stage(run_dir / "prune")["metrics"]["sparse_layers"] > 0
    assert check_onnx_sparsity(run_dir / "export" / "model.onnx").ok


def test_calibration_bundle_and_report(det_run: tuple[str, Path]) -> None:
    family, run_dir = det_run
    calibrate = read_stage(run_dir / "calibrate")
    assert {"onnx", "calibration_cache", "preprocessor"} <= set(calibrate["artifacts"])
    assert calibrate["metrics"]["qdq_pairs"] > 0
    if family == "yolos":
        assert "onnx_cpu" in calibrate["artifacts"]
    processor = json.loads((run_dir / "build" / "bundle" / "preprocessor" / "preprocessor_config.json").read_text())
    assert processor["trt_edge_postprocessing"] == {"threshold": 0.5, "top_k": 100}  # travels with the model
    html = (run_dir / "report" / "report.html").read_text(encoding="utf-8")
    assert "map" in html


def test_cross_attention_is_left_unfused_with_its_reason(det_run: tuple[str, Path]) -> None:
    """DETR's decoder cross-attention (6 queries over 16 image tokens) is refused by length, its reason in the
    lint, the build record and the report's warnings; its self-attention and the encoder's are matched. YOLOS
    has none."""
    import onnx

    from trt_edge.onnxgraph.attention_match import CROSS_ATTENTION_REASON, find_attention_candidates

    family, run_dir = det_run
    found, rejected = find_attention_candidates(onnx.load(str(run_dir / "export" / "model.onnx")))
    reasons = [r["reason"] for r in rejected]
    if family == "yolos":
        assert len(found) == 2 and not rejected
        return
    assert len(found) == 2 and reasons == [CROSS_ATTENTION_REASON]
    assert "encoder_attn" in rejected[0]["layer"]
    assert "another sequence than the queries" in (run_dir / "build" / STAGE_FILE).read_text(encoding="utf-8")
    html = (run_dir / "report" / "report.html").read_text(encoding="utf-8")
    assert "another sequence than the queries" in html.split("Warnings")[1]  # the report says so too


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]], str]:
    """`trt-edge run ...` in this process (the CLI's own entry point): exit code, JSON lines, stderr."""
    from trt_edge.cli import main

    code = 0
    try:
        main(["run", *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, [json.loads(x) for x in captured.out.splitlines() if x.startswith("{")], captured.err


def test_run_image_prints_boxes_in_the_inputs_pixels_and_draws_them(det_run: tuple[str, Path], tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """On a copy of the export whose post-processing keeps every box (threshold 0, top 3: a random model is not
    confident), images of another size than the model's get boxes in their own pixels, and --overlay writes
    a PNG of the input's size that differs from it along a printed box."""
    from PIL import Image

    _, run_dir = det_run
    export = tmp_path / "export"
    shutil.copytree(run_dir / "export", export)
    config_file = export / "preprocessor" / "preprocessor_config.json"
    config = json.loads(config_file.read_text())
    config["trt_edge_postprocessing"] = {"threshold": 0.0, "top_k": 3}
    config_file.write_text(json.dumps(config))
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    pixels = {}
    for name, (h, w) in {"wide": (40, 64), "tall": (50, 30)}.items():
        pixels[name] = rng.integers(60, 200, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels[name]).save(images / f"{name}.png")
    args = ["--onnx", str(export / "model.onnx"), "--image", str(images), "--overlay", str(tmp_path / "overlays")]
    code, records, err = _run(args, capsys)
    assert code == 0, err
    assert [Path(r["image"]).stem for r in records] == ["tall", "wide"]
    for record in records:
        name = Path(record["image"]).stem
        h, w = pixels[name].shape[:2]
        assert record["image_size"] == [h, w] and len(record["boxes"]) == 3
        scores = [b["score"] for b in record["boxes"]]
        assert scores == sorted(scores, reverse=True) and all(b["label"] in NAMES for b in record["boxes"])
        drawn = np.asarray(Image.open(tmp_path / "overlays" / f"{name}.png").convert("RGB"))
        assert drawn.shape == (h, w, 3)
        x1, y1, x2, y2 = record["boxes"][0]["xyxy"]
        assert -w < x1 < x2 < 2 * w and -h < y1 < y2 < 2 * h  # pixels of this image, not of the 32x32 input
        top, left = int(np.clip(y1, 0, h - 1)), int(np.clip(x1, 0, w - 1))
        bottom, right = int(np.clip(y2, 0, h - 1)), int(np.clip(x2, 0, w - 1))
        region = (slice(max(top - 2, 0), bottom + 3), slice(max(left - 2, 0), right + 3))
        assert np.any(drawn[region] != pixels[name][region])
    # An overlay is never replaced: a second call into the same folder is refused before inference.
    code, again, err = _run(args, capsys)
    assert code == 2 and not again and "already exists" in err and "Traceback" not in err


def test_width_pruning_yolos(tmp_path: Path) -> None:
    """`prune --method width` on YOLOS (a plain ViT: the kit's ViT machinery applies): heads and neurons removed,
    recovery on the boxes, the per-image AP gate, and the exported detections pass parity."""
    from trt_edge.sparsity.width_stage import run
    from trt_edge.stage import StageRecord

    (tmp_path / "scenes").mkdir()
    write_scenes(tmp_path / "scenes", "detection", 20, SIZE, 0, source=write_fashion_mnist(tmp_path / "fmnist"))
    root = tmp_path / "distilled"
    write_detection_model(root / "model", "yolos", NAMES, SIZE)
    shutil.copytree(root / "model", root / "teacher")
    StageRecord(stage="distill", config={}, artifacts={"model": "model", "teacher": "teacher"}).write(root)
    raw = {"task": {"type": TASK, "eval_batch_size": 16, "data": {"source": str(tmp_path / "scenes")}},
           "width": {"keep_heads": 0.5, "keep_ffn": 0.5, "steps": 1, "calibration_samples": 8,
                     "train": {"epochs": 1, "batch_size": 8, "max_steps": 2, "learning_rate": 1e-3}}}
    m = run(RunConfig(raw), root, tmp_path / "width").metrics
    assert (m["structure"]["heads"], m["structure"]["ffn"]) == (1, m["dense_structure"]["ffn"] // 2)
    assert m["parity_max_abs_diff"] < 1e-4
    assert "per-image AP" in json.dumps(m["gate"])


def test_report_shows_teacher_and_final_overlays(det_run: tuple[str, Path]) -> None:
    """The report draws the first test images with the teacher's and the final model's boxes, side by side."""
    from vision_helpers import assert_report_overlays

    assert_report_overlays(det_run[1])


def test_qat_trains_on_this_task_where_asked(det_run: tuple[str, Path]) -> None:
    """QAT trains on this task's model where the config asks (tests/pipeline/test_qat_pipeline.py's check)."""
    from .test_qat_pipeline import check_qat_where_asked

    family, run_dir = det_run
    check_qat_where_asked(run_dir, trained=family == "detr")
