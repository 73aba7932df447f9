"""The `semantic-segmentation` task (issue 28): its spec entry and adapter on tiny random SegFormer and DPT
folders and tiny demo scenes (built from a fake Fashion-MNIST folder, so no Debian package is needed).

Contracts, not numerics: the data keeps images and masks paired and splits them by seed; metrics are at
each mask's size with ignore pixels left out; the gate is a paired bootstrap over images; the loss is
CE(ignore index) plus the pixel-wise KD; a folder of another task is refused in one line.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.tasks.adapter import adapter_for, task_adapter
from trt_edge.tasks.config import DataConfig
from trt_edge.tasks.scenes import write_scenes
from trt_edge.tasks.spec import SEMANTIC_SEGMENTATION, TASKS, task_for_architectures

sys.path.insert(0, str(Path(__file__).parent))
from vision_helpers import SEGMENTERS, write_fashion_mnist, write_segmentation_model, write_vision_model

TASK = "semantic-segmentation"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 tiny 32x32 demo scenes in train/validation/test folders (classes.json at the root)."""
    root = tmp_path_factory.mktemp("seg")
    fmnist = write_fashion_mnist(root / "fmnist")
    (root / "scenes").mkdir()
    write_scenes(root / "scenes", "segmentation", 30, 32, 0, source=fmnist)
    return root / "scenes"


@pytest.fixture(scope="module")
def data(scenes: Path) -> Any:
    return task_adapter(TASK).load_data(DataConfig(source=str(scenes)))


