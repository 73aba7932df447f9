"""`trt-edge pipeline` for `task.type: semantic-segmentation` on tiny random segmenters (issue 28): every stage
runs on demo scenes built from a fake Fashion-MNIST folder, and the records, gates, exported graph, bundle and
report say what a segmenter needs (per-pixel logits, mIoU, paired bootstrap gates over images).

Two families, one run each (module-scoped), each about half a minute on 2 cores: SegFormer (a hierarchical
encoder: its student is a separate shallower SegFormer folder, `distill.student.model`) with the CPU artifact,
and DPT (a plain ViT backbone: its student keeps the layers the dense head reads, `distill.student.layers`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from trt_edge.config import RunConfig
from trt_edge.errors import TrtEdgeError
from trt_edge.pipeline.runner import run_pipeline
from trt_edge.stage import STAGE_FILE, read_stage
from trt_edge.tasks.scenes import class_names, write_scenes

sys.path.insert(0, str(Path(__file__).parents[1] / "tasks"))
from vision_helpers import write_fashion_mnist, write_segmentation_model

STAGES = ("distill", "prune", "export", "export-teacher", "calibrate", "qat", "build", "profile", "report")
TASK = "semantic-segmentation"
SIZE = 32


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


@pytest.fixture(scope="module", params=("segformer", "dpt"))
def seg_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(family, finished run folder)."""
    family = str(request.param)
    root = tmp_path_factory.mktemp(f"seg-{family}")
    (root / "scenes").mkdir()
    write_scenes(root / "scenes", "segmentation", 30, SIZE, 0, source=write_fashion_mnist(root / "fmnist"))
    teacher = write_segmentation_model(root / "teacher", family, class_names(), SIZE)
    if family == "segformer":
        student: dict[str, Any] = {"model": str(write_segmentation_model(root / "student", family, class_names(), SIZE,
                                                                        depths=[1, 1]))}
    else:
        student = {"layers": [1, 3, 5, 7]}  # the layers DPT's neck reads (backbone_out_indices)
    raw = _config(root / "scenes", teacher, student, root / "cache", cpu=family == "segformer")
    if family == "segformer":  # one family per task trains QAT (the others pass PTQ on with `auto`)
        raw["qat"] = {"when": "always", "train": {"max_steps": 2, "batch_size": 8}}
    results = run_pipeline(RunConfig(raw), root / "run")
    assert [r.name for r in results] == list(STAGES)
    return family, root / "run"


def test_every_stage_records_a_segmentation_model(seg_run: tuple[str, Path]) -> None:
    _, run_dir = seg_run
    for name in STAGES:
        assert (run_dir / name / STAGE_FILE).is_file(), name
        task = (read_stage(run_dir / name).get("config") or {}).get("task")
        if task is not None:
            assert task["type"] == TASK, name
    distill = read_stage(run_dir / "distill")["metrics"]
    assert 0.0 <= distill["student_miou"] <= 1.0 and 0.0 <= distill["teacher_miou"] <= 1.0
    assert "student_pixel_accuracy" in distill


def test_gates_are_paired_bootstraps_of_per_image_miou(seg_run: tuple[str, Path]) -> None:
    _, run_dir = seg_run
    for name in ("distill", "prune", "calibrate"):
        gate = read_stage(run_dir / name)["metrics"]["gate"]
        text = json.dumps(gate)
        assert "per-image mIoU" in text and "bootstrap" in text.lower(), name


def test_the_export_is_per_pixel_logits_with_a_dynamic_batch(seg_run: tuple[str, Path]) -> None:
    import onnx

    from trt_edge.sparsity.onnx_check import check_onnx_sparsity

    _, run_dir = seg_run
    model = onnx.load(str(run_dir / "export" / "model.onnx"), load_external_data=False)
    (out,) = model.graph.output
    dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    assert out.name == "logits" and dims[0] == "batch" and dims[1] == len(class_names()) and len(dims) == 4
    assert all(isinstance(d, int) and d > 0 for d in dims[2:])
    assert {p.key: p.value for p in model.metadata_props}.get("trt_edge.task") == TASK
    export = read_stage(run_dir / "export")["metrics"]
    assert export["argmax_agreement"] >= 0.999  # per-pixel agreement
    assert read_stage(run_dir / "prune")["metrics"]["sparse_layers"] > 0
    assert check_onnx_sparsity(run_dir / "export" / "model.onnx").ok


