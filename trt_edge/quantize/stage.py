"""The calibrate stage: fp32 ONNX -> `model.int8.onnx` (Q/DQ for TensorRT) + calibration cache, gated.

Steps: check the ONNX is a text-classifier export; draw (or reuse) the calibration set; plan the Q/DQ
placement; run the fp32 graph on the calibration set to collect activation ranges (two passes); insert
the Q/DQ pairs; measure fp32 and INT8 accuracy with ONNX Runtime on the test split; when INT8 loses more
than the budget, rank layers by sensitivity and leave the most sensitive in float until it holds; write
the cache for TensorRT <= 10, the ranges (for a CPU artifact from the same calibration), and stage.json.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge import stats
from trt_edge.artifacts import (
    CALIBRATION_CACHE,
    CALIBRATION_DATA,
    ONNX,
    ONNX_CPU,
    PREDICTIONS,
    PREPROCESSOR,
    RANGES,
    StageDescriptor,
)
from trt_edge.artifacts import CPU_CANDIDATES as CPU_CANDIDATES_ARTIFACT
from trt_edge.config import RunConfig
from trt_edge.errors import GateError, TrtEdgeError
from trt_edge.files import atomic_write_json, sha256_file, sha256_tree
from trt_edge.log import get_logger
from trt_edge.quantize import calib_data, calibrators, evaluate, placement, sensitivity
from trt_edge.quantize.cache import supports_implicit_calibration, write_cache
from trt_edge.quantize.config import CalibrateConfig, CpuTargetConfig, GateConfig
from trt_edge.stage import StageRecord, stage_artifact, stage_output
from trt_edge.target import resolve_target
from trt_edge.tasks.adapter import adapter_for, task_adapter
from trt_edge.tasks.metrics import argmax_agreement, prefixed
from trt_edge.tasks.spec import (
    PREPROCESSOR_DIR,
    preprocessor_dir,
    recorded_stage,
    task_max_length,
)

log = get_logger("calibrate")

INT8_ONNX = "model.int8.onnx"
CPU_ONNX = "model.cpu.onnx"
CPU_CANDIDATES = "cpu_candidates.json"
CACHE_FILE = "calibration.cache"
DATA_FILE = "calibration.npz"
RANGES_FILE = "calibration.json"


def resolve_onnx(onnx: str | Path) -> Path:
    """A bare `.onnx` file, or the `onnx` artifact of an export stage folder."""
    path = Path(onnx)
    if path.is_dir():
        return stage_artifact(path, ONNX)
    if not path.is_file():
        raise TrtEdgeError(f"ONNX model not found: {path} (give a .onnx file or an export stage folder)")
    if path.suffix.lower() != ".onnx":
        raise TrtEdgeError(f"{path}: expected a .onnx file or an export stage folder")
    return path


def load_onnx(path: Path) -> Any:
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf decode errors have no common base class
        raise TrtEdgeError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:160]})") from exc


def carry_preprocessor(src: Path, tmp: Path) -> str:
    """Copy the preprocessor beside this stage's ONNX files, so build, profile and run read it here (public:
    the qat stage carries it the same way)."""
    from trt_edge.tasks.spec import task_for_model_folder, task_spec

    (task_for_model_folder(src) or task_spec(None)).preprocessor.copy(src, tmp / PREPROCESSOR_DIR)
    return PREPROCESSOR_DIR


def run(config: RunConfig, onnx: str | Path, out: str | Path) -> StageRecord:
    """Calibrate `onnx` (file or export stage folder) into `out`; see the module docstring."""
    from trt_edge.guard import check_positions
    from trt_edge.tasks.adapter import load_task_data
    from trt_edge.tasks.data import resolve_data_source
    from trt_edge.tasks.spec import check_model_task, get_task, task_for_onnx

    task = config.section("task")
    cfg: CalibrateConfig = config.section("calibrate")
    cfg = cfg.replace(trt_version=resolve_target(config.raw, "calibrate").tensorrt_text())
    onnx_path = resolve_onnx(onnx)
    model = load_onnx(onnx_path)
    names = evaluate.check_model_io(model, str(onnx_path))
    tok_dir = preprocessor_dir(onnx_path, cfg.tokenizer)
    spec = get_task(task.type)
    check_model_task(task_for_onnx(model, str(onnx_path)), spec.name, str(onnx_path))  # before the data
    tokenizer = spec.preprocessor.load(tok_dir)
    max_length = cfg.data.max_length or task_max_length(config, recorded_stage(onnx_path))
    if spec.has_sequence_axis:
        check_positions(max(max_length, task.max_length), tok_dir, tokenizer,
                        "calibrate.data.max_length" if max_length > task.max_length else "task.max_length")
    data = load_task_data(task)

    inputs = {"onnx": sha256_file(onnx_path), "data": sha256_tree(resolve_data_source(task.data.source)),
              "tokenizer": sha256_tree(tok_dir)}
    if cfg.data.path:
        calib = calib_data.load_calibration_set(cfg.data.path, names, cfg.data.samples).head(cfg.data.samples)
        inputs["calibration_data"] = sha256_file(cfg.data.path)
    else:
        split = data.split(cfg.data.split)
        calib = calib_data.draw_calibration_set(
            split.texts, split.labels, tokenizer, cfg.data, max_length,
            cfg.data.seed if cfg.data.seed is not None else task.data.seed, names,
            {"data_sha256": split.sha256(), "tokenizer": str(tok_dir)}, task.type)

    if "tensorrt" not in cfg.targets:  # the CPU artifact alone
        return _run_cpu_only(task, cfg, onnx_path, names, tokenizer, data, calib, inputs, max_length, out, tok_dir)

    plan = placement.plan_placement(model, cfg.placement)
    if not plan.nodes:
        raise TrtEdgeError(f"{onnx_path}: no MatMul/Gemm left to quantize (skipped: {len(plan.skipped)}); "
                           "check calibrate.placement.exclude and op_types")
    quant_acts = plan.activation_tensors()
    write_cache_file = supports_implicit_calibration(str(cfg.trt_version))
    tensors = list(quant_acts)
    not_cached: dict[str, str] = {}
    if write_cache_file and cfg.cache_tensors == "all":
        mask = placement.mask_path_tensors(model)
        for t in evaluate.float_activations(model):
            if t in mask:
                not_cached[t] = "attention-mask path (Where(mask, 0, -inf)): never calibrated"
            elif t not in set(quant_acts):
                tensors.append(t)
    ranges = _collect(model, calib, names, tensors, cfg)
    for tensor in quant_acts:
        consumers = [p.node for p in plan.nodes if tensor in p.activations]
        try:
            calibrators.scale_from_amax(ranges[tensor].amax if ranges[tensor].finite else math.inf, tensor)
        except TrtEdgeError as exc:
            raise TrtEdgeError(f"{exc} (it feeds {', '.join(consumers)}: add that node to "
                               "calibrate.placement.exclude)") from exc
    amax = {t: ranges[t].amax for t in quant_acts}

    # ---- accuracy: fp32 vs INT8 on the test split, and the mixed-precision fallback ------------------
    test = data.split("test")
    test_arrays, test_lengths = calib_data.prepare(tokenizer, test.texts, max_length, names, task.type)
    fp32_sess = evaluate.session(model)
    fp32_logits = evaluate.predict(fp32_sess, test_arrays, test_lengths, task.eval_batch_size)
    adapter = adapter_for(spec)
    # A task judged against a model (embeddings): INT8 and its fp32 input both scored against the teacher's
    # test vectors the export carried (the recall of the teacher's neighbours), else against the fp32
    # input's own outputs (fp32 scoring 1.0).
    teacher = None if adapter.uses_labels else carried_teacher(onnx_path, len(test))
    reference = None if adapter.uses_labels else (teacher if teacher is not None else fp32_logits)
    primary = spec.metric

    def scored(outputs: np.ndarray) -> dict[str, float]:
        return adapter.score(outputs, test.labels, data.num_labels, reference)

    fp32_metrics = scored(fp32_logits)

    def int8_logits(float_nodes: set[str], arrays: dict[str, np.ndarray], lengths: np.ndarray) -> np.ndarray:
        qmodel = placement.quantize_model(model, plan, amax, float_nodes)
        return evaluate.predict(evaluate.session(qmodel), arrays, lengths, task.eval_batch_size)

    test_cache: dict[frozenset[str], np.ndarray] = {}

    def test_logits(float_nodes: set[str]) -> np.ndarray:
        key = frozenset(float_nodes)
        if key not in test_cache:
            test_cache[key] = int8_logits(set(key), test_arrays, test_lengths)
        return test_cache[key]

    def drop_with(float_nodes: set[str]) -> float:
        return (fp32_metrics[primary] - scored(test_logits(float_nodes))[primary]) * 100.0

    float_layers: list[str] = []
    ranked: list[sensitivity.LayerSensitivity] = []
    steps: list[dict[str, Any]] = []
    first_drop = drop_with(set())
    passed = first_drop <= cfg.gate.budget
    if not passed and cfg.gate.mixed_precision and cfg.gate.max_float_layers > 0:
        log.info("INT8 loses %.2f points (budget %.2f): ranking layer sensitivity", first_drop, cfg.gate.budget)
        sens = data.split(cfg.gate.sensitivity_split)
        s_arrays, s_lengths = calib_data.prepare(tokenizer, sens.texts, max_length, names, task.type)
        s_ref = evaluate.predict(fp32_sess, s_arrays, s_lengths, task.eval_batch_size)
        _, ranked = sensitivity.rank_layers(lambda f: int8_logits(f, s_arrays, s_lengths), s_ref,
                                            plan.node_names())
        chosen, steps, passed = sensitivity.fallback(ranked, drop_with, cfg.gate.budget,
                                                     cfg.gate.max_float_layers)
        if passed:
            float_layers = chosen
        else:  # keep the best prefix seen (possibly none) and let the gate report it
            options = [(first_drop, 0)] + [(s["accuracy_drop"], k + 1) for k, s in enumerate(steps)]
            float_layers = chosen[: min(options)[1]]
    qmodel = placement.quantize_model(model, plan, amax, set(float_layers))
    int8_sess = evaluate.session(qmodel)
    int8_test_logits = test_logits(set(float_layers))
    int8_metrics = scored(int8_test_logits)
    drop = (fp32_metrics[primary] - int8_metrics[primary]) * 100.0
    passed = drop <= cfg.gate.budget

    verdict = adapter.judge("calibrate.gate", "INT8 Q/DQ vs fp32 ONNX", fp32_logits, int8_test_logits,
                            test.labels, cfg.gate.budget, GateConfig().budget, teacher)
    log.info("%s", verdict.line())
    figures = {**prefixed("fp32", fp32_metrics), **prefixed("int8", int8_metrics),
               "accuracy_drop_points": round(drop, 3), "budget_points": cfg.gate.budget,
               "interval_points": verdict.to_dict()["interval_points"], "n": verdict.n,
               "float_layers": float_layers}
    if not passed and cfg.gate.fail:
        raise GateError(f"INT8 {primary} {int8_metrics[primary]:.4f} is {drop:.2f} points below fp32 "
                        f"{fp32_metrics[primary]:.4f} (95% CI of the drop [{verdict.interval_points[0]:.2f}, "
                        f"{verdict.interval_points[1]:.2f}], {verdict.status}; budget {cfg.gate.budget}) even with "
                        f"{len(float_layers)} layers left float; raise calibrate.gate.budget or "
                        "calibrate.gate.max_float_layers, or try another calibrate.calibrator.method", figures)

    latency = [math.nan, math.nan]
    if cfg.latency_runs:
        longest = int(np.argmax(test_lengths))
        feed = {n: test_arrays[n][longest:longest + 1] for n in names}
        latency = evaluate.latency_ms([fp32_sess, int8_sess], feed, cfg.latency_runs)

    with stage_output(out) as tmp:
        import onnx as onnx_lib

        onnx_lib.save(qmodel, str(tmp / INT8_ONNX))
        sparse = check_qdq_sparsity(tmp / INT8_ONNX, onnx_path)
        data_sha = calib.save(tmp / DATA_FILE)
        artifacts = {ONNX: INT8_ONNX, CALIBRATION_DATA: DATA_FILE, RANGES: RANGES_FILE}
        cache_scales: dict[str, float] = {}
        if write_cache_file:
            for name, rng in ranges.items():
                if rng.usable:
                    cache_scales[name] = rng.amax / calibrators.QMAX
                else:
                    not_cached[name] = ("non-finite or mask-fill values (|x| >= 1e30)" if not rng.finite
                                        else "constant zero on the calibration set")
            write_cache(tmp / CACHE_FILE, cache_scales, str(cfg.trt_version))
            artifacts[CALIBRATION_CACHE] = CACHE_FILE
        atomic_write_json(tmp / RANGES_FILE, {
            "method": cfg.calibrator.method, "num_bins": cfg.calibrator.num_bins,
            "source_onnx": str(onnx_path), "note": "amax per tensor of the fp32 graph; scale = amax / 127",
            "tensors": {n: r.to_dict() for n, r in ranges.items()},
            "quantized_activations": quant_acts,
            "placement": [p.to_dict() for p in plan.nodes], "skipped": plan.skipped,
            "float_layers": float_layers, "sensitivity": [s.to_dict() for s in ranked], "fallback_steps": steps,
            "not_in_cache": not_cached,
        })
        desc = placement.describe(qmodel)
        quantized = [n for n in plan.node_names() if n not in set(float_layers)]
        metrics = {
            **prefixed("fp32", fp32_metrics), **prefixed("int8", int8_metrics),
            "accuracy_drop_points": round(drop, 3), "accuracy_drop_before_fallback": round(first_drop, 3),
            "gate_budget_points": cfg.gate.budget, "gate_passed": passed, "gate": verdict.to_dict(),
            **({"argmax_agreement": argmax_agreement(fp32_logits, int8_test_logits)} if adapter.uses_labels else {}),
            "method": cfg.calibrator.method, "calibration_samples": len(calib), "calibration_sha256": data_sha,
            "quantized_nodes": len(quantized), "float_nodes": len(plan.skipped) + len(float_layers),
            "excluded_layers": float_layers + sorted(n for n, why in plan.skipped.items()
                                                     if why.startswith("excluded by")),
            "excluded_reasons": {**plan.skipped, **{n: "accuracy gate: most sensitive layers left float"
                                                    for n in float_layers}},
            "qdq_pairs": desc["quantize_linear"], "test_examples": len(test),
            "ort_latency_ms_fp32": latency[0], "ort_latency_ms_int8": latency[1],
            "latency_shape": list(next(iter(test_arrays.values()))[:1].shape), "trt_version": cfg.trt_version,
            "cache_tensors": len(cache_scales) if write_cache_file else 0,
        }
        metrics.update(sparse)
        predictions: dict[str, np.ndarray] = {"fp32": fp32_logits, "int8": int8_test_logits}
        if "cpu" in cfg.targets:
            cpu_artifacts, cpu_metrics, cpu_pred = _cpu_artifact(
                tmp, onnx_path, calib, names, evaluate.input_dtypes(fp32_sess), tokenizer, test.texts, test_arrays,
                test_lengths, stats.label_array(test.labels), cfg, fp32_logits=fp32_logits, task_type=task.type,
                adapter=adapter, teacher=teacher)
            artifacts.update(cpu_artifacts)
            metrics.update(cpu_metrics)
            predictions["cpu"] = cpu_pred
        artifacts[PREDICTIONS] = stats.save_predictions(tmp, test.labels, **predictions)
        if not write_cache_file:
            metrics["calibration_cache_note"] = (f"TensorRT {cfg.trt_version} removed implicit calibration: "
                                                 "no cache written; model.int8.onnx carries the scales")
        artifacts[PREPROCESSOR] = carry_preprocessor(tok_dir, tmp)
        record = StageRecord(stage="calibrate", config={"task": task.to_dict(), "calibrate": cfg.to_dict()},
                             inputs=inputs, metrics=metrics, artifacts=artifacts)
        record.write(tmp, declared=STAGE.produces)
    log.info("INT8 %s %.4f vs fp32 %.4f (%d layers float); written to %s", primary, int8_metrics[primary],
             fp32_metrics[primary], len(float_layers), out)
    return record


def carried_teacher(onnx_path: Path, examples: int) -> np.ndarray | None:
    """The teacher's test vectors the export stage carried in its predictions file (`teacher`), when the
    ONNX is an export stage's and they are of this test split; None otherwise (a bare ONNX, a classifier)."""
    from trt_edge.artifacts import stage_predictions

    teacher = stage_predictions(onnx_path.parent).get("teacher")
    return teacher if teacher is not None and teacher.shape[0] == examples else None


