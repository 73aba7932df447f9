"""Artifact names and the stage descriptor: what a stage reads and writes, declared once.

Stages talk through files: a finished stage's `stage.json` maps artifact names (roles) to paths in its
folder, and the next stage looks its input up by name (`stage_artifact(folder, ONNX)`). The names are
constants here so a reader and a writer cannot drift apart by a typo, and each stage module exports one
`StageDescriptor` (name, config sections, the stages and artifacts it reads, the artifacts it writes, its
run function) from which the pipeline derives its order, its parent graph and its config hashes.

This module sits beside `trt_edge.stage` (it imports only that, the config type for checking, and `stats`
to read a predictions file), so a stage module declares itself without importing the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trt_edge.stage import STAGE_FILE, StageRecord, read_stage, stage_artifact

if TYPE_CHECKING:  # the type only: the config layer imports the stages' config modules
    from trt_edge.config import RunConfig

# Artifact names (the keys of `stage.json`'s `artifacts`). Changing a value breaks every stage folder
# written before: stages look their inputs up by these names.
MODEL = "model"  # a Hugging Face model folder (distill, width, prune)
TEACHER = "teacher"  # the teacher's model folder, carried for the later stages and the report
PREDICTIONS = "predictions"  # per-example logits and labels (stats.PREDICTIONS_FILE), for paired intervals
SPARSITY = "sparsity"  # the 2:4 sparsity report (prune, carried by export)
ONNX = "onnx"  # the ONNX graph a later stage reads (export: fp32; width: its parity check; calibrate: Q/DQ)
ONNX_DATA = "onnx_data"  # external weights of a >2 GB graph
ONNX_FP16 = "onnx_fp16"
ONNX_FUSED = "onnx_fused"  # the graph with the attention plugin spliced in
ONNX_QAT = "onnx_qat"  # the QAT Q/DQ model, whether deployed or not (qat)
ONNX_CPU = "onnx_cpu"  # the chosen ONNX Runtime CPU candidate (calibrate)
CPU_CANDIDATES = "cpu_candidates"  # every CPU candidate measured (calibrate)
PARITY = "parity"  # torch vs ONNX comparison (export)
PREPROCESSOR = "preprocessor"  # tokenizer or image processor folder
CALIBRATION_DATA = "calibration_data"
CALIBRATION_CACHE = "calibration_cache"  # TensorRT's calibration cache (not written for TensorRT >= 10.x Q/DQ)
RANGES = "ranges"  # per-tensor amax, placement and sensitivity (calibrate)
PLAN = "plan"  # the serialized TensorRT engine (build)
MANIFEST = "manifest"
BUILD_LOG = "build_log"
LAYERS = "layers"  # the engine inspector's per-layer listing
BUNDLE = "bundle"  # the device bundle folder (build without TensorRT here)
PROFILE = "profile"  # profile.json (the standalone profile command)
REPORT_HTML = "report_html"  # profile.html (the standalone profile command)
PLOTS = "plots"  # the profile's plot folder
COMPARISON = "comparison"  # the side-by-side latency comparison of every model of a run
REPORT = "report"
HTML = "html"


@dataclass(frozen=True)
class StageDescriptor:
    """One stage as the pipeline sees it, declared by the stage's own module.

    name: the stage's folder name in a run and its key in `pipeline.stages`.
    sections: the config sections it reads; their hash decides whether a finished stage is rerun, so
        list every section whose change must rerun it (and nothing more: an unrelated edit would rerun it).
    run: the stage function, `run(config, out)` when `reads` is empty, else `run(config, input, out)`.
    reads: the stages whose output it reads, in preference order: the pipeline hands it the first of
        them that is configured (e.g. prune reads width when listed, else distill). Empty: it reads no
        stage (the first stage). Every stage named here must come earlier in the pipeline. For a stage
        that `reads_run`, the earlier stages its input hash covers (empty: every earlier stage).
    consumes: the artifacts it needs from the stage it reads; each must be one that stage writes.
    produces: the artifacts every record of this stage carries: a record without one is refused when it
        is written (`StageRecord.write(..., declared=produces)`).
    may_produce: artifacts it writes only in some configurations (fp16 variant, cache, CPU artifact).
    reads_run: it reads the whole run folder (every earlier stage), e.g. the comparison and the report.
    input_artifact: hand the stage this artifact's path from the stage it reads rather than the folder
        (export-teacher exports distill's `teacher`).
    """

    name: str
    sections: tuple[str, ...]
    run: Callable[..., StageRecord]
    reads: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()
    produces: tuple[str, ...] = ()
    may_produce: tuple[str, ...] = ()
    reads_run: bool = False
    input_artifact: str | None = None

    @property
    def writes(self) -> frozenset[str]:
        """Every artifact a record of this stage may carry."""
        return frozenset(self.produces) | frozenset(self.may_produce)

    def call(self, config: RunConfig, parent: Path | None, out: Path) -> StageRecord:
        """Run the stage on its input (`parent`: the folder of the stage it reads, or the run folder)."""
        if not self.reads and not self.reads_run:
            return self.run(config, out)
        if parent is None:
            raise RuntimeError(f"stage {self.name!r} called without its input")
        if self.input_artifact is not None:
            return self.run(config, stage_artifact(parent, self.input_artifact), out)
        return self.run(config, parent, out)


def stage_predictions(folder: str | Path) -> dict[str, Any]:
    """The arrays of a stage folder's `predictions` artifact (per-example outputs by model, and labels), or
    an empty dict for a folder that is no finished stage or records none. Later stages read the teacher's
    test outputs, carried forward there, with it."""
    from trt_edge import stats

    root = Path(folder)
    if not (root / STAGE_FILE).is_file():
        return {}
    name = (read_stage(root).get("artifacts") or {}).get(PREDICTIONS)
    if not isinstance(name, str) or not (root / name).is_file():
        return {}
    return stats.load_predictions(root / name)


def check_descriptors(descriptors: Sequence[StageDescriptor]) -> None:
    """Raise `RuntimeError` when the descriptors, in pipeline order, do not fit together: a stage reads one
    that comes later or is unknown, or needs an artifact the stage it reads never writes. A programming
    error in the kit, caught when the pipeline is imported rather than in the middle of a run."""
    seen: dict[str, StageDescriptor] = {}
    for d in descriptors:
        if d.name in seen:
            raise RuntimeError(f"stage {d.name!r} declared twice")
        for source in d.reads:
            if source not in seen:
                raise RuntimeError(f"stage {d.name!r} reads {source!r}, which is not an earlier stage")
            missing = [a for a in d.consumes if a not in seen[source].writes]
            if missing:
                raise RuntimeError(f"stage {d.name!r} needs {', '.join(missing)} from {source!r}, "
                                   "which does not write it")
        if d.input_artifact is not None and d.input_artifact not in d.consumes:
            raise RuntimeError(f"stage {d.name!r}: input_artifact {d.input_artifact!r} is not in consumes")
        seen[d.name] = d
