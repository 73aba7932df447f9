"""Demo scenes for semantic segmentation and object detection, built offline from Fashion-MNIST.

No segmentation or detection set is installable from PyPI, Debian or npm with a licence the kit can use,
so the demo data is *synthetic*: 2-5 Fashion-MNIST garments pasted at random scales and places on a
textured background (noise, a gradient or stripes, in random colours). Masks are exact: a garment's
pixels are those above `GARMENT_THRESHOLD` in its (resized) Fashion-MNIST image; later garments occlude
earlier ones and the masks follow the occlusion; a box is the bounding box of a garment's *visible*
pixels, and a garment with fewer than `min_box_area` visible pixels gets no box (its pixels stay in the
segmentation mask: they are still that garment).

The scenes are written in the formats users have, so the demo goes through the same loaders as user
data (`segmentation_data`, `coco`):

- segmentation: `classes.json` (`names`, `ignore_index`) and per split `SPLIT/images/NAME.png` (RGB) +
  `SPLIT/masks/NAME.png` (uint8, one class index per pixel: 0 background, 1..10 the garment classes in
  Fashion-MNIST's order). The masks are exact, so the generator writes no ignore pixels; the ignore
  index (255) is declared for user data that has them.
- detection: per split `SPLIT/images/NAME.png` + `SPLIT/instances.json` in COCO format (bbox
  [x, y, w, h] in pixels, area = visible pixels, iscrowd 0, no `segmentation`; category ids 1..10).

Splits `train`, `validation` and `test`: the test scenes are built only from garments of Fashion-MNIST's
official test file, train and validation only from its training file, so the test split is held out at
the garment level too. Scene `i` of a split depends only on (seed, split, i), never on `count`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.tasks.data import FASHION_MNIST_DIR
from trt_edge.tasks.image_classification import FASHION_MNIST_LABELS, fashion_mnist

KINDS = ("segmentation", "detection")
SPLITS = ("train", "validation", "test")
# Shares of `count` per split; test and validation get at least one scene each.
SPLIT_SHARES = {"train": 0.8, "validation": 0.1, "test": 0.1}
IGNORE_INDEX = 255
BACKGROUND = "background"
# A garment pixel: its Fashion-MNIST intensity (0..255) after resizing is above this. Fashion-MNIST's
# backgrounds are exactly 0 and its garments mostly far above, so the mask is the garment's silhouette.
GARMENT_THRESHOLD = 24
MIN_SIZE, MAX_SIZE = 32, 1024
MAX_COUNT = 200_000
MAX_TRIES = 20  # redraws of a scene whose garments are all (nearly) hidden


@dataclass
class Scene:
    """One generated scene: the RGB image, its class-index mask and its instances' boxes.

    `mask`: uint8 [H, W], 0 background, k + 1 for Fashion-MNIST class k. `boxes`: [N, 4] float xyxy in
    pixels (x1, y1 inclusive corner, x2, y2 = last pixel + 1), `categories`: COCO category ids (class
    k + 1), `areas`: visible pixels of each boxed garment. `instances`: int32 [H, W], 0 background, j + 1
    where garment j (in paste order) is visible; `instance_ids[n]` is box n's j + 1.
    """

    image: np.ndarray
    mask: np.ndarray
    boxes: np.ndarray
    categories: list[int]
    areas: list[int]
    instances: np.ndarray
    instance_ids: list[int]


@dataclass
class SceneSettings:
    """How scenes look: image size (square, pixels), garments per scene, garment size as a share of the
    image side, and the smallest visible area (pixels) that still gets a box."""

    size: int = 128
    min_garments: int = 2
    max_garments: int = 5
    min_scale: float = 0.22
    max_scale: float = 0.5
    min_box_area: int = 0  # 0: 0.25% of the image, at least 16 pixels

    def box_area_floor(self) -> int:
        return self.min_box_area or max(16, round(0.0025 * self.size * self.size))


def class_names() -> list[str]:
    """Segmentation class names by index: 0 background, then the 10 Fashion-MNIST classes."""
    return [BACKGROUND, *FASHION_MNIST_LABELS]


def coco_categories() -> list[dict[str, Any]]:
    """COCO categories of the detection scenes: ids 1..10 (Fashion-MNIST class k is id k + 1)."""
    return [{"id": k + 1, "name": name, "supercategory": "garment"} for k, name in enumerate(FASHION_MNIST_LABELS)]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A textured background [size, size, 3] float in 0..255: noise, a gradient or stripes."""
    kind = int(rng.integers(3))
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size
    if kind == 0:
        noise: np.ndarray = rng.normal(a, rng.uniform(10, 40), (size, size, 3)).astype(np.float32)
        return noise
    angle = rng.uniform(0, np.pi)
    t = np.cos(angle) * xx + np.sin(angle) * yy
    if kind == 1:
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    else:
        t = (np.sin(t * rng.uniform(6, 30) + rng.uniform(0, 6.3)) > 0).astype(np.float32)
    blend: np.ndarray = (a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]).astype(np.float32)
    return blend


