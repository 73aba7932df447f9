"""Energy per inference on synthetic power traces with answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.profile.energy import choose_rails, energy_per_inference, integrate
from trt_edge.profile.tegrastats import PowerTrace


def _trace(t: list[float], **rails: list[float]) -> PowerTrace:
    trace = PowerTrace(source="synthetic")
    for i, ti in enumerate(t):
        trace.add(ti, {k: v[i] for k, v in rails.items()})
    return trace


def test_integrate_linear_ramp_with_window_between_samples() -> None:
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    p = 1000.0 * t  # 0..4000 mW linear
    # ∫ 1000 t dt from 0.5 to 3.5 = 500 (3.5² - 0.5²) = 6000 mJ
    assert integrate(t, p, 0.5, 3.5) == pytest.approx(6000.0)
    # beyond the last sample the power is held: ∫ from 3 to 5 = 3500 (ramp 3..4) + 4000 = 7500
    assert integrate(t, p, 3.0, 5.0) == pytest.approx(7500.0)
    assert integrate(t, p, 2.0, 2.0) == 0.0


def test_energy_per_inference_net_of_idle() -> None:
    # idle 3 W for t in [0, 2), 5 W during the run [2, 6]: 100 inferences over 4 s.
    t = [i * 0.1 for i in range(0, 61)]
    vin = [3000.0 if ti < 2.0 - 1e-9 else 5000.0 for ti in t]
    trace = _trace(t, VDD_IN=vin, VDD_CPU_GPU_CV=[v / 3 for v in vin], VDD_SOC=[500.0] * len(t))
    e = energy_per_inference(trace, window=(2.0, 6.0), inferences=100, idle=(0.0, 1.9))
    assert e.rails == ["VDD_IN"] and "input rail" in e.rule  # sub-rails are not added to the input rail
    assert e.idle_mw == pytest.approx(3000.0)
    assert e.active_mw == pytest.approx(5000.0)
    assert e.energy_j == pytest.approx(20.0)  # 5 W x 4 s
    assert e.net_energy_j == pytest.approx(8.0)  # (5 - 3) W x 4 s
    assert e.mj_per_inference == pytest.approx(80.0)
    assert e.total_mj_per_inference == pytest.approx(200.0)
    assert e.samples_in_window == 41
    assert e.per_rail_mw["VDD_SOC"]["active_mw"] == pytest.approx(500.0)
    assert not e.notes


def test_requested_rails_are_summed() -> None:
    t = [0.0, 1.0, 2.0, 3.0]
    trace = _trace(t, VDD_GPU_SOC=[1000.0] * 4, VDD_CPU_CV=[500.0] * 4, VIN_SYS_5V0=[4000.0] * 4)
    e = energy_per_inference(trace, (0.0, 3.0), 3, rails=["VDD_GPU_SOC", "VDD_CPU_CV"])
    assert e.active_mw == pytest.approx(1500.0)
    assert e.total_mj_per_inference == pytest.approx(1500.0)  # 1.5 W x 3 s / 3
    assert e.mj_per_inference is None  # no idle window, no net figure
    default = energy_per_inference(trace, (0.0, 3.0), 3)
    assert default.rails == ["VIN_SYS_5V0"]


def test_rail_choice() -> None:
    assert choose_rails(["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "NC"])[0] == ["VIN_SYS_5V0"]
    assert choose_rails(["VDD_IN", "VDD_SOC"])[0] == ["VDD_IN"]
    rails, rule = choose_rails(["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"])  # AGX Xavier: no input rail
    assert rails == ["CPU", "CV", "GPU", "SOC", "SYS5V", "VDDRQ"] and "sum of all rails" in rule
    with pytest.raises(TrtEdgeError, match="VDD_IN"):
        choose_rails(["VDD_GPU"], ["VDD_IN"])


def test_too_few_samples_is_noted_and_lower_than_idle_is_noted() -> None:
    trace = _trace([0.0, 10.0], VDD_IN=[3000.0, 3000.0])
    e = energy_per_inference(trace, (4.0, 5.0), 10, idle=(0.0, 4.0))
    assert e.samples_in_window == 0 and any("sample" in n for n in e.notes)
    assert e.mj_per_inference == pytest.approx(0.0)
    trace = _trace([0.0, 1.0, 2.0, 3.0], VDD_IN=[3000.0, 3000.0, 2000.0, 2000.0])
    e = energy_per_inference(trace, (2.0, 3.0), 1, idle=(0.0, 1.0))
    assert e.mj_per_inference == pytest.approx(-1000.0) and any("idle" in n for n in e.notes)


def test_samples_missing_a_rail_are_dropped() -> None:
    trace = PowerTrace(source="synthetic")
    trace.add(0.0, {"VDD_IN": 1000.0})
    trace.add(1.0, {"VDD_SOC": 10.0})  # a line where VDD_IN was not printed
    trace.add(2.0, {"VDD_IN": 1000.0, "VDD_SOC": 10.0})
    assert len(trace.rails["VDD_IN"]) == 3 and np.isnan(trace.rails["VDD_IN"][1])
    e = energy_per_inference(trace, (0.0, 2.0), 1)
    assert e.active_mw == pytest.approx(1000.0)
