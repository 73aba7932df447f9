"""The profile section: what to time, how long, which inputs, and whether to measure power."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from trt_edge.configbase import ConfigBase


@dataclass
class PowerConfig(ConfigBase):
    """How power is measured on a Jetson (ignored elsewhere: no rails, no power, and the profile says so).

    source (str): `auto` (INA3221 sysfs rails when readable, else `tegrastats`), `tegrastats`, `ina3221`
        or `off`. Defaults to `auto`.
    tegrastats (str): the tegrastats command line, split like a shell would; a test or a user with a
        wrapper script points it elsewhere. Defaults to `tegrastats`.
    interval_ms (int): tegrastats sampling interval. Defaults to 100.
    ina3221_root (str): where the INA3221 hwmon folders are. Defaults to `/sys/bus/i2c/drivers/ina3221`.
    ina3221_interval_ms (int): sysfs polling interval. Defaults to 10.
    idle_s (float): seconds of idle power measured just before the warm-up (the baseline). Defaults to 2.
    min_duration_s (float): with power on, each timed window runs at least this long so it holds
        enough samples. Defaults to 5.
    rails (list[str] | None): rails to sum for energy. Defaults to None: the module's input rail
        (`VDD_IN`, `VIN_SYS_5V0`, `POM_5V_IN`, `VIN`) when present, else the sum of every rail, which is
        documented in docs/profile.md. Sub-rails and the input rail are never summed by default.
    """

    source: Literal["auto", "tegrastats", "ina3221", "off"] = "auto"
    tegrastats: str = "tegrastats"
    interval_ms: int = 100
    ina3221_root: str = "/sys/bus/i2c/drivers/ina3221"
    ina3221_interval_ms: int = 10
    idle_s: float = 2.0
    min_duration_s: float = 5.0
    rails: list[str] | None = None

    def __post_init__(self) -> None:
        if self.interval_ms < 1 or self.ina3221_interval_ms < 1:
            raise ValueError("interval_ms and ina3221_interval_ms must be at least 1")
        if self.idle_s < 0 or self.min_duration_s < 0:
            raise ValueError("idle_s and min_duration_s must not be negative")
        if self.rails is not None and not self.rails:
            raise ValueError("rails must name at least one rail, or be left out for the default")


@dataclass
class ProfileConfig(ConfigBase):
    """Latency, per-layer times, power and a roofline estimate for one model file.

    batch (list[int]): batch sizes to sweep. Defaults to [1].
    seq (list[int] | None): sequence lengths to sweep. Defaults to None: the task's `max_length`.
    warmup (int): untimed runs before each timed window (and again after every switch of shape, since
        ONNX Runtime's thread pool cools down between sessions). Defaults to 10.
    iterations (int | None): timed runs per sweep point. Defaults to 100 when `duration_s` is unset.
    duration_s (float | None): time each sweep point for this many seconds instead of a fixed count.
    inputs (str): `auto` (real tokenized texts of the task when a tokenizer is found, else random ids),
        `texts` (refuse to run without a tokenizer) or `random` (random token ids: latency only, labelled
        so in the profile). Defaults to `auto`.
    split (str): which split's texts feed the model. Defaults to `test`.
    tokenizer (str | None): a tokenizer folder; by default the model's own folder or its parent.
    layers (bool): measure per-layer times in a separate profiling run. Defaults to True.
    layer_runs (int): inferences in that profiling run. Defaults to 20.
    top_layers (int): how many of the slowest layers the report lists. Defaults to 15.
    intra_op_threads (int | None): ONNX Runtime threads. Defaults to None (its own default).
    providers (list[str] | None): ONNX Runtime execution providers. Defaults to None (CPU).
    cuda_graph (bool): TensorRT only: capture the enqueue in a CUDA graph and replay it (as trtexec's
        `--useCudaGraph`). Defaults to False.
    roofline (bool): add the latency floor of this model on each catalog device. Defaults to True.
    plots (bool): draw the plots of the report (needs matplotlib). Defaults to True.
    progress (bool): show a progress bar. Defaults to True.
    seed (int): seed of the random ids and of the text draw. Defaults to 0.
    power (PowerConfig): power measurement on Jetson.
    """

    batch: list[int] = field(default_factory=lambda: [1])
    seq: list[int] | None = None
    warmup: int = 10
    iterations: int | None = None
    duration_s: float | None = None
    inputs: Literal["auto", "texts", "random"] = "auto"
    split: Literal["test", "validation", "train"] = "test"
    tokenizer: str | None = None
    layers: bool = True
    layer_runs: int = 20
    top_layers: int = 15
    intra_op_threads: int | None = None
    providers: list[str] | None = None
    cuda_graph: bool = False
    roofline: bool = True
    plots: bool = True
    progress: bool = True
    seed: int = 0
    power: PowerConfig = field(default_factory=PowerConfig)

    def __post_init__(self) -> None:
        if not self.batch or any(b < 1 for b in self.batch):
            raise ValueError(f"batch must list positive sizes, got {self.batch}")
        if self.seq is not None and (not self.seq or any(s < 1 for s in self.seq)):
            raise ValueError(f"seq must list positive lengths, got {self.seq}")
        # Bounds that keep one input array in memory: a typo (1e8) must be a refusal, not a 95 GiB allocation.
        if max(self.batch) * max(self.seq or [1]) > 1 << 24 or max(self.batch) > 1 << 16:
            raise ValueError(f"batch x seq is too large to time ({max(self.batch)} x {max(self.seq or [1])} tokens)")
        if self.warmup < 0:
            raise ValueError(f"warmup must not be negative, got {self.warmup}")
        if self.iterations is not None and self.duration_s is not None:
            raise ValueError("give iterations or duration_s, not both")
        if self.iterations is not None and self.iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {self.iterations}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError(f"duration_s must be positive, got {self.duration_s}")
        if self.layer_runs < 1 or self.top_layers < 1:
            raise ValueError("layer_runs and top_layers must be at least 1")
        if self.intra_op_threads is not None and self.intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be at least 1, got {self.intra_op_threads}")