@pytest.fixture(scope="module", params=SEGMENTERS)
def segmenter(request: pytest.FixtureRequest, data: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from trt_edge.tasks.models import load_classifier

    folder = write_segmentation_model(tmp_path_factory.mktemp(str(request.param)) / "model", str(request.param),
                                      data.label_names)
    return load_classifier(folder, data.label_names, task=TASK)


def _one_hot(masks: list[np.ndarray], k: int) -> np.ndarray:
    """Logits [N, k, H, W] whose argmax is each mask (ignore pixels predicted as class 0)."""
    out = np.zeros((len(masks), k, *masks[0].shape), dtype=np.float32)
    for i, mask in enumerate(masks):
        m = np.where(mask < k, mask, 0)
        np.put_along_axis(out[i], m[None].astype(np.int64), 5.0, axis=0)
    return out


# --- the spec -----------------------------------------------------------------------------------------

def test_spec_entry_declares_pixels_in_and_per_pixel_logits_out() -> None:
    spec = TASKS[TASK]
    assert spec is SEMANTIC_SEGMENTATION
    assert spec.input_names == ("pixel_values",) and spec.output == "logits"
    assert spec.output_axes[0] == "batch" and len(spec.output_axes) == 4  # [batch, classes, h, w]
    assert spec.metric == "miou" and spec.auto_model == "AutoModelForSemanticSegmentation"
    assert adapter_for(spec).spec is spec and adapter_for(spec).uses_labels


def test_architectures_name_the_task() -> None:
    assert task_for_architectures(["SegformerForSemanticSegmentation"]) is SEMANTIC_SEGMENTATION
    assert task_for_architectures(["ViTForImageClassification"]).name == "image-classification"  # type: ignore[union-attr]
    assert task_for_architectures(["ViTModel"]) is None and task_for_architectures(None) is None


# --- data ---------------------------------------------------------------------------------------------

def test_split_folders_keep_their_splits_and_pair_images_with_masks(data: Any, scenes: Path) -> None:
    assert data.label_names[0] == "background" and len(data.label_names) == 11
    for name, split in (("train", data.train), ("validation", data.validation), ("test", data.test)):
        assert len(split) == len(list((scenes / name / "images").iterdir()))
        for img, mask in zip(split.examples, split.labels, strict=True):
            assert img.shape[:2] == mask.shape and mask.dtype == np.uint8
    assert data.fingerprint()["sha256"]["train"]  # masks hash (they are not JSON)
    assert 0.0 < data.majority_accuracy() <= 1.0


def test_a_flat_folder_is_split_by_seed(scenes: Path) -> None:
    adapter = task_adapter(TASK)
    cfg = DataConfig(source=str(scenes / "train"), train_size=0.6, validation_size=0.2, test_size=0.2, seed=3)
    a, b = adapter.load_data(cfg), adapter.load_data(cfg)
    assert [len(a.train), len(a.validation), len(a.test)] == [len(b.train), len(b.validation), len(b.test)]
    assert all(np.array_equal(x, y) for x, y in zip(a.test.labels, b.test.labels, strict=True))
    total = len(a.train) + len(a.validation) + len(a.test) + len(a.unused)
    assert total == len(list((scenes / "train" / "images").iterdir()))
    other = adapter.load_data(cfg.replace(seed=4))
    assert a.test.sha256() != other.test.sha256()


def test_the_declared_ignore_index_becomes_the_one_the_losses_use(tmp_path: Path) -> None:
    from PIL import Image

    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    (tmp_path / "classes.json").write_text(json.dumps({"names": ["bg", "thing"], "ignore_index": 7}))
    for i in range(10):
        Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(tmp_path / "images" / f"{i}.png")
        mask = np.zeros((8, 8), np.uint8)
        mask[:2] = 7
        mask[4:] = 1
        Image.fromarray(mask).save(tmp_path / "masks" / f"{i}.png")
    data = task_adapter(TASK).load_data(DataConfig(source=str(tmp_path), train_size=6, validation_size=2,
                                                   test_size=2))
    assert set(np.unique(data.train.labels[0])) == {0, 1, 255}


def test_demo_sources_are_refused_in_one_line() -> None:
    with pytest.raises(TrtEdgeError, match="trt-edge scenes"):
        task_adapter(TASK).load_data(DataConfig(source="demo:fashion-mnist"))


# --- metrics and gates ---------------------------------------------------------------------------------

def test_score_is_at_each_masks_size_and_leaves_ignore_pixels_out(data: Any) -> None:
    adapter = task_adapter(TASK)
    masks = [m.copy() for m in data.test.labels]
    perfect = _one_hot(masks, data.num_labels)
    labels = type(data.test.labels)(masks, data.label_names)
    masks[0][:3, :3] = 255  # ignored: whatever is predicted there does not count
    perfect[0][:, :3, :3] = 0
    perfect[0][3, :3, :3] = 9.0
    scores = adapter.score(perfect, labels, data.num_labels)
    assert scores["miou"] == pytest.approx(1.0) and scores["pixel_accuracy"] == pytest.approx(1.0)
    assert scores["score"] == scores["miou"] and "iou_background" in scores
    # logits at a quarter of the mask's size (SegFormer's stride) are upsampled, not refused
    coarse = perfect[:, :, ::4, ::4]
    assert 0.0 <= adapter.score(coarse, labels, data.num_labels)["miou"] <= 1.0
    assert adapter.example_scores(perfect, labels) == pytest.approx(np.ones(len(masks)))


def test_the_gate_is_a_paired_bootstrap_of_per_image_miou(data: Any) -> None:
    adapter = task_adapter(TASK)
    parent = _one_hot(list(data.test.labels), data.num_labels)
    same = adapter.judge("distill", "student vs teacher", parent, parent.copy(), data.test.labels, 1.0)
    assert same.drop_points == pytest.approx(0.0)
    worse = parent.copy()
    worse[0] = 0.0
    worse[0, 0] = 1.0  # the first image predicted all background
    verdict = adapter.judge("distill", "student vs teacher", parent, worse, data.test.labels, 1.0)
    record = verdict.to_dict()
    assert verdict.drop_points > 0 and "per-image mIoU" in json.dumps(record)
    assert "bootstrap" in json.dumps(record).lower()


# --- training ------------------------------------------------------------------------------------------

def test_masks_are_resized_nearest_when_a_batch_is_stacked() -> None:
    adapter = task_adapter(TASK)
    mask = np.arange(16, dtype=np.uint8).reshape(4, 4)
    features = [{"pixel_values": np.zeros((3, 8, 8), np.float32), "labels": mask}]
    batch = adapter.collate(features, 0)
    assert tuple(batch["labels"].shape) == (1, 8, 8)
    assert np.array_equal(batch["labels"][0].numpy(), np.kron(mask, np.ones((2, 2), np.uint8)))


def test_a_transfer_set_image_trains_on_the_teachers_logits_alone() -> None:
    """A transfer-set example has no mask (its label is UNLABELLED): every pixel is ignored by the CE, the
    pixel-wise KD still trains on it."""
    import torch

    from trt_edge.tasks.classification import UNLABELLED

    adapter = task_adapter(TASK)
    features = [{"pixel_values": np.zeros((3, 8, 8), np.float32), "labels": np.zeros((4, 4), np.uint8)},
                {"pixel_values": np.zeros((3, 8, 8), np.float32), "labels": np.int64(UNLABELLED)}]
    batch = adapter.collate(features, 0)
    assert batch["labels"].shape == (2, 8, 8) and bool((batch["labels"][1] == 255).all())
    only_transfer = batch["labels"][1:]
    out = type("Out", (), {"logits": torch.randn(1, 3, 4, 4)})()
    loss, parts = adapter.output_loss(out, only_transfer, torch.randn(1, 3, 4, 4), alpha=0.5, temperature=2.0)
    assert parts["ce"] == 0.0 and parts["kd"] > 0 and float(loss) == pytest.approx(0.5 * parts["kd"], rel=1e-5)


def test_output_loss_is_ce_with_ignore_plus_pixelwise_kd() -> None:
    import torch

    adapter = task_adapter(TASK)
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    out = type("Out", (), {"logits": logits})()
    masks = torch.randint(0, 3, (2, 16, 16))
    ignored = torch.full((2, 16, 16), 255)
    loss, parts = adapter.output_loss(out, ignored, None, alpha=0.0, temperature=1.0)
    assert float(loss) == 0.0 and parts["ce"] == 0.0
    loss, parts = adapter.output_loss(out, masks, None, alpha=0.0, temperature=1.0)
    assert float(loss) > 0 and "kd" not in parts
    _, same = adapter.output_loss(out, masks, logits.detach(), alpha=0.5, temperature=2.0)
    assert same["kd"] == pytest.approx(0.0, abs=1e-6)
    teacher = torch.randn(2, 3, 8, 8)  # another output stride: resized to the student's
    loss, parts = adapter.output_loss(out, masks, teacher, alpha=1.0, temperature=2.0)
    assert parts["kd"] > 0 and float(loss) == pytest.approx(parts["kd"], rel=1e-5)
    loss.backward()
    assert logits.grad is not None


# --- models --------------------------------------------------------------------------------------------

def test_segformer_and_dpt_give_per_pixel_logits(segmenter: Any, data: Any) -> None:
    adapter = task_adapter(TASK)
    encoded = adapter.encode(segmenter.preprocessor, data.test.examples, 0)
    metrics, logits = adapter.evaluate(segmenter.model, encoded, data.test.labels, data.num_labels)
    assert logits.ndim == 4 and logits.shape[:2] == (len(data.test), data.num_labels)
    assert 0.0 <= metrics["miou"] <= 1.0 and 0.0 <= metrics["pixel_accuracy"] <= 1.0


def test_a_model_of_another_image_task_is_refused_in_one_line(tmp_path: Path, data: Any) -> None:
    from trt_edge.tasks.models import load_classifier

    classifier = write_vision_model(tmp_path / "vit")
    with pytest.raises(TrtEdgeError, match="image-classification model, the task is semantic-segmentation"):
        load_classifier(classifier, data.label_names, task=TASK)
    segformer = write_segmentation_model(tmp_path / "segformer", "segformer", data.label_names)
    with pytest.raises(TrtEdgeError, match="semantic-segmentation model, the task is image-classification"):
        load_classifier(segformer, data.label_names, task="image-classification")
    shutil.rmtree(tmp_path / "vit")


def test_preflight_refuses_students_the_encoder_cannot_be_cut_to(scenes: Path, tmp_path: Path) -> None:
    """Before any training (the teacher's fine-tune and logits): SegFormer's hierarchical encoder takes no
    layer-subset student, DPT's takes one only when it keeps every layer the dense head reads."""
    from trt_edge.config import RunConfig
    from trt_edge.preflight import preflight

    def config(teacher: Path, student: dict[str, Any]) -> RunConfig:
        return RunConfig({"task": {"type": TASK, "data": {"source": str(scenes)}},
                          "distill": {"teacher": str(teacher), "student": student}})

    names = [f"c{i}" for i in range(11)]
    segformer = write_segmentation_model(tmp_path / "segformer", "segformer", names)
    with pytest.raises(TrtEdgeError, match=r"hierarchical encoder.*distill\.student\.model"):
        preflight(config(segformer, {}), ["distill"])
    dpt = write_segmentation_model(tmp_path / "dpt", "dpt", names)
    with pytest.raises(TrtEdgeError, match=r"drops layers \[1, 3, 5, 7\]"):
        preflight(config(dpt, {}), ["distill"])  # the default (every other layer from 0) keeps none of them
    preflight(config(dpt, {"layers": [1, 3, 5, 7]}), ["distill"])


def test_a_test_split_of_mixed_sizes_is_refused_before_training(tmp_path: Path) -> None:
    """Training images may differ in size (masks are resized per batch); the scored splits are saved as one
    array, so mixed sizes there are one line, not a crash after training."""
    from PIL import Image

    (tmp_path / "classes.json").write_text(json.dumps({"names": ["bg", "thing"]}))
    for split, sizes in (("train", (8, 12)), ("validation", (8, 8)), ("test", (8, 10))):
        for sub in ("images", "masks"):
            (tmp_path / split / sub).mkdir(parents=True)
        for i, side in enumerate(sizes):
            Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(tmp_path / split / "images" / f"{i}.png")
            Image.fromarray(np.ones((side, side), np.uint8)).save(tmp_path / split / "masks" / f"{i}.png")
    with pytest.raises(TrtEdgeError, match="the test split holds images of 2 sizes"):
        task_adapter(TASK).load_data(DataConfig(source=str(tmp_path)))


def test_a_segformer_teacher_can_be_built_from_a_config(data: Any, tmp_path: Path) -> None:
    """`distill.teacher: {config: {model_type: segformer, ...}}`: random weights, the task's head and a processor
    making the config's image_size, loadable as a segmenter (a model trained from scratch)."""
    from trt_edge.distill.config import DistillConfig
    from trt_edge.distill.stage import teacher_folder
    from trt_edge.tasks.config import TaskConfig
    from trt_edge.tasks.image_classification import input_size
    from trt_edge.tasks.models import load_classifier

    raw = {"model_type": "segformer", "num_encoder_blocks": 2, "depths": [1, 1], "sr_ratios": [2, 1],
           "hidden_sizes": [16, 32], "patch_sizes": [7, 3], "strides": [4, 2], "num_attention_heads": [1, 2],
           "mlp_ratios": [2, 2], "decoder_hidden_size": 32, "image_size": 32}
    cfg = DistillConfig.from_dict({"teacher": {"config": raw}, "cache_dir": str(tmp_path)}, "distill")
    folder = teacher_folder(cfg, TaskConfig.from_dict({"type": TASK}, "task"), data)
    loaded = load_classifier(folder, data.label_names, task=TASK)
    assert type(loaded.model).__name__ == "SegformerForSemanticSegmentation"
    assert input_size(loaded.model.config, loaded.preprocessor) == (32, 32)


TINY_SEGFORMER = {"model_type": "segformer", "num_encoder_blocks": 2, "depths": [2, 2], "sr_ratios": [2, 1],
                  "hidden_sizes": [16, 32], "patch_sizes": [7, 3], "strides": [4, 2], "num_attention_heads": [1, 2],
                  "mlp_ratios": [2, 2], "decoder_hidden_size": 32, "image_size": 32}


def test_a_config_student_of_a_from_scratch_segformer_teacher(scenes: Path, tmp_path: Path) -> None:
    """`distill.student.config`: a smaller SegFormer (one block per stage, narrower) with random weights, trained
    by distillation from a SegFormer teacher built from a config: the saved student has the config's shape,
    the teacher's labels, input size and processor, and is scored by the task's metric."""
    from trt_edge.config import RunConfig
    from trt_edge.distill.stage import run
    from trt_edge.tasks.models import load_classifier

    student = {"model_type": "segformer", "depths": [1, 1], "hidden_sizes": [8, 16], "decoder_hidden_size": 16,
               "num_encoder_blocks": 2, "sr_ratios": [2, 1], "patch_sizes": [7, 3], "strides": [4, 2],
               "num_attention_heads": [1, 1], "mlp_ratios": [2, 2]}
    budget = {"epochs": 1, "batch_size": 8, "max_steps": 2, "learning_rate": 1e-3}
    raw = {"task": {"type": TASK, "eval_batch_size": 16, "data": {"source": str(scenes)}},
           "distill": {"teacher": {"config": TINY_SEGFORMER}, "teacher_train": budget, "train": budget,
                       "student": {"config": student}, "ablation": False, "cache_dir": str(tmp_path / "cache")}}
    record = run(RunConfig(raw), tmp_path / "distill")
    m = record.metrics
    assert m["student_source"] == "distill.student.config (random weights)" and m["student_layers"] == 2
    assert 0.0 <= m["student_miou"] <= 1.0 and m["student_params"] < m["teacher_params"]
    names = json.loads((scenes / "classes.json").read_text())["names"]
    loaded = load_classifier(tmp_path / "distill" / "model", names, task=TASK)
    config = loaded.model.config
    assert (config.model_type, list(config.depths), list(config.hidden_sizes)) == ("segformer", [1, 1], [8, 16])
    teacher = json.loads((tmp_path / "distill" / "teacher" / "config.json").read_text())
    assert config.id2label == {int(k): v for k, v in teacher["id2label"].items()}
    assert config.image_size == teacher["image_size"] == 32 and config.num_channels == teacher["num_channels"]
    assert json.loads((tmp_path / "distill" / "model" / "preprocessor_config.json").read_text()) == \
        json.loads((tmp_path / "distill" / "teacher" / "preprocessor_config.json").read_text())


@pytest.mark.parametrize(("change", "message"), [
    ({"model_type": "dpt"}, r"model_type is 'dpt', the teacher's is 'segformer'"),
    ({"image_size": 64}, r"image_size is 64, the teacher's is 32"),
    ({"num_channels": 1}, r"num_channels is 1, the teacher's is 3"),
    ({"num_labels": 3}, r"labels \(3\) are not the task's 11 classes"),
])
def test_a_config_student_that_cannot_take_the_teachers_inputs_is_refused(
        change: dict[str, Any], message: str, scenes: Path, tmp_path: Path) -> None:
    """One line, before the teacher trains (a teacher folder: the preflight; a config teacher: as it is built)."""
    from trt_edge.config import RunConfig
    from trt_edge.distill.stage import run
    from trt_edge.preflight import _check_models

    teacher = write_segmentation_model(tmp_path / "teacher", "segformer", json.loads(
        (scenes / "classes.json").read_text())["names"], 32)
    raw = {"task": {"type": TASK, "data": {"source": str(scenes)}},
           "distill": {"teacher": str(teacher), "student": {"config": {"depths": [1, 1], **change}}}}
    with pytest.raises(TrtEdgeError, match=message) if "num_labels" not in change else _no_error():
        _check_models(RunConfig(raw))  # labels are the data's: checked where the data is loaded
    raw["distill"] = {"teacher": {"config": TINY_SEGFORMER}, "teacher_train": {"max_steps": 1, "batch_size": 8},
                      "student": {"config": {"depths": [1, 1], **change}}, "cache_dir": str(tmp_path / "cache")}
    with pytest.raises(TrtEdgeError, match=message):
        run(RunConfig(raw), tmp_path / "distill")
    assert not (tmp_path / "cache" / "teachers").exists()  # refused before any fine-tuning


def _no_error() -> Any:
    import contextlib

    return contextlib.nullcontext()


def test_multi_head_reduced_keys_are_named_as_segformer_s_not_a_decoder_s(tmp_path: Path) -> None:
    """A SegFormer stage with several heads and sr_ratio 2 matches the attention pattern, then fails on its
    key length: the reason must be the spatially reduced sequence (a Conv feeds the keys), not DETR-style
    cross-attention (the demo's 4-stage SegFormer was reported as a decoder)."""
    import onnx

    from trt_edge.export.exporter import export_onnx
    from trt_edge.onnxgraph.attention_match import (
        CROSS_ATTENTION_REASON,
        REDUCED_KEYS_REASON,
        find_attention_candidates,
    )

    folder = write_segmentation_model(tmp_path / "segformer", "segformer", ["background", "thing"],
                                      num_attention_heads=[2, 2])
    export_onnx(folder, tmp_path / "model.onnx", task="semantic-segmentation")
    found, rejected = find_attention_candidates(onnx.load(str(tmp_path / "model.onnx")))
    reasons = [r["reason"] for r in rejected]
    assert reasons and set(reasons) == {REDUCED_KEYS_REASON} and CROSS_ATTENTION_REASON not in reasons
    assert len(found) == 2  # the sr_ratio-1 stage's two blocks
