"""The qat stage: quantization-aware distillation (QAD) of the model the calibrate stage quantized.

Post-training INT8 either loses accuracy or keeps its worst layers in float (slower on the device). QAT
fine-tunes the PyTorch model with INT8 rounding in its forward pass, exactly where the calibrate stage put
Q/DQ (`trt_edge.quantize.qat`), starting from its ranges, distilling from the fp32 model itself, with the
2:4 masks kept fixed; the trained model is exported again and written as Q/DQ ONNX with every planned
layer INT8 and the learned ranges, through the same Q/DQ writer as PTQ's.

Inputs (files only): the calibrate stage folder (its placement, ranges, gate and predictions), the fp32
ONNX it quantized (checked against the hash calibrate recorded) and the PyTorch model that ONNX was
exported from (prune, width or distill). Outputs: `model.int8.onnx` is the one to deploy (QAT's, or a
copy of PTQ's when QAT did not run or did worse), the cache for TensorRT <= 10, the ranges, the QAT model
folder, and the predictions of fp32, PTQ and QAT side by side for the report's paired intervals.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge import stats
from trt_edge.artifacts import (
    CALIBRATION_CACHE,
    CALIBRATION_DATA,
    MODEL,
    ONNX,
    ONNX_QAT,
    PREDICTIONS,
    PREPROCESSOR,
    RANGES,
    StageDescriptor,
)
from trt_edge.config import RunConfig
from trt_edge.errors import TrtEdgeError
from trt_edge.files import atomic_write_json, sha256_file
from trt_edge.log import get_logger
from trt_edge.quantize.config import CalibrateConfig, QatConfig
from trt_edge.stage import STAGE_FILE, StageRecord, read_stage, stage_artifact, stage_output
from trt_edge.tasks.metrics import prefixed

log = get_logger("qat")

QAT_ONNX = "model.qat.onnx"
DEPLOY_ONNX = "model.int8.onnx"
RANGES_FILE = "qat.json"
CACHE_FILE = "calibration.cache"
DATA_FILE = "calibration.npz"  # calibrate's calibration set, carried on: build's calibrator and Polygraphy read it
MODEL_DIR = "model"
MODEL_STAGES = ("prune", "width", "distill")  # where a run keeps the PyTorch model export read, in export's order


def run(config: RunConfig, run_dir: str | Path, out: str | Path) -> StageRecord:
    """The pipeline's entry: the run folder's calibrate stage, its export and the model export read."""
    root = Path(run_dir)
    model = next((root / s for s in MODEL_STAGES if (root / s / STAGE_FILE).is_file()), None)
    if model is None:
        raise TrtEdgeError(f"{root}: no prune, width or distill stage to take the PyTorch model from")
    return quantization_aware(config, root / "calibrate", model, out, onnx=root / "export")


def _fp32_onnx(calibrate_dir: Path, onnx: str | Path | None) -> Path:
    """The fp32 ONNX the calibrate stage quantized: `onnx` (a file or an export stage folder) or the path
    calibrate recorded; its hash must be the one calibrate recorded."""
    record = read_stage(calibrate_dir)
    if onnx is not None:
        path = Path(onnx)
        path = stage_artifact(path, ONNX) if path.is_dir() else path
    else:
        ranges = json.loads(stage_artifact(calibrate_dir, RANGES).read_text(encoding="utf-8"))
        path = Path(str(ranges.get("source_onnx", "")))
    if not path.is_file():
        raise TrtEdgeError(f"the fp32 ONNX that {calibrate_dir} quantized is not at {path}: give it with --onnx "
                           "(a .onnx file or the export stage folder)")
    want = record.get("inputs", {}).get("onnx")
    if want and sha256_file(path) != want:
        raise TrtEdgeError(f"{path} is not the ONNX {calibrate_dir} calibrated (sha256 differs): give that export's "
                           "model.onnx, or calibrate this one first")
    return path


def _decision(cfg: QatConfig, cal: dict[str, Any]) -> tuple[bool, str]:
    """Whether QAT runs, and why, from the calibrate stage's record."""
    if cfg.when == "always":
        return True, "qat.when is always"
    if cfg.when == "never":
        return False, "qat.when is never"
    before = float(cal.get("accuracy_drop_before_fallback", cal.get("accuracy_drop_points", 0.0)))
    floats = [n for n in cal.get("excluded_layers", []) if n in set(cal.get("excluded_reasons", {}))
              and str(cal["excluded_reasons"][n]).startswith("accuracy gate")]
    if floats:
        return True, f"PTQ kept {len(floats)} layers in float to pass its gate"
    if before > cfg.trigger:
        return True, f"PTQ with every layer INT8 lost {before:.2f} points (qat.trigger {cfg.trigger:.2f})"
    return False, f"PTQ lost {before:.2f} points with every layer INT8, within qat.trigger {cfg.trigger:.2f}"


