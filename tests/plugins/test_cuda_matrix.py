"""The CUDA compile matrix (`trt_edge.plugins.cuda_matrix`, run by .ci/run): ptxas's report is read right,
the occupancy follows CUDA's calculator, a spill fails, and a missing toolchain fails under --strict only.

The NVRTC lines (CUDA 11.7 / 12.6 wheels) run in .ci/run's own step, not here (their ~200 MB of wheels are
installed there once); here the CUDA 13 line runs for real where nvcc exists (about 2 s per compile).
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.plugins import cuda_matrix as cm

# The shape of `ptxas -v` output (CUDA 12.6, sm_87): one function with a spill, one without, static smem.
PTXAS_TEXT = """\
ptxas info    : 372 bytes gmem, 456 bytes cmem[4]
ptxas info    : Compiling entry function '_Z1aILi64EEvv' for 'sm_87'
ptxas info    : Function properties for _Z1aILi64EEvv
    8 bytes stack frame, 4 bytes spill stores, 8 bytes spill loads
ptxas info    : Used 48 registers, used 1 barriers, 8 bytes cumulative stack size, 424 bytes cmem[0]
ptxas info    : Compiling entry function '_Z1bv' for 'sm_87'
ptxas info    : Function properties for _Z1bv
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 83 registers, 2048 bytes smem, 424 bytes cmem[0], 32 bytes cmem[2]
"""


def test_parse_ptxas_reads_every_function() -> None:
    report = cm.parse_ptxas(PTXAS_TEXT)
    assert report["_Z1aILi64EEvv"] == cm.Usage(registers=48, spill_stores=4, spill_loads=8, stack=8, static_smem=0)
    assert report["_Z1bv"] == cm.Usage(registers=83, spill_stores=0, spill_loads=0, stack=0, static_smem=2048)


def test_parse_ptxas_refuses_an_incomplete_report() -> None:
    # A format change must not read as "0 spills".
    truncated = "\n".join(PTXAS_TEXT.splitlines()[:3])
    with pytest.raises(TrtEdgeError, match="incomplete"):
        cm.parse_ptxas(truncated)


def test_occupancy_follows_the_calculator() -> None:
    orin = cm.ARCH_LIMITS[87]
    # Shared memory binds: 61.8 KiB + 1 KiB reserved -> 2 blocks in 164 KiB.
    occ = cm.occupancy(orin, threads=128, registers=82, smem_bytes=63_232)
    assert (occ.blocks, occ.warps, occ.limited_by) == (2, 8, "limited by shared memory")
    assert occ.fraction == pytest.approx(8 / 48)
    # Registers bind: 255 registers -> 256 * 32 = 8192 per warp, 2 warps per sub-partition, 8 warps = 2 blocks.
    occ = cm.occupancy(orin, threads=128, registers=255, smem_bytes=0)
    assert (occ.blocks, occ.limited_by) == (2, "limited by registers")
    # Rounding: 73 registers are 2336 per warp, allocated as 2560: 6 warps per sub-partition (7 unrounded).
    assert cm.occupancy(orin, threads=128, registers=73, smem_bytes=0).blocks == 6
    assert cm.occupancy(orin, threads=128, registers=72, smem_bytes=0).blocks == 7
    # Warps bind: 48 resident warps / 4 per block; the block limit (16) is not reached.
    occ = cm.occupancy(orin, threads=128, registers=32, smem_bytes=1024)
    assert (occ.blocks, occ.fraction, occ.limited_by) == (12, 1.0, "limited by warp limit")
    # Xavier has no reserved shared memory and 96 KiB: two 45.8 KiB blocks fit, three do not.
    assert cm.occupancy(cm.ARCH_LIMITS[72], threads=128, registers=115, smem_bytes=46_848).blocks == 2
    # Above the per-block maximum: nothing runs.
    assert cm.occupancy(cm.ARCH_LIMITS[72], threads=128, registers=64, smem_bytes=97 * 1024).blocks == 0


def _cu13() -> cm.Line:
    if cm._nvcc() is None:
        pytest.skip("nvcc (CUDA 13) not found: the CUDA 13 line of the matrix needs it")
    return next(line for line in cm.LINES if line.name == "cu13")


def test_cuda13_line_compiles_every_head_size_without_spills() -> None:
    results = cm.compile_line(_cu13(), cm.DEFAULT_CACHE, cm.SUPPORTED_HEAD_SIZES)
    assert [r.head_size for r in results] == list(cm.SUPPORTED_HEAD_SIZES)
    for r in results:
        assert r.status == "ok", r.summary()
        assert r.usage is not None and r.dynamic_smem is not None and r.occupancy is not None
        assert r.usage.spill_stores == r.usage.spill_loads == 0
        assert 0 < r.usage.registers <= 255
        assert r.occupancy.blocks >= 1
    smem = [r.dynamic_smem for r in results]
    assert smem == sorted(smem), "the shared-memory plan grows with the head size"


def test_a_spill_fails_the_matrix() -> None:
    line = _cu13()
    nvcc = cm._nvcc()
    assert nvcc is not None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ptx, lowered, log = cm.nvcc_compile(nvcc, line.sm, (64,), work)
        # Cap the kernel at 40 registers (PTX .maxnreg) instead of its launch-bounds hint: ptxas must spill.
        assert ".minnctapersm" in ptx
        capped = ptx.replace(".minnctapersm 1", ".maxnreg 40")
        (result,) = cm.assess(line, capped, lowered, log, Path(nvcc).with_name("ptxas"), work)
        (clean,) = cm.assess(line, ptx, lowered, log, Path(nvcc).with_name("ptxas"), work)
    assert result.status == "FAIL" and "SPILL" in result.reason, result.summary()
    assert result.summary().startswith("FAIL")
    assert clean.status == "ok", clean.summary()


def test_missing_toolchain_skips_outside_ci_and_fails_under_strict(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    # A pin that cannot be installed (no index, no local wheels): what a clone without network sees.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    base = next(line for line in cm.LINES if line.name == "cu11")
    line = dataclasses.replace(base, wheels=("nvidia-cuda-nvrtc-cu11==0.0.1",))
    relaxed = cm.run_matrix((line,), cache=tmp_path / "cache", strict=False, head_sizes=(64,), jobs=1)
    strict = cm.run_matrix((line,), cache=tmp_path / "cache", strict=True, head_sizes=(64,), jobs=1)
    assert [r.status for r in relaxed] == ["SKIPPED"]
    assert [r.status for r in strict] == ["FAIL"]
    assert "pip could not install nvidia-cuda-nvrtc-cu11==0.0.1" in strict[0].reason
    assert not (tmp_path / "cache" / "cu11").exists(), "a failed install leaves no cache folder behind"


def test_main_exit_status_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _cu13()
    out = tmp_path / "matrix.json"
    assert cm.main(["--line", "cu13", "--strict", "--json-out", str(out)]) == 0
    text = capsys.readouterr().out
    assert sum(line.startswith("ok ") for line in text.splitlines()) == len(cm.SUPPORTED_HEAD_SIZES)
    assert "cuda-matrix: passed" in text
    assert out.is_file()
    with pytest.raises(TrtEdgeError, match="not overwriting"):
        cm.main(["--line", "cu13", "--json-out", str(out)])
