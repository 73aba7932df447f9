"""The benchmark harness: warm-up, a fixed count or a duration, percentiles, sweeps, per-layer times.

It depends only on the runner interface (`trt_edge.runtime.base.Runner`), so the same loop times ONNX
Runtime on a laptop and TensorRT on a Jetson. Host time is wall time around `infer`; device time is
read from the runner's `last_device_ms` where a backend measures it (TensorRT with CUDA events).
Per-layer times come from a separate profiling run, as trtexec's `--separateProfileRun` does, because
a profiler attached to the timed loop slows it: ONNX Runtime's JSON profiler (`enable_profiling`) or,
for a runner that offers it, a `layer_times(feed, runs)` hook (TensorRT's `IProfiler`).

Inputs for the sweeps are real tokenized texts of the task padded or truncated to the sweep length, or,
for pure latency, random token ids, labelled as such in the profile.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.log import get_logger
from trt_edge.runtime.base import Runner, TensorMeta
from trt_edge.timing import time_loop

log = get_logger("profile")
PERCENTILES = (90, 95, 99)


def latency_stats(samples_ms: Sequence[float]) -> dict[str, float]:
    """count, min, mean, median, p90, p95, p99, max and std of a list of times in ms."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no samples")
    out = {"count": int(a.size), "min": float(a.min()), "mean": float(a.mean()), "median": float(np.median(a))}
    for p in PERCENTILES:
        out[f"p{p}"] = float(np.percentile(a, p))
    out["max"] = float(a.max())
    out["std"] = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return {k: (v if k == "count" else round(v, 5)) for k, v in out.items()}


# ------------------------------------------------------------------------------------------------
# Inputs


@dataclass
class TextSource:
    """Where real inputs come from: a tokenizer and the task's texts."""

    tokenizer: Any
    texts: list[str]
    name: str = "texts"


def make_feed(inputs: Sequence[TensorMeta], batch: int, seq: int, texts: TextSource | None = None,
              seed: int = 0, offset: int = 0) -> dict[str, np.ndarray]:
    """One feed of shape (batch, seq) for every input.

    With `texts`, rows are real texts (from `offset`, cycling) tokenized, truncated and padded to `seq`.
    Without, token ids are random in [1000, 20000) with a full attention mask: fine for latency, useless
    for accuracy (the profile labels them).
    """
    feed: dict[str, np.ndarray] = {}
    # images, audio (no texts given): the model's fixed C, H, W (samples, mel x frames), random values
    no_texts = texts is None or not texts.texts  # the pipeline's comparison passes an empty source for them
    if any(len(meta.shape) > 2 for meta in inputs) or (no_texts and not sequence_inputs(inputs)):
        rng = np.random.default_rng(seed)
        for meta in inputs:
            fixed = [d if isinstance(d, int) and d > 0 else 1 for d in meta.shape[1:]]
            feed[meta.name] = rng.standard_normal((batch, *fixed)).astype(meta.dtype)
        return feed
    if texts is not None:
        rows = [texts.texts[(offset + i) % len(texts.texts)] for i in range(batch)]
        enc = texts.tokenizer(rows, truncation=True, max_length=seq, padding="max_length", return_tensors="np")
        for meta in inputs:
            if meta.name not in enc:
                raise TrtEdgeError(f"the tokenizer gives no {meta.name!r} input that the model expects "
                                   f"(it gives {', '.join(enc.keys())})")
            feed[meta.name] = np.asarray(enc[meta.name]).astype(meta.dtype)
        return feed
    from trt_edge.tasks.spec import task_for_inputs, task_spec

    try:
        spec = task_for_inputs([meta.name for meta in inputs], "the timed model")
    except TrtEdgeError:  # inputs of no known task: the default task's names say which is which
        spec = task_spec(None)
    rng = np.random.default_rng(seed)
    for meta in inputs:
        arr: np.ndarray
        if meta.name == spec.inputs[0].name:  # the token ids
            arr = rng.integers(1000, 20000, size=(batch, seq))
        elif meta.name == spec.length_input:  # the mask: every position real
            arr = np.ones((batch, seq))
        else:
            arr = np.zeros((batch, seq))
        feed[meta.name] = arr.astype(meta.dtype)
    return feed


