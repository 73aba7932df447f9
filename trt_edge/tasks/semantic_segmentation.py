"""Semantic segmentation: an image in, one class per pixel out, bound as `ADAPTER` (a `tasks.adapter.TaskAdapter`).

What it shares with image classification (the same functions, not copies): decoding, channel matching, the
model's own image processor (`AutoImageProcessor` from the model folder), the traced example, the ONNX and
runtime feeds, fitting a model to its processor's size. What differs is the label and the output:

* an example's label is its **mask** (uint8 [H, W], one class index per pixel; `load_segmentation` reads and
  checks them), not a class index; the classes.json ignore index is normalised to `IGNORE_INDEX` on loading
  so every loss and metric below uses one value;
* the output is per-pixel class logits [batch, classes, h, w] at the model's output stride (SegFormer 1/4);
  for metrics they are upsampled bilinearly to each gold mask's own size, then argmax: mIoU, pixel accuracy
  and per-class IoU over the split (`dense_metrics.segmentation_scores`, torchmetrics), the ignore pixels
  left out;
* for training, masks are resized to the processor's input size with nearest-neighbour (class indices must
  never be interpolated) when a batch is stacked, and the logits upsampled bilinearly to it;
* a child model is judged against its parent by the paired bootstrap over images of the per-image mIoU
  (mean per-image points, not the split's pooled mIoU: a paired interval needs a score per image);
* distillation is pixel-wise (Liu et al., CVPR 2019, "Structured Knowledge Distillation for Semantic
  Segmentation", the pixel-wise term): (1 - alpha) x CE(mask, ignore index) + alpha x T^2 x KL between the
  teacher's and the student's softened class distributions at every pixel, averaged over pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.log import get_logger
from trt_edge.tasks import image_classification as image
from trt_edge.tasks.adapter import TaskAdapter
from trt_edge.tasks.classification import UNLABELLED, kd_kl_loss
from trt_edge.tasks.config import DataConfig
from trt_edge.tasks.data import ClassificationData, Split, split_examples
from trt_edge.tasks.segmentation_data import SegmentationData, load_segmentation
from trt_edge.tasks.spec import SEMANTIC_SEGMENTATION as SPEC
from trt_edge.tasks.spec import TaskSpec

log = get_logger("data")

# Every mask's unlabelled pixels after loading (classes.json's `ignore_index` mapped to it): 255 is above
# every class (`read_classes` allows at most 255 classes below the ignore index), and torch's losses and
# torchmetrics take it as `ignore_index`.
IGNORE_INDEX = 255
LABELS = "labels"


class Masks(list):  # type: ignore[type-arg]
    """A split's masks (a list of uint8 [H, W] arrays) that knows its class names, so `score` can name the
    per-class IoU (`iou_NAME`); a plain list of masks gets index names (`iou_0`, ...)."""

    def __init__(self, masks: Sequence[np.ndarray], class_names: Sequence[str]) -> None:
        super().__init__(masks)
        self.class_names = list(class_names)


# --- data -------------------------------------------------------------------------------------------

def _normalised_masks(data: SegmentationData) -> list[np.ndarray]:
    ignore = data.classes.ignore_index
    if ignore == IGNORE_INDEX:
        return list(data.masks)
    return [np.where(m == ignore, IGNORE_INDEX, m).astype(np.uint8) for m in data.masks]


def _split(images: list[np.ndarray], masks: list[np.ndarray], names: list[str]) -> Split:
    return Split(images, Masks(masks, names))


def _take(size: float, count: int) -> int:
    """A split folder's share: a count (>= 1) caps it, a fraction keeps the folder whole."""
    return min(count, int(size)) if size >= 1 else count


