"""The export stage: a classifier folder -> `model.onnx`, proven equal to PyTorch on the task's data.

Input: a distill or prune stage folder (its `model` artifact) or a bare Hugging Face classifier folder.
Outputs in the stage folder: `model.onnx` (role `onnx`), optionally `model.fp16.onnx` (`onnx_fp16`)
and `model.fused.onnx` (`onnx_fused`), `sparsity.json` (`sparsity`, copied from a pruned model so later
stages find it beside the ONNX file), `parity.json` (`parity`), and `stage.json`. A parity failure is a
`GateError` (exit 1) and leaves no output folder behind.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge import stats
from trt_edge.artifacts import (
    MODEL,
    ONNX,
    ONNX_DATA,
    ONNX_FP16,
    ONNX_FUSED,
    PARITY,
    PREDICTIONS,
    PREPROCESSOR,
    SPARSITY,
    TEACHER,
    StageDescriptor,
)
from trt_edge.config import RunConfig
from trt_edge.errors import GateError, TrtEdgeError
from trt_edge.export.config import ExportConfig
from trt_edge.files import atomic_write_json, sha256_tree
from trt_edge.guard import check_positions, weight_hashes
from trt_edge.log import get_logger
from trt_edge.stage import STAGE_FILE, StageRecord, stage_artifact, stage_output
from trt_edge.target import resolve_target
from trt_edge.tasks.config import TaskConfig

log = get_logger("export")

_GENERIC_LABEL = "LABEL_"


def resolve_model_input(model_dir: str | Path) -> Path:
    """The Hugging Face folder to export: a stage folder's `model` artifact, or the folder itself."""
    from trt_edge.tasks.models import resolve_model_path

    ref = str(model_dir)
    if not ref.startswith("demo:") and (Path(ref) / STAGE_FILE).is_file():
        return stage_artifact(ref, MODEL)
    return resolve_model_path(ref)


def check_head(folder_labels: list[str], task_labels: list[str], path: Path) -> None:
    """Refuse a model whose classifier head does not predict the task's classes."""
    generic = all(name.startswith(_GENERIC_LABEL) for name in folder_labels)
    if len(folder_labels) != len(task_labels):
        raise TrtEdgeError(f"{path}: the model's head predicts {len(folder_labels)} classes {folder_labels}, "
                           f"the task has {len(task_labels)} {task_labels}; export the model trained for this task")
    if not generic and folder_labels != task_labels:
        raise TrtEdgeError(f"{path}: the model's head predicts {folder_labels}, the task's labels are "
                           f"{task_labels}; check task.data (label_column) or export the matching model")


def _fp16_variant(src: Path, dst: Path) -> None:
    """fp16 weights and math, fp32 `input`/`logits` at the boundary (ONNX Runtime's converter)."""
    import onnx

    from trt_edge.export.exporter import save_model
    from trt_edge.lazy import lazy_import

    float16 = lazy_import("onnxruntime.transformers.float16")
    model = onnx.load(str(src))
    # LayerNormalization stays fp32: in fp16 its variance overflows on real activations, and
    # TensorRT keeps it in fp32 as well unless told otherwise.
    converted = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=["LayerNormalization"])
    save_model(converted, dst)


def _lint_summary(onnx_path: Path, trt: str) -> dict[str, Any]:
    from trt_edge.export.lint import lint_file

    result = lint_file(onnx_path, trt)
    for finding in result.findings:
        if finding.severity == "error":
            log.warning("lint (TensorRT %s): %s", trt, finding.message)
    return result.summary()


def _sparsity(onnx_path: Path, model_path: Path) -> dict[str, Any] | None:
    """Check the 2:4 pattern survived the export when the model folder carries a `sparsity.json`."""
    sparsity_json = model_path / "sparsity.json"
    if not sparsity_json.is_file():
        return None
    from trt_edge.sparsity.onnx_check import check_onnx_sparsity

    report = check_onnx_sparsity(onnx_path, sparsity_json)
    if not report.ok:
        raise GateError(f"{onnx_path.name}: {len(report.violations)} tensors lost their 2:4 pattern in export "
                        f"(first: {report.violations[0]}: {report.problems.get(report.violations[0], '')})",
                        report.summary())
    return report.summary()


def _target_trt_version(config: RunConfig) -> str | None:
    """The target TensorRT (the `target:` section; the deprecated build.trt_version/build.jetpack still
    count), None when neither a version nor a JetPack is set: the fused node's plugin generation follows
    it (IPluginV2DynamicExt for 8.5/8.6, IPluginV3 for 10+)."""
    target = resolve_target(config.raw, "build")
    version = str(target.tensorrt()) if target.trt_version or target.jetpack else None
    try:
        from trt_edge.plugins.generation import plugin_generation
    except ImportError:  # no plugin area: _check_rewrite_available says so in one line
        return version
    plugin_generation(version)  # a TensorRT no generation serves is refused before the export work
    return version


