"""Object-detection data in COCO format: an images folder and an `instances.json`, as labelling tools export.

Layout of one split (any local folder, the demo scenes included):

    FOLDER/instances.json   COCO: "images" (id, file_name, width, height), "annotations" (id, image_id,
                            category_id, bbox [x, y, w, h] in pixels, optional area, iscrowd, segmentation),
                            "categories" (id, name)
    FOLDER/images/          the files named by file_name (relative paths; FOLDER itself when there is
                            no images/ sub-folder)

A data set is either such a folder (or its JSON file), or a folder whose `train`, `validation` and `test`
sub-folders are (`load_detection`). Every problem is found while loading, before any training, and said
in one `TrtEdgeError` line naming the JSON file (and the annotation or image): unparsable JSON, a box
outside its image, a zero-area box, an unknown category id, an annotation of an unlisted image, an image
listed but missing from the folder (or whose size differs from the listed one), duplicate ids.

Boxes are returned as xyxy pixel coordinates (x1, y1, x2 = x + w, y2 = y + h), the convention of
transformers' detection post-processing; `categories` keeps the file's own ids (COCOeval needs them) and
`label_index` maps them to the contiguous 0..K-1 a model's head predicts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.tasks.dense_metrics import GoldBoxes
from trt_edge.tasks.image_classification import decode_image, image_size

INSTANCES_FILE = "instances.json"
IMAGES = "images"
SPLIT_NAMES = ("train", "validation", "test")
# A box may reach this far past the image border (floating-point noise of labelling tools), no further.
BORDER_TOLERANCE = 1e-3


@dataclass
class DetectionImage(GoldBoxes):
    """One image and its objects (the gold fields COCOeval scores, `dense_metrics.GoldBoxes`) and its file:
    `boxes` float64 [N, 4] xyxy in pixels, `categories` int64 [N] (the COCO category ids), `iscrowd` bool [N]
    (crowd regions: COCOeval neither rewards nor penalises matches to them), `areas` float64 [N] (the file's
    `area`, else the box's w*h)."""

    file: Path = field(kw_only=True)

    def image(self) -> np.ndarray:
        """The pixels as uint8 [H, W, C], through the kit's one image decoder."""
        return decode_image(self.file)


@dataclass
class DetectionData:
    """One split: its images (in the file's order) with their objects, and the categories {id: name}."""

    annotation_file: Path
    images: list[DetectionImage]
    categories: dict[int, str]
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def category_ids(self) -> list[int]:
        """Category ids in ascending order: position i is a model's label i."""
        return sorted(self.categories)

    @property
    def label_names(self) -> list[str]:
        return [self.categories[c] for c in self.category_ids]

    def label_index(self) -> dict[int, int]:
        """COCO category id -> contiguous label 0..K-1 (ascending ids), for a model's class head."""
        return {c: i for i, c in enumerate(self.category_ids)}

    def num_objects(self) -> int:
        return int(sum(len(im.boxes) for im in self.images))


def _int(value: Any, what: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise TrtEdgeError(f"{where}: {what} must be a whole number, got {value!r}")
    return int(value)


def _list(data: dict[str, Any], key: str, path: Path) -> list[dict[str, Any]]:
    items = data.get(key)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise TrtEdgeError(f'{path}: "{key}" must be a list of objects (COCO format)')
    return items


def _categories(items: list[dict[str, Any]], path: Path) -> dict[int, str]:
    out: dict[int, str] = {}
    for n, item in enumerate(items):
        cid = _int(item.get("id"), "category id", f"{path}: categories[{n}]")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise TrtEdgeError(f"{path}: category {cid} has no name")
        if cid in out:
            raise TrtEdgeError(f"{path}: category id {cid} is listed twice")
        out[cid] = name
    if not out:
        raise TrtEdgeError(f'{path}: "categories" is empty; a detection data set declares its classes')
    return out


def _image_file(folder: Path, name: Any, image_id: int, path: Path) -> Path:
    if not isinstance(name, str) or not name:
        raise TrtEdgeError(f"{path}: image {image_id} has no file_name")
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts:
        raise TrtEdgeError(f"{path}: image {image_id} file_name {name!r} must be a path inside {folder}")
    file = folder / rel
    if not file.is_file():
        raise TrtEdgeError(f"{path}: image {image_id} ({name}) is missing from {folder}")
    return file


def _box(item: dict[str, Any], image: DetectionImage, path: Path, where: str) -> list[float]:
    bbox = item.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox):
        raise TrtEdgeError(f"{path}: {where} bbox must be [x, y, width, height] (4 finite numbers), got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        raise TrtEdgeError(f"{path}: {where} has a zero-area box {bbox} (width and height must be > 0)")
    tol = BORDER_TOLERANCE
    if x < -tol or y < -tol or x + w > image.width + tol or y + h > image.height + tol:
        raise TrtEdgeError(f"{path}: {where} box {bbox} (x, y, w, h) lies outside its image {image.file.name} "
                           f"({image.width}x{image.height})")
    return [max(x, 0.0), max(y, 0.0), min(x + w, float(image.width)), min(y + h, float(image.height))]


def read_coco(annotation_file: str | Path, image_folder: str | Path | None = None) -> DetectionData:
    """A COCO `instances.json` and its images (by default `images/` beside it, else its own folder),
    fully checked; images are read from their headers only (sizes), not decoded."""
    from trt_edge.guard import load_json

    path = Path(annotation_file).expanduser()
    if not path.is_file():
        raise TrtEdgeError(f"detection data not found: {path} (give a COCO instances.json or its folder)")
    folder = Path(image_folder).expanduser() if image_folder is not None else (
        path.parent / IMAGES if (path.parent / IMAGES).is_dir() else path.parent)
    data = load_json(path, "COCO JSON")
    if not isinstance(data, dict):
        raise TrtEdgeError(f'{path}: not a COCO file (expected an object with "images", "annotations", '
                           '"categories")')
    categories = _categories(_list(data, "categories", path), path)
    images: dict[int, DetectionImage] = {}
    for n, item in enumerate(_list(data, "images", path)):
        image_id = _int(item.get("id"), "image id", f"{path}: images[{n}]")
        if image_id in images:
            raise TrtEdgeError(f"{path}: image id {image_id} is listed twice")
        file = _image_file(folder, item.get("file_name"), image_id, path)
        width, height = image_size(file)
        for key, actual in (("width", width), ("height", height)):
            if key in item and _int(item[key], key, f"{path}: image {image_id}") != actual:
                raise TrtEdgeError(f"{path}: image {image_id} ({file.name}) is listed {item.get('width')}x"
                                   f"{item.get('height')} but the file is {width}x{height}")
        images[image_id] = DetectionImage(image_id, width, height, np.zeros((0, 4)), np.zeros(0, np.int64),
                                          np.zeros(0, bool), np.zeros(0), file=file)
    if not images:
        raise TrtEdgeError(f'{path}: "images" is empty')
    objects: dict[int, list[tuple[list[float], int, bool, float]]] = {i: [] for i in images}
    seen: set[int] = set()
    for n, item in enumerate(_list(data, "annotations", path)):
        where = f"annotation {item.get('id', f'#{n}')}"
        if "id" in item:
            aid = _int(item["id"], "annotation id", f"{path}: {where}")
            if aid in seen:
                raise TrtEdgeError(f"{path}: annotation id {aid} is listed twice")
            seen.add(aid)
        image_id = _int(item.get("image_id"), "image_id", f"{path}: {where}")
        if image_id not in images:
            raise TrtEdgeError(f"{path}: {where} refers to image {image_id}, which is not listed in \"images\"")
        cid = _int(item.get("category_id"), "category_id", f"{path}: {where}")
        if cid not in categories:
            raise TrtEdgeError(f"{path}: {where} has unknown category id {cid} (declared: "
                               f"{', '.join(str(c) for c in sorted(categories))})")
        box = _box(item, images[image_id], path, where)
        crowd = item.get("iscrowd", 0)
        if crowd not in (0, 1) or isinstance(crowd, float):
            raise TrtEdgeError(f"{path}: {where} iscrowd must be 0 or 1, got {crowd!r}")
        area = item.get("area", (box[2] - box[0]) * (box[3] - box[1]))
        if isinstance(area, bool) or not isinstance(area, (int, float)) or not math.isfinite(area) or area < 0:
            raise TrtEdgeError(f"{path}: {where} area must be a number >= 0, got {area!r}")
        objects[image_id].append((box, cid, bool(crowd), float(area)))
    for image_id, found in objects.items():
        if found:
            image = images[image_id]
            image.boxes = np.asarray([f[0] for f in found], dtype=np.float64)
            image.categories = np.asarray([f[1] for f in found], dtype=np.int64)
            image.iscrowd = np.asarray([f[2] for f in found], dtype=bool)
            image.areas = np.asarray([f[3] for f in found], dtype=np.float64)
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    return DetectionData(path, list(images.values()), categories, dict(info or {}))


def load_detection(source: str | Path) -> dict[str, DetectionData]:
    """A detection data set: {"train", "validation", "test"} for a folder of split folders (those
    present, each with its instances.json), or {"all": ...} for one COCO folder or JSON file (the caller
    then splits it by seed). The splits must declare the same categories."""
    root = Path(source).expanduser()
    if root.is_file():
        return {"all": read_coco(root)}
    if not root.is_dir():
        raise TrtEdgeError(f"detection data not found: {root} (give a COCO folder: {INSTANCES_FILE} + {IMAGES}/)")
    splits = [name for name in SPLIT_NAMES if (root / name / INSTANCES_FILE).is_file()]
    if not splits:
        if not (root / INSTANCES_FILE).is_file():
            raise TrtEdgeError(f"{root}: no {INSTANCES_FILE} here nor in train/validation/test sub-folders")
        return {"all": read_coco(root / INSTANCES_FILE)}
    out = {name: read_coco(root / name / INSTANCES_FILE) for name in splits}
    first = out[splits[0]]
    for name in splits[1:]:
        if out[name].categories != first.categories:
            raise TrtEdgeError(f"{out[name].annotation_file}: its categories differ from "
                               f"{first.annotation_file}'s; the splits of one data set share their classes")
    return out
