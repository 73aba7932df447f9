"""The `object-detection` task (issue 28): its spec entry and adapter on tiny random YOLOS and DETR folders and
tiny COCO demo scenes (built from a fake Fashion-MNIST folder, so no Debian package is needed).

Contracts, not numerics: the data keeps images and gold boxes paired (normalised rows that map back to the
COCO file's pixels) and splits them by seed; outputs carry logits and boxes together and decode as
transformers' post-processing does; mAP is pycocotools' (perfect boxes score 1); the gate is a paired
bootstrap over images; the loss is the model's set loss on gold + the matched distillation term; a folder of
another task and a processor without a fixed size are refused in one line.
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
from trt_edge.tasks.classification import UNLABELLED
from trt_edge.tasks.config import DataConfig
from trt_edge.tasks.scenes import write_scenes
from trt_edge.tasks.spec import OBJECT_DETECTION, TASKS, task_for_architectures

sys.path.insert(0, str(Path(__file__).parent))
from vision_helpers import DETECTORS, write_detection_model, write_fashion_mnist, write_segmentation_model

TASK = "object-detection"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 tiny 32x32 COCO demo scenes in train/validation/test folders."""
    root = tmp_path_factory.mktemp("det")
    fmnist = write_fashion_mnist(root / "fmnist")
    (root / "scenes").mkdir()
    write_scenes(root / "scenes", "detection", 30, 32, 0, source=fmnist)
    return root / "scenes"


@pytest.fixture(scope="module")
def data(scenes: Path) -> Any:
    return task_adapter(TASK).load_data(DataConfig(source=str(scenes)))