def load_data(cfg: DataConfig) -> ClassificationData:
    """Images and masks of `task.data.source` (`load_segmentation`: every bad input refused in one line
    before any training). A flat folder is split by seed (`split_examples`' seeded order, the sizes of
    `task.data`); a folder of train/validation/test folders keeps its splits (a count size caps a split,
    a fraction keeps it whole). `label_names` are classes.json's names; the labels are the masks."""
    if cfg.source.startswith("demo:"):
        raise TrtEdgeError(f"{cfg.source}: semantic segmentation has no packaged demo data; make the demo scenes "
                           "with `trt-edge scenes --out DIR --kind segmentation` and set task.data.source: DIR")
    splits = load_segmentation(cfg.source)
    first = next(iter(splits.values()))
    names = list(first.classes.names)

    def decoded(data: SegmentationData, order: Sequence[int]) -> Split:
        masks = _normalised_masks(data)
        return _split([data.image(i) for i in order], [masks[i] for i in order], names)

    if "all" in splits:
        data = splits["all"]
        # The seeded draw of the text and image tasks, on example indices (one placeholder class: no
        # stratification by a label a mask does not have).
        drawn = split_examples(list(range(len(data))), ["all"] * len(data), cfg, Path(cfg.source).name,
                               labelled=False)
        parts = {name: decoded(data, drawn.split(name).examples) for name in ("train", "validation", "test")}
        unused: list[Any] = [data.image(int(i)) for i in drawn.unused]
    else:
        missing = [n for n in ("train", "validation", "test") if n not in splits]
        if missing:
            raise TrtEdgeError(f"{cfg.source}: has {', '.join(sorted(splits))} folders but no {', '.join(missing)}; "
                               "give all three split folders, or one folder of images/ and masks/ to split by seed")
        sizes = {"train": cfg.train_size, "validation": cfg.validation_size, "test": cfg.test_size}
        parts = {name: decoded(splits[name], range(_take(sizes[name], len(splits[name]))))
                 for name in ("train", "validation", "test")}
        unused = []
    for name in ("validation", "test"):
        _check_one_size(parts[name], name, cfg.source)
    out = ClassificationData(names, parts["train"], parts["validation"], parts["test"], unused=unused)
    log.info("data %s: %d classes %s; train %d, validation %d, test %d images", Path(cfg.source).name, len(names),
             names, len(out.train), len(out.validation), len(out.test))
    return out


def _check_one_size(split: Split, name: str, source: str) -> None:
    """Refuse, before any training, a validation or test split of mixed image sizes: the stages save a split's
    masks as one array (`stats.save_predictions`, the report's and later stages' paired scores). Training
    images may differ (masks are resized per batch)."""
    sizes = sorted({tuple(np.asarray(m).shape) for m in split.labels})
    if len(sizes) > 1:
        (h1, w1), (h2, w2) = sizes[0], sizes[-1]
        raise TrtEdgeError(f"{source}: the {name} split holds images of {len(sizes)} sizes ({w1}x{h1} ... {w2}x{h2}); "
                           f"its masks are scored and saved as one array: give the {name} images one size")


# --- batching and prediction ------------------------------------------------------------------------

def resize_masks(masks: Any, size: tuple[int, int]) -> Any:
    """uint8/long masks [B, H, W] (a tensor) to `size` with nearest-neighbour ("nearest-exact": pixel
    centres, no half-pixel shift), as int64; class indices are never interpolated."""
    import torch
    import torch.nn.functional as F

    if tuple(masks.shape[-2:]) == tuple(size):
        return masks.long()
    resized = F.interpolate(masks[:, None].float(), size=size, mode="nearest-exact")
    return resized[:, 0].round().to(torch.int64)


def collate(features: Sequence[dict[str, Any]], pad_token_id: int = 0) -> dict[str, Any]:
    """Stack a batch; masks (`labels`) are resized (nearest) to the pixels' height and width first, so a
    data set of mixed image sizes stacks and the loss compares like with like. A transfer-set image (its
    label the scalar `UNLABELLED`: no mask) gets a mask of ignore pixels: only the teacher's logits train
    on it."""
    import torch

    del pad_token_id
    if not features or LABELS not in features[0]:
        return image.collate(features)
    pixels = torch.stack([torch.as_tensor(np.asarray(f[image.INPUT])) for f in features])
    size = (int(pixels.shape[-2]), int(pixels.shape[-1]))
    masks = []
    for feature in features:
        mask = torch.as_tensor(np.asarray(feature[LABELS]))
        if mask.dim() == 0 and int(mask) == UNLABELLED:
            masks.append(torch.full((1, *size), IGNORE_INDEX, dtype=torch.int64))
        elif mask.dim() == 2:
            masks.append(resize_masks(mask[None], size))
        else:
            raise TrtEdgeError(f"a segmentation example's label must be its mask (H x W class indices), got shape "
                               f"{list(mask.shape)}")
    labels = torch.cat(masks)
    batch = {image.INPUT: pixels, LABELS: labels}
    rest = [k for k in features[0] if k not in batch]
    batch.update({k: torch.stack([torch.as_tensor(np.asarray(f[k])) for f in features]) for k in rest})
    return batch


