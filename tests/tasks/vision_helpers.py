"""Tiny random-weight vision classifiers and image folders, built in seconds for the vision chain tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

LABELS = ["circle", "square", "stripes"]
SIZE = 16


def write_png_bomb(path: Path, width: int = 40000, height: int = 40000) -> Path:
    """A PNG whose header claims width x height 1-bit pixels, with one tiny IDAT: a few hundred bytes that
    would decode to gigabytes. Only the header is ever read."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def write_idx(path: Path, array: np.ndarray) -> Path:
    """A gzip-compressed IDX file (the MNIST format Debian's Fashion-MNIST package ships)."""
    import gzip
    import struct

    header = b"\0\0\x08" + bytes([array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())
    return path


def write_fashion_mnist(folder: Path, train: int = 40, test: int = 20) -> Path:
    """A tiny Fashion-MNIST folder in Debian's layout: garments are bright random rectangles (so their
    silhouettes are exact), labels cycle through the 10 classes."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", train), ("t10k", test)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        for i in range(n):
            y, x = rng.integers(2, 10, 2)
            h, w = rng.integers(10, 18, 2)
            images[i, y:y + h, x:x + w] = rng.integers(120, 256)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return folder


def write_image_folder(root: Path, per_class: int = 12, size: int = SIZE, mode: str = "L") -> Path:
    """An ImageFolder tree whose classes differ visibly (a model can learn them), PNG via Pillow."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for k, label in enumerate(LABELS):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.normal(0, 20, (size, size))
            if k == 0:
                base = 200.0 * (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 3) ** 2)
            elif k == 1:
                base = 200.0 * ((abs(yy - size / 2) < size / 4) & (abs(xx - size / 2) < size / 4))
            else:
                base = 200.0 * ((xx // 2) % 2)
            gray = np.clip(base + noise + 20, 0, 255).astype(np.uint8)
            img = Image.fromarray(gray, "L")
            if mode != "L":
                img = img.convert(mode)
            img.save(folder / f"{i:03d}.png")
    return root


def vision_config(kind: str, num_labels: int = len(LABELS), channels: int = 3, image_size: int = SIZE,
                  patch_size: int = 4) -> Any:
    import transformers

    common: dict[str, Any] = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                              "intermediate_size": 64, "image_size": image_size, "patch_size": patch_size,
                              "num_channels": channels, "num_labels": num_labels,
                              "id2label": dict(enumerate(LABELS[:num_labels])),
                              "label2id": {n: i for i, n in enumerate(LABELS[:num_labels])}}
    if kind == "vit":
        return transformers.ViTConfig(**common)
    if kind == "deit":
        return transformers.DeiTConfig(**common)
    if kind == "dinov2":
        return transformers.Dinov2Config(**common)
    raise ValueError(kind)


def write_vision_model(folder: Path, kind: str = "vit", num_labels: int = len(LABELS), channels: int = 3,
                       processor: bool = True, image_size: int = SIZE, patch_size: int = 4,
                       processor_size: int | None = None) -> Path:
    """A random-weight image classifier folder (safetensors) with its own preprocessor_config.json.

    `processor_size` gives the folder a processor that makes images of another size than the config's
    `image_size` (a hub DINOv2: config 518, processor 224): DINOv2 gets a BitImageProcessor that resizes
    the shortest edge and centre-crops to it, the others a ViTImageProcessor resizing to it."""
    import torch
    import transformers

    from trt_edge.tasks.image_classification import write_processor_config

    torch.manual_seed(0)
    config = vision_config(kind, num_labels, channels, image_size, patch_size)
    classes = {"vit": "ViTForImageClassification", "deit": "DeiTForImageClassification",
               "dinov2": "Dinov2ForImageClassification"}
    model = getattr(transformers, classes[kind])(config)
    model.save_pretrained(folder, safe_serialization=True)
    if processor and processor_size is not None:
        stats = {"image_mean": [0.5] * channels, "image_std": [0.5] * channels}
        if kind == "dinov2":
            made = transformers.BitImageProcessor(size={"shortest_edge": processor_size + 8}, do_center_crop=True,
                                                  crop_size={"height": processor_size, "width": processor_size},
                                                  do_convert_rgb=False, **stats)
        else:
            made = transformers.ViTImageProcessor(size={"height": processor_size, "width": processor_size}, **stats)
        made.save_pretrained(str(folder))
    elif processor:
        write_processor_config(folder, config)
    return folder


SEGMENTERS = ("segformer", "dpt")


def segmentation_config(kind: str, labels: list[str], image_size: int = 32) -> Any:
    """A tiny random segmenter config: SegFormer (a 2-stage hierarchical MiT encoder with reduced keys,
    output stride 4) or DPT (a plain 8-layer ViT backbone with DPT's dense head reading layers 1, 3, 5, 7,
    output at twice the input's size): `layers: [1, 3, 5, 7]` is a half-depth DPT student."""
    import transformers

    common: dict[str, Any] = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                              "label2id": {n: i for i, n in enumerate(labels)}}
    if kind == "segformer":
        return transformers.SegformerConfig(
            num_encoder_blocks=2, depths=[2, 2], sr_ratios=[2, 1], hidden_sizes=[16, 32], patch_sizes=[7, 3],
            strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2], decoder_hidden_size=32,
            image_size=image_size, **common)
    if kind == "dpt":
        return transformers.DPTConfig(
            hidden_size=32, num_hidden_layers=8, num_attention_heads=2, intermediate_size=64, image_size=image_size,
            patch_size=8, backbone_out_indices=[1, 3, 5, 7], neck_hidden_sizes=[8, 16, 32, 32],
            reassemble_factors=[4, 2, 1, 0.5], fusion_hidden_size=16, use_auxiliary_head=False, **common)
    raise ValueError(kind)


