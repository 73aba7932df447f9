"""Compile the fused-attention kernel with each Jetson's own CUDA and read ptxas's resource report.

``python -m trt_edge.plugins.cuda_matrix`` (what ``.ci/run`` calls with ``--strict``) compiles the kernel's
device code for every (arch, head size) a Jetson runs:

* **sm_72 with CUDA 11.x** (JetPack 5, Xavier): NVRTC from ``nvidia-cuda-nvrtc-cu11`` -> PTX, assembled by
  ``ptxas`` from ``nvidia-cuda-nvcc-cu11`` (the same release, so the PTX ISA matches the assembler);
* **sm_87 with CUDA 12.6** (JetPack 6.1/6.2, Orin): ``nvidia-cuda-nvrtc-cu12`` + ``nvidia-cuda-nvcc-cu12``;
* **sm_110 with CUDA 13** (JetPack 7, Thor; CUDA 13 renamed Thor from sm_101 to sm_110): the local ``nvcc``,
  which compiles ``fused_attention.cu`` itself (the C ABI's own dispatch instantiates the three head sizes).

Why NVRTC and not nvcc for the older lines: NVIDIA publishes no nvcc front end on PyPI, but NVRTC plus
ptxas are there, need no GPU, and CUDA 13's nvcc cannot target sm_72 at all. NVRTC compiles device code
only, so for those lines the unit is the header-only kernel with the three instantiations requested as name
expressions (the same templates ``fused_attention.cu`` launches).

The wheels are installed with ``pip install --target`` into ``.cache/cuda-matrix/<line>`` (one folder per
CUDA line: the cu11 and cu12 wheels install into the same ``nvidia/cuda_nvrtc`` paths, so they cannot share
one environment). Each (arch, head size) gets one line: registers, spill stores/loads, stack, shared memory
(the kernel's dynamic shared memory is read from the compiled unit itself, ``Tile<D>::kBytes``, so it is
never computed twice) and the occupancy that follows (:func:`occupancy`). **Any compile error, compiler
warning or spill fails the run** (exit 1). A toolchain that cannot be installed or found fails it too under
``--strict`` (or ``CI=true``); otherwise that line is reported as SKIPPED (a user's clone without network or
nvcc) and the exit status is 0.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ctypes
import dataclasses
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trt_edge.errors import TrtEdgeError
from trt_edge.plugins.ort_reference import SUPPORTED_HEAD_SIZES

REPO_ROOT = Path(__file__).resolve().parents[2]
KERNEL_DIR = REPO_ROOT / "plugins" / "fused_attention"
DEFAULT_CACHE = REPO_ROOT / ".cache" / "cuda-matrix"
KERNEL_TEMPLATE = "trt_edge::attention::fused_attention_kernel<{d}>"
# A global the compiled unit defines per head size, so the PTX carries Tile<D>::kBytes (C++ is its one home).
SMEM_SYMBOL = "trt_edge_matrix_smem_bytes_{d}"


@dataclasses.dataclass(frozen=True)
class ArchLimits:
    """Per-SM limits of one compute capability, as CUDA's occupancy calculator uses them.

    Sources: ``cuda_occupancy.h`` (CUDA 13.0: max blocks per SM, register and shared-memory allocation
    granularity, the shared-memory carveouts) and the CUDA C++ Programming Guide's per-capability table
    (resident warps, shared memory per SM and per block, 1 KiB reserved per block from sm_80 on).
    """

    sm: int
    max_warps: int
    max_blocks: int
    registers: int = 65536
    register_granularity: int = 256  # registers are allocated per warp in units of 256
    sub_partitions: int = 4  # the register file is split across 4 schedulers
    smem_per_sm: int = 0  # the largest carveout, bytes
    smem_per_block: int = 0  # largest opt-in dynamic + static shared memory per block, bytes
    smem_reserved: int = 0  # shared memory the driver reserves per block, bytes
    smem_granularity: int = 128


ARCH_LIMITS = {
    72: ArchLimits(72, max_warps=64, max_blocks=32, smem_per_sm=96 * 1024, smem_per_block=96 * 1024,
                   smem_granularity=256),
    87: ArchLimits(87, max_warps=48, max_blocks=16, smem_per_sm=164 * 1024, smem_per_block=163 * 1024,
                   smem_reserved=1024),
    # Thor: 24 blocks per SM (cuda_occupancy.h, CC 11.0) and 228 KiB carveout; 48 resident warps as on the
    # other 24-block parts. For this kernel shared memory binds long before warps do (4 warps per block).
    110: ArchLimits(110, max_warps=48, max_blocks=24, smem_per_sm=228 * 1024, smem_per_block=227 * 1024,
                    smem_reserved=1024),
}


@dataclasses.dataclass(frozen=True)
class Line:
    """One Jetson generation: its SM, its CUDA, and where that CUDA comes from."""

    name: str  # "cu11", "cu12", "cu13": the cache folder
    sm: int
    jetpack: str
    cuda: str  # what the line compiles with
    device_cuda: str  # what the JetPack ships
    wheels: tuple[str, ...] = ()  # pinned PyPI requirements; empty = the local nvcc


LINES = (
    # JetPack 5.1.x ships CUDA 11.4; PyPI's oldest cu11 NVRTC/ptxas wheels are 11.7 (the nearest).
    Line("cu11", 72, "JetPack 5 (Xavier)", "11.7", "11.4",
         ("nvidia-cuda-nvrtc-cu11==11.7.99", "nvidia-cuda-nvcc-cu11==11.7.99", "nvidia-cuda-runtime-cu11==11.7.99")),
    # JetPack 6.1/6.2 ship CUDA 12.6 (6.0: 12.2): the exact release line.
    Line("cu12", 87, "JetPack 6 (Orin)", "12.6", "12.6",
         ("nvidia-cuda-nvrtc-cu12==12.6.85", "nvidia-cuda-nvcc-cu12==12.6.85", "nvidia-cuda-runtime-cu12==12.6.77")),
    Line("cu13", 110, "JetPack 7 (Thor)", "13 (local nvcc)", "13.0"),
)


@dataclasses.dataclass(frozen=True)
class Usage:
    """ptxas's resource report for one kernel (``ptxas -v``)."""

    registers: int
    spill_stores: int
    spill_loads: int
    stack: int
    static_smem: int


