"""The width stage (`trt-edge prune --method width`, pipeline stage `width`): fewer heads and neurons.

Input: a distill stage folder (student `model/`, teacher `teacher/`) or a bare Hugging Face folder (then
`width.teacher` names the teacher). Schedule: `steps` iterations, each measuring activation importance on
calibration examples (texts or images), removing its share of heads and feed-forward neurons for real, and recovering by
distillation from the teacher with the same loop as 2:4 recovery. With `target_speedup` the shares are
picked first: every candidate width is cut from the dense student, exported, and timed side by side with
the exported teacher in ONNX Runtime on this machine.

Output folder, shaped like a distill folder so the 2:4 prune stage reads it unchanged: `model/` (the
pruned Hugging Face folder), `teacher/` (a copy of the teacher, for the next stage's distillation),
`model.onnx` (the pruned model exported, checked for parity: the width step's size and speed in the
run's comparison) and `stage.json`.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trt_edge import stats
from trt_edge.artifacts import MODEL, ONNX, PREDICTIONS, TEACHER, StageDescriptor
from trt_edge.config import RunConfig
from trt_edge.errors import GateError
from trt_edge.files import sha256_tree
from trt_edge.log import get_logger
from trt_edge.sparsity.config import WidthConfig
from trt_edge.stage import StageRecord, stage_output

log = get_logger("prune.width")


def calibration_batches(task: str, preprocessor: Any, examples: Sequence[Any], max_length: int,
                        batch_size: int) -> list[dict[str, Any]]:
    """Model-input batches the importance is measured on, made by the task's adapter (texts sorted by
    length so little padding is measured; images are all one size)."""
    from trt_edge.tasks.adapter import task_adapter

    adapter = task_adapter(task)
    encoded = adapter.encode(preprocessor, examples, max_length)
    lengths = encoded.lengths()
    order = sorted(range(len(encoded)), key=lambda i: lengths[i])
    return [adapter.model_inputs(adapter.collate([encoded.features[i] for i in order[s:s + batch_size]],
                                                 encoded.pad_token_id))
            for s in range(0, len(order), batch_size)]


@dataclass
class Candidate:
    keep_heads: float
    keep_ffn: float
    keep_hidden: float
    heads: int
    ffn: int
    hidden: int
    params: int


def _candidates(cfg: WidthConfig, structure: Any, multiple: int) -> list[Candidate]:
    """The distinct widths of `cfg.candidates`, most parameters first (parameter counts of the blocks)."""
    from trt_edge.sparsity.width.plan import round_ffn, round_heads, round_hidden

    seen: dict[tuple[int, int, int], Candidate] = {}
    for keep_heads, keep_ffn, keep_hidden in _shares(cfg):
        heads = round_heads(structure.heads, structure.head_dim, keep_heads)
        ffn = round_ffn(structure.ffn, keep_ffn)
        hidden = round_hidden(structure.hidden, keep_hidden, multiple)
        params = hidden * (4 * heads * structure.head_dim + 2 * ffn)  # block weights
        seen.setdefault((heads, ffn, hidden), Candidate(keep_heads, keep_ffn, keep_hidden, heads, ffn, hidden, params))
    return sorted(seen.values(), key=lambda c: -c.params)


def _shares(cfg: WidthConfig) -> list[tuple[float, float, float]]:
    """(keep_heads, keep_ffn, keep_hidden) the stage may prune to: every candidate in target mode (a pair
    keeps `keep_hidden`), else the configured shares."""
    if cfg.target_speedup is None:
        return [(cfg.keep_heads, cfg.keep_ffn, cfg.keep_hidden)]
    return [(c[0], c[1], c[2] if len(c) > 2 else cfg.keep_hidden) for c in cfg.candidates]


def _export(model: Any, tokenizer: Any, path: Path, config: RunConfig, labels: list[str], task: str) -> Any:
    """Export with the run's export settings, so a candidate is timed as the export stage would ship it."""
    from trt_edge.export.exporter import export_onnx
    from trt_edge.tasks.models import LoadedClassifier

    export_cfg = config.section("export")
    dynamo = {"auto": None, "dynamo": True, "torchscript": False}[export_cfg.exporter]
    loaded = LoadedClassifier(model, tokenizer, path.parent, True, "in memory")
    return export_onnx(path.parent, path, opset=export_cfg.opset, int32_inputs=export_cfg.int32_inputs,
                       dynamo=dynamo, simplify=export_cfg.simplify, label_names=labels, loaded=loaded, task=task)


