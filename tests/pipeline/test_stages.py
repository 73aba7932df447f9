"""Stages that declare themselves: the pipeline's order, parents and hashes come from the stage modules'
descriptors, and a record that lacks a declared artifact is refused when it is written."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from trt_edge.artifacts import MODEL, ONNX, PARITY, StageDescriptor, check_descriptors
from trt_edge.errors import TrtEdgeError
from trt_edge.export import stage as export_stage
from trt_edge.pipeline import runner
from trt_edge.pipeline.config import STAGES
from trt_edge.stage import STAGE_FILE, StageRecord, stage_output

# The graph the pipeline had when it was written by hand (bfff7c0): the descriptors must give the same one,
# or runs written before would read another parent.
_OLD_PARENTS = {"distill": (), "width": ("distill",), "export-teacher": ("distill",), "prune": ("width", "distill"),
                "export": ("prune", "width", "distill"), "calibrate": ("export",),
                "build": ("qat", "calibrate", "export")}  # qat (issue 31) joined build's sources first
# ... and the config sections each stage hashed: a change would rerun every finished stage of an old run.
_OLD_SECTIONS = {
    "distill": ("task", "distill"), "width": ("task", "distill", "width", "export"),
    "prune": ("task", "distill", "prune"), "export": ("task", "target", "export"),
    "export-teacher": ("task", "target", "export"), "calibrate": ("task", "target", "calibrate"),
    "build": ("target", "build"), "profile": ("task", "profile"), "report": ("pipeline",),
    "qat": ("task", "target", "calibrate", "qat"),
}

_STAGE_LISTS = [
    list(STAGES),
    [s for s in STAGES if s != "width"],
    ["distill", "export", "calibrate", "build", "report"],
    ["distill", "width", "export", "build"],
    ["distill", "prune", "export", "export-teacher", "profile"],
    ["distill", "export", "calibrate", "qat", "build", "report"],
]


def _expected_parent(name: str, stages: list[str], root: Path) -> Path | None:
    if name in ("profile", "report", "qat"):  # they read the whole run folder
        return root
    candidates = _OLD_PARENTS[name]
    if not candidates:
        return None
    return root / next(c for c in candidates if c in stages)


@pytest.mark.parametrize("stages", _STAGE_LISTS, ids=lambda s: "-".join(s))
def test_parent_graph_is_derived_from_descriptors(stages: list[str], tmp_path: Path) -> None:
    specs = {d.name: d for d in runner.DESCRIPTORS}
    assert tuple(specs) == STAGES  # the documented order
    for name in stages:
        parent = runner.parent_of(name, stages, tmp_path)
        assert parent == _expected_parent(name, stages, tmp_path), name
        spec = specs[name]
        if parent is not None and parent != tmp_path:  # the stage it reads writes what it consumes
            assert set(spec.consumes) <= specs[parent.name].writes, name
            assert stages.index(parent.name) < stages.index(name)


def test_descriptors_keep_the_hashed_sections() -> None:
    assert {d.name: d.sections for d in runner.DESCRIPTORS} == _OLD_SECTIONS
    assert runner.SPECS["export-teacher"].input_artifact == "teacher"


def test_a_stage_without_what_it_reads_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TrtEdgeError, match="stage 'calibrate' needs one of export"):
        runner.parent_of("calibrate", ["distill", "calibrate"], tmp_path)


def test_descriptors_that_do_not_fit_are_a_bug() -> None:
    export = export_stage.STAGE
    with pytest.raises(RuntimeError, match="not an earlier stage"):
        check_descriptors([export])  # reads prune/width/distill, none declared before it
    source = StageDescriptor("source", (), export.run, produces=(ONNX,))
    with pytest.raises(RuntimeError, match="needs model from 'source'"):
        check_descriptors([source, replace(export, reads=("source",))])
    check_descriptors([source, replace(export, reads=("source",), consumes=(ONNX,))])


def test_record_missing_a_declared_artifact_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "export"
    record = StageRecord(stage="export", config={}, artifacts={ONNX: "model.onnx"})
    with pytest.raises(TrtEdgeError) as info, stage_output(out) as tmp:
        (tmp / "model.onnx").write_bytes(b"onnx")
        record.write(tmp, declared=export_stage.STAGE.produces)
    message = str(info.value)
    assert "\n" not in message and "stage export" in message and repr(PARITY) in message
    assert not (out / STAGE_FILE).exists()  # nothing a later stage could take for a finished one


def test_record_with_every_declared_artifact_is_written(tmp_path: Path) -> None:
    record = StageRecord(stage="distill", config={}, artifacts={MODEL: "model"})
    with stage_output(tmp_path / "s") as tmp:
        (tmp / "model").mkdir()
        record.write(tmp, declared=(MODEL,))
    assert (tmp_path / "s" / STAGE_FILE).is_file()
