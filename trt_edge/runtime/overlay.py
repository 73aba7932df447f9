"""`trt-edge run --image ... --overlay DIR`: what a detector or a segmenter saw, drawn on the input image.

One PNG per input image, the input's own size: a detector's boxes (the ones `run` prints: after the score
threshold and top-k that travel with the model) drawn as rectangles with their label and score; a segmenter's
predicted class map (upsampled to the image) blended over it, every class (background too). Colours
are a fixed palette by class index, so the same class has the same colour in every overlay.

The folder is made when missing; an overlay never replaces a file already there (checked for every image
before any inference: `check_targets`), and each is written atomically.
"""

from __future__ import annotations

import colorsys
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError

MASK_ALPHA = 0.5  # the class colour's share of a blended pixel


def colour(index: int) -> tuple[int, int, int]:
    """A saturated colour per class index (golden-ratio hue steps: neighbours differ)."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def overlay_path(folder: Path, image_file: Path) -> Path:
    return folder / f"{image_file.stem}.png"


def check_targets(folder: str | os.PathLike[str], files: Sequence[Path]) -> list[Path]:
    """The overlay file of each input image, refused in one line (before any inference) when two inputs would
    write the same name or a file is already there; the folder is made when missing."""
    out_dir = Path(folder).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise TrtEdgeError(f"--overlay {folder}: exists and is not a folder")
    targets = [overlay_path(out_dir, f) for f in files]
    seen: dict[Path, Path] = {}
    for source, target in zip(files, targets, strict=True):
        if target in seen:
            raise TrtEdgeError(f"--overlay: {seen[target].name} and {source.name} would both write {target.name}")
        seen[target] = source
        if target.exists():
            raise TrtEdgeError(f"--overlay: {target} already exists; give an empty folder (overlays never replace "
                               "a file)")
    out_dir.mkdir(parents=True, exist_ok=True)
    return targets


def draw_boxes(image: np.ndarray, boxes: Sequence[dict[str, Any]]) -> np.ndarray:
    """The image (uint8 [H, W, C]) as RGB with each box ({label, index, score, xyxy}) drawn: a 2-pixel
    rectangle in its class colour and "label score" above it."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(_rgb(image))
    draw = ImageDraw.Draw(canvas)
    for box in boxes:
        x1, y1, x2, y2 = (float(v) for v in box["xyxy"])
        rgb = colour(int(box["index"]))
        draw.rectangle([x1, y1, x2, y2], outline=rgb, width=2)
        draw.text((x1 + 2, max(y1 - 11, 0)), f"{box['label']} {float(box['score']):.2f}", fill=rgb)
    return np.asarray(canvas)


def blend_mask(image: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The image (uint8 [H, W, C]) as RGB with a class map (int [H, W], the image's size) blended over it:
    every pixel takes `MASK_ALPHA` of its class's colour (background too: the whole map is shown)."""
    rgb = _rgb(image).astype(np.float32)
    if classes.shape != rgb.shape[:2]:
        raise ValueError(f"class map {classes.shape} is not the image's size {rgb.shape[:2]}")
    palette = np.asarray([colour(i) for i in range(int(classes.max()) + 1)], dtype=np.float32)
    out = (1 - MASK_ALPHA) * rgb + MASK_ALPHA * palette[classes]
    blended: np.ndarray = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return blended


def detection_boxes(outputs: np.ndarray, sizes: Sequence[tuple[int, int]], label_names: Sequence[str],
                    threshold: float, top_k: int) -> list[list[dict[str, Any]]]:
    """Each image's boxes ({label, index, score, xyxy}, best first, xyxy in its pixels) from a detector's packed
    outputs [images, queries, classes + 1 + 4] and the images' (height, width): what `run --image` prints and
    both it and the report draw (`object_detection.decode` after the threshold and top-k)."""
    from trt_edge.tasks.object_detection import decode

    return [[{"label": label_names[int(c)], "index": int(c), "score": round(float(s), 6),
              "xyxy": [round(float(v), 2) for v in box]} for box, s, c in zip(boxes, scores, classes, strict=True)]
            for boxes, scores, classes in decode(outputs, sizes, threshold, top_k)]


def segmentation_overlay(image: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """A segmenter's drawing of one image: its logits [classes, h, w] upsampled to the image's size
    (`semantic_segmentation.predicted_masks`, as the metrics do), argmax, blended over it (`blend_mask`)."""
    from trt_edge.tasks.semantic_segmentation import predicted_masks

    (classes,) = predicted_masks(np.asarray(maps)[None], [(int(image.shape[0]), int(image.shape[1]))])
    return blend_mask(image, classes)


def write_png(path: Path, pixels: np.ndarray) -> None:
    """Write an RGB uint8 array as a PNG, atomically."""
    from PIL import Image

    from trt_edge.files import atomic_write_bytes

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def _rgb(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] of a decoded image (grey repeated, alpha dropped)."""
    arr = np.asarray(image, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[..., :3])