def _cpu_artifact(tmp: Path, onnx_path: Path, calib: calib_data.CalibrationSet, names: list[str],
                  dtypes: dict[str, Any], tokenizer: Any, test_texts: list[str], test_arrays: dict[str, np.ndarray],
                  test_lengths: np.ndarray, labels: np.ndarray, cfg: CalibrateConfig,
                  fp32_logits: np.ndarray | None = None, task_type: str | None = None, adapter: Any = None,
                  teacher: np.ndarray | None = None) -> tuple[dict[str, str], dict[str, Any], np.ndarray]:
    """Build the CPU candidates from the same calibration set, measure them, keep the winner as
    `model.cpu.onnx`; every candidate's accuracy and latency go into the metrics. Also returns the
    winner's per-example test predictions (classes) for the paired statistics."""
    import shutil

    from trt_edge.quantize import cpu_target

    head = calib.head(min(cfg.cpu.calibration_samples, len(calib)))
    feeds = list(head.batches(16, names=names, dtypes=dtypes))
    work = tmp / ".cpu_candidates"
    candidates = cpu_target.build_candidates(onnx_path, feeds, work, cfg.cpu.candidates)
    timed = cpu_target.latency_feeds(tokenizer, test_texts, names, task=task_type)
    timed = {k: {n: v.astype(dtypes.get(n, v.dtype)) for n, v in f.items()} for k, f in timed.items()}
    winner = cpu_target.select_cpu_artifact(candidates, test_arrays, test_lengths, labels, cfg.cpu.budget, timed,
                                            cfg.cpu.runs, reference_logits=fp32_logits, adapter=adapter,
                                            teacher=teacher)
    cpu_target.write_artifact(winner, tmp / CPU_ONNX)
    shutil.rmtree(work, ignore_errors=True)
    table = [c.to_dict() for c in candidates]
    atomic_write_json(tmp / CPU_CANDIDATES, {"budget_points": cfg.cpu.budget, "winner": winner.name,
                                             "candidates": table})
    metrics = {"cpu_artifact": winner.name, "cpu_accuracy": winner.accuracy, "cpu_macro_f1": winner.macro_f1,
               "cpu_agreement": winner.agreement, "cpu_latency_ms": winner.latency_ms,
               "cpu_speedup_vs_fp32": winner.speedup_vs_fp32, "cpu_onnx_bytes": (tmp / CPU_ONNX).stat().st_size,
               "cpu_disabled_optimizers": winner.disabled_optimizers,
               "cpu_candidates": table, "warnings": cpu_target.candidate_warnings(candidates)}
    reference = next(c for c in candidates if c.name == "fp32")
    if winner.predictions is None or reference.predictions is None:
        raise RuntimeError("CPU candidates were not evaluated on the test split")
    if adapter is not None:
        verdict = adapter.judge("calibrate.cpu", "CPU artifact vs fp32 ONNX", reference.predictions,
                                winner.predictions, labels, cfg.cpu.budget, CpuTargetConfig().budget, teacher)
    else:
        verdict = stats.judge_predictions("calibrate.cpu", "CPU artifact vs fp32 ONNX", reference.predictions,
                                          winner.predictions, labels, cfg.cpu.budget, CpuTargetConfig().budget)
    log.info("%s", verdict.line())
    metrics["cpu_gate"] = verdict.to_dict()
    return {ONNX_CPU: CPU_ONNX, CPU_CANDIDATES_ARTIFACT: CPU_CANDIDATES}, metrics, winner.predictions