def _train_masks(model: Any, onnx_path: Path) -> Any:
    """The 2:4 masks to keep fixed: every weight the export's sparsity.json lists, its zeros as they are."""
    from trt_edge.sparsity.masks import Masks
    from trt_edge.sparsity.report import find_sparsity_json, load_sparsity_json

    masks = Masks()
    if find_sparsity_json(onnx_path.parent) is None:
        return masks
    params = dict(model.named_parameters())
    for name, entry in load_sparsity_json(onnx_path.parent).get("tensors", {}).items():
        key = next((k for k in (entry.get("module_name") if isinstance(entry, dict) else None, name)
                    if k in params), None)
        if key is None:
            raise TrtEdgeError(f"{onnx_path.parent}: sparsity.json lists {name}, which the model has not: the ONNX "
                               "and the model are not of one run")
        masks[key] = params[key].detach() != 0
    return masks


def quantization_aware(config: RunConfig, calibrate_dir: str | Path, model_dir: str | Path, out: str | Path, *,
                       onnx: str | Path | None = None) -> StageRecord:
    """QAT of the model in `model_dir` (a stage folder or a model folder) on the placement and ranges of the
    calibrate stage in `calibrate_dir`; writes the stage folder `out`. See the module docstring."""
    import onnx as onnx_lib

    from trt_edge.quantize import evaluate, placement, qat
    from trt_edge.quantize.stage import load_onnx

    started = time.perf_counter()
    cfg: QatConfig = config.section("qat")
    cal_dir = Path(calibrate_dir)
    if not Path(model_dir).exists():
        raise TrtEdgeError(f"model folder not found: {model_dir} (give the prune, width or distill stage folder, "
                           "or the model folder, that the calibrated ONNX was exported from)")
    if not (cal_dir / STAGE_FILE).is_file():
        raise TrtEdgeError(f"{cal_dir}: not a finished calibrate stage folder (no {STAGE_FILE})")
    cal_record = read_stage(cal_dir)
    if cal_record.get("stage") != "calibrate" or ONNX not in cal_record.get("artifacts", {}):
        raise TrtEdgeError(f"{cal_dir}: not a calibrate stage with a TensorRT Q/DQ model (calibrate.targets must "
                           "include tensorrt)")
    cal = cal_record.get("metrics") or {}
    ptq_onnx = stage_artifact(cal_dir, ONNX)
    ranges_doc = json.loads(stage_artifact(cal_dir, RANGES).read_text(encoding="utf-8"))
    onnx_path = _fp32_onnx(cal_dir, onnx)
    do_qat, reason = _decision(cfg, cal)
    log.info("QAT %s: %s", "runs" if do_qat else "skipped", reason)
    cal_cfg = CalibrateConfig.from_dict(cal_record.get("config", {}).get("calibrate") or {}, "calibrate")

    if not do_qat:
        return _pass_on(cal_dir, cal_record, cfg, reason, out, started)

    # ---- everything that can fail cheaply, before training ---------------------------------------------
    fp32_graph = load_onnx(onnx_path)
    plan = placement.plan_placement(fp32_graph, cal_cfg.placement)
    recorded = [p["node"] for p in ranges_doc.get("placement", [])]
    if recorded and sorted(recorded) != sorted(plan.node_names()):
        raise TrtEdgeError(f"the placement planned on {onnx_path} differs from the one {cal_dir} recorded: "
                           "calibrate this ONNX again")
    amax = {t: float(ranges_doc["tensors"][t]["amax"]) for t in plan.activation_tensors()
            if t in ranges_doc.get("tensors", {})}

    inputs = _load_model(config, Path(model_dir))
    task, data, loaded, adapter = inputs["task"], inputs["data"], inputs["loaded"], inputs["adapter"]
    model, tokenizer = loaded.model, loaded.tokenizer
    fq = qat.attach(model, fp32_graph, plan, amax, learn_scales=cfg.learn_scales)  # refuses a foreign ONNX now
    fq.remove()
    masks = _train_masks(model, onnx_path)

    # ---- QAD: the fp32 model teaches its own fake-quantized copy -------------------------------------
    from trt_edge.distill.stage import describe_metrics, training_features, validation_eval_fn
    from trt_edge.sparsity.recovery import recover

    encode = adapter.encode
    train_enc = encode(tokenizer, data.train.texts, task.max_length)
    val_enc = encode(tokenizer, data.validation.texts, task.max_length)
    fp32_train = adapter.predict_logits(model, train_enc, task.eval_batch_size).astype(np.float32)
    reference = None
    if not adapter.uses_labels:  # judged against a model: the fp32 model's own validation outputs
        reference = adapter.predict_logits(model, val_enc, task.eval_batch_size).astype(np.float32)
    eval_fn = validation_eval_fn(val_enc, data.validation.labels, data.num_labels, task.eval_batch_size, task,
                                 reference)
    fq = qat.attach(model, fp32_graph, plan, amax, learn_scales=cfg.learn_scales)
    start_metrics = eval_fn(model)
    log.info("fake-quantized before training: %s", describe_metrics(start_metrics))
    result = recover(model, masks, training_features(train_enc, data.train.labels), train_enc.pad_token_id,
                     cfg.train, eval_fn=eval_fn, teacher_logits=fp32_train, alpha=cfg.alpha,
                     temperature=cfg.temperature, seed=cfg.seed, desc="quantization-aware distillation",
                     task=task.type)
    learned = fq.amax_by_node()
    learned_tensors = fq.amax_by_tensor()
    bindings = [b.to_dict() for b in fq.bindings]
    fq.remove()

    with stage_output(out) as tmp:
        from trt_edge.export.exporter import export_onnx
        from trt_edge.modeling.folder import save_classifier

        save_classifier(model, tokenizer, tmp / MODEL_DIR)
        float_path = tmp / ".qat.fp32.onnx"
        exporter = {p.key: p.value for p in fp32_graph.metadata_props}.get("trt_edge.exporter")
        int32 = any(i.type.tensor_type.elem_type == onnx_lib.TensorProto.INT32 for i in fp32_graph.graph.input)
        export_onnx(tmp / MODEL_DIR, float_path, opset=_opset(fp32_graph), int32_inputs=int32,
                    dynamo=None if exporter is None else exporter == "dynamo", loaded=loaded, task=task.type)
        reexported = load_onnx(float_path)
        new_plan = placement.plan_placement(reexported, cal_cfg.placement)
        qmodel, qat_amax = qat.qdq_model(reexported, new_plan, learned)
        float_path.unlink()
        onnx_lib.save(qmodel, str(tmp / QAT_ONNX))
        from trt_edge.quantize.stage import check_qdq_sparsity

        sparse = check_qdq_sparsity(tmp / QAT_ONNX, onnx_path)

        # ---- the test split: fp32, PTQ (as calibrate deployed it) and QAT, paired -------------------
        from trt_edge.quantize import calib_data
        from trt_edge.tasks.spec import get_task, recorded_stage, task_max_length

        names = evaluate.check_model_io(qmodel, str(tmp / QAT_ONNX))
        test = data.split("test")
        max_length = cal_cfg.data.max_length or task_max_length(config, recorded_stage(onnx_path))
        arrays, lengths = calib_data.prepare(tokenizer, test.texts, max_length, names, task.type)
        fp32_out = evaluate.predict(evaluate.session(fp32_graph), arrays, lengths, task.eval_batch_size)
        qat_out = evaluate.predict(evaluate.session(qmodel), arrays, lengths, task.eval_batch_size)
        ptq_out = _ptq_predictions(cal_dir, ptq_onnx, arrays, lengths, task.eval_batch_size, len(test))
        teacher = None
        if not adapter.uses_labels:
            from trt_edge.quantize.stage import carried_teacher

            teacher = carried_teacher(onnx_path, len(test))

        def scored(outputs: np.ndarray) -> dict[str, float]:
            ref = None if adapter.uses_labels else (teacher if teacher is not None else fp32_out)
            return dict(adapter.score(outputs, test.labels, data.num_labels, ref))

        primary = get_task(task.type).metric
        fp32_m, ptq_m, qat_m = scored(fp32_out), scored(ptq_out), scored(qat_out)
        qat_v = adapter.judge("qat.gate", "QAT INT8 Q/DQ vs fp32 ONNX", fp32_out, qat_out, test.labels, cfg.budget,
                              QatConfig().budget, teacher)
        ptq_v = adapter.judge("qat.ptq", "PTQ INT8 Q/DQ vs fp32 ONNX", fp32_out, ptq_out, test.labels, cfg.budget,
                              QatConfig().budget, teacher)
        qat_vs_ptq = adapter.judge("qat.vs_ptq", "QAT INT8 vs PTQ INT8", ptq_out, qat_out, test.labels, cfg.budget,
                                   QatConfig().budget, teacher)
        log.info("%s", qat_v.line())
        log.info("%s", ptq_v.line())
        ptq_floats = [n for n, why in cal.get("excluded_reasons", {}).items()
                      if str(why).startswith("accuracy gate")]
        deployed, why = _choose(qat_v, ptq_v, ptq_floats, cfg.budget)
        log.info("deploy %s: %s", deployed.upper(), why)

        artifacts: dict[str, str] = {MODEL: MODEL_DIR, RANGES: RANGES_FILE}
        if deployed == "qat":
            onnx_lib.save(qmodel, str(tmp / DEPLOY_ONNX))
        else:
            shutil.copyfile(ptq_onnx, tmp / DEPLOY_ONNX)
        artifacts[ONNX] = DEPLOY_ONNX
        artifacts[ONNX_QAT] = QAT_ONNX
        artifacts.update(_carry_calibration_data(cal_dir, cal_record, tmp))
        if CALIBRATION_CACHE in cal_record.get("artifacts", {}):
            _write_cache(tmp / CACHE_FILE, cal_dir, ranges_doc, qat_amax if deployed == "qat" else {},
                         cal_cfg.trt_version)
            artifacts[CALIBRATION_CACHE] = CACHE_FILE
        atomic_write_json(tmp / RANGES_FILE, {
            "note": "activation amax per tensor of the QAT Q/DQ model (scale = amax / 127); weights per channel "
                    "max|W| / 127", "learn_scales": cfg.learn_scales, "source_onnx": str(onnx_path),
            "calibrate": str(cal_dir), "quantized_activations": qat_amax,
            "start_amax": {t: amax[t] for t in learned_tensors if t in amax}, "learned_amax": learned_tensors,
            "placement": [p.to_dict() for p in new_plan.nodes], "skipped": new_plan.skipped, "bindings": bindings,
            "float_layers": [],
        })
        artifacts[PREDICTIONS] = stats.save_predictions(
            tmp, test.labels, fp32=fp32_out, ptq=ptq_out, qat=qat_out,
            int8=qat_out if deployed == "qat" else ptq_out, **({"teacher": teacher} if teacher is not None else {}))
        from trt_edge.quantize.stage import carry_preprocessor
        from trt_edge.tasks.spec import preprocessor_dir

        artifacts[PREPROCESSOR] = carry_preprocessor(preprocessor_dir(onnx_path, cal_cfg.tokenizer), tmp)
        desc = placement.describe(qmodel)
        metrics = {
            **prefixed("fp32", fp32_m), **prefixed("ptq", ptq_m), **prefixed("qat", qat_m),
            **prefixed("int8", qat_m if deployed == "qat" else ptq_m),
            "qat_ran": True, "reason": reason, "deployed": deployed, "deployed_reason": why,
            "primary_metric": primary,
            "accuracy_drop_points": round(qat_v.drop_points, 3), "gate_budget_points": cfg.budget,
            "gate_passed": bool(qat_v.passed), "gate": qat_v.to_dict(), "ptq_gate": ptq_v.to_dict(),
            "qat_vs_ptq": qat_vs_ptq.to_dict(), "ptq_float_layers": ptq_floats, "qat_float_layers": [],
            "quantized_nodes": len(new_plan.nodes), "qdq_pairs": desc["quantize_linear"],
            "learn_scales": cfg.learn_scales, "fake_quant_validation_start": start_metrics,
            "train": result.to_dict(), "test_examples": len(test), "seconds": round(time.perf_counter() - started, 1),
            **sparse,
        }
        record = StageRecord(stage="qat", config={"task": task.to_dict(), "calibrate": cal_cfg.to_dict(),
                                                  "qat": cfg.to_dict()},
                             inputs={"onnx": sha256_file(onnx_path), "calibrate_onnx": sha256_file(ptq_onnx),
                                     "model": str(model_dir)},
                             metrics=metrics, artifacts=artifacts)
        record.write(tmp, declared=STAGE.produces)
    log.info("QAT INT8 %s %.4f, PTQ %.4f, fp32 %.4f: deployed %s; written to %s", primary, qat_m.get(primary, math.nan),
             ptq_m.get(primary, math.nan), fp32_m.get(primary, math.nan), deployed, out)
    return record


