"""What a run says, before any table: what to deploy for each target, whether every gate held, and what
looks wrong. Read from the stage folders (stage.json, the saved test predictions, comparison.json) and
judged with `trt_edge.stats`; nothing is re-measured.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge import stats
from trt_edge.artifacts import BUNDLE, ONNX, ONNX_CPU, PLAN
from trt_edge.errors import TrtEdgeError
from trt_edge.pipeline.compare import shape_label
from trt_edge.pipeline.config import PipelineConfig
from trt_edge.pipeline.gates import all_verdicts, run_spec
from trt_edge.tasks.adapter import TaskAdapter, adapter_for
from trt_edge.tasks.spec import task_for_record

# A model that gives one class to at least this share of the test inputs, when that class is clearly
# rarer among the labels, has collapsed (the symptom of a too-short budget on a skewed data set).
ONE_CLASS_SHARE = 0.8
ONE_CLASS_MARGIN = 0.1
# comparison.json labels of the deployable artifacts
TRT_LABEL = "student INT8 Q/DQ (TensorRT)"
QAT_LABEL = "student INT8 Q/DQ (QAT)"  # the qat stage's quantization-aware model (TRT_LABEL is PTQ's)
CPU_LABEL = "student INT8 (CPU)"
TEACHER_LABEL = "teacher fp32"
# saved predictions: (stage folder, array name) -> what the report calls that model
MODELS = {("distill", "teacher"): "teacher", ("distill", "student"): "student (distilled)",
          ("distill", "hard_label"): "student, hard labels only (ablation)",
          ("width", "width"): "width-pruned student", ("prune", "sparse"): "sparse student (2:4)",
          ("calibrate", "int8"): "student INT8 Q/DQ (TensorRT)",
          ("calibrate", "cpu"): "student INT8 (CPU)", ("qat", "qat"): QAT_LABEL}
# Saved outputs scored against the teacher's for a task judged against a reference model (an embedding's
# vectors): the models above plus the fp32 ONNX, whose vectors the calibrate stage saves as its parent's.
SCORED = {**MODELS, ("calibrate", "fp32"): "student ONNX fp32"}
# How the report words the figure of the task's metric (`TaskSpec.metric`) a model reaches against the
# teacher; a metric not listed prints as its key.
METRIC_WORDS = {"accuracy": "accuracy", "recall_at_10": "recall@10"}


@dataclass
class Target:
    """One deployable artifact and its figures against the teacher."""

    target: str
    artifact: str
    size_bytes: int | None
    how: str
    speedup: dict[str, float] = field(default_factory=dict)
    speedup_note: str = ""
    vs_teacher: dict[str, Any] | None = None


@dataclass
class Verdict:
    headline: str
    ready: bool
    targets: list[Target]
    gates: list[dict[str, Any]]
    warnings: list[str]
    predictions: dict[str, np.ndarray]  # report name -> predicted classes on the test split (labelled tasks)
    labels: np.ndarray | None
    label_names: list[str]
    uses_labels: bool = True  # the task's adapter: judged against labels (confusion tables mean something)
    metric: str = "accuracy"  # the task's metric (`TaskSpec.metric`): the key of a model's figure in `scores`
    metric_words: str = "accuracy"  # what the task's figure against the teacher is called
    # report name -> the adapter's `score` of the model's saved test outputs against the teacher's (a
    # task judged against a reference model only: recall@10, mean cosine, kNN accuracy for embeddings)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    int8_model: str = TRT_LABEL  # the report name of the INT8 Q/DQ model to deploy (`deployed_label`)


def pipeline_config(run_dir: Path) -> PipelineConfig:
    """The pipeline section the run was made with (pipeline.json), else the defaults."""
    import json

    path = run_dir / "pipeline.json"
    raw: dict[str, Any] = {}
    if path.is_file():
        try:
            raw = (json.loads(path.read_text(encoding="utf-8")).get("config") or {}).get("pipeline") or {}
        except (OSError, ValueError):
            raw = {}
    return PipelineConfig.from_dict(raw, "pipeline")


def load_all_outputs(run_dir: Path, stages: dict[str, dict[str, Any]],
                     models: dict[tuple[str, str], str] | None = None) -> tuple[dict[str, np.ndarray],
                                                                                np.ndarray | None]:
    """Saved test outputs (logits, classes or vectors) of every model of `models` (default `MODELS`)
    whose stage saved them, and the test labels they share; a model saved on another split is left out."""
    out: dict[str, np.ndarray] = {}
    labels: np.ndarray | None = None
    for (stage, key), name in (models or MODELS).items():
        path = run_dir / stage / stats.PREDICTIONS_FILE
        if stage not in stages or not path.is_file():
            continue
        data = stats.load_predictions(path)
        if key not in data:
            continue
        if labels is None:
            labels = data["labels"]
        elif data["labels"].shape != labels.shape or (data["labels"] != labels).any():
            continue  # another test split: not comparable
        out[name] = data[key]
    return out, labels


def load_all_predictions(run_dir: Path, stages: dict[str, dict[str, Any]]) -> tuple[dict[str, np.ndarray],
                                                                                     np.ndarray | None]:
    """Predicted classes of every model whose stage saved them, and the test labels they share."""
    outputs, labels = load_all_outputs(run_dir, stages)
    return {name: pred.argmax(axis=1) if pred.ndim == 2 else pred for name, pred in outputs.items()}, labels


def model_scores(outputs: dict[str, np.ndarray], labels: np.ndarray | None, num_labels: int,
                 adapter: TaskAdapter) -> dict[str, dict[str, float]]:
    """Each model's `adapter.score` against the teacher's outputs on the same test examples (a task judged
    against a reference model): the figures of every model measured one way, from the saved outputs,
    whatever parent each stage judged it against. Empty without the teacher's outputs."""
    teacher = outputs.get(TEACHER)
    if teacher is None:
        return {}
    y = labels.tolist() if labels is not None and num_labels > 1 else []
    classes = num_labels if y else 0
    return {name: adapter.score(out, y, classes, reference=teacher) for name, out in outputs.items()}