def upsample_logits(logits: Any, size: tuple[int, int]) -> Any:
    """Logits [B, K, h, w] (a tensor) to `size` bilinearly (align_corners False, as transformers'
    post-processing and SegFormer's own loss do)."""
    import torch.nn.functional as F

    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def predicted_masks(outputs: np.ndarray, sizes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """One predicted class map per example, at `sizes[i]` (its gold mask's): the logits upsampled, argmax."""
    import torch

    out: list[np.ndarray] = []
    for logits, size in zip(outputs, sizes, strict=True):
        up = upsample_logits(torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))[None], size)
        out.append(up[0].argmax(0).numpy().astype(np.int64))
    return out


def _scores(outputs: np.ndarray, labels: Sequence[Any], num_labels: int) -> Any:
    from trt_edge.tasks.dense_metrics import segmentation_scores

    outputs = np.asarray(outputs)
    if outputs.ndim != 4:
        raise ValueError(f"segmentation outputs are [examples, classes, h, w], got shape {list(outputs.shape)}")
    if len(outputs) != len(labels):
        raise ValueError(f"{len(outputs)} outputs for {len(labels)} masks")
    names = getattr(labels, "class_names", None) or [str(k) for k in range(num_labels or outputs.shape[1])]
    golds = [np.asarray(m) for m in labels]
    preds = predicted_masks(outputs, [(int(g.shape[0]), int(g.shape[1])) for g in golds])
    return segmentation_scores(preds, golds, names, IGNORE_INDEX)


def pixel_kd_loss(student_logits: Any, teacher_logits: Any, temperature: float) -> Any:
    """Pixel-wise distillation (Liu et al. 2019): Hinton's softened KL x T^2 (`kd_kl_loss`) at every pixel of
    the student's logits [B, K, h, w], averaged over pixels; teacher logits of another output stride are
    resized bilinearly to the student's first."""
    teacher = upsample_logits(teacher_logits.float().to(student_logits.device), tuple(student_logits.shape[-2:]))
    k = student_logits.shape[1]
    return kd_kl_loss(student_logits.permute(0, 2, 3, 1).reshape(-1, k),
                      teacher.permute(0, 2, 3, 1).reshape(-1, k), temperature)


