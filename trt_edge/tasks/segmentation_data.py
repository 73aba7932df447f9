"""Semantic-segmentation data in the layout users have: a folder of images and a parallel folder of masks.

Layout of one split (any local folder, the demo scenes included):

    FOLDER/images/NAME.png|jpg|...   the images (any mode `image_classification.decode_image` reads)
    FOLDER/masks/NAME.png            one class index per pixel (8-bit gray or palette PNG; a 16-bit PNG
                                     is read as raw indices), same width and height as its image
    classes.json                     {"names": ["background", ...], "ignore_index": 255}, in FOLDER or
                                     its parent (one file for all splits)

A data set is either such a folder, or a folder whose `train`, `validation` and `test` sub-folders are
(`load_segmentation`). Every problem is found while loading, before any training, and said in one
`TrtEdgeError` line naming the file: an image without a mask (or the reverse), a mask whose size differs
from its image's, a class index that is neither a declared class nor the ignore index, a colour or lossy
(JPEG) mask, a malformed `classes.json`.

Masks are decoded and kept (uint8, a few KB each); images are kept as paths and decoded on demand, so
an adapter decides when to pay for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.tasks.data import IMAGE_SUFFIXES
from trt_edge.tasks.image_classification import decode_image, image_size, open_image

CLASSES_FILE = "classes.json"
IMAGES, MASKS = "images", "masks"
DEFAULT_IGNORE_INDEX = 255
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp")
SPLIT_NAMES = ("train", "validation", "test")
# Mask modes read as class indices: 8-bit gray, palette (the index, as Pascal VOC's masks), 1-bit, 16-bit.
MASK_MODES = ("L", "P", "1", "I;16", "I;16B", "I;16L", "I")


@dataclass(frozen=True)
class SegmentationClasses:
    """The declared classes: `names[i]` is class index i; pixels equal to `ignore_index` are unlabelled
    (left out of training losses and metrics). `source` is the classes.json they came from."""

    names: list[str]
    ignore_index: int
    source: Path

    @property
    def num_classes(self) -> int:
        return len(self.names)


@dataclass
class SegmentationData:
    """One split: image files, their masks (uint8 [H, W] class indices) in the same order, the classes.

    Every mask has its image's size and holds only indices of `classes.names` or `classes.ignore_index`.
    """

    folder: Path
    classes: SegmentationClasses
    images: list[Path]
    masks: list[np.ndarray]
    mask_files: list[Path]

    def __len__(self) -> int:
        return len(self.images)

    def image(self, i: int) -> np.ndarray:
        """Image `i` as uint8 [H, W, C] (C = 1 or 3), through the kit's one image decoder."""
        return decode_image(self.images[i])

    def pixel_counts(self) -> np.ndarray:
        """Labelled pixels per class over the split (ignore pixels left out): the class balance."""
        counts = np.zeros(self.classes.num_classes, dtype=np.int64)
        for mask in self.masks:
            values = mask[mask != self.classes.ignore_index]
            counts += np.bincount(values.ravel(), minlength=self.classes.num_classes)[:self.classes.num_classes]
        return counts


def read_classes(folder: Path) -> SegmentationClasses:
    """`classes.json` of `folder` (or of its parent, shared by the splits), checked."""
    from trt_edge.guard import load_json

    candidates = [folder / CLASSES_FILE, folder.parent / CLASSES_FILE]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise TrtEdgeError(f"{folder}: no {CLASSES_FILE} here or in its parent; write one such as "
                           '{"names": ["background", "person"], "ignore_index": 255}')
    data = load_json(path, "classes")
    if not isinstance(data, dict) or not isinstance(data.get("names"), list):
        raise TrtEdgeError(f'{path}: expected an object with "names" (a list of class names, index = position)')
    names = data["names"]
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise TrtEdgeError(f"{path}: names must be a non-empty list of non-empty strings")
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise TrtEdgeError(f"{path}: class name {twice[0]!r} is listed twice")
    ignore = data.get("ignore_index", DEFAULT_IGNORE_INDEX)
    if isinstance(ignore, bool) or not isinstance(ignore, int) or not 0 <= ignore <= 255:
        raise TrtEdgeError(f"{path}: ignore_index must be a whole number from 0 to 255, got {ignore!r}")
    if len(names) > 255 or ignore < len(names):
        raise TrtEdgeError(f"{path}: {len(names)} classes (indices 0..{len(names) - 1}) and ignore_index {ignore}: "
                           "the ignore index must be above every class index, and masks hold at most 255 classes")
    return SegmentationClasses(list(names), int(ignore), path)