def test_calibration_bundle_and_report(seg_run: tuple[str, Path]) -> None:
    family, run_dir = seg_run
    calibrate = read_stage(run_dir / "calibrate")
    assert {"onnx", "calibration_cache", "preprocessor"} <= set(calibrate["artifacts"])
    assert calibrate["metrics"]["qdq_pairs"] > 0
    if family == "segformer":
        assert "onnx_cpu" in calibrate["artifacts"]
    assert (run_dir / "build" / "bundle" / "preprocessor" / "preprocessor_config.json").is_file()
    html = (run_dir / "report" / "report.html").read_text(encoding="utf-8")
    assert "miou" in html and "pixel accuracy" in html


def test_students_that_do_not_fit_the_encoder_are_refused_in_one_line(tmp_path: Path) -> None:
    from trt_edge.distill.student import student_from_teacher
    from trt_edge.tasks.models import load_classifier

    names = class_names()
    segformer = load_classifier(write_segmentation_model(tmp_path / "s", "segformer", names, SIZE), names, task=TASK)
    with pytest.raises(TrtEdgeError, match=r"hierarchical encoder.*distill\.student\.model"):
        student_from_teacher(segformer.model, [0])
    dpt = load_classifier(write_segmentation_model(tmp_path / "d", "dpt", names, SIZE), names, task=TASK)
    with pytest.raises(TrtEdgeError, match=r"drops layers \[1\] whose outputs the model's dense head reads"):
        student_from_teacher(dpt.model, [3, 5, 7])


