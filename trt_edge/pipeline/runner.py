"""`trt-edge pipeline`: every stage in order, each in its own sub-folder, resumable and gated.

The run folder holds one sub-folder per stage and `pipeline.json`, which records for every finished stage
the hash of the config sections it read, the hash of its input (the parent stage's outputs) and the hash
of what it wrote. A stage whose three hashes still match is skipped; a stage whose folder changed since
(edited by hand) or whose config or input changed is rerun, and so is everything after it. Stages write
through `stage_output`, so an interrupted stage leaves nothing behind and the next run resumes there.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trt_edge.artifacts import StageDescriptor, check_descriptors
from trt_edge.config import RunConfig
from trt_edge.distill import stage as distill_stage
from trt_edge.engine import stage as build_stage
from trt_edge.errors import GateError, TrtEdgeError
from trt_edge.export import stage as export_stage
from trt_edge.files import atomic_write_json, sha256_json, sha256_tree
from trt_edge.guard import writes_output
from trt_edge.log import get_logger, report_repeats
from trt_edge.pipeline import compare, report
from trt_edge.pipeline.config import STAGES, PipelineConfig
from trt_edge.pipeline.gates import FINAL_INT8_STAGES, overall_verdict, pairs, stage_verdict
from trt_edge.preflight import preflight
from trt_edge.quantize import qat_stage
from trt_edge.quantize import stage as calibrate_stage
from trt_edge.sparsity import stage as prune_stage
from trt_edge.sparsity import width_stage
from trt_edge.stage import STAGE_FILE, read_stage
from trt_edge.tasks.spec import get_task

log = get_logger("pipeline")
RUN_FILE = "pipeline.json"

# Every stage, in pipeline order, as its own module declares it: the order, the parents, the config
# sections hashed and the artifacts passed on all come from these descriptors.
DESCRIPTORS: tuple[StageDescriptor, ...] = (
    distill_stage.STAGE, width_stage.STAGE, prune_stage.STAGE, export_stage.STAGE, export_stage.TEACHER_STAGE,
    calibrate_stage.STAGE, qat_stage.STAGE, build_stage.STAGE, compare.STAGE, report.STAGE,
)
SPECS: dict[str, StageDescriptor] = {d.name: d for d in DESCRIPTORS}
check_descriptors(DESCRIPTORS)
if tuple(SPECS) != STAGES:  # pipeline.config keeps the documented order for the config layer
    raise RuntimeError(f"stage descriptors {tuple(SPECS)} differ from pipeline.config.STAGES {STAGES}")


def parent_of(name: str, stages: list[str], run_dir: Path) -> Path | None:
    """The folder a stage reads: the first configured stage its descriptor `reads`, the whole run folder
    for a stage that `reads_run`, None for the first stage."""
    spec = SPECS[name]
    if spec.reads_run:
        return run_dir  # profile and report read the whole run
    if not spec.reads:
        return None
    for candidate in spec.reads:
        if candidate in stages:
            return run_dir / candidate
    raise TrtEdgeError(f"stage {name!r} needs one of {', '.join(spec.reads)} in pipeline.stages")


@dataclass
class StageResult:
    name: str
    status: str  # "ran" | "skipped"
    seconds: float
    metrics: dict[str, Any]


def _gate(name: str, metrics: dict[str, Any], cfg: PipelineConfig, metric: str = "accuracy") -> dict[str, Any] | None:
    """Judge stage `name` against `pipeline.gates`; raise `GateError` when it fails, else the verdict.
    `metric` is the task's (`TaskSpec.metric`): the record keys are `<model>_<metric>`."""
    keys = pairs(metric)
    if name not in keys or name not in cfg.gates:
        return None
    ref_key, new_key, what = keys[name]
    verdict = stage_verdict(name, metrics, cfg, metric)
    budget = cfg.gates[name]
    if verdict is None:  # a stage.json written before the paired tables: the plain rule
        drop = (float(metrics[ref_key]) - float(metrics[new_key])) * 100
        interval, status, passed = "", "", drop <= budget
    else:
        drop, passed = verdict.drop_points, verdict.passed
        lo, hi = verdict.interval_points
        interval, status = f", 95% CI [{lo:.2f}, {hi:.2f}], n={verdict.n}", f" ({verdict.status})"
        log.info("%s", verdict.line())
    if not passed:
        # A stage judged on continuous scores (a bootstrap verdict) may record its means only in the verdict.
        ref = metrics.get(ref_key, verdict.ref_accuracy if verdict is not None else None)
        new = metrics.get(new_key, verdict.new_accuracy if verdict is not None else None)
        raise GateError(
            f"accuracy gate failed at stage {name!r}: {what} lost {drop:.2f} points "
            f"({ref:.4f} -> {new:.4f}{interval}), budget {budget:.2f}{status}; "
            f"the run stopped here: raise pipeline.gates.{name} or change the {name} config",
            {"stage": name, ref_key: ref, new_key: new, "drop_points": round(drop, 3),
             "budget_points": budget, **({"interval_points": verdict.to_dict()["interval_points"],
                                          "n": verdict.n} if verdict is not None else {})},
        )
    return verdict.to_dict() if verdict is not None else None


