"""The pipeline's accuracy gates, judged from the paired tables the stages record (`trt_edge.stats`).

Stages record the paired 2x2 table of a model against its parent in `stage.json` (`metrics.gate`), or,
for continuous scores such as recall@10, a paired bootstrap interval (`stats.judge_scores`); the
pipeline's budgets (`pipeline.gates`, `pipeline.overall_budget`) live in another config section, so the
pipeline judges them here, from the stored table, without rerunning a stage when only a budget changes.
The runner stops on a failed gate; the report shows every verdict with its interval, and marks a budget
looser than the default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trt_edge import stats
from trt_edge.errors import TrtEdgeError
from trt_edge.pipeline.config import PipelineConfig
from trt_edge.stage import STAGE_FILE, read_stage
from trt_edge.tasks.adapter import adapter_for
from trt_edge.tasks.spec import TaskSpec, task_for_record, task_spec

# stage -> (reference model, new model, what is compared): a stage records each model's figures as
# `<model>_<metric>` (`tasks.metrics.prefixed`), the metric being the task's (`TaskSpec.metric`).
_PAIRED_MODELS = {"distill": ("teacher", "student", "student vs teacher"),
                  "width": ("dense", "width", "width-pruned vs dense student"),
                  "prune": ("dense", "sparse", "sparse vs dense student"),
                  "calibrate": ("fp32", "int8", "INT8 vs fp32"),
                  "qat": ("fp32", "int8", "deployed INT8 (qat stage) vs fp32")}
# The stages whose `int8` predictions are the run's final INT8 model, first found first: the qat stage's
# deployed one (QAT's or PTQ's carried on) when it ran, else calibrate's.
FINAL_INT8_STAGES = ("qat", "calibrate")


def pairs(metric: str = "accuracy") -> dict[str, tuple[str, str, str]]:
    """stage -> (reference key, new key, what is compared) for a task whose metric is `metric`
    (`accuracy`: `teacher_accuracy`, `student_accuracy`; `recall_at_10`: `student_recall_at_10`, ...).

    Why by metric: the keys a gate row reads are the task's, and a task is named only by its spec. A
    reference key may be absent for a task judged against the parent itself (an embedding's parent
    scores recall 1.0 against its own neighbours): its stored gate record carries both means."""
    return {stage: (f"{ref}_{metric}", f"{new}_{metric}", what)
            for stage, (ref, new, what) in _PAIRED_MODELS.items()}


# The classification keys (`accuracy`): the stages that have a pipeline gate, and the keys of a record
# written before tasks had their own metric.
PAIRS = pairs()


def run_metric(stages: dict[str, dict[str, Any]]) -> str:
    """The metric of the run's task, from the first stage record that names its task (the default
    task's for records written before tasks had types)."""
    return run_spec(stages).metric


def run_spec(stages: dict[str, dict[str, Any]]) -> TaskSpec:
    """The task of a run, as its stage records name it (`config.task.type`; distill first)."""
    ordered = [stages[n] for n in ("distill", *stages) if n in stages]
    for stage in ordered:
        if ((stage.get("config") or {}).get("task") or {}).get("type"):
            spec = task_for_record(stage)
            if spec is not None:
                return spec
    return task_spec(None)


def stage_verdict(name: str, metrics: dict[str, Any], cfg: PipelineConfig,
                  metric: str = "accuracy") -> stats.GateVerdict | None:
    """The pipeline's verdict on stage `name` (None when the stage has no pipeline gate); `metric` is
    the task's (`TaskSpec.metric`), naming the keys a record without a stored gate must hold."""
    if name not in PAIRS or name not in cfg.gates:
        return None
    default = PipelineConfig().gates.get(name)
    budget = cfg.gates[name]
    stored = deployed_gate(metrics) if name == "qat" else metrics.get("gate")
    if stats.is_gate_record(stored):  # a paired table (Newcombe) or a stored bootstrap interval
        return stats.rejudge(stored, budget, default, gate=f"pipeline.gates.{name}")
    ref_key, new_key, _ = pairs(metric)[name]
    if ref_key not in metrics or new_key not in metrics:
        raise RuntimeError(f"stage {name} did not report {ref_key} and {new_key}")
    return None


