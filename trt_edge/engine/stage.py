"""The build stage: ONNX (or an export/calibrate stage folder) -> `model.plan` + manifest, or a bundle.

With TensorRT installed the plan is built here (`builder.build_engine`); without it (every CI machine)
the stage writes the on-device build bundle under `bundle/` and says so. Either way the plan is
validated first against the target TensorRT version and device, and the ONNX against the parser's
rules, so a build that cannot work is refused here in one line rather than on the device.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from trt_edge.artifacts import (
    BUILD_LOG,
    BUNDLE,
    CALIBRATION_CACHE,
    CALIBRATION_DATA,
    LAYERS,
    MANIFEST,
    ONNX,
    PLAN,
    PREPROCESSOR,
    RANGES,
    StageDescriptor,
)
from trt_edge.config import RunConfig
from trt_edge.engine.config import BuildConfig, effective_build_config
from trt_edge.engine.onnxinfo import check_onnx, external_data_files, has_qdq, onnx_inputs
from trt_edge.engine.plan import BuildPlan
from trt_edge.errors import TrtEdgeError
from trt_edge.files import sha256_file
from trt_edge.lazy import lazy_import
from trt_edge.log import get_logger
from trt_edge.stage import StageRecord, read_stage, stage_artifact, stage_output
from trt_edge.tasks.spec import task_max_length
from trt_edge.trt_version import TrtVersion

log = get_logger("build")


def resolve_input(onnx: str | os.PathLike[str]) -> tuple[Path, Path | None, dict[str, Any] | None]:
    """(ONNX file, calibration cache or None, the input stage's record or None) for a file or a stage
    folder (export -> `onnx`; calibrate or qat -> its Q/DQ `onnx` and `calibration_cache`)."""
    model, cache, _, record = resolve_inputs(onnx)
    return model, cache, record


def resolve_inputs(onnx: str | os.PathLike[str]) -> tuple[Path, Path | None, Path | None, dict[str, Any] | None]:
    """`resolve_input` plus the calibrate stage's `calibration_data` (the .npz its cache came from; the qat
    stage carries it on)."""
    path = Path(onnx)
    if path.is_file():
        return path, None, None, None
    if not path.exists():
        raise TrtEdgeError(f"{path}: no such ONNX file or stage folder")
    if (path / "stage.json").is_file():
        record = read_stage(path)
        model = stage_artifact(path, ONNX)
        artifacts = record.get("artifacts", {})
        cache = stage_artifact(path, CALIBRATION_CACHE) if CALIBRATION_CACHE in artifacts else None
        data = stage_artifact(path, CALIBRATION_DATA) if CALIBRATION_DATA in artifacts else None
        return model, cache, data, record
    if (path / "model.onnx").is_file():
        return path / "model.onnx", None, None, None
    raise TrtEdgeError(f"{path}: a folder without stage.json or model.onnx; pass the ONNX file")


def make_plan(cfg: BuildConfig, onnx: Path, max_length: int, plan_file: str | None = None,
              calibration_cache: Path | None = None, calibration_data: Path | None = None
              ) -> tuple[BuildPlan, list[str]]:
    """The validated plan (from `plan_file` or the config) and its warnings; every problem at once."""
    inputs = onnx_inputs(onnx)
    if plan_file:
        from trt_edge.engine.bundle import verify_bundle
        from trt_edge.guard import load_json

        p = Path(plan_file)
        if not p.is_file():
            raise TrtEdgeError(f"{p}: no such plan file")
        # The bundle is verified before anything in it is trusted: a replaced model.onnx is refused here.
        sums = verify_bundle(p.parent)
        raw = load_json(p, "build plan")
        if not isinstance(raw, dict):
            raise TrtEdgeError(f"{p}: not a build plan (a JSON object); rebuild the bundle")
        plan = BuildPlan.from_dict(raw, str(p))
        listed = sums.get(Path(str(plan.onnx or "model.onnx")).name)
        if listed is None or sha256_file(onnx) != listed:
            raise TrtEdgeError(f"{onnx}: not the ONNX this bundle was made for (its sha256 differs from "
                               f"{p.parent}/SHA256SUMS); build the bundle's own model.onnx or rebuild the bundle")
        for name in ("calibration_cache", "calibration_data"):
            value = getattr(plan, name)
            if value and not Path(value).is_absolute():
                setattr(plan, name, str(p.parent / value))
    else:
        if cfg.precision == "auto":  # what the ONNX asks for: its own Q/DQ scales, or fp16
            cfg = cfg.replace(precision="int8-qdq" if has_qdq(onnx) else "fp16")
        plan = BuildPlan.from_config(cfg, inputs, max_length)
        # A calibrate stage folder always brings its cache; the plan takes it only when its precision reads
        # it (not int8-qdq, the default), so a Q/DQ build neither warns about it nor records its path.
        if calibration_cache is not None and plan.calibration_cache is None and plan.reads_calibration_cache():
            plan.calibration_cache = str(calibration_cache)
        if calibration_data is not None and plan.uses_calibrator():
            plan.calibration_data = str(calibration_data)
    plan.attention_plugin = _attention_plugin(onnx)
    problems, warnings = plan.check()
    problems += plan.check_inputs(inputs)
    qdq = has_qdq(onnx)
    if qdq and plan.precision == "int8-cache":
        problems.append("precision int8-cache calibrates an un-quantized ONNX but this one has Q/DQ nodes: build it "
                        "with int8-qdq, or pass the fp32 ONNX with build.calibration_cache")
    if qdq and plan.precision in ("fp32", "fp16"):
        problems.append(f"the ONNX has Q/DQ nodes but precision is {plan.precision}: build it with int8-qdq")
    if not qdq and plan.precision in ("int8-qdq", "fp8-qdq"):
        problems.append(f"precision {plan.precision} needs Q/DQ nodes and the ONNX has none: calibrate it first "
                        "(trt-edge calibrate) or use int8-cache with a calibration cache")
    if problems:
        v = TrtVersion.parse(plan.trt_version)
        raise TrtEdgeError(f"cannot build {onnx.name} for TensorRT {v.short}"
                           + (f" on {plan.device}" if plan.device else "") + ": " + "; ".join(problems))
    return plan, warnings


def _attention_plugin(onnx: Path) -> str | None:
    """The plugin generation the ONNX's fused-attention nodes bind to (the plan records and checks it)."""
    from trt_edge.plugins.generation import onnx_generation

    generation = onnx_generation(onnx)
    return generation.interface if generation is not None else None