def test_run_image_prints_class_areas(seg_run: tuple[str, Path]) -> None:
    """`trt-edge run --onnx F --image FILE` on a segmenter: one JSON line per image with the share of pixels
    of each predicted class (not a classifier's probabilities)."""
    import subprocess

    _, run_dir = seg_run
    image = next((run_dir.parent / "scenes" / "test" / "images").iterdir())
    result = subprocess.run([sys.executable, "-m", "trt_edge", "run", "--onnx", str(run_dir / "export" / "model.onnx"),
                             "--image", str(image)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (line,) = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert line["image"] == str(image) and line["label"] in class_names()
    assert sum(line["areas"].values()) == pytest.approx(1.0, abs=1e-4) and set(line["areas"]) <= set(class_names())
    assert "probabilities" not in line


def test_reduced_key_attention_is_left_unfused_with_its_reason(seg_run: tuple[str, Path]) -> None:
    """SegFormer's stage-1 attention takes keys from a Conv-reduced sequence (sr_ratio 2): the lint names that
    as the reason it stays unfused, and the build record carries it; the stage without reduction is matched.
    DPT's ViT attention has no reduced keys: every block is matched and none is refused for that reason."""
    import onnx

    from trt_edge.onnxgraph.attention_match import REDUCED_KEYS_REASON, find_attention_candidates

    family, run_dir = seg_run
    found, rejected = find_attention_candidates(onnx.load(str(run_dir / "export" / "model.onnx")))
    reasons = [r["reason"] for r in rejected]
    if family == "dpt":
        assert found and REDUCED_KEYS_REASON not in reasons
        assert "spatially reduced sequence" not in (run_dir / "build" / STAGE_FILE).read_text(encoding="utf-8")
        return
    assert len(found) == 1 and reasons == [REDUCED_KEYS_REASON]
    assert "spatially reduced sequence" in (run_dir / "build" / STAGE_FILE).read_text(encoding="utf-8")


@pytest.mark.parametrize("family", ["dpt", "segformer"])
def test_width_pruning_a_segmenter(family: str, tmp_path: Path) -> None:
    """`prune --method width` on DPT (a plain ViT backbone): heads and neurons removed, recovery on the masks,
    the task's gate, and the exported per-pixel logits pass parity. SegFormer's stages differ in width: refused
    in one line."""
    import shutil

    from trt_edge.sparsity.width_stage import run
    from trt_edge.stage import StageRecord

    (tmp_path / "scenes").mkdir()
    write_scenes(tmp_path / "scenes", "segmentation", 30, SIZE, 0, source=write_fashion_mnist(tmp_path / "fmnist"))
    root = tmp_path / "distilled"
    write_segmentation_model(root / "model", family, class_names(), SIZE)
    shutil.copytree(root / "model", root / "teacher")
    StageRecord(stage="distill", config={}, artifacts={"model": "model", "teacher": "teacher"}).write(root)
    raw = {"task": {"type": TASK, "eval_batch_size": 16, "data": {"source": str(tmp_path / "scenes")}},
           "width": {"keep_heads": 0.5, "keep_ffn": 0.5, "steps": 1, "calibration_samples": 16,
                     "train": {"epochs": 1, "batch_size": 8, "max_steps": 2, "learning_rate": 1e-3}}}
    if family == "segformer":
        with pytest.raises(TrtEdgeError, match="blocks differ in width already"):
            run(RunConfig(raw), root, tmp_path / "width")
        return
    m = run(RunConfig(raw), root, tmp_path / "width").metrics
    assert (m["structure"]["heads"], m["structure"]["ffn"]) == (1, m["dense_structure"]["ffn"] // 2)
    assert m["parity_max_abs_diff"] < 1e-4
    assert "per-image mIoU" in json.dumps(m["gate"])


def test_run_image_overlay_blends_the_class_mask(seg_run: tuple[str, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`run --image FILE --overlay DIR` on a segmenter: the class areas line as before, and a PNG of the input's
    own size (not the model's) with the predicted class map blended over it."""
    import numpy as np
    from PIL import Image

    from trt_edge.cli import main

    _, run_dir = seg_run
    pixels = np.random.default_rng(0).integers(0, 255, size=(40, 56, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "scene.png")
    main(["run", "--onnx", str(run_dir / "export" / "model.onnx"), "--image", str(tmp_path / "scene.png"),
          "--overlay", str(tmp_path / "overlays")])
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert sum(line["areas"].values()) == pytest.approx(1.0, abs=1e-4)
    drawn = np.asarray(Image.open(tmp_path / "overlays" / "scene.png").convert("RGB"))
    assert drawn.shape == pixels.shape and np.mean(np.any(drawn != pixels, axis=-1)) > 0.5


def test_overlay_is_refused_for_a_classifier_before_inference(tmp_path: Path) -> None:
    from trt_edge.runtime.image import ImageClassifier
    from trt_edge.tasks.spec import IMAGE_CLASSIFICATION

    classifier = ImageClassifier(None, None, ["a", "b"], spec=IMAGE_CLASSIFICATION)  # type: ignore[arg-type]
    with pytest.raises(TrtEdgeError, match="--overlay draws a detector's boxes or a segmenter's mask"):
        classifier.classify([tmp_path / "x.png"], tmp_path / "overlays")
    assert not (tmp_path / "overlays").exists()


def test_report_shows_teacher_and_final_overlays(seg_run: tuple[str, Path]) -> None:
    """The report draws the first test images with the teacher's and the final model's class maps, side by side."""
    from vision_helpers import assert_report_overlays

    assert_report_overlays(seg_run[1])


def test_a_classification_run_has_no_overlays(tmp_path: Path) -> None:
    """One label per image: nothing to draw, no overlay section and no note (classification reports keep their
    content)."""
    from trt_edge.pipeline.overlays import make_overlays

    for task in ("image-classification", "text-classification", "sentence-embedding"):
        assert make_overlays(tmp_path, {"distill": {"config": {"task": {"type": task}}}}) == ([], None)


def test_qat_trains_on_this_task_where_asked(seg_run: tuple[str, Path]) -> None:
    """QAT trains on this task's model where the config asks (tests/pipeline/test_qat_pipeline.py's check)."""
    from .test_qat_pipeline import check_qat_where_asked

    family, run_dir = seg_run
    check_qat_where_asked(run_dir, trained=family == "segformer")