def pick_target(cfg: WidthConfig, config: RunConfig, model: Any, tokenizer: Any, structure: Any, importance: Any,
                teacher: Any, labels: list[str], examples: list[Any], task: str, multiple: int
                ) -> tuple[float, float, float, dict[str, Any]]:
    """(keep_heads, keep_ffn, keep_hidden) of the least pruned candidate whose exported fp32 ONNX is at least
    `target_speedup` times faster than the exported teacher at every `target_shapes` point; the fastest
    candidate when none is (and the record says the target was missed)."""
    from trt_edge.profile.side_by_side import compare_latency
    from trt_edge.sparsity.width.plan import plan_width
    from trt_edge.sparsity.width.surgery import shrink_

    assert cfg.target_speedup is not None
    candidates = _candidates(cfg, structure, multiple)
    with tempfile.TemporaryDirectory(prefix="trt-edge-width-") as tmp_dir:
        tmp = Path(tmp_dir)
        reference = _export(teacher.model, teacher.tokenizer, tmp / "teacher.onnx", config, labels, task)
        models = [("teacher", reference.onnx_path)]
        for i, cand in enumerate(candidates):
            trial = copy.deepcopy(model)
            shrink_(trial, structure, plan_width(structure, importance, cand.heads, cand.ffn, cand.hidden))
            label = f"heads {cand.heads}/{structure.heads}, ffn {cand.ffn}/{structure.ffn}"
            if cand.hidden != structure.hidden:
                label += f", hidden {cand.hidden}/{structure.hidden}"
            models.append((label, _export(trial, tokenizer, tmp / f"candidate{i}.onnx", config, labels,
                                          task).onnx_path))
            del trial
        log.info("target %.2fx: timing %d candidate widths against the teacher", cfg.target_speedup, len(candidates))
        results = compare_latency(models, tokenizer, examples, [list(s) for s in cfg.target_shapes], cfg.target_rounds,
                                  runs=20, chunk_ms=500.0)
    table = []
    for (label, _), cand in zip(models[1:], candidates, strict=True):
        ratios = {f"b{r['batch']}s{r['seq']}": r["speedup_vs_first"][label] for r in results}
        table.append({"label": label, "heads": cand.heads, "ffn": cand.ffn, "hidden": cand.hidden,
                      "keep_heads": cand.keep_heads, "keep_ffn": cand.keep_ffn, "keep_hidden": cand.keep_hidden,
                      "speedup_vs_teacher": ratios, "slowest": min(ratios.values())})
    meeting = [row for row in table if row["slowest"] >= cfg.target_speedup]
    chosen = meeting[0] if meeting else max(table, key=lambda row: row["slowest"])
    if not meeting:
        log.warning("no candidate width reaches %.2fx the teacher (best %.2fx at %s); using the fastest",
                    cfg.target_speedup, chosen["slowest"], chosen["label"])
    log.info("target: chose %s (%.2fx the teacher, slowest shape)", chosen["label"], chosen["slowest"])
    record = {"target_speedup": cfg.target_speedup, "target_met": bool(meeting), "chosen": chosen["label"],
              "candidates": table, "shapes": cfg.target_shapes, "comparison": results,
              "note": "fp32 ONNX Runtime latency on this machine, untrained candidates (latency does not depend "
                      "on the weights' values), timed interleaved with the teacher"}
    return float(chosen["keep_heads"]), float(chosen["keep_ffn"]), float(chosen["keep_hidden"]), record