def _run_cpu_only(task: Any, cfg: CalibrateConfig, onnx_path: Path, names: list[str], tokenizer: Any, data: Any,
                  calib: calib_data.CalibrationSet, inputs: dict[str, str], max_length: int,
                  out: str | Path, tok_dir: Path) -> StageRecord:
    """`--target cpu`: the CPU artifact without the TensorRT Q/DQ model and cache."""
    test = data.split("test")
    test_arrays, test_lengths = calib_data.prepare(tokenizer, test.texts, max_length, names, task.type)
    fp32_sess = evaluate.session(str(onnx_path))
    adapter = task_adapter(task.type)
    teacher = None if adapter.uses_labels else carried_teacher(onnx_path, len(test))
    with stage_output(out) as tmp:
        data_sha = calib.save(tmp / DATA_FILE)
        artifacts, metrics, cpu_pred = _cpu_artifact(tmp, onnx_path, calib, names, evaluate.input_dtypes(fp32_sess),
                                                     tokenizer, test.texts, test_arrays, test_lengths,
                                                     stats.label_array(test.labels), cfg, task_type=task.type,
                                                     adapter=adapter, teacher=teacher)
        artifacts[PREDICTIONS] = stats.save_predictions(tmp, test.labels, cpu=cpu_pred)
        fp32 = next(c for c in metrics["cpu_candidates"] if c["name"] == "fp32")
        metrics.update({"fp32_accuracy": fp32["accuracy"], "calibration_samples": len(calib),
                        "calibration_sha256": data_sha, "targets": list(cfg.targets)})
        record = StageRecord(stage="calibrate", config={"task": task.to_dict(), "calibrate": cfg.to_dict()},
                             inputs=inputs, metrics=metrics,
                             artifacts={**artifacts, CALIBRATION_DATA: DATA_FILE,
                                        PREPROCESSOR: carry_preprocessor(tok_dir, tmp)})
        record.write(tmp, declared=STAGE.produces)
    log.info("CPU artifact %s: accuracy %.4f (fp32 %.4f); written to %s", metrics["cpu_artifact"],
             metrics["cpu_accuracy"], metrics["fp32_accuracy"], out)
    return record