@dataclasses.dataclass(frozen=True)
class Occupancy:
    """Resident blocks per SM for one kernel, and which limit gives that number."""

    blocks: int
    warps: int
    fraction: float  # resident warps / max resident warps
    limited_by: str


@dataclasses.dataclass
class Result:
    """One (line, head size) cell of the matrix."""

    line: str
    sm: int
    cuda: str
    head_size: int
    status: str  # "ok", "FAIL", "SKIPPED"
    reason: str = ""
    usage: Usage | None = None
    dynamic_smem: int | None = None
    occupancy: Occupancy | None = None

    def summary(self) -> str:
        """The one line the step prints for this cell."""
        where = f"sm_{self.sm} CUDA {self.cuda} head {self.head_size}"
        if self.usage is None or self.dynamic_smem is None or self.occupancy is None:
            return f"{self.status:<7} {where}: {self.reason}"
        u, o = self.usage, self.occupancy
        shared_kib = (self.dynamic_smem + u.static_smem) / 1024
        text = (f"{self.status:<7} {where}: {u.registers} registers, spill {u.spill_stores} B stores / "
                f"{u.spill_loads} B loads, stack {u.stack} B, shared {shared_kib:.1f} KiB, "
                f"{o.blocks} blocks/SM = {o.warps} warps = {o.fraction:.0%} occupancy ({o.limited_by})")
        return text + (f" -- {self.reason}" if self.reason else "")