def sequence_inputs(inputs: Sequence[TensorMeta]) -> bool:
    """Whether the inputs are [batch, sequence] tokens, not fixed-size examples (pixels [batch, C, H, W], audio
    [batch, samples] or [batch, frames, mel]): the task whose inputs they are says (its sequence axis); inputs of
    no known task are tokens when every one has rank 2 or less."""
    from trt_edge.tasks.spec import task_for_inputs

    if any(len(meta.shape) > 2 for meta in inputs):
        return False
    try:
        return task_for_inputs([meta.name for meta in inputs], "the timed model").has_sequence_axis
    except TrtEdgeError:
        return True


def check_shape(runner: Runner, batch: int, seq: int) -> None:
    """Refuse a sweep point outside what the model accepts: fixed axes, and an engine's optimization
    profile when the runner tells it (`profile_shapes(name) -> (min, opt, max)`, the TensorRT runner)."""
    problems = []
    tokens = sequence_inputs(runner.inputs())
    for meta in runner.inputs():
        # A [batch, sequence] token input takes both; a pixel or audio input only the batch.
        want = (batch, seq)[: len(meta.shape)] if tokens else (batch,)
        for axis, (dim, value) in enumerate(zip(meta.shape, want, strict=False)):
            if isinstance(dim, int) and dim >= 0 and dim != value:
                problems.append(f"{meta.name} axis {axis} is fixed at {dim}")
        shapes = getattr(runner, "profile_shapes", None)
        if callable(shapes):
            try:
                lo, _, hi = shapes(meta.name)
            except Exception:  # a runner without profiles for this tensor: nothing to check
                continue
            for axis, value in enumerate(want):
                if axis < len(lo) and not lo[axis] <= value <= hi[axis]:
                    problems.append(f"{meta.name} axis {axis}: {value} outside the engine's profile "
                                    f"[{lo[axis]}, {hi[axis]}]")
    if problems:
        raise TrtEdgeError(f"sweep shape batch={batch} seq={seq} does not fit the model: " + "; ".join(problems)
                           + "; choose --batch/--seq inside the range or rebuild the engine with a wider profile")


# ------------------------------------------------------------------------------------------------
# Timing


@dataclass
class BenchResult:
    """One sweep point: the times of every timed run, their statistics and the timed window."""

    batch: int
    seq: int
    samples_ms: list[float]
    window: tuple[float, float]  # perf_counter seconds: the shaded window of the power plot
    latency_ms: dict[str, float]
    device_ms: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.window[1] - self.window[0]

    @property
    def inferences(self) -> int:
        return len(self.samples_ms) * self.batch

    def to_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "seq": self.seq, "iterations": len(self.samples_ms),
                "duration_s": round(self.duration_s, 4), "latency_ms": self.latency_ms,
                "device_ms": self.device_ms,
                "throughput_ips": round(self.inferences / self.duration_s, 3) if self.duration_s > 0 else None,
                "batches_per_s": round(len(self.samples_ms) / self.duration_s, 3) if self.duration_s > 0 else None,
                "samples_ms": [round(s, 5) for s in self.samples_ms], **self.extra}


