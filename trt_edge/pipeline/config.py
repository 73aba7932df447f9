"""The pipeline section: which stages run, and the accuracy budget of each."""

from __future__ import annotations

from dataclasses import dataclass, field

from trt_edge.configbase import ConfigBase

STAGES = ("distill", "width", "prune", "export", "export-teacher", "calibrate", "qat", "build", "profile",
          "report")
# Opt-in stages: not in the default list (width pruning changes the model's shape; a config asks for it).
OPTIONAL_STAGES = ("width",)
GATED = ("distill", "width", "prune", "calibrate", "qat")


@dataclass
class PipelineConfig(ConfigBase):
    """What `trt-edge pipeline` runs.

    stages (list[str]): stages in order; drop one to skip it (e.g. without `prune` the dense student is
        exported). `width` (heads and feed-forward neurons removed, before 2:4) runs only when listed.
        `qat` (quantization-aware distillation after calibration) needs `export` and `calibrate`; with
        `qat.when: auto` it trains only when PTQ needs help, else it passes PTQ's model on (a file copy).
        Defaults to: distill, prune, export, export-teacher, calibrate, qat, build, profile, report.
    gates (dict[str, float]): largest accuracy drop allowed at a stage, in points of test accuracy, against
        the stage's own reference: distill (student vs teacher), width (width-pruned vs dense student),
        prune (sparse vs its input), calibrate
        (INT8 vs fp32 ONNX), qat (the INT8 model the qat stage deploys, QAT's or PTQ's, vs the fp32 ONNX;
        no default: the qat stage judges itself with `qat.budget`). A stage past its budget stops the run
        and is named. Defaults to distill 3.0, prune 1.5, calibrate 1.0.
    overall_budget (float | None): largest drop of the final INT8 student against the teacher, in points;
        None reports it without gating. Defaults to None.
    compare_shapes (list[list[int]] | None): [batch, sequence] points of the side-by-side ONNX Runtime
        latency comparison of every model of the run; a sequence longer than `task.max_length` (the
        engine's sequence profile ends there) is refused. None takes [[1, max_length // 2],
        [1, max_length], [8, max_length]] from `task.max_length` ([[1, 1], [8, 1]] for images). Defaults to None.
    compare_rounds (int): interleaved rounds per shape (each model timed once per round, re-warmed first,
        so drift and another session's spinning threads hit every model alike). Defaults to 5.
    compare_runs (int): timed runs per model per round, at most. Defaults to 20.
    compare_chunk_ms (float): a model's timed chunk also ends once it has run this long (with at least 5
        runs), so a 230 ms batch-8 teacher does not take as many runs as a 4 ms batch-1 student: the median
        of 25 slow runs is as steady as that of 100 fast ones. Defaults to 500.
    """

    stages: list[str] = field(default_factory=lambda: [s for s in STAGES if s not in OPTIONAL_STAGES])
    gates: dict[str, float] = field(default_factory=lambda: {"distill": 3.0, "prune": 1.5, "calibrate": 1.0})
    overall_budget: float | None = None
    compare_shapes: list[list[int]] | None = None
    compare_rounds: int = 5
    compare_runs: int = 20
    compare_chunk_ms: float = 500.0

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage {unknown[0]!r}; stages: {', '.join(STAGES)}")
        order = [STAGES.index(s) for s in self.stages]
        if order != sorted(order) or len(set(order)) != len(order):
            raise ValueError(f"stages must be distinct and in pipeline order ({', '.join(STAGES)})")
        if "distill" not in self.stages:
            raise ValueError("the pipeline starts from distill; run the other stages alone otherwise")
        if "qat" in self.stages and not {"export", "calibrate"} <= set(self.stages):
            raise ValueError("stage qat fine-tunes what calibrate quantized: it needs export and calibrate in "
                             "pipeline.stages")
        bad = [k for k in self.gates if k not in GATED]
        if bad:
            raise ValueError(f"no accuracy gate for stage {bad[0]!r} (gated: {', '.join(GATED)})")
        if any(v < 0 for v in self.gates.values()):
            raise ValueError("gate budgets must not be negative")
        if self.compare_shapes is not None and any(len(s) != 2 or min(s) < 1 for s in self.compare_shapes):
            raise ValueError("compare_shapes must be [batch, sequence] pairs of positive integers")
        if self.compare_rounds < 1 or self.compare_runs < 1 or self.compare_chunk_ms <= 0:
            raise ValueError("compare_rounds, compare_runs and compare_chunk_ms must be positive")

    def shapes(self, max_length: int | None) -> list[list[int]]:
        """The [batch, sequence] points the comparison times: `compare_shapes`, else the default made from
        `task.max_length` (the one place that default is written); `max_length` None is a task without a
        sequence axis (images), timed at batch 1 and 8."""
        if self.compare_shapes is not None:
            return [list(s) for s in self.compare_shapes]
        if max_length is None:
            return [[1, 1], [8, 1]]
        return [[1, max(1, max_length // 2)], [1, max_length], [8, max_length]]