_FUNCTION = re.compile(r"Compiling entry function '([^']+)' for 'sm_(\d+)'")
_PROPS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers(.*)")
_SMEM = re.compile(r"(\d+) bytes smem")


def parse_ptxas(text: str) -> dict[str, Usage]:
    """Per entry function (mangled name): the figures of ``ptxas -v`` output.

    ptxas prints, per function, "Compiling entry function 'NAME' for 'sm_XX'", then "N bytes stack frame,
    N bytes spill stores, N bytes spill loads", then "Used N registers, ... [N bytes smem, ...]". A function
    whose report is incomplete raises, so a changed format fails loudly instead of reading as zero spills.
    """
    out: dict[str, Usage] = {}
    current: str | None = None
    props: tuple[int, int, int] | None = None
    for line in text.splitlines():
        if m := _FUNCTION.search(line):
            if current is not None:
                raise TrtEdgeError(f"ptxas report for {current} has no 'Used N registers' line")
            current, props = m.group(1), None
        elif current is not None and (m := _PROPS.search(line)):
            props = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        elif current is not None and (m := _USED.search(line)):
            if props is None:
                raise TrtEdgeError(f"ptxas report for {current} has no stack/spill line")
            smem = _SMEM.search(m.group(2))
            out[current] = Usage(registers=int(m.group(1)), spill_stores=props[1], spill_loads=props[2],
                                 stack=props[0], static_smem=int(smem.group(1)) if smem else 0)
            current = None
    if current is not None:
        raise TrtEdgeError(f"ptxas report for {current} is incomplete")
    return out