def _fp32_source(folder: Path, model: Path) -> Path:
    """The fp32 ONNX a calibrate stage quantized (its `ranges.json` records it): the graph whose tensor
    names the calibration cache uses. The stage's own ONNX is used when it has no Q/DQ nodes."""
    if not has_qdq(model):
        return model
    try:
        ranges = json.loads(stage_artifact(folder, RANGES).read_text(encoding="utf-8"))
        source = Path(str(ranges["source_onnx"]))
    except (TrtEdgeError, OSError, KeyError, TypeError, json.JSONDecodeError):
        source = None
    if source is None or not source.is_file():
        raise TrtEdgeError(f"{folder}: precision int8-cache needs the fp32 ONNX the calibration ran on, and its "
                           "record of it is missing: pass the export folder as --onnx with "
                           f"--build.calibration_cache={folder / 'calibration.cache'}")
    return source


def run(config: RunConfig, onnx: str | os.PathLike[str], out: str | os.PathLike[str], *, plan_file: str | None = None,
        bundle: bool = False, tokenizer: str | None = None) -> StageRecord:
    """Build (TensorRT present, `bundle` False) or write the on-device bundle; `stage.json` names the
    artifacts `plan` + `manifest`, or `bundle`."""
    from trt_edge.tasks.spec import BUNDLE_PREPROCESSOR_DIR, preprocessor_dir, task_for_inputs

    cfg = effective_build_config(config)
    model, cache, calib_data, record = resolve_inputs(onnx)
    if cfg.precision == "int8-cache" and record is not None and record.get("stage") in ("calibrate", "qat"):
        if (record.get("metrics") or {}).get("deployed") == "qat":
            # The cache's learned scales belong to the QAT-trained weights, which only the Q/DQ model holds.
            raise TrtEdgeError(f"{onnx}: the qat stage deployed its quantization-aware model, which exists only as "
                               "Q/DQ ONNX: build it with precision int8-qdq (the default), not int8-cache")
        model = _fp32_source(Path(onnx), model)
    if cfg.calibration_cache:
        cache = Path(cfg.calibration_cache)
        if not cache.is_file():
            raise TrtEdgeError(f"build.calibration_cache {cache} not found")
    reason = None
    if bundle:
        reason = "a bundle was asked for (--bundle)"
    else:
        try:
            installed = str(lazy_import("tensorrt").__version__)
        except TrtEdgeError as exc:
            reason = str(exc)
        else:
            # A real build targets the TensorRT installed here; a different explicit target is a bundle's job.
            if cfg.trt_version and TrtVersion.parse(cfg.trt_version).short != TrtVersion.parse(installed).short:
                raise TrtEdgeError(f"build.trt_version is {cfg.trt_version} but this machine has TensorRT {installed}: "
                                   "build on the target, or pass --bundle for an on-device bundle")
            cfg = cfg.replace(trt_version=installed)
    plan, warnings = make_plan(cfg, model, task_max_length(config, record), plan_file, cache, calib_data)
    if reason is None and plan.attention_plugin:
        from trt_edge.plugins.library import attention_library_for, has_attention_library

        if not has_attention_library(plan.plugins):  # the fused attention needs its plugin: build it here
            plan.plugins.append(str(attention_library_for(plan.attention_plugin, plan.serialize_plugins)))
    warnings += check_onnx(model, plan.trt_version, dla=plan.dla_core is not None)
    data_files = external_data_files(model)
    try:
        tok_dir: Path | None = preprocessor_dir(model, tokenizer)
    except TrtEdgeError:
        if tokenizer:
            raise
        tok_dir = None
        warnings.append("no preprocessor beside the ONNX (export carries one): `trt-edge run` will need --tokenizer")
    for w in warnings:
        log.warning("%s", w)
    # The folder the preprocessor is shipped in is the task's word for it (`tokenizer/`, `preprocessor/`);
    # an ONNX of no known task keeps the old name.
    try:
        bundle_dir = task_for_inputs([i.name for i in onnx_inputs(model)], str(model)).bundle_dir
    except TrtEdgeError:
        bundle_dir = BUNDLE_PREPROCESSOR_DIR

    inputs = {"onnx": sha256_file(model)}
    if cache is not None:
        inputs["calibration_cache"] = sha256_file(cache)
    stage_config = {"build": cfg.to_dict(), "plan": plan.to_dict()}
    st = StageRecord(stage="build", config=stage_config, inputs=inputs)
    with stage_output(out) as tmp:
        if reason is not None:
            from trt_edge.engine.bundle import write_bundle

            summary = write_bundle(tmp / "bundle", plan, model, external_data=data_files,
                                   calibration_cache=cache if plan.reads_calibration_cache() else None,
                                   calibration_data=Path(plan.calibration_data) if plan.calibration_data
                                   else None, tokenizer=tok_dir, reason=reason, warnings=warnings,
                                   onnx_sha256=inputs["onnx"], preprocessor_dir=bundle_dir)
            summary.update(_polygraphy(tmp / "bundle", model, plan, calib_data))
            st.artifacts = {BUNDLE: "bundle"}
            if tok_dir is not None:
                st.artifacts[PREPROCESSOR] = f"bundle/{bundle_dir}"
            st.metrics = {**summary, "warnings": warnings, "trt_version": plan.trt_version,
                          "device": plan.device, "precision": plan.precision}
        else:
            from trt_edge.engine.builder import LAYERS_FILE, LOG_FILE, MANIFEST_FILE, PLAN_FILE, build_engine
            from trt_edge.engine.bundle import copy_tokenizer

            base = Path(plan_file).parent if plan_file else model.parent
            result = build_engine(plan, model, tmp, base_dir=base)
            copy_tokenizer(tok_dir, tmp / bundle_dir)
            st.artifacts = {PLAN: PLAN_FILE, MANIFEST: MANIFEST_FILE, BUILD_LOG: LOG_FILE}
            if tok_dir is not None:
                st.artifacts[PREPROCESSOR] = bundle_dir
            if result.layers_path is not None:
                st.artifacts[LAYERS] = LAYERS_FILE
            m = result.manifest
            st.metrics = {"built": True, "tensorrt": m["tensorrt"], "device": m["device"],
                          "precision": plan.precision, "plan_bytes": m["plan"]["bytes"],
                          "sparse_layers": len(m["sparsity"].get("sparse_layers", [])),
                          "sparsity_warning": m["sparsity"].get("warning"),
                          "precisions": m["precisions"].get("counts"), "warnings": [*warnings, *result.warnings]}
        st.write(tmp, declared=_BUNDLED if reason is not None else _BUILT)
    return st


