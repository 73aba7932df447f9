"""Image classification end to end over any runner: decode, preprocess, run, softmax, label.

The image processor (`preprocessor_config.json`) and the label names come from the preprocessor folder
that travels with the model file (`trt_edge.tasks.spec.preprocessor_dir`), exactly as for text, so an
export, a calibrate folder or an on-device bundle classifies images the way the model was trained on
them: decoded with Pillow, channels matched to the model, resized and normalised by the model's own
processor. The feed follows the task spec's input, so no name is written here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.runtime.base import Runner, logits_in_chunks
from trt_edge.runtime.text import class_names, softmax
from trt_edge.tasks.adapter import TaskAdapter
from trt_edge.tasks.image_classification import ADAPTER
from trt_edge.tasks.spec import TaskSpec

TASK: TaskAdapter = ADAPTER  # the task this runtime classifies for

MAX_IMAGES = 10_000


def image_files(paths: Sequence[str]) -> list[Path]:
    """The image files `run --image` classifies: each path is a PNG/JPEG file, or a folder whose images
    (its own, not its sub-folders', sorted by name) are taken. Refuses, in one line, what is not there."""
    from trt_edge.tasks.data import IMAGE_SUFFIXES

    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise TrtEdgeError(f"--image {raw}: no PNG/JPEG files in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise TrtEdgeError(f"--image {raw}: no such file or folder")
    if not files:
        raise TrtEdgeError("run needs --image FILE (or a folder of images)")
    if len(files) > MAX_IMAGES:
        raise TrtEdgeError(f"--image: {len(files)} images; classify at most {MAX_IMAGES} per call")
    return files


class ImageClassifier:
    """Classify images with a runner (activated for the call when it is not active).

    Args:
      runner: any `Runner` whose outputs include the task's output (or a single output).
      processor: the model's Hugging Face image processor.
      label_names: class names in logit order; None reads them from the preprocessor folder or `LABEL_i`.
      batch_size: images per inference call (keep it within the engine's batch profile). Defaults to 32.
    """

    def __init__(self, runner: Runner, processor: Any, label_names: Sequence[str] | None = None,
                 batch_size: int = 32, spec: TaskSpec | None = None) -> None:
        self.runner = runner
        self.processor = processor
        self.label_names = list(label_names) if label_names is not None else None
        self.batch_size = batch_size
        self.spec = spec  # the model's task where it says (a detector's packed output is decoded to boxes)
        self._label_folder: Path | None = None

    @classmethod
    def from_model_file(cls, runner: Runner, model_file: str | os.PathLike[str],
                        processor_dir: str | os.PathLike[str] | None = None, batch_size: int = 32,
                        spec: TaskSpec | None = None) -> ImageClassifier:
        """The image processor (and the label names in its folder's `config.json`) for `model_file`."""
        from trt_edge.tasks.spec import preprocessor_dir

        folder = preprocessor_dir(model_file, processor_dir)
        classifier = cls(runner, TASK.spec.preprocessor.load(folder), None, batch_size, spec)
        classifier._label_folder = folder
        return classifier

    @property
    def detects(self) -> bool:
        """Whether the model is a detector (its output packs class logits and boxes: `TaskSpec.packed_outputs`)."""
        return self.spec is not None and bool(self.spec.packed_outputs)

    def _feed(self, files: Sequence[Path]) -> dict[str, np.ndarray]:
        from trt_edge.tasks.image_classification import decode_image

        return TASK.runtime_feed(self.processor, [decode_image(f) for f in files], self.runner.inputs(), 0,
                                 self.runner.name)

    def logits(self, files: Sequence[Path]) -> np.ndarray:
        """Raw logits, one row per image, in order."""
        if not files:
            raise TrtEdgeError("no image to classify")
        return logits_in_chunks(self.runner, list(files), self.batch_size,
                                self._feed, TASK.spec.output)

    def classify(self, files: Sequence[Path], overlay: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
        """One record per image: its path, the label, the label's index and every class's probability; for a
        segmenter (per-pixel logits [classes, h, w] per image), the share of pixels each predicted class
        covers (`areas`, classes with none left out), the largest as `label`, and the mask's size; for a
        detector, its boxes (`detect`). `overlay`: a folder that gets one PNG per image with the boxes or the
        class map drawn on it (`runtime.overlay`; a classifier has nothing to draw: refused in one line)."""
        from trt_edge.runtime import overlay as drawing

        if overlay is not None and self.spec is not None and not self.detects and len(self.spec.output_axes) < 3:
            raise TrtEdgeError(f"--overlay draws a detector's boxes or a segmenter's mask; this is an "
                               f"{self.spec.name} model (one label per image)")
        targets = drawing.check_targets(overlay, files) if overlay is not None else None
        logits = self.logits(files)
        if self.detects:
            return self.detect(files, logits, targets)
        dense = logits.ndim > 2
        if targets is not None and not dense:
            raise TrtEdgeError("--overlay draws a detector's boxes or a segmenter's mask; this model gives one "
                               "label per image")
        self.label_names = class_names(self.label_names, self._label_folder, logits.shape[1 if dense else -1])
        out = []
        if dense:
            if targets is not None:
                self._draw_masks(files, logits, targets)
            for file, maps in zip(files, logits, strict=True):
                counts = np.bincount(maps.argmax(0).ravel(), minlength=maps.shape[0])
                shares = counts / max(int(counts.sum()), 1)
                index = int(counts.argmax())
                out.append({"image": str(file), "label": self.label_names[index], "index": index,
                            "areas": {n: round(float(a), 6) for n, a in zip(self.label_names, shares, strict=True)
                                      if a > 0},
                            "mask_size": [int(maps.shape[1]), int(maps.shape[2])]})
            return out
        for file, row in zip(files, softmax(logits), strict=True):
            index = int(row.argmax())
            out.append({"image": str(file), "label": self.label_names[index], "index": index,
                        "probabilities": {n: round(float(p), 6) for n, p in zip(self.label_names, row, strict=True)}})
        return out

    def detect(self, files: Sequence[Path], outputs: np.ndarray, targets: Sequence[Path] | None = None
               ) -> list[dict[str, Any]]:
        """A detector's record per image: its boxes, best first, each {label, index, score, xyxy} with xyxy
        in the input image's pixels (decoded as transformers' post-processing does:
        `object_detection.decode`), after the score threshold and top-k that travel with the model
        (`object_detection.postprocessing`), and the image's size; the overlays drawn when `targets`."""
        from trt_edge.runtime import overlay as drawing
        from trt_edge.tasks.image_classification import decode_image, image_size
        from trt_edge.tasks.object_detection import BOX_SIZE, postprocessing

        self.label_names = class_names(self.label_names, self._label_folder, outputs.shape[-1] - BOX_SIZE - 1)
        settings = postprocessing(self.processor, str(self._label_folder or "the model"))
        sizes = [image_size(f)[::-1] for f in files]  # (width, height) -> (height, width)
        out = []
        found = drawing.detection_boxes(outputs, sizes, self.label_names, float(settings["threshold"]),
                                        int(settings["top_k"]))
        for i, (file, items) in enumerate(zip(files, found, strict=True)):
            out.append({"image": str(file), "boxes": items, "image_size": [int(sizes[i][0]), int(sizes[i][1])]})
            if targets is not None:
                drawing.write_png(targets[i], drawing.draw_boxes(decode_image(file), items))
        return out

    def _draw_masks(self, files: Sequence[Path], logits: np.ndarray, targets: Sequence[Path]) -> None:
        """A segmenter's overlays: each image's logits upsampled to its own size, argmax, blended over it."""
        from trt_edge.runtime import overlay as drawing
        from trt_edge.tasks.image_classification import decode_image

        for file, maps, target in zip(files, logits, targets, strict=True):
            drawing.write_png(target, drawing.segmentation_overlay(decode_image(file), maps))
