"""Fused-attention kernel on a CUDA GPU: build it, check it against PyTorch SDPA, time it against SDPA.

    python benchmarks/attention_gpu.py --out attention_gpu.json [--quick] [--arch 87]

1. Build: CMake (`trt_edge.plugins.library.build_libraries`) for this GPU's SM into a scratch folder, then
   load `libtrt_edge_attention.so` (the kernel + C ABI; TensorRT is not needed).
2. Check, for every shape, on fresh random inputs: the output buffer is poisoned with NaN before each
   run (every element must be written); the result is compared with
   `torch.nn.functional.scaled_dot_product_attention` computed in fp32 (relative L2 error and max
   abs error within fp16 limits); masked positions are exact: re-randomising the K/V rows of padded keys
   must leave the output bit-identical; causal is checked the same way at a few shapes; bad input
   (head size 48, a mask of the wrong shape) must come back as the documented status codes.
3. Time (CUDA events, median of repeated runs) the kernel against SDPA at edge shapes: batch 1-8,
   sequence 64-512, 12 heads, head size 32 and 64. SDPA gets its own preferred [B, N, S, H] layout and the
   same boolean key-padding mask; our kernel reads [B, S, N*H] directly (no transposes are timed for
   either side).

Without a CUDA GPU it says so and exits with status 2 (writing a JSON that records the skip when --out
is given): these figures are then still open.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REL_TOL = 1e-2      # relative L2 error vs fp32 SDPA (fp16 inputs/outputs, fp16 probabilities)
ABS_TOL = 2e-2      # max abs error (outputs are O(1): averages of N(0,1) values)
HEAD_SIZES = (32, 64)
BATCHES = (1, 2, 4, 8)
SEQS = (64, 128, 256, 512)
HEADS = 12


def _fail_no_gpu(out: Path | None, reason: str) -> int:
    print(f"attention_gpu: {reason}; nothing measured, the GPU figures in benchmarks/RESULTS.md are still open",
          file=sys.stderr)
    if out is not None:
        out.write_text(json.dumps({"status": "skipped", "reason": reason}, indent=2) + "\n")
    return 2


def _build(arch: str | None) -> ctypes.CDLL:
    from trt_edge.plugins.library import KERNEL_LIBRARY, bind_kernel_abi, build_libraries, load_plugin_library

    folder = Path(tempfile.mkdtemp(prefix="trt-edge-attention-"))
    start = time.perf_counter()
    if shutil.which("cmake") is not None:
        build_libraries(folder, cuda_architectures=arch, werror=True)
    else:  # no CMake on the GPU host: the same flags, straight through nvcc
        from trt_edge.plugins.library import source_dir

        src = source_dir()
        subprocess.run(["nvcc", "-std=c++17", "-O3", "-shared", "-Xcompiler=-fPIC,-Wall,-Wextra,-Werror",
                        "-Werror", "all-warnings", "-gencode", f"arch=compute_{arch},code=sm_{arch}", "-I", str(src),
                        str(src / "fused_attention.cu"), "-o", str(folder / KERNEL_LIBRARY)], check=True)
    print(f"built {KERNEL_LIBRARY} for sm_{arch} in {time.perf_counter() - start:.1f} s ({folder})")
    return bind_kernel_abi(load_plugin_library(folder / KERNEL_LIBRARY))


class Kernel:
    """ctypes wrapper: BSNH fp16 tensors in, one call of trt_edge_attention_forward_bias (C ABI 2)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib

    def __call__(self, q: Any, k: Any, v: Any, mask: Any, out: Any, heads: int, head_size: int, scale: float,
                 causal: bool, mask_shape: tuple[int, int] | None = None, bias: Any = None) -> int:
        """`mask` None: no padding; `bias` None: no additive bias, else fp16 [1 or batch, heads, seq, seq]."""
        import torch

        b, s = q.shape[0], q.shape[1]
        mb, ms = mask_shape if mask_shape is not None else (b, s)
        stream = torch.cuda.current_stream().cuda_stream
        return int(self.lib.trt_edge_attention_forward_bias(
            q.data_ptr(), k.data_ptr(), v.data_ptr(), None if mask is None else mask.data_ptr(),
            None if bias is None else bias.data_ptr(), out.data_ptr(), b, s, heads, head_size, mb, ms,
            0 if bias is None else int(bias.shape[0]), ctypes.c_float(scale), int(causal), ctypes.c_void_p(stream)))


