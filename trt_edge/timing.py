"""The kit's one timing routine (`time_loop`, `interleaved`) and the re-warm before each timed chunk.

Calibrate's candidate timing (`quantize.evaluate.latency_ms`), the pipeline comparison
(`profile.side_by_side.compare_latency`) and the profile harness (`profile.harness.benchmark`) all time
through here, so a change in how the kit measures happens in one place.

Timing several ONNX Runtime sessions in one process, round by round, is how the kit compares models on a
noisy machine (drift hits every model alike). Right after a switch, though, the previous session's pool
threads still spin and the caches hold its weights: on the 2-core build machine a 3 ms INT8 model timed
after a 10 ms one read 4 ms median / 8 ms p90 with 30 ms of re-warming, and 3.0 ms / 3.4 ms with 150 ms,
steady across repeats (benchmarks/RESULTS.md, 2026-11-24). Every interleaved loop re-warms through here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

REWARM_MS = 150.0


def rewarm(call: Callable[[], object], ms: float = REWARM_MS, min_runs: int = 2) -> int:
    """Run `call` untimed for at least `ms` milliseconds and `min_runs` times; return how many runs."""
    start, runs = time.perf_counter(), 0
    while runs < min_runs or (time.perf_counter() - start) * 1000.0 < ms:
        call()
        runs += 1
    return runs


def time_loop(call: Callable[[], object], *, runs: int | None = None, max_ms: float | None = None,
              min_runs: int = 1, min_ms: float = 0.0,
              on_run: Callable[[float, float], None] | None = None) -> list[float]:
    """The kit's one timed loop: milliseconds per `call` (perf_counter around the call only), until
    `runs` runs or `max_ms` milliseconds have passed, whichever comes first, but never fewer than
    `min_runs` runs or `min_ms` milliseconds. `on_run(sample_ms, elapsed_s)` follows every run (progress
    bars, device-side times). Neither limit given means 100 runs."""
    if runs is None and max_ms is None:
        runs = 100
    samples: list[float] = []
    clock = time.perf_counter
    start = clock()
    while True:
        t0 = clock()
        call()
        t1 = clock()
        samples.append((t1 - t0) * 1000.0)
        if on_run is not None:
            on_run(samples[-1], t1 - start)
        elapsed_ms = (t1 - start) * 1000.0
        if len(samples) < min_runs or elapsed_ms < min_ms:
            continue
        if runs is not None and len(samples) >= runs:
            break
        if max_ms is not None and elapsed_ms >= max_ms:
            break
    return samples


def interleaved(calls: Sequence[Callable[[], object]], *, rounds: int, runs: int, max_ms: float | None = None,
                min_runs: int = 1, rewarm_runs: int = 2,
                on_chunk: Callable[[], None] | None = None) -> list[list[float]]:
    """Several models timed side by side: `rounds` rounds, in each every call re-warmed (`rewarm`) then
    timed for one chunk (`time_loop` with `runs`/`max_ms`/`min_runs`). Returns the samples of each call.
    Serves calibrate's candidate timing and the pipeline comparison."""
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(rounds):
        for i, call in enumerate(calls):
            rewarm(call, min_runs=rewarm_runs)
            samples[i] += time_loop(call, runs=runs, max_ms=max_ms, min_runs=min(min_runs, runs))
            if on_chunk is not None:
                on_chunk()
    return samples