class SemanticSegmentationAdapter:
    """The semantic-segmentation task as a `TaskAdapter` (see the module docstring)."""

    spec: TaskSpec = SPEC
    text_examples = False
    builds_from_config = True  # `write_processor_config` writes a processor from the model config
    uses_labels = True  # trains on the masks and is judged against them

    @property
    def has_sequence_axis(self) -> bool:
        return self.spec.has_sequence_axis

    def load_data(self, cfg: DataConfig) -> ClassificationData:
        return load_data(cfg)

    def display_examples(self, examples: Sequence[Any]) -> list[str] | None:
        return None

    def encode(self, preprocessor: Any, examples: Sequence[Any], max_length: int) -> image.Encoded:
        return image.encode(preprocessor, examples, max_length)

    def collate(self, features: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
        return collate(features, pad_token_id)

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return image.model_inputs(batch)

    def predict_logits(self, model: Any, encoded: Any, batch_size: int = 64, device: Any = None) -> np.ndarray:
        """The per-pixel logits [N, classes, h, w] at the model's output stride (not upsampled)."""
        from trt_edge.tasks.text_classification import predict_logits as predict

        return predict(model, encoded, batch_size, device, collate_fn=collate, output=SPEC.output)

    def score(self, outputs: np.ndarray, labels: Sequence[Any], num_labels: int,
              reference: np.ndarray | None = None) -> dict[str, float]:
        """mIoU (`miou`, also `score`: what picks a best epoch), pixel accuracy and `iou_NAME` per class of
        the logits upsampled to each mask's size. A class absent from gold and prediction has no IoU and no
        `iou_NAME` key (every figure a stage records is a number)."""
        del reference
        metrics = {k: float(v) for k, v in _scores(outputs, labels, num_labels).metrics().items() if v is not None}
        metrics["score"] = metrics[SPEC.metric]
        return metrics

    def evaluate(self, model: Any, encoded: Any, labels: Sequence[Any], num_labels: int,
                 batch_size: int = 64, reference: np.ndarray | None = None) -> tuple[dict[str, float], np.ndarray]:
        logits = self.predict_logits(model, encoded, batch_size)
        return self.score(logits, labels, num_labels, reference), logits

    def example_scores(self, logits: np.ndarray, labels: Sequence[Any],
                       reference: np.ndarray | None = None) -> np.ndarray:
        """Per image, its own mIoU (`dense_metrics`' `image_miou`: the classes in its mask or prediction)."""
        del reference
        scores: np.ndarray = _scores(logits, labels, 0).image_miou
        return scores

    def judge(self, gate: str, compares: str, ref_outputs: np.ndarray, new_outputs: np.ndarray,
              labels: Sequence[Any], budget_points: float | None, default_budget_points: float | None = None,
              reference: np.ndarray | None = None) -> Any:
        """The paired gate: the drop in mean per-image mIoU points (the parent's per-image mIoU minus the
        child's, averaged over images, x100) with a paired bootstrap 95% interval over images."""
        from trt_edge import stats

        ref = self.example_scores(ref_outputs, labels, reference)
        new = self.example_scores(new_outputs, labels, reference)
        return stats.judge_scores(gate, compares, ref, new, budget_points, default_budget_points,
                                  unit="mean per-image mIoU points")

    def output_loss(self, student_out: Any, labels: Any, teacher_outputs: Any, *, alpha: float,
                    temperature: float, neighbour_weight: float = 0.0) -> tuple[Any, dict[str, float]]:
        """(1 - alpha) x CE(masks, ignore index) on the logits upsampled to the masks' size + alpha x the
        pixel-wise KD (`pixel_kd_loss`) to the teacher's logits. A batch with no labelled pixel has no CE
        term. No neighbour term: `neighbour_weight` is not used."""
        import torch.nn.functional as F

        del neighbour_weight
        logits = getattr(student_out, SPEC.output).float()
        masks = labels.long()
        masks = masks.masked_fill(masks == UNLABELLED, IGNORE_INDEX)
        up = upsample_logits(logits, (int(masks.shape[-2]), int(masks.shape[-1])))
        labelled = masks != IGNORE_INDEX
        ce = F.cross_entropy(up, masks, ignore_index=IGNORE_INDEX) if bool(labelled.any()) else up.sum() * 0.0
        parts = {"ce": float(ce.detach())}
        loss = (1 - alpha) * ce
        if teacher_outputs is not None and alpha > 0:
            kd = pixel_kd_loss(logits, teacher_outputs, temperature)
            parts["kd"] = float(kd.detach())
            loss = loss + alpha * kd
        return loss, parts

    def example_inputs(self, model_config: Any, names: Sequence[str], int32_inputs: bool, seed: int = 0,
                       preprocessor: Any = None) -> dict[str, Any]:
        return image.example_inputs(model_config, names, int32_inputs, seed, preprocessor)

    def feeds(self, preprocessor: Any, examples: Sequence[Any], max_length: int,
              input_names: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        return image.ADAPTER.feeds(preprocessor, examples, max_length, input_names)

    def fit_model(self, model: Any, preprocessor: Any, source: str = "the model") -> str | None:
        return image.fit_model(model, preprocessor, source)

    def preflight_model(self, folder: Path, preprocessor: Any, trust_remote_code: bool = False) -> str | None:
        return image.preflight_model(folder, preprocessor, trust_remote_code)

    def write_processor_config(self, folder: Path, model_config: Any) -> None:
        image.write_processor_config(folder, model_config)

    def example_seconds(self, preprocessor: Any) -> float | None:
        """None: images are not signals in time."""
        del preprocessor
        return None

    def runtime_feed(self, preprocessor: Any, examples: Sequence[Any], runner_inputs: Sequence[Any],
                     max_length: int, source: str = "the model") -> dict[str, np.ndarray]:
        return image.runtime_feed(preprocessor, examples, runner_inputs, source)


ADAPTER: TaskAdapter = SemanticSegmentationAdapter()
