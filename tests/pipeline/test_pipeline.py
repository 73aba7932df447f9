"""`trt-edge pipeline` end to end on a tiny model: every stage, resume after a kill, hand-edit detection."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from trt_edge.config import RunConfig
from trt_edge.errors import GateError, TrtEdgeError
from trt_edge.pipeline.runner import RUN_FILE, run_pipeline
from trt_edge.stage import read_stage

ENV = {**os.environ, "PAGER": "cat", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def tiny_config(tiny_bert_dir: Path, demo_data_config, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    raw = tiny_raw(tiny_bert_dir, demo_data_config, tmp_path_factory.mktemp("cache"))
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def tiny_raw(tiny_bert_dir: Path, demo_data_config: Any, cache: Path) -> dict[str, Any]:
    """The tiny pipeline's config (a 2-layer random BERT teacher, a 1-layer student, 240 tweets), shared
    with the other pipeline tests."""
    data = demo_data_config.replace(max_examples=240, train_size=160, validation_size=40, test_size=40).to_dict()
    return {
        "version": 1,
        "name": "tiny-pipeline",
        "task": {"max_length": 32, "eval_batch_size": 64, "data": data},
        "distill": {"teacher": str(tiny_bert_dir), "teacher_finetune": "never", "student": {"layers": [1]},
                    "train": {"epochs": 1, "batch_size": 32}, "ablation": False, "cache_dir": str(cache)},
        "prune": {"train": {"epochs": 1, "batch_size": 32, "max_steps": 3}, "permutation_seconds": 0.5,
                  "cache_dir": str(cache)},
        "export": {"parity_batch_sizes": [1, 2], "parity_sequence_lengths": [16], "parity_max_examples": 8},
        "calibrate": {"data": {"samples": 32, "length_buckets": [16, 32]}, "latency_runs": 3,
                      "gate": {"budget": 100.0, "mixed_precision": False}},
        "pipeline": {"gates": {"distill": 100.0, "prune": 100.0, "calibrate": 100.0},
                     "compare_shapes": [[1, 16]], "compare_rounds": 1, "compare_runs": 2},
    }


def _check_rendered(html: Path, png: Path) -> None:
    """The self-contained report renders in headless Chromium: table rows in the DOM, plots decoded, and a
    screenshot that is not blank."""
    from .chromium import chromium, render

    if chromium() is None:  # tests/pipeline/test_report.py reports the skip; this test checks the pipeline
        return
    dom = render(html, png)
    assert "<table" in dom and "teacher" in dom and dom.count("<tr>") >= 5
    assert dom.count("data:image/png;base64,") >= 2
    import matplotlib.image

    pixels = matplotlib.image.imread(str(png))
    assert pixels.shape[0] > 500 and pixels.std() > 0.05  # text, table and plots, not an empty page


def _recorded(run_dir: Path) -> set[str]:
    try:
        return set(json.loads((run_dir / RUN_FILE).read_text()).get("stages", {}))
    except (OSError, ValueError):
        return set()


def _cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "trt_edge", "pipeline", *args], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_pipeline_resumes_without_recomputing(tiny_config: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _cli("--config", str(tiny_config), "--out", str(run_dir), cwd=tmp_path)
    deadline = time.time() + 600
    # Kill (SIGKILL: nothing gets to clean up) as soon as the first stage is recorded as finished, while
    # the next one is running.
    while "distill" not in _recorded(run_dir):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline, "distill did not finish"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.parent.name for p in run_dir.glob("*/stage.json")}
    assert "distill" in finished and "report" not in finished, finished
    before = {name: read_stage(run_dir / name)["finished"] for name in finished}

    resumed = _cli("--config", str(tiny_config), "--out", str(run_dir), cwd=tmp_path)
    out, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err[-3000:]
    rows = {r["stage"]: r for r in json.loads(out)}
    for name in rows:
        if name in finished:  # finished before the kill: not recomputed
            assert rows[name]["status"] == "skipped", (name, rows)
            assert read_stage(run_dir / name)["finished"] == before[name]
        else:
            assert rows[name]["status"] == "ran", (name, rows)
    assert "distill: up to date, skipped" in err
    assert not list(run_dir.glob(".*.partial-*")), "the killed stage's temporary folder was not removed"
    for stage in ("prune", "export", "export-teacher", "calibrate", "build", "profile", "report"):
        assert (run_dir / stage / "stage.json").is_file(), stage
    assert (run_dir / "report" / "report.html").read_text().startswith("<!doctype html>")
    _check_rendered(run_dir / "report" / "report.html", tmp_path / "report.png")
    comparison = json.loads((run_dir / "profile" / "comparison.json").read_text())
    assert {m["label"] for m in comparison["models"]} >= {"teacher fp32", "student fp32"}

    # A rerun with nothing changed runs nothing; editing a stage folder by hand reruns it and what follows.
    again = run_pipeline(RunConfig(yaml.safe_load(tiny_config.read_text())), run_dir)
    assert all(r.status == "skipped" for r in again)
    onnx = run_dir / "export" / read_stage(run_dir / "export")["artifacts"]["onnx"]
    original = onnx.read_bytes()
    onnx.write_bytes(original + b"\0")
    edited = {r.name: r.status for r in run_pipeline(RunConfig(yaml.safe_load(tiny_config.read_text())), run_dir)}
    assert edited["distill"] == edited["prune"] == edited["export-teacher"] == "skipped"
    assert edited["export"] == "ran" and onnx.read_bytes() == original  # re-exported, byte for byte
    assert edited["calibrate"] == "skipped"  # its input is the same again: nothing to redo
    # A changed config section reruns its stage and every stage that reads its output.
    raw = yaml.safe_load(tiny_config.read_text())
    raw["calibrate"]["calibrator"] = {"method": "max"}
    changed = {r.name: r.status for r in run_pipeline(RunConfig(raw), run_dir)}
    assert changed["export"] == "skipped" and changed["calibrate"] == "ran"
    assert changed["build"] == changed["profile"] == changed["report"] == "ran"
    record = json.loads((run_dir / RUN_FILE).read_text())
    assert set(record["stages"]) >= {"distill", "prune", "export", "calibrate", "report"}


def test_gate_names_the_stage_and_other_config_is_refused(tiny_config: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load(tiny_config.read_text())
    raw["pipeline"]["stages"] = ["distill"]
    raw["pipeline"]["gates"] = {"distill": 0.0}
    raw["distill"]["train"]["max_steps"] = 1
    run_dir = tmp_path / "run"
    # An untrained one-layer student is worse than its two-layer teacher on some example, or equal:
    # either way the gate's figures name the stage.
    try:
        run_pipeline(RunConfig(raw), run_dir)
    except GateError as exc:
        assert "stage 'distill'" in str(exc) and exc.figures["stage"] == "distill"
    raw["name"] = "another-config"
    with pytest.raises(TrtEdgeError, match="holds a run of config 'tiny-pipeline'"):
        run_pipeline(RunConfig(raw), run_dir)
    with pytest.raises(TrtEdgeError, match="--from 'calibrate' is not among the configured stages"):
        run_pipeline(RunConfig({**raw, "name": "tiny-pipeline"}), run_dir, start="calibrate")
