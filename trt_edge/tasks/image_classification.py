"""Image classification: labelled images from an ImageFolder tree or Fashion-MNIST, the model's own image
processor, batching and prediction in PyTorch.

Images are kept as uint8 arrays [H, W, C] until a batch needs them; the processor (the model folder's
`preprocessor_config.json`) resizes, rescales and normalises them. Channels are matched to the model
first (a grayscale image for an RGB model is repeated, an RGB image for a 1-channel model is converted
to luminance), so grayscale data sets work with either kind of model.
"""

from __future__ import annotations

import contextlib
import gzip
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.log import get_logger
from trt_edge.tasks.adapter import TaskAdapter
from trt_edge.tasks.classification import ClassificationOutputs
from trt_edge.tasks.config import DataConfig
from trt_edge.tasks.data import (
    FASHION_MNIST_DIR,
    FASHION_MNIST_INSTALL,
    IMAGE_SUFFIXES,
    ClassificationData,
    fashion_mnist_dir,
    split_examples,
    stratified_order,
)
from trt_edge.tasks.spec import IMAGE_CLASSIFICATION as SPEC
from trt_edge.tasks.spec import TaskSpec

log = get_logger("data")

INPUT = SPEC.inputs[0].name
FASHION_MNIST_LABELS = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                        "ankle-boot"]


# --- data -------------------------------------------------------------------------------------------

def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format, gzip-compressed): uint8 arrays of images or labels."""
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise TrtEdgeError(f"{path}: unreadable ({exc}); reinstall with {FASHION_MNIST_INSTALL}") from exc
    if len(raw) < 8:
        raise TrtEdgeError(f"{path}: truncated IDX file")
    zero, dtype, ndim = raw[0:2], raw[2], raw[3]
    if zero != b"\0\0" or dtype != 0x08:
        raise TrtEdgeError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise TrtEdgeError(f"{path}: truncated IDX file ({data.size} values for shape {list(dims)})")
    return data.reshape(dims)


def fashion_mnist(folder: Path = FASHION_MNIST_DIR) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (images [60000, 28, 28], labels), "test": (images [10000, 28, 28], labels)}."""
    fashion_mnist_dir(folder)  # raises with the install line
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
        labels = _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
        if len(images) != len(labels):
            raise TrtEdgeError(f"{folder}: {prefix} has {len(images)} images and {len(labels)} labels")
        out[split] = (images, labels)
    return out


# Pillow's own default: larger images are refused before any pixel is decoded (a decompression bomb, a
# 40000x40000 PNG of a few kilobytes, would take gigabytes). `TRT_EDGE_MAX_IMAGE_PIXELS` raises or lowers it.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485
MAX_PIXELS_VARIABLE = "TRT_EDGE_MAX_IMAGE_PIXELS"