def check_qdq_sparsity(int8_path: Path, onnx_path: Path) -> dict[str, Any]:
    """2:4 weights of the Q/DQ model, read the way TensorRT reads them (through Q -> DQ). With the export
    stage's `sparsity.json` next to the fp32 ONNX, every tensor it lists must still hold the pattern (public:
    the qat stage checks its own Q/DQ model with it)."""
    try:
        from trt_edge.sparsity.onnx_check import check_onnx_sparsity
        from trt_edge.sparsity.report import find_sparsity_json
    except ImportError:  # the sparsity area is optional here
        return {}
    listed = find_sparsity_json(onnx_path.parent)
    report = check_onnx_sparsity(int8_path, listed)
    if listed is not None and not report.ok:
        raise RuntimeError(f"Q/DQ placement broke the 2:4 pattern of {report.violations}: {report.problems}")
    return {"weights_2to4": sum(1 for r in report.rows if r.is_2to4), "weights_checked": len(report.rows),
            "sparse_tensors_listed": len(report.expected), "sparse_pattern_intact": report.ok}


def _collect(model: Any, calib: calib_data.CalibrationSet, names: list[str], tensors: list[str],
             cfg: CalibrateConfig) -> dict[str, calibrators.TensorRange]:
    """Run the fp32 graph with `tensors` as extra outputs over the calibration set (two passes)."""
    sess = evaluate.session(evaluate.with_outputs(model, tensors))
    outputs = [o.name for o in sess.get_outputs()]
    dtypes = evaluate.input_dtypes(sess)
    wanted = set(tensors)

    def run_batch(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = sess.run(None, feed)
        return {n: v for n, v in zip(outputs, values, strict=True) if n in wanted}

    buckets = [b for b in cfg.data.length_buckets if b < calib.max_length]
    c = cfg.calibrator
    return calibrators.calibrate(run_batch, lambda: calib.batches(cfg.data.batch_size, buckets, names, dtypes),
                                 tensors, c.method, c.num_bins, c.percentile, c.entropy_stride)


# Every record carries the calibration data, the predictions and the preprocessor; the Q/DQ `onnx` (with
# its ranges and, before TensorRT 10, its cache) only for a TensorRT target, the CPU artifact only for `cpu`.
STAGE = StageDescriptor("calibrate", ("task", "target", "calibrate"), run, reads=("export",), consumes=(ONNX,),
                        produces=(CALIBRATION_DATA, PREDICTIONS, PREPROCESSOR),
                        may_produce=(ONNX, RANGES, CALIBRATION_CACHE, ONNX_CPU, CPU_CANDIDATES_ARTIFACT))