def benchmark(runner: Runner, feed: Mapping[str, np.ndarray], *, warmup: int = 10, iterations: int | None = None,
              duration_s: float | None = None, min_duration_s: float = 0.0, progress: bool = False,
              label: str = "", on_window: Callable[[float, float], None] | None = None) -> BenchResult:
    """Time `runner` on one feed: `warmup` untimed runs, then `iterations` runs or `duration_s` seconds
    (and at least `min_duration_s`, so a power trace has enough samples inside the window).

    The feed is checked once, then the loop calls `infer(check=False)` so checking is not timed.
    """
    problems = runner.check_feed(feed)
    if problems:
        raise TrtEdgeError(f"{runner.name}: bad inputs: " + "; ".join(problems))
    for _ in range(warmup):
        runner.infer(feed, check=False)
    if iterations is None and duration_s is None:
        iterations = 100
    bar = _bar(progress, iterations, duration_s, label)
    device: list[float] = []
    clock = time.perf_counter
    start = clock()

    def after(_: float, elapsed_s: float) -> None:
        dev = getattr(runner, "last_device_ms", None)
        if isinstance(dev, (int, float)):
            device.append(float(dev))
        if bar is not None:
            bar.update(1 if iterations is not None else 0)
            if iterations is None:
                bar.n = round(elapsed_s, 1)
                bar.refresh()

    try:
        samples = time_loop(lambda: runner.infer(feed, check=False), runs=iterations,
                            max_ms=None if duration_s is None else duration_s * 1000.0,
                            min_ms=min_duration_s * 1000.0, on_run=after)
    finally:
        if bar is not None:
            bar.close()
    end = clock()
    if on_window is not None:
        on_window(start, end)
    batch, seq = _shape_of(feed)
    return BenchResult(batch=batch, seq=seq, samples_ms=samples, window=(start, end),
                       latency_ms=latency_stats(samples),
                       device_ms=latency_stats(device) if len(device) == len(samples) and device else None)


def _shape_of(feed: Mapping[str, np.ndarray]) -> tuple[int, int]:
    from trt_edge.tasks.spec import task_for_inputs

    first = np.asarray(next(iter(feed.values())))
    # seq is 0 for inputs without a sequence axis (pixels [batch, C, H, W], audio [batch, samples])
    try:
        sequence = first.ndim == 2 and task_for_inputs(list(feed), "the timed model").has_sequence_axis
    except TrtEdgeError:  # inputs of no known task: a rank-2 input is tokens
        sequence = first.ndim == 2
    return (int(first.shape[0]) if first.ndim > 0 else 1,
            int(first.shape[1]) if sequence else (0 if first.ndim >= 2 else 1))


def _bar(progress: bool, iterations: int | None, duration_s: float | None, label: str) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    if iterations is not None:
        return tqdm(total=iterations, desc=label or "timing", unit="run", leave=False)
    return tqdm(total=duration_s, desc=label or "timing", unit="s", leave=False,
                bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s")


# ------------------------------------------------------------------------------------------------
# Per-layer times


def parse_ort_profile(path: str | os.PathLike[str], runs: int | None = None) -> dict[str, Any]:
    """ONNX Runtime's profiler JSON -> per-node mean time per inference, slowest first.

    Node events (`cat == "Node"`, names ending in `_kernel_time`) carry `dur` in microseconds and the op
    type in `args.op_name`. The first run of the session is left out when there are several (it pays
    for allocation), like any warm-up.
    """
    try:
        events = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise TrtEdgeError(f"{path}: not a readable ONNX Runtime profile ({exc})") from exc
    if isinstance(events, dict):
        events = events.get("traceEvents", [])
    per_node: dict[str, list[float]] = {}
    ops: dict[str, str] = {}
    model_runs = [e for e in events if isinstance(e, dict) and e.get("cat") == "Session"
                  and e.get("name") == "model_run"]
    skip_before = None
    if len(model_runs) > 1:
        first = min(model_runs, key=lambda e: e.get("ts", 0))
        skip_before = first.get("ts", 0) + first.get("dur", 0)
    for e in events:
        if not isinstance(e, dict) or e.get("cat") != "Node":
            continue
        name = str(e.get("name", ""))
        if not name.endswith("_kernel_time"):
            continue
        if skip_before is not None and e.get("ts", 0) < skip_before:
            continue
        node = name[: -len("_kernel_time")]
        per_node.setdefault(node, []).append(float(e.get("dur", 0)) / 1e3)
        args = e.get("args") or {}
        if isinstance(args, dict) and "op_name" in args:
            ops[node] = str(args["op_name"])
    counted = max(1, len(model_runs) - (1 if skip_before is not None else 0)) if model_runs else (runs or 1)
    layers = []
    for node, times in per_node.items():
        layers.append({"name": node, "op": ops.get(node), "mean_ms": sum(times) / counted,
                       "median_ms": float(np.median(times)), "calls": len(times)})
    return _finish_layers(layers, "onnxruntime profiler", counted)


def _finish_layers(layers: list[dict[str, Any]], source: str, runs: int) -> dict[str, Any]:
    layers.sort(key=lambda x: -x["mean_ms"])
    total = sum(x["mean_ms"] for x in layers)
    for x in layers:
        x["percent"] = round(100 * x["mean_ms"] / total, 3) if total else 0.0
        x["mean_ms"] = round(x["mean_ms"], 5)
        if x.get("median_ms") is not None:
            x["median_ms"] = round(x["median_ms"], 5)
    by_op: dict[str, float] = {}
    for x in layers:
        by_op[x.get("op") or "?"] = by_op.get(x.get("op") or "?", 0.0) + x["mean_ms"]
    return {"source": source, "runs": runs, "total_ms": round(total, 5), "layers": layers,
            "by_op_ms": {k: round(v, 5) for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])}}