def _load_run(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    if not path.is_file():
        return {}
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise TrtEdgeError(f"{path}: unreadable ({str(exc)[:200]}); remove it or use another --out") from exc
    return data if isinstance(data, dict) else {}


@writes_output("run_dir", run_folder=True)
def run_pipeline(config: RunConfig, run_dir: str | Path, *, start: str | None = None, stop: str | None = None,
                 force: bool = False) -> list[StageResult]:
    """Run the configured stages into `run_dir`; returns what ran and what was skipped."""
    cfg: PipelineConfig = config.section("pipeline")
    # Validate every section now: a typo in the last section should not cost a 10-minute first stage.
    for name in cfg.stages:
        for section in SPECS[name].sections:
            config.section(section)
    stages = list(cfg.stages)
    for name in stages:
        parent_of(name, stages, Path(run_dir))  # a stage without the stage it reads: refused now
    for bound, label in ((start, "--from"), (stop, "--to")):
        if bound is not None and bound not in stages:
            raise TrtEdgeError(f"{label} {bound!r} is not among the configured stages ({', '.join(stages)})")
    first = stages.index(start) if start else 0
    last = stages.index(stop) if stop else len(stages) - 1
    if first > last:
        raise TrtEdgeError(f"--from {start} comes after --to {stop}")
    # ... and what the stages will need from the data, the models and the build target (nothing written).
    preflight(config, stages)
    root = Path(run_dir)
    record = _load_run(root)
    name_now = config.raw.get("name")
    if record and name_now and record.get("name") and record["name"] != name_now and not force:
        raise TrtEdgeError(
            f"{root} holds a run of config {record['name']!r}, not {name_now!r}; use another --out, or --force "
            "to rerun every stage into it"
        )
    record.setdefault("stages", {})
    record.update({"name": name_now, "config_source": config.source, "config": config.to_dict()})
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(root)
    try:
        return _run_stages(config, cfg, root, record, stages, first, last, start, force)
    except BaseException:
        if created and not any(root.iterdir()):  # failed before any stage finished: leave no empty folder
            root.rmdir()
        raise
    finally:
        report_repeats("pipeline")  # a warning every stage raised again was shown once: say how often


def _run_stages(config: RunConfig, cfg: PipelineConfig, root: Path, record: dict[str, Any], stages: list[str],
                first: int, last: int, start: str | None, force: bool) -> list[StageResult]:
    results: list[StageResult] = []
    metric = get_task(config.section("task").type).metric
    defers = qat_follows(config, stages)
    deferred: float | None = None
    for index, name in enumerate(stages):
        spec = SPECS[name]
        stage_config = _calibrate_deferring(config) if defers and name == "calibrate" else config
        gates = cfg.replace(gates={**cfg.gates, "qat": deferred}) if (
            name == "qat" and deferred is not None and "qat" not in cfg.gates) else cfg
        folder = root / name
        parent = parent_of(name, stages, root)
        if index < first:
            if not (folder / STAGE_FILE).is_file():
                raise TrtEdgeError(f"--from {start}: stage {name!r} has no finished output in {root}; run it first")
            continue
        if index > last:
            break
        config_hash = sha256_json({s: stage_config.raw.get(s) for s in spec.sections})
        input_hash = _input_hash(name, parent, stages, root)
        previous = record["stages"].get(name, {})
        reason = _rerun_reason(folder, previous, config_hash, input_hash)
        if reason is None and not force:
            stage = read_stage(folder, None)
            log.info("%s: up to date, skipped", name)
            results.append(StageResult(name, "skipped", 0.0, stage.get("metrics", {})))
            verdict, deferred = _judge(name, stage.get("metrics", {}), gates, metric, defers, deferred)
            _record_gate(record, name, verdict, root)
            continue
        if reason and previous:
            log.info("%s: %s; running it", name, reason)
        log.info("== %s (stage %d of %d)", name, index + 1, len(stages))
        started = time.perf_counter()
        result = spec.call(stage_config, parent, folder)
        seconds = time.perf_counter() - started
        stage = read_stage(folder, None)
        record["stages"][name] = {"config_sha256": config_hash, "input_sha256": input_hash,
                                  "outputs_sha256": stage.get("outputs_sha256"), "seconds": round(seconds, 2),
                                  "finished": stage.get("finished")}
        atomic_write_json(root / RUN_FILE, record)
        results.append(StageResult(name, "ran", seconds, result.metrics))
        verdict, deferred = _judge(name, result.metrics, gates, metric, defers, deferred)
        _record_gate(record, name, verdict, root)
    _overall(results, cfg, root, metric)
    return results


def qat_follows(config: RunConfig, stages: list[str]) -> bool:
    """Whether a qat stage that may train follows calibrate: then PTQ missing its budget is QAT's cue, not
    the end of the run (the issue's "the gate decides")."""
    return "qat" in stages and "calibrate" in stages and config.section("qat").when != "never"


def _calibrate_deferring(config: RunConfig) -> RunConfig:
    """The run config with `calibrate.gate.fail` off: calibrate records a missed budget instead of raising,
    so its folder exists for the qat stage to start from."""
    raw = copy.deepcopy(config.raw)
    section = raw.setdefault("calibrate", {}) or {}
    raw["calibrate"] = section
    section["gate"] = {**(section.get("gate") or {}), "fail": False}
    return RunConfig(raw, source=config.source)


def _judge(name: str, metrics: dict[str, Any], cfg: PipelineConfig, metric: str, defers: bool,
           deferred: float | None) -> tuple[dict[str, Any] | None, float | None]:
    """The stage's pipeline gate; a failed calibrate gate, when QAT follows, is handed on: the qat stage's
    deployed model is then judged against the same budget (unless `pipeline.gates.qat` sets its own)."""
    try:
        return _gate(name, metrics, cfg, metric), deferred
    except GateError as exc:
        if not (defers and name == "calibrate"):
            raise
        log.warning("%s; the qat stage runs next and its deployed model is judged against the same budget",
                    str(exc).split("; the run stopped here")[0])
        return None, cfg.gates["calibrate"]


def _record_gate(record: dict[str, Any], name: str, verdict: dict[str, Any] | None, root: Path) -> None:
    """Keep the pipeline's verdict in pipeline.json (stage.json is the stage's own, hashed, record)."""
    if verdict is None:
        return
    record.setdefault("gates", {})[name] = verdict
    atomic_write_json(root / RUN_FILE, record)


def _remove_stale_partials(root: Path) -> None:
    """Temporary folders of a stage that was killed (SIGKILL, power loss) before it could clean up."""
    import shutil

    for stale in root.glob(".*.partial-*"):
        if stale.is_dir():
            log.info("removing %s, left by an interrupted stage", stale.name)
            shutil.rmtree(stale, ignore_errors=True)


def _input_hash(name: str, parent: Path | None, stages: list[str], root: Path) -> str:
    if parent is None:
        return ""
    if parent == root:  # profile/report read every earlier stage, its metrics included; qat the ones it names
        parts = {}
        covered = SPECS[name].reads
        for s in stages[: stages.index(name)]:
            if covered and s not in covered:
                continue
            if (root / s / STAGE_FILE).is_file():
                stage = read_stage(root / s, None)
                parts[s] = [stage.get("outputs_sha256"), sha256_json(stage.get("metrics", {}))]
        return sha256_json(parts)
    return str(read_stage(parent, None).get("outputs_sha256"))


def _rerun_reason(folder: Path, previous: dict[str, Any], config_hash: str, input_hash: str) -> str | None:
    if not previous or not (folder / STAGE_FILE).is_file():
        return "not run yet"
    if previous.get("config_sha256") != config_hash:
        return "its config changed"
    if previous.get("input_sha256") != input_hash:
        return "its input changed"
    try:
        stage = read_stage(folder, None)
    except TrtEdgeError:
        return "its stage.json is unreadable"
    current = sha256_tree(folder)
    if stage.get("outputs_sha256") != current or previous.get("outputs_sha256") != current:
        return "its folder was edited by hand since it ran (hash mismatch)"
    return None


def _overall(results: list[StageResult], cfg: PipelineConfig, root: Path, metric: str = "accuracy") -> None:
    """`pipeline.overall_budget`: the final INT8 student against the teacher. A task whose teacher has
    no figure of its own on the metric (an embedding is judged on the teacher's neighbours, the
    teacher scoring 1.0) is judged from the paired verdict alone."""
    if cfg.overall_budget is None:
        return
    metrics = {r.name: r.metrics for r in results}
    keys = pairs(metric)
    ref_key, new_key = keys["distill"][0], keys["calibrate"][1]
    teacher = metrics.get("distill", {}).get(ref_key)
    stage = next((s for s in FINAL_INT8_STAGES if s in metrics), "calibrate")  # qat's deployed INT8, else PTQ's
    final = metrics.get(stage, {}).get(new_key)
    verdict = overall_verdict(root, cfg)
    if teacher is None and verdict is not None and stage in metrics:
        # the stages record no teacher figure (each child against its own parent): the paired verdict's
        teacher, final = verdict.ref_accuracy, verdict.new_accuracy
        new_key += "_vs_teacher"  # calibrate's own int8 figure is against its fp32 input
    if teacher is None or final is None:
        return
    drop = (teacher - final) * 100
    interval = ""
    if verdict is not None:
        lo, hi = verdict.interval_points
        interval = f", 95% CI [{lo:.2f}, {hi:.2f}], n={verdict.n}; {verdict.status}"
    if drop > cfg.overall_budget:
        raise GateError(f"overall accuracy gate failed: the INT8 student is {drop:.2f} points below the teacher "
                        f"(budget {cfg.overall_budget:.2f}{interval})",
                        {ref_key: teacher, new_key: final})


def summary_rows(results: list[StageResult], metric: str = "accuracy") -> list[dict[str, Any]]:
    """One row per stage for the CLI: status, seconds and the stage's figures on the task's `metric`."""
    keys = (f"student_{metric}", f"width_{metric}", f"sparse_{metric}", "argmax_agreement", f"int8_{metric}",
            "deployed", f"teacher_{metric}")
    rows = []
    for r in results:
        shown = {k: r.metrics[k] for k in keys if k in r.metrics}
        rows.append({"stage": r.name, "status": r.status, "seconds": round(r.seconds, 1), **shown})
    return rows
