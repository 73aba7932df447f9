"""The Jetson device catalog and JetPack platform table (data in `trt_edge/data/devices.yaml`).

Used by the build plan (what a device can do: DLA, 2:4 sparsity, FP8) and by the profiler (roofline,
power modes). Figures not confirmed from NVIDIA text are listed per device under `unverified`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from trt_edge.configbase import nearest
from trt_edge.errors import TrtEdgeError


@dataclass(frozen=True)
class Device:
    key: str
    name: str
    family: str
    compute_capability: str
    dla_cores: int
    sparsity_2to4: bool
    fp8: bool
    bf16: bool
    facts: dict[str, Any] = field(default_factory=dict, compare=False)
    unverified: tuple[str, ...] = ()

    @property
    def sm(self) -> int:
        """The SASS architecture number, e.g. 87 for compute capability 8.7, 110 for 11.0."""
        major, minor = self.compute_capability.split(".")
        return int(major) * 10 + int(minor)

    def figure(self, name: str) -> Any:
        return self.facts.get(name)


@dataclass(frozen=True)
class Platform:
    jetpack: str
    l4t: str
    cuda: str
    cudnn: str | None
    tensorrt: str
    python: str
    devices: tuple[str, ...]


@lru_cache(maxsize=1)
def _raw() -> dict[str, Any]:
    text = resources.files("trt_edge").joinpath("data/devices.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or "devices" not in data:
        raise RuntimeError("trt_edge/data/devices.yaml is malformed")
    return data


def devices() -> dict[str, Device]:
    out = {}
    for key, d in _raw()["devices"].items():
        out[key] = Device(key=key, name=d["name"], family=d["family"], compute_capability=str(d["compute_capability"]),
                          dla_cores=int(d.get("dla_cores") or 0), sparsity_2to4=bool(d["sparsity_2to4"]),
                          fp8=bool(d["fp8"]), bf16=bool(d["bf16"]), facts=dict(d),
                          unverified=tuple(d.get("unverified", [])))
    return out


def device(key: str) -> Device:
    """A catalog entry by key (`agx-orin-64gb`), tolerant of case and spaces."""
    table = devices()
    norm = re.sub(r"[\s_]+", "-", key.strip().lower())
    if norm in table:
        return table[norm]
    for entry in table.values():
        if entry.name.lower() == key.strip().lower():
            return entry
    raise TrtEdgeError(f"unknown device {key!r}{nearest(norm, table)}; known: {', '.join(table)}")


def no_sparse_speedup_note(key: str | None) -> str | None:
    """What 2:4 pruning is worth on a target whose GPU has no sparse tensor cores, in one sentence, or
    None where it has them (or no device is named: nothing is known). Preflight and the pipeline report
    both say it, so a Xavier run is told before and after that its prune stage buys no TensorRT speed."""
    if key is None:
        return None
    dev = device(key)
    if dev.sparsity_2to4:
        return None
    return (f"2:4 sparsity brings no TensorRT speed-up on {dev.name} (compute capability "
            f"{dev.compute_capability}, no sparse tensor cores), the engine runs dense there; what the 2:4 prune "
            "still brings is the CPU artifact and a model file that compresses smaller (width pruning speeds up "
            "every chip)")


def platforms() -> dict[str, Platform]:
    return {jp: Platform(jetpack=jp, l4t=str(p["l4t"]), cuda=str(p["cuda"]),
                         cudnn=None if p.get("cudnn") is None else str(p["cudnn"]), tensorrt=str(p["tensorrt"]),
                         python=str(p["python"]), devices=tuple(p["devices"]))
            for jp, p in _raw()["platforms"].items()}


def platform(jetpack: str) -> Platform:
    table = platforms()
    if jetpack not in table:
        raise TrtEdgeError(f"unknown JetPack {jetpack!r}{nearest(jetpack, table)}; known: {', '.join(table)}")
    return table[jetpack]


def l4t_to_jetpack() -> dict[str, str]:
    """The catalog's L4T release -> JetPack release table (the on-device build script embeds it)."""
    return {str(k): str(v) for k, v in _raw()["l4t_to_jetpack"].items()}


def jetpack_from_l4t(l4t: str) -> str | None:
    mapping = l4t_to_jetpack()
    if l4t in mapping:
        return mapping[l4t]
    # Fall back to the closest release with the same major.minor (e.g. 36.4.9 -> 6.2.1's line).
    prefix = ".".join(l4t.split(".")[:2])
    same = sorted(k for k in mapping if k.startswith(prefix))
    return mapping[same[-1]] if same else None


def read_l4t(path: str | Path = "/etc/nv_tegra_release") -> str | None:
    """The L4T release from `/etc/nv_tegra_release` ("# R36 (release), REVISION: 4.3, ..." -> "36.4.3")."""
    p = Path(path)
    if not p.is_file():
        return None
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", p.read_text(errors="replace"))
    if not match:
        return None
    return f"{match.group(1)}.{match.group(2)}"
