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
from trt_edge.pipeline.config import PipelineConfig

# stage -> (reference accuracy key, new accuracy key, what is compared)
PAIRS = {"distill": ("teacher_accuracy", "student_accuracy", "student vs teacher"),
         "width": ("dense_accuracy", "width_accuracy", "width-pruned vs dense student"),
         "prune": ("dense_accuracy", "sparse_accuracy", "sparse vs dense student"),
         "calibrate": ("fp32_accuracy", "int8_accuracy", "INT8 vs fp32")}


def stage_verdict(name: str, metrics: dict[str, Any], cfg: PipelineConfig) -> stats.GateVerdict | None:
    """The pipeline's verdict on stage `name` (None when the stage has no pipeline gate)."""
    if name not in PAIRS or name not in cfg.gates:
        return None
    default = PipelineConfig().gates.get(name)
    budget = cfg.gates[name]
    stored = metrics.get("gate")
    if stats.is_gate_record(stored):  # a paired table (Newcombe) or a stored bootstrap interval
        return stats.rejudge(stored, budget, default, gate=f"pipeline.gates.{name}")
    ref_key, new_key, _ = PAIRS[name]
    if ref_key not in metrics or new_key not in metrics:
        raise RuntimeError(f"stage {name} did not report {ref_key} and {new_key}")
    return None


def overall_verdict(run_dir: Path, cfg: PipelineConfig) -> stats.GateVerdict | None:
    """Teacher against the final INT8 model, paired on the test split (from the saved predictions)."""
    teacher = _predictions(run_dir / "distill")
    final = _predictions(run_dir / "calibrate")
    if teacher is None or final is None or "teacher" not in teacher or "int8" not in final:
        return None
    if teacher["labels"].shape != final["labels"].shape or (teacher["labels"] != final["labels"]).any():
        return None  # another test split (the task config changed between stages)
    return stats.judge_predictions("pipeline.overall_budget", "INT8 student vs teacher", teacher["teacher"],
                                   final["int8"], teacher["labels"], cfg.overall_budget, None)


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
    for name, stage in stages.items():
        metrics = stage.get("metrics", {})
        verdict = stage_verdict(name, metrics, cfg)
        if verdict is not None:
            out.append({"stage": name, **verdict.to_dict()})
        for key in ("gate", "cpu_gate", "ablation_gate"):
            own = metrics.get(key)
            if not stats.is_gate_record(own):
                continue
            if key == "gate" and verdict is not None and own.get("budget_points") is None:
                continue  # the stage only recorded the table; the pipeline's verdict above judges it
            out.append({"stage": name, **own, "gate": _gate_name(name, str(own.get("gate", name)))})
    overall = overall_verdict(run_dir, cfg)
    if overall is not None:
        out.append({"stage": "overall", **overall.to_dict()})
    return out
