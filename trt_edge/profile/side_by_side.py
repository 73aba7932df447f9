"""Side-by-side ONNX Runtime latency of several models, interleaved, with ratios against the first.

The pipeline's comparison stage (`pipeline.compare`) and the hidden-width search (`sparsity.width_stage`,
which times candidate widths against the teacher) both measure this way. It lives with the profiling
code it is built from (the harness's feeds and statistics), below both of its users.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trt_edge.tasks.spec import describe_feed

MIN_CHUNK_RUNS = 5


def compare_latency(models: list[tuple[str, Path]], tokenizer: Any, texts: list[str], shapes: list[list[int]],
                    rounds: int, runs: int, progress: bool = True,
                    chunk_ms: float = float("inf")) -> list[dict[str, Any]]:
    """Median/p90 latency of every model at every shape, interleaved; ratios against the first model.

    Each model's chunk is re-warmed (`trt_edge.timing.rewarm`), then timed for `runs` runs or until
    `chunk_ms` have passed (at least `MIN_CHUNK_RUNS`)."""
    from tqdm.auto import tqdm

    from trt_edge.profile.harness import TextSource, latency_stats, make_feed
    from trt_edge.runtime.ort import OnnxRuntimeRunner
    from trt_edge.timing import interleaved

    runners = [OnnxRuntimeRunner(path).activate() for _, path in models]
    source = TextSource(tokenizer, texts)
    results = []
    try:
        total = len(shapes) * rounds * len(models)
        bar = tqdm(total=total, desc="side-by-side latency", unit="chunk", disable=not progress, leave=False)
        for batch, seq in shapes:
            feeds = [make_feed(r.inputs(), batch, seq, source) for r in runners]
            calls = [lambda r=r, f=f: r.infer(f, check=False) for r, f in zip(runners, feeds, strict=True)]
            samples = interleaved(calls, rounds=rounds, runs=runs,
                                  max_ms=None if chunk_ms == float("inf") else chunk_ms,
                                  min_runs=MIN_CHUNK_RUNS, on_chunk=lambda: bar.update(1))
            stats = {label: latency_stats(s) for (label, _), s in zip(models, samples, strict=True)}
            ref = stats[models[0][0]]["median"]
            results.append({
                "batch": batch, "seq": seq, "shape": describe_feed(feeds[0], batch, seq), "latency_ms": stats,
                "speedup_vs_first": {label: round(ref / st["median"], 3) for label, st in stats.items()},
            })
        bar.close()
    finally:
        for runner in runners:
            runner.deactivate()
    return results