def _check_rewrite_available() -> None:
    """Refuse `fuse_attention` before any work when the rewrite cannot be imported."""
    import importlib

    try:  # import_module consults sys.modules, so the check holds whatever was imported before
        importlib.import_module("trt_edge.plugins.onnx_rewrite")
    except ImportError as exc:
        raise TrtEdgeError(f"export.fuse_attention: the fused attention rewrite is not available ({exc}); "
                           "export without --fuse-attention") from exc


def _fuse_attention(onnx_path: Path, out_path: Path, feeds: list[dict[str, np.ndarray]],
                    strict: bool = False, trt_version: str | None = None) -> dict[str, Any]:
    """Fuse what can be fused; layers that cannot stay as exported and are listed with their cause.

    Returns the rewrite's figures, with `fused_layers` empty and no file written when nothing could be
    fused. `strict`: any unfused layer is an error (the caller's stage output is then discarded).
    `trt_version`: the target TensorRT, which picks the plugin generation the node names."""
    _check_rewrite_available()
    from trt_edge.onnxgraph.attention_match import AttentionNotFused, summarize
    from trt_edge.plugins.onnx_rewrite import fuse_attention_file

    try:
        result = dict(fuse_attention_file(onnx_path, out_path, feeds, trt_version))
    except AttentionNotFused as exc:
        result = {"fused_layers": [], "unfused": exc.unfused, "error": str(exc)}
    unfused = result["unfused"]
    if unfused and strict:
        raise TrtEdgeError(f"export.fuse_attention_strict: {len(unfused)} attention layers cannot be fused: "
                           f"{summarize(unfused)}")
    if not result["fused_layers"]:
        log.warning("--fuse-attention: no attention layer could be fused (%s); the plain model.onnx is kept",
                    summarize(unfused))
    elif unfused:
        log.warning("--fuse-attention: %d of %d attention layers stay unfused: %s", len(unfused),
                    len(unfused) + len(result["fused_layers"]), summarize(unfused))
    return result


