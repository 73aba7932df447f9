"""The device environment of a profile: nvpmodel, jetson_clocks, device model, on and off a Jetson."""

from __future__ import annotations

from pathlib import Path

from trt_edge.profile.jetson_env import collect, match_catalog, parse_jetson_clocks, parse_nvpmodel

CLOCKS = """SOC family:tegra234  Machine:NVIDIA Jetson AGX Orin Developer Kit
Online CPUs: 0-11
cpu0:  Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=1 c7=1
cpu1:  Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=1 c7=1
GPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000
EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=3199000000 FreqOverride=1
Active GPU TPCs: 8
NV Power Mode: MAXN
"""


def test_nvpmodel() -> None:
    assert parse_nvpmodel("NV Power Mode: MAXN\n0\n") == {"name": "MAXN", "id": 0}
    assert parse_nvpmodel("NV Power Mode: MODE_30W\n2") == {"name": "MODE_30W", "id": 2}
    assert parse_nvpmodel("NVPM ERROR: failed to read") is None


def test_jetson_clocks_pinned_and_not() -> None:
    c = parse_jetson_clocks(CLOCKS)
    assert c is not None
    assert c["machine"] == "NVIDIA Jetson AGX Orin Developer Kit" and c["soc"] == "tegra234"
    assert c["gpu_pinned"] and c["emc_pinned"] and c["cpus_pinned"] and c["clocks_pinned"]
    assert c["power_mode"] == "MAXN" and c["active_gpu_tpcs"] == 8
    loose = parse_jetson_clocks(CLOCKS.replace("GPU MinFreq=1300500000", "GPU MinFreq=306000000"))
    assert loose is not None and loose["gpu_pinned"] is False and loose["clocks_pinned"] is False
    assert parse_jetson_clocks("Error: Run this script(/usr/bin/jetson_clocks) as a root user") is None


def test_device_model_to_catalog() -> None:
    assert match_catalog("NVIDIA Jetson AGX Orin Developer Kit") in ("agx-orin-64gb", "agx-orin-32gb")
    assert match_catalog("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super") in (
        "orin-nano-8gb", "orin-nano-4gb")
    assert match_catalog("NVIDIA Jetson Xavier NX Developer Kit") == "xavier-nx"
    assert match_catalog("Raspberry Pi 4") is None and match_catalog(None) is None


def test_collect_off_jetson(tmp_path: Path) -> None:
    env = collect(tegra_release=str(tmp_path / "none"), model_path=str(tmp_path / "none"))
    assert env["is_jetson"] is False and env["nvpmodel"] is None and env["jetpack"] is None
    assert any("not a Jetson" in n for n in env["notes"])


def test_collect_on_a_jetson_shaped_system(tmp_path: Path) -> None:
    rel = tmp_path / "nv_tegra_release"
    rel.write_text("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64\n")
    model = tmp_path / "model"
    model.write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    env = collect(nvpmodel="no-such-nvpmodel", jetson_clocks="no-such-clocks", tegra_release=str(rel),
                  model_path=str(model))
    assert env["is_jetson"] and env["l4t"] == "36.4.3" and env["jetpack"] == "6.2"
    assert env["device_model"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert env["nvpmodel"] is None and any("not found" in n for n in env["notes"])