def _size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def _speedups(comparison: dict[str, Any], label: str) -> dict[str, float]:
    out = {}
    for point in comparison.get("shapes", []):
        ratio = point.get("speedup_vs_first", {}).get(label)
        if ratio is not None and comparison.get("reference") == TEACHER_LABEL:
            out[shape_label(point)] = float(ratio)
    return out


def deploy_targets(run_dir: Path, stages: dict[str, dict[str, Any]], comparison: dict[str, Any],
                   outputs: dict[str, np.ndarray], labels: np.ndarray | None,
                   cfg: PipelineConfig, adapter: TaskAdapter) -> list[Target]:
    """The deployable artifacts with their size, speed-up and paired verdict against the teacher (the
    task's own judgement, `adapter.judge`, on the saved test outputs)."""
    targets: list[Target] = []
    teacher = outputs.get("teacher")

    def against_teacher(name: str) -> dict[str, Any] | None:
        if teacher is None or labels is None or name not in outputs:
            return None
        verdict: stats.GateVerdict = adapter.judge("vs teacher", f"{name} vs teacher", teacher, outputs[name],
                                                   labels.tolist(), cfg.overall_budget, None)
        return verdict.to_dict()

    cal = stages.get("calibrate")
    qat = stages.get("qat")
    # The TensorRT model: the qat stage's deployed one (QAT's, or PTQ's carried on) when it ran, else PTQ's.
    source = ("qat", qat) if qat is not None and ONNX in qat.get("artifacts", {}) else ("calibrate", cal)
    int8_label = deployed_label(stages)
    if source[1] is not None and ONNX in source[1].get("artifacts", {}):
        qdq = f"{source[0]}/{source[1]['artifacts'][ONNX]}"
        build = stages.get("build", {}).get("artifacts", {})
        if PLAN in build:
            artifact, how = f"build/{build[PLAN]}", "TensorRT plan built on this machine"
            size = _size(run_dir / artifact)
        elif BUNDLE in build:
            artifact = f"build/{build[BUNDLE]}"
            how = (f"no TensorRT here: copy `{artifact}` to the device and run its `build_on_device.sh`; it "
                   f"builds the engine from `{qdq}`")
            size = _size(run_dir / qdq)
        else:
            artifact, how, size = qdq, "Q/DQ ONNX for TensorRT (no build stage in this run)", _size(run_dir / qdq)
        choice = deploy_choice(stages)
        if choice:
            how += f"; {choice}"
        targets.append(Target("TensorRT (Jetson)", artifact, size, how, _speedups(comparison, int8_label),
                              "ONNX Runtime CPU speed of the Q/DQ file, not a TensorRT figure: profile the engine "
                              "on the device", against_teacher(int8_label)))
    if cal is not None and ONNX_CPU in cal.get("artifacts", {}):
        path = f"calibrate/{cal['artifacts'][ONNX_CPU]}"
        m = cal.get("metrics", {})
        targets.append(Target("CPU (ONNX Runtime)", path, _size(run_dir / path),
                              f"{m.get('cpu_artifact', '')}: load with onnxruntime (the session hint is in the "
                              "model's metadata)", _speedups(comparison, CPU_LABEL),
                              "ONNX Runtime on this machine's CPU, interleaved with the teacher",
                              against_teacher(CPU_LABEL)))
    return targets