def _load_model(config: RunConfig, model_dir: Path) -> dict[str, Any]:
    """The task, its data and the PyTorch model (a stage folder's `model` or a model folder)."""
    from trt_edge.modeling.folder import resolve_model_path
    from trt_edge.tasks.adapter import adapter_for, load_task_data
    from trt_edge.tasks.config import task_config_for
    from trt_edge.tasks.models import check_preprocessor, load_classifier
    from trt_edge.tasks.spec import get_task

    if not model_dir.exists():
        raise TrtEdgeError(f"model folder not found: {model_dir}")
    folder = stage_artifact(model_dir, MODEL) if (model_dir / STAGE_FILE).is_file() else \
        resolve_model_path(str(model_dir))
    task, _ = task_config_for(config, model_dir)
    spec = get_task(task.type)
    check_preprocessor(folder, task.type)
    data = load_task_data(task)
    loaded = load_classifier(folder, data.label_names, False, task.type)
    if not loaded.head_trained:
        raise TrtEdgeError(f"{folder}: {loaded.head_note}; QAT starts from a trained model")
    return {"task": task, "data": data, "loaded": loaded, "adapter": adapter_for(spec), "folder": folder}


def _opset(model: Any) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=17)


def _ptq_predictions(cal_dir: Path, ptq_onnx: Path, arrays: dict[str, np.ndarray], lengths: np.ndarray,
                     batch: int, examples: int) -> np.ndarray:
    """PTQ's test outputs: calibrate's saved `int8` row when it is of this split, else PTQ's model run now."""
    from trt_edge.artifacts import stage_predictions
    from trt_edge.quantize import evaluate

    saved = stage_predictions(cal_dir).get("int8")
    if saved is not None and saved.shape[0] == examples:
        return np.asarray(saved)
    return evaluate.predict(evaluate.session(str(ptq_onnx)), arrays, lengths, batch)


