"""The calibration set: real examples drawn stratified from a training split, tokenized, saved as `.npz`.

Never random tensors: activation ranges only mean something on the data the model will see. The set is
stored padded to `max_length` (what ModelOpt's `--calibration_data` and TensorRT's calibrator need: one
fixed shape) together with each example's true length, so ONNX Runtime calibration can trim every
batch to a length bucket and see the same length mix as real traffic. Saved with `np.savez` (no pickle:
it is loaded with `allow_pickle=False`) and identified by its sha256.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge import stats
from trt_edge.errors import TrtEdgeError
from trt_edge.files import atomic_write_bytes, sha256_file
from trt_edge.log import get_logger
from trt_edge.quantize.config import CalibrationDataConfig

log = get_logger("calibrate")


@dataclass
class CalibrationSet:
    """Model inputs (padded token ids [N, max_length] int64, or pixels [N, C, H, W] float32), true
    lengths [N] (1 for images), labels [N], and provenance."""

    inputs: dict[str, np.ndarray]
    lengths: np.ndarray
    labels: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def max_length(self) -> int:
        return int(next(iter(self.inputs.values())).shape[1])

    def head(self, n: int) -> CalibrationSet:
        return CalibrationSet({k: v[:n] for k, v in self.inputs.items()}, self.lengths[:n], self.labels[:n],
                              dict(self.meta))

    def batches(self, batch_size: int, buckets: Sequence[int] = (), names: Sequence[str] | None = None,
                dtypes: dict[str, Any] | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Feeds for ONNX Runtime: examples grouped by the smallest bucket that holds them, each batch
        trimmed to that bucket's length (right padding is masked, so trimming it changes nothing)."""
        from trt_edge.tasks.spec import padding_mask_input

        names = list(names or self.inputs)
        # Only a task with a padding mask has token arrays to trim; pixels and audio ([batch, samples] too)
        # are fed whole.
        sequence = padding_mask_input(self.inputs) is not None
        edges = [*sorted({b for b in buckets if b < self.max_length and sequence}), self.max_length]
        which = np.searchsorted(np.asarray(edges), self.lengths, side="left")
        for bucket_index, width in enumerate(edges):
            idx = np.flatnonzero(which == bucket_index)
            for start in range(0, len(idx), batch_size):
                part = idx[start:start + batch_size]
                feed = {}
                for name in names:
                    array = self.inputs[name][part, :width] if sequence and self.inputs[name].ndim == 2 \
                        else self.inputs[name][part]
                    feed[name] = array.astype((dtypes or {}).get(name, array.dtype), copy=False)
                yield feed

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the set atomically as `.npz` (no pickled objects); return its sha256."""
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {f"input.{k}": _stored(v) for k, v in self.inputs.items()}
        labels = self.labels if self.labels.dtype.kind == "f" else self.labels.astype(np.int64)  # detection: rows
        np.savez(buffer, lengths=self.lengths.astype(np.int64), labels=labels,
                 meta=np.frombuffer(json.dumps(self.meta, sort_keys=True).encode(), dtype=np.uint8), **arrays)
        atomic_write_bytes(path, buffer.getvalue())
        return sha256_file(path)

    def feeds_npz(self, path: str | os.PathLike[str], names: Sequence[str]) -> Path:
        """The same examples as a plain `{input name: array}` npz, the form ModelOpt and polygraphy read."""
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {n: _stored(self.inputs[n]) for n in names}
        np.savez(buffer, **arrays)
        return atomic_write_bytes(path, buffer.getvalue())


def _stored(array: np.ndarray) -> np.ndarray:
    """Token ids as int64, pixels as float32: the dtypes the exported models take."""
    return array.astype(np.int64 if array.dtype.kind in "iub" else np.float32)


def load_calibration_set(path: str | os.PathLike[str], input_names: Sequence[str] = (),
                         min_samples: int = 0) -> CalibrationSet:
    """Read a set saved by `CalibrationSet.save`; refuse one too small or without the model's inputs."""
    p = Path(path)
    if not p.is_file():
        raise TrtEdgeError(f"calibration data not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as data:
            files = set(data.files)
            if "lengths" not in files:
                raise TrtEdgeError(f"{p}: not a trt-edge calibration set (no 'lengths' array); "
                                   "make one with `trt-edge calibrate`")
            inputs = {k.split(".", 1)[1]: np.asarray(data[k]) for k in sorted(files) if k.startswith("input.")}
            lengths = np.asarray(data["lengths"])
            labels = np.asarray(data["labels"]) if "labels" in files else np.full(len(lengths), -1)
            meta = json.loads(bytes(data["meta"]).decode()) if "meta" in files else {}
    except (OSError, ValueError) as exc:
        raise TrtEdgeError(f"{p}: unreadable calibration data ({exc})") from exc
    missing = [n for n in input_names if n not in inputs]
    if missing:
        raise TrtEdgeError(f"{p}: calibration data has inputs {sorted(inputs)}, the model needs "
                           f"{list(input_names)} (missing {missing}); recreate it for this model")
    shapes = {v.shape for v in inputs.values()}
    if len(shapes) != 1 or next(iter(shapes))[0] != len(lengths):
        raise TrtEdgeError(f"{p}: calibration arrays disagree in shape ({sorted(shapes)}); recreate the set")
    if len(lengths) < min_samples:
        raise TrtEdgeError(f"{p}: calibration data holds {len(lengths)} examples, the recipe asks for "
                           f"{min_samples}; lower calibrate.data.samples or make a larger set")
    return CalibrationSet(inputs, lengths, labels, meta)


def prepare(preprocessor: Any, examples: Sequence[Any], max_length: int, input_names: Sequence[str],
            task: str | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Model inputs for examples of `task` and each example's true length: the task adapter's `feeds`
    (token arrays padded to `max_length`, or the image processor's pixels with lengths all 1)."""
    from trt_edge.tasks.adapter import task_adapter

    return task_adapter(task).feeds(preprocessor, examples, max_length, input_names)


def draw_calibration_set(texts: Sequence[Any], labels: Sequence[int], tokenizer: Any,
                         recipe: CalibrationDataConfig, max_length: int, seed: int,
                         input_names: Sequence[str], source: dict[str, Any] | None = None,
                         task: str | None = None) -> CalibrationSet:
    """The first `recipe.samples` examples of a seeded, label-stratified order of the split."""
    from trt_edge.tasks.data import stratified_order
    from trt_edge.tasks.spec import task_spec

    if len(texts) < recipe.samples:
        raise TrtEdgeError(f"the {recipe.split} split has {len(texts)} examples, the calibration recipe asks "
                           f"for {recipe.samples}; lower calibrate.data.samples")
    order = stratified_order([str(label) for label in labels], seed)[: recipe.samples]
    chosen = [texts[i] for i in order]
    arrays, lengths = prepare(tokenizer, chosen, max_length, input_names, task)
    meta = {"split": recipe.split, "samples": recipe.samples, "seed": seed, "max_length": max_length,
            "indices_sha256": _sha_ints(order), **(source or {})}
    if hasattr(labels, "to_array"):  # object rows of varying count (detection): the split's padded array
        label_array = stats.label_array(labels)[np.asarray(order, dtype=np.int64)]
    else:
        label_array = np.asarray([labels[i] for i in order], dtype=np.int64)
    spec = task_spec(task)
    log.info("calibration set: %d %s examples, %s", len(order), recipe.split,
             spec.describe_examples(np.asarray(arrays[spec.first_fed(arrays)]).shape, lengths.tolist()))
    return CalibrationSet(arrays, lengths, label_array, meta)


def _sha_ints(values: Sequence[int]) -> str:
    from trt_edge.files import sha256_json

    return sha256_json([int(v) for v in values])