def _resize(garment: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    resized: np.ndarray = np.asarray(Image.fromarray(garment).resize((side, side), Image.Resampling.BILINEAR),
                                     dtype=np.uint8)
    return resized


def make_scene(rng: np.random.Generator, garments: np.ndarray, labels: np.ndarray,
               settings: SceneSettings) -> Scene:
    """One scene from `garments` ([N, 28, 28] uint8) and their Fashion-MNIST `labels`; at least one garment
    is boxed (a scene whose garments are all nearly hidden is redrawn)."""
    size = settings.size
    for _ in range(MAX_TRIES):
        canvas = _background(rng, size)
        mask = np.zeros((size, size), dtype=np.uint8)
        instance = np.zeros((size, size), dtype=np.int32)  # 0 none, j + 1 garment j (last paste wins)
        count = int(rng.integers(settings.min_garments, settings.max_garments + 1))
        picks = rng.integers(0, len(garments), count)
        for j, pick in enumerate(picks):
            side = max(8, round(rng.uniform(settings.min_scale, settings.max_scale) * size))
            glyph = _resize(garments[pick], side)
            y, x = (int(v) for v in rng.integers(0, size - side + 1, 2))
            silhouette = glyph > GARMENT_THRESHOLD
            colour = rng.uniform(0, 255, 3).astype(np.float32)
            shade = 0.35 + 0.65 * glyph[..., None].astype(np.float32) / 255.0
            region = canvas[y:y + side, x:x + side]
            region[silhouette] = (colour[None, None, :] * shade)[silhouette]
            mask[y:y + side, x:x + side][silhouette] = int(labels[pick]) + 1
            instance[y:y + side, x:x + side][silhouette] = j + 1
        boxes, categories, areas, ids = [], [], [], []
        for j, pick in enumerate(picks):
            ys, xs = np.nonzero(instance == j + 1)
            if len(ys) < settings.box_area_floor():
                continue
            boxes.append([float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)])
            categories.append(int(labels[pick]) + 1)
            areas.append(len(ys))
            ids.append(j + 1)
        if boxes:
            image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
            return Scene(image, mask, np.asarray(boxes, dtype=np.float64).reshape(-1, 4), categories, areas,
                         instance, ids)
    raise TrtEdgeError(f"could not place a visible garment in {MAX_TRIES} tries; use a larger --size")


def split_counts(count: int) -> dict[str, int]:
    """Scenes per split for `count` scenes in all (validation and test at least one each)."""
    if count < len(SPLITS):
        raise TrtEdgeError(f"--count {count}: give at least {len(SPLITS)} scenes (one per split)")
    validation = max(1, round(count * SPLIT_SHARES["validation"]))
    test = max(1, round(count * SPLIT_SHARES["test"]))
    return {"train": count - validation - test, "validation": validation, "test": test}


def check_request(kind: str, count: Any, size: Any, seed: Any) -> None:
    """Refuse bad generator arguments in one line, before any file is read or written."""
    if kind not in KINDS:
        raise TrtEdgeError(f"--kind {kind!r}: use one of {', '.join(KINDS)}")
    for name, value, low, high in (("count", count, len(SPLITS), MAX_COUNT), ("size", size, MIN_SIZE, MAX_SIZE)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise TrtEdgeError(f"--{name} {value!r}: give a whole number from {low} to {high}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TrtEdgeError(f"--seed {seed!r}: give a whole number >= 0")


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of scene `index` of `split`: independent of the other scenes and of the count."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index]))


def write_scenes(out: Path, kind: str, count: int, size: int = 128, seed: int = 0,
                 source: Path = FASHION_MNIST_DIR) -> dict[str, Any]:
    """Write `count` scenes of `kind` into the (new, empty) folder `out`; return what was written (per
    split: scenes, boxes). The caller makes `out` atomic (`stage.stage_output`)."""
    from PIL import Image

    check_request(kind, count, size, seed)
    arrays = fashion_mnist(source)
    settings = SceneSettings(size=size)
    summary: dict[str, Any] = {"kind": kind, "size": size, "seed": seed, "splits": {}}
    if kind == "segmentation":
        (out / "classes.json").write_text(json.dumps({"names": class_names(), "ignore_index": IGNORE_INDEX},
                                                     indent=2) + "\n", encoding="utf-8")
    for split, n in split_counts(count).items():
        garments, labels = arrays["test" if split == "test" else "train"]
        folder = out / split
        (folder / "images").mkdir(parents=True)
        if kind == "segmentation":
            (folder / "masks").mkdir()
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for i in range(n):
            scene = make_scene(scene_rng(seed, split, i), garments, labels, settings)
            name = f"{split}-{i:06d}.png"
            Image.fromarray(scene.image, "RGB").save(folder / "images" / name, compress_level=1)
            if kind == "segmentation":
                Image.fromarray(scene.mask, "L").save(folder / "masks" / name, compress_level=1)
                continue
            images.append({"id": i + 1, "file_name": name, "width": size, "height": size})
            for box, category, area in zip(scene.boxes, scene.categories, scene.areas, strict=True):
                x1, y1, x2, y2 = (float(v) for v in box)
                annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": category,
                                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float(area), "iscrowd": 0})
        if kind == "detection":
            coco = {"info": {"description": "trt-edge demo scenes (synthetic, from Fashion-MNIST)"},
                    "images": images, "annotations": annotations, "categories": coco_categories()}
            (folder / "instances.json").write_text(json.dumps(coco) + "\n", encoding="utf-8")
        summary["splits"][split] = {"scenes": n, **({"boxes": len(annotations)} if kind == "detection" else {})}
    return summary
