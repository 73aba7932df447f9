"""CLI commands of the data area (`scenes`, `speech`, `check-data`), mixed into `trt_edge.cli.TrtEdge`.

Keep each method a few lines: check the arguments, call the library, print a short summary. Heavy
modules are imported inside the methods so `trt-edge --help` stays fast.
"""

from __future__ import annotations

import json
from typing import Any

from trt_edge.errors import TrtEdgeError
from trt_edge.guard import writes_output
from trt_edge.tasks.speech import DEFAULT_WORDS

DATA_KINDS = ("segmentation", "detection", "audio")


def _kind(kind: Any) -> str:
    if kind not in DATA_KINDS:
        raise TrtEdgeError(f"--kind {kind!r}: use one of {', '.join(DATA_KINDS)}")
    return str(kind)


class DataCommands:
    """Commands of the data area: scenes, speech, check-data."""

    @writes_output()
    def scenes(self, out: str = "data/scenes", kind: str = "segmentation", count: int = 3000, size: int = 128,
               seed: int = 0) -> None:
        """Write synthetic demo scenes (Fashion-MNIST garments on textured backgrounds) for segmentation/detection.

        The scenes are written in the formats users have: segmentation as SPLIT/images/ + SPLIT/masks/
        (class-index PNGs) + classes.json, detection as SPLIT/images/ + SPLIT/instances.json (COCO), for
        the splits train, validation and test (80/10/10; test scenes use only Fashion-MNIST's test
        garments). Needs Debian's dataset-fashion-mnist. The same seed gives the same files.

        Args:
          out: output folder (new, empty, or a previous `trt-edge scenes` output); written atomically.
          kind: segmentation or detection.
          count: scenes in all (split 80/10/10).
          size: image side in pixels (square scenes).
          seed: the seed of every random choice.
        """
        from pathlib import Path

        from trt_edge.stage import StageRecord, stage_output
        from trt_edge.tasks.scenes import check_request, write_scenes

        check_request(kind, count, size, seed)
        config = {"kind": kind, "count": count, "size": size, "seed": seed}
        with stage_output(out) as tmp:
            summary = write_scenes(Path(tmp), kind, count, size, seed)
            record = StageRecord(stage="scenes", config=config, metrics={"splits": summary["splits"]})
            if kind == "segmentation":
                record.artifacts = {"classes": "classes.json", **{s: s for s in summary["splits"]}}
            else:
                record.artifacts = {s: f"{s}/instances.json" for s in summary["splits"]}
            record.write(tmp)
        print(json.dumps({"out": out, **config, "splits": summary["splits"]}))

    @writes_output()
    def speech(self, out: str = "data/speech", words: Any = ",".join(DEFAULT_WORDS), voices: int = 40,
               per_voice: int = 3, seconds: float = 1.0, seed: int = 0) -> None:
        """Write synthetic spoken commands (espeak-ng voices, jittered, in noise) as a Speech Commands folder.

        Each voice is an espeak-ng English accent and voice variant with its own base speed and pitch; every
        clip varies both a little and is mixed with white, pink or brown noise. Written as train/, validation/
        and test/ folders that share no voice (20% of the voices test, 10% validation), one folder per word
        of VOICE_nohash_N.wav (16 kHz mono), plus _background_noise_/. Synthetic speech: it shows the chain
        keeps word identity across unseen synthetic voices, not accuracy on people. Needs espeak-ng
        (apt-get install espeak-ng). The same seed gives the same files.

        Args:
          out: output folder (new, empty, or a previous `trt-edge speech` output); written atomically.
          words: comma-separated command words (default: the ten Speech Commands words).
          voices: how many synthetic voices (at least 3).
          per_voice: clips of each word per voice.
          seconds: clip length in seconds.
          seed: the seed of every random choice.
        """
        from pathlib import Path

        from trt_edge.stage import StageRecord, stage_output
        from trt_edge.tasks.speech import check_request, espeak, write_speech

        listed = [str(w).strip().lower() for w in (words.split(",") if isinstance(words, str) else words)]
        check_request(listed, int(voices), int(per_voice), float(seconds))
        espeak()  # the install line, before an output folder exists
        config = {"words": listed, "voices": int(voices), "per_voice": int(per_voice), "seconds": float(seconds),
                  "seed": int(seed)}
        with stage_output(out) as tmp:
            summary = write_speech(Path(tmp), listed, int(voices), int(per_voice), float(seconds), int(seed))
            StageRecord(stage="speech", config=config, metrics=summary,
                        artifacts={s: s for s in summary["clips"]}).write(tmp)
        print(json.dumps({"out": out, **config, "clips": summary["clips"]}))

    def check_data(self, source: str, kind: str = "segmentation") -> None:
        """Check a segmentation, detection or audio data set as the tasks do before training; print its summary.

        Segmentation: a folder of images/ + masks/ (+ classes.json), or of train/validation/test such
        folders. Detection: a COCO folder (instances.json + images/), its JSON file, or a folder of
        train/validation/test such folders. A problem is one line naming the file, exit 2.

        Args:
          source: the data folder (or a COCO JSON file).
          kind: segmentation, detection or audio (a Speech Commands folder: class folders of WAV/FLAC,
            split by voice or by train/validation/test folders; every file decoded and checked).
        """
        if _kind(kind) == "audio":
            from trt_edge.tasks.adapter import task_adapter
            from trt_edge.tasks.config import DataConfig

            data = task_adapter("audio-classification").load_data(DataConfig(source=source))
            print(json.dumps({"kind": kind, "classes": data.label_names,
                              "splits": {n: {"clips": len(data.split(n))} for n in ("train", "validation", "test")},
                              "preparation": data.preparation}))
            return
        if _kind(kind) == "segmentation":
            from trt_edge.tasks.segmentation_data import load_segmentation

            seg = load_segmentation(source)
            first = next(iter(seg.values()))
            summary: dict[str, Any] = {"kind": kind, "classes": first.classes.names,
                                       "ignore_index": first.classes.ignore_index,
                                       "splits": {name: {"images": len(d)} for name, d in seg.items()}}
        else:
            from trt_edge.tasks.coco import load_detection

            det = load_detection(source)
            first_det = next(iter(det.values()))
            summary = {"kind": kind, "categories": {str(c): n for c, n in sorted(first_det.categories.items())},
                       "splits": {name: {"images": len(d), "objects": d.num_objects()} for name, d in det.items()}}
        print(json.dumps(summary))
