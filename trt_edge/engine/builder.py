"""Build a TensorRT plan from an ONNX file and a `BuildPlan` (TensorRT imported lazily, version-gated).

The sequence follows facts §2.2: network flags by name (EXPLICIT_BATCH only before 10, STRONGLY_TYPED
where the plan is strongly typed on 10.x), the ONNX parser with every error reported (node, operator,
description), the builder flags the plan names for this version (looked up with `getattr`: an enum a
version lacks is a clear error, never a wrong integer), memory pools, one optimization profile, the
timing cache, DLA, plugins, then `build_serialized_network`. After the build the plan is deserialized
once to export the engine inspector's JSON and the I/O tensors, and the precision and sparsity report
is made from the inspector and the VERBOSE log's `(Sparsity)` lines, captured by our own ILogger.

Nothing here can run without TensorRT; CI type-checks it against `tensorrt-stubs` (mypy strict).
"""

from __future__ import annotations

import ctypes
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trt_edge.engine.inspector import parse_engine_info, precision_report, sparsity_report
from trt_edge.engine.manifest import (
    RuntimeEnv,
    detect_runtime_env,
    finalize_manifest,
    new_manifest,
    plugin_entries,
    write_manifest,
)
from trt_edge.engine.onnxinfo import task_name
from trt_edge.engine.plan import BuildPlan
from trt_edge.engine.trt_api import enum_member, trt
from trt_edge.errors import TrtEdgeError
from trt_edge.files import atomic_write_bytes, atomic_write_json, atomic_write_text, sha256_file
from trt_edge.log import get_logger
from trt_edge.trt_version import TrtVersion

log = get_logger("build")

PLAN_FILE = "model.plan"
MANIFEST_FILE = "model.plan.json"
LAYERS_FILE = "model.layers.json"
LOG_FILE = "build.log"
_POOLS = {"dla_sram": "DLA_MANAGED_SRAM", "dla_local_dram": "DLA_LOCAL_DRAM",
          "dla_global_dram": "DLA_GLOBAL_DRAM", "tactic_shared_memory": "TACTIC_SHARED_MEMORY"}
_HWCOMPAT = {"ampere+": "AMPERE_PLUS", "same-cc": "SAME_COMPUTE_CAPABILITY"}
_VERBOSITY = {"detailed": "DETAILED", "layer_names_only": "LAYER_NAMES_ONLY", "none": "NONE"}


@dataclass
class BuildResult:
    """What a real build wrote (paths under the output folder) and what it found."""

    plan_path: Path
    manifest_path: Path
    layers_path: Path | None
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def capturing_logger(lines: list[str], verbose: bool) -> trt.ILogger:
    """A `trt.ILogger` that keeps every message (for the `(Sparsity)` lines and failure reports) and
    forwards warnings and errors to our logger."""
    severity = trt.ILogger.Severity
    names = {severity.INTERNAL_ERROR: "F", severity.ERROR: "E", severity.WARNING: "W", severity.INFO: "I",
             severity.VERBOSE: "V"}
    keep_verbose = verbose

    class _Logger(trt.ILogger):  # type: ignore[misc, unused-ignore]  # Any without usable stubs
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, sev: trt.ILogger.Severity, msg: str) -> None:
            if sev == severity.VERBOSE and not keep_verbose and "(Sparsity)" not in msg:
                return
            lines.append(f"[{names.get(sev, '?')}] {msg}")
            if sev in (severity.INTERNAL_ERROR, severity.ERROR):
                log.error("TensorRT: %s", msg)
            elif sev == severity.WARNING:
                log.warning("TensorRT: %s", msg)

    return _Logger()


def parser_errors(parser: trt.OnnxParser) -> list[str]:
    """Every ONNX parser error as `node N (name, Op): description` (node name/op where the version has them)."""
    out = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        where = f"node {err.node()}"
        extra = [str(getattr(err, attr)()) for attr in ("node_name", "node_operator") if hasattr(err, attr)]
        extra = [e for e in extra if e]
        if extra:
            where += f" ({', '.join(extra)})"
        out.append(f"{where}: {err.desc()}")
    return out


def load_plugins(paths: Sequence[str], serialize: bool) -> None:
    """Load plugin libraries before parsing: through the plugin registry when they are serialized into
    the plan (it needs the handle), else with `ctypes` (static REGISTER_TENSORRT_PLUGIN registration)."""
    for path in paths:
        if not Path(path).is_file():
            raise TrtEdgeError(f"plugin library {path} not found")
        try:
            if serialize:
                trt.get_plugin_registry().load_library(str(path))
            else:
                ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            raise TrtEdgeError(f"plugin library {path} does not load: {exc}") from exc


