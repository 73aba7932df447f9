"""The profile stage: time a model file over a batch x sequence sweep, with power on a Jetson.

`run(config, target, out)` takes an ONNX file (ONNX Runtime), a TensorRT plan (the TensorRT runner), or
a stage folder whose `stage.json` names a `plan` or `onnx` artifact, and writes `profile.json` (every
figure and the environment), `profile.md`/`profile.html` with plots, and `stage.json` with artifacts
`profile` and `report`. Each sweep point is warmed up again before it is timed and, with power on, gets
its own idle baseline measured just before it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from trt_edge.artifacts import ONNX, PLAN, PROFILE
from trt_edge.config import RunConfig
from trt_edge.errors import TrtEdgeError
from trt_edge.files import atomic_write_json, sha256_file
from trt_edge.log import get_logger
from trt_edge.profile import harness
from trt_edge.profile.config import ProfileConfig
from trt_edge.runtime.base import Runner
from trt_edge.stage import StageRecord, read_stage, stage_output
from trt_edge.tasks.adapter import task_adapter
from trt_edge.tasks.spec import describe_feed, recorded_stage, task_max_length

log = get_logger("profile")
PROFILE_SCHEMA = 1
PLAN_SUFFIXES = (".plan", ".engine", ".trt")


def resolve_target(target: str | Path) -> tuple[str, Path, Path | None]:
    """(kind, file, stage folder or None) for an ONNX file, a plan, or a stage folder."""
    p = Path(target)
    if not p.exists():
        raise TrtEdgeError(f"{p}: no such file or folder (give an ONNX file, a TensorRT plan or a stage folder)")
    if p.is_dir():
        if (p / "stage.json").is_file():
            artifacts = read_stage(p)["artifacts"]
            for role, kind in ((PLAN, "plan"), (ONNX, "onnx")):
                if role in artifacts and (p / artifacts[role]).is_file():
                    return kind, p / artifacts[role], p
            raise TrtEdgeError(f"{p}: its stage.json names no plan or onnx artifact (it has: {', '.join(artifacts)})")
        if (p / "model.onnx").is_file():
            return "onnx", p / "model.onnx", None
        raise TrtEdgeError(f"{p}: a folder without stage.json or model.onnx")
    if p.suffix == ".onnx":
        return "onnx", p, None
    if p.suffix in PLAN_SUFFIXES:
        return "plan", p, None
    raise TrtEdgeError(f"{p}: unknown model file type {p.suffix!r}; expected .onnx or {', '.join(PLAN_SUFFIXES)}")


def make_runner(kind: str, path: Path, cfg: ProfileConfig) -> Runner:
    if kind == "onnx":
        from trt_edge.runtime.ort import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, providers=cfg.providers, intra_op_threads=cfg.intra_op_threads)
    try:
        from trt_edge.runtime.tensorrt import TensorRTRunner
    except ImportError as exc:
        raise TrtEdgeError("this trt-edge has no TensorRT runner (trt_edge.runtime.tensorrt); profile the ONNX "
                           "file instead, or run on a machine with TensorRT") from exc
    runner: Runner = TensorRTRunner(path, cuda_graph=cfg.cuda_graph)
    return runner


def text_source(config: RunConfig, cfg: ProfileConfig, model_file: Path, folder: Path | None) -> tuple[
        harness.TextSource | None, dict[str, Any]]:
    """Real texts of the task when the config has a task and a tokenizer is found, else random ids."""
    if cfg.inputs == "random":
        return None, {"kind": "random", "description": "random token ids (latency only: never for accuracy)"}
    if "task" in config.raw and not task_adapter(config.section("task").type).text_examples:
        # Latency does not depend on pixel values: the sweep feeds random pixels at the model's size.
        info: dict[str, Any] = {"kind": "random",
                                "description": "random pixels at the model's input size (latency only)"}
        seconds = _example_seconds(config, cfg, model_file)
        if seconds:  # audio: the throughput is clips/s, and a real-time factor follows from it
            info["description"] = "random values at the model's input size (latency only)"
            info["example_seconds"] = seconds
        return None, info
    from trt_edge.tasks.spec import preprocessor_dir

    has_task = "task" in config.raw
    tok_dir: Path | None
    try:
        tok_dir = preprocessor_dir(model_file, cfg.tokenizer)
    except TrtEdgeError:
        if cfg.tokenizer:
            raise
        tok_dir = None
    why = None
    if not has_task:
        why = "no task section in the config (give --config with a task for real texts)"
    elif tok_dir is None:
        why = "no preprocessor beside the model (export carries it; or set profile.tokenizer)"
    if why:
        if cfg.inputs == "texts":
            raise TrtEdgeError(f"profile.inputs=texts, but {why}")
        return None, {"kind": "random", "description": f"random token ids (latency only): {why}"}
    from trt_edge.guard import load_tokenizer
    from trt_edge.tasks.data import load_data

    task = config.section("task")
    tokenizer = load_tokenizer(tok_dir)  # type: ignore[arg-type]  # None was refused above
    texts = load_data(task.data).split(cfg.split).texts
    if not texts:
        raise TrtEdgeError(f"the {cfg.split} split of {task.data.source} is empty")
    order = harness.seeded_order(len(texts), cfg.seed)
    texts = [texts[i] for i in order]
    return harness.TextSource(tokenizer, texts), {
        "kind": "texts", "tokenizer": str(tok_dir), "source": task.data.source, "split": cfg.split,
        "texts": len(texts),
        "description": f"real {cfg.split} texts of {task.data.source}, tokenized and padded/truncated to each length"}


def _example_seconds(config: RunConfig, cfg: ProfileConfig, model_file: Path) -> float | None:
    """The seconds of signal one example holds (audio: from the extractor beside the model), None when the task's
    examples are not signals or no preprocessor is found."""
    from trt_edge.tasks.spec import preprocessor_dir

    adapter = task_adapter(config.section("task").type)
    try:
        return adapter.example_seconds(adapter.spec.preprocessor.load(preprocessor_dir(model_file, cfg.tokenizer)))
    except TrtEdgeError:
        return None


def run(config: RunConfig, target: str | Path, out: str | Path) -> StageRecord:
    """Profile `target` (ONNX file, plan or stage folder) into `out`; see the module docstring."""
    from trt_edge.profile import jetson_env
    from trt_edge.profile.energy import energy_per_inference
    from trt_edge.profile.report import write_reports
    from trt_edge.profile.tegrastats import start_sampler

    cfg: ProfileConfig = config.section("profile")
    kind, model_file, folder = resolve_target(target)
    seqs = list(cfg.seq) if cfg.seq else [task_max_length(config, recorded_stage(model_file))]
    texts, inputs_info = text_source(config, cfg, model_file, folder)
    env = jetson_env.collect()
    record = StageRecord(stage="profile", config={"profile": cfg.to_dict(), "task": config.raw.get("task")},
                         inputs={str(model_file): sha256_file(model_file)})
    sampler, power_note = start_sampler(cfg.power.source, cfg.power.tegrastats, cfg.power.interval_ms,
                                        cfg.power.ina3221_root, cfg.power.ina3221_interval_ms)
    power: dict[str, Any] = {"available": sampler is not None, "note": power_note}
    if sampler is None and cfg.power.source != "off":
        log.warning("no power measured: %s", power_note)
    runs: list[dict[str, Any]] = []
    runner = make_runner(kind, model_file, cfg)
    layers: dict[str, Any] | None = None
    layers_note = None
    first_feed = None
    try:
        with runner:
            model_info = {"path": str(model_file), "kind": kind, "backend": runner.name,
                          "bytes": model_file.stat().st_size,
                          "providers": list(getattr(runner, "providers", []) or []) or None,
                          # what the model's metadata asked ONNX Runtime to switch off (the CPU artifact)
                          "disabled_optimizers": list(getattr(runner, "disabled_optimizers", []) or []) or None,
                          "inputs": [{"name": m.name, "shape": list(m.shape), "dtype": str(m.dtype)}
                                     for m in runner.inputs()]}
            for batch in cfg.batch:
                for seq in seqs:
                    harness.check_shape(runner, batch, seq)
                    feed = harness.make_feed(runner.inputs(), batch, seq, texts, cfg.seed)
                    first_feed = first_feed or feed
                    shape = describe_feed(feed, batch, seq)
                    idle = None
                    if sampler is not None and cfg.power.idle_s > 0:
                        t_idle = time.perf_counter()
                        time.sleep(cfg.power.idle_s)
                        idle = (t_idle, time.perf_counter())
                    try:
                        result = harness.benchmark(
                            runner, feed, warmup=cfg.warmup, iterations=cfg.iterations, duration_s=cfg.duration_s,
                            min_duration_s=cfg.power.min_duration_s if sampler is not None else 0.0,
                            progress=cfg.progress, label=shape)
                    except TrtEdgeError as exc:
                        raise TrtEdgeError(f"batch={batch} seq={seq}: {exc}") from exc
                    row = result.to_dict()
                    row["window"] = list(result.window)
                    if idle:
                        row["idle_window"] = list(idle)
                    if sampler is not None:
                        time.sleep(min(0.5, 2 * cfg.power.interval_ms / 1e3))  # let the last samples arrive
                        trace = sampler.snapshot() if hasattr(sampler, "snapshot") else sampler.trace
                        if trace.rails:
                            row["energy"] = energy_per_inference(trace, result.window, result.inferences, idle,
                                                                 cfg.power.rails).to_dict()
                    runs.append(row)
                    log.info("%s: median %.3f ms, p99 %.3f ms", shape, result.latency_ms["median"],
                             result.latency_ms["p99"])
            if cfg.layers and kind == "plan" and first_feed is not None:
                layers = harness.runner_layer_times(runner, first_feed, cfg.layer_runs)
                if layers is None:
                    layers_note = "the TensorRT runner offers no layer_times() hook"
    finally:
        if sampler is not None:
            trace = sampler.stop()
            power.update({"source": trace.source, "trace": trace.to_dict()})
            if trace.unit_missing:
                power["note"] += "; rails printed without a unit (JetPack 4): read as mW"
    if sampler is not None:
        energies = [r["energy"] for r in runs if r.get("energy")]
        if energies:
            power["rails"] = energies[0]["rails"]
            power["rule"] = energies[0]["rule"]
            power["idle_window"] = runs[0].get("idle_window")
        else:
            power["available"] = False
            power["note"] += "; no rail samples arrived during the run"
    if cfg.layers and kind == "onnx" and first_feed is not None:
        layers = harness.ort_layer_times(model_file, first_feed, cfg.layer_runs, cfg.providers, cfg.intra_op_threads)
    if layers is not None:
        layers.update(batch=cfg.batch[0], seq=seqs[0])
    roof = None
    roof_note = None
    if cfg.roofline:
        if kind == "onnx":
            from trt_edge.profile.roofline import model_costs, roofline

            roof = roofline(model_costs(model_file, cfg.batch[0], seqs[0]), sparse=True)
        else:
            roof_note = "the roofline needs the ONNX model: run `trt-edge profile --onnx` on the plan's ONNX"
    profile: dict[str, Any] = {
        "schema": PROFILE_SCHEMA, "source": "trt-edge", "model": model_info, "inputs": inputs_info,
        "environment": env, "runs": runs, "layers": layers, "layers_note": layers_note, "power": power,
        "roofline": roof, "roofline_note": roof_note,
    }
    with stage_output(out) as tmp:
        atomic_write_json(tmp / "profile.json", profile)
        artifacts = {PROFILE: "profile.json", **write_reports(profile, tmp, cfg.plots, cfg.top_layers)}
        record.artifacts = artifacts
        record.metrics = summary_metrics(profile)
        record.write(tmp)
    return record


def summary_metrics(profile: dict[str, Any]) -> dict[str, Any]:
    """The figures of stage.json: per sweep point median/p90/p99, throughput, energy; power status."""
    points = []
    seconds = (profile.get("inputs") or {}).get("example_seconds")
    for r in profile.get("runs") or []:
        s = r.get("latency_ms") or {}
        points.append({"batch": r.get("batch"), "seq": r.get("seq"), "median_ms": s.get("median"),
                       "p90_ms": s.get("p90"), "p99_ms": s.get("p99"),
                       "throughput_ips": r.get("throughput_ips", r.get("throughput_qps")),
                       "mj_per_inference": (r.get("energy") or {}).get("mj_per_inference")})
        if seconds and points[-1]["throughput_ips"]:  # audio seconds per compute second
            points[-1]["real_time_factor"] = round(float(points[-1]["throughput_ips"]) * float(seconds), 1)
    first = points[0] if points else {}
    layers = profile.get("layers") or {}
    return {"median_ms": first.get("median_ms"), "p90_ms": first.get("p90_ms"), "p99_ms": first.get("p99_ms"),
            "throughput_ips": first.get("throughput_ips"), "mj_per_inference": first.get("mj_per_inference"),
            **({"real_time_factor": first["real_time_factor"]} if "real_time_factor" in first else {}),
            "points": points, "power": bool((profile.get("power") or {}).get("available")),
            "inputs": (profile.get("inputs") or {}).get("kind"),
            "top_layer": (layers.get("layers") or [{}])[0].get("name") if layers.get("layers") else None}


def run_trtexec(log_file: str | None, out: str | Path, export_profile: str | None = None,
                export_times: str | None = None, layer_info: str | None = None, plots: bool = True) -> StageRecord:
    """Turn trtexec's log and exported files into the same profile folder `run` writes."""
    from trt_edge.profile.report import write_reports
    from trt_edge.profile.trtexec_parse import profile_from_trtexec

    profile = profile_from_trtexec(log_file, export_profile, export_times, layer_info)
    profile["schema"] = PROFILE_SCHEMA
    profile["model"] = {"path": profile.get("command") or "trtexec", "backend": "tensorrt (trtexec)"}
    files = [f for f in (log_file, export_profile, export_times, layer_info) if f]
    record = StageRecord(stage="profile", config={"trtexec": profile["trtexec_files"]},
                         inputs={f: sha256_file(f) for f in files})
    with stage_output(out) as tmp:
        atomic_write_json(tmp / "profile.json", profile)
        record.artifacts = {PROFILE: "profile.json", **write_reports(profile, tmp, plots)}
        record.metrics = summary_metrics(profile)
        record.write(tmp)
    return record
