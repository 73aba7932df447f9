"""One command for the GPU figures: the fused-attention kernel's correctness and speed, and the 2:4 GEMMs.

    python benchmarks/gpu_proof.py --out DIR [--arch 87] [--seed N]

Writes DIR/gpu_proof.json (and prints tables). Built to finish in well under 8 minutes on any CUDA GPU:

1. Build the kernel library for this GPU's SM (`attention_gpu._build`: CMake, or nvcc directly).
2. Correctness against fp32 PyTorch SDPA (`attention_gpu.check_shape`) for every supported head size
   (32, 64, 128), each with: no mask at all (NULL: ViT-style), a key-padding mask, a padding mask plus an
   additive bias shared by the batch ([1, N, S, S]), no mask plus one bias per batch row ([B, N, S, S]),
   and causal plus padding; every output element must be written, padded keys (and their bias) must have
   no influence at all, and bad input must come back as the documented status codes.
3. Timing at edge shapes: batch 1, 2, 4, 8 x sequence 64, 128, 256, 12 heads, head size 32 and 64, against
   SDPA (`attention_gpu.time_shape`).
4. 2:4 sparse vs dense GEMM timings at the student's Linear shapes (`sparse_gemm_gpu.measure`; needs
   SM 8.0+, otherwise that section records why it was skipped).

Without a CUDA GPU it says so, writes a JSON recording the skip, and exits 2: the figures stay open.
Exit 1 when a correctness check fails, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark modules

import attention_gpu
import sparse_gemm_gpu

HEAD_SIZES = (32, 64, 128)
CHECK_SHAPES = ((1, 64), (2, 128), (3, 77), (8, 256))  # (batch, seq); 77: not a multiple of any tile
# (padded, bias kind, causal): the variants every head size and shape is checked with.
VARIANTS = ((False, "none", False), (True, "none", False), (True, "shared", False), (False, "per_batch", False),
            (True, "none", True))
TIMING_BATCHES = (1, 2, 4, 8)
TIMING_SEQS = (64, 128, 256)
TIMING_HEAD_SIZES = (32, 64)
HEADS = 12
GEMM_MODEL = "demo:minilm"
# The student's 2:4 Linear shapes (out, in) from its config (hidden 384, intermediate 1536), used when the demo
# model package is not installed on the GPU machine: attention Q/K/V/output, then the feed-forward pair.
FALLBACK_GEMM_SHAPES = [(384, 384, ["attention (q, k, v, output)"]), (1536, 384, ["intermediate.dense"]),
                        (384, 1536, ["output.dense"])]
RESULT_NAME = "gpu_proof.json"


def _skip(out_dir: Path, reason: str) -> int:
    print(f"gpu_proof: {reason}; nothing measured, the GPU figures in benchmarks/RESULTS.md are still open",
          file=sys.stderr)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RESULT_NAME).write_text(json.dumps({"status": "skipped", "reason": reason}, indent=2) + "\n")
    return 2


def _gemm_section(major: int, minor: int, quick: bool, model: str) -> dict[str, Any]:
    """The 2:4 GEMM timings, or why they were not taken (a GPU without sparse tensor cores)."""
    if major < 8:
        return {"status": "skipped", "reason": f"2:4 sparse tensor cores need SM 8.0+, this GPU is SM {major}.{minor}"}
    shapes_from = model
    try:
        shapes = sparse_gemm_gpu.linear_shapes(model)
    except Exception as exc:  # the demo model package may be absent on the GPU machine: use its config's shapes
        print(f"gpu_proof: cannot read the Linear shapes of {model} ({exc}); timing the student's config shapes",
              file=sys.stderr)
        shapes, shapes_from = FALLBACK_GEMM_SHAPES, "fallback: MiniLM-L12-H384 config shapes"
    rows = sparse_gemm_gpu.QUICK_ROWS
    iters = 50 if quick else 100
    try:
        results = sparse_gemm_gpu.measure(shapes, rows, iters=iters, warmup=10, backend="auto")
    except RuntimeError as exc:  # the sparse result differs from the dense one: a failed proof, not a crash
        return {"status": "failed", "reason": str(exc)}
    return {"status": "measured", "shapes_from": shapes_from, "rows": list(rows), "iters": iters, "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_proof.json")
    parser.add_argument("--arch", default=None, help="SM to build for, e.g. 87 (default: this GPU's)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one, printed)")
    parser.add_argument("--quick", action="store_true", help="fewer shapes and iterations (a smoke run)")
    parser.add_argument("--gemm-model", default=GEMM_MODEL, help="model whose 2:4 Linear shapes are timed")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        return _skip(args.out, "PyTorch is not installed")
    if not torch.cuda.is_available():
        return _skip(args.out, "no CUDA GPU on this machine")
    started = time.time()
    major, minor = torch.cuda.get_device_capability()
    arch = args.arch or f"{major}{minor}"
    kernel = attention_gpu.Kernel(attention_gpu._build(arch))
    seed = args.seed if args.seed is not None else int(time.time_ns() % (2**31))
    gen = torch.Generator(device="cuda").manual_seed(seed)
    print(f"device: {torch.cuda.get_device_name()} (sm_{major}{minor}), torch {torch.__version__}, seed {seed}")

    shapes = CHECK_SHAPES[:2] if args.quick else CHECK_SHAPES
    heads_for = {32: HEADS, 64: HEADS, 128: 4}  # 4 heads of 128 keep the bias tensors small
    checks = [attention_gpu.check_shape(kernel, b, s, heads_for[h], h, causal, gen, padded=padded, bias_kind=bias)
              for h in HEAD_SIZES for b, s in shapes for padded, bias, causal in VARIANTS]
    bad = attention_gpu.check_bad_input(kernel)
    attention_gpu.print_checks(checks)
    print("bad input:", bad)
    check_seconds = time.time() - started

    batches, seqs = ((1, 8), (64, 256)) if args.quick else (TIMING_BATCHES, TIMING_SEQS)
    timings = [attention_gpu.time_shape(kernel, b, s, HEADS, h, gen)
               for h in TIMING_HEAD_SIZES for b in batches for s in seqs]
    attention_gpu.print_timings(timings)
    gemm = _gemm_section(major, minor, args.quick, args.gemm_model)

    all_ok = all(c["ok"] for c in checks) and all(bad.values()) and gemm["status"] != "failed"
    result = {
        "status": "ok" if all_ok else "failed",
        "device": torch.cuda.get_device_name(), "sm": f"{major}{minor}", "torch": torch.__version__,
        "cuda": torch.version.cuda, "host": platform.node(), "seed": seed, "quick": args.quick,
        "tolerances": {"rel_l2": attention_gpu.REL_TOL, "max_abs": attention_gpu.ABS_TOL},
        "attention": {"checks": checks, "bad_input": bad, "timings": timings,
                      "check_seconds": check_seconds},
        "sparse_gemm": gemm,
        "seconds": time.time() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / RESULT_NAME).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\ncorrect everywhere: {all_ok}; 2:4 GEMM: {gemm['status']}; {result['seconds']:.0f} s; "
          f"written to {args.out / RESULT_NAME}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
