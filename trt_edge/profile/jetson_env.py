"""What the device was doing while it was measured: model, L4T/JetPack, nvpmodel mode, jetson_clocks.

A latency or an energy figure from a Jetson means little without the power mode and whether clocks
were pinned, so every profile records them. Each source is read on its own and may be missing or
root-only (`jetson_clocks --show` needs root); a missing one is recorded as absent with the reason,
never an error. Formats: ../shared/reference/tensorrt-jetson-facts.md §7.2, §7.3.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from trt_edge.devices import device as catalog_device
from trt_edge.devices import devices as catalog_devices
from trt_edge.devices import jetpack_from_l4t, read_l4t
from trt_edge.errors import TrtEdgeError


def parse_nvpmodel(text: str) -> dict[str, Any] | None:
    """`NV Power Mode: MAXN` then the numeric id on the next line -> {"name": "MAXN", "id": 0}."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        m = re.search(r"NV Power Mode:\s*(\S+)", line)
        if m:
            mode_id = int(lines[i + 1]) if i + 1 < len(lines) and lines[i + 1].isdigit() else None
            return {"name": m.group(1), "id": mode_id}
    return None


def parse_jetson_clocks(text: str) -> dict[str, Any] | None:
    """`jetson_clocks --show` -> SoC, machine, per-unit min/max/current frequencies, and whether the
    GPU and EMC run at their maximum (what `jetson_clocks` pins them to)."""
    if "MinFreq" not in text and "SOC family" not in text:
        return None
    out: dict[str, Any] = {}
    if m := re.search(r"SOC family:(\S+)\s+Machine:(.+)", text):
        out["soc"], out["machine"] = m.group(1), m.group(2).strip()
    units: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        m = re.match(r"\s*(cpu\d+|GPU|EMC):?\s", line)
        if not m:
            continue
        freqs = {k: int(v) for k, v in re.findall(r"(MinFreq|MaxFreq|CurrentFreq)=(\d+)", line)}
        if freqs:
            units[m.group(1)] = freqs
    out["units"] = units

    def pinned(unit: str) -> bool | None:
        # jetson_clocks raises each unit's minimum to its maximum; a unit merely busy has Current = Max
        # but a lower Min, so the minimum is what tells.
        f = units.get(unit)
        if not f or "MaxFreq" not in f:
            return None
        if "MinFreq" in f:
            return f["MinFreq"] >= f["MaxFreq"]
        return f.get("CurrentFreq", 0) >= f["MaxFreq"]

    out["gpu_pinned"] = pinned("GPU")
    emc = pinned("EMC")
    if m := re.search(r"EMC\b.*FreqOverride=(\d)", text):
        emc = bool(int(m.group(1))) or bool(emc)
    out["emc_pinned"] = emc
    cpus = [pinned(u) for u in units if u.startswith("cpu")]
    out["cpus_pinned"] = all(c for c in cpus if c is not None) if any(c is not None for c in cpus) else None
    flags = [v for v in (out["gpu_pinned"], out["emc_pinned"], out["cpus_pinned"]) if v is not None]
    out["clocks_pinned"] = all(flags) if flags else None
    if m := re.search(r"NV Power Mode:\s*(\S+)", text):
        out["power_mode"] = m.group(1)
    if m := re.search(r"Active GPU TPCs:\s*(\d+)", text):
        out["active_gpu_tpcs"] = int(m.group(1))
    return out


def _run(argv: list[str], timeout: float = 10.0) -> tuple[str | None, str | None]:
    """(stdout, None) or (None, why not)."""
    exe = shutil.which(argv[0])
    if exe is None:
        return None, f"{argv[0]} not found"
    try:
        proc = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{argv[0]}: {exc}"
    text = proc.stdout + proc.stderr
    if proc.returncode != 0 or ("ERROR" in text.upper() and "MinFreq" not in text):
        first = (text.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return None, f"{' '.join(argv)}: {first}"
    return text, None


def read_device_model(path: str | os.PathLike[str] = "/proc/device-tree/model") -> str | None:
    p = Path(path)
    try:
        return p.read_bytes().rstrip(b"\0").decode("utf-8", "replace").strip() or None
    except OSError:
        return None


def match_catalog(model: str | None) -> str | None:
    """The catalog key for a device-tree model string (`NVIDIA Jetson AGX Orin Developer Kit`), or None."""
    if not model:
        return None
    text = model.lower()
    try:
        return catalog_device(model).key
    except TrtEdgeError:
        pass
    table = catalog_devices()
    best = None
    for key, entry in table.items():
        base = entry.name.lower().replace("jetson ", "")
        words = re.sub(r"\(.*?\)|\d+gb", "", base).split()
        if words and all(w in text for w in words):
            mem = re.search(r"(\d+)gb", base)
            if mem and mem.group(0) not in text.replace(" ", ""):
                best = best or key
                continue
            return key
    return best


def collect(nvpmodel: str = "nvpmodel", jetson_clocks: str = "jetson_clocks",
            tegra_release: str = "/etc/nv_tegra_release",
            model_path: str = "/proc/device-tree/model") -> dict[str, Any]:
    """The environment of a profile: host, device model and catalog key, L4T/JetPack, power mode, clocks."""
    env: dict[str, Any] = {"host": platform.node(), "machine": platform.machine(), "processor": platform.processor(),
                           "cpu_count": os.cpu_count(), "notes": []}
    model = read_device_model(model_path)
    env["device_model"] = model
    env["catalog_device"] = match_catalog(model)
    l4t = read_l4t(tegra_release)
    env["l4t"] = l4t
    env["jetpack"] = jetpack_from_l4t(l4t) if l4t else None
    env["is_jetson"] = l4t is not None
    if not env["is_jetson"]:
        env["notes"].append("not a Jetson (no /etc/nv_tegra_release): no power mode, clocks or rails")
        env["nvpmodel"] = env["jetson_clocks"] = None
        return env
    text, why = _run([nvpmodel, "-q"])
    env["nvpmodel"] = parse_nvpmodel(text) if text else None
    if why:
        env["notes"].append(why)
    text, why = _run([jetson_clocks, "--show"])
    env["jetson_clocks"] = parse_jetson_clocks(text) if text else None
    if why:
        env["notes"].append(why + " (jetson_clocks --show needs root; clock state unknown)")
    return env
