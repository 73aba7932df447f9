"""trtexec command lines for a build plan, per TensorRT version (facts §6): `command_line(plan, version)`.

What changes between versions: TensorRT 11 removed `--fp16/--int8/--best/--calib` (strong typing only,
so `--stronglyTyped` is a no-op there and is left out); 8.5 has no `--builderOptimizationLevel`,
`--hardwareCompatibilityLevel`, `--versionCompatible`, and loads plugins with `--plugins` (8.6 added
`--staticPlugins/--dynamicPlugins/--setPluginsToSerialize`). `--memPoolSize` sizes are MiB (the default
unit in every version; the `M` suffix is written from 10.x on, where the facts file confirms it).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from trt_edge.engine.config import MEMORY_POOLS
from trt_edge.engine.plan import BuildPlan, InputProfile
from trt_edge.trt_version import TrtVersion, features

DEFAULT_TRTEXEC = "trtexec"
JETPACK_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"
_HWCOMPAT = {"ampere+": "ampere+", "same-cc": "sameComputeCapability"}  # same-cc spelling: [UNVERIFIED]


def shell_join(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def _name(name: str) -> str:
    # trtexec splits shape specs on ':'; a name containing one is written in single quotes ('Input:0').
    return f"'{name}'" if ":" in name else name


def shape_spec(profiles: Sequence[InputProfile], which: str) -> str:
    """`name:1x16,name2:1x16` for `--minShapes/--optShapes/--maxShapes/--shapes`."""
    parts = []
    for p in profiles:
        dims = getattr(p, which)
        parts.append(f"{_name(p.name)}:{'x'.join(str(d) for d in dims) if dims else 'scalar'}")
    return ",".join(parts)


def _mib(v: TrtVersion, size: int) -> str:
    return f"{size}M" if v.major >= 10 else str(size)


def precision_flags(plan: BuildPlan, v: TrtVersion, calib: str | None = None) -> list[str]:
    """The precision part of the command for that version."""
    f = features(v)
    if plan.strongly_typed(v):
        return ["--stronglyTyped"] if v.major == 10 else []
    flags: list[str] = []
    if not f["weak_precision_flags"]:
        return flags
    if plan.precision == "fp16":
        flags.append("--fp16")
    elif plan.precision == "best":
        flags.append("--best")
    elif plan.precision in ("int8-qdq", "int8-cache"):
        flags += ["--int8", "--fp16"]
    cache = calib or plan.calibration_cache
    if plan.precision in ("int8-cache", "best") and cache and f["calibrators"]:
        flags.append(f"--calib={cache}")
    return flags


def command_line(plan: BuildPlan, trt_version: str | TrtVersion | None = None, *, onnx: str | None = None,
                 engine: str = "model.plan", layer_info: str | None = "model.layers.json",
                 trtexec: str = DEFAULT_TRTEXEC) -> str:
    """The trtexec command line equivalent to `plan` for that TensorRT version, shell-quoted (what the
    bundle writes to trtexec.txt). It lives here, not on `BuildPlan`, so the plan stays below its renderer."""
    return shell_join(render_build(plan, trt_version, onnx=onnx, engine=engine, layer_info=layer_info,
                                   trtexec=trtexec))


def render_build(plan: BuildPlan, trt_version: str | TrtVersion | None = None, *, onnx: str | None = None,
                 engine: str = "model.plan", layer_info: str | None = "model.layers.json",
                 timing_cache: str | None = None, calib: str | None = None, trtexec: str = DEFAULT_TRTEXEC,
                 verbose: bool | None = None) -> list[str]:
    """argv of the trtexec build equivalent to `plan` on that TensorRT version (default: the plan's)."""
    v = TrtVersion.parse(trt_version or plan.trt_version)
    f = features(v)
    argv = [trtexec, f"--onnx={onnx or plan.onnx}", f"--saveEngine={engine}"]
    argv += precision_flags(plan, v, calib)
    if plan.sparse_weights:
        argv.append("--sparsity=enable")
    pools = [f"workspace:{_mib(v, plan.workspace_mib)}"]
    pools += [f"{MEMORY_POOLS[k]}:{_mib(v, size)}" for k, size in sorted(plan.memory_pools.items())
              if k in MEMORY_POOLS]
    argv.append("--memPoolSize=" + ",".join(pools))
    if plan.profiles:
        argv += [f"--minShapes={shape_spec(plan.profiles, 'min')}",
                 f"--optShapes={shape_spec(plan.profiles, 'opt')}",
                 f"--maxShapes={shape_spec(plan.profiles, 'max')}"]
    cache = timing_cache or plan.timing_cache
    if cache:
        argv.append(f"--timingCacheFile={cache}")
    if f["optimization_level"]:
        argv.append(f"--builderOptimizationLevel={plan.optimization_level}")
    if plan.hardware_compatibility != "none" and f["hardware_compatibility"]:
        argv.append(f"--hardwareCompatibilityLevel={_HWCOMPAT[plan.hardware_compatibility]}")
    if plan.version_compatible and f["version_compatible"]:
        argv.append("--versionCompatible")
    if plan.dla_core is not None:
        argv.append(f"--useDLACore={plan.dla_core}")
        if plan.gpu_fallback:
            argv.append("--allowGPUFallback")
    for lib in plan.plugins:
        if not f["static_dynamic_plugins"]:
            argv.append(f"--plugins={lib}")
        elif plan.serialize_plugins:
            argv += [f"--dynamicPlugins={lib}", f"--setPluginsToSerialize={lib}"]
        else:
            argv.append(f"--staticPlugins={lib}")
    argv.append(f"--profilingVerbosity={plan.profiling_verbosity}")
    if layer_info and plan.profiling_verbosity != "none":
        argv.append(f"--exportLayerInfo={layer_info}")
    if f["skip_inference"]:
        argv.append("--skipInference")
    if plan.verbose_log if verbose is None else verbose:
        argv.append("--verbose")  # the (Sparsity) lines and tactic choices are VERBOSE messages
    return argv


def render_benchmark(plan: BuildPlan, engine: str = "model.plan", *, trtexec: str = DEFAULT_TRTEXEC,
                     shapes: str = "opt", times: str | None = "times.json", profile: str | None = "profile.json",
                     layer_info: str | None = "layers.json", cuda_graph: bool = True) -> list[str]:
    """argv of NVIDIA's canonical trtexec profiling run (TREx `process_engine.py`) at the `shapes` profile
    point (`min`, `opt` or `max`)."""
    argv = [trtexec, f"--loadEngine={engine}", "--noDataTransfers", "--separateProfileRun", "--useSpinWait"]
    if cuda_graph:
        argv.append("--useCudaGraph")
    if plan.profiles:
        argv.append(f"--shapes={shape_spec(plan.profiles, shapes)}")
    if times:
        argv.append(f"--exportTimes={times}")
    if profile:
        argv.append(f"--exportProfile={profile}")
    if layer_info:
        argv += [f"--exportLayerInfo={layer_info}", "--profilingVerbosity=detailed"]
    if plan.dla_core is not None:
        argv.append(f"--useDLACore={plan.dla_core}")

    static = features(plan.trt_version)["static_dynamic_plugins"]
    argv += [f"--staticPlugins={lib}" if static else f"--plugins={lib}" for lib in plan.plugins]
    return argv
