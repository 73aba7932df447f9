"""The profile stage end to end on the real exported student through ONNX Runtime: real tokenized
texts, a batch x sequence sweep, per-layer times, power from a tegrastats-format subprocess, the
roofline, profile.json and the reports; and the CLI's handling of bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from trt_edge.config import RunConfig
from trt_edge.stage import read_stage

DATA = Path(__file__).parent / "data"


def test_profile_student_with_power(student_onnx: Path, minilm_student_dir: Path, demo_data_config: Any,
                                    tmp_path: Path) -> None:
    from trt_edge.profile.stage import run

    fake = f"{sys.executable} {DATA / 'fake_tegrastats.py'}"
    config = RunConfig({
        "task": {"data": demo_data_config.to_dict(), "max_length": 64},
        "profile": {"batch": [1, 2], "seq": [16, 32], "iterations": 8, "warmup": 2, "layer_runs": 3,
                    "tokenizer": str(minilm_student_dir), "progress": False, "intra_op_threads": 1,
                    "power": {"source": "tegrastats", "tegrastats": fake, "interval_ms": 20, "idle_s": 0.15,
                              "min_duration_s": 0.25}},
    })
    out = tmp_path / "profile"
    record = run(config, student_onnx, out)
    stage = read_stage(out, "profile")
    assert set(stage["artifacts"]) >= {"profile", "report", "report_html", "plots"}
    profile = json.loads((out / "profile.json").read_text())
    assert profile["inputs"]["kind"] == "texts" and profile["inputs"]["split"] == "test"
    assert [(r["batch"], r["seq"]) for r in profile["runs"]] == [(1, 16), (1, 32), (2, 16), (2, 32)]
    for r in profile["runs"]:
        assert r["iterations"] >= 8 and r["duration_s"] >= 0.25  # the power floor lengthened the window
        e = r["energy"]
        assert e["rails"] == ["VDD_IN"] and e["samples_in_window"] >= 3
        assert 3000 <= e["active_mw"] <= 3090 and e["mj_per_inference"] is not None
        assert e["total_mj_per_inference"] == pytest.approx(e["active_mw"] * r["duration_s"] /
                                                            (r["iterations"] * r["batch"]), rel=0.02)
    assert profile["power"]["available"] and "module input rail VDD_IN" in profile["power"]["rule"]
    assert profile["power"]["trace"]["malformed_lines"] >= 1
    layers = profile["layers"]
    assert layers["source"] == "onnxruntime profiler" and (layers["batch"], layers["seq"]) == (1, 16)
    assert layers["layers"][0]["mean_ms"] >= layers["layers"][-1]["mean_ms"]
    roof = profile["roofline"]
    assert roof["costs"]["gemms_without_shape"] == 0 and roof["costs"]["gemm_flops"] > 0
    assert any(r["device"] == "agx-orin-64gb" for r in roof["rows"])
    assert profile["environment"]["is_jetson"] is False
    assert record.metrics["inputs"] == "texts" and record.metrics["power"] is True
    assert record.metrics["median_ms"] == profile["runs"][0]["latency_ms"]["median"]
    md = (out / "profile.md").read_text()
    assert "## Latency" in md and "mJ/inference" in md and "Roofline estimate (not a measurement)" in md
    html = (out / "profile.html").read_text()
    assert html.count("data:image/png;base64,") == 3  # histogram, layers, power trace
    assert {p.name for p in (out / "plots").iterdir()} == {"latency_hist.png", "layers.png", "power.png"}


def test_cli_profile_without_config_uses_labelled_random_ids(tiny_bert_onnx: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from trt_edge.cli import main

    out = tmp_path / "p"
    main(["profile", "--onnx", str(tiny_bert_onnx), "--out", str(out), "--batch", "1,2", "--seq", "8",
          "--iterations", "5", "--power", "off", "--layers", "false", "--plots", "false", "--progress", "false",
          "--warmup", "1"])
    summary = json.loads(capsys.readouterr().out)
    assert [(p["batch"], p["seq"]) for p in summary["points"]] == [(1, 8), (2, 8)]
    assert summary["inputs"] == "random" and summary["power"] is False
    profile = json.loads((out / "profile.json").read_text())
    assert "random token ids" in profile["inputs"]["description"]
    assert "turned off" in profile["power"]["note"]
    assert "No power measured" in (out / "profile.md").read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["--onnx", "x.onnx", "--engine", "y.plan"], "exactly one of"),
    ([], "exactly one of"),
    (["--onnx", "{tiny}", "--iterations", "3", "--duration", "1"], "not both"),
    (["--onnx", "{missing}"], "no such file"),
    (["--engine", "{plan}"], "model.plan"),  # an engine that fails to load: no manifest, or no TensorRT
    (["--onnx", "{tiny}", "--batch", "x"], "comma-separated integers"),
    (["--onnx", "{tiny}", "--inputs", "texts"], "no task section"),
    (["--onnx", "{tiny}", "--power", "sometimes"], "power.source"),
])
def test_cli_bad_input_exits_2(args: list[str], message: str, tiny_bert_onnx: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    from trt_edge.cli import main

    plan = tmp_path / "model.plan"
    plan.write_bytes(b"not a plan")
    subst = {"{tiny}": str(tiny_bert_onnx), "{missing}": str(tmp_path / "nope.onnx"), "{plan}": str(plan)}
    with pytest.raises(SystemExit) as exc:
        main(["profile", *[subst.get(a, a) for a in args], "--out", str(tmp_path / "o"), "--iterations", "2"]
             if "--iterations" not in args else ["profile", *[subst.get(a, a) for a in args],
                                                 "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_help_works(capsys: pytest.CaptureFixture[str]) -> None:
    from trt_edge.cli import main

    for command in ("profile", "tegrastats"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
    captured = capsys.readouterr()
    assert "tegrastats log" in captured.out + captured.err and "trtexec_log" in captured.out + captured.err


def test_resolve_target(tiny_bert_onnx: Path, tmp_path: Path) -> None:
    import shutil

    from trt_edge.errors import TrtEdgeError
    from trt_edge.profile.stage import resolve_target
    from trt_edge.stage import StageRecord

    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(tiny_bert_onnx, folder / "model.onnx")
    StageRecord(stage="export", config={}, artifacts={"onnx": "model.onnx"}).write(folder)
    assert resolve_target(folder) == ("onnx", folder / "model.onnx", folder)
    assert resolve_target(tiny_bert_onnx) == ("onnx", tiny_bert_onnx, None)
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"x")
    assert resolve_target(plan)[0] == "plan"
    for bad in (tmp_path / "nope", tmp_path / "m.txt"):
        if bad.suffix:
            bad.write_text("x")
        with pytest.raises(TrtEdgeError):
            resolve_target(bad)