def cache_calibrator(cache_path: Path, calibration_data: Path | None = None,
                     input_names: Sequence[str] = ()) -> trt.IInt8EntropyCalibrator2:
    """The INT8 calibrator of an `int8-cache` build.

    With the calibrate stage's `calibration.npz` at hand, the quantize area's
    `trt_edge.quantize.trt_calibrator.make_entropy_calibrator` is used (it reuses the cache, or
    calibrates on exactly that data if TensorRT rejects it). Otherwise a calibrator that only replays
    the cache (as `trtexec --calib` does): it never feeds batches, so the scales come from the cache.
    """
    if calibration_data is not None and calibration_data.is_file():
        try:
            module = importlib.import_module("trt_edge.quantize.trt_calibrator")
        except ImportError:
            module = None
        factory = getattr(module, "make_entropy_calibrator", None) if module is not None else None
        if factory is not None:
            made: trt.IInt8EntropyCalibrator2 = factory(calibration_data, cache_path,
                                                        input_names=tuple(input_names))
            return made
    blob = cache_path.read_bytes()

    class _CacheCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc, unused-ignore]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int]:
            return []  # no data: the cache is the calibration

        def read_calibration_cache(self) -> bytes:
            return blob

        def write_calibration_cache(self, cache: Any) -> None:
            return None

    return _CacheCalibrator()


def _resolve(base: Path, path: str | None) -> Path | None:
    if not path:
        return None
    p = Path(path).expanduser()
    return p if p.is_absolute() else base / p