def deployed_label(stages: dict[str, dict[str, Any]]) -> str:
    """The report's name of the INT8 Q/DQ model to deploy: QAT's when the qat stage deployed it, else PTQ's
    (calibrate's, or the one the qat stage carried on)."""
    return QAT_LABEL if (stages.get("qat") or {}).get("metrics", {}).get("deployed") == "qat" else TRT_LABEL


def deploy_choice(stages: dict[str, dict[str, Any]]) -> str:
    """The qat stage's choice between PTQ and QAT in one sentence (empty without a qat stage)."""
    m = (stages.get("qat") or {}).get("metrics")
    if not m:
        return ""
    which = "QAT's" if m.get("deployed") == "qat" else "PTQ's"
    if not m.get("qat_ran"):
        return f"{which} INT8 model deployed: QAT did not run ({m.get('reason', '')})"
    return f"{which} INT8 model deployed: {m.get('deployed_reason', '')}"


def model_warnings(predictions: dict[str, np.ndarray], labels: np.ndarray | None,
                   label_names: list[str]) -> list[str]:
    """A model giving one class to most inputs when the labels are spread."""
    if labels is None or len(labels) == 0 or not predictions:
        return []
    label_share = Counter(labels.tolist())
    out = []
    for name, pred in predictions.items():
        cls, count = Counter(pred.tolist()).most_common(1)[0]
        share = count / len(pred)
        base = label_share.get(cls, 0) / len(labels)
        if share >= ONE_CLASS_SHARE and share >= base + ONE_CLASS_MARGIN:
            cname = label_names[cls] if 0 <= cls < len(label_names) else str(cls)
            out.append(f"{name} predicts class {cname!r} for {100 * share:.0f}% of the test inputs (it is "
                       f"{100 * base:.0f}% of the labels): the model has nearly collapsed to one class")
    return out


TEACHER = MODELS[("distill", "teacher")]
HARD_LABEL = MODELS[("distill", "hard_label")]


def teacher_warnings(predictions: dict[str, np.ndarray], labels: np.ndarray | None) -> list[str]:
    """A teacher that the student trained on the labels alone beats, with the paired interval clear of zero.

    Such a teacher is undertrained (measured on the demo: MiniLM-L6 fine-tuned for 2 epochs scored 85.5%,
    the 3-layer student trained on the labels 88.1%), and its soft targets pull the student down; the
    fix is a longer teacher fine-tune, not a different student."""
    if labels is None or TEACHER not in predictions or HARD_LABEL not in predictions:
        return []
    v = stats.judge_predictions("teacher", "hard-label student vs teacher", predictions[TEACHER],
                                predictions[HARD_LABEL], labels, None)
    if v.interval_points[1] >= 0:  # drop = teacher - hard-label student; its whole interval below zero
        return []
    return [f"the teacher is weaker than the student trained on the labels alone ({-v.drop_points:.2f} points, "
            f"95% CI [{-v.interval_points[1]:.2f}, {-v.interval_points[0]:.2f}], n={v.n:,}): the teacher is "
            "undertrained and distilling from it cannot pay; raise distill.teacher_train.epochs"]


def gate_warnings(gates: list[dict[str, Any]]) -> list[str]:
    out = []
    for g in gates:
        name = g["gate"]
        if g.get("budget_points") is None:
            continue
        if not g.get("passed", True):
            out.append(f"gate {name} failed: {g['compares']} dropped {g['drop_points']:.2f} points "
                       f"(budget {g['budget_points']:g})")
        elif g.get("loosened") and g.get("default_budget_points") is not None \
                and g["drop_points"] > g["default_budget_points"]:
            out.append(f"gate {name} passed only because its budget was loosened from "
                       f"{g['default_budget_points']:g} to {g['budget_points']:g} points (drop "
                       f"{g['drop_points']:.2f})")
        if not g.get("conclusive", True):
            need = g.get("examples_to_resolve")
            more = f"about {need:,} test examples would settle it" if need else "no test size settles it"
            kind = " bootstrap" if stats.is_bootstrap(g) else ""
            out.append(f"gate {name} is inconclusive at n={g['n']:,}: its 95%{kind} interval "
                       f"[{g['interval_points'][0]:.2f}, {g['interval_points'][1]:.2f}] straddles the budget "
                       f"{g['budget_points']:g} ({more})")
    return out


