"""Object detection: an image in, a fixed set of predicted objects out, bound as `ADAPTER` (a
`tasks.adapter.TaskAdapter`).

The models are DETR-style set predictors (`AutoModelForObjectDetection`: DETR, YOLOS): per image `queries`
object slots, each with class logits over the classes plus a last "no object" class (`logits` [B, Q, K+1])
and a box (`pred_boxes` [B, Q, 4], normalised cx, cy, w, h). What it shares with image classification (the
same functions, not copies): decoding, channel matching, the model's own image processor, the traced
example, the ONNX and runtime feeds. What differs:

* an example's label is its gold objects: a float32 array [n, 6] of rows (class index, cx, cy, w, h
  normalised to the image, iscrowd), made from `tasks.coco` (every bad input refused there); the split's
  labels (`Objects`) also know each image's pixel size and the class names. Normalised boxes are what
  transformers' detection losses take, and they are unchanged by the processor's resize: the processor
  must resize the whole image to one fixed size (no crop; `check_processor`), so a box means the same
  pixels before and after;
* a model's output for one image is ONE array [Q, K+1+4]: the logits and the box side by side (the spec's
  packed `detections`, also the exported graph's one output), so every stage that keeps one output per
  example (predictions, gates, calibration candidates, the bundle) keeps both;
* scoring decodes them as transformers' `post_process_object_detection` does (softmax, the best real class
  per query, cx/cy/w/h to x1/y1/x2/y2 scaled to the image's own pixels: `decode`), keeps the `MAX_DETECTIONS`
  best per image and asks pycocotools for COCO mAP@[.5:.95] (`map`, also `score`) and mAP@.5 (`map_50`)
  (`dense_metrics.detection_scores`); per-image AP is the paired bootstrap's score (`judge`);
* training: the model's own set loss, transformers' `HungarianMatcher` + `ImageLoss` with DETR's weights
  (CE with a down-weighted "no object" class, L1 and generalised IoU on matched boxes), on the gold boxes;
  distillation after the Hungarian-matching logits distillation of DETRDistill (Chang et al., ICCV 2023)
  in its pseudo-label form: the teacher's confident predictions (best-class probability >=
  `KD_CONFIDENCE`) become targets of the same set loss, matched to the student's queries by the same
  matcher, plus T^2 x KL between the teacher's and the student's softened class distributions on the
  matched pairs: (1 - alpha) x gold + alpha x KD. A transfer-set image (no gold) trains on the KD term alone.

Post-processing travels with the model: the `trt_edge_postprocessing` key (`threshold`, `top_k`) of its
`preprocessor_config.json`, which transformers' image processors keep through every load and save, so each
stage's copy and the on-device bundle carry it; `trt-edge run --image` reads it (`postprocessing`).
"""

from __future__ import annotations

import functools
import json
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
from trt_edge.tasks.spec import OBJECT_DETECTION as SPEC
from trt_edge.tasks.spec import TaskSpec

log = get_logger("data")

LABELS = "labels"
LOGITS, BOXES = (name for name, _ in SPEC.packed_outputs)  # the model's "logits" and "pred_boxes"
BOX_SIZE = int(SPEC.packed_outputs[1][1] or 0)  # the last 4 columns of a packed output
# One gold object: class index, cx, cy, w, h (normalised to the image), iscrowd.
OBJECT_COLUMNS = 6
PAD = -1.0  # the class of a padding row (`Objects.to_array`)
# COCO's maxDets: the best detections per image that mAP counts.
MAX_DETECTIONS = 100
# The teacher's predictions that become distillation targets: best real-class probability at least this.
KD_CONFIDENCE = 0.5
# The set loss's matching costs, "no object" class weight and loss weights: DETR's (Carion et al. 2020), read
# from transformers' DetrConfig defaults (YolosConfig's are the same) by `set_loss_weights`.
SET_LOSS_KEYS = ("class_cost", "bbox_cost", "giou_cost", "eos_coefficient", "bbox_loss_coefficient",
                 "giou_loss_coefficient")
POSTPROCESSING_KEY = "trt_edge_postprocessing"  # in preprocessor_config.json
PREPROCESSOR_FILE = SPEC.preprocessor.files[0]  # preprocessor_config.json
DEFAULT_POSTPROCESSING = {"threshold": 0.5, "top_k": MAX_DETECTIONS}


