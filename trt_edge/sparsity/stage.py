"""The prune stage: dense student -> channel permutations -> 2:4 masks -> sparse recovery -> proof.

Input: a distill stage folder (student `model/`, teacher `teacher/`) or a bare Hugging Face folder
(then sparse distillation needs `prune.teacher`, or trains on labels only). Output folder: `model/`, a
Hugging Face folder whose weights are exactly zero where masked, with `sparsity.json` inside it (which
tensors are 2:4, along which axis, which permutations were applied, the kept magnitudes), and
`stage.json`. Before saving, the permuted model is checked to compute the same function as the dense one
(1e-5) and the saved folder is re-read by the checker: a tensor that lost its pattern is a bug, not a
result.
"""

from __future__ import annotations

import copy
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge import stats
from trt_edge.artifacts import MODEL, PREDICTIONS, SPARSITY, TEACHER, StageDescriptor
from trt_edge.config import RunConfig
from trt_edge.errors import GateError, TrtEdgeError
from trt_edge.files import atomic_write_json, sha256_tree
from trt_edge.guard import check_positions, weight_hashes
from trt_edge.log import get_logger
from trt_edge.sparsity.config import PruneConfig, WidthConfig
from trt_edge.sparsity.report import SPARSITY_FILE, SPARSITY_FORMAT, SPARSITY_VERSION
from trt_edge.stage import STAGE_FILE, StageRecord, read_stage, stage_output
from trt_edge.tasks.adapter import TaskAdapter
from trt_edge.tasks.config import TaskConfig
from trt_edge.tasks.config import task_config_for as task_config_for  # the stages' and tests' import
from trt_edge.tasks.metrics import prefixed

log = get_logger("prune")

EQUIVALENCE_TOLERANCE = 1e-5


def stage_inputs(model_dir: Path, cfg: PruneConfig | WidthConfig) -> tuple[Path, Path | None, Path | None]:
    """(student folder, teacher folder or None, teacher test logits or None) for a stage or bare folder."""
    from trt_edge.modeling.folder import resolve_model_path
    from trt_edge.stage import stage_artifact

    if not model_dir.exists():
        raise TrtEdgeError(f"model folder not found: {model_dir}")
    if (model_dir / STAGE_FILE).is_file():
        data = read_stage(model_dir)
        student = stage_artifact(model_dir, MODEL)
        teacher = stage_artifact(model_dir, TEACHER) if TEACHER in data["artifacts"] else None
        if cfg.teacher:
            teacher = resolve_model_path(cfg.teacher)
        logits = teacher / "test_logits.npy" if teacher is not None and (teacher / "test_logits.npy").is_file() \
            else None
        return student, teacher, logits
    student = resolve_model_path(str(model_dir))
    return student, (resolve_model_path(cfg.teacher) if cfg.teacher else None), None


@dataclass
class StudentInputs:
    """What the 2:4 and width stages start from, loaded and checked the same way by both."""

    task: TaskConfig
    task_source: str
    student_dir: Path
    teacher_dir: Path | None
    teacher_test_logits: Path | None
    adapter: TaskAdapter  # the task's adapter (encode, evaluate, collate, ...)
    data: Any  # tasks.data.ClassificationData
    loaded: Any  # tasks.models.LoadedClassifier

    def teacher_outputs(self) -> np.ndarray | None:
        """The teacher's test outputs the distill stage saved (`teacher/test_logits.npy`), when they are
        of this test split; None for a bare folder or another split."""
        if self.teacher_test_logits is None:
            return None
        outputs = np.load(self.teacher_test_logits, allow_pickle=False)
        return outputs if outputs.shape[0] == len(self.data.test.labels) else None

    def test_reference(self) -> np.ndarray | None:
        """What test outputs are scored against besides labels: for a task judged against a model
        (`uses_labels` False: embeddings), the teacher's test vectors, so the record says how much of the
        teacher's search each model keeps; None for classification or without a teacher."""
        return None if self.adapter.uses_labels else self.teacher_outputs()

    def carried_reference(self) -> dict[str, np.ndarray]:
        """`{"teacher": vectors}` for the stage's predictions file where the task is judged against a model
        and the teacher's test outputs are at hand, so export and calibrate (which get only this stage's
        files) judge against the teacher too; empty otherwise."""
        reference = self.test_reference()
        return {} if reference is None else {"teacher": reference}

    def teacher_metrics(self) -> dict[str, float]:
        """The teacher's test metrics (`teacher_accuracy`, ...), for the report's context."""
        outputs = self.teacher_outputs()
        if outputs is None:
            return {}
        return prefixed("teacher", self.adapter.score(outputs, self.data.test.labels, self.data.num_labels))


