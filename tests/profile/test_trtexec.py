"""trtexec interop: the performance summary (as sampleReporting.cpp prints it), --exportProfile,
--exportTimes and --exportLayerInfo files, and the profile folder built from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.profile.trtexec_parse import (
    parse_command,
    parse_export_profile,
    parse_export_times,
    parse_layer_info,
    parse_stats,
    parse_summary,
    profile_from_trtexec,
)

DATA = Path(__file__).parent / "data"


def test_summary_tensorrt10_with_timestamps() -> None:
    s = parse_summary((DATA / "trtexec_v10.log").read_text())
    assert s["throughput_qps"] == 24.4584
    assert s["latency_ms"] == {"min": 39.4309, "max": 48.812, "mean": 42.6834, "median": 42.4526,
                               "p90": 45.2621, "p95": 47.5834, "p99": 48.812}
    assert s["device_ms"]["median"] == 40.3651 and s["device_ms"]["p95"] == 45.4991
    assert set(s) >= {"enqueue_ms", "h2d_ms", "d2h_ms"}
    assert s["total_host_walltime_s"] == pytest.approx(3.10731)
    assert s["total_gpu_compute_time_s"] == pytest.approx(3.08634)
    assert s["device_cv_pct"] == pytest.approx(5.58526)
    assert len(s["warnings"]) == 2 and "Enqueue Time" in s["warnings"][0]
    assert s["status"] == "PASSED" and s["tensorrt_version_code"] == 100300


def test_summary_tensorrt85_only_p99_and_end_to_end() -> None:
    s = parse_summary((DATA / "trtexec_v85_p99.log").read_text())
    assert s["latency_ms"] == {"min": 1.1, "max": 2.0, "mean": 1.2, "median": 1.19, "p99": 1.9}
    assert s["end_to_end_ms"]["p99"] == 2.9 and "p90" not in s["device_ms"]


def test_stats_units_and_odd_percentiles() -> None:
    assert parse_stats("min = 1 s, max = 2000 us, percentile(99.9%) = 3 ms") == {"min": 1000.0, "max": 2.0,
                                                                                 "p99.9": 3.0}


def test_summary_missing_is_a_clear_error() -> None:
    with pytest.raises(TrtEdgeError, match="Performance summary"):
        parse_summary("[I] Building engine\n&&&& FAILED TensorRT.trtexec\n")
    with pytest.raises(TrtEdgeError, match="no Latency"):
        parse_summary("[I] === Performance summary ===\n[I] Throughput: 1 qps\n")


def test_command_line() -> None:
    cmd = parse_command((DATA / "trtexec_v10.log").read_text())
    assert cmd is not None and cmd.startswith("/usr/src/tensorrt/bin/trtexec --loadEngine=model.plan")


def test_export_profile() -> None:
    p = parse_export_profile(json.loads((DATA / "export_profile.json").read_text()))
    assert p["runs"] == 100
    assert [x["name"][:8] for x in p["layers"]] == ["{Foreign", "Reformat", "Conv_0 +"]  # slowest first
    assert p["layers"][0]["mean_ms"] == 0.602 and p["layers"][0]["percent"] == 59.2
    assert p["total_ms"] == pytest.approx(0.602 + 0.303 + 0.111616)
    with pytest.raises(TrtEdgeError):
        parse_export_profile({"not": "a list"})


def test_export_times() -> None:
    rows = json.loads((DATA / "export_times.json").read_text())
    t = parse_export_times(rows)
    assert t["iterations"] == 20 and len(t["samples_ms"]) == 20
    assert t["latency_ms"]["min"] == 1.0 and t["latency_ms"]["max"] == pytest.approx(1.19)
    assert t["latency_ms"]["median"] == pytest.approx(1.095)
    assert t["device_ms"]["min"] == pytest.approx(0.98)
    assert t["duration_s"] > 0


def test_layer_info_both_schemas() -> None:
    info = parse_layer_info(json.loads((DATA / "layer_info.json").read_text()))
    conv = info["Conv_0 + Relu_1"]
    assert conv["type"] == "CaskConvolution" and conv["sparse"] is True and "FP16" in conv["format"]
    assert info["Reformatting CopyNode for Input Tensor 0 to Gemm_5"]["format"] == "Int8"  # TRT 11 split field
    assert parse_layer_info({"Layers": ["a", "b"]}) == {"a": {"index": 0}, "b": {"index": 1}}
    with pytest.raises(TrtEdgeError, match="Layers"):
        parse_layer_info({"Bindings": []})


def test_profile_from_all_files_and_report(tmp_path: Path) -> None:
    from trt_edge.profile.stage import run_trtexec
    from trt_edge.stage import read_stage

    prof = profile_from_trtexec(DATA / "trtexec_v10.log", DATA / "export_profile.json", DATA / "export_times.json",
                                DATA / "layer_info.json")
    run = prof["runs"][0]
    assert run["throughput_qps"] == 24.4584
    assert run["latency_ms"]["count"] == 20  # --exportTimes supersedes the summary's statistics
    assert run["shapes"] == "input_ids:1x128,attention_mask:1x128"
    conv = next(x for x in prof["layers"]["layers"] if x["name"].startswith("Conv_0"))
    assert conv["op"] == "CaskConvolution" and conv["precision"] == "fp16" and conv["sparse"] is True
    record = run_trtexec(str(DATA / "trtexec_v10.log"), tmp_path / "out", str(DATA / "export_profile.json"))
    stage = read_stage(tmp_path / "out", "profile")
    assert stage["artifacts"]["profile"] == "profile.json" and stage["artifacts"]["report"] == "profile.md"
    assert record.metrics["median_ms"] == 42.4526 and record.metrics["throughput_ips"] == 24.4584
    text = (tmp_path / "out" / "profile.md").read_text()
    assert "42.453" in text and "oreignNode" in text and "input_ids:1x128" in text
    assert "data:image/png;base64," in (tmp_path / "out" / "profile.html").read_text()  # layer bars


def test_cli_trtexec_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trt_edge.cli import main

    main(["profile", "--trtexec-log", str(DATA / "trtexec_v85_p99.log"), "--out", str(tmp_path / "o")])
    out = json.loads(capsys.readouterr().out)
    assert out["median_ms"] == 1.19 and out["p99_ms"] == 1.9
    with pytest.raises(SystemExit) as exc:
        main(["profile", "--trtexec-log", str(tmp_path / "missing.log"), "--out", str(tmp_path / "p")])
    assert exc.value.code == 2