def run(config: RunConfig, model_dir: str | Path, out: str | Path) -> StageRecord:
    """Export the classifier in `model_dir` (a stage folder or a HF folder) and write stage folder `out`."""
    from trt_edge.export.exporter import export_onnx, folder_label_names, load_for_export, model_bytes
    from trt_edge.export.parity import check, run_parity, task_parity_cases
    from trt_edge.tasks.adapter import adapter_for, load_task_data
    from trt_edge.tasks.config import task_config_for
    from trt_edge.tasks.data import resolve_data_source
    from trt_edge.tasks.spec import PREPROCESSOR_DIR, get_task

    started = time.perf_counter()
    cfg: ExportConfig = config.section("export")
    target = resolve_target(config.raw, "export")
    attention_trt = _target_trt_version(config) if cfg.fuse_attention else None  # a bad version fails here
    decompose = cfg.layernorm_decomposed(target)  # auto follows the target TensorRT's parser
    path = resolve_model_input(model_dir)
    task: TaskConfig = task_config_for(config, Path(str(model_dir)))[0] if not str(model_dir).startswith("demo:") \
        else config.section("task")
    spec = get_task(task.type)
    from trt_edge.tasks.models import check_preprocessor

    check_preprocessor(path, task.type)  # a text model given image data (or the reverse): before the data
    if spec.pooled:  # a pooling the kit does not know (modules.json, 1_Pooling): refused before the data
        from trt_edge.modeling.pooling import read_pooling

        read_pooling(path)
    data = load_task_data(task)
    # Loading first: a bare encoder or a head for other labels is refused with the clearest reason.
    loaded = load_for_export(path, data.label_names, cfg.trust_remote_code, task.type)
    if spec.has_sequence_axis:
        check_positions(task.max_length, path, loaded.tokenizer)
    if not spec.pooled:  # a pooled model (sentence embeddings) has no head and no label names
        check_head(folder_label_names(path), data.label_names, path)
    if cfg.fuse_attention:
        _check_rewrite_available()
    split = data.split(cfg.parity_split)
    texts = split.texts[:cfg.parity_max_examples] if cfg.parity_max_examples else split.texts

    record = StageRecord(
        stage="export",
        config={"task": task.to_dict(), "export": cfg.to_dict(), "target": target.to_dict()},
        inputs={"model": sha256_tree(path), "data": sha256_tree(resolve_data_source(task.data.source)),
                **weight_hashes(path, "model")},
        artifacts={ONNX: "model.onnx", PARITY: "parity.json", PREPROCESSOR: PREPROCESSOR_DIR},
    )
    with stage_output(out) as tmp:
        onnx_path = tmp / "model.onnx"
        dynamo = {"auto": None, "dynamo": True, "torchscript": False}[cfg.exporter]
        info = export_onnx(path, onnx_path, opset=cfg.opset, int32_inputs=cfg.int32_inputs, dynamo=dynamo,
                           simplify=cfg.simplify, label_names=data.label_names,
                           trust_remote_code=cfg.trust_remote_code, loaded=loaded,
                           decompose_layernorm=decompose, task=task.type)
        # The preprocessor travels with the model: calibrate, build, profile and run read it from here.
        spec.preprocessor.copy(path, tmp / PREPROCESSOR_DIR)
        cases = task_parity_cases(task.type, loaded.tokenizer, texts, info.input_names, loaded.model.config,
                                  max_length=task.max_length, batch_size=task.eval_batch_size,
                                  batch_sizes=cfg.parity_batch_sizes, sequence_lengths=cfg.parity_sequence_lengths)
        fusion: dict[str, Any] | None = None
        if cfg.fuse_attention:
            # Before the parity run over the whole split: a strict refusal costs only the export.
            dtype = np.int32 if cfg.int32_inputs else np.int64
            feeds = [{k: (v.astype(dtype) if v.dtype.kind in "iu" else v) for k, v in case.feeds.items()}
                     for case in cases if case.grid]
            fusion = _fuse_attention(onnx_path, tmp / "model.fused.onnx", feeds, cfg.fuse_attention_strict,
                                     attention_trt)
        shown = adapter_for(spec).display_examples(texts)
        report = run_parity(loaded.model, onnx_path, cases, shown, spec=spec)
        log.info("parity: max |diff| %.3g, argmax agreement %.4f, least cosine %.6f on %d %s examples",
                 report.max_abs_diff, report.argmax_agreement, report.min_cosine, report.examples, cfg.parity_split)
        parity: dict[str, Any] = {"fp32": report.to_dict()}
        # A pooled vector is judged on its values and cosine (the spec's), class scores on argmax agreement.
        agreement = 0.0 if spec.pooled else cfg.min_argmax_agreement
        check(report, atol=cfg.atol, rtol=cfg.rtol, min_argmax_agreement=agreement, min_cosine=spec.min_cosine)
        labels = split.labels[:max(len(report.torch_pred), len(report.torch_out))]
        if report.torch_out:  # dense outputs: the task's own paired gate (per-image mIoU for segmentation)
            verdict = adapter_for(spec).judge("export", "ONNX fp32 vs PyTorch", np.stack(report.torch_out),
                                              np.stack(report.onnx_out), labels, None)
            log.info("%s", verdict.line())
            gate = {**verdict.to_dict(), "passed": True,
                    "status": f"pass (max |diff| <= atol {cfg.atol:g}, per-pixel argmax agreement "
                              f">= {cfg.min_argmax_agreement:g})"}
        elif spec.pooled:
            gate = {"passed": True, "status": f"pass (max |diff| <= atol {cfg.atol:g}, least cosine "
                                              f">= {spec.min_cosine:g})"}
        else:
            # Parity gates on logits and agreement; the paired accuracy difference says what that costs.
            verdict = stats.judge("export", "ONNX fp32 vs PyTorch",
                                  stats.PairedTable.from_predictions(report.torch_pred, report.onnx_pred, labels),
                                  None)
            log.info("%s", verdict.line())
            gate = {**verdict.to_dict(), "passed": True,
                    "status": f"pass (max |diff| <= atol {cfg.atol:g}, argmax agreement "
                              f">= {cfg.min_argmax_agreement:g})"}
        metrics: dict[str, Any] = {
            "max_abs_diff": report.max_abs_diff,
            "max_rel_diff": report.max_rel_diff,
            "argmax_agreement": report.argmax_agreement,
            "min_cosine": report.min_cosine,
            "parity_examples": report.examples,
            "parity_split": cfg.parity_split,
            "gate": gate,
            "parity_shapes": [{k: s[k] for k in ("batch", "sequence", "max_abs_diff")}
                              for s in report.shapes if s["grid"]],
            "onnx_bytes": info.onnx_bytes,
            "opset": info.opset,
            "exporter": info.exporter,
            "exporter_fallback_reason": info.fallback_reason,
            "input_names": info.input_names,
            "input_dtype": info.input_dtype,
            "external_data": info.external_data,
            "label_names": info.label_names,
            "cleanup": {k: v for k, v in info.cleanup.items() if k != "op_counts"},
            "op_counts": info.cleanup.get("op_counts", {}),
            # What `decompose_layernorm` (auto by default) resolved to, and for which TensorRT.
            "decompose_layernorm": {"setting": cfg.decompose_layernorm, "resolved": decompose,
                                    "target_tensorrt": target.tensorrt_text()
                                    if target.trt_version or target.jetpack else None},
        }
        if info.external_data:
            record.artifacts[ONNX_DATA] = "model.onnx.data"
        sparsity = _sparsity(onnx_path, path)
        if sparsity is not None:
            shutil.copyfile(path / "sparsity.json", tmp / "sparsity.json")
            record.artifacts[SPARSITY] = "sparsity.json"
            metrics["sparsity"] = sparsity
        if cfg.fp16:
            fp16_path = tmp / "model.fp16.onnx"
            _fp16_variant(onnx_path, fp16_path)
            fp16_report = run_parity(loaded.model, fp16_path, cases, shown, spec=spec)
            parity["fp16"] = fp16_report.to_dict()
            check(fp16_report, atol=cfg.fp16_atol, rtol=None,
                  min_argmax_agreement=0.0 if spec.pooled else cfg.fp16_min_argmax_agreement, what="model.fp16.onnx")
            record.artifacts[ONNX_FP16] = "model.fp16.onnx"
            metrics["fp16"] = {"max_abs_diff": fp16_report.max_abs_diff, "max_rel_diff": fp16_report.max_rel_diff,
                               "argmax_agreement": fp16_report.argmax_agreement,
                               "onnx_bytes": model_bytes(fp16_path)}
        if fusion is not None:
            metrics["fuse_attention"] = fusion
            if fusion["fused_layers"]:
                record.artifacts[ONNX_FUSED] = "model.fused.onnx"
        # `export.lint_trt: null` used to switch the lint off; it still does.
        lint_off = "lint_trt" in (config.raw.get("export") or {}) and cfg.lint_trt is None
        if cfg.lint and not lint_off:
            # Lint tables are per minor release: `10.3` from JetPack 6.2's 10.3.0.
            metrics["lint"] = _lint_summary(onnx_path, target.trt_version or target.tensorrt().short)
        atomic_write_json(tmp / "parity.json", parity)
        # A pooled model's argmax is no prediction: its file holds the labels and, carried from the stage
        # that made the model, the teacher's test vectors (calibrate judges INT8 against the teacher's
        # neighbours with them).
        predicted = teacher_reference(model_dir) if spec.pooled else (
            {"torch": np.stack(report.torch_out), "onnx": np.stack(report.onnx_out)} if report.torch_out
            else {"torch": report.torch_pred, "onnx": report.onnx_pred})
        record.artifacts[PREDICTIONS] = stats.save_predictions(tmp, labels, **predicted)
        metrics["export_seconds"] = time.perf_counter() - started
        metrics["data"] = data.record()
        record.metrics = metrics
        record.write(tmp, declared=STAGE.produces)
    return record