def write_segmentation_model(folder: Path, kind: str, labels: list[str], image_size: int = 32,
                             **overrides: Any) -> Path:
    """A random-weight `AutoModelForSemanticSegmentation` folder (safetensors) with the processor the kit
    writes for a model built from a config (resize to image_size, mean/std 0.5); `overrides` change the
    config (`depths=[1, 1]`: a shallower SegFormer, a separate student)."""
    import torch
    import transformers

    from trt_edge.tasks.semantic_segmentation import ADAPTER

    torch.manual_seed(0)
    config = segmentation_config(kind, labels, image_size)
    for key, value in overrides.items():
        setattr(config, key, value)
    model = transformers.AutoModelForSemanticSegmentation.from_config(config)
    model.save_pretrained(folder, safe_serialization=True)
    ADAPTER.write_processor_config(folder, config)
    return folder


DETECTORS = ("yolos", "detr")


def detection_config(kind: str, labels: list[str], image_size: int = 32, queries: int = 6) -> Any:
    """A tiny random detector config: YOLOS (a plain 4-layer ViT with `queries` detection tokens: the kit's
    ViT machinery applies; `layers: [0, 2]` is a half-depth student) or DETR (a 2-block ResNet from
    transformers, no timm and no hub weights, + a 2-layer encoder and 2-layer decoder with `queries` object
    queries)."""
    import transformers

    common: dict[str, Any] = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                              "label2id": {n: i for i, n in enumerate(labels)}}
    if kind == "yolos":
        return transformers.YolosConfig(
            hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
            image_size=[image_size, image_size], patch_size=8, num_detection_tokens=queries,
            use_mid_position_embeddings=False, **common)
    if kind == "detr":
        backbone = transformers.ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                             layer_type="basic", out_features=["stage2"])
        return transformers.DetrConfig(
            use_timm_backbone=False, backbone_config=backbone, use_pretrained_backbone=False, backbone=None,
            d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
            encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=queries, auxiliary_loss=False,
            image_size=image_size, **common)
    raise ValueError(kind)


def write_detection_model(folder: Path, kind: str, labels: list[str], image_size: int = 32,
                          **overrides: Any) -> Path:
    """A random-weight `AutoModelForObjectDetection` folder (safetensors) with the processor the kit writes
    for a model built from a config (resize to image_size, mean/std 0.5) and the default
    postprocessing.json; `overrides` change the config (`encoder_layers=1`: a shallower DETR student)."""
    import torch
    import transformers

    from trt_edge.tasks.object_detection import ADAPTER

    torch.manual_seed(0)
    config = detection_config(kind, labels, image_size)
    for key, value in overrides.items():
        setattr(config, key, value)
    model = transformers.AutoModelForObjectDetection.from_config(config)
    model.save_pretrained(folder, safe_serialization=True)
    ADAPTER.write_processor_config(folder, config)
    return folder


def assert_report_overlays(run_dir: Path, count: int = 4) -> None:
    """A segmentation or detection run's report (issue 28): the first `count` test images drawn with the
    teacher's and the final model's predictions, PNGs of the image's own size next to report.md, referenced by
    it and inline in report.html; the teacher's drawing is `runtime.overlay`'s of the teacher's saved test
    outputs on test image 0 (the images and the saved outputs are paired in order)."""
    from PIL import Image

    from trt_edge import stats
    from trt_edge.config import RunConfig
    from trt_edge.runtime import overlay as drawing
    from trt_edge.stage import read_stage
    from trt_edge.tasks.adapter import load_task_data

    report = run_dir / "report"
    md = (report / "report.md").read_text(encoding="utf-8")
    page = (report / "report.html").read_text(encoding="utf-8")
    assert "## Predictions on test images" in md and "Predictions on test images" in page
    task = RunConfig({"task": read_stage(run_dir / "distill")["config"]["task"]}).section("task")
    data = load_task_data(task)
    images = data.test.examples[:count]
    count = len(images)  # the first 4, or every test image of a smaller split
    assert count >= 1
    for i, image in enumerate(images):
        for which in ("teacher", "final"):
            name = f"overlay_{i}_{which}.png"
            with Image.open(report / name) as png:
                assert png.size == (image.shape[1], image.shape[0]) and png.mode == "RGB", name
            assert f"]({name})" in md and f'data-file="{name}"' in page, name
    assert not (report / f"overlay_{count}_teacher.png").exists()
    teacher = stats.load_predictions(run_dir / "distill" / stats.PREDICTIONS_FILE)["teacher"]
    with Image.open(report / "overlay_0_teacher.png") as png:
        drawn = np.asarray(png)
    if teacher.ndim == 4:  # per-pixel logits: the blended class map
        expected = drawing.segmentation_overlay(np.asarray(images[0]), teacher[0])
    else:
        import json

        settings = json.loads((run_dir / "calibrate" / "preprocessor" / "preprocessor_config.json").read_text())
        post = settings["trt_edge_postprocessing"]
        (boxes,) = drawing.detection_boxes(teacher[:1], [images[0].shape[:2]], data.label_names,
                                           post["threshold"], post["top_k"])
        expected = drawing.draw_boxes(np.asarray(images[0]), boxes)
    assert np.array_equal(drawn, expected)