def max_image_pixels() -> int:
    """The pixel limit of every image the kit decodes: `TRT_EDGE_MAX_IMAGE_PIXELS`, else Pillow's default."""
    import os

    raw = os.environ.get(MAX_PIXELS_VARIABLE, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_MAX_IMAGE_PIXELS
    if not raw.isdigit() or int(raw) < 1:
        raise TrtEdgeError(f"{MAX_PIXELS_VARIABLE}={os.environ[MAX_PIXELS_VARIABLE]!r} is not a positive whole "
                           "number of pixels")
    return int(raw)


def _to_uint8(img: Any, file: Path) -> np.ndarray:
    """An opened image's pixels as uint8 [H, W] or [H, W, 3], *scaled* from wider integer or float modes
    (a 16-bit PNG from a depth, thermal or industrial camera), never clipped: Pillow's `convert("L")` clips
    16-bit values to 255, so such an image would silently turn white."""
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(img).astype(np.float64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise TrtEdgeError(f"{file}: 32-bit integer pixels (range {values.min():.0f}..{values.max():.0f}); "
                               "convert it to an 8- or 16-bit image")
        scaled: np.ndarray = np.rint(values * (255.0 / 65535.0)).astype(np.uint8)
        return scaled
    if mode == "F":
        values = np.asarray(img).astype(np.float64)
        if not np.isfinite(values).all() or (values.size and (values.min() < 0 or values.max() > 255)):
            raise TrtEdgeError(f"{file}: floating-point pixels outside 0..255 (or not finite); convert it to an "
                               "8- or 16-bit image")
        peak = 1.0 if values.size and values.max() <= 1.0 else 255.0  # [0, 1] floats, or 8-bit values
        unit: np.ndarray = np.rint(values * (255.0 / peak)).astype(np.uint8)
        return unit
    return np.asarray(img.convert("L" if mode in ("1", "L") else "RGB"), dtype=np.uint8)


@contextlib.contextmanager
def open_image(file: Path) -> Iterator[Any]:
    """An opened (not yet decoded) Pillow image, or a one-line error: an image over the pixel limit
    (`max_image_pixels`) is refused from its header, and any Pillow failure while the caller decodes it
    becomes `TrtEdgeError` naming the file. The one place every image and mask file is opened."""
    from PIL import Image, UnidentifiedImageError

    limit = max_image_pixels()
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # the kit's own check below: its limit, its one-line message
    try:
        with Image.open(file) as img:
            width, height = img.size
            if width * height > limit:
                raise TrtEdgeError(f"{file}: {width}x{height} is {width * height:,} pixels, more than the limit "
                                   f"{limit:,} (a decompression bomb?); set {MAX_PIXELS_VARIABLE} to allow it")
            yield img
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise TrtEdgeError(f"{file}: not a readable image ({str(exc).splitlines()[0][:120]})") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def image_size(file: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding its pixels (checked like `open_image`)."""
    with open_image(file) as img:
        width, height = img.size
    return int(width), int(height)


def decode_image(file: Path) -> np.ndarray:
    """One image file as a uint8 array [H, W, C] (C = 1 grayscale, 3 colour), or a one-line error: an
    image over the pixel limit (`max_image_pixels`) is refused from its header, before decoding, and
    16-bit or float pixels are scaled to 8 bits (`_to_uint8`)."""
    with open_image(file) as img:
        img.load()
        array = _to_uint8(img, file)
    return array[:, :, None] if array.ndim == 2 else array


def read_image_folder(path: Path) -> tuple[list[np.ndarray], list[str]]:
    """Images from an ImageFolder tree (one sub-folder of PNG/JPEG files per class), decoded with Pillow.

    Every image must have the same size (the processor resizes, but a data set of mixed sizes is
    usually a mistake worth stopping for); the first unreadable or odd-sized file is named.
    """
    classes = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise TrtEdgeError(f"{path}: expected one sub-folder of images (PNG/JPEG) per class, found none")
    images: list[np.ndarray] = []
    labels: list[str] = []
    size: tuple[int, int] | None = None
    first: Path | None = None
    for folder in classes:
        files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        for file in files:
            array = decode_image(file)
            if size is None:
                size, first = (array.shape[0], array.shape[1]), file
            elif (array.shape[0], array.shape[1]) != size:
                raise TrtEdgeError(f"{file}: image is {array.shape[1]}x{array.shape[0]}, but {first} is "
                                   f"{size[1]}x{size[0]}; a data set must have one image size")
            images.append(array)
            labels.append(folder.name)
    if not images:
        texts = any(f.suffix == ".txt" for c in classes for f in c.rglob("*"))
        hint = " (it holds .txt files: set task.type: text-classification)" if texts else ""
        raise TrtEdgeError(f"{path}: no images (PNG/JPEG) in its class folders{hint}")
    return images, labels


def read_unlabelled_images(path: Path, limit: int = 200_000) -> list[np.ndarray]:
    """Every PNG/JPEG under `path` (recursively, by path), decoded; sizes may differ (the processor
    resizes). A transfer set needs no labels, so no class folders are required."""
    if not path.is_dir():
        raise TrtEdgeError(f"{path}: a transfer set of images is a folder of PNG/JPEG files")
    files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise TrtEdgeError(f"{path}: no PNG/JPEG files under this folder")
    if len(files) > limit:
        raise TrtEdgeError(f"{path}: {len(files)} images; a transfer folder takes at most {limit}")
    return [decode_image(f) for f in files]


def load_data(cfg: DataConfig) -> ClassificationData:
    """Labelled images, split like the text data (seeded, stratified); Fashion-MNIST keeps its own test set."""
    if cfg.source == "demo:fashion-mnist":
        return _load_fashion_mnist(cfg)
    if cfg.source.startswith("demo:"):
        raise TrtEdgeError(f"unknown demo image data set {cfg.source!r}; available: demo:fashion-mnist")
    path = Path(cfg.source).expanduser()
    if not path.exists():
        raise TrtEdgeError(f"dataset not found: {path} (give a folder with one sub-folder of images per class)")
    if not path.is_dir():
        raise TrtEdgeError(f"{path}: an image-classification task reads a folder of class folders (ImageFolder "
                           "layout), not a file; a table of texts needs task.type: text-classification")
    images, labels = read_image_folder(path)
    return split_examples(list(images), labels, cfg, path.name)


def _load_fashion_mnist(cfg: DataConfig) -> ClassificationData:
    arrays = fashion_mnist()
    train_images, train_labels = arrays["train"]
    test_images, test_labels = arrays["test"]
    names = [FASHION_MNIST_LABELS[int(i)] for i in train_labels]
    # train/validation come from the training file; the test split is the official test file, drawn
    # stratified when test_size asks for fewer than its 10,000 images.
    data = split_examples([img[:, :, None] for img in train_images], names,
                          cfg.replace(test_size=1, max_examples=cfg.max_examples), "fashion-mnist")
    n_test = len(test_labels) if cfg.test_size < 1 else min(int(cfg.test_size), len(test_labels))
    order = sorted(stratified_order([str(int(v)) for v in test_labels], cfg.seed)[:n_test])
    index = {name: i for i, name in enumerate(data.label_names)}
    data.test.examples = [test_images[i][:, :, None] for i in order]
    data.test.labels = [index[FASHION_MNIST_LABELS[int(test_labels[i])]] for i in order]
    log.info("fashion-mnist: test split is %d images of the official test file", len(order))
    return data


# --- preprocessing ----------------------------------------------------------------------------------

def num_channels(model_config: Any) -> int:
    return int(getattr(model_config, "num_channels", 3) or 3)


def config_image_size(model_config: Any) -> tuple[int, int]:
    """The size the model config was made for (`image_size`; 224 when it states none). Not the size the
    stages use: that is `input_size`, which prefers the image processor's."""
    size = getattr(model_config, "image_size", 224)
    if isinstance(size, (list, tuple)):
        return int(size[0]), int(size[1])
    return int(size), int(size)


def _height_width(size: Any) -> tuple[int, int] | None:
    """(H, W) of a processor's `size`/`crop_size` (a dict, transformers' SizeDict or an int); a lone
    `shortest_edge` counts as a square (the data sets here have one image size, checked on load)."""
    if size is None:
        return None
    if isinstance(size, int):
        return size, size

    def get(key: str) -> Any:
        return size.get(key) if isinstance(size, dict) else getattr(size, key, None)

    height, width, edge = get("height"), get("width"), get("shortest_edge")
    if height and width:
        return int(height), int(width)
    if edge and not get("longest_edge"):
        return int(edge), int(edge)
    return None


def processor_size(processor: Any) -> tuple[int, int] | None:
    """The H x W the image processor makes: its centre crop when it crops, else its resize target; None
    when it states no fixed size (it keeps each image's own size)."""
    if processor is None:
        return None
    if getattr(processor, "do_center_crop", False):
        crop = _height_width(getattr(processor, "crop_size", None))
        if crop is not None:
            return crop
    if getattr(processor, "do_resize", True):
        return _height_width(getattr(processor, "size", None))
    return None


def input_size(model_config: Any, processor: Any = None) -> tuple[int, int]:
    """THE input size (H, W) of an image model, the one place it is decided: what its image processor
    makes when there is one that says (the model only ever sees the processor's pixels: a DINOv2
    checkpoint's config says 518, its processor crops 224), the config's `image_size` otherwise (a
    model trained from scratch, whose processor `write_processor_config` writes from this). Export
    traces at it, training and evaluation run at it, the ONNX takes it, and profile and `run` read it
    back from the ONNX's fixed height and width."""
    return processor_size(processor) or config_image_size(model_config)


def _patch_size(model_config: Any) -> tuple[int, int] | None:
    patch = getattr(model_config, "patch_size", None)
    if isinstance(patch, (list, tuple)):
        return int(patch[0]), int(patch[1])
    return (int(patch), int(patch)) if isinstance(patch, int) and patch > 0 else None


def plan_input_size(model_config: Any, processor: Any, source: str = "the model") -> tuple[tuple[int, int], str | None]:
    """The input size and, when it differs from the config's, one sentence saying what will be done (the
    preflight logs it before any training; `fit_model` does it on every load). Refuses, in one line, a
    processor size the model cannot take: not a whole number of patches, or (a patch grid) not square."""
    size, made_for = input_size(model_config, processor), config_image_size(model_config)
    if size == made_for:
        return size, None
    fmt = f"{size[0]}x{size[1]}"
    patch = _patch_size(model_config)
    if patch is None:
        return size, (f"{source}: its config says image_size {made_for[0]}x{made_for[1]}, its image processor makes "
                      f"{fmt} images: every stage runs at {fmt}")
    if size[0] % patch[0] or size[1] % patch[1]:
        raise TrtEdgeError(f"{source}: its image processor makes {fmt} images, not a whole number of "
                           f"{patch[0]}x{patch[1]} patches (the config's image_size is {made_for[0]}x{made_for[1]}); "
                           "set the processor's crop_size/size in preprocessor_config.json to a multiple of the patch")
    if size[0] != size[1] or made_for[0] != made_for[1]:
        raise TrtEdgeError(f"{source}: its image processor makes {fmt} images and its config says image_size "
                           f"{made_for[0]}x{made_for[1]}; the position embeddings can be resized between square "
                           "sizes only: set the processor's crop_size/size to a square")
    grid, new = made_for[0] // patch[0], size[0] // patch[0]
    return size, (f"{source}: its config says image_size {made_for[0]}, its image processor makes {fmt} images: "
                  f"every stage runs at {fmt}, the position embeddings ({grid}x{grid} patches) interpolated to "
                  f"{new}x{new} once on loading, bicubic as transformers' interpolate_pos_encoding does it")


def fit_model(model: Any, processor: Any, source: str = "the model") -> str | None:
    """Make a loaded model take `input_size` natively; returns what was done (None: nothing to do).

    A ViT-family model whose config size differs from its processor's (DINOv2: 518 vs 224) gets its
    position table interpolated ONCE by the model's own `interpolate_pos_encoding` (what transformers
    does on every forward of DINOv2, and of ViT with `interpolate_pos_encoding=True`) and its config's
    `image_size` set to the processor's. Training, evaluation, the traced export and every saved
    folder then agree without an argument to forward, and the ONNX holds no bicubic resize (which
    would trace to one fixed size anyway). A model without a position table (a conv net) only has its
    config's `image_size` set."""
    import torch

    size, note = plan_input_size(model.config, processor, source)
    if note is None:
        return None
    base = getattr(model, "base_model", model)
    emb: Any = getattr(base, "embeddings", None)
    table = getattr(emb, "position_embeddings", None)
    patches = getattr(emb, "patch_embeddings", None)
    if isinstance(table, torch.nn.Parameter) and table.dim() == 3 and hasattr(emb, "interpolate_pos_encoding") \
            and patches is not None:
        patch = _patch_size(model.config) or (1, 1)
        old = config_image_size(model.config)
        special = table.shape[1] - (old[0] // patch[0]) * (old[1] // patch[1])  # [CLS] (+ DeiT's distillation)
        count = (size[0] // patch[0]) * (size[1] // patch[1])
        with torch.no_grad():
            probe = torch.zeros(1, special + count, table.shape[2], dtype=table.dtype)
            new = emb.interpolate_pos_encoding(probe, size[0], size[1])
        emb.position_embeddings = torch.nn.Parameter(new.detach().clone().contiguous(),
                                                     requires_grad=table.requires_grad)
        patches.image_size = size
        patches.num_patches = count
        if hasattr(emb, "image_size"):
            emb.image_size = size
    model.config.image_size = size[0] if size[0] == size[1] else [size[0], size[1]]
    return note


def match_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """[H, W, C] with the model's channel count (grayscale repeated, colour to luminance)."""
    have = image.shape[2]
    if have == channels:
        return image
    if have == 1:
        return np.repeat(image, channels, axis=2)
    if channels == 1:
        gray = image[:, :, :3].astype(np.float32) @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)[:, :, None]
    raise TrtEdgeError(f"images have {have} channels, the model takes {channels}")


def pixel_values(processor: Any, images: Sequence[np.ndarray], channels: int) -> np.ndarray:
    """float32 [N, C, H, W] from the model's own image processor."""
    if not images:
        return np.zeros((0, channels, 1, 1), dtype=np.float32)
    arrays = [match_channels(img, channels) for img in images]
    try:
        out = processor(images=arrays, return_tensors="np", input_data_format="channels_last")
    except (ValueError, TypeError) as exc:
        raise TrtEdgeError(f"the image processor cannot prepare these images ({str(exc).splitlines()[0][:160]}); "
                           "check preprocessor_config.json (image_mean/image_std per channel)") from exc
    return np.asarray(out[INPUT], dtype=np.float32)


def write_processor_config(folder: Path, model_config: Any) -> None:
    """A `preprocessor_config.json` for a model trained from scratch: resize to the model's input size,
    rescale to [0, 1], normalise with mean 0.5 / std 0.5 per channel."""
    from transformers import ViTImageProcessor

    height, width = input_size(model_config)
    channels = num_channels(model_config)
    processor = ViTImageProcessor(do_resize=True, size={"height": height, "width": width}, do_rescale=True,
                                  do_normalize=True, image_mean=[0.5] * channels, image_std=[0.5] * channels)
    processor.save_pretrained(str(folder))


def preflight_model(folder: Path, processor: Any, trust_remote_code: bool = False) -> str | None:
    """Before any training: what `fit_model` will do to the model in `folder` (None: nothing), or the
    one-line refusal of a processor size it cannot take. Reads config.json only, no weights."""
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True,
                                                         trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TrtEdgeError(f"{folder}: config.json is not a model config transformers knows "
                           f"({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})") from exc
    return plan_input_size(config, processor, str(folder))[1]


# --- batching and prediction (the adapter interface the stages call) -------------------------------

class Encoded:
    """Preprocessed images: `features` hold one {pixel_values: [C, H, W]} per example."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels
        self.features = [{INPUT: pixels[i]} for i in range(len(pixels))]
        self.pad_token_id = 0

    def __len__(self) -> int:
        return len(self.features)

    def lengths(self) -> list[int]:
        return [1] * len(self.features)


def processor_channels(processor: Any) -> int:
    """The channel count the processor normalises (its per-channel mean), 3 when it does not say."""
    mean = getattr(processor, "image_mean", None)
    return len(mean) if isinstance(mean, (list, tuple)) else 3


def encode(processor: Any, images: Sequence[np.ndarray], max_length: int = 0) -> Encoded:
    """`max_length` is unused (images have no sequence axis); kept so text and images share one call."""
    del max_length
    return Encoded(pixel_values(processor, images, processor_channels(processor)))


def collate(features: Sequence[dict[str, Any]], pad_token_id: int = 0) -> dict[str, Any]:
    """Stack a batch; extra keys (labels, teacher logits) are stacked too."""
    import torch

    del pad_token_id
    return {key: torch.stack([torch.as_tensor(np.asarray(f[key])) for f in features]) for key in features[0]}


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if k in SPEC.input_names}


def predict_logits(model: Any, encoded: Encoded, batch_size: int = 64, device: Any = None) -> np.ndarray:
    from trt_edge.tasks.text_classification import predict_logits as predict

    return predict(model, encoded, batch_size, device, collate_fn=collate)


def example_inputs(model_config: Any, names: Sequence[str], int32_inputs: bool, seed: int = 0,
                   preprocessor: Any = None) -> dict[str, Any]:
    """A traced example: batch 2 of random pixels at the model's `input_size` (the processor's)."""
    import torch

    del int32_inputs
    height, width = input_size(model_config, preprocessor)
    generator = torch.Generator().manual_seed(seed)
    tensors = {INPUT: torch.randn(2, num_channels(model_config), height, width, generator=generator)}
    return {n: tensors[n] for n in names}


def feeds(processor: Any, images: Sequence[np.ndarray], model_config: Any = None, channels: int | None = None,
          max_length: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """ONNX feeds for the examples and their "lengths" (all 1: images have no sequence axis)."""
    del max_length
    c = channels if channels is not None else (num_channels(model_config) if model_config is not None
                                               else processor_channels(processor))
    pixels = pixel_values(processor, images, c)
    return {INPUT: pixels}, np.ones(len(pixels), dtype=np.int64)


def runtime_feed(processor: Any, images: Sequence[np.ndarray], runner_inputs: Sequence[Any],
                 runner_name: str = "the model") -> dict[str, np.ndarray]:
    """What a runner takes for decoded images: the processor's pixels (channels as the processor
    normalises them), cast to each declared input's dtype."""
    arrays, _ = feeds(processor, images, channels=processor_channels(processor))
    wanted = {meta.name: meta for meta in runner_inputs}
    missing = [n for n in wanted if n not in arrays]
    if missing:
        raise TrtEdgeError(f"{runner_name}: the model wants inputs {missing}, an image model takes "
                           f"{list(SPEC.input_names)}; is it a text model? use --text")
    return {name: np.asarray(arrays[name]).astype(meta.dtype) for name, meta in wanted.items()}


class ImageClassificationAdapter(ClassificationOutputs):
    """The image-classification task as a `TaskAdapter` (the module functions above, bound)."""

    spec: TaskSpec = SPEC
    text_examples = False
    builds_from_config = True  # `write_processor_config` writes a processor from the model config

    @property
    def has_sequence_axis(self) -> bool:
        return self.spec.has_sequence_axis

    def load_data(self, cfg: DataConfig) -> ClassificationData:
        return load_data(cfg)

    def display_examples(self, examples: Sequence[Any]) -> list[str] | None:
        return None

    def encode(self, preprocessor: Any, examples: Sequence[Any], max_length: int) -> Encoded:
        return encode(preprocessor, examples, max_length)

    def collate(self, features: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
        return collate(features, pad_token_id)

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return model_inputs(batch)

    def predict_logits(self, model: Any, encoded: Any, batch_size: int = 64, device: Any = None) -> np.ndarray:
        return predict_logits(model, encoded, batch_size, device)

    def example_inputs(self, model_config: Any, names: Sequence[str], int32_inputs: bool, seed: int = 0,
                       preprocessor: Any = None) -> dict[str, Any]:
        return example_inputs(model_config, names, int32_inputs, seed, preprocessor)

    def feeds(self, preprocessor: Any, examples: Sequence[Any], max_length: int,
              input_names: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The processor's pixels (lengths all 1); `max_length` is unused (no sequence axis)."""
        arrays, lengths = feeds(preprocessor, examples)
        missing = [n for n in input_names if n not in arrays]
        if missing:
            raise TrtEdgeError(f"the {SPEC.preprocessor.kind} gives {sorted(arrays)}, not the model inputs {missing}")
        return {n: arrays[n] for n in input_names}, lengths

    def fit_model(self, model: Any, preprocessor: Any, source: str = "the model") -> str | None:
        return fit_model(model, preprocessor, source)

    def preflight_model(self, folder: Path, preprocessor: Any, trust_remote_code: bool = False) -> str | None:
        return preflight_model(folder, preprocessor, trust_remote_code)

    def write_processor_config(self, folder: Path, model_config: Any) -> None:
        write_processor_config(folder, model_config)

    def example_seconds(self, preprocessor: Any) -> float | None:
        """None: images are not signals in time."""
        del preprocessor
        return None

    def runtime_feed(self, preprocessor: Any, examples: Sequence[Any], runner_inputs: Sequence[Any],
                     max_length: int, source: str = "the model") -> dict[str, np.ndarray]:
        return runtime_feed(preprocessor, examples, runner_inputs, source)


ADAPTER: TaskAdapter = ImageClassificationAdapter()