@pytest.fixture(scope="module", params=DETECTORS)
def detector(request: pytest.FixtureRequest, data: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from trt_edge.tasks.models import load_classifier

    folder = write_detection_model(tmp_path_factory.mktemp(str(request.param)) / "model", str(request.param),
                                   data.label_names)
    return load_classifier(folder, data.label_names, task=TASK)


def _perfect(labels: Any, k: int, queries: int = 6) -> np.ndarray:
    """Packed outputs [N, queries, k+1+4] that put each gold object in a query with a confident right class
    and its exact box; the other queries say "no object"."""
    out = np.zeros((len(labels), queries, k + 1 + 4), dtype=np.float32)
    out[:, :, k] = 10.0  # no object
    out[:, :, k + 1:] = [0.5, 0.5, 0.1, 0.1]
    for i, rows in enumerate(labels):
        for q, row in enumerate(np.asarray(rows)[:queries]):
            out[i, q, k] = 0.0
            out[i, q, int(row[0])] = 10.0
            out[i, q, k + 1:] = row[1:5]
    return out


# --- the spec -----------------------------------------------------------------------------------------

def test_spec_entry_declares_pixels_in_and_logits_and_boxes_out() -> None:
    spec = TASKS[TASK]
    assert spec is OBJECT_DETECTION
    assert spec.input_names == ("pixel_values",) and spec.output == "detections"
    assert spec.output_axes[:2] == ("batch", "queries") and len(spec.output_axes) == 3
    assert spec.packed_outputs == (("logits", None), ("pred_boxes", 4))  # joined on the last axis
    assert spec.metric == "map" and spec.auto_model == "AutoModelForObjectDetection"
    assert adapter_for(spec).spec is spec and adapter_for(spec).uses_labels


def test_architectures_name_the_task() -> None:
    assert task_for_architectures(["YolosForObjectDetection"]) is OBJECT_DETECTION
    assert task_for_architectures(["DetrForObjectDetection"]) is OBJECT_DETECTION
    assert task_for_architectures(["SegformerForSemanticSegmentation"]).name == "semantic-segmentation"  # type: ignore[union-attr]


# --- data ---------------------------------------------------------------------------------------------

def test_split_folders_keep_their_splits_and_rows_map_back_to_the_coco_boxes(data: Any, scenes: Path) -> None:
    from trt_edge.tasks.coco import read_coco
    from trt_edge.tasks.object_detection import _golds

    coco = read_coco(scenes / "test" / "instances.json")
    assert len(data.test) == len(coco) and data.label_names == coco.label_names
    golds, sizes, names = _golds(data.test.labels)
    assert names == coco.label_names and sizes == [(im.height, im.width) for im in coco.images]
    index = coco.label_index()
    for gold, image, pixels in zip(golds, coco.images, data.test.examples, strict=True):
        assert pixels.shape[:2] == (image.height, image.width)
        np.testing.assert_allclose(gold.boxes, image.boxes, atol=1e-3)
        assert list(gold.categories) == [index[int(c)] for c in image.categories]


def test_one_coco_folder_is_split_by_seed(scenes: Path) -> None:
    source = str(scenes / "train" / "instances.json")
    first = task_adapter(TASK).load_data(DataConfig(source=source, seed=3))
    again = task_adapter(TASK).load_data(DataConfig(source=source, seed=3))
    assert len(first.train) and len(first.validation) and len(first.test)
    for a, b in zip(first.test.labels, again.test.labels, strict=True):
        np.testing.assert_array_equal(a, b)


def test_demo_sources_and_bad_coco_files_are_refused_in_one_line(scenes: Path, tmp_path: Path) -> None:
    with pytest.raises(TrtEdgeError, match="trt-edge scenes --out DIR --kind detection"):
        task_adapter(TASK).load_data(DataConfig(source="demo:fashion-mnist"))
    bad = tmp_path / "bad"
    shutil.copytree(scenes / "test", bad)
    coco = json.loads((bad / "instances.json").read_text())
    coco["annotations"][0]["category_id"] = 999
    (bad / "instances.json").write_text(json.dumps(coco))
    with pytest.raises(TrtEdgeError, match="unknown category id 999"):
        task_adapter(TASK).load_data(DataConfig(source=str(bad)))


# --- outputs, metrics, the gate -------------------------------------------------------------------------

def test_decode_is_transformers_post_processing(data: Any) -> None:
    """The numpy decoding the stages score equals the DETR image processor's own post-processing."""
    import torch
    from transformers import DetrImageProcessor

    from trt_edge.tasks.object_detection import decode, unpack

    rng = np.random.default_rng(0)
    outputs = rng.normal(size=(3, 6, data.num_labels + 1 + 4)).astype(np.float32)
    outputs[..., -4:] = rng.uniform(0.2, 0.6, size=(3, 6, 4))
    sizes = [(32, 48), (20, 20), (64, 16)]
    logits, boxes = unpack(outputs)
    from types import SimpleNamespace

    theirs = DetrImageProcessor().post_process_object_detection(
        SimpleNamespace(logits=torch.from_numpy(logits), pred_boxes=torch.from_numpy(boxes)), threshold=0.2,
        target_sizes=sizes)
    ours = decode(outputs, sizes, threshold=0.2)
    for (b, s, c), t in zip(ours, theirs, strict=True):
        order = np.argsort(-t["scores"].numpy(), kind="stable")
        np.testing.assert_allclose(b, t["boxes"].numpy()[order], atol=1e-4)
        np.testing.assert_allclose(s, t["scores"].numpy()[order], atol=1e-6)
        np.testing.assert_array_equal(c, t["labels"].numpy()[order])


def test_score_is_coco_map_and_perfect_boxes_score_one(data: Any) -> None:
    adapter = task_adapter(TASK)
    labels = data.test.labels
    perfect = _perfect(labels, data.num_labels)
    metrics = adapter.score(perfect, labels, data.num_labels)
    assert metrics["map"] == pytest.approx(1.0) and metrics["map_50"] == pytest.approx(1.0)
    assert metrics["score"] == metrics["map"]
    assert adapter.score(perfect, labels, 6) == metrics  # the classes are the head's, whatever a caller passes
    saved = adapter.score(perfect, labels.to_array(), data.num_labels)  # padded rows, as a stage saves them
    assert saved["map"] == pytest.approx(1.0)
    shifted = perfect.copy()
    shifted[:, :, -4:-2] += 0.08  # every box moved: lower mAP@[.5:.95]
    worse = adapter.score(shifted, labels, data.num_labels)
    assert worse["map"] < metrics["map"]
    per_image = adapter.example_scores(perfect, labels)
    assert per_image.shape == (len(labels),) and np.allclose(per_image, 1.0)


def test_the_gate_is_a_paired_bootstrap_of_per_image_ap(data: Any) -> None:
    adapter = task_adapter(TASK)
    labels = data.test.labels
    perfect = _perfect(labels, data.num_labels)
    broken = perfect.copy()
    broken[: len(labels) // 2, :, -4:-2] += 0.3  # half the images lose their boxes
    verdict = adapter.judge("prune", "sparse vs dense", perfect, broken, labels, 1.0)
    low, high = verdict.interval_points
    assert verdict.drop_points > 1.0 and low <= verdict.drop_points <= high and not verdict.passed
    record = json.dumps(verdict.to_dict())
    assert "per-image AP" in record and "bootstrap" in record.lower()
    same = adapter.judge("prune", "sparse vs dense", perfect, perfect.copy(), labels, 1.0)
    assert same.drop_points == pytest.approx(0.0) and same.passed


# --- the loss -----------------------------------------------------------------------------------------

def test_output_loss_is_the_set_loss_plus_matched_distillation(data: Any) -> None:
    from types import SimpleNamespace

    import torch

    from trt_edge.tasks.object_detection import collate

    adapter = task_adapter(TASK)
    k = data.num_labels
    labels = list(data.train.labels[:4])
    teacher = torch.from_numpy(_perfect(labels, k))
    features = [{"pixel_values": np.zeros((3, 32, 32), np.float32), "labels": torch.tensor(rows),
                 "teacher_logits": teacher[i]} for i, rows in enumerate(labels)]
    batch = collate(features, 0)
    assert isinstance(batch["labels"], list) and batch["teacher_logits"].shape == teacher.shape

    def out(packed: Any) -> Any:
        p = packed.clone().requires_grad_(True)
        return SimpleNamespace(logits=p[..., :-4], pred_boxes=p[..., -4:]), p

    torch.manual_seed(0)
    random = torch.randn_like(teacher)
    random[..., -4:] = random[..., -4:].sigmoid()
    student, leaf = out(random)
    gold_only, parts = adapter.output_loss(student, batch["labels"], None, alpha=0.0, temperature=2.0)
    assert set(parts) == {"set"} and torch.isfinite(gold_only)
    gold_only.backward()
    assert leaf.grad is not None and bool(leaf.grad.abs().sum() > 0)
    _, parts = adapter.output_loss(out(random)[0], batch["labels"], batch["teacher_logits"], alpha=0.5,
                                   temperature=2.0)
    assert set(parts) == {"set", "kd"} and parts["kd"] > 0
    _, parts_t = adapter.output_loss(out(teacher)[0], batch["labels"], batch["teacher_logits"], alpha=0.5,
                                     temperature=2.0)
    assert parts_t["kd"] < parts["kd"] and parts_t["set"] < parts["set"]
    # Transfer-set images (no gold) train on the distillation term alone.
    unlabelled = collate([{**f, "labels": torch.tensor(UNLABELLED)} for f in features], 0)
    _, parts_u = adapter.output_loss(out(random)[0], unlabelled["labels"], unlabelled["teacher_logits"], alpha=0.5,
                                     temperature=2.0)
    assert set(parts_u) == {"kd"}
    joined = OBJECT_DETECTION.model_output(SimpleNamespace(logits=teacher[..., :-4], pred_boxes=teacher[..., -4:]))
    assert torch.equal(joined, teacher)
    assert OBJECT_DETECTION.class_scores(teacher.numpy()).shape == (len(labels), k + 1, teacher.shape[1])


# --- models -------------------------------------------------------------------------------------------

def test_yolos_and_detr_give_logits_and_boxes(detector: Any, data: Any) -> None:
    adapter = task_adapter(TASK)
    encoded = adapter.encode(detector.preprocessor, data.test.examples, 0)
    metrics, outputs = adapter.evaluate(detector.model, encoded, data.test.labels, data.num_labels)
    assert outputs.shape == (len(data.test), 6, data.num_labels + 1 + 4)
    assert np.all((outputs[..., -4:] >= 0) & (outputs[..., -4:] <= 1))  # sigmoid boxes
    assert 0.0 <= metrics["map"] <= metrics["map_50"] <= 1.0


def test_a_few_steps_on_the_set_loss_fit_one_batch(detector: Any, data: Any) -> None:
    """The loss trains the model it is given: a handful of steps on four images lowers it."""
    import torch

    adapter = task_adapter(TASK)
    encoded = adapter.encode(detector.preprocessor, data.train.examples[:4], 0)
    features = [{**f, "labels": torch.tensor(r)} for f, r in zip(encoded.features, data.train.labels[:4],
                                                                   strict=True)]
    batch = adapter.collate(features, 0)
    model = detector.model
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss, _ = adapter.output_loss(model(**adapter.model_inputs(batch)), batch["labels"], None, alpha=0.0,
                                      temperature=1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    assert losses[-1] < losses[0]


def test_a_model_of_another_image_task_is_refused_in_one_line(tmp_path: Path, data: Any) -> None:
    from trt_edge.tasks.models import load_classifier

    segformer = write_segmentation_model(tmp_path / "segformer", "segformer", data.label_names)
    with pytest.raises(TrtEdgeError, match="semantic-segmentation model, the task is object-detection"):
        load_classifier(segformer, data.label_names, task=TASK)
    yolos = write_detection_model(tmp_path / "yolos", "yolos", data.label_names)
    with pytest.raises(TrtEdgeError, match="object-detection model, the task is semantic-segmentation"):
        load_classifier(yolos, data.label_names, task="semantic-segmentation")
    with pytest.raises(TrtEdgeError, match="object-detection model, the task is image-classification"):
        load_classifier(yolos, data.label_names, task="image-classification")


def test_a_processor_without_one_fixed_size_is_refused_in_one_line(tmp_path: Path, data: Any) -> None:
    from trt_edge.tasks.models import load_classifier

    folder = write_detection_model(tmp_path / "detr", "detr", data.label_names)
    config = json.loads((folder / "preprocessor_config.json").read_text())
    config["size"] = {"shortest_edge": 800, "longest_edge": 1333}  # the hub DETR processors' resize
    (folder / "preprocessor_config.json").write_text(json.dumps(config))
    with pytest.raises(TrtEdgeError, match=r'gives each image its own size.*"height": H, "width": W'):
        load_classifier(folder, data.label_names, task=TASK)


def test_postprocessing_travels_in_the_processor_config_and_is_checked(tmp_path: Path, data: Any) -> None:
    """The settings are a key of preprocessor_config.json that the processor keeps through load and save (so
    every stage's copy carries it); bad values are one line."""
    from transformers import AutoImageProcessor

    from trt_edge.tasks.object_detection import POSTPROCESSING_KEY, postprocessing, write_postprocessing

    folder = write_detection_model(tmp_path / "yolos", "yolos", data.label_names)
    assert postprocessing(AutoImageProcessor.from_pretrained(folder)) == {"threshold": 0.5, "top_k": 100}
    write_postprocessing(folder, {"threshold": 0.3, "top_k": 5})
    AutoImageProcessor.from_pretrained(folder).save_pretrained(tmp_path / "copy")
    assert postprocessing(AutoImageProcessor.from_pretrained(tmp_path / "copy")) == {"threshold": 0.3, "top_k": 5}
    config = json.loads((folder / "preprocessor_config.json").read_text())
    config[POSTPROCESSING_KEY] = {"threshold": 2}
    (folder / "preprocessor_config.json").write_text(json.dumps(config))
    with pytest.raises(TrtEdgeError, match=r"threshold must be a number in \[0, 1\], got 2"):
        postprocessing(AutoImageProcessor.from_pretrained(folder))


def test_a_detr_layer_subset_cuts_the_encoder_and_keeps_the_decoder(tmp_path: Path, data: Any) -> None:
    """`distill.student.layers` on DETR keeps the listed encoder layers and the whole decoder; the student saves
    and reloads as the same model."""
    import torch

    from trt_edge.distill.student import student_from_teacher
    from trt_edge.modeling.folder import save_classifier
    from trt_edge.tasks.models import load_classifier

    teacher = load_classifier(write_detection_model(tmp_path / "detr", "detr", data.label_names, encoder_layers=4),
                              data.label_names, task=TASK)
    student, kept = student_from_teacher(teacher.model, [0, 2])
    assert kept == [0, 2] and (student.config.encoder_layers, student.config.decoder_layers) == (2, 2)
    assert student.model.encoder.layers[1] is not teacher.model.model.encoder.layers[1]
    save_classifier(student, teacher.preprocessor, tmp_path / "student")
    again = load_classifier(tmp_path / "student", data.label_names, task=TASK)
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(student(pixel_values=pixels).pred_boxes, again.model(pixel_values=pixels).pred_boxes)
