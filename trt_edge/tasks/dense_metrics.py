"""Segmentation and detection metrics, computed by maintained libraries (never by hand).

Segmentation (torchmetrics' multiclass confusion matrix, with the ignore index left out):
- `miou`: mean over classes of IoU = TP / (TP + FP + FN), over the classes present in the gold masks or
  the predictions (a class absent from both is left out, as torchmetrics' `MulticlassJaccardIndex`
  does); background (class 0 of the demo scenes) is a class like any other.
- `pixel_accuracy`: share of labelled pixels whose predicted class is right.
- per-class IoU (`iou_NAME`), None for a class absent from both.
- per-image score (`image_miou`): the same mIoU computed on one image alone (classes present in that
  image's gold mask or prediction); the paired bootstrap over images (`trt_edge.stats`) compares these.

Detection (pycocotools' COCOeval, bbox):
- `map` = COCO mAP@[.5:.95] (area all, 100 detections), `map_50` = mAP@.5.
- per-image score (`image_ap`): COCOeval's AP@[.5:.95] accumulated over that one image (the mean over
  the categories its gold boxes hold; a detection of a category absent from the image's gold is not
  counted there, as COCOeval does per category). An image without gold boxes scores 1.0 when it has no
  detections and 0.0 otherwise (COCO leaves its AP undefined).

Inputs are plain arrays, so any adapter (PyTorch, ONNX Runtime, TensorRT outputs) can call these.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trt_edge.lazy import lazy_import


def _torchmetrics_cm() -> Any:
    module = lazy_import("torchmetrics.functional.classification",
                         "torchmetrics is not installed: `pip install torchmetrics`")
    return module.multiclass_confusion_matrix


def confusion_matrix(pred: np.ndarray, gold: np.ndarray, num_classes: int, ignore_index: int | None) -> np.ndarray:
    """[num_classes, num_classes] pixel counts (row: gold class, column: predicted), ignore pixels out."""
    import torch

    p, g = np.asarray(pred), np.asarray(gold)
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {p.shape} != mask shape {g.shape}")
    labelled = g if ignore_index is None else g[g != ignore_index]
    if labelled.size and (labelled.min() < 0 or labelled.max() >= num_classes):
        raise ValueError(f"mask class {int(labelled.max())} outside 0..{num_classes - 1} (and not the ignore index)")
    scored = p if ignore_index is None else p[g != ignore_index]  # what is predicted on ignore pixels is moot
    if scored.size and (scored.min() < 0 or scored.max() >= num_classes):
        bad = int(scored.max() if scored.max() >= num_classes else scored.min())
        raise ValueError(f"predicted class {bad} outside 0..{num_classes - 1}")
    matrix = _torchmetrics_cm()(torch.from_numpy(p.astype(np.int64).ravel()),
                                torch.from_numpy(g.astype(np.int64).ravel()), num_classes,
                                ignore_index=ignore_index, validate_args=False)
    counts: np.ndarray = matrix.numpy().astype(np.int64)
    return counts


def _iou(matrix: np.ndarray) -> np.ndarray:
    """Per-class IoU from a confusion matrix; NaN for a class absent from gold and prediction."""
    tp = np.diag(matrix).astype(np.float64)
    union = matrix.sum(0) + matrix.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


@dataclass
class SegmentationScores:
    """Segmentation metrics of one model on one split (see the module docstring for definitions)."""

    miou: float
    pixel_accuracy: float
    class_iou: dict[str, float | None]
    image_miou: np.ndarray
    confusion: np.ndarray

    def metrics(self) -> dict[str, Any]:
        """The figures a stage records: miou, pixel_accuracy and iou_NAME per class."""
        out: dict[str, Any] = {"miou": self.miou, "pixel_accuracy": self.pixel_accuracy}
        out.update({f"iou_{name}": value for name, value in self.class_iou.items()})
        return out


def segmentation_scores(preds: Sequence[np.ndarray], golds: Sequence[np.ndarray], class_names: Sequence[str],
                        ignore_index: int | None = 255) -> SegmentationScores:
    """mIoU, pixel accuracy, per-class IoU and the per-image mIoU of predicted class maps ([H, W] ints, one
    per image, each the size of its gold mask) against the gold masks."""
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predictions for {len(golds)} masks")
    k = len(class_names)
    total = np.zeros((k, k), dtype=np.int64)
    per_image = np.zeros(len(golds), dtype=np.float64)
    for i, (pred, gold) in enumerate(zip(preds, golds, strict=True)):
        matrix = confusion_matrix(pred, gold, k, ignore_index)
        total += matrix
        ious = _iou(matrix)
        per_image[i] = float(np.nanmean(ious)) if np.isfinite(ious).any() else 1.0  # all pixels ignored
    ious = _iou(total)
    labelled = int(total.sum())
    return SegmentationScores(
        miou=float(np.nanmean(ious)) if np.isfinite(ious).any() else 0.0,
        pixel_accuracy=float(np.trace(total) / labelled) if labelled else 0.0,
        class_iou={name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, ious, strict=True)},
        image_miou=per_image, confusion=total)


# --- detection --------------------------------------------------------------------------------------

@dataclass
class Detections:
    """One image's predicted objects: `boxes` [N, 4] xyxy pixels, `scores` [N], `categories` [N] (COCO
    category ids, the gold file's own)."""

    boxes: np.ndarray
    scores: np.ndarray
    categories: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class GoldBoxes:
    """One image's gold objects as COCOeval needs them (`coco.DetectionImage` adds its file)."""

    id: int
    width: int
    height: int
    boxes: np.ndarray
    categories: np.ndarray
    iscrowd: np.ndarray
    areas: np.ndarray