def task_drop_points(parent: dict[str, float], child: dict[str, float], verdict: Any) -> float:
    """The child's drop in points: from the two accuracies where the task has one (as the records always
    said), else the gate's (a sentence embedding: 100 x (1 - recall of the parent's neighbours))."""
    if "accuracy" in parent and "accuracy" in child:
        return 100 * (parent["accuracy"] - child["accuracy"])
    return float(verdict.drop_points)


def recovery_targets(inputs: StudentInputs, dense: Any, teacher: Any, train_enc: Any, val_enc: Any,
                     train_logits: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(training targets, validation reference) of a recovery. Classification trains on labels and, with a
    teacher, its logits, and validates on labels: both unchanged. A task judged against a model has no
    labels to fall back on: without a teacher, the dense student's own outputs are the targets (recovery
    pulls the pruned model back to the model it was), and validation measures against the teacher's
    outputs, or the dense student's."""
    if inputs.adapter.uses_labels:
        return train_logits, None
    batch = inputs.task.eval_batch_size
    guide = teacher.model if teacher is not None else dense
    if train_logits is None:
        train_logits = inputs.adapter.predict_logits(dense, train_enc, batch).astype(np.float32)
    from trt_edge.distill.stage import reference_outputs

    return train_logits, reference_outputs(guide, val_enc, batch, inputs.task)


def load_student_inputs(config: RunConfig, model_dir: Path, cfg: PruneConfig | WidthConfig,
                        teacher_required: str | None = None) -> StudentInputs:
    """Task, folders, data and the student, with every check that can fail before the expensive work:
    a teacher the config needs (`teacher_required` is then the error), the student's task (before the
    data), its positions (text), a trained head unless recovery will train one."""
    from trt_edge.tasks.adapter import adapter_for, load_task_data
    from trt_edge.tasks.models import check_preprocessor, load_classifier
    from trt_edge.tasks.spec import get_task

    task, task_source = task_config_for(config, model_dir)
    student_dir, teacher_dir, teacher_test_logits = stage_inputs(model_dir, cfg)
    if teacher_required is not None and teacher_dir is None:
        raise TrtEdgeError(teacher_required)
    spec = get_task(task.type)
    check_preprocessor(student_dir, task.type)  # a model of another task: before the data
    data = load_task_data(task)
    loaded = load_classifier(student_dir, data.label_names, cfg.trust_remote_code, task.type)
    if spec.has_sequence_axis:
        check_positions(task.max_length, student_dir, loaded.tokenizer)
    if not loaded.head_trained and not cfg.recover:
        raise TrtEdgeError(f"{student_dir}: {loaded.head_note}; prune a trained classifier or keep "
                           f"{_section(cfg)}.recover on")
    return StudentInputs(task, task_source, student_dir, teacher_dir, teacher_test_logits, adapter_for(spec), data,
                         loaded)


def _section(cfg: PruneConfig | WidthConfig) -> str:
    return "width" if isinstance(cfg, WidthConfig) else "prune"


def _use_checkpoint_names(doc: dict[str, Any], model: Any, folder: Path) -> None:
    """Name the tensors in sparsity.json as the saved checkpoint does. transformers 5 renames some
    architectures' weights on save (ViT's in-memory `vit.layers.0.mlp.fc1` is saved as
    `vit.encoder.layer.0.intermediate.dense`), and every later check reads the saved folder; each
    in-memory tensor is matched to the saved one holding exactly its values."""
    from trt_edge.sparsity.torch_check import load_weights

    saved = load_weights(folder)
    params = {n: p.detach().cpu().numpy() for n, p in model.named_parameters()}
    renames: dict[str, str] = {}
    for name in list(doc["tensors"]):
        if name in saved:
            continue
        value = params[name]
        matches = [k for k, v in saved.items() if v.shape == value.shape and np.array_equal(v, value)]
        if len(matches) != 1:
            raise RuntimeError(f"cannot tell which saved tensor is {name} ({len(matches)} candidates): a bug")
        renames[name] = matches[0]
    if renames:
        doc["tensors"] = {renames.get(k, k): {**v, "module_name": k} if k in renames else v
                          for k, v in doc["tensors"].items()}


