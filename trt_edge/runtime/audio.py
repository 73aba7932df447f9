"""Audio classification end to end over any runner: decode, resample, featurise, run, softmax, label; and a
sliding window over a long recording, as an always-on keyword spotter runs.

The feature extractor (`preprocessor_config.json`) and the label names come from the preprocessor folder that
travels with the model file (`trt_edge.tasks.spec.preprocessor_dir`), so an export, a calibrate folder or an
on-device bundle hears audio the way the model was trained on it: decoded with soundfile, downmixed to mono,
resampled to the extractor's rate and featurised by the model's own extractor (the task adapter's
`runtime_feed`). No input name is written here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.log import get_logger
from trt_edge.runtime.base import Runner, logits_in_chunks
from trt_edge.runtime.text import class_names, softmax
from trt_edge.tasks.adapter import TaskAdapter
from trt_edge.tasks.audio_classification import ADAPTER, read_clips
from trt_edge.tasks.audio_data import Clip

TASK: TaskAdapter = ADAPTER  # the task this runtime classifies for
log = get_logger("run")

MAX_CLIPS = 10_000
MAX_WINDOWS = 100_000


@dataclass
class Detection:
    """A stretch of a recording whose windows agree on one class above the threshold: start and end in seconds
    (the first window's start, the last window's end), the label and its highest probability."""

    start: float
    end: float
    label: str
    probability: float
    windows: int

    def to_dict(self) -> dict[str, Any]:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "label": self.label,
                "probability": round(self.probability, 6), "windows": self.windows}


class AudioClassifier:
    """Classify clips with a runner (activated for the call when it is not active).

    Args:
      runner: any `Runner` whose outputs include the task's output (or a single output).
      extractor: the model's Hugging Face feature extractor.
      label_names: class names in logit order; None reads them from the preprocessor folder or `LABEL_i`.
      batch_size: clips per inference call (keep it within the engine's batch profile). Defaults to 32.
    """

    def __init__(self, runner: Runner, extractor: Any, label_names: Sequence[str] | None = None,
                 batch_size: int = 32) -> None:
        self.runner = runner
        self.extractor = extractor
        self.label_names = list(label_names) if label_names is not None else None
        self.batch_size = batch_size
        self._label_folder: Path | None = None

    @classmethod
    def from_model_file(cls, runner: Runner, model_file: str | os.PathLike[str],
                        extractor_dir: str | os.PathLike[str] | None = None, batch_size: int = 32) -> AudioClassifier:
        """The feature extractor (and the label names in its folder's `config.json`) for `model_file`."""
        from trt_edge.tasks.spec import preprocessor_dir

        folder = preprocessor_dir(model_file, extractor_dir)
        classifier = cls(runner, TASK.spec.preprocessor.load(folder), None, batch_size)
        classifier._label_folder = folder
        return classifier

    @property
    def clip_seconds(self) -> float:
        """The seconds of audio one model input holds."""
        return float(TASK.example_seconds(self.extractor) or 0.0)

    def _feed(self, clips: Sequence[Clip]) -> dict[str, np.ndarray]:
        return TASK.runtime_feed(self.extractor, clips, self.runner.inputs(), 0, self.runner.name)

    def probabilities(self, clips: Sequence[Clip]) -> np.ndarray:
        """Class probabilities, one row per clip, in order (and the label names resolved)."""
        if not clips:
            raise TrtEdgeError("no audio to classify")
        logits = logits_in_chunks(self.runner, list(clips), self.batch_size, self._feed, TASK.spec.output)
        self.label_names = class_names(self.label_names, self._label_folder, logits.shape[-1])
        return softmax(logits)

    def classify(self, files: Sequence[Path | str]) -> list[dict[str, Any]]:
        """One record per clip of the files (a folder: its audio files, recursively, by path): the file, its
        duration, the label, its index and probability, and every class's probability."""
        found = [item for f in files for item in read_clips(Path(f).expanduser())]
        if len(found) > MAX_CLIPS:
            raise TrtEdgeError(f"--audio: {len(found)} files; classify at most {MAX_CLIPS} per call")
        self._say_length([clip for _, clip in found])
        out = []
        for (file, clip), row in zip(found, self.probabilities([c for _, c in found]), strict=True):
            index = int(row.argmax())
            names = self.label_names or []
            out.append({"audio": str(file), "seconds": round(clip.seconds, 3), "label": names[index], "index": index,
                        "probability": round(float(row[index]), 6),
                        "probabilities": {n: round(float(p), 6) for n, p in zip(names, row, strict=True)}})
        return out

    def stream(self, file: Path | str, window: float | None, hop: float, threshold: float) -> list[Detection]:
        """Slide a `window`-second window (None: the model's clip length) by `hop` seconds over a recording and
        return the detections: runs of consecutive windows whose top class is the same with probability at least
        `threshold`, merged into one (start of the first window, end of the last)."""
        path = Path(file).expanduser()
        if path.is_dir():
            raise TrtEdgeError(f"--stream {file}: give one recording, not a folder (--audio FOLDER classifies clips)")
        ((_, clip),) = read_clips(path)
        seconds = float(window) if window else self.clip_seconds
        if not 0 < hop <= seconds:
            raise TrtEdgeError(f"--hop {hop}: give a hop above 0 and at most the window ({seconds:g} s)")
        size, step = round(seconds * clip.rate), max(1, round(hop * clip.rate))
        if size > len(clip):
            raise TrtEdgeError(f"--stream {path}: the recording ({clip.seconds:.2f} s) is shorter than one "
                               f"{seconds:g} s window")
        starts = list(range(0, len(clip) - size + 1, step))
        if len(starts) > MAX_WINDOWS:
            raise TrtEdgeError(f"--stream {path}: {len(starts)} windows; raise --hop (at most {MAX_WINDOWS})")
        windows = [Clip(np.asarray(clip[s:s + size]), clip.rate) for s in starts]
        self._say_length(windows)
        probs = self.probabilities(windows)
        names = self.label_names or []
        found: list[Detection] = []
        for s, row in zip(starts, probs, strict=True):
            index = int(row.argmax())
            start, end, p = s / clip.rate, (s + size) / clip.rate, float(row[index])
            if p < threshold:
                continue
            last = found[-1] if found else None
            if last is not None and last.label == names[index] and start <= last.end:
                last.end, last.probability, last.windows = end, max(last.probability, p), last.windows + 1
            else:
                found.append(Detection(start, end, names[index], p, 1))
        return found

    def _say_length(self, clips: Sequence[Clip]) -> None:
        """Log once when clips differ in length from what the model takes (they are padded or cropped)."""
        model = self.clip_seconds
        longest = max((c.seconds for c in clips), default=model)
        if model and abs(longest - model) > 1e-3:
            log.info("the model takes %.3g s clips: longer clips are cropped about their centre (spectrogram "
                     "models: truncated), shorter ones padded with silence", model)
