"""The build section: how an ONNX model becomes a TensorRT plan (or an on-device build bundle)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from trt_edge.configbase import ConfigBase

if TYPE_CHECKING:
    from trt_edge.config import RunConfig

PRECISIONS = ("fp32", "fp16", "best", "int8-qdq", "int8-cache", "fp8-qdq", "typed")
Precision = Literal["auto", "fp32", "fp16", "best", "int8-qdq", "int8-cache", "fp8-qdq", "typed"]
# Memory pools other than the workspace, in MiB, with the trtexec `--memPoolSize` key of each.
MEMORY_POOLS = {"dla_sram": "dlaSRAM", "dla_local_dram": "dlaLocalDRAM", "dla_global_dram": "dlaGlobalDRAM",
                "tactic_shared_memory": "tacticSharedMem"}


@dataclass
class BuildConfig(ConfigBase):
    """TensorRT engine build: precision, sparsity, shapes, memory, DLA, plugins, target.

    precision (str): `auto` (`int8-qdq` when the ONNX carries Q/DQ nodes, else `fp16`),
        `fp16` (weak typing, FP16 flag; TensorRT <= 10), `int8-qdq` (a Q/DQ ONNX built
        strongly typed; 8.x falls back to the INT8+FP16 flags), `int8-cache` (implicit INT8 from a
        calibration cache; TensorRT <= 10 only), `best` (FP16+INT8 flags, TensorRT <= 10), `fp8-qdq`
        (FP8 Q/DQ ONNX, strongly typed; Thor only), `typed` (strongly typed, every precision taken from
        the graph, e.g. an fp16 ONNX on TensorRT 11), `fp32`. Defaults to `auto`.
    sparse_weights (bool | str): let TensorRT pick 2:4 sparse kernels for weights that have the pattern
        (prune first). `auto` follows the target device: on where it has sparse tensor cores (Ampere and
        later: Orin, Thor), off on Xavier, with no device, and for fp32 builds. The plan and the bundle
        record the resolved true/false. Defaults to `auto`.
    workspace_mib (int): the builder's workspace pool, MiB. Defaults to 1024.
    memory_pools (dict[str, int]): other pools in MiB: `dla_sram`, `dla_local_dram`,
        `dla_global_dram`, `tactic_shared_memory`. Defaults to none (TensorRT's defaults).
    batch (list[int]): min, opt, max batch size of the optimization profile. Defaults to [1, 8, 32].
    sequence (list[int] | None): min, opt, max sequence length; None means
        [1, task.max_length // 2, task.max_length]. Defaults to None.
    timing_cache (str | None): timing cache file, loaded when present and saved after the build;
        a relative path is under the output folder. None turns it off. Defaults to `timing.cache`.
    optimization_level (int): builder optimization level 0..5 (TensorRT >= 8.6). Defaults to 3.
    dla_core (int | None): build for this DLA core (Orin AGX/NX); None builds for the GPU.
        Defaults to None.
    gpu_fallback (bool): with `dla_core`, run layers the DLA cannot run on the GPU. Defaults to True.
    plugins (list[str]): plugin libraries (.so) loaded before parsing; their sha256 goes into the
        manifest. Defaults to [].
    serialize_plugins (bool): embed the plugin libraries in the plan (host code: the runtime must
        allow it). Defaults to False.
    hardware_compatibility (str): `none`, `ampere+` or `same-cc` (TensorRT >= 10.9). Defaults to `none`.
    version_compatible (bool): a plan later TensorRT versions of the same major can run (embeds the
        lean runtime: host code). Defaults to False.
    profiling_verbosity (str): `detailed` (needed for the per-layer precision and sparsity report),
        `layer_names_only` or `none`. Defaults to `detailed`.
    verbose_log (bool): build with the VERBOSE logger so the `(Sparsity)` lines are captured.
        Defaults to True.
    device (str | None): target Jetson from the device catalog (`agx-orin-64gb`, `orin-nano-8gb`,
        `agx-thor`, ...); None for a non-Jetson GPU. Defaults to `agx-orin-64gb`.
    jetpack (str | None): target JetPack; fixes the TensorRT version when `trt_version` is unset.
        Defaults to `6.2`.
    trt_version (str | None): target TensorRT version (`8.5`, `10.3`, `10.13`, `11.1`); None takes it
        from `jetpack`. Defaults to None.
    calibration_cache (str | None): the calibration cache for `int8-cache`; found automatically in a
        calibrate stage folder. Defaults to None.
    """

    precision: Precision = "auto"
    sparse_weights: bool | Literal["auto"] = "auto"
    workspace_mib: int = 1024
    memory_pools: dict[str, int] = field(default_factory=dict)
    batch: list[int] = field(default_factory=lambda: [1, 8, 32])
    sequence: list[int] | None = None
    timing_cache: str | None = "timing.cache"
    optimization_level: int = 3
    dla_core: int | None = None
    gpu_fallback: bool = True
    plugins: list[str] = field(default_factory=list)
    serialize_plugins: bool = False
    hardware_compatibility: Literal["none", "ampere+", "same-cc"] = "none"
    version_compatible: bool = False
    profiling_verbosity: Literal["detailed", "layer_names_only", "none"] = "detailed"
    verbose_log: bool = True
    device: str | None = "agx-orin-64gb"
    jetpack: str | None = "6.2"
    trt_version: str | None = None
    calibration_cache: str | None = None

    def __post_init__(self) -> None:
        if self.workspace_mib < 1:
            raise ValueError(f"workspace_mib must be at least 1, got {self.workspace_mib}")
        for name, size in self.memory_pools.items():
            if name not in MEMORY_POOLS:
                raise ValueError(f"unknown memory pool {name!r}; valid: {', '.join(MEMORY_POOLS)}")
            if size < 0:
                raise ValueError(f"memory pool {name} must not be negative, got {size}")
        for name in ("batch", "sequence"):
            value = getattr(self, name)
            if value is not None and (len(value) != 3 or any(v < 1 for v in value)):
                raise ValueError(f"{name} must be three positive integers [min, opt, max], got {value}")
        if not 0 <= self.optimization_level <= 5:
            raise ValueError(f"optimization_level must be in 0..5, got {self.optimization_level}")
        if self.dla_core is not None and self.dla_core < 0:
            raise ValueError(f"dla_core must not be negative, got {self.dla_core}")
        if self.serialize_plugins and not self.plugins:
            raise ValueError("serialize_plugins needs at least one library in plugins")

    def resolved_sparse_weights(self) -> bool:
        """`sparse_weights` as the build uses it: `auto` is on exactly where the device has sparse tensor
        cores (a 2:4 request elsewhere is refused by the plan check, so auto must not make one), and off
        for fp32, which never runs sparse kernels."""
        if self.sparse_weights != "auto":
            return bool(self.sparse_weights)
        if self.device is None or self.precision == "fp32":
            return False
        from trt_edge.devices import device

        return device(self.device).sparsity_2to4


def effective_build_config(config: RunConfig) -> BuildConfig:
    """The build section with the `target:` section applied (TensorRT version, device, JetPack) and
    `sparse_weights: auto` resolved for that device: what preflight checks and the build stage builds.
    One function for both, so the preflight cannot check a different build than the stage runs."""
    from trt_edge.target import resolve_target

    cfg: BuildConfig = config.section("build")
    target = resolve_target(config.raw, "build")
    cfg = cfg.replace(trt_version=target.trt_version, device=target.device, jetpack=target.jetpack)
    return cfg.replace(sparse_weights=cfg.resolved_sparse_weights())
