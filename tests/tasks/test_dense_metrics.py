"""Issue 28's metrics: mIoU / pixel accuracy from torchmetrics, COCO mAP from pycocotools, and the per-image
scores the paired bootstrap over images compares. Contracts, not one machine's numerics: a perfect
prediction scores 1, small cases give the library's own value, ignore pixels count nowhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trt_edge.tasks.dense_metrics import Detections, GoldBoxes, detection_scores, segmentation_scores

NAMES = ["background", "cat", "dog", "bird"]


def _masks(seed: int = 0, n: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    masks = [rng.integers(0, 3, (12, 10)).astype(np.uint8) for _ in range(n)]  # class 3 never occurs
    for mask in masks:
        mask[0, :4] = 255
    return masks


def test_a_perfect_segmentation_scores_one() -> None:
    masks = _masks()
    scores = segmentation_scores(masks, masks, NAMES)
    assert scores.miou == 1.0 and scores.pixel_accuracy == 1.0
    assert scores.class_iou["bird"] is None  # absent from gold and prediction: left out, not 0
    np.testing.assert_array_equal(scores.image_miou, np.ones(4))


def test_segmentation_matches_torchmetrics_and_ignores_ignore_pixels() -> None:
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

    golds = _masks(0)
    rng = np.random.default_rng(1)
    preds = [np.where(rng.random(g.shape) < 0.3, rng.integers(0, 4, g.shape), g).astype(np.int64) for g in golds]
    for p in preds:
        p[0, :4] = 0
    scores = segmentation_scores(preds, golds, NAMES, ignore_index=255)
    p = torch.from_numpy(np.stack(preds)).long()
    g = torch.from_numpy(np.stack(golds).astype(np.int64))
    jaccard = MulticlassJaccardIndex(num_classes=4, ignore_index=255, average="macro")(p, g)
    per_class = MulticlassJaccardIndex(num_classes=4, ignore_index=255, average="none")(p, g)
    accuracy = MulticlassAccuracy(num_classes=4, ignore_index=255, average="micro")(p, g)
    assert scores.miou == pytest.approx(float(jaccard))
    assert scores.pixel_accuracy == pytest.approx(float(accuracy))
    assert [scores.class_iou[n] for n in NAMES] == pytest.approx([float(v) for v in per_class])
    assert 0 < scores.miou < 1
    # whatever is predicted on ignore pixels changes nothing
    for pred in preds:
        pred[0, :4] = 3
    again = segmentation_scores(preds, golds, NAMES, ignore_index=255)
    assert again.metrics() == scores.metrics()
    np.testing.assert_array_equal(again.image_miou, scores.image_miou)
    # the per-image score is the same mIoU on that image alone
    for i in range(len(golds)):
        alone = segmentation_scores(preds[i:i + 1], golds[i:i + 1], NAMES, ignore_index=255)
        assert scores.image_miou[i] == pytest.approx(alone.miou)


def test_segmentation_refuses_mismatched_inputs() -> None:
    golds = _masks()
    with pytest.raises(ValueError, match="shape"):
        segmentation_scores([g[:5] for g in golds], golds, NAMES)
    with pytest.raises(ValueError, match="outside"):
        segmentation_scores([np.full_like(g, 7) for g in golds], golds, NAMES)
    with pytest.raises(ValueError, match="mask class 255"):
        segmentation_scores(golds, golds, NAMES, ignore_index=None)


def _gold(image_id: int, boxes: list[list[float]], categories: list[int]) -> GoldBoxes:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return GoldBoxes(image_id, 100, 80, b, np.asarray(categories, dtype=np.int64), np.zeros(len(b), bool),
                     (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))


CATEGORIES = {1: "cup", 2: "plate"}


def test_a_perfect_detection_scores_one() -> None:
    golds = [_gold(1, [[10, 10, 40, 50], [50, 20, 90, 70]], [1, 2]), _gold(2, [[0, 0, 30, 30]], [2])]
    preds = [Detections(g.boxes, np.full(len(g.boxes), 0.9), g.categories) for g in golds]
    scores = detection_scores(golds, preds, CATEGORIES)
    assert scores.map == pytest.approx(1.0) and scores.map_50 == pytest.approx(1.0)
    np.testing.assert_allclose(scores.image_ap, [1.0, 1.0])


def test_detection_known_case_and_per_image_scores() -> None:
    # One gold box 40x40 and a prediction shifted by 8 px: IoU = 32*40 / (2*1600 - 32*40) = 0.667, so it
    # matches at the IoU thresholds .50, .55, .60, .65 and misses at .70 ... .95: AP@[.5:.95] = 4/10.
    golds = [_gold(1, [[10, 10, 50, 50]], [1]), _gold(2, [[20, 20, 60, 60]], [2]), _gold(3, [], [])]
    preds = [Detections(np.array([[18.0, 10, 58, 50]]), np.array([0.8]), np.array([1])),
             Detections(np.array([[20.0, 20, 60, 60]]), np.array([0.7]), np.array([1])),  # wrong class
             Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))]
    scores = detection_scores(golds, preds, CATEGORIES)
    # cup: AP 0.4 (at .5: 1.0); plate: its one gold box is missed, AP 0; the mean over both categories
    assert scores.map == pytest.approx(0.2, abs=1e-6) and scores.map_50 == pytest.approx(0.5, abs=1e-6)
    # per image: image 1 alone has AP 0.4, image 2 (its plate missed) 0, image 3 (nothing, nothing found) 1
    np.testing.assert_allclose(scores.image_ap, [0.4, 0.0, 1.0], atol=1e-6)


def test_detection_with_no_predictions_scores_zero() -> None:
    golds = [_gold(1, [[10, 10, 50, 50]], [1]), _gold(2, [], [])]
    empty = Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))
    scores = detection_scores(golds, [empty, empty], CATEGORIES)
    assert (scores.map, scores.map_50) == (0.0, 0.0)
    np.testing.assert_array_equal(scores.image_ap, [0.0, 1.0])