@dataclass
class DetectionScores:
    """Detection metrics of one model on one split (see the module docstring for definitions)."""

    map: float
    map_50: float
    image_ap: np.ndarray

    def metrics(self) -> dict[str, float]:
        return {"map": self.map, "map_50": self.map_50}


def _xywh(box: Sequence[float]) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def _coco_gt(golds: Sequence[Any], categories: dict[int, str]) -> Any:
    coco_module = lazy_import("pycocotools.coco", "pycocotools is not installed: `pip install pycocotools`")
    annotations: list[dict[str, Any]] = []
    for image in golds:
        for box, cid, crowd, area in zip(image.boxes, image.categories, image.iscrowd, image.areas, strict=True):
            annotations.append({"id": len(annotations) + 1, "image_id": int(image.id), "category_id": int(cid),
                                "bbox": _xywh(box), "area": float(area), "iscrowd": int(bool(crowd))})
    gt = coco_module.COCO()
    gt.dataset = {"images": [{"id": int(im.id), "width": int(im.width), "height": int(im.height)} for im in golds],
                  "annotations": annotations,
                  "categories": [{"id": int(c), "name": n} for c, n in sorted(categories.items())]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def _mean_precision(precision: np.ndarray, iou: int | None = None) -> float:
    """COCOeval's summary: mean precision over recall, categories (area all, last maxDets), -1s left out."""
    p = precision[:, :, :, 0, -1] if iou is None else precision[iou, :, :, 0, -1]
    valid = p[p > -1]
    return float(valid.mean()) if valid.size else -1.0


def _one_image(evaluator: Any, image_id: int) -> Any:
    """A shallow copy of an evaluated COCOeval restricted to one image, accumulated: its `evalImgs` are
    the image's entries of the full evaluation (`accumulate(p)` with other imgIds would index them
    wrongly: it numbers the requested images, not their place in the evaluation)."""
    pe = evaluator._paramsEval
    images, areas = len(pe.imgIds), len(pe.areaRng)
    cats = len(pe.catIds) if pe.useCats else 1
    j = list(pe.imgIds).index(image_id)
    one = copy.copy(evaluator)
    one.params, one._paramsEval = copy.copy(evaluator.params), copy.copy(pe)
    one.params.imgIds = one._paramsEval.imgIds = [image_id]
    one.evalImgs = [evaluator.evalImgs[k * areas * images + a * images + j] for k in range(cats)
                    for a in range(areas)]
    one.accumulate()
    return one


def detection_scores(golds: Sequence[Any], predictions: Sequence[Detections],
                     categories: dict[int, str]) -> DetectionScores:
    """COCO mAP@[.5:.95], mAP@.5 and per-image AP of `predictions` (one per gold image, same order) against
    `golds` (`coco.DetectionImage`s or `GoldBoxes`), with pycocotools' COCOeval."""
    if len(golds) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} images")
    eval_module = lazy_import("pycocotools.cocoeval", "pycocotools is not installed: `pip install pycocotools`")
    gt = _coco_gt(golds, categories)
    results = []
    for image, det in zip(golds, predictions, strict=True):
        for box, score, cid in zip(det.boxes, det.scores, det.categories, strict=True):
            results.append({"image_id": int(image.id), "category_id": int(cid), "bbox": _xywh(box),
                            "score": float(score)})
    empty = np.array([1.0 if len(g.boxes) == 0 else 0.0 for g in golds])
    if not results:  # COCO's loadRes refuses an empty list; nothing detected scores 0 (or 1 on empty images)
        return DetectionScores(0.0, 0.0, empty)
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        evaluator = eval_module.COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        precision = evaluator.eval["precision"]
        overall, at_50 = _mean_precision(precision), _mean_precision(precision, 0)
        per_image = np.zeros(len(golds))
        for i, image in enumerate(golds):
            if len(image.boxes) == 0:
                per_image[i] = 1.0 if len(predictions[i]) == 0 else 0.0
                continue
            per_image[i] = max(_mean_precision(_one_image(evaluator, int(image.id)).eval["precision"]), 0.0)
    return DetectionScores(max(overall, 0.0), max(at_50, 0.0), per_image)