def parity_warnings(stages: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for name in ("export", "export-teacher"):
        stage = stages.get(name)
        if stage is None:
            continue
        task = (stage.get("config") or {}).get("task") or {}
        spec = task_for_record(stage)
        if spec is not None and not spec.has_sequence_axis:
            continue  # an image has no sequence axis: its parity shapes say sequence 0
        max_length = task.get("max_length")
        shapes = stage.get("metrics", {}).get("parity_shapes") or []
        longest = max((int(s.get("sequence", 0)) for s in shapes), default=0)
        if max_length and shapes and longest < int(max_length):
            out.append(f"{name}: the parity grid reaches sequence length {longest}, short of the task's "
                       f"max_length {max_length}; add {max_length} to export.parity_sequence_lengths")
    return out


def sparsity_target_warnings(run_dir: Path, stages: dict[str, dict[str, Any]]) -> list[str]:
    """The device's "2:4 brings no TensorRT speed here" note for a run that 2:4-pruned for a target
    without sparse tensor cores. The device is the build plan's, else the run config's target."""
    if "prune" not in stages:
        return []
    from trt_edge.devices import no_sparse_speedup_note

    key: Any
    plan = ((stages.get("build") or {}).get("config") or {}).get("plan")
    if isinstance(plan, dict) and "device" in plan:
        key = plan["device"]
    else:
        from trt_edge.target import resolve_target

        try:
            raw = json.loads((run_dir / "pipeline.json").read_text(encoding="utf-8")).get("config") or {}
            key = resolve_target(raw, "build").device
        except (OSError, ValueError, AttributeError, TrtEdgeError):
            return []
    try:
        note = no_sparse_speedup_note(key if isinstance(key, str) else None)
    except TrtEdgeError:  # a device this kit no longer knows: nothing to say about it
        return []
    return [note] if note else []


def headline(gates: list[dict[str, Any]], targets: list[Target]) -> tuple[str, bool]:
    """One sentence: deploy what, or which gate stopped it; then how sure the gates are."""
    judged = [g for g in gates if g.get("budget_points") is not None]
    failed = [g["gate"] for g in judged if not g.get("passed", True)]
    unsure = [g for g in judged if not g.get("conclusive", True)]
    loose = [g for g in judged if g.get("loosened")]
    if failed:
        return f"Not ready: gate {', '.join(failed)} failed.", False
    if not targets:
        return "No deployable artifact in this run (the calibrate stage did not run).", False
    if not judged:
        return (f"Deploy {' and '.join(t.artifact for t in targets)}? No gate of this run recorded its paired "
                "figures (a run from an older trt-edge): rerun it to judge the gates.", False)
    text = f"Deploy {' and '.join(t.artifact for t in targets)}: all {len(judged)} gates with a budget passed"
    notes = []
    if unsure:
        notes.append(f"{len(unsure)} inconclusive at n={unsure[0]['n']:,}")
    if loose:
        notes.append(f"{len(loose)} on a loosened budget")
    return text + (f" ({', '.join(notes)})." if notes else "."), True


def build_verdict(run_dir: Path, stages: dict[str, dict[str, Any]], comparison: dict[str, Any]) -> Verdict:
    cfg = pipeline_config(run_dir)
    gates = all_verdicts(run_dir, stages, cfg)
    spec = run_spec(stages)
    adapter = adapter_for(spec)
    label_names = list(stages.get("distill", {}).get("metrics", {}).get("data", {}).get("label_names") or [])
    if adapter.uses_labels:
        outputs, labels = load_all_outputs(run_dir, stages)
        predictions = {name: pred.argmax(axis=1) if pred.ndim == 2 else pred for name, pred in outputs.items()}
        scores: dict[str, dict[str, float]] = {}
        if any(out.ndim > 2 for out in outputs.values()) and labels is not None:
            # Dense outputs (per-pixel logits): no class per example to count; every model is scored by the
            # task against the same test labels (segmentation: mIoU, pixel accuracy, IoU per class).
            predictions = {}
            scores = {name: adapter.score(out, list(labels), len(label_names)) for name, out in outputs.items()
                      if out.ndim > 2}
    else:  # outputs are vectors: no classes to count, every model scored against the teacher's vectors
        outputs, labels = load_all_outputs(run_dir, stages, SCORED)
        predictions = {}
        scores = model_scores(outputs, labels, len(label_names), adapter)
    targets = deploy_targets(run_dir, stages, comparison, outputs, labels, cfg, adapter)
    warnings = [*model_warnings(predictions, labels, label_names), *teacher_warnings(predictions, labels),
                *gate_warnings(gates), *parity_warnings(stages), *sparsity_target_warnings(run_dir, stages)]
    text, ready = headline(gates, targets)
    choice = deploy_choice(stages)
    if choice and targets:  # which INT8 model the TensorRT target is, PTQ's or QAT's, and why
        text += f" {choice[:1].upper()}{choice[1:]}."
    return Verdict(text, ready, targets, gates, warnings, predictions, labels, label_names, adapter.uses_labels,
                   spec.metric, METRIC_WORDS.get(spec.metric, spec.metric), scores, deployed_label(stages))


def confusion(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts: rows the true class, columns the predicted one."""
    out = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(out, (labels.astype(np.int64), pred.astype(np.int64)), 1)
    return out