def _choose(qat_v: Any, ptq_v: Any, ptq_floats: list[str], budget: float) -> tuple[str, str]:
    """QAT's model when it passes its budget with every layer INT8 and PTQ needed float layers or lost
    more; PTQ's when QAT fails its budget, or when PTQ, every layer INT8 too, lost no more."""
    if not qat_v.passed:
        return "ptq", f"QAT lost {qat_v.drop_points:.2f} points, over its budget {budget:.2f}"
    if ptq_floats:
        return "qat", (f"every layer INT8 within budget ({qat_v.drop_points:+.2f} points) where PTQ kept "
                       f"{len(ptq_floats)} layers float")
    if qat_v.drop_points < ptq_v.drop_points:
        return "qat", f"lost {qat_v.drop_points:.2f} points, PTQ {ptq_v.drop_points:.2f}"
    return "ptq", f"PTQ lost {ptq_v.drop_points:.2f} points, no more than QAT's {qat_v.drop_points:.2f}"


def _write_cache(path: Path, cal_dir: Path, ranges_doc: dict[str, Any], learned: dict[str, float],
                 trt_version: str | None) -> None:
    """The calibration cache for implicit INT8 (TensorRT <= 10): calibrate's scales, with the learned ones
    for the tensors QAT quantized."""
    from trt_edge.quantize.cache import write_cache
    from trt_edge.quantize.calibrators import QMAX

    scales: dict[str, float] = {}
    for name, rng in ranges_doc.get("tensors", {}).items():
        value = float(rng.get("amax", math.nan))
        if math.isfinite(value) and value > 0 and name not in ranges_doc.get("not_in_cache", {}):
            scales[name] = value / QMAX
    for name, value in learned.items():
        scales[name] = value / QMAX
    write_cache(path, scales, str(trt_version))