def run(config: RunConfig, model_dir: str | Path, out: str | Path) -> StageRecord:
    """Width-prune the model in `model_dir`, recover it by distillation, and write the stage folder `out`."""
    import torch

    from trt_edge.distill.stage import describe_metrics, validation_eval_fn
    from trt_edge.distill.transfer import transfer_input
    from trt_edge.export.parity import check, run_parity, task_parity_cases
    from trt_edge.modeling.recipe import save_pruned
    from trt_edge.sparsity.masks import Masks
    from trt_edge.sparsity.recovery import recover, recovery_set
    from trt_edge.sparsity.stage import load_student_inputs, load_teacher, recovery_targets, task_drop_points
    from trt_edge.sparsity.width.importance import activation_importance
    from trt_edge.sparsity.width.plan import hidden_multiple, plan_width, round_ffn, round_heads, round_hidden
    from trt_edge.sparsity.width.structure import describe, find_blocks
    from trt_edge.sparsity.width.surgery import check_hidden_shrink, shrink_
    from trt_edge.tasks.adapter import adapter_for
    from trt_edge.tasks.data import resolve_data_source
    from trt_edge.tasks.metrics import prefixed
    from trt_edge.tasks.models import count_parameters, load_classifier, weight_bytes
    from trt_edge.tasks.spec import get_task

    started = time.perf_counter()
    cfg: WidthConfig = config.section("width")
    export_cfg = config.section("export")  # validated now: candidates and model.onnx use it
    model_path = Path(model_dir)
    needs_teacher = ("width.target_speedup is relative to the teacher: give a distill stage folder or width.teacher"
                     if cfg.target_speedup is not None else None)
    inputs = load_student_inputs(config, model_path, cfg, needs_teacher)
    task, task_source, data, loaded = inputs.task, inputs.task_source, inputs.data, inputs.loaded
    teacher_dir = inputs.teacher_dir
    spec = get_task(task.type)
    encode, evaluate = inputs.adapter.encode, inputs.adapter.evaluate
    model, tokenizer = loaded.model, loaded.tokenizer
    structure = find_blocks(model)  # a model without the usual structure fails before any work
    dense_structure = describe(structure)
    teacher = load_teacher(cfg, teacher_dir, data.label_names, tokenizer, task.type)
    if cfg.target_speedup is not None and teacher is None and teacher_dir is not None:
        teacher = load_classifier(teacher_dir, data.label_names, cfg.trust_remote_code, task.type)
    torch.manual_seed(cfg.seed)
    test_enc = encode(tokenizer, data.test.texts, task.max_length)
    dense_params = count_parameters(model)
    reference = inputs.test_reference()
    dense_metrics, dense_logits = evaluate(model, test_enc, data.test.labels, data.num_labels, task.eval_batch_size,
                                           reference)
    log.info("dense test %s; %s", describe_metrics(dense_metrics), dense_structure)
    examples = data.train.texts[:cfg.calibration_samples]  # texts, or images for an image task

    def batches() -> list[dict[str, Any]]:
        return calibration_batches(task.type, tokenizer, examples, task.max_length, task.eval_batch_size)

    keep_heads, keep_ffn, keep_hidden = cfg.keep_heads, cfg.keep_ffn, cfg.keep_hidden
    multiple = hidden_multiple(model)
    target: dict[str, Any] | None = None
    narrowest = min(share[2] for share in _shares(cfg))
    # The dense model's importance, measured once: the hidden-size preflight, target mode and the first
    # pruning step all read it.
    dense_importance = None
    if narrowest < 1:
        # Before any timing or training: the whole model must slice to a smaller hidden size and still run.
        calibration = batches()
        dense_importance = activation_importance(model, structure, calibration, hidden=True)
        check_hidden_shrink(model, structure, dense_importance, calibration[0],
                            round_hidden(structure.hidden, narrowest, multiple))
    if cfg.target_speedup is not None:
        dense_importance = dense_importance or activation_importance(model, structure, batches())
        keep_heads, keep_ffn, keep_hidden, target = pick_target(
            cfg, config, model, tokenizer, structure, dense_importance, teacher, data.label_names, data.test.texts,
            task.type, multiple)

    train_enc = val_enc = None
    train_logits = val_reference = None
    train_features: list[dict[str, Any]] = []
    teacher_info: dict[str, Any] = {"teacher": str(teacher_dir) if teacher_dir else None}
    if cfg.recover:
        train_enc = encode(tokenizer, data.train.texts, task.max_length)
        val_enc = encode(tokenizer, data.validation.texts, task.max_length)
        if teacher is None and cfg.alpha > 0:
            log.warning("no teacher (a bare model folder and no width.teacher): recovery trains on labels only")
        train_features, train_logits, info = recovery_set(cfg, task, data, encode, tokenizer,
                                                          teacher if cfg.alpha > 0 else None, teacher_dir, train_enc)
        teacher_info.update(info)
        train_logits, val_reference = recovery_targets(inputs, model, teacher if cfg.alpha > 0 else None,
                                                       train_enc, val_enc, train_logits)
    teacher = None

    heads0, head_dim, ffn0, hidden0 = structure.heads, structure.head_dim, structure.ffn, structure.hidden
    history: list[dict[str, Any]] = []
    before_recovery: dict[str, float] | None = None
    for step in range(1, cfg.steps + 1):
        heads = round_heads(heads0, head_dim, 1 - (1 - keep_heads) * step / cfg.steps)
        ffn = round_ffn(ffn0, 1 - (1 - keep_ffn) * step / cfg.steps)
        hidden = round_hidden(hidden0, 1 - (1 - keep_hidden) * step / cfg.steps, multiple)
        if (heads, ffn, hidden) == (structure.heads, structure.ffn, structure.hidden):
            continue
        needs = hidden < structure.hidden
        if dense_importance is not None and (dense_importance.hidden is not None or not needs):
            importance = dense_importance  # the model is still the dense one: nothing changed since
        else:
            importance = activation_importance(model, structure, batches(), hidden=needs)
        dense_importance = None
        plan = plan_width(structure, importance, heads, ffn, hidden)
        structure = shrink_(model, structure, plan)
        pruned_metrics, _ = evaluate(model, test_enc, data.test.labels, data.num_labels, task.eval_batch_size,
                                     reference)
        before_recovery = before_recovery or pruned_metrics
        entry: dict[str, Any] = {"step": step, "heads": heads, "ffn": ffn, "hidden": hidden, "kept_heads": plan.heads,
                                 "params": count_parameters(model),
                                 **prefixed("", pruned_metrics, "_before_recovery")}
        if plan.hidden is not None and plan.trace is not None:
            entry["hidden_readers"], entry["hidden_writers"] = plan.trace.readers, plan.trace.writers
        log.info("step %d/%d: heads %d/%d, ffn %d/%d, hidden %d/%d; test %s before recovery", step,
                 cfg.steps, heads, heads0, ffn, ffn0, hidden, hidden0, describe_metrics(pruned_metrics))
        if cfg.recover and train_enc is not None and val_enc is not None:
            eval_fn = validation_eval_fn(val_enc, data.validation.labels, data.num_labels, task.eval_batch_size,
                                         task, val_reference)
            result = recover(model, Masks(), train_features, train_enc.pad_token_id,
                             cfg.train, eval_fn=eval_fn, teacher_logits=train_logits, alpha=cfg.alpha,
                             temperature=cfg.temperature, seed=cfg.seed + step,
                             desc=f"width recovery, step {step}/{cfg.steps}", task=task.type,
                             neighbour_weight=cfg.neighbour_weight)
            entry["recovery"] = {k: v for k, v in result.to_dict().items() if k != "schedule"}
            entry.update(prefixed("", evaluate(model, test_enc, data.test.labels, data.num_labels,
                                               task.eval_batch_size, reference)[0], "_after_recovery"))
        history.append(entry)
    width_metrics, width_logits = evaluate(model, test_enc, data.test.labels, data.num_labels, task.eval_batch_size,
                                           reference)
    log.info("width-pruned test %s (dense %s)", describe_metrics(width_metrics), describe_metrics(dense_metrics))
    # Paired on the same test examples, as the other stages' gates: the pipeline's `gates.width` rejudges
    # this table, and the report lists it with its interval.
    verdict = inputs.adapter.judge("width", "width-pruned vs dense student", dense_logits, width_logits,
                                   data.test.labels, cfg.max_accuracy_drop, None, reference)
    accuracy_drop = task_drop_points(dense_metrics, width_metrics, verdict)
    before = before_recovery or width_metrics
    metrics: dict[str, Any] = {
        **prefixed("dense", dense_metrics), **prefixed("width", width_metrics),
        **prefixed("pruned", before, "_before_recovery"),
        "accuracy_drop_points": accuracy_drop,
        "dense_params": dense_params, "params": count_parameters(model),
        "dense_structure": dense_structure, "structure": describe(structure),
        "keep_heads": keep_heads, "keep_ffn": keep_ffn, "keep_hidden": keep_hidden, "steps": history,
        "importance": cfg.importance,
        "calibration_examples": len(examples), "target": target, "task_config_from": task_source,
        "head": loaded.head_note, **teacher_info,
    }
    metrics.update(inputs.teacher_metrics())
    metrics["gate"] = verdict.to_dict()
    log.info("%s", verdict.line())
    if cfg.max_accuracy_drop is not None and accuracy_drop > cfg.max_accuracy_drop:
        lo, hi = verdict.interval_points
        raise GateError(f"width-pruned {inputs.adapter.spec.metric} is {accuracy_drop:.2f} points below dense "
                        f"(95% CI [{lo:.2f}, "
                        f"{hi:.2f}], n={verdict.n}; {verdict.status}), more than "
                        f"width.max_accuracy_drop={cfg.max_accuracy_drop}",
                        {**prefixed("dense", dense_metrics), **prefixed("width", width_metrics),
                         "interval_points": [round(lo, 4), round(hi, 4)], "n": verdict.n})

    artifacts = {MODEL: "model", ONNX: "model.onnx", PREDICTIONS: stats.PREDICTIONS_FILE}
    if teacher_dir is not None:
        artifacts[TEACHER] = "teacher"
    record = StageRecord(
        stage="width",
        config={"task": task.to_dict(), "width": cfg.to_dict(), "export": export_cfg.to_dict()},
        inputs={"model": sha256_tree(model_path), "data": sha256_tree(resolve_data_source(task.data.source)),
                **({"teacher": sha256_tree(teacher_dir)} if teacher_dir is not None else {}),
                **transfer_input(cfg.transfer, task.data)},
        artifacts=artifacts,
    )
    with stage_output(out) as tmp:
        recipe = save_pruned(model, tokenizer, tmp / "model")
        stats.save_predictions(tmp, data.test.labels, dense=dense_logits, width=width_logits,
                               **inputs.carried_reference())
        metrics["config_reload"] = "trt_edge_width recipe in config.json (trt-edge's loader)" if recipe \
            else "plain from_pretrained"
        if teacher_dir is not None:
            shutil.copytree(teacher_dir, tmp / "teacher")
        reloaded = load_classifier(tmp / "model", data.label_names, cfg.trust_remote_code, task.type)
        info = _export(reloaded.model, tokenizer, tmp / "model.onnx", config, data.label_names, task.type)
        shown = data.test.texts[:64]
        cases = task_parity_cases(task.type, tokenizer, shown, info.input_names, reloaded.model.config,
                                  max_length=task.max_length, batch_size=task.eval_batch_size,
                                  batch_sizes=export_cfg.parity_batch_sizes,
                                  sequence_lengths=export_cfg.parity_sequence_lengths)
        report = run_parity(reloaded.model, info.onnx_path, cases, adapter_for(spec).display_examples(shown),
                            spec=spec)
        check(report, atol=export_cfg.atol, rtol=export_cfg.rtol,
              min_argmax_agreement=0.0 if spec.pooled else export_cfg.min_argmax_agreement, min_cosine=spec.min_cosine)
        metrics.update({"onnx_bytes": info.onnx_bytes, "weight_bytes": weight_bytes(tmp / "model"),
                        "parity_max_abs_diff": report.max_abs_diff, "seconds": time.perf_counter() - started,
                        "data": data.record()})
        record.metrics = json.loads(json.dumps(metrics, default=str))
        record.write(tmp, declared=STAGE.produces)
    return record


# Optional (pipeline.OPTIONAL_STAGES): heads, neurons and hidden channels removed from distill's student;
# its ONNX is the parity check of the slimmer graph, the teacher is carried on for prune's recovery.
STAGE = StageDescriptor("width", ("task", "distill", "width", "export"), run, reads=("distill",),
                        consumes=(MODEL,), produces=(MODEL, ONNX, PREDICTIONS), may_produce=(TEACHER,))