def build_engine(plan: BuildPlan, onnx_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                 base_dir: str | os.PathLike[str] | None = None, env: RuntimeEnv | None = None,
                 device_key: str | None = None) -> BuildResult:
    """Build `onnx_path` with `plan` into `out_dir` (`model.plan`, `model.plan.json`, `model.layers.json`,
    `build.log`). Relative paths in the plan (calibration cache, timing cache, plugins) are relative to
    `base_dir` (default: the ONNX's folder); a relative timing cache is written under `out_dir`."""
    version = TrtVersion.parse(str(trt.__version__))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = Path(base_dir) if base_dir is not None else Path(onnx_path).parent
    env = env or detect_runtime_env()
    warnings = plan.validate(version, device_key if device_key is not None else plan.device)
    if plan.device and env.compute_capability:
        from trt_edge.devices import device

        target = device(plan.device)
        if target.compute_capability != env.compute_capability:
            raise TrtEdgeError(
                f"the plan targets {target.name} (compute capability {target.compute_capability}) but this GPU is "
                f"{env.device_name} ({env.compute_capability}): build on the target, or set build.device to null "
                "to build for this GPU"
            )
    lines: list[str] = []
    logger = capturing_logger(lines, plan.verbose_log)
    plugins = [str(_resolve(base, p)) for p in plan.plugins]
    if hasattr(trt, "init_libnvinfer_plugins"):
        trt.init_libnvinfer_plugins(logger, "")
    load_plugins(plugins, plan.serialize_plugins)

    builder = trt.Builder(logger)
    flags = 0
    for name in plan.network_flag_names(version):
        member = getattr(trt.NetworkDefinitionCreationFlag, name, None)
        if member is not None:  # EXPLICIT_BATCH is gone in 11, STRONGLY_TYPED absent before 10
            flags |= 1 << int(member)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = parser_errors(parser) or ["no parser error recorded; see build.log"]
        atomic_write_text(out / LOG_FILE, "\n".join(lines) + "\n")
        more = f" (and {len(errors) - 1} more, see {out / LOG_FILE})" if len(errors) > 1 else ""
        raise TrtEdgeError(f"{onnx_path}: TensorRT {version.short} cannot parse it: {errors[0]}{more}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_mib << 20)
    for key, size in plan.memory_pools.items():
        config.set_memory_pool_limit(enum_member(trt.MemoryPoolType, _POOLS[key], "MemoryPoolType"), size << 20)
    for name in plan.builder_flag_names(version):
        config.set_flag(enum_member(trt.BuilderFlag, name, "BuilderFlag"))
    config.profiling_verbosity = enum_member(trt.ProfilingVerbosity, _VERBOSITY[plan.profiling_verbosity],
                                             "ProfilingVerbosity")
    if hasattr(config, "builder_optimization_level"):
        config.builder_optimization_level = plan.optimization_level
    if plan.hardware_compatibility != "none":
        config.hardware_compatibility_level = enum_member(
            trt.HardwareCompatibilityLevel, _HWCOMPAT[plan.hardware_compatibility], "HardwareCompatibilityLevel")
    if plan.serialize_plugins:
        config.plugins_to_serialize = plugins
    if plan.dla_core is not None:
        cores = int(builder.num_DLA_cores)
        if plan.dla_core >= cores:
            raise TrtEdgeError(f"DLA core {plan.dla_core} does not exist on this device (TensorRT reports {cores} "
                               "DLA core(s)); unset build.dla_core or pick one that exists")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan.dla_core
        on_gpu = [network.get_layer(i).name for i in range(network.num_layers)
                  if not config.can_run_on_DLA(network.get_layer(i))]
        if on_gpu:
            warnings.append(f"{len(on_gpu)} layer(s) cannot run on the DLA and fall back to the GPU "
                            f"(first: {', '.join(on_gpu[:5])})")

    profile = builder.create_optimization_profile()
    for prof in plan.profiles:
        profile.set_shape(prof.name, trt.Dims(list(prof.min)), trt.Dims(list(prof.opt)), trt.Dims(list(prof.max)))
    if plan.profiles:
        config.add_optimization_profile(profile)

    if plan.uses_calibrator():
        cache = _resolve(base, plan.calibration_cache)
        if cache is None or not cache.is_file():
            raise TrtEdgeError(f"calibration cache {plan.calibration_cache} not found (needed by precision int8-cache)")
        if not hasattr(config, "int8_calibrator"):
            raise TrtEdgeError(f"TensorRT {version.short} has no INT8 calibrators; build a Q/DQ ONNX with int8-qdq")
        config.int8_calibrator = cache_calibrator(cache, _resolve(base, plan.calibration_data),
                                                  [p.name for p in plan.profiles])
        if plan.profiles and hasattr(config, "set_calibration_profile"):
            config.set_calibration_profile(profile)

    timing_path = _resolve(out, plan.timing_cache) if plan.timing_cache else None
    if timing_path is not None:
        blob = timing_path.read_bytes() if timing_path.is_file() else b""
        timing = config.create_timing_cache(blob)
        config.set_timing_cache(timing, ignore_mismatch=False)

    log.info("building with TensorRT %s (%s, sparse weights %s)", version, plan.precision, plan.sparse_weights)
    serialized = builder.build_serialized_network(network, config)
    atomic_write_text(out / LOG_FILE, "\n".join(lines) + "\n")
    if serialized is None:
        errors = [line for line in lines if line.startswith(("[E]", "[F]"))]
        raise TrtEdgeError(f"TensorRT {version.short} could not build {onnx_path}: "
                           + (errors[-1][4:] if errors else f"no error message; see {out / LOG_FILE}"))
    plan_bytes = bytes(memoryview(serialized))
    plan_path = atomic_write_bytes(out / PLAN_FILE, plan_bytes)
    if timing_path is not None:
        atomic_write_bytes(timing_path, bytes(memoryview(config.get_timing_cache().serialize())))

    # inspect the engine we just built ------------------------------------------------------------
    runtime = trt.Runtime(logger)
    if plan.embeds_host_code():
        runtime.engine_host_code_allowed = True  # our own build: its host code is what we just serialized
    engine = runtime.deserialize_cuda_engine(plan_bytes)
    if engine is None:
        raise TrtEdgeError(f"TensorRT {version.short} built a plan it cannot deserialize; see {out / LOG_FILE}")
    io = engine_io(engine)
    layers_path: Path | None = None
    info = None
    if plan.profiling_verbosity != "none":
        inspector = engine.create_engine_inspector()
        text = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
        layers_path = atomic_write_text(out / LAYERS_FILE, text)
        info = parse_engine_info(text, str(layers_path))
    sparsity = sparsity_report(plan.sparse_weights, info, lines)
    if sparsity["warning"]:
        warnings.append(sparsity["warning"])
        log.warning("%s", sparsity["warning"])
        print(f"trt-edge: WARNING: {sparsity['warning']}", file=sys.stderr)
    precisions = precision_report(info)

    env.tensorrt = str(trt.__version__)
    manifest = new_manifest(plan, status="built", plan_file=PLAN_FILE, env=env,
                            device_key=device_key or plan.device, onnx_sha256=sha256_file(onnx_path),
                            plugins=plugin_entries(plugins), io=io, sparsity=sparsity, precisions=precisions,
                            built_by="trt-edge builder", task=task_name(onnx_path))
    manifest["warnings"] = warnings
    finalize_manifest(manifest, plan_path)
    manifest_path = write_manifest(out / MANIFEST_FILE, manifest)
    atomic_write_json(out / "build_report.json", {"sparsity": sparsity, "precision": precisions,
                                                   "warnings": warnings})
    return BuildResult(plan_path, manifest_path, layers_path, manifest, warnings)


def engine_io(engine: trt.ICudaEngine) -> list[dict[str, Any]]:
    """Every I/O tensor: name, mode, dtype, shape (-1 dynamic) and, for inputs, profile 0's min/opt/max."""
    out: list[dict[str, Any]] = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        entry: dict[str, Any] = {
            "name": name,
            "mode": "input" if is_input else "output",
            "dtype": str(engine.get_tensor_dtype(name)).rsplit(".", 1)[-1].lower(),
            "shape": dims_list(engine.get_tensor_shape(name)),
        }
        if is_input and engine.num_optimization_profiles > 0:
            lo, mid, hi = engine.get_tensor_profile_shape(name, 0)
            entry["profile"] = {"min": dims_list(lo), "opt": dims_list(mid), "max": dims_list(hi)}
        out.append(entry)
    return out


def dims_list(dims: trt.Dims) -> list[int]:
    """A `trt.Dims` as a list of ints (-1 marks a dynamic axis)."""
    return [int(dims[i]) for i in range(len(dims))]
