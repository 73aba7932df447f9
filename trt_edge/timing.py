"""Re-warming before each timed chunk of an interleaved comparison.

Timing several ONNX Runtime sessions in one process, round by round, is how the kit compares models on a
noisy machine (drift hits every model alike). Right after a switch, though, the previous session's pool
threads still spin and the caches hold its weights: on the 2-core build machine a 3 ms INT8 model timed
after a 10 ms one read 4 ms median / 8 ms p90 with 30 ms of re-warming, and 3.0 ms / 3.4 ms with 150 ms,
steady across repeats (benchmarks/RESULTS.md, 2026-11-24). Every interleaved loop re-warms through here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

REWARM_MS = 150.0


def rewarm(call: Callable[[], object], ms: float = REWARM_MS, min_runs: int = 2) -> int:
    """Run `call` untimed for at least `ms` milliseconds and `min_runs` times; return how many runs."""
    start, runs = time.perf_counter(), 0
    while runs < min_runs or (time.perf_counter() - start) * 1000.0 < ms:
        call()
        runs += 1
    return runs
