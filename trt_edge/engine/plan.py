"""The build plan: everything a TensorRT build needs, as plain data, checked against a TensorRT version.

Pure Python (no TensorRT import), so the plan is made, validated and rendered as a trtexec command on a
CPU machine, shipped in an on-device bundle as JSON, and applied by `builder.py` on the device. What
each TensorRT version can do comes from `../shared/reference/tensorrt-jetson-facts.md` (§2.1, §2.4, §6)
and lives in `trt_version.features()`: the builder and the trtexec renderer both read it, so they cannot
disagree. The trtexec command for a plan is `trtexec.command_line(plan, version)` (the renderer sits above
the plan: it reads plans, the plan knows nothing of trtexec).
Builder and network flags are carried as *names* (`"FP16"`, `"STRONGLY_TYPED"`); the builder looks
them up with `getattr` at run time, because the enum integers were renumbered in TensorRT 11.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from trt_edge.devices import Device, device, devices, platforms
from trt_edge.engine.config import MEMORY_POOLS, PRECISIONS, BuildConfig
from trt_edge.errors import TrtEdgeError
from trt_edge.trt_version import TrtVersion as TrtVersion  # re-exported: callers written before trt_version.py
from trt_edge.trt_version import features

PLAN_SCHEMA = 1
# Precisions whose ONNX carries its own types (Q/DQ or fp16 tensors): built strongly typed where possible.
STRONGLY_TYPED_PRECISIONS = ("int8-qdq", "fp8-qdq", "typed")


@dataclass(frozen=True)
class InputProfile:
    """One input's optimization-profile shapes: min, opt, max (same rank)."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def problems(self) -> list[str]:
        out: list[str] = []
        if not len(self.min) == len(self.opt) == len(self.max):
            return [f"profile for {self.name}: min {_dims(self.min)}, opt {_dims(self.opt)} and max "
                    f"{_dims(self.max)} differ in rank"]
        for axis, (lo, mid, hi) in enumerate(zip(self.min, self.opt, self.max, strict=True)):
            if min(lo, mid, hi) < 1:
                out.append(f"profile for {self.name}: axis {axis} has a size below 1 "
                           f"(min {_dims(self.min)}, opt {_dims(self.opt)}, max {_dims(self.max)})")
            elif not lo <= mid <= hi:
                out.append(f"profile for {self.name}: axis {axis} is min {lo}, opt {mid}, max {hi}; "
                           "it needs min <= opt <= max")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputProfile:
        return cls(str(data["name"]), tuple(int(x) for x in data["min"]), tuple(int(x) for x in data["opt"]),
                   tuple(int(x) for x in data["max"]))


def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


@dataclass(frozen=True)
class OnnxInput:
    """An ONNX graph input: name, element type name, dims (int, or a dim_param string / None if dynamic)."""

    name: str
    dtype: str
    dims: tuple[int | str | None, ...]


def profiles_for_inputs(inputs: Sequence[OnnxInput], axes: Mapping[str, Sequence[int]]) -> list[InputProfile]:
    """min/opt/max per input, by axis NAME: a dynamic axis named `batch` takes `axes["batch"]`, one named
    `sequence` takes `axes["sequence"]` (the names the task spec declares and the export writes), wherever
    they sit in the shape. Fixed axes keep their size; a dynamic axis with another name is an error."""
    out = []
    for inp in inputs:
        if all(isinstance(d, int) and d > 0 for d in inp.dims):
            continue  # fully static input: no profile entry needed
        shapes: list[list[int]] = [[], [], []]
        for axis, dim in enumerate(inp.dims):
            if isinstance(dim, int) and dim > 0:
                for s in shapes:
                    s.append(dim)
                continue
            if not isinstance(dim, str) or dim not in axes:
                raise TrtEdgeError(
                    f"ONNX input {inp.name!r} axis {axis} is dynamic ({dim!r}) and names none of the task's "
                    f"dynamic axes ({', '.join(axes)}); export it with `trt-edge export` or a fixed size"
                )
            for s, value in zip(shapes, axes[dim], strict=True):
                s.append(int(value))
        out.append(InputProfile(inp.name, tuple(shapes[0]), tuple(shapes[1]), tuple(shapes[2])))
    return out


