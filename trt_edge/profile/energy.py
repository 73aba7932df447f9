"""Energy per inference from a power trace: integral over the timed window minus the idle baseline.

energy per inference = (∫ P(t) dt over [t0, t1]  -  P_idle x (t1 - t0)) / inferences

P(t) is the sum of the chosen rails, linear between samples and held flat beyond the first and last
sample; P_idle is the mean of the same sum over an idle window measured just before the run. The rails
summed matter: on an AGX Orin `VIN_SYS_5V0` and the `VDD_GPU_SOC`/`VDD_CPU_CV` sub-rails are different
cuts of the module, and adding an input rail to its own sub-rails counts power twice (the classic
"total power" mistake of Jetson monitors). The default takes the module's input rail when the board has
one (`VDD_IN`, `VIN_SYS_5V0`, `POM_5V_IN`, `VIN`), else the sum of every rail, and always says which.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.profile.tegrastats import INPUT_RAILS, PowerTrace


def choose_rails(available: Sequence[str], requested: Sequence[str] | None = None) -> tuple[list[str], str]:
    """The rails to sum and the rule that chose them (recorded in the profile)."""
    names = [n for n in available if n != "NC"]
    if requested:
        missing = [r for r in requested if r not in names]
        if missing:
            raise TrtEdgeError(f"rail(s) {', '.join(missing)} not measured on this device; "
                               f"measured: {', '.join(names) or 'none'}")
        return list(requested), "requested rails: " + " + ".join(requested)
    for name in INPUT_RAILS:
        if name in names:
            return [name], f"module input rail {name} (sub-rails not added, to avoid double counting)"
    return sorted(names), "sum of all rails (this board reports no module input rail): " + " + ".join(sorted(names))


def summed_power(trace: PowerTrace, rails: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(t, P) with P the sum of `rails` in mW; samples missing any of the rails are dropped."""
    t = np.asarray(trace.t, dtype=np.float64)
    if not len(t):
        return t, t
    p = np.zeros_like(t)
    for name in rails:
        p = p + np.asarray(trace.rails[name], dtype=np.float64)
    keep = np.isfinite(p)
    order = np.argsort(t[keep], kind="stable")
    return t[keep][order], p[keep][order]


def integrate(t: np.ndarray, p: np.ndarray, t0: float, t1: float) -> float:
    """∫ p dt over [t0, t1] (p linear between samples, flat beyond the ends). mW x s = mJ."""
    if t1 <= t0:
        return 0.0
    if len(t) == 0:
        raise ValueError("no samples")
    inner = (t > t0) & (t < t1)
    xs = np.concatenate([[t0], t[inner], [t1]])
    ys = np.interp(xs, t, p)
    return float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs)) / 2)


def mean_power(t: np.ndarray, p: np.ndarray, t0: float, t1: float) -> float:
    return integrate(t, p, t0, t1) / (t1 - t0)


@dataclass
class EnergyResult:
    """Energy of one timed window. mW, J and mJ per inference, with the rails and the rule recorded."""

    rails: list[str]
    rule: str
    window_s: float
    inferences: int
    samples_in_window: int
    idle_mw: float | None
    active_mw: float
    energy_j: float  # total over the window, idle included
    net_energy_j: float | None  # minus the idle baseline
    mj_per_inference: float | None  # net of idle: what the inferences cost
    total_mj_per_inference: float  # idle included: what the device drew per inference
    per_rail_mw: dict[str, dict[str, float | None]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def energy_per_inference(trace: PowerTrace, window: tuple[float, float], inferences: int,
                         idle: tuple[float, float] | None = None,
                         rails: Sequence[str] | None = None) -> EnergyResult:
    """Energy per inference over `window` (perf_counter seconds), net of the idle window's mean power."""
    if inferences < 1:
        raise ValueError("inferences must be at least 1")
    chosen, rule = choose_rails(list(trace.rails), rails)
    if not chosen:
        raise TrtEdgeError("the power trace holds no rails")
    t, p = summed_power(trace, chosen)
    t0, t1 = window
    notes = []
    in_window = int(np.sum((t >= t0) & (t <= t1)))
    if in_window < 2:
        notes.append(f"only {in_window} power sample(s) inside the {t1 - t0:.2f} s window: raise the duration "
                     "or lower the sampling interval for a trustworthy figure")
    if len(t) == 0:
        raise TrtEdgeError("the power trace holds no complete sample of the chosen rails")
    active = mean_power(t, p, t0, t1)
    energy_mj = integrate(t, p, t0, t1)
    idle_mw = net_mj = None
    if idle is not None and idle[1] > idle[0]:
        idle_mw = mean_power(t, p, *idle)
        net_mj = energy_mj - idle_mw * (t1 - t0)
        if net_mj < 0:
            notes.append("the run drew less than the idle baseline (noise larger than the model's cost)")
    per_rail: dict[str, dict[str, float | None]] = {}
    for name in trace.rails:
        if name == "NC":
            continue
        rt, rp = summed_power(trace, [name])
        if len(rt):
            per_rail[name] = {"active_mw": round(mean_power(rt, rp, t0, t1), 1),
                              "idle_mw": round(mean_power(rt, rp, *idle), 1) if idle and idle[1] > idle[0] else None}
    return EnergyResult(
        rails=chosen, rule=rule, window_s=t1 - t0, inferences=inferences, samples_in_window=in_window,
        idle_mw=_round(idle_mw), active_mw=round(active, 3), energy_j=round(energy_mj / 1e3, 6),
        net_energy_j=_round(None if net_mj is None else net_mj / 1e3, 6),
        mj_per_inference=_round(None if net_mj is None else net_mj / inferences, 6),
        total_mj_per_inference=round(energy_mj / inferences, 6), per_rail_mw=per_rail, notes=notes)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)