class _Saved:
    """Labels read back from calibrate's predictions file, saved again as they are: `stats.label_array` would
    cast a detector's padded float object rows to int64 (and the report would find another test split)."""

    def __init__(self, array: Any) -> None:
        self.array = array

    def to_array(self) -> Any:
        return self.array


def _carry_calibration_data(cal_dir: Path, cal_record: dict[str, Any], tmp: Path) -> dict[str, str]:
    """Calibrate's calibration set, copied: the build stage reads it from the folder it builds from (the
    implicit-INT8 calibrator, the bundle's Polygraphy check), and stages talk through their own folders."""
    if CALIBRATION_DATA not in cal_record.get("artifacts", {}):
        return {}
    shutil.copyfile(stage_artifact(cal_dir, CALIBRATION_DATA), tmp / DATA_FILE)
    return {CALIBRATION_DATA: DATA_FILE}


def _pass_on(cal_dir: Path, cal_record: dict[str, Any], cfg: QatConfig, reason: str, out: str | Path,
             started: float) -> StageRecord:
    """QAT not needed: PTQ's Q/DQ model (and cache, ranges, predictions, preprocessor) carried on as this
    stage's, so build reads one folder whichever ran."""
    from trt_edge.artifacts import stage_predictions

    cal = cal_record.get("metrics") or {}
    with stage_output(out) as tmp:
        artifacts: dict[str, str] = {}
        for art, name in ((ONNX, DEPLOY_ONNX), (CALIBRATION_CACHE, CACHE_FILE), (RANGES, RANGES_FILE)):
            if art in cal_record.get("artifacts", {}):
                shutil.copyfile(stage_artifact(cal_dir, art), tmp / name)
                artifacts[art] = name
        artifacts.update(_carry_calibration_data(cal_dir, cal_record, tmp))
        shutil.copytree(stage_artifact(cal_dir, PREPROCESSOR), tmp / "preprocessor")
        artifacts[PREPROCESSOR] = "preprocessor"
        saved = stage_predictions(cal_dir)
        labels = saved.pop("labels", None)
        arrays = {k: v for k, v in saved.items() if k in ("fp32", "int8", "teacher")}
        if "int8" in arrays:
            arrays["ptq"] = arrays["int8"]
        artifacts[PREDICTIONS] = stats.save_predictions(tmp, _Saved(labels), **arrays)
        metrics = {k: v for k, v in cal.items() if k.startswith(("fp32_", "int8_"))}
        metrics.update({f"ptq_{k[5:]}": v for k, v in cal.items() if k.startswith("int8_")})
        metrics.update({"qat_ran": False, "reason": reason, "deployed": "ptq",
                        "deployed_reason": "QAT did not run", "gate": cal.get("gate"),
                        "ptq_gate": cal.get("gate"), "accuracy_drop_points": cal.get("accuracy_drop_points"),
                        "gate_passed": cal.get("gate_passed"), "gate_budget_points": cal.get("gate_budget_points"),
                        "ptq_float_layers": [n for n, why in cal.get("excluded_reasons", {}).items()
                                             if str(why).startswith("accuracy gate")],
                        "seconds": round(time.perf_counter() - started, 1)})
        record = StageRecord(stage="qat", config={"task": cal_record.get("config", {}).get("task"),
                                                  "qat": cfg.to_dict()},
                             inputs={"calibrate_onnx": sha256_file(stage_artifact(cal_dir, ONNX))},
                             metrics=metrics, artifacts=artifacts)
        record.write(tmp, declared=STAGE.produces)
    return record


# The deployable Q/DQ model always (QAT's or PTQ's carried on), its predictions and preprocessor; the QAT
# model, its own Q/DQ file and ranges only when QAT ran; the cache where calibrate wrote one.
# It reads the run folder (calibrate, export and the model's stage); `reads` names those stages so its input
# hash covers them alone: a rerun of export-teacher or a later stage does not retrain it.
STAGE = StageDescriptor("qat", ("task", "target", "calibrate", "qat"), run, reads_run=True,
                        reads=("calibrate", "export", *MODEL_STAGES),
                        produces=(ONNX, PREDICTIONS, PREPROCESSOR),
                        may_produce=(MODEL, RANGES, CALIBRATION_CACHE, CALIBRATION_DATA, ONNX_QAT))
