"""2:4 sparse GEMM vs dense on a CUDA GPU, at the student's Linear shapes (PyTorch semi-structured sparsity).

    python benchmarks/sparse_gemm_gpu.py --out sparse_gemm_gpu.json [--model demo:minilm] [--quick]

For every distinct Linear shape [out, in] that the prune stage makes 2:4 (attention Q/K/V/output and
the feed-forward pair; from `--model`, a model folder, `demo:minilm`, or a prune stage's `model/`) and
every row count (batch x sequence, 128 ... 4096), it times in fp16:

* dense: `torch.nn.functional.linear(x, w)` with the 2:4-pruned weight stored dense;
* sparse: the same weight as `torch.sparse.to_sparse_semi_structured(w)` (cuSPARSELt where PyTorch has
  it, else CUTLASS; `--backend` forces one), `torch.nn.functional.linear(x, w_sparse)`.

Both results are compared (fp16 tolerance) before anything is timed; timings are CUDA-event medians.
The speedup per shape is what a Jetson Orin's sparse tensor cores can give at most on these GEMMs;
TensorRT picks sparse tactics only where they win, so the engine-level figure is measured separately
(`trt-edge profile`).

Without a CUDA GPU (or on a GPU older than Ampere, SM < 8.0) it says so and exits with status 2
(writing a JSON that records the skip when --out is given): these figures are then still open.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROWS = (128, 256, 512, 1024, 2048, 4096)
QUICK_ROWS = (128, 1024, 4096)


def _skip(out: Path | None, reason: str) -> int:
    print(f"sparse_gemm_gpu: {reason}; nothing measured, the 2:4 GEMM figures in benchmarks/RESULTS.md are "
          "still open", file=sys.stderr)
    if out is not None:
        out.write_text(json.dumps({"status": "skipped", "reason": reason}, indent=2) + "\n")
    return 2


def linear_shapes(model_ref: str) -> list[tuple[int, int, list[str]]]:
    """Distinct (out, in) shapes of the Linear layers the prune stage would make 2:4, with their names."""
    import torch
    from transformers import AutoModel

    from trt_edge.sparsity.config import PruneConfig
    from trt_edge.sparsity.masks import select_layers
    from trt_edge.tasks.models import resolve_model_path

    path = resolve_model_path(model_ref)
    model = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True)
    cfg = PruneConfig()
    shapes: dict[tuple[int, int], list[str]] = {}
    for name, mod in select_layers(model, cfg.include, cfg.exclude).layers:
        assert isinstance(mod, torch.nn.Linear)
        shapes.setdefault((mod.out_features, mod.in_features), []).append(name)
    return [(o, i, names) for (o, i), names in sorted(shapes.items())]


def _time(fn: Any, iters: int, warmup: int) -> float:
    """Median milliseconds of `fn()` over `iters` runs, CUDA events."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return float(times[len(times) // 2])


def measure(shapes: list[tuple[int, int, list[str]]], rows: tuple[int, ...], iters: int, warmup: int,
            backend: str) -> list[dict[str, Any]]:
    import torch
    import torch.nn.functional as F
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

    from trt_edge.sparsity.masks import nm_mask

    if backend != "auto":
        SparseSemiStructuredTensor._FORCE_CUTLASS = backend == "cutlass"
    results = []
    torch.manual_seed(0)
    for out_f, in_f, names in shapes:
        w = torch.randn(out_f, in_f, device="cuda", dtype=torch.float16)
        w = w * nm_mask(w).to(w.dtype)
        w_sparse = to_sparse_semi_structured(w)
        for n in rows:
            x = torch.randn(n, in_f, device="cuda", dtype=torch.float16)
            dense_out = F.linear(x, w)
            sparse_out = F.linear(x, w_sparse)
            err = float((dense_out.float() - sparse_out.float()).abs().max())
            scale = float(dense_out.float().abs().max())
            if err > 2e-2 * max(scale, 1.0):
                raise RuntimeError(f"sparse GEMM result differs from dense at [{n} x {in_f}] x [{in_f} x {out_f}]: "
                                   f"max abs error {err:.3g}")
            dense_ms = _time(lambda x=x, w=w: F.linear(x, w), iters, warmup)
            sparse_ms = _time(lambda x=x, ws=w_sparse: F.linear(x, ws), iters, warmup)
            flops = 2.0 * n * in_f * out_f
            results.append({
                "rows": n, "in_features": in_f, "out_features": out_f, "layers": names,
                "dense_ms": dense_ms, "sparse_ms": sparse_ms, "speedup": dense_ms / sparse_ms,
                "dense_tflops": flops / dense_ms / 1e9, "sparse_effective_tflops": flops / sparse_ms / 1e9,
                "max_abs_error": err,
            })
            print(f"[{n:5d} x {in_f:5d}] x [{in_f:5d} x {out_f:5d}]  dense {dense_ms:.4f} ms  2:4 {sparse_ms:.4f} ms"
                  f"  speedup {dense_ms / sparse_ms:.2f}x", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--model", default="demo:minilm", help="model folder whose Linear shapes are timed")
    parser.add_argument("--rows", default="", help="comma-separated row counts (batch x sequence)")
    parser.add_argument("--quick", action="store_true", help="3 row counts, fewer iterations")
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=25)
    parser.add_argument("--backend", choices=("auto", "cutlass", "cusparselt"), default="auto")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        return _skip(args.out, "PyTorch is not installed")
    if not torch.cuda.is_available():
        return _skip(args.out, "needs a CUDA GPU (torch.cuda.is_available() is False on this machine)")
    major, minor = torch.cuda.get_device_capability(0)
    if major < 8:
        return _skip(args.out, "needs an Ampere or newer GPU for 2:4 sparse tensor cores "
                               f"(this one is SM {major}.{minor})")
    rows = tuple(int(r) for r in args.rows.split(",") if r) or (QUICK_ROWS if args.quick else ROWS)
    iters = max(20, args.iters // 4) if args.quick else args.iters
    started = time.time()
    shapes = linear_shapes(args.model)
    results = measure(shapes, rows, iters, args.warmup, args.backend)
    report = {
        "status": "measured",
        "device": torch.cuda.get_device_name(0), "compute_capability": f"{major}.{minor}",
        "torch": torch.__version__, "cuda": torch.version.cuda, "host": platform.node(),
        "backend": args.backend, "dtype": "float16", "iters": iters, "model": args.model,
        "results": results,
        "speedup_by_shape": {f"{r['rows']}x{r['in_features']}->{r['out_features']}": round(r["speedup"], 3)
                             for r in results},
        "seconds": time.time() - started,
    }
    text = json.dumps(report, indent=2) + "\n"
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
