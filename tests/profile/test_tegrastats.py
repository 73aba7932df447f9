"""tegrastats: the parser on every documented line format, malformed lines, the sampler against a real
subprocess, the INA3221 sysfs reader on a sysfs-shaped tree, and the `trt-edge tegrastats` command."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from trt_edge.profile.tegrastats import (
    Ina3221Sampler,
    PowerUnavailable,
    TegrastatsSampler,
    find_ina3221_channels,
    parse_line,
    parse_lines,
    parse_log,
    start_sampler,
)

DATA = Path(__file__).parent / "data"
FAKE = [sys.executable, str(DATA / "fake_tegrastats.py")]

# Verbatim from ../shared/reference/tensorrt-jetson-facts.md §7.1.
AGX_ORIN_JP621 = (
    "05-09-2026 18:42:06 RAM 18207/62841MB (lfb 466x4MB) SWAP 86/31420MB (cached 0MB) CPU [14%@2188,5%@2112,"
    "8%@2035,14%@2201,46%@1267,47%@1267,2%@1267,10%@1267,4%@1036,5%@1036,6%@1036,10%@1036] EMC_FREQ 3%@2133 "
    "GR3D_FREQ 0%@[0,0] NVENC 79%@166 NVDEC off NVJPG off NVJPG1 off VIC 36%@115 OFA off NVDLA0 off NVDLA1 off "
    "PVA0_FREQ off APE 174 cpu@52.562C soc2@48.437C soc0@49.093C tj@52.562C soc1@49.656C VDD_GPU_SOC "
    "2412mW/2412mW VDD_CPU_CV 1607mW/1607mW VIN_SYS_5V0 4707mW/4707mW")
AGX_ORIN_JP5 = (
    "04-11-2025 10:36:27 RAM 4321/62801MB (lfb 1759x4MB) SWAP 19/31400MB (cached 0MB) CPU [0%@729,0%@729,"
    "0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[0,0] "
    "VIC_FREQ 729 APE 174 CV0@-256C CPU@44.562C Tboard@32C SOC2@40.093C Tdiode@33C SOC0@41.093C CV1@-256C "
    "GPU@-256C tj@44.343C SOC1@41.25C CV2@-256C VDD_GPU_SOC 2340mW/2340mW VDD_CPU_CV 390mW/390mW VIN_SYS_5V0 "
    "4025mW/4025mW NC 0mW/0mW VDDQ_VDD2_1V8AO 301mW/301mW NC 0mW/0mW")
XAVIER_NX_JP512 = (
    "07-09-2024 13:31:31 RAM 3168/6851MB (lfb 2x4MB) SWAP 161/3426MB (cached 0MB) CPU [23%@1397,17%@1192,"
    "16%@1190,13%@1190,23%@1190,10%@1190] EMC_FREQ 2%@204 GR3D_FREQ 0%@[114] VIC_FREQ 115 APE 150 AUX@45C "
    "CPU@46.5C thermal@45.6C AO@45C GPU@45.5C PMIC@50C VDD_IN 2763mW/2846mW VDD_CPU_GPU_CV 650mW/670mW "
    "VDD_SOC 650mW/711mW")
# Constructed from the field descriptions of §7.1 (the facts file has no verbatim line for these).
AGX_XAVIER_JP4 = (
    "RAM 2448/31925MB (lfb 6133x4MB) SWAP 0/15962MB (cached 0MB) CPU [1%@1190,0%@1190,off,off,2%@1190,0%@1190,"
    "off,off] EMC_FREQ 0%@2133 GR3D_FREQ 0%@1377 APE 150 MTS fg 0% bg 0% AO@34C GPU@35C Tdiode@37.75C PMIC@100C "
    "AUX@34C CPU@35.5C thermal@34.9C Tboard@35C GPU 0/0 CPU 311/311 SOC 932/932 CV 0/0 VDDRQ 155/155 "
    "SYS5V 1815/1815")
THOR_R38 = (
    "11-02-2025 09:15:01 RAM 10240/125772MB (lfb 120x4MB) SWAP 0/0MB (cached 0MB) CPU [3%@972,1%@972,0%@972,"
    "2%@972,0%@972,off,off,off,off,off,off,off,off,off] EMC_FREQ 1%@2133 GR3D_FREQ @[1575,1575,1575] "
    "cpu@45.218C tj@47.5C soc012@46.1C soc345@45.9C gpu@-256C VDD_GPU -392mW/-392mW VDD_CPU_SOC_MSS "
    "3924mW/3924mW VIN_SYS_5V0 6520mW/6520mW")
JP72_THREE_VALUES = (
    "03-14-2027 08:00:00 RAM 5000/62841MB (lfb 100x4MB) SWAP 0/31420MB (cached 0MB) CPU [5%@1190,4%@1190] "
    "EMC_FREQ 0%@2133 GR3D_FREQ 12%@[918,918] cpu@43.093C/43.093C tj@45.5C/44.9C VDD_GPU_SOC 2792mW/2792mW/2792mW "
    "VDD_CPU_CV 800mW/810mW/900mW VIN_SYS_5V0 5100mW/5050mW/5400mW")


def test_agx_orin_jetpack6_line() -> None:
    s = parse_line(AGX_ORIN_JP621)
    assert s is not None
    assert s.timestamp == "05-09-2026 18:42:06"
    assert (s.ram_used_mb, s.ram_total_mb, s.swap_used_mb, s.swap_total_mb) == (18207, 62841, 86, 31420)
    assert len(s.cpu_load) == 12 and s.cpu_load[4] == 46 and s.cpu_mhz[0] == 2188
    assert (s.emc_load, s.emc_mhz, s.gpu_load, s.gpu_mhz) == (3, 2133, 0, [0, 0])
    assert s.temps == {"cpu": 52.562, "soc2": 48.437, "soc0": 49.093, "tj": 52.562, "soc1": 49.656}
    assert {k: r.mw for k, r in s.rails.items()} == {"VDD_GPU_SOC": 2412, "VDD_CPU_CV": 1607, "VIN_SYS_5V0": 4707}
    assert s.rails["VIN_SYS_5V0"].avg_mw == 4707 and s.rails["VIN_SYS_5V0"].max_mw is None
    assert s.rails_have_unit


def test_agx_orin_jetpack5_capitalised_sensors_absent_sensors_and_nc() -> None:
    s = parse_line(AGX_ORIN_JP5)
    assert s is not None
    assert s.temps["CV0"] is None and s.temps["GPU"] is None  # -256C: sensor absent
    assert s.temps["CPU"] == 44.562 and s.temps["Tboard"] == 32
    assert set(s.rails) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"}  # NC dropped
    assert s.rails["VDDQ_VDD2_1V8AO"].mw == 301
    assert "VIC_FREQ" not in s.rails and "APE" not in s.rails


def test_xavier_nx_single_gpc_bracket() -> None:
    s = parse_line(XAVIER_NX_JP512)
    assert s is not None
    assert s.gpu_mhz == [114] and s.gpu_load == 0
    assert s.rails["VDD_IN"].mw == 2763 and s.rails["VDD_IN"].avg_mw == 2846
    assert s.temps["PMIC"] == 50 and s.temps["GPU"] == 45.5
    assert len(s.cpu_load) == 6


def test_agx_xavier_jetpack4_rails_without_unit_and_off_cores() -> None:
    s = parse_line(AGX_XAVIER_JP4)
    assert s is not None
    assert not s.rails_have_unit
    assert {k: r.mw for k, r in s.rails.items()} == {"GPU": 0, "CPU": 311, "SOC": 932, "CV": 0, "VDDRQ": 155,
                                                     "SYS5V": 1815}
    assert s.temps["GPU"] == 35 and s.temps["Tdiode"] == 37.75  # GPU@35C is a temperature, GPU 0/0 a rail
    assert s.cpu_load.count(None) == 4 and s.cpu_mhz[2] is None
    assert s.gpu_mhz == [1377]


def test_thor_r38_frequency_without_load_and_negative_rail() -> None:
    s = parse_line(THOR_R38)
    assert s is not None
    assert s.gpu_load is None and s.gpu_mhz == [1575, 1575, 1575]
    assert s.rails["VDD_GPU"].mw == -392  # calibration offset at idle, seen on real Thor captures
    assert s.rails["VDD_CPU_SOC_MSS"].mw == 3924 and s.temps["gpu"] is None
    assert s.cpu_load.count(None) == 9


def test_jetpack72_three_value_rails_and_two_value_temperatures() -> None:
    s = parse_line(JP72_THREE_VALUES)
    assert s is not None
    r = s.rails["VDD_CPU_CV"]
    assert (r.mw, r.avg_mw, r.max_mw) == (800, 810, 900)
    assert s.temps == {"cpu": 43.093, "tj": 45.5}
    assert s.gpu_load == 12 and s.gpu_mhz == [918, 918]


@pytest.mark.parametrize("line", ["", "   ", "hello world", "RAM only/MB", "Error: Run this as root",
                                  "VDD_IN", "GR3D_FREQ", "\x00\x01\x02", "CPU [", "12345"])
def test_malformed_lines_are_none_not_errors(line: str) -> None:
    assert parse_line(line) is None


def test_truncated_line_keeps_what_it_can() -> None:
    s = parse_line(AGX_ORIN_JP621[:200])
    assert s is not None and s.ram_used_mb == 18207 and not s.rails


def test_log_counts_malformed_lines() -> None:
    log = parse_lines([AGX_ORIN_JP621, "garbage", "", XAVIER_NX_JP512, "more garbage 1/2"])
    assert (log.lines, log.malformed, len(log.samples)) == (4, 2, 2)
    mixed = parse_log(DATA / "tegrastats_mixed.log")
    assert (mixed.lines, mixed.malformed, len(mixed.samples)) == (5, 2, 3)
    summary = mixed.summary()
    assert summary["rails_mw"]["VDD_GPU_SOC"] == {"mean": 7412.0, "max": 12412.0, "min": 2412.0}
    assert summary["gpu_load_pct"]["max"] == 98 and summary["emc_load_pct"]["max"] == 40
    assert summary["temps_c"]["tj"]["max"] == 58.25


def test_sampler_reads_a_real_subprocess() -> None:
    sampler = TegrastatsSampler(FAKE, interval_ms=20).start()
    time.sleep(0.6)
    trace = sampler.stop()
    assert trace.source == "tegrastats"
    assert len(trace.t) >= 8  # ~24 lines in 0.6 s, every fifth garbage; generous for a busy machine
    assert trace.malformed >= 1
    assert set(trace.rails) == {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"}
    assert all(3000 <= v <= 3090 for v in trace.rails["VDD_IN"])
    assert all(b > a for a, b in zip(trace.t, trace.t[1:], strict=False))  # stamped on arrival, in order
    assert sampler._proc is not None and sampler._proc.poll() is not None  # the child is gone


def test_sampler_reports_a_refusing_tegrastats() -> None:
    with pytest.raises(PowerUnavailable, match="Permission denied"):
        TegrastatsSampler([*FAKE, "--fail"], interval_ms=20).start()
    with pytest.raises(PowerUnavailable, match="not found"):
        TegrastatsSampler("no-such-tegrastats-binary", interval_ms=20).start()


def test_start_sampler_falls_back_and_says_why(tmp_path: Path) -> None:
    sampler, note = start_sampler("auto", "no-such-tegrastats-binary", 50, str(tmp_path))
    assert sampler is None and "no INA3221 rails" in note and "not found" in note
    sampler, note = start_sampler("off")
    assert sampler is None and "off" in note
    sampler, note = start_sampler("tegrastats", FAKE, 20)
    assert sampler is not None and "tegrastats" in note
    sampler.stop()


def _fake_ina(root: Path) -> None:
    # The sysfs layout of facts §7.1: /sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3/in{N}_label ...
    hw = root / "1-0040" / "hwmon" / "hwmon3"
    hw.mkdir(parents=True)
    for n, (label, mv, ma) in enumerate([("VDD_GPU_SOC", 5000, 400), ("VDD_CPU_CV", 5000, 200),
                                         ("VIN_SYS_5V0", 5000, 900)], start=1):
        (hw / f"in{n}_label").write_text(label + "\n")
        (hw / f"in{n}_input").write_text(f"{mv}\n")
        (hw / f"curr{n}_input").write_text(f"{ma}\n")
    hw2 = root / "1-0041" / "hwmon" / "hwmon4"
    hw2.mkdir(parents=True)
    (hw2 / "in1_label").write_text("NC\n")
    (hw2 / "in1_input").write_text("0\n")
    (hw2 / "curr1_input").write_text("0\n")


def test_ina3221_reader(tmp_path: Path) -> None:
    _fake_ina(tmp_path)
    assert [c.name for c in find_ina3221_channels(tmp_path)] == ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"]
    sampler = Ina3221Sampler(tmp_path, interval_ms=5).start()
    time.sleep(0.1)
    trace = sampler.stop()
    assert len(trace.t) >= 3
    assert trace.rails["VIN_SYS_5V0"][0] == pytest.approx(4500.0)  # 5000 mV x 900 mA = 4.5 W
    auto, note = start_sampler("auto", "no-such-tegrastats-binary", 50, str(tmp_path), 5)
    assert isinstance(auto, Ina3221Sampler) and "INA3221" in note
    auto.stop()


def test_tegrastats_command(capsys: pytest.CaptureFixture[str]) -> None:
    from trt_edge.cli import main

    main(["tegrastats", str(DATA / "tegrastats_mixed.log"), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["samples"] == 3 and data["malformed_lines"] == 2
    assert data["rails_mw"]["VIN_SYS_5V0"]["max"] == 6707
    main(["tegrastats", str(DATA / "tegrastats_mixed.log")])
    text = capsys.readouterr().out
    assert "VIN_SYS_5V0" in text and "6.707" in text and "2 unreadable lines" in text


def test_tegrastats_command_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trt_edge.cli import main

    bad = tmp_path / "x.log"
    bad.write_text("nothing\nuseful\n")
    for path in (bad, tmp_path / "missing.log"):
        with pytest.raises(SystemExit) as exc:
            main(["tegrastats", str(path)])
        assert exc.value.code == 2
    assert "no tegrastats line" in capsys.readouterr().err