def _files_by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise TrtEdgeError(f"{folder}: missing; a segmentation folder holds {IMAGES}/ and {MASKS}/ side by side")
    out: dict[str, Path] = {}
    for file in sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES):
        if file.stem in out:
            raise TrtEdgeError(f"{file}: two files named {file.stem!r} ({out[file.stem].name} too); "
                               "images and masks pair by name")
        out[file.stem] = file
    return out


def decode_mask(file: Path) -> np.ndarray:
    """A mask file as uint8 [H, W] class indices, read raw (a palette PNG gives its indices, never its
    colours); a colour or lossy mask, or an index above 255, is refused in one line."""
    if file.suffix.lower() in LOSSY_SUFFIXES:
        raise TrtEdgeError(f"{file}: a lossy ({file.suffix}) mask blurs class indices; save masks as PNG")
    with open_image(file) as img:
        if img.mode not in MASK_MODES:
            raise TrtEdgeError(f"{file}: a {img.mode} mask; a mask holds one class index per pixel (an 8-bit "
                               "gray or palette PNG), not colours")
        img.load()
        values = np.asarray(img)
    if values.dtype != np.uint8:
        if values.size and int(values.max()) > 255:
            raise TrtEdgeError(f"{file}: class index {int(values.max())} above 255; masks hold uint8 indices")
        values = values.astype(np.uint8)
    return values


def check_mask(mask: np.ndarray, file: Path, classes: SegmentationClasses) -> None:
    """Refuse a mask index that is neither a declared class nor the ignore index, naming a pixel."""
    bad = (mask >= classes.num_classes) & (mask != classes.ignore_index)
    if bad.any():
        y, x = (int(v[0]) for v in np.nonzero(bad))
        raise TrtEdgeError(f"{file}: class index {int(mask[y, x])} at pixel (x={x}, y={y}) is not a declared "
                           f"class (0..{classes.num_classes - 1} in {classes.source}) nor the ignore index "
                           f"{classes.ignore_index}")


def read_segmentation_folder(folder: Path, classes: SegmentationClasses | None = None) -> SegmentationData:
    """One split folder (`images/` + `masks/`, paired by file name without suffix), fully checked."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise TrtEdgeError(f"segmentation data not found: {folder} (give a folder with {IMAGES}/ and {MASKS}/)")
    classes = classes or read_classes(folder)
    images, masks = _files_by_stem(folder / IMAGES), _files_by_stem(folder / MASKS)
    if not images:
        raise TrtEdgeError(f"{folder / IMAGES}: no images (PNG/JPEG)")
    for stem, file in images.items():
        if stem not in masks:
            raise TrtEdgeError(f"{file}: no mask for this image (expected {folder / MASKS / (stem + '.png')})")
    for stem, file in masks.items():
        if stem not in images:
            raise TrtEdgeError(f"{file}: a mask without an image (no {stem}.* in {folder / IMAGES})")
    data = SegmentationData(folder, classes, [], [], [])
    for stem, image_file in images.items():
        mask_file = masks[stem]
        mask = decode_mask(mask_file)
        width, height = image_size(image_file)
        if mask.shape != (height, width):
            raise TrtEdgeError(f"{mask_file}: mask is {mask.shape[1]}x{mask.shape[0]}, its image {image_file} is "
                               f"{width}x{height}; a mask must have its image's size")
        check_mask(mask, mask_file, classes)
        data.images.append(image_file)
        data.masks.append(mask)
        data.mask_files.append(mask_file)
    return data


def load_segmentation(source: str | Path) -> dict[str, SegmentationData]:
    """A segmentation data set: {"train", "validation", "test"} for a folder of split folders (those
    present), or {"all": ...} for one folder of images/ + masks/ (the caller then splits it by seed).
    All splits share one class list (the root's classes.json, or the first split's)."""
    root = Path(source).expanduser()
    if not root.is_dir():
        raise TrtEdgeError(f"segmentation data not found: {root} (give a folder with {IMAGES}/ and {MASKS}/, "
                           "or with train/validation/test folders of them)")
    splits = [name for name in SPLIT_NAMES if (root / name).is_dir()]
    if not splits:
        return {"all": read_segmentation_folder(root)}
    classes = read_classes(root / splits[0])
    for name in splits[1:]:
        own = read_classes(root / name)
        if (own.names, own.ignore_index) != (classes.names, classes.ignore_index):
            raise TrtEdgeError(f"{own.source}: its classes differ from {classes.source}'s; the splits of one data "
                               "set share their classes")
    return {name: read_segmentation_folder(root / name, classes) for name in splits}