class Objects(list):  # type: ignore[type-arg]
    """A split's gold objects (one float32 [n, 6] array per image, see the module docstring) that knows each
    image's (height, width) in pixels and the class names, so `score` compares boxes in the image's own
    pixels. A plain list of arrays is scored in a nominal square frame (IoU, hence mAP, is unchanged by
    scaling an axis)."""

    def __init__(self, rows: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]],
                 class_names: Sequence[str]) -> None:
        super().__init__(rows)
        self.sizes = list(sizes)
        self.class_names = list(class_names)

    def __getitem__(self, index: Any) -> Any:
        """A slice stays `Objects` (the stages take the first n of a split), with its sizes."""
        if isinstance(index, slice):
            return Objects(list.__getitem__(self, index), self.sizes[index], self.class_names)
        return list.__getitem__(self, index)

    def to_array(self) -> np.ndarray:
        """One float32 array [images, most objects, 6] (`stats.save_predictions`): each image's rows, padded
        with rows of -1 (`rows` drops them when the array is scored)."""
        most = max((len(r) for r in self), default=0)
        out = np.full((len(self), most, OBJECT_COLUMNS), PAD, dtype=np.float32)
        for i, r in enumerate(self):
            out[i, :len(r)] = np.asarray(r, dtype=np.float32).reshape(-1, OBJECT_COLUMNS)
        return out


def rows(labels: Any) -> np.ndarray:
    """One image's object rows [n, 6], padding rows (a saved array's, class -1) dropped."""
    r = np.asarray(labels, dtype=np.float64).reshape(-1, OBJECT_COLUMNS)
    return r[r[:, 0] >= 0]


# --- data -------------------------------------------------------------------------------------------

def gold_rows(item: Any, label_index: dict[int, int]) -> np.ndarray:
    """A `coco.DetectionImage`'s objects as rows (class index, cx, cy, w, h normalised, iscrowd)."""
    rows = np.zeros((len(item.boxes), OBJECT_COLUMNS), dtype=np.float32)
    if len(item.boxes):
        boxes = np.asarray(item.boxes, dtype=np.float64)
        w, h = float(item.width), float(item.height)
        rows[:, 0] = [label_index[int(c)] for c in item.categories]
        rows[:, 1] = (boxes[:, 0] + boxes[:, 2]) / 2 / w
        rows[:, 2] = (boxes[:, 1] + boxes[:, 3]) / 2 / h
        rows[:, 3] = (boxes[:, 2] - boxes[:, 0]) / w
        rows[:, 4] = (boxes[:, 3] - boxes[:, 1]) / h
        rows[:, 5] = np.asarray(item.iscrowd, dtype=np.float32)
    return rows


def _take(size: float, count: int) -> int:
    """A split folder's share: a count (>= 1) caps it, a fraction keeps the folder whole."""
    return min(count, int(size)) if size >= 1 else count


def load_data(cfg: DataConfig) -> ClassificationData:
    """Images and gold objects of `task.data.source` (`coco.load_detection`: every bad input refused in one
    line before any training). One COCO folder is split by seed (`split_examples`' seeded order, the sizes
    of `task.data`); a folder of train/validation/test folders keeps its splits (a count size caps a split,
    a fraction keeps it whole). `label_names` are the categories in ascending id order."""
    from trt_edge.tasks.coco import DetectionData, load_detection

    if cfg.source.startswith("demo:"):
        raise TrtEdgeError(f"{cfg.source}: object detection has no packaged demo data; make the demo scenes "
                           "with `trt-edge scenes --out DIR --kind detection` and set task.data.source: DIR")
    splits = load_detection(cfg.source)
    first = next(iter(splits.values()))
    names, index = first.label_names, first.label_index()

    def part(data: DetectionData, order: Sequence[int]) -> Split:
        items = [data.images[int(i)] for i in order]
        return Split([it.image() for it in items],
                     Objects([gold_rows(it, index) for it in items], [(it.height, it.width) for it in items], names))

    if "all" in splits:
        data = splits["all"]
        drawn = split_examples(list(range(len(data))), ["all"] * len(data), cfg, Path(cfg.source).name,
                               labelled=False)
        parts = {name: part(data, drawn.split(name).examples) for name in ("train", "validation", "test")}
        unused: list[Any] = [data.images[int(i)].image() for i in drawn.unused]
    else:
        missing = [n for n in ("train", "validation", "test") if n not in splits]
        if missing:
            raise TrtEdgeError(f"{cfg.source}: has {', '.join(sorted(splits))} folders but no {', '.join(missing)}; "
                               "give all three split folders, or one COCO folder to split by seed")
        sizes = {"train": cfg.train_size, "validation": cfg.validation_size, "test": cfg.test_size}
        parts = {name: part(splits[name], range(_take(sizes[name], len(splits[name]))))
                 for name in ("train", "validation", "test")}
        unused = []
    out = ClassificationData(names, parts["train"], parts["validation"], parts["test"], unused=unused)
    log.info("data %s: %d classes %s; train %d, validation %d, test %d images", Path(cfg.source).name, len(names),
             names, len(out.train), len(out.validation), len(out.test))
    return out