def load_teacher(cfg: PruneConfig | WidthConfig, teacher_dir: Path | None, label_names: list[str],
                 tokenizer: Any, task_type: str | None = None) -> Any:
    """The teacher of the recovery distillation, or None; checked now, so a wrong teacher fails before
    minutes of work."""
    from trt_edge.tasks.models import load_classifier
    from trt_edge.tasks.spec import task_spec

    if not (cfg.recover and teacher_dir is not None and cfg.alpha > 0):
        return None
    section = _section(cfg)
    teacher = load_classifier(teacher_dir, label_names, cfg.trust_remote_code, task_spec(task_type).name)
    if not teacher.head_trained:
        raise TrtEdgeError(f"teacher {teacher_dir}: {teacher.head_note}; give a fine-tuned teacher "
                           f"(the distill stage's teacher/ folder) or set {section}.alpha to 0")
    if hasattr(tokenizer, "get_vocab") and teacher.tokenizer.get_vocab() != tokenizer.get_vocab():
        raise TrtEdgeError(f"teacher {teacher_dir}: its tokenizer differs from the student's; distillation "
                           "during recovery needs the same tokenization")
    return teacher


def _aggregate(kept: dict[str, float], totals: dict[str, float]) -> float:
    total = sum(totals.values())
    return sum(kept[k] * totals[k] for k in kept) / total if total > 0 else 1.0


