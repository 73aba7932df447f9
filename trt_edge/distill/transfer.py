"""The transfer set: unlabelled in-domain examples (texts or images) for the teacher to score
(`distill.transfer`).

A 3-class tweet task with 4,000 labelled examples gives a student little more to learn from its teacher
than from the labels themselves: on the demo, logit distillation on the labelled split alone tied the
hard-label ablation. The teacher's soft targets carry their information on *any* in-domain text, so the
student is also trained on texts nobody labelled for this run (Hinton et al.'s transfer set). Texts of
the validation and test splits are always removed, so no gated figure is measured on a text the student
was taught on.

Images work the same way, and a camera team usually has far more unlabelled frames than labelled ones:
`unused` takes the images of the task's source that no split drew, or a folder of images (labels and
sub-folders ignored); images equal to one of a labelled split (byte for byte) are removed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trt_edge.distill.config import TransferConfig
from trt_edge.errors import TrtEdgeError
from trt_edge.log import get_logger
from trt_edge.tasks.config import DataConfig, TaskConfig
from trt_edge.tasks.data import TextClassificationData, detect_format, read_table, read_text_folder, resolve_data_source

log = get_logger("distill")


def _raw_texts(data_cfg: DataConfig) -> list[str]:
    """Every text of a source, labels and filters ignored (a transfer set needs no labels)."""
    path = resolve_data_source(data_cfg.source)
    fmt = detect_format(path, data_cfg.format)
    if fmt == "folder":
        texts, _ = read_text_folder(path, data_cfg)
        return texts
    rows = read_table(path, fmt, data_cfg)
    if rows and data_cfg.text_column not in rows[0]:
        raise TrtEdgeError(f"{path}: no column {data_cfg.text_column!r} (distill.transfer.text_column); columns: "
                           f"{', '.join(map(str, rows[0].keys()))}")
    return [str(r.get(data_cfg.text_column) or "").strip() for r in rows]


def _draw(pool: list[Any], used: set[Any], key: Callable[[Any], Any], max_examples: int | None,
          seed: int) -> tuple[list[Any], int]:
    """The pool without examples of a labelled split or repeats (by `key`), shuffled with the task's seed,
    capped; and how many were available before the cap."""
    seen: set[Any] = set()
    kept = []
    for example in pool:
        k = key(example)
        if k not in used and k not in seen:
            seen.add(k)
            kept.append(example)
    available = len(kept)
    random.Random(seed).shuffle(kept)
    return (kept[:max_examples] if max_examples is not None else kept), available


def transfer_source_path(cfg: TransferConfig, task_data: DataConfig) -> Path | None:
    """The file or folder the transfer set comes from (for the stage's input hashes)."""
    if cfg.source is None:
        return None
    return resolve_data_source(task_data.source if cfg.source == "unused" else cfg.source)


def transfer_input(cfg: TransferConfig, task_data: DataConfig) -> dict[str, str]:
    """The stage input hash of the transfer source ({} when there is none), so changing it reruns the stage."""
    from trt_edge.files import sha256_tree

    path = transfer_source_path(cfg, task_data)
    return {"transfer": sha256_tree(path)} if path is not None else {}


def transfer_texts(cfg: TransferConfig, task_data: DataConfig, data: TextClassificationData
                   ) -> tuple[list[str], dict[str, Any]]:
    """The transfer texts (deduplicated, no text of any labelled split) and what to record about them."""
    if cfg.source is None:
        return [], {}
    if cfg.source == "unused":
        source_cfg = task_data
    else:
        source_cfg = DataConfig(source=cfg.source, encoding=task_data.encoding,
                                text_column=cfg.text_column or task_data.text_column)
    if cfg.source == "unused" and cfg.text_column:
        source_cfg = source_cfg.replace(text_column=cfg.text_column)
    raw = [t for t in _raw_texts(source_cfg) if t]
    used = set(data.train.texts) | set(data.validation.texts) | set(data.test.texts)
    texts, available = _draw(raw, used, lambda text: text, cfg.max_examples, task_data.seed)
    if not texts:
        raise TrtEdgeError(f"distill.transfer.source {cfg.source!r}: no text left once the labelled splits' texts "
                           "are removed; point it at more in-domain text, or set it to null")
    log.info("transfer set: %d unlabelled texts from %s (%d available)", len(texts), cfg.source, available)
    return texts, {"source": cfg.source, "examples": len(texts), "available": available}


def transfer_examples(cfg: TransferConfig, task: TaskConfig, data: TextClassificationData
                      ) -> tuple[list[Any], dict[str, Any]]:
    """The transfer set of the task's examples: `transfer_texts` for texts (the adapter's
    `text_examples`), images otherwise."""
    from trt_edge.tasks.adapter import task_adapter

    if task_adapter(task.type).text_examples:
        texts, info = transfer_texts(cfg, task.data, data)
        return list(texts), info
    return transfer_images(cfg, task.data, data)


def _image_digest(image: Any) -> bytes:
    import hashlib

    digest = hashlib.sha256(str(getattr(image, "shape", "")).encode())
    digest.update(bytes(memoryview(image)))
    return digest.digest()


def transfer_images(cfg: TransferConfig, task_data: DataConfig, data: TextClassificationData
                    ) -> tuple[list[Any], dict[str, Any]]:
    """Unlabelled images: the source's images no split drew (`unused`), or every image under a folder;
    none equal to an image of a labelled split, none twice, drawn with the task's seed."""
    if cfg.source is None:
        return [], {}
    if cfg.source == "unused":
        pool = list(data.unused)
    else:
        from trt_edge.tasks.image_classification import read_unlabelled_images

        pool = read_unlabelled_images(resolve_data_source(cfg.source))
    used = {_image_digest(x) for split in (data.train, data.validation, data.test) for x in split.examples}
    images, available = _draw(pool, used, _image_digest, cfg.max_examples, task_data.seed)
    if not images:
        raise TrtEdgeError(f"distill.transfer.source {cfg.source!r}: no image left once the labelled splits' images "
                           "are removed (every image of the source is in a split); point it at a folder of "
                           "unlabelled images, lower task.data.train_size, or set it to null")
    log.info("transfer set: %d unlabelled images from %s (%d available)", len(images), cfg.source, available)
    return images, {"source": cfg.source, "examples": len(images), "available": available}