def teacher_reference(model_dir: str | Path) -> dict[str, Any]:
    """`{"teacher": vectors}` from the predictions of the stage that made the model (distill, width,
    prune write the teacher's test outputs there), or empty: a bare folder, or a stage without them."""
    from trt_edge.artifacts import stage_predictions

    if str(model_dir).startswith("demo:"):
        return {}
    saved = stage_predictions(str(model_dir))
    return {"teacher": saved["teacher"]} if "teacher" in saved else {}


def summary_line(record: StageRecord) -> str:
    """One human line for the CLI's standard error."""
    m = record.metrics
    return (f"model.onnx: {m['onnx_bytes'] / 1e6:.1f} MB, opset {m['opset']}, {m['exporter']} exporter; "
            f"parity max |diff| {m['max_abs_diff']:.2g}, argmax agreement {m['argmax_agreement']:.4f}")


_EXPORTED = (ONNX, PARITY, PREPROCESSOR, PREDICTIONS)
_MAY_EXPORT = (ONNX_DATA, SPARSITY, ONNX_FP16, ONNX_FUSED)
# The student: the nearest earlier stage that writes one (prune, else width, else distill).
STAGE = StageDescriptor("export", ("task", "target", "export"), run, reads=("prune", "width", "distill"),
                        consumes=(MODEL,), produces=_EXPORTED, may_produce=_MAY_EXPORT)
# The same stage run on distill's teacher: the latency and accuracy reference of the report.
TEACHER_STAGE = StageDescriptor("export-teacher", STAGE.sections, run, reads=("distill",), consumes=(TEACHER,),
                                produces=_EXPORTED, may_produce=_MAY_EXPORT, input_artifact=TEACHER)