def run(config: RunConfig, model_dir: str | Path, out: str | Path) -> StageRecord:
    """Prune the model in `model_dir` to 2:4, recover its accuracy, and write the stage folder `out`."""
    import torch

    from trt_edge.distill.stage import describe_metrics, validation_eval_fn
    from trt_edge.distill.transfer import transfer_input
    from trt_edge.modeling.folder import save_classifier
    from trt_edge.sparsity.masks import (
        Masks,
        Sparse24Config,
        apply_masks,
        compute_masks,
        dense_convolutions,
        token_independent_linears,
    )
    from trt_edge.sparsity.permutation import max_output_change, model_outputs, permute_model_, random_inputs
    from trt_edge.sparsity.torch_check import check_model_sparsity
    from trt_edge.tasks.data import resolve_data_source
    started = time.perf_counter()
    cfg: PruneConfig = config.section("prune")
    model_path = Path(model_dir)
    inputs = load_student_inputs(config, model_path, cfg)
    task, task_source, data, loaded = inputs.task, inputs.task_source, inputs.data, inputs.loaded
    student_dir, teacher_dir = inputs.student_dir, inputs.teacher_dir
    encode, evaluate = inputs.adapter.encode, inputs.adapter.evaluate
    model, tokenizer = loaded.model, loaded.tokenizer
    teacher = load_teacher(cfg, teacher_dir, data.label_names, tokenizer, task.type)
    method = Sparse24Config(include=list(cfg.include), exclude=list(cfg.exclude))
    selected = [re.compile(p) for p in cfg.include], [re.compile(p) for p in cfg.exclude]
    constant = {name: why for name, why in token_independent_linears(model).items()
                if any(p.search(name) for p in selected[0]) and not any(p.search(name) for p in selected[1])}

    def runs_on_tokens(_module: Any, name: str) -> bool:
        return f"{name}.weight" not in constant

    # Validates the patterns and finds the layers before any work.
    plain = compute_masks(model, method, runs_on_tokens)
    plain.skipped.update(constant)
    for name, why in constant.items():
        log.info("not pruned: %s: %s", name, why)
    torch.manual_seed(cfg.seed)
    test = data.test
    test_enc = encode(tokenizer, test.texts, task.max_length)
    reference = inputs.test_reference()
    dense_metrics, dense_logits = evaluate(model, test_enc, test.labels, data.num_labels, task.eval_batch_size,
                                           reference)
    log.info("dense test %s", describe_metrics(dense_metrics))

    permutations: list[Any] = []
    permutation_skipped: dict[str, str] = {}
    max_change = 0.0
    if cfg.permute:
        probe = random_inputs(model, seed=cfg.seed, task=task.type)
        before = model_outputs(model, probe)
        permutations, permutation_skipped = permute_model_(model, set(plain), cfg.permutation_seconds,
                                                           cfg.permutation_seed)
        max_change = max_output_change(before, model_outputs(model, probe))
        scale = max(1.0, float(before.abs().max()))
        if max_change > EQUIVALENCE_TOLERANCE * scale:
            raise RuntimeError(f"channel permutation changed the model's outputs by {max_change:.3g} "
                               f"(tolerance {EQUIVALENCE_TOLERANCE * scale:.3g}): a bug in trt-edge, please report it")
        log.info("permuted %d layer pairs (%s); largest output change %.2e", len(permutations),
                 ", ".join(f"{p.pair.producer} -> {p.pair.consumer} ({p.pair.kind})" for p in permutations) or "none",
                 max_change)
        for where, why in permutation_skipped.items():
            log.warning("channel permutation skipped at %s: %s", where, why)
    masks: Masks = compute_masks(model, method, runs_on_tokens)
    masks.skipped.update(constant)
    by_consumer = {f"{p.pair.consumer}.weight": p for p in permutations}
    by_producer = {f"{p.pair.producer}.weight": p for p in permutations}

    pruned = copy.deepcopy(model)
    apply_masks(pruned, masks)
    pruned_metrics, _ = evaluate(pruned, test_enc, test.labels, data.num_labels, task.eval_batch_size, reference)
    del pruned
    log.info("pruned test %s before recovery", describe_metrics(pruned_metrics))

    recovery: dict[str, Any] = {"skipped": True}
    teacher_info: dict[str, Any] = {"teacher": str(teacher_dir) if teacher_dir else None}
    if cfg.recover:
        from trt_edge.sparsity.recovery import recover, recovery_set

        train_enc = encode(tokenizer, data.train.texts, task.max_length)
        val_enc = encode(tokenizer, data.validation.texts, task.max_length)
        if cfg.alpha > 0 and teacher_dir is None:
            log.warning("no teacher (a bare model folder and no prune.teacher): recovery trains on labels only")
        train_features, train_logits, info = recovery_set(cfg, task, data, encode, tokenizer, teacher, teacher_dir,
                                                          train_enc)
        teacher_info.update(info)
        train_logits, val_reference = recovery_targets(inputs, model, teacher, train_enc, val_enc, train_logits)
        teacher = None
        evaluate_fn = validation_eval_fn(val_enc, data.validation.labels, data.num_labels, task.eval_batch_size,
                                         task, val_reference)
        result = recover(model, masks, train_features, train_enc.pad_token_id,
                         cfg.train, eval_fn=evaluate_fn,
                         teacher_logits=train_logits, alpha=cfg.alpha, temperature=cfg.temperature,
                         schedule=cfg.schedule, gradual_steps=cfg.gradual_steps,
                         gradual_fraction=cfg.gradual_fraction, seed=cfg.seed, task=task.type,
                         neighbour_weight=cfg.neighbour_weight)
        recovery = result.to_dict()
    apply_masks(model, masks)
    sparse_metrics, sparse_logits = evaluate(model, test_enc, test.labels, data.num_labels, task.eval_batch_size,
                                             reference)
    log.info("sparse test %s (dense %s)", describe_metrics(sparse_metrics), describe_metrics(dense_metrics))

    params = dict(model.named_parameters())
    tensors: dict[str, Any] = {}
    for name, mask in masks.items():
        perm = by_consumer.get(name)
        tensors[name] = {
            "pattern": "2:4", "axis": 1, "layout": "[out, in] (torch Linear weight; ONNX MatMul B axis 0, "
                                                   "Gemm transB=1 axis 1)",
            "shape": list(params[name].shape),
            "kept_magnitude": masks.kept_magnitude[name],
            "kept_magnitude_without_permutation": plain.kept_magnitude[name],
            "input_channels_permuted": perm.pair.kind if perm else None,
            "output_channels_permuted": by_producer[name].pair.kind if name in by_producer else None,
            "zeros": int((~mask).sum()),
        }
    kept = masks.overall_kept_magnitude()
    kept_plain = _aggregate({k: plain.kept_magnitude[k] for k in masks}, {k: plain.total_magnitude[k] for k in masks})
    sparsity_doc: dict[str, Any] = {
        "format": SPARSITY_FORMAT, "version": SPARSITY_VERSION, "pattern": "2:4", "method": cfg.method,
        "tensors": tensors, "skipped": dict(masks.skipped),
        "permutations": [p.to_dict() for p in permutations], "permutation_skipped": permutation_skipped,
        "kept_magnitude": kept, "kept_magnitude_without_permutation": kept_plain,
        "note": "kept magnitudes are measured when the masks were chosen, before recovery fine-tuning",
    }
    verdict = inputs.adapter.judge("prune", "sparse vs dense student", dense_logits, sparse_logits, test.labels,
                                   cfg.max_accuracy_drop, PruneConfig().max_accuracy_drop, reference)
    accuracy_drop = task_drop_points(dense_metrics, sparse_metrics, verdict)
    metrics: dict[str, Any] = {
        **prefixed("dense", dense_metrics), **prefixed("pruned", pruned_metrics, "_before_recovery"),
        **prefixed("sparse", sparse_metrics),
        "accuracy_drop_points": accuracy_drop,
        "kept_magnitude": kept, "kept_magnitude_without_permutation": kept_plain,
        "sparse_layers": len(masks), "skipped_layers": len(masks.skipped), "skipped": dict(masks.skipped),
        "dense_convolutions": dense_convolutions(model),
        "permuted_layers": len(permutations), "permutation_skipped": permutation_skipped,
        "permutation_max_output_change": max_change,
        "permutation_seconds": sum(p.seconds for p in permutations),
        "layers": {name: {k: tensors[name][k] for k in ("kept_magnitude", "kept_magnitude_without_permutation",
                                                        "input_channels_permuted")} for name in tensors},
        "recovery": recovery, "schedule": cfg.schedule, "task_config_from": task_source,
        "head": loaded.head_note, **teacher_info,
    }
    metrics.update(inputs.teacher_metrics())
    metrics["gate"] = verdict.to_dict()
    log.info("%s", verdict.line())
    if cfg.max_accuracy_drop is not None and accuracy_drop > cfg.max_accuracy_drop:
        lo, hi = verdict.interval_points
        raise GateError(f"sparse {inputs.adapter.spec.metric} is {accuracy_drop:.2f} points below dense "
                        f"(95% CI [{lo:.2f}, {hi:.2f}], "
                        f"n={verdict.n}; {verdict.status}), more than prune.max_accuracy_drop={cfg.max_accuracy_drop}",
                        {**prefixed("dense", dense_metrics), **prefixed("sparse", sparse_metrics),
                         **prefixed("pruned", pruned_metrics, "_before_recovery"),
                         "interval_points": [round(lo, 4), round(hi, 4)], "n": verdict.n})

    record = StageRecord(
        stage="prune",
        config={"task": task.to_dict(), "prune": cfg.to_dict()},
        inputs={"model": sha256_tree(model_path), "data": sha256_tree(resolve_data_source(task.data.source)),
                **weight_hashes(Path(student_dir), "model"),
                **({"teacher": sha256_tree(teacher_dir), **weight_hashes(Path(teacher_dir), "teacher")}
                   if teacher_dir is not None else {}),
                **transfer_input(cfg.transfer, task.data)},
        artifacts={MODEL: "model", SPARSITY: f"model/{SPARSITY_FILE}", PREDICTIONS: stats.PREDICTIONS_FILE},
    )
    with stage_output(out) as tmp:
        save_classifier(model, tokenizer, tmp / "model")
        _use_checkpoint_names(sparsity_doc, model, tmp / "model")
        atomic_write_json(tmp / "model" / SPARSITY_FILE, sparsity_doc)
        stats.save_predictions(tmp, test.labels, dense=dense_logits, sparse=sparse_logits, **inputs.carried_reference())
        proof = check_model_sparsity(tmp / "model")
        if not proof.ok:
            raise RuntimeError(f"saved weights lost the 2:4 pattern in {proof.violations}: a bug in trt-edge")
        metrics["checker_pass_rate"] = proof.expected_pass_rate()
        metrics["seconds"] = time.perf_counter() - started
        metrics["data"] = data.record()
        record.metrics = json.loads(json.dumps(metrics, default=str))
        record.write(tmp, declared=STAGE.produces)
    return record


# 2:4 pruning of the nearest earlier student (width-pruned when that stage runs); the teacher, when its
# input carries one, guides the recovery.
STAGE = StageDescriptor("prune", ("task", "distill", "prune"), run, reads=("width", "distill"), consumes=(MODEL,),
                        produces=(MODEL, SPARSITY, PREDICTIONS))