# --- the processor and its post-processing -----------------------------------------------------------

def check_processor(processor: Any, source: str = "the model") -> None:
    """Refuse, in one line, an image processor that does not resize every image to one fixed size: the
    exported graph has a fixed height and width, and a gold box keeps its normalised coordinates only
    through a plain resize (a centre crop would cut objects; hub DETR processors' shortest/longest-edge
    resize gives each image its own size)."""
    if getattr(processor, "do_center_crop", False):
        raise TrtEdgeError(f"{source}: its image processor crops (do_center_crop); a detector's boxes must see the "
                           "whole image: set do_center_crop false in preprocessor_config.json")
    if image.processor_size(processor) is None:
        raise TrtEdgeError(f"{source}: its image processor gives each image its own size (size "
                           f"{getattr(processor, 'size', None)}); a detector here takes one fixed size: set size "
                           '{"height": H, "width": W} in preprocessor_config.json')


def postprocessing(processor: Any, source: str = "the model") -> dict[str, Any]:
    """The post-processing that travels with the model: the `trt_edge_postprocessing` key of its
    preprocessor_config.json (kept by transformers' processors through every load and save, so every stage's
    copy and the bundle carry it), else the defaults: `threshold` (least score a printed box has) and `top_k`
    (most boxes per image), checked."""
    out: dict[str, Any] = dict(DEFAULT_POSTPROCESSING)
    raw = getattr(processor, POSTPROCESSING_KEY, None)
    if raw is None:
        return out
    where = f"{source}: preprocessor_config.json {POSTPROCESSING_KEY}"
    if not isinstance(raw, dict) or set(raw) - set(out):
        raise TrtEdgeError(f"{where} must be an object with keys {sorted(out)}, got {raw!r}")
    out.update(raw)
    threshold, top_k = out["threshold"], out["top_k"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise TrtEdgeError(f"{where}: threshold must be a number in [0, 1], got {threshold!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise TrtEdgeError(f"{where}: top_k must be a whole number >= 1, got {top_k!r}")
    return out


def write_postprocessing(folder: Path, settings: dict[str, Any] | None = None) -> None:
    """Set `trt_edge_postprocessing` (the defaults updated by `settings`) in the folder's
    preprocessor_config.json (written by this kit: `write_processor_config`), atomically."""
    from trt_edge.files import atomic_write_text
    from trt_edge.guard import load_json

    path = Path(folder) / PREPROCESSOR_FILE
    config = load_json(path, "image processor config")
    config[POSTPROCESSING_KEY] = {**DEFAULT_POSTPROCESSING, **(settings or {})}
    atomic_write_text(path, json.dumps(config, indent=2, sort_keys=True) + "\n")


# --- outputs -----------------------------------------------------------------------------------------

def unpack(outputs: Any) -> tuple[Any, Any]:
    """(logits [.., Q, K+1], boxes [.., Q, 4]) of packed outputs."""
    if outputs.shape[-1] < BOX_SIZE + 2:
        raise ValueError(f"detection outputs are [.., queries, classes + 1 + 4], got shape {list(outputs.shape)}")
    return outputs[..., :-BOX_SIZE], outputs[..., -BOX_SIZE:]


def decode(outputs: np.ndarray, sizes: Sequence[tuple[int, int]], threshold: float = 0.0,
           top_k: int = MAX_DETECTIONS) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per image (boxes [n, 4] x1 y1 x2 y2 in its pixels, scores [n], class indices [n]): the math of
    transformers' `post_process_object_detection` (softmax over classes + "no object", the best real class
    per query, centre/size to corners scaled by the image's width and height), then the `top_k` best with a
    score >= `threshold`, best first."""
    out = []
    logits, boxes = unpack(np.asarray(outputs, dtype=np.float64))
    for lg, bx, (height, width) in zip(logits, boxes, sizes, strict=True):
        z = np.exp(lg - lg.max(-1, keepdims=True))
        prob = z / z.sum(-1, keepdims=True)
        classes, scores = prob[:, :-1].argmax(-1), prob[:, :-1].max(-1)
        cx, cy, w, h = bx.T
        corners = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * [width, height, width, height]
        keep = np.flatnonzero(scores >= threshold)
        keep = keep[np.argsort(-scores[keep], kind="stable")][:top_k]
        out.append((corners[keep], scores[keep], classes[keep].astype(np.int64)))
    return out


def _golds(labels: Sequence[Any]) -> tuple[list[Any], list[tuple[int, int]], list[str] | None]:
    """GoldBoxes per image (in its pixels when `labels` are `Objects`, else a nominal square frame)."""
    from trt_edge.tasks.dense_metrics import GoldBoxes

    sizes = getattr(labels, "sizes", None) or [(1000, 1000)] * len(labels)
    golds = []
    for i, (objects, (height, width)) in enumerate(zip(labels, sizes, strict=True)):
        r = rows(objects)
        cx, cy, w, h = r[:, 1] * width, r[:, 2] * height, r[:, 3] * width, r[:, 4] * height
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) if len(r) else np.zeros((0, 4))
        golds.append(GoldBoxes(i, int(width), int(height), boxes, r[:, 0].astype(np.int64), r[:, 5] > 0.5, w * h))
    return golds, list(sizes), getattr(labels, "class_names", None)


def _scores(outputs: np.ndarray, labels: Sequence[Any], num_labels: int) -> Any:
    from trt_edge.tasks.dense_metrics import Detections, detection_scores

    outputs = np.asarray(outputs)
    if outputs.ndim != 3:
        raise ValueError(f"detection outputs are [examples, queries, classes + 1 + 4], got {list(outputs.shape)}")
    if len(outputs) != len(labels):
        raise ValueError(f"{len(outputs)} outputs for {len(labels)} images")
    golds, sizes, names = _golds(labels)
    # The classes are the model's head's (the last axis less the box and "no object"), whatever `num_labels`
    # a caller passes (the CPU target passes an axis size); the names when the labels know as many.
    del num_labels
    classes = outputs.shape[-1] - BOX_SIZE - 1
    named = names is not None and len(names) == classes
    categories = {k: (names[k] if named and names else str(k)) for k in range(classes)}
    found = [Detections(b, s, c) for b, s, c in decode(outputs, sizes)]
    return detection_scores(golds, found, categories)


# --- batching, prediction and the loss -----------------------------------------------------------------

def targets(labels: Any) -> list[dict[str, Any] | None]:
    """transformers' detection targets per image ({class_labels, boxes}, crowd objects left out, as DETR's
    COCO preparation does), None for a transfer-set image (label `UNLABELLED`: no gold)."""
    import torch

    out: list[dict[str, Any] | None] = []
    for label in labels:
        given = torch.as_tensor(label)
        if given.dim() == 0:
            if int(given) != UNLABELLED:
                raise TrtEdgeError(f"a detection example's label must be its objects [n, {OBJECT_COLUMNS}], "
                                   f"got {given!r}")
            out.append(None)
            continue
        r = given.reshape(-1, OBJECT_COLUMNS).float()
        r = r[(r[:, 0] >= 0) & (r[:, 5] < 0.5)]
        out.append({"class_labels": r[:, 0].long(), "boxes": r[:, 1:5]})
    return out


def collate(features: Sequence[dict[str, Any]], pad_token_id: int = 0) -> dict[str, Any]:
    """Stack pixels (and teacher outputs); the labels stay one tensor per image (their object counts
    differ): `output_loss` turns them into transformers' targets."""
    import torch

    del pad_token_id
    if not features or LABELS not in features[0]:
        return image.collate(features)
    batch: dict[str, Any] = {LABELS: [torch.as_tensor(np.asarray(f[LABELS])) for f in features]}
    rest = [k for k in features[0] if k != LABELS]
    batch.update({k: torch.stack([torch.as_tensor(np.asarray(f[k])) for f in features]) for k in rest})
    return batch


class Packed:
    """A detector seen as a one-output model: `forward(...).detections` is the spec's packed output
    (`TaskSpec.model_output`), so the shared prediction loop (`text_classification.predict_logits`) collects
    logits and boxes together."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def parameters(self) -> Any:
        return self.model.parameters()

    @property
    def training(self) -> bool:
        return bool(self.model.training)

    def eval(self) -> Any:
        return self.model.eval()

    def train(self, mode: bool = True) -> Any:
        return self.model.train(mode)

    def __call__(self, **inputs: Any) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(**{SPEC.output: SPEC.model_output(self.model(**inputs))})


@functools.cache
def set_loss_weights() -> dict[str, float]:
    """DETR's matching costs and loss weights: the defaults of transformers' `DetrConfig` (no config is built)."""
    import inspect

    from transformers import DetrConfig

    params = inspect.signature(DetrConfig.__init__).parameters
    return {key: float(params[key].default) for key in SET_LOSS_KEYS}


def _set_loss(logits: Any, boxes: Any, goals: list[dict[str, Any]]) -> tuple[Any, Any]:
    """transformers' own DETR set loss (Hungarian matching, CE with the "no object" weight, L1, GIoU) of
    [B, Q, K+1] logits and [B, Q, 4] boxes against `goals`; returns (weighted loss, the matched indices)."""
    from transformers.loss.loss_for_object_detection import HungarianMatcher, ImageLoss

    w = set_loss_weights()
    matcher = HungarianMatcher(class_cost=w["class_cost"], bbox_cost=w["bbox_cost"], giou_cost=w["giou_cost"])
    criterion = ImageLoss(matcher=matcher, num_classes=int(logits.shape[-1]) - 1,
                          eos_coef=w["eos_coefficient"],  # type: ignore[no-untyped-call]
                          losses=["labels", "boxes"]).to(logits.device)
    parts = criterion({"logits": logits, "pred_boxes": boxes}, goals)
    loss = parts["loss_ce"] + w["bbox_loss_coefficient"] * parts["loss_bbox"] \
        + w["giou_loss_coefficient"] * parts["loss_giou"]
    return loss, matcher({"logits": logits, "pred_boxes": boxes}, goals)


def detection_kd_loss(logits: Any, boxes: Any, teacher: Any, temperature: float) -> Any:
    """The distillation term (module docstring): the teacher's confident predictions (packed [B, Q', K+5])
    as targets of the set loss, + T^2 x KL on each matched (student query, teacher query) pair."""
    import torch

    t_logits, t_boxes = unpack(teacher.float().to(logits.device))
    prob = t_logits.softmax(-1)[..., :-1]
    confident = prob.max(-1).values >= KD_CONFIDENCE
    goals = [{"class_labels": prob[i].argmax(-1)[confident[i]], "boxes": t_boxes[i][confident[i]]}
             for i in range(len(prob))]
    loss, matched = _set_loss(logits, boxes, goals)
    student_rows, teacher_rows = [], []
    for i, (s_idx, t_idx) in enumerate(matched):
        kept = torch.nonzero(confident[i]).flatten()[t_idx.to(logits.device)]
        student_rows.append(logits[i, s_idx.to(logits.device)])
        teacher_rows.append(t_logits[i, kept])
    s_rows, t_rows = torch.cat(student_rows), torch.cat(teacher_rows)
    if len(s_rows):
        loss = loss + kd_kl_loss(s_rows, t_rows, temperature)
    return loss


class ObjectDetectionAdapter:
    """The object-detection task as a `TaskAdapter` (see the module docstring)."""

    spec: TaskSpec = SPEC
    text_examples = False
    builds_from_config = True  # `write_processor_config` writes a processor from the model config
    uses_labels = True  # trains on the gold boxes and is judged against them

    @property
    def has_sequence_axis(self) -> bool:
        return self.spec.has_sequence_axis

    def load_data(self, cfg: DataConfig) -> ClassificationData:
        return load_data(cfg)

    def display_examples(self, examples: Sequence[Any]) -> list[str] | None:
        return None

    def encode(self, preprocessor: Any, examples: Sequence[Any], max_length: int) -> image.Encoded:
        check_processor(preprocessor)
        return image.encode(preprocessor, examples, max_length)

    def collate(self, features: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
        return collate(features, pad_token_id)

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return image.model_inputs(batch)

    def predict_logits(self, model: Any, encoded: Any, batch_size: int = 64, device: Any = None) -> np.ndarray:
        """The packed outputs [N, queries, classes + 1 + 4] (`pack`)."""
        from trt_edge.tasks.text_classification import predict_logits as predict

        return predict(Packed(model), encoded, batch_size, device, collate_fn=collate, output=SPEC.output)

    def score(self, outputs: np.ndarray, labels: Sequence[Any], num_labels: int,
              reference: np.ndarray | None = None) -> dict[str, float]:
        """COCO mAP@[.5:.95] (`map`, also `score`: what picks a best epoch) and mAP@.5 (`map_50`) of the
        decoded outputs (the `MAX_DETECTIONS` best per image, no threshold: COCO's protocol)."""
        del reference
        metrics: dict[str, float] = _scores(outputs, labels, num_labels).metrics()
        metrics["score"] = metrics[SPEC.metric]
        return metrics

    def evaluate(self, model: Any, encoded: Any, labels: Sequence[Any], num_labels: int,
                 batch_size: int = 64, reference: np.ndarray | None = None) -> tuple[dict[str, float], np.ndarray]:
        outputs = self.predict_logits(model, encoded, batch_size)
        return self.score(outputs, labels, num_labels, reference), outputs

    def example_scores(self, logits: np.ndarray, labels: Sequence[Any],
                       reference: np.ndarray | None = None) -> np.ndarray:
        """Per image, its own AP@[.5:.95] (`dense_metrics`' `image_ap`)."""
        del reference
        scores: np.ndarray = _scores(logits, labels, 0).image_ap
        return scores

    def judge(self, gate: str, compares: str, ref_outputs: np.ndarray, new_outputs: np.ndarray,
              labels: Sequence[Any], budget_points: float | None, default_budget_points: float | None = None,
              reference: np.ndarray | None = None) -> Any:
        """The paired gate: the drop in mean per-image AP points (the parent's per-image AP@[.5:.95] minus
        the child's, averaged over images, x100) with a paired bootstrap 95% interval over images."""
        from trt_edge import stats

        ref = self.example_scores(ref_outputs, labels, reference)
        new = self.example_scores(new_outputs, labels, reference)
        return stats.judge_scores(gate, compares, ref, new, budget_points, default_budget_points,
                                  unit="mean per-image AP points")

    def output_loss(self, student_out: Any, labels: Any, teacher_outputs: Any, *, alpha: float,
                    temperature: float, neighbour_weight: float = 0.0) -> tuple[Any, dict[str, float]]:
        """(1 - alpha) x the set loss on the gold boxes (images with gold only) + alpha x the distillation
        term (`detection_kd_loss`) to the teacher's packed outputs. No neighbour term."""
        del neighbour_weight
        logits = getattr(student_out, LOGITS).float()
        boxes = getattr(student_out, BOXES).float()
        goals = targets(labels)
        rows = [i for i, g in enumerate(goals) if g is not None]
        parts: dict[str, float] = {}
        loss = logits.sum() * 0.0
        if rows:
            gold, _ = _set_loss(logits[rows], boxes[rows], [g for g in goals if g is not None])
            gold = gold * (len(rows) / len(goals))  # the mean over the batch, unlabelled images counting 0
            parts["set"] = float(gold.detach())
            loss = loss + (1 - alpha) * gold
        if teacher_outputs is not None and alpha > 0:
            kd = detection_kd_loss(logits, boxes, teacher_outputs, temperature)
            parts["kd"] = float(kd.detach())
            loss = loss + alpha * kd
        return loss, parts

    def example_inputs(self, model_config: Any, names: Sequence[str], int32_inputs: bool, seed: int = 0,
                       preprocessor: Any = None) -> dict[str, Any]:
        return image.example_inputs(model_config, names, int32_inputs, seed, preprocessor)

    def feeds(self, preprocessor: Any, examples: Sequence[Any], max_length: int,
              input_names: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        check_processor(preprocessor)
        return image.ADAPTER.feeds(preprocessor, examples, max_length, input_names)

    def fit_model(self, model: Any, preprocessor: Any, source: str = "the model") -> str | None:
        check_processor(preprocessor, source)
        return image.fit_model(model, preprocessor, source)

    def preflight_model(self, folder: Path, preprocessor: Any, trust_remote_code: bool = False) -> str | None:
        check_processor(preprocessor, str(folder))
        return image.preflight_model(folder, preprocessor, trust_remote_code)

    def write_processor_config(self, folder: Path, model_config: Any) -> None:
        """The image task's processor (a fixed resize to the model's size, mean/std 0.5) with the default
        post-processing (`trt_edge_postprocessing`) in it."""
        image.write_processor_config(folder, model_config)
        write_postprocessing(folder)

    def example_seconds(self, preprocessor: Any) -> float | None:
        """None: images are not signals in time."""
        del preprocessor
        return None

    def runtime_feed(self, preprocessor: Any, examples: Sequence[Any], runner_inputs: Sequence[Any],
                     max_length: int, source: str = "the model") -> dict[str, np.ndarray]:
        check_processor(preprocessor, source)
        return image.runtime_feed(preprocessor, examples, runner_inputs, source)


ADAPTER: TaskAdapter = ObjectDetectionAdapter()