def occupancy(limits: ArchLimits, threads: int, registers: int, smem_bytes: int) -> Occupancy:
    """Resident blocks per SM, the CUDA occupancy calculator's formula (``cuda_occupancy.h``).

    warps/block W = ceil(threads / 32);
    by warps:     floor(max_warps / W), and at most max_blocks;
    by registers: a warp takes ceil(registers * 32 / 256) * 256 registers; each of the 4 sub-partitions holds
                  floor((65536 / 4) / that) warps, so floor(4 * that / W) blocks (0 registers: no limit);
    by shared:    a block takes ceil((smem + reserved) / granularity) * granularity bytes of the SM's largest
                  carveout: floor(carveout / that) blocks (none above the per-block maximum).
    Blocks = the smallest; occupancy = blocks * W / max_warps.
    """
    warps_per_block = -(-threads // 32)
    limits_found = {
        "warp limit": min(limits.max_warps // warps_per_block, limits.max_blocks),
    }
    if registers > 0:
        g = limits.register_granularity
        per_warp = -(-registers * 32 // g) * g
        warps_per_partition = (limits.registers // limits.sub_partitions) // per_warp
        limits_found["registers"] = warps_per_partition * limits.sub_partitions // warps_per_block
    if smem_bytes > 0:
        if smem_bytes > limits.smem_per_block:
            limits_found["shared memory"] = 0
        else:
            g = limits.smem_granularity
            per_block = -(-(smem_bytes + limits.smem_reserved) // g) * g
            limits_found["shared memory"] = limits.smem_per_sm // per_block
    blocks = min(limits_found.values())
    binding = min(limits_found, key=lambda k: (limits_found[k], k != "shared memory"))
    warps = blocks * warps_per_block
    return Occupancy(blocks=blocks, warps=warps, fraction=warps / limits.max_warps, limited_by=f"limited by {binding}")


def _smem_defs(head_sizes: tuple[int, ...]) -> str:
    return "".join(
        f'extern "C" __device__ unsigned long long {SMEM_SYMBOL.format(d=d)} = '
        f"trt_edge::attention::Tile<{d}>::kBytes;\n" for d in head_sizes)


def _smem_from_ptx(ptx: str, head_sizes: tuple[int, ...]) -> dict[int, int]:
    out = {}
    for d in head_sizes:
        m = re.search(rf"\b{SMEM_SYMBOL.format(d=d)}\s*=\s*(\d+)", ptx)
        if m is None:
            raise TrtEdgeError(f"the compiled unit has no {SMEM_SYMBOL.format(d=d)}: cannot read Tile<{d}>::kBytes")
        out[d] = int(m.group(1))
    return out


# NVRTC ships no C library headers before CUDA 12.x's builtins; the kernel needs only these names from them.
_NVRTC_SHIMS = {
    "stdint.h": "#pragma once\ntypedef signed char int8_t; typedef int int32_t; typedef long long int64_t;\n"
                "typedef unsigned char uint8_t; typedef unsigned int uint32_t; typedef unsigned long long uint64_t;\n",
    "math.h": "#pragma once\n#ifndef INFINITY\n#define INFINITY __int_as_float(0x7f800000)\n#endif\n",
}


def nvrtc_compile(root: str, sm: int, head_sizes: tuple[int, ...]) -> tuple[str, dict[int, str], str]:
    """PTX of the kernel header for ``compute_<sm>`` with the NVRTC installed under ``root``.

    Returns (ptx, {head size: lowered kernel name}, compiler log). Runs in its own process (see
    :func:`run_matrix`): one process loads one NVRTC release only.
    """
    libdir = Path(root) / "nvidia" / "cuda_nvrtc" / "lib"
    libs = sorted(libdir.glob("libnvrtc.so*"))
    if not libs:
        raise TrtEdgeError(f"no libnvrtc.so under {libdir}")
    for builtins in sorted(libdir.glob("libnvrtc-builtins.so*")):
        ctypes.CDLL(str(builtins), mode=ctypes.RTLD_GLOBAL)  # NVRTC dlopens it by name; no rpath to find it
    nvrtc = ctypes.CDLL(str(libs[0]))

    def check(status: int, what: str) -> None:
        if status != 0:
            nvrtc.nvrtcGetErrorString.restype = ctypes.c_char_p
            raise TrtEdgeError(f"{what}: {nvrtc.nvrtcGetErrorString(status).decode()}")

    source = f'#include "fused_attention_kernel.cuh"\n{_smem_defs(head_sizes)}'.encode()
    names = [n.encode() for n in _NVRTC_SHIMS]
    bodies = [b.encode() for b in _NVRTC_SHIMS.values()]
    prog = ctypes.c_void_p()
    check(nvrtc.nvrtcCreateProgram(ctypes.byref(prog), source, b"cuda_matrix.cu", len(names),
                                   (ctypes.c_char_p * len(bodies))(*bodies), (ctypes.c_char_p * len(names))(*names)),
          "nvrtcCreateProgram")
    exprs = {d: KERNEL_TEMPLATE.format(d=d).encode() for d in head_sizes}
    for expr in exprs.values():
        check(nvrtc.nvrtcAddNameExpression(prog, expr), "nvrtcAddNameExpression")
    nvidia = Path(root) / "nvidia"
    options = [f"--gpu-architecture=compute_{sm}", "-std=c++17", f"-I{KERNEL_DIR}",
               f"-I{nvidia / 'cuda_runtime' / 'include'}", f"-I{nvidia / 'cuda_nvcc' / 'include'}"]
    option_array = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
    status = nvrtc.nvrtcCompileProgram(prog, len(options), option_array)
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log_buf = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(prog, log_buf)
    log = log_buf.value.decode(errors="replace").strip()
    if status != 0:  # one line per cell: the first error, the full log is one --line run away
        first = next((ln for ln in log.splitlines() if "error" in ln), log.splitlines()[0] if log else str(status))
        raise TrtEdgeError(f"NVRTC compile failed: {first.strip()}")
    nvrtc.nvrtcGetPTXSize(prog, ctypes.byref(size))
    ptx_buf = ctypes.create_string_buffer(size.value)
    check(nvrtc.nvrtcGetPTX(prog, ptx_buf), "nvrtcGetPTX")
    lowered = {}
    for d, expr in exprs.items():
        name = ctypes.c_char_p()
        check(nvrtc.nvrtcGetLoweredName(prog, expr, ctypes.byref(name)), "nvrtcGetLoweredName")
        lowered[d] = (name.value or b"").decode()
    return ptx_buf.value.decode(), lowered, log


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found is None and Path("/usr/local/cuda/bin/nvcc").is_file():
        found = "/usr/local/cuda/bin/nvcc"
    return found


def nvcc_compile(nvcc: str, sm: int, head_sizes: tuple[int, ...], work: Path) -> tuple[str, dict[int, str], str]:
    """PTX of ``fused_attention.cu`` itself (kernel + C ABI) for ``compute_<sm>`` with the local nvcc.

    The kernels' mangled names are taken from the PTX (one ``.entry`` per head size the dispatch launches).
    """
    unit = work / "cuda_matrix_cu13.cu"
    unit.write_text(f'#include "fused_attention.cu"\n{_smem_defs(head_sizes)}')
    ptx_path = work / "cu13.ptx"
    proc = subprocess.run([nvcc, "-std=c++17", "-O3", f"-arch=compute_{sm}", "-ptx", "-Werror", "all-warnings",
                           "-I", str(KERNEL_DIR), str(unit), "-o", str(ptx_path)],
                          capture_output=True, text=True, check=False)
    log = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        first = next((ln for ln in log.splitlines() if "error" in ln), log.splitlines()[0] if log else "")
        raise TrtEdgeError(f"nvcc failed: {first.strip() or f'exit {proc.returncode}'}")
    ptx = ptx_path.read_text()
    entries = re.findall(r"\.entry\s+(\S+?)\s*\(", ptx)
    lowered = {}
    for d in head_sizes:
        match = [e for e in entries if f"fused_attention_kernelILi{d}E" in e]
        if len(match) != 1:
            raise TrtEdgeError(f"nvcc's PTX has {len(match)} kernels for head size {d} (expected 1)")
        lowered[d] = match[0]
    return ptx, lowered, log


def ensure_wheels(line: Line, cache: Path) -> Path:
    """Install ``line.wheels`` into ``cache/line.name`` once (a stamp names the pins); returns the folder."""
    target = cache / line.name
    stamp = target / ".cuda-matrix-pins"
    pins = "\n".join(line.wheels) + "\n"
    if stamp.is_file() and stamp.read_text() == pins:
        return target
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{line.name}-", dir=target.parent))
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--no-deps", "--only-binary=:all:", "--target", str(tmp), *line.wheels],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        err = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.startswith("ERROR")]
        why = err[0] if err else f"exit {proc.returncode}"
        raise TrtEdgeError(f"pip could not install {', '.join(line.wheels)}: {why}")
    (tmp / ".cuda-matrix-pins").write_text(pins)
    tmp.rename(target)  # a crash mid-install leaves a temporary folder, never a half-filled cache
    return target


def _ptxas(path: str, sm: int, ptx: str, work: Path) -> str:
    src = work / f"sm_{sm}.ptx"
    src.write_text(ptx)
    proc = subprocess.run([path, "-v", "-O3", f"-arch=sm_{sm}", str(src), "-o", str(work / f"sm_{sm}.cubin")],
                          capture_output=True, text=True, check=False)
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        first = next((ln for ln in text.splitlines() if "error" in ln.lower()), text.strip()[:200])
        raise TrtEdgeError(f"ptxas failed: {first}")
    return text


def compile_line(line: Line, cache: Path, head_sizes: tuple[int, ...]) -> list[Result]:
    """Compile one line's unit and assemble it for its SM; one :class:`Result` per head size.

    Runs in a fresh process per line (a :func:`run_matrix` worker). Raises :class:`TrtEdgeError` when the
    toolchain is missing (the caller turns that into SKIPPED or FAIL); a compile error, warning or spill
    is a FAIL result.
    """
    with tempfile.TemporaryDirectory(prefix="cuda-matrix-") as tmp:
        work = Path(tmp)
        if line.wheels:
            root = ensure_wheels(line, cache)
            ptxas = root / "nvidia" / "cuda_nvcc" / "bin" / "ptxas"
            try:
                ptx, lowered, log = nvrtc_compile(str(root), line.sm, head_sizes)
            except TrtEdgeError as exc:
                return [Result(line.name, line.sm, line.cuda, d, "FAIL", str(exc)) for d in head_sizes]
        else:
            nvcc = _nvcc()
            if nvcc is None:
                raise TrtEdgeError("nvcc not found (install the CUDA 13 toolkit)")
            ptxas = Path(nvcc).with_name("ptxas")
            try:
                ptx, lowered, log = nvcc_compile(nvcc, line.sm, head_sizes, work)
            except TrtEdgeError as exc:
                return [Result(line.name, line.sm, line.cuda, d, "FAIL", str(exc)) for d in head_sizes]
        return assess(line, ptx, lowered, log, ptxas, work)


def assess(line: Line, ptx: str, lowered: dict[int, str], log: str, ptxas: Path, work: Path) -> list[Result]:
    """Assemble ``ptx`` with ``ptxas -v`` for the line's SM and judge each head size of ``lowered``.

    FAIL on: a ptxas error, any spill store or load, any compiler output (NVRTC/nvcc warnings), a kernel
    without ``__launch_bounds__``, or a block that does not fit the SM; else ok, with the occupancy.
    """
    head_sizes = tuple(lowered)
    try:
        smem = _smem_from_ptx(ptx, head_sizes)
        report = parse_ptxas(_ptxas(str(ptxas), line.sm, ptx, work))
    except TrtEdgeError as exc:
        return [Result(line.name, line.sm, line.cuda, d, "FAIL", str(exc)) for d in head_sizes]
    results = []
    for d in head_sizes:
        usage = report.get(lowered[d])
        if usage is None:
            results.append(Result(line.name, line.sm, line.cuda, d, "FAIL", f"ptxas reported nothing for {lowered[d]}"))
            continue
        problems = []
        if usage.spill_stores or usage.spill_loads:
            problems.append(f"SPILL ({usage.spill_stores} B stores, {usage.spill_loads} B loads)")
        if log:
            problems.append(f"compiler output: {log.splitlines()[0]}")
        try:
            threads = _threads(ptx, lowered[d])
        except TrtEdgeError as exc:
            results.append(Result(line.name, line.sm, line.cuda, d, "FAIL", str(exc), usage))
            continue
        occ = occupancy(ARCH_LIMITS[line.sm], threads=threads, registers=usage.registers,
                        smem_bytes=smem[d] + usage.static_smem)
        if occ.blocks == 0:
            problems.append("does not fit one block per SM")
        results.append(Result(line.name, line.sm, line.cuda, d, "FAIL" if problems else "ok", "; ".join(problems),
                              usage, smem[d], occ))
    return results


def _threads(ptx: str, entry: str) -> int:
    """Threads per block from the entry's ``.maxntid`` (the kernel's __launch_bounds__)."""
    # ".maxntid 128, 1, 1" (PTX from CUDA 11/12) or ".maxntid 128" (CUDA 13)
    m = re.search(rf"\.entry\s+{re.escape(entry)}\s*\([^)]*\)\s*\.maxntid\s+(\d+(?:\s*,\s*\d+)*)", ptx)
    if m is None:
        raise TrtEdgeError(f"{entry} has no .maxntid: the kernel lost its __launch_bounds__")
    threads = 1
    for dim in m.group(1).split(","):
        threads *= int(dim)
    return threads


def _run_line(line: Line, cache: Path, head_sizes: tuple[int, ...]) -> tuple[list[Result], str | None]:
    try:
        return compile_line(line, cache, head_sizes), None
    except TrtEdgeError as exc:
        return [], str(exc)


def run_matrix(lines: tuple[Line, ...] = LINES, *, cache: Path = DEFAULT_CACHE, strict: bool = False,
               head_sizes: tuple[int, ...] = SUPPORTED_HEAD_SIZES,
               jobs: int = 2) -> list[Result]:
    """Every line × head size, lines in parallel, each in its own (spawned) process.

    A line whose toolchain is unavailable gives SKIPPED results, or FAIL ones when ``strict``.
    """
    ctx = multiprocessing.get_context("spawn")
    results: list[Result] = []
    with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=ctx) as pool:
        futures = [pool.submit(_run_line, line, cache, head_sizes) for line in lines]
        for line, future in zip(lines, futures, strict=True):
            line_results, missing = future.result()
            if missing is not None:
                status = "FAIL" if strict else "SKIPPED"
                line_results = [Result(line.name, line.sm, line.cuda, d, status, f"toolchain unavailable: {missing}")
                                for d in head_sizes]
            results.extend(line_results)
    return results


def markdown_table(results: list[Result]) -> str:
    """The docs/plugins.md table (arch × head size)."""
    jp = {line.name: line for line in LINES}
    rows = ["| arch (Jetson) | CUDA | head size | registers | spill stores / loads | stack | shared memory / block "
            "| blocks / SM | occupancy (limit) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r.usage is None or r.occupancy is None or r.dynamic_smem is None:
            rows.append(f"| sm_{r.sm} | {r.cuda} | {r.head_size} | {r.status}: {r.reason} | | | | | |")
            continue
        line = jp.get(r.line)
        rows.append(f"| sm_{r.sm} ({line.jetpack if line else ''}) | {r.cuda} | {r.head_size} | {r.usage.registers} | "
                    f"{r.usage.spill_stores} / {r.usage.spill_loads} B | {r.usage.stack} B | "
                    f"{(r.dynamic_smem + r.usage.static_smem) / 1024:.1f} KiB | {r.occupancy.blocks} | "
                    f"{r.occupancy.warps} warps = {r.occupancy.fraction:.0%} ({r.occupancy.limited_by[11:]}) |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """CLI: print one line per (arch, head size); exit 1 on any FAIL."""
    parser = argparse.ArgumentParser(prog="python -m trt_edge.plugins.cuda_matrix",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--strict", action="store_true", default=os.environ.get("CI", "").lower() in ("1", "true"),
                        help="a toolchain that cannot be installed or found fails the run (default with CI=true)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the CUDA wheels are installed")
    parser.add_argument("--line", action="append", choices=[line.name for line in LINES],
                        help="only these CUDA lines (repeatable; default: all)")
    parser.add_argument("--markdown", action="store_true", help="also print the docs/plugins.md table")
    parser.add_argument("--json-out", type=Path, help="write the results as JSON (a new file)")
    args = parser.parse_args(argv)
    if args.json_out is not None and args.json_out.exists():
        raise TrtEdgeError(f"{args.json_out} exists: not overwriting it")
    lines = tuple(line for line in LINES if not args.line or line.name in args.line)
    start = time.monotonic()
    results = run_matrix(lines, cache=args.cache, strict=args.strict)
    for r in results:
        print(r.summary())
    if args.markdown:
        print(markdown_table(results))
    if args.json_out is not None:
        tmp = args.json_out.with_name(args.json_out.name + ".tmp")
        tmp.write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=2) + "\n")
        tmp.replace(args.json_out)
    failed = [r for r in results if r.status == "FAIL"]
    skipped = [r for r in results if r.status == "SKIPPED"]
    verdict = "FAILED" if failed else "passed"
    print(f"cuda-matrix: {verdict}: {len(results) - len(failed) - len(skipped)} ok, {len(failed)} failed, "
          f"{len(skipped)} skipped in {time.monotonic() - start:.1f} s"
          + (" (not strict: SKIPPED toolchains do not fail; CI=true or --strict makes them fail)" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TrtEdgeError as exc:
        print(f"cuda-matrix: {exc}", file=sys.stderr)
        sys.exit(2)