def ort_layer_times(onnx_path: str | os.PathLike[str], feed: Mapping[str, np.ndarray], runs: int = 20,
                    providers: Sequence[str] | None = None, intra_op_threads: int | None = None,
                    keep_profile: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Per-node times of an ONNX model through ONNX Runtime's profiler, in a session of its own.

    The runner writes its profile next to the model; a read-only model folder gets a temporary copy
    link instead. `keep_profile` saves the raw JSON (viewable in chrome://tracing).
    """
    from trt_edge.runtime.ort import OnnxRuntimeRunner

    src = Path(onnx_path)
    with tempfile.TemporaryDirectory(prefix="trt-edge-ort-profile-") as tmp:
        model = src
        if not os.access(src.parent, os.W_OK):
            model = Path(tmp) / src.name
            try:
                os.symlink(src.resolve(), model)
            except OSError:
                shutil.copy2(src, model)
            for extra in src.parent.glob(src.name + ".data"):
                os.symlink(extra.resolve(), Path(tmp) / extra.name)
        runner = OnnxRuntimeRunner(model, providers=providers, intra_op_threads=intra_op_threads,
                                   enable_profiling=True)
        with runner:
            for _ in range(runs + 1):
                runner.infer(feed)
        if runner.profile_file is None or not runner.profile_file.is_file():
            raise TrtEdgeError("onnxruntime wrote no profile file")
        try:
            result = parse_ort_profile(runner.profile_file, runs)
            if keep_profile:
                shutil.copyfile(runner.profile_file, keep_profile)
        finally:
            runner.profile_file.unlink(missing_ok=True)
    return result


def runner_layer_times(runner: Runner, feed: Mapping[str, np.ndarray], runs: int = 20) -> dict[str, Any] | None:
    """Per-layer times from a runner's own `layer_times(feed, runs) -> {layer: [ms, ...]}` hook (the
    TensorRT runner's `IProfiler`), or None when the runner has no such hook."""
    hook = getattr(runner, "layer_times", None)
    if not callable(hook):
        return None
    raw = hook(feed, runs)
    layers = [{"name": str(name), "op": None, "mean_ms": float(np.mean(ts)), "median_ms": float(np.median(ts)),
               "calls": len(ts)} for name, ts in dict(raw).items() if len(ts)]
    return _finish_layers(layers, f"{runner.name} layer profiler", runs)


def seeded_order(n: int, seed: int) -> list[int]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order