def deployed_gate(metrics: dict[str, Any]) -> Any:
    """The paired table of the model a qat stage record deploys against its fp32 input: QAT's own gate
    (`gate`) when QAT's model is deployed, PTQ's (`ptq_gate`) when PTQ's is (QAT did worse, failed its
    budget, or did not run)."""
    return metrics.get("gate") if metrics.get("deployed") == "qat" else metrics.get("ptq_gate")


def final_int8_stage(run_dir: Path) -> str | None:
    """The stage folder holding the run's final INT8 model and its test predictions (`FINAL_INT8_STAGES`)."""
    return next((s for s in FINAL_INT8_STAGES if (run_dir / s / STAGE_FILE).is_file()), None)


def overall_verdict(run_dir: Path, cfg: PipelineConfig) -> stats.GateVerdict | None:
    """Teacher against the final INT8 model, paired on the test split (from the saved outputs), judged by
    the task's adapter: Newcombe's interval on the correct examples (classification), a bootstrap
    interval on the INT8 model's recall@10 of the teacher's neighbours (sentence embedding)."""
    stage = final_int8_stage(run_dir)
    teacher = _predictions(run_dir / "distill")
    final = _predictions(run_dir / stage) if stage is not None else None
    if teacher is None or final is None or "teacher" not in teacher or "int8" not in final:
        return None
    if teacher["labels"].shape != final["labels"].shape or (teacher["labels"] != final["labels"]).any():
        return None  # another test split (the task config changed between stages)
    adapter = adapter_for(_stage_spec(run_dir, "calibrate") or _stage_spec(run_dir, "distill") or task_spec(None))
    return adapter.judge("pipeline.overall_budget", "INT8 student vs teacher", teacher["teacher"], final["int8"],
                         teacher["labels"], cfg.overall_budget, None)


def _stage_spec(run_dir: Path, stage: str) -> TaskSpec | None:
    path = run_dir / stage / STAGE_FILE
    if not path.is_file():
        return None
    try:
        return task_for_record(read_stage(run_dir / stage, None))
    except TrtEdgeError:
        return None


def _predictions(folder: Path) -> dict[str, Any] | None:
    path = folder / stats.PREDICTIONS_FILE
    return stats.load_predictions(path) if path.is_file() else None


# Stages that run the same stage code on two models: their gates are told apart by the model.
_MODEL_OF_STAGE = {"export": "student", "export-teacher": "teacher"}


def _gate_name(stage: str, gate: str) -> str:
    """`export (student)` / `export (teacher)`: the export parity gate runs on both models of a pipeline
    and records the same name in each stage.json."""
    model = _MODEL_OF_STAGE.get(stage)
    return f"{gate} ({model})" if model and gate == "export" else gate


def all_verdicts(run_dir: Path, stages: dict[str, dict[str, Any]], cfg: PipelineConfig) -> list[dict[str, Any]]:
    """Every gate of a run, in pipeline order: the pipeline's budgets and each stage's own gate."""
    out: list[dict[str, Any]] = []
    metric = run_metric(stages)
    for name, stage in stages.items():
        metrics = stage.get("metrics", {})
        verdict = stage_verdict(name, metrics, cfg, metric)
        if verdict is not None:
            out.append({"stage": name, **verdict.to_dict()})
        for key in ("gate", "cpu_gate", "ablation_gate"):
            own = metrics.get(key)
            if not stats.is_gate_record(own):
                continue
            if name == "qat" and (key != "gate" or metrics.get("deployed") != "qat"):
                # PTQ's model deployed: its gate is calibrate's row; QAT's own verdict, not deployed, is
                # shown beside it in the report's PTQ-vs-QAT table, not as a gate that could stop the run
                continue
            if key == "gate" and verdict is not None and own.get("budget_points") is None:
                continue  # the stage only recorded the table; the pipeline's verdict above judges it
            out.append({"stage": name, **own, "gate": _gate_name(name, str(own.get("gate", name)))})
    overall = overall_verdict(run_dir, cfg)
    if overall is not None:
        out.append({"stage": "overall", **overall.to_dict()})
    return out
