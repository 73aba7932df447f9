"""tegrastats lines, the tegrastats subprocess sampler and the INA3221 sysfs rail reader.

The line format changed with every Jetson generation (../shared/reference/tensorrt-jetson-facts.md §7.1):
rails with one to three `/`-separated values with or without `mW` (AGX Xavier on JetPack 4 prints none,
JetPack 7.2 prints cur/avg/max), temperatures with one or two values, `-256C` for an absent sensor,
GPU load as `%@MHz`, `%@[MHz,MHz]` (one per GPC) or `@[...]` alone (Thor), cores that are `off`.
The parser reads each field by its own pattern instead of by position, so a field it does not know is
ignored and a line without any field it knows is counted as malformed, never fatal.

Two samplers share one result type (`PowerTrace`): `TegrastatsSampler` runs `tegrastats --interval N`
(any command: tests point it at a script that prints tegrastats lines) and `Ina3221Sampler` polls the
rails' voltage and current in sysfs, which is faster (milliseconds instead of tenths of seconds).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trt_edge.log import get_logger

log = get_logger("profile")

_NUM = r"-?\d+(?:\.\d+)?"
_TIMESTAMP = re.compile(r"^\s*(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s+")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_CORE = re.compile(r"^\s*(\d+)%(?:@(\d+))?\s*$")
_EMC = re.compile(r"\bEMC_FREQ (?:(\d+)%)?(?:@\[?([\d,]+)\]?)?")
_GR3D = re.compile(r"\bGR3D_FREQ (?:(\d+)%)?(?:@\[?([\d,]+)\]?)?")
# A temperature: a name, `@`, one or two values each ending in C (`cpu@43.093C/43.093C`).
_TEMP = re.compile(rf"(?<![\w%])([A-Za-z][\w]*)@({_NUM})C(?:/({_NUM})C)?(?![\w.])")
# A rail: an upper-case name then 1-3 `/`-separated numbers with or without mW. One value without a
# unit is too ambiguous (`APE 174`, `VIC_FREQ 729`) and is only taken with `mW`.
_RAIL = re.compile(rf"(?<![\w@%])([A-Z][A-Z0-9_]*) ({_NUM})(mW)?(?:/({_NUM})(mW)?)?(?:/({_NUM})(mW)?)?(?![\w.%@/])")
_NOT_RAILS = {"RAM", "SWAP", "EMC_FREQ", "GR3D_FREQ", "APE", "VIC", "VIC_FREQ", "NVENC", "NVDEC", "NVJPG",
              "NVJPG1", "OFA", "NVDLA0", "NVDLA1", "PVA0_FREQ", "MTS", "IRAM"}
# Rails that carry the whole module's input power, in order of preference.
INPUT_RAILS = ("VDD_IN", "VIN_SYS_5V0", "POM_5V_IN", "VIN")


@dataclass
class Rail:
    """One rail reading in milliwatts: instant, and the running average and maximum when printed."""

    mw: float
    avg_mw: float | None = None
    max_mw: float | None = None


@dataclass
class TegraSample:
    """Every field of one tegrastats line that the parser recognised (None where absent)."""

    timestamp: str | None = None
    ram_used_mb: int | None = None
    ram_total_mb: int | None = None
    swap_used_mb: int | None = None
    swap_total_mb: int | None = None
    cpu_load: list[float | None] = field(default_factory=list)  # per core; None = off
    cpu_mhz: list[float | None] = field(default_factory=list)
    emc_load: float | None = None
    emc_mhz: float | None = None
    gpu_load: float | None = None
    gpu_mhz: list[float] = field(default_factory=list)  # one per GPC on Orin JP6 and Thor
    temps: dict[str, float | None] = field(default_factory=dict)  # None = sensor absent (-256C)
    rails: dict[str, Rail] = field(default_factory=dict)
    rails_have_unit: bool = True

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["rails"] = {k: dict(v.__dict__) for k, v in self.rails.items()}
        return out


def parse_line(line: str) -> TegraSample | None:
    """The fields of one tegrastats line, or None when the line holds none of the known fields."""
    text = line.strip()
    if not text:
        return None
    sample = TegraSample()
    found = 0
    if m := _TIMESTAMP.match(text):
        sample.timestamp = m.group(1)
        text = text[m.end():]
    if m := _RAM.search(text):
        sample.ram_used_mb, sample.ram_total_mb = int(m.group(1)), int(m.group(2))
        found += 1
    if m := _SWAP.search(text):
        sample.swap_used_mb, sample.swap_total_mb = int(m.group(1)), int(m.group(2))
        found += 1
    if m := _CPU.search(text):
        for core in m.group(1).split(","):
            if core.strip() == "off":
                sample.cpu_load.append(None)
                sample.cpu_mhz.append(None)
            elif c := _CORE.match(core):
                sample.cpu_load.append(float(c.group(1)))
                sample.cpu_mhz.append(float(c.group(2)) if c.group(2) else None)
        found += 1
    if m := _EMC.search(text):
        if m.group(1) is not None:
            sample.emc_load = float(m.group(1))
        if m.group(2):
            sample.emc_mhz = float(m.group(2).split(",")[0])
        found += m.group(1) is not None or bool(m.group(2))
    if m := _GR3D.search(text):
        if m.group(1) is not None:
            sample.gpu_load = float(m.group(1))
        if m.group(2):
            sample.gpu_mhz = [float(f) for f in m.group(2).split(",") if f]
        found += m.group(1) is not None or bool(m.group(2))
    for m in _TEMP.finditer(text):
        value = float(m.group(2))
        sample.temps[m.group(1)] = None if value <= -256 else value
        found += 1
    # Temperatures are removed first so `GPU@45C` is never read as part of a rail.
    rest = _TEMP.sub(" ", _CPU.sub(" ", text))
    for m in _RAIL.finditer(rest):
        name = m.group(1)
        if name in _NOT_RAILS or name == "NC":  # NC: an unconnected INA3221 channel
            continue
        values = [m.group(i) for i in (2, 4, 6)]
        units = [m.group(i) for i in (3, 5, 7)]
        if values[1] is None and not units[0]:
            continue
        nums = [float(v) if v is not None else None for v in values]
        sample.rails[name] = Rail(mw=nums[0] or 0.0, avg_mw=nums[1], max_mw=nums[2])
        if not any(units):
            sample.rails_have_unit = False
        found += 1
    return sample if found else None


@dataclass
class TegraLog:
    """A parsed log: the samples, and how many non-empty lines could not be read."""

    samples: list[TegraSample]
    malformed: int
    lines: int

    def summary(self) -> dict[str, Any]:
        """Per-rail mean/max power, GPU and EMC load and temperatures: what a person asks of a log."""
        return summarize(self.samples) | {"lines": self.lines, "samples": len(self.samples),
                                          "malformed_lines": self.malformed}


def parse_lines(lines: Iterable[str]) -> TegraLog:
    samples: list[TegraSample] = []
    malformed = total = 0
    for line in lines:
        if not line.strip():
            continue
        total += 1
        try:
            sample = parse_line(line)
        except (ValueError, OverflowError):  # a number no tegrastats writes (100k digits): a malformed line
            sample = None
        if sample is None:
            malformed += 1
        else:
            samples.append(sample)
    return TegraLog(samples, malformed, total)


def parse_log(path: str | os.PathLike[str]) -> TegraLog:
    from trt_edge.errors import TrtEdgeError

    p = Path(path)
    if not p.is_file():
        raise TrtEdgeError(f"tegrastats log not found: {p}")
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise TrtEdgeError(f"{p}: unreadable ({exc})") from exc
    return parse_lines(text.splitlines())


def _stats(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"mean": round(sum(values) / len(values), 3), "max": round(max(values), 3),
            "min": round(min(values), 3)}


def summarize(samples: Sequence[TegraSample]) -> dict[str, Any]:
    rails: dict[str, list[float]] = {}
    temps: dict[str, list[float]] = {}
    for s in samples:
        for name, rail in s.rails.items():
            rails.setdefault(name, []).append(rail.mw)
        for name, temp in s.temps.items():
            if temp is not None:
                temps.setdefault(name, []).append(temp)
    return {
        "rails_mw": {k: _stats(v) for k, v in rails.items()},
        "rails_without_unit": any(not s.rails_have_unit for s in samples),
        "gpu_load_pct": _stats([s.gpu_load for s in samples if s.gpu_load is not None]),
        "gpu_mhz": _stats([max(s.gpu_mhz) for s in samples if s.gpu_mhz]),
        "emc_load_pct": _stats([s.emc_load for s in samples if s.emc_load is not None]),
        "temps_c": {k: _stats(v) for k, v in temps.items()},
        "ram_used_mb": _stats([float(s.ram_used_mb) for s in samples if s.ram_used_mb is not None]),
    }


# ------------------------------------------------------------------------------------------------
# Sampling


@dataclass
class PowerTrace:
    """Rail power over time. `t` is `time.perf_counter()` seconds, the clock the harness marks windows in."""

    source: str
    t: list[float] = field(default_factory=list)
    rails: dict[str, list[float]] = field(default_factory=dict)  # mW, aligned with t
    gpu_load: list[float | None] = field(default_factory=list)
    malformed: int = 0
    unit_missing: bool = False

    def add(self, t: float, rails: dict[str, float], gpu_load: float | None = None) -> None:
        n = len(self.t)
        self.t.append(t)
        for name, mw in rails.items():
            self.rails.setdefault(name, [float("nan")] * n).append(mw)
        for values in self.rails.values():
            if len(values) < n + 1:
                values.append(float("nan"))
        self.gpu_load.append(gpu_load)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "t": self.t, "rails_mw": self.rails, "gpu_load": self.gpu_load,
                "malformed_lines": self.malformed, "unit_missing": self.unit_missing}


class PowerUnavailable(Exception):
    """Power cannot be measured here; the message says why (profiling goes on without power)."""


class TegrastatsSampler:
    """Run `tegrastats --interval N` in the background and stamp each line when it arrives.

    command (str | Sequence[str]): the tegrastats command (default `tegrastats`); anything printing
        tegrastats lines works. interval_ms (int): passed as `--interval`.
    Lines are stamped with `time.perf_counter()` on arrival; tegrastats' own timestamps have only
    one-second resolution. Where `stdbuf` exists the command runs line-buffered, so a pipe does not
    hold lines back.
    """

    def __init__(self, command: str | Sequence[str] = "tegrastats", interval_ms: int = 100) -> None:
        self.command = shlex.split(command) if isinstance(command, str) else list(command)
        self.interval_ms = interval_ms
        self.trace = PowerTrace(source="tegrastats")
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> TegrastatsSampler:
        if not self.command:
            raise PowerUnavailable("no tegrastats command configured")
        exe = shutil.which(self.command[0])
        if exe is None:
            raise PowerUnavailable(f"{self.command[0]!r} not found on PATH (not a Jetson?)")
        argv = [exe, *self.command[1:], "--interval", str(self.interval_ms)]
        stdbuf = shutil.which("stdbuf")
        if stdbuf and Path(exe).name == "tegrastats":
            argv = [stdbuf, "-oL", *argv]
        try:
            self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          bufsize=1)
        except (PermissionError, OSError) as exc:
            raise PowerUnavailable(f"cannot run {self.command[0]}: {exc}") from exc
        self._thread = threading.Thread(target=self._read, name="tegrastats", daemon=True)
        self._thread.start()
        # A tegrastats that refuses (not permitted, bad option) exits at once: say so now.
        deadline = time.perf_counter() + max(2.0, 3 * self.interval_ms / 1e3)
        while time.perf_counter() < deadline:
            with self._lock:
                if self.trace.t:
                    return self
            if self._proc.poll() is not None:
                err = (self._proc.stderr.read() if self._proc.stderr else "").strip()
                self._thread.join(timeout=1)
                if self.trace.t:
                    return self
                raise PowerUnavailable(
                    f"{self.command[0]} exited with status {self._proc.returncode} before printing a sample"
                    + (f": {err.splitlines()[-1]}" if err else ""))
            time.sleep(0.01)
        self.stop()
        raise PowerUnavailable(f"{self.command[0]} printed no readable line within {deadline:.0f} s")

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            now = time.perf_counter()
            sample = parse_line(line)
            with self._lock:
                if sample is None or not sample.rails:
                    self.trace.malformed += sample is None
                    continue
                self.trace.add(now, {k: r.mw for k, r in sample.rails.items()}, sample.gpu_load)
                self.trace.unit_missing |= not sample.rails_have_unit

    def stop(self) -> PowerTrace:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=3)
        if self._thread is not None:
            self._thread.join(timeout=3)
        for stream in (self._proc.stdout, self._proc.stderr) if self._proc else ():
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        with self._lock:
            return self.trace

    def snapshot(self) -> PowerTrace:
        """A copy of what was collected so far (the sampler keeps running)."""
        with self._lock:
            return PowerTrace(source=self.trace.source, t=list(self.trace.t),
                              rails={k: list(v) for k, v in self.trace.rails.items()},
                              gpu_load=list(self.trace.gpu_load), malformed=self.trace.malformed,
                              unit_missing=self.trace.unit_missing)


@dataclass(frozen=True)
class InaChannel:
    name: str
    volts_path: Path
    amps_path: Path


def find_ina3221_channels(root: str | os.PathLike[str] = "/sys/bus/i2c/drivers/ina3221") -> list[InaChannel]:
    """The labelled INA3221 channels under `root` (`*/hwmon/hwmon*/in{N}_label`), skipping `NC`."""
    channels = []
    for label in sorted(glob.glob(os.path.join(str(root), "*", "hwmon", "hwmon*", "in*_label"))):
        match = re.search(r"in(\d+)_label$", label)
        if not match:
            continue
        try:
            name = Path(label).read_text().strip()
        except OSError:
            continue
        if not name or name.upper() == "NC" or "SUM" in name.upper():
            continue
        folder = Path(label).parent
        volts, amps = folder / f"in{match.group(1)}_input", folder / f"curr{match.group(1)}_input"
        if volts.exists() and amps.exists():
            channels.append(InaChannel(name, volts, amps))
    return channels


class Ina3221Sampler:
    """Poll INA3221 rails in sysfs: power = bus voltage (mV) x current (mA) / 1000, in mW."""

    def __init__(self, root: str | os.PathLike[str] = "/sys/bus/i2c/drivers/ina3221", interval_ms: int = 10) -> None:
        self.root = root
        self.interval_ms = interval_ms
        self.trace = PowerTrace(source="ina3221")
        self.channels: list[InaChannel] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def read_once(self) -> dict[str, float]:
        out = {}
        for ch in self.channels:
            try:
                out[ch.name] = float(ch.volts_path.read_text()) * float(ch.amps_path.read_text()) / 1000.0
            except (OSError, ValueError):
                continue
        return out

    def start(self) -> Ina3221Sampler:
        self.channels = find_ina3221_channels(self.root)
        if not self.channels:
            raise PowerUnavailable(f"no INA3221 rails under {self.root}")
        if not self.read_once():
            raise PowerUnavailable(f"INA3221 rails under {self.root} are not readable (permissions?)")
        self._thread = threading.Thread(target=self._loop, name="ina3221", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        period = self.interval_ms / 1e3
        while not self._stop.is_set():
            t = time.perf_counter()
            values = self.read_once()
            with self._lock:
                self.trace.add((t + time.perf_counter()) / 2, values)
            self._stop.wait(max(0.0, period - (time.perf_counter() - t)))

    def stop(self) -> PowerTrace:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)
        with self._lock:
            return self.trace


def start_sampler(source: str, tegrastats: str | Sequence[str] = "tegrastats", interval_ms: int = 100,
                  ina3221_root: str = "/sys/bus/i2c/drivers/ina3221",
                  ina3221_interval_ms: int = 10) -> tuple[TegrastatsSampler | Ina3221Sampler | None, str]:
    """Start the configured sampler. Returns (sampler, note); sampler is None when power is unavailable
    and the note says why. `auto` prefers the faster sysfs rails and falls back to tegrastats."""
    if source == "off":
        return None, "power measurement turned off (--power off)"
    reasons = []
    if source in ("auto", "ina3221"):
        try:
            return Ina3221Sampler(ina3221_root, ina3221_interval_ms).start(), f"INA3221 sysfs rails ({ina3221_root})"
        except PowerUnavailable as exc:
            reasons.append(str(exc))
    if source in ("auto", "tegrastats"):
        try:
            sampler = TegrastatsSampler(tegrastats, interval_ms).start()
            return sampler, f"tegrastats --interval {interval_ms}"
        except PowerUnavailable as exc:
            reasons.append(str(exc))
    return None, "; ".join(reasons)