def _polygraphy(folder: Path, model: Path, plan: BuildPlan, calib_data: Path | None) -> dict[str, Any]:
    """The bundle's Polygraphy comparison of the built engine with ONNX Runtime on real inputs."""
    from trt_edge.engine.bundle import ONNX_NAME, PLAN_JSON
    from trt_edge.engine.polygraphy_check import write_polygraphy_check

    # The bundle's own plan names the plugin libraries as the device sees them (bundle-relative).
    plugins = json.loads((folder / PLAN_JSON).read_text(encoding="utf-8")).get("plugins") or plan.plugins
    inputs = [(i.name, i.dtype) for i in onnx_inputs(model)]
    return write_polygraphy_check(folder, onnx_name=ONNX_NAME, precision=plan.precision, calibration_data=calib_data,
                                  inputs=inputs, profiles=plan.profiles, plugins=plugins)


# A build writes either the engine (TensorRT here) or the device bundle (no TensorRT here); which one is
# known only when it runs, so each record is checked against its own kind.
_BUILT = (PLAN, MANIFEST, BUILD_LOG)
_BUNDLED = (BUNDLE,)
STAGE = StageDescriptor("build", ("target", "build"), run, reads=("qat", "calibrate", "export"), consumes=(ONNX,),
                        may_produce=(*_BUILT, *_BUNDLED, PREPROCESSOR, LAYERS))
