"""CLI commands of the data area (`scenes`, `check-data`), mixed into `trt_edge.cli.TrtEdge`.

Keep each method a few lines: check the arguments, call the library, print a short summary. Heavy
modules are imported inside the methods so `trt-edge --help` stays fast.
"""

from __future__ import annotations

import json
from typing import Any

from trt_edge.errors import TrtEdgeError
from trt_edge.guard import writes_output

DATA_KINDS = ("segmentation", "detection")


def _kind(kind: Any) -> str:
    if kind not in DATA_KINDS:
        raise TrtEdgeError(f"--kind {kind!r}: use one of {', '.join(DATA_KINDS)}")
    return str(kind)


class DataCommands:
    """Commands of the data area: scenes, check-data."""

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

    def check_data(self, source: str, kind: str = "segmentation") -> None:
        """Check a segmentation or detection data set as the tasks do before training; print its summary.

        Segmentation: a folder of images/ + masks/ (+ classes.json), or of train/validation/test such
        folders. Detection: a COCO folder (instances.json + images/), its JSON file, or a folder of
        train/validation/test such folders. A problem is one line naming the file, exit 2.

        Args:
          source: the data folder (or a COCO JSON file).
          kind: segmentation or detection.
        """
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
