"""The pipeline's profile step: every ONNX model of the run timed side by side in ONNX Runtime.

Absolute CPU times drift by tens of percent between runs on shared machines, so models are compared in
one process, interleaved round by round, each re-warmed before its timed chunk, on the same real texts;
the figures that matter are the ratios to the teacher. On a device with TensorRT, `trt-edge profile`
measures the engine itself (latency percentiles, per-layer times, energy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trt_edge.artifacts import COMPARISON, ONNX, ONNX_CPU, ONNX_QAT, StageDescriptor
from trt_edge.config import RunConfig
from trt_edge.errors import TrtEdgeError
from trt_edge.files import atomic_write_json, sha256_file
from trt_edge.log import get_logger
from trt_edge.pipeline.config import PipelineConfig
from trt_edge.profile.side_by_side import MIN_CHUNK_RUNS, compare_latency
from trt_edge.stage import STAGE_FILE, StageRecord, read_stage, stage_output
from trt_edge.tasks.spec import get_task
from trt_edge.timing import REWARM_MS

log = get_logger("compare")

# (label, stage folder, artifact role): the models a run can hold, in report order.
MODELS = (
    ("teacher fp32", "export-teacher", ONNX),
    ("student width-pruned fp32", "width", ONNX),
    ("student fp32", "export", ONNX),
    ("student INT8 Q/DQ (TensorRT)", "calibrate", ONNX),
    ("student INT8 Q/DQ (QAT)", "qat", ONNX_QAT),  # only when QAT ran (the qat stage's own Q/DQ file)
    ("student INT8 (CPU)", "calibrate", ONNX_CPU),
)


def shape_key(point: dict[str, Any]) -> str:
    """The key a timed shape of comparison.json has in the report's tables and latencies (`b1s64`)."""
    return f"b{point['batch']}s{point['seq']}"


def shape_label(point: dict[str, Any]) -> str:
    """How a timed shape of comparison.json prints: the words its task gave it when timed (`b1 s64`,
    `b1 224x224`: `TaskSpec.describe_shape`), `b{batch} s{seq}` for a file written before them."""
    return str(point.get("shape") or f"b{point['batch']} s{point['seq']}")


def run_models(run_dir: Path) -> list[tuple[str, Path]]:
    """The ONNX files of a run that exist, with their labels."""
    found = []
    for label, stage, role in MODELS:
        folder = run_dir / stage
        if not (folder / STAGE_FILE).is_file():
            continue
        artifacts = read_stage(folder).get("artifacts", {})
        if role in artifacts and (folder / artifacts[role]).is_file():
            found.append((label, folder / artifacts[role]))
    return found


def comparison_inputs(config: RunConfig, models: list[tuple[str, Path]]) -> tuple[Any, list[str]]:
    """The tokenizer that travels with the compared models (the first one's) and the test texts; none
    for a task whose examples are not texts (images: latency does not depend on pixel values, the feeds
    are random pixels)."""
    from trt_edge.tasks.adapter import adapter_for
    from trt_edge.tasks.spec import preprocessor_dir

    if not models:
        raise TrtEdgeError("no exported model in the run folder to compare")
    task = config.section("task")
    spec = get_task(task.type)
    adapter = adapter_for(spec)
    if not adapter.text_examples:
        return None, []
    data = adapter.load_data(task.data)
    folder = preprocessor_dir(models[0][1])
    return spec.preprocessor.load(folder), data.test.texts


def run(config: RunConfig, run_dir: Path, out: str | Path) -> StageRecord:
    """Time every ONNX model of the run side by side and write `comparison.json`."""
    import onnxruntime

    cfg: PipelineConfig = config.section("pipeline")
    root = Path(run_dir)
    models = run_models(root)
    tokenizer, texts = comparison_inputs(config, models)
    sequence = get_task(config.section("task").type).has_sequence_axis
    max_length = int(config.section("task").max_length)
    shapes = cfg.shapes(max_length if sequence else None)
    log.info("timing %d models side by side: %s", len(models), ", ".join(label for label, _ in models))
    results = compare_latency(models, tokenizer, texts, shapes, cfg.compare_rounds, cfg.compare_runs,
                              chunk_ms=cfg.compare_chunk_ms)
    comparison = {
        "models": [{"label": label, "onnx": str(path.relative_to(root)), "bytes": path.stat().st_size,
                    "sha256": sha256_file(path)} for label, path in models],
        "reference": models[0][0] if models else None,
        "shapes": results,
        "onnxruntime": onnxruntime.__version__,
        "threads": _threads(),
        "method": f"{cfg.compare_rounds} interleaved rounds per model and shape, each chunk re-warmed for "
                  f"{REWARM_MS:g} ms (>= 2 runs) then timed for {cfg.compare_runs} runs or "
                  f"{cfg.compare_chunk_ms:g} ms (>= {MIN_CHUNK_RUNS} runs), "
                  + ("real test texts padded to the sequence length" if texts else
                     "random pixels at the model's input size (the sequence of a shape is ignored)")
                  + "; the sample count of every cell is in latency_ms",
    }
    if sequence:
        comparison["max_length"] = max_length  # the report says where the engine's sequence profile ends
    metrics: dict[str, Any] = {}
    seconds = example_seconds(config, models)
    for point in results:
        for label, ratio in point["speedup_vs_first"].items():
            metrics[f"speedup[{label}][{shape_label(point)}]"] = ratio
        if seconds:
            add_throughput(point, seconds)
            for label, rtf in point["real_time_factor"].items():
                metrics[f"real_time_factor[{label}][{shape_label(point)}]"] = rtf
    if seconds:
        comparison["example_seconds"] = seconds
    record = StageRecord(stage="profile", config={"pipeline": cfg.to_dict(), "task": config.raw.get("task")},
                         inputs={label: sha256_file(path) for label, path in models},
                         metrics=metrics, artifacts={COMPARISON: "comparison.json"})
    with stage_output(out) as tmp:
        atomic_write_json(tmp / "comparison.json", comparison)
        record.write(tmp, declared=STAGE.produces)
    return record


def example_seconds(config: RunConfig, models: list[tuple[str, Path]]) -> float | None:
    """The seconds of signal one example holds, from the task's adapter and the compared models' preprocessor
    (audio clips); None for texts and images."""
    from trt_edge.tasks.adapter import adapter_for
    from trt_edge.tasks.spec import preprocessor_dir

    spec = get_task(config.section("task").type)
    adapter = adapter_for(spec)
    if not models or adapter.text_examples:
        return None
    return adapter.example_seconds(spec.preprocessor.load(preprocessor_dir(models[0][1])))


def add_throughput(point: dict[str, Any], seconds: float) -> None:
    """Per model of a timed shape: examples per second (`clips_per_s`: the batch over the median latency) and
    the real-time factor (`real_time_factor`: seconds of audio processed per second of compute)."""
    batch = int(point.get("batch") or 1)
    point["clips_per_s"], point["real_time_factor"] = {}, {}
    for label, stats in point["latency_ms"].items():
        median_s = float(stats["median"]) / 1000.0
        point["clips_per_s"][label] = round(batch / median_s, 2) if median_s > 0 else None
        point["real_time_factor"][label] = round(batch * seconds / median_s, 1) if median_s > 0 else None


def _threads() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# The pipeline's `profile` stage (the standalone `trt-edge profile` is `trt_edge.profile.stage`): it reads the
# whole run. Its sections stay ("task", "profile") so folders written before keep their config hash.
STAGE = StageDescriptor("profile", ("task", "profile"), run, reads_run=True, produces=(COMPARISON,))