def resolve_trt_version(cfg: BuildConfig) -> str:
    """The target TensorRT: `build.trt_version`, else the one the target JetPack ships (the build stage
    fills both from the `target:` section, see `trt_edge.target`)."""
    from trt_edge.target import TargetConfig

    return str(TargetConfig(trt_version=cfg.trt_version, device=cfg.device, jetpack=cfg.jetpack).tensorrt())


@dataclass
class BuildPlan:
    """A TensorRT build as data: validated per version, rendered as trtexec, applied by the builder.

    File paths (`onnx`, `calibration_cache`, `timing_cache`, `plugins`) are as the build will see them:
    relative paths are relative to the folder the plan is built in (the bundle on the device).
    """

    precision: str
    trt_version: str
    device: str | None = None
    sparse_weights: bool = False
    workspace_mib: int = 1024
    memory_pools: dict[str, int] = field(default_factory=dict)
    profiles: list[InputProfile] = field(default_factory=list)
    timing_cache: str | None = "timing.cache"
    optimization_level: int = 3
    dla_core: int | None = None
    gpu_fallback: bool = True
    plugins: list[str] = field(default_factory=list)
    serialize_plugins: bool = False
    hardware_compatibility: str = "none"
    version_compatible: bool = False
    profiling_verbosity: str = "detailed"
    verbose_log: bool = True
    calibration_cache: str | None = None
    calibration_data: str | None = None
    onnx: str = "model.onnx"
    # The fused-attention plugin generation the ONNX's TrtEdgeFusedAttention nodes bind to ("IPluginV3",
    # "IPluginV2DynamicExt"; trt_edge.plugins.generation), None when the ONNX has no fused attention.
    attention_plugin: str | None = None
    schema: int = PLAN_SCHEMA

    @classmethod
    def from_config(cls, cfg: BuildConfig, inputs: Sequence[OnnxInput], max_length: int,
                    onnx: str = "model.onnx") -> BuildPlan:
        """The plan a config asks for, with profiles made from the ONNX's inputs."""
        from trt_edge.tasks.spec import sequence_profile

        sequence = list(cfg.sequence) if cfg.sequence else sequence_profile(max_length)
        return cls(
            precision=cfg.precision, trt_version=resolve_trt_version(cfg), device=cfg.device,
            sparse_weights=cfg.resolved_sparse_weights(), workspace_mib=cfg.workspace_mib,
            memory_pools=dict(cfg.memory_pools),
            profiles=profiles_for_inputs(inputs, {"batch": cfg.batch, "sequence": sequence}),
            timing_cache=cfg.timing_cache, optimization_level=cfg.optimization_level, dla_core=cfg.dla_core,
            gpu_fallback=cfg.gpu_fallback, plugins=list(cfg.plugins), serialize_plugins=cfg.serialize_plugins,
            hardware_compatibility=cfg.hardware_compatibility, version_compatible=cfg.version_compatible,
            profiling_verbosity=cfg.profiling_verbosity, verbose_log=cfg.verbose_log,
            calibration_cache=cfg.calibration_cache, onnx=onnx,
        )

    # serialization -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["profiles"] = [p.to_dict() for p in self.profiles]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "plan") -> BuildPlan:
        raw = dict(data)
        if raw.get("schema", PLAN_SCHEMA) != PLAN_SCHEMA:
            raise TrtEdgeError(f"{where}: plan schema {raw.get('schema')} is not {PLAN_SCHEMA}; rebuild the bundle")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise TrtEdgeError(f"{where}: unknown plan keys {', '.join(unknown)}")
        try:
            raw["profiles"] = [InputProfile.from_dict(p) for p in raw.get("profiles", [])]
            return cls(**raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise TrtEdgeError(f"{where}: malformed build plan ({exc}); rebuild the bundle") from exc

    # what this plan means for a TensorRT version ----------------------------------------------
    def strongly_typed(self, version: str | TrtVersion | None = None) -> bool:
        """Whether the network is created STRONGLY_TYPED (always on 11.x; never before 10)."""
        v = TrtVersion.parse(version or self.trt_version)
        if v.major >= 11:
            return True
        return features(v)["strongly_typed"] and self.precision in STRONGLY_TYPED_PRECISIONS

    def network_flag_names(self, version: str | TrtVersion | None = None) -> list[str]:
        """`NetworkDefinitionCreationFlag` member names to set (looked up with getattr by the builder)."""
        v = TrtVersion.parse(version or self.trt_version)
        names = []
        if features(v)["explicit_batch_flag"]:
            names.append("EXPLICIT_BATCH")
        if self.strongly_typed(v) and v.major == 10:
            names.append("STRONGLY_TYPED")  # 11.x: always strongly typed, the flag is a deprecated no-op
        return names

    def builder_flag_names(self, version: str | TrtVersion | None = None) -> list[str]:
        """`BuilderFlag` member names to set for this version (after `validate`)."""
        v = TrtVersion.parse(version or self.trt_version)
        names: list[str] = []
        weak = features(v)["weak_precision_flags"] and not self.strongly_typed(v)
        if weak:
            if self.precision == "fp16":
                names.append("FP16")
            elif self.precision in ("best", "int8-cache", "int8-qdq"):
                names += ["FP16", "INT8"]  # Q/DQ on 8.x is weakly typed and needs the INT8 flag
        if self.sparse_weights:
            names.append("SPARSE_WEIGHTS")
        if self.dla_core is not None and self.gpu_fallback:
            names.append("GPU_FALLBACK")
        if self.version_compatible:
            names.append("VERSION_COMPATIBLE")
        return names

    def uses_calibrator(self) -> bool:
        return self.precision == "int8-cache"

    def reads_calibration_cache(self) -> bool:
        """Whether this precision reads a calibration cache: int8-cache (its calibrator) and best (ranges for
        the INT8 layers). A Q/DQ build carries its scales in the ONNX and never reads one."""
        return self.uses_calibrator() or self.precision == "best"

    def embeds_host_code(self) -> bool:
        """Version-compatible plans embed the lean runtime; serialized plugins embed their libraries."""
        return self.version_compatible or self.serialize_plugins

    # validation --------------------------------------------------------------------------------
    def check(self, trt_version: str | TrtVersion | None = None, target: Device | str | None = None
              ) -> tuple[list[str], list[str]]:
        """(problems, warnings) of this plan for a TensorRT version and a device; nothing is raised."""
        problems: list[str] = []
        warnings: list[str] = []
        v = TrtVersion.parse(trt_version or self.trt_version)
        dev = _device(target if target is not None else self.device)
        f = features(v)
        where = f"TensorRT {v.short}"
        if not f["supported"]:
            problems.append(f"{where} is not a supported target (8.5, 8.6, 10.x and 11.x are)")
            return problems, warnings
        if self.precision not in PRECISIONS:
            problems.append(f"unknown precision {self.precision!r} (valid: {', '.join(PRECISIONS)})")

        # precision ------------------------------------------------------------------------------
        if self.precision in ("fp16", "best") and not f["weak_precision_flags"]:
            problems.append(
                f"precision {self.precision} needs the FP16/INT8 builder flags, which {where} removed (strong "
                "typing only): export an fp16 ONNX and build it with precision typed, or use int8-qdq"
            )
        if self.precision == "int8-cache":
            if not f["calibrators"]:
                problems.append(f"precision int8-cache needs an INT8 calibrator, which {where} removed: calibrate "
                                "to a Q/DQ ONNX (trt-edge calibrate) and build with precision int8-qdq")
            elif not self.calibration_cache:
                problems.append("precision int8-cache needs a calibration cache: pass a calibrate stage folder "
                                "as --onnx or set build.calibration_cache")
        if self.precision in ("typed", "fp8-qdq") and not f["strongly_typed"]:
            problems.append(f"precision {self.precision} needs strongly typed networks (TensorRT 10+); "
                            f"{where} has none: use fp16, int8-qdq or int8-cache")
        if self.precision == "fp8-qdq" and dev is not None and not dev.fp8:
            problems.append(f"precision fp8-qdq needs FP8 tensor cores; {dev.name} (compute capability "
                            f"{dev.compute_capability}) has none: use int8-qdq")
        if f["weak_precision_flags"] and f["weak_precision_deprecated"] and self.precision in ("fp16", "best",
                                                                                                "int8-cache"):
            warnings.append(f"precision {self.precision} uses builder flags deprecated in TensorRT 10.12 and removed "
                            "in 11: prefer a strongly typed build (typed or int8-qdq)")
        if self.precision == "best" and not self.calibration_cache:
            warnings.append("precision best without a calibration cache gives INT8 layers placeholder ranges "
                            "unless the ONNX has Q/DQ nodes: time it, but do not trust its accuracy")
        if self.calibration_cache and not self.reads_calibration_cache():
            warnings.append(f"a calibration cache is set but precision {self.precision} does not read it")

        # sparsity --------------------------------------------------------------------------------
        if self.sparse_weights:
            if dev is not None and not dev.sparsity_2to4:
                problems.append(f"2:4 sparse kernels need Ampere or later; {dev.name} (compute capability "
                                f"{dev.compute_capability}) has no sparse tensor cores: set build.sparse_weights "
                                "false")
            if self.precision == "fp32":
                problems.append("2:4 sparse kernels run in FP16 or INT8 only; precision fp32 would never use "
                                "them: pick fp16, int8-qdq or typed (with an fp16 ONNX)")

        # DLA ---------------------------------------------------------------------------------------
        if self.dla_core is not None:
            if dev is not None and dev.dla_cores == 0:
                extra = " (Jetson Thor has no DLA)" if dev.family == "thor" else ""
                problems.append(f"DLA core {self.dla_core} requested but {dev.name} has no DLA{extra}: "
                                "unset build.dla_core")
            elif dev is not None and self.dla_core >= dev.dla_cores:
                problems.append(f"DLA core {self.dla_core} does not exist on {dev.name} (it has "
                                f"{dev.dla_cores}: cores 0..{dev.dla_cores - 1})")
            if not f["dla"]:
                problems.append(f"{where} has no DLA support (TensorRT 10.x, or 11.4.1+ on AGX Orin)")
            if self.precision == "fp32":
                problems.append("the DLA runs FP16 or INT8 only; precision fp32 cannot be built for it")
            if not self.gpu_fallback:
                warnings.append("DLA without gpu_fallback: the build fails on the first layer the DLA cannot run")
        elif any(k.startswith("dla_") for k in self.memory_pools):
            warnings.append("DLA memory pools are set but no DLA core is used")

        # other builder features ----------------------------------------------------------------
        if self.optimization_level != 3 and not f["optimization_level"]:
            problems.append(f"builder optimization level {self.optimization_level} needs TensorRT 8.6+; "
                            f"{where} always builds at its default: leave build.optimization_level at 3")
        if self.hardware_compatibility != "none":
            if not f["hardware_compatibility"]:
                problems.append(f"hardware compatibility needs TensorRT 8.6+, not {where}")
            elif self.hardware_compatibility == "same-cc" and not f["same_compute_capability"]:
                problems.append(f"hardware compatibility same-cc needs TensorRT 10.9+, not {where}")
            if dev is not None and dev.sm < 80:
                problems.append(f"hardware compatibility needs an Ampere or later GPU; {dev.name} is compute "
                                f"capability {dev.compute_capability}")
            warnings.append("hardware compatibility on Jetson is unverified (facts §2.1): keep it at none "
                            "unless checked on the device")
        if self.version_compatible and not f["version_compatible"]:
            problems.append(f"version-compatible plans need TensorRT 8.6+, not {where}")
        if self.serialize_plugins and not f["plugins_to_serialize"]:
            problems.append(f"serializing plugins into the plan needs TensorRT 8.6+, not {where}")
        problems += self._attention_plugin_problems(v)
        if "tactic_shared_memory" in self.memory_pools and not f["tactic_shared_memory_pool"]:
            problems.append(f"memory pool tactic_shared_memory needs TensorRT 10+, not {where}")
        sram = self.memory_pools.get("dla_sram")
        if sram is not None and (sram < 1 or sram & (sram - 1)):
            problems.append(f"memory pool dla_sram must be a power of two (MiB), got {sram}")
        for name in self.memory_pools:
            if name not in MEMORY_POOLS:
                problems.append(f"unknown memory pool {name!r} (valid: {', '.join(MEMORY_POOLS)})")
        if self.workspace_mib < 1:
            problems.append(f"workspace must be at least 1 MiB, got {self.workspace_mib}")
        if not 0 <= self.optimization_level <= 5:
            problems.append(f"builder optimization level must be 0..5, got {self.optimization_level}")

        # profiles ----------------------------------------------------------------------------------
        seen: set[str] = set()
        for prof in self.profiles:
            if prof.name in seen:
                problems.append(f"two profiles for input {prof.name!r}")
            seen.add(prof.name)
            problems += prof.problems()

        # device / platform -------------------------------------------------------------------------
        if dev is not None:
            warnings += _platform_warnings(dev, v)
        return problems, warnings

    def _attention_plugin_problems(self, v: TrtVersion) -> list[str]:
        """The fused-attention nodes must name the generation this TensorRT's plugin library registers."""
        if self.attention_plugin is None:
            return []
        from trt_edge.plugins.generation import by_interface, plugin_generation

        try:
            have, want = by_interface(self.attention_plugin), plugin_generation(v)
        except TrtEdgeError as exc:
            return [str(exc)]
        if have == want:
            return []
        return [f"the ONNX's fused-attention nodes are for {have.interface} (plugin_version {have.plugin_version}, "
                f"TensorRT {have.tensorrt}) but TensorRT {v.short} runs {want.interface}: export it again with "
                f"build.trt_version {v.short} (or the target's build.jetpack) so the rewrite emits "
                f"plugin_version {want.plugin_version}"]

    def validate(self, trt_version: str | TrtVersion | None = None, target: Device | str | None = None
                 ) -> list[str]:
        """Raise one `TrtEdgeError` naming every problem of this plan for that version and device;
        return the warnings (things that build but deserve a look)."""
        problems, warnings = self.check(trt_version, target)
        if problems:
            v = TrtVersion.parse(trt_version or self.trt_version)
            dev = _device(target if target is not None else self.device)
            on = f" on {dev.name}" if dev is not None else ""
            raise TrtEdgeError(f"build plan not possible with TensorRT {v.short}{on}: " + "; ".join(problems))
        return warnings

    def check_inputs(self, inputs: Sequence[OnnxInput]) -> list[str]:
        """Problems between the profiles and the ONNX's inputs (names, ranks, fixed sizes)."""
        by_name = {i.name: i for i in inputs}
        problems = [f"profile for {p.name!r} but the ONNX has no such input (inputs: {', '.join(by_name)})"
                    for p in self.profiles if p.name not in by_name]
        profiled = {p.name: p for p in self.profiles}
        for inp in inputs:
            dynamic = any(not (isinstance(d, int) and d > 0) for d in inp.dims)
            prof = profiled.get(inp.name)
            if prof is None:
                if dynamic:
                    problems.append(f"ONNX input {inp.name!r} has dynamic axes but no profile")
                continue
            if len(prof.min) != len(inp.dims):
                problems.append(f"profile for {inp.name!r} has rank {len(prof.min)}, the ONNX input has "
                                f"{len(inp.dims)}")
                continue
            for axis, dim in enumerate(inp.dims):
                if isinstance(dim, int) and dim > 0 and not prof.min[axis] == prof.opt[axis] == prof.max[axis] == dim:
                    problems.append(f"profile for {inp.name!r} axis {axis} must be {dim} (fixed in the ONNX)")
        return problems


def _device(target: Device | str | None) -> Device | None:
    if target is None or isinstance(target, Device):
        return target
    return device(target)


def _platform_warnings(dev: Device, v: TrtVersion) -> list[str]:
    if dev.key not in devices():
        return []
    if v.major >= 11:
        if dev.family == "xavier":
            return [f"TensorRT {v.short} does not run on {dev.name} (JetPack 5 ships 8.5)"]
        if not v.at_least(11, 4, 1):
            return [f"TensorRT {v.short} does not support JetPack; on Jetson use 11.4.1+ (JetPack 7.2.2+)"]
        return []
    shipped = sorted({TrtVersion.parse(p.tensorrt).short for p in platforms().values() if dev.key in p.devices},
                     key=lambda s: TrtVersion.parse(s))
    if v.short not in shipped:
        return [f"no JetPack in the catalog ships TensorRT {v.short} for {dev.name} (its releases ship "
                f"{', '.join(shipped)}): check the version on the device"]
    return []