def _inputs(b: int, s: int, heads: int, head_size: int, gen: Any) -> tuple[Any, ...]:
    import torch

    shape = (b, s, heads * head_size)
    q, k, v = (torch.randn(shape, generator=gen, device="cuda", dtype=torch.float16) for _ in range(3))
    lengths = torch.randint(max(1, s // 2), s + 1, (b,), generator=gen, device="cuda")
    lengths[0] = s  # one unpadded row, the others padded at random lengths
    mask = (torch.arange(s, device="cuda")[None, :] < lengths[:, None]).to(torch.int32)
    return q, k, v, mask


def _sdpa_reference(q: Any, k: Any, v: Any, mask: Any, heads: int, head_size: int, scale: float,
                    causal: bool, bias: Any = None) -> Any:
    """fp32 SDPA; `mask` None means no padding, `bias` is added to the scaled scores before the masks."""
    import torch
    import torch.nn.functional as F

    b, s, hidden = q.shape

    def split(x: Any) -> Any:
        return x.float().view(b, s, heads, head_size).transpose(1, 2)

    allowed = torch.ones(b, 1, s, s, dtype=torch.bool, device=q.device)
    if mask is not None:
        allowed = allowed & (mask != 0)[:, None, None, :]
    if causal:
        allowed = allowed & torch.ones(s, s, dtype=torch.bool, device=q.device).tril()
    additive = torch.zeros(b, heads, s, s, device=q.device).masked_fill(~allowed, float("-inf"))
    if bias is not None:
        additive = additive + bias.float()
    ref = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=additive, scale=scale)
    return ref.transpose(1, 2).reshape(b, s, hidden)


BIAS_KINDS = ("none", "shared", "per_batch")  # no bias; [1, N, S, S]; [B, N, S, S]


def check_shape(kernel: Kernel, b: int, s: int, heads: int, head_size: int, causal: bool, gen: Any,
                padded: bool = True, bias_kind: str = "none") -> dict[str, Any]:
    """One correctness check on fresh inputs; returns the figures and whether they pass.

    `padded` False passes no mask at all (NULL: ViT-style, no padding); `bias_kind` adds a random fp16
    additive bias shared by the batch or one per batch row (relative-position bias).
    """
    import torch

    scale = head_size ** -0.5
    q, k, v, mask = _inputs(b, s, heads, head_size, gen)
    if not padded:
        mask = None
    bias = None
    if bias_kind != "none":
        bias = torch.randn((1 if bias_kind == "shared" else b, heads, s, s), generator=gen, device="cuda",
                           dtype=torch.float16)
    out = torch.full_like(q, float("nan"))
    status = kernel(q, k, v, mask, out, heads, head_size, scale, causal, bias=bias)
    torch.cuda.synchronize()
    ref = _sdpa_reference(q, k, v, mask, heads, head_size, scale, causal, bias)
    diff = (out.float() - ref).nan_to_num(nan=float("inf"))
    rel = float(diff.norm() / ref.norm()) if status == 0 else float("inf")
    max_abs = float(diff.abs().max()) if status == 0 else float("inf")
    # Masked keys must have no influence at all: new K/V (and bias) values there leave the output
    # bit-identical. Without a mask nothing is masked, so the check is vacuous and reported as such.
    masked_exact: bool | None = None
    if mask is not None:
        padded_keys = (mask == 0)[:, :, None].expand_as(k)
        k2 = torch.where(padded_keys, torch.randn_like(k) * 10, k)
        v2 = torch.where(padded_keys, torch.randn_like(v) * 10, v)
        bias2 = None
        if bias is not None:
            # A shared bias column may change only where every batch row pads that key.
            pad_cols = (mask == 0)[:, None, None, :].expand(b, heads, s, s)
            if bias.shape[0] == 1:
                pad_cols = pad_cols.all(dim=0, keepdim=True)
            bias2 = torch.where(pad_cols, torch.randn_like(bias) * 10, bias)
        out2 = torch.full_like(q, float("nan"))
        status2 = kernel(q, k2, v2, mask, out2, heads, head_size, scale, causal, bias=bias2)
        torch.cuda.synchronize()
        masked_exact = status2 == 0 and bool(torch.equal(out, out2))
    written = not bool(torch.isnan(out).any())
    ok = status == 0 and written and rel <= REL_TOL and max_abs <= ABS_TOL and masked_exact is not False
    return {"batch": b, "seq": s, "heads": heads, "head_size": head_size, "causal": causal, "padded": padded,
            "bias": bias_kind, "status": status, "rel_l2": rel, "max_abs": max_abs, "all_written": written,
            "masked_exact": masked_exact, "ok": ok}


def check_bad_input(kernel: Kernel) -> dict[str, bool]:
    import torch

    q = torch.zeros(1, 16, 2 * 48, device="cuda", dtype=torch.float16)
    mask = torch.ones(1, 16, device="cuda", dtype=torch.int32)
    out = torch.empty_like(q)
    head = kernel(q, q, q, mask, out, 2, 48, 0.1, False) == 1
    q64 = torch.zeros(1, 16, 2 * 64, device="cuda", dtype=torch.float16)
    shape = kernel(q64, q64, q64, mask, torch.empty_like(q64), 2, 64, 0.1, False, mask_shape=(1, 15)) == 3
    q2 = torch.zeros(2, 16, 2 * 64, device="cuda", dtype=torch.float16)
    bias3 = torch.zeros(3, 2, 16, 16, device="cuda", dtype=torch.float16)  # bias batch neither 1 nor 2
    bias = kernel(q2, q2, q2, None, torch.empty_like(q2), 2, 64, 0.1, False, bias=bias3) == 6
    return {"head_size_48_rejected": head, "mask_shape_rejected": shape, "bias_shape_rejected": bias}


def _time(fn: Any, warmup: int = 10, iters: int = 50, repeats: int = 5) -> float:
    """Median over `repeats` of the mean time of `iters` back-to-back calls, in microseconds."""
    import torch

    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        samples.append(float(start.elapsed_time(end)) * 1000.0 / iters)
    return float(sorted(samples)[len(samples) // 2])


def time_shape(kernel: Kernel, b: int, s: int, heads: int, head_size: int, gen: Any) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    scale = head_size ** -0.5
    q, k, v, mask = _inputs(b, s, heads, head_size, gen)
    out = torch.empty_like(q)
    qh, kh, vh = (x.view(b, s, heads, head_size).transpose(1, 2).contiguous() for x in (q, k, v))
    allowed = (mask != 0)[:, None, None, :]
    ours = _time(lambda: kernel(q, k, v, mask, out, heads, head_size, scale, False))
    sdpa = _time(lambda: F.scaled_dot_product_attention(qh, kh, vh, attn_mask=allowed, scale=scale))
    return {"batch": b, "seq": s, "heads": heads, "head_size": head_size, "ours_us": ours, "sdpa_us": sdpa,
            "speedup": sdpa / ours}


def print_checks(checks: list[dict[str, Any]]) -> None:
    print(f"{'B':>2} {'S':>5} {'N':>3} {'H':>4} {'causal':>6} {'padded':>6} {'bias':>9} {'rel_l2':>9} {'max_abs':>9} "
          f"{'masked':>6} ok")
    for c in checks:
        print(f"{c['batch']:>2} {c['seq']:>5} {c['heads']:>3} {c['head_size']:>4} {c['causal']!s:>6} "
              f"{c.get('padded', True)!s:>6} {c.get('bias', 'none'):>9} {c['rel_l2']:>9.2e} {c['max_abs']:>9.2e} "
              f"{c['masked_exact']!s:>6} {c['ok']}")


def print_timings(timings: list[dict[str, Any]]) -> None:
    print(f"\n{'B':>2} {'S':>4} {'H':>3} {'ours_us':>9} {'sdpa_us':>9} {'speedup':>7}")
    for t in timings:
        print(f"{t['batch']:>2} {t['seq']:>4} {t['head_size']:>3} {t['ours_us']:>9.1f} {t['sdpa_us']:>9.1f} "
              f"{t['speedup']:>7.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    parser.add_argument("--quick", action="store_true", help="a few shapes only (a smoke run)")
    parser.add_argument("--arch", default=None, help="SM to build for, e.g. 87 (default: this GPU's)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one, printed)")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        return _fail_no_gpu(args.out, "PyTorch is not installed")
    if not torch.cuda.is_available():
        return _fail_no_gpu(args.out, "no CUDA GPU on this machine")
    major, minor = torch.cuda.get_device_capability()
    arch = args.arch or f"{major}{minor}"
    kernel = Kernel(_build(arch))
    seed = args.seed if args.seed is not None else int(time.time_ns() % (2**31))
    gen = torch.Generator(device="cuda").manual_seed(seed)
    print(f"device: {torch.cuda.get_device_name()} (sm_{major}{minor}), torch {torch.__version__}, seed {seed}")

    batches, seqs = ((1, 8), (64, 512)) if args.quick else (BATCHES, SEQS)
    checks = [check_shape(kernel, b, s, HEADS, h, False, gen) for h in HEAD_SIZES for b in batches for s in seqs]
    checks += [check_shape(kernel, b, s, heads, 128, causal, gen)
               for b, s, heads, causal in ((2, 100, 4, False), (1, 1024, 2, False), (2, 77, 4, True))]
    checks += [check_shape(kernel, 2, s, HEADS, 64, True, gen) for s in (64, 200)]
    checks += [check_shape(kernel, 1, 1024, HEADS, 32, False, gen), check_shape(kernel, 3, 1, HEADS, 64, False, gen)]
    bad = check_bad_input(kernel)
    print_checks(checks)
    print("bad input:", bad)

    timings = [time_shape(kernel, b, s, HEADS, h, gen) for h in HEAD_SIZES for b in batches for s in seqs]
    print_timings(timings)
    all_ok = all(c["ok"] for c in checks) and all(bad.values())
    target = [t for t in timings if t["batch"] == 1 and t["seq"] <= 256]
    result = {
        "status": "ok" if all_ok else "failed",
        "device": torch.cuda.get_device_name(), "sm": f"{major}{minor}", "torch": torch.__version__,
        "host": platform.node(), "seed": seed, "tolerances": {"rel_l2": REL_TOL, "max_abs": ABS_TOL},
        "checks": checks, "bad_input": bad, "timings": timings,
        "target_batch1_seq_le_256_met": all(t["speedup"] >= 1.0 for t in target) if target else None,
    }
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\ncorrect everywhere: {all_ok}; at least as fast as SDPA at batch 1, seq <= 256: "
          f"{result['target_batch1_seq_le_256_met']}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
