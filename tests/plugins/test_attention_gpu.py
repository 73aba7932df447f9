"""The GPU benchmark script: on a CUDA GPU it builds the kernel and must pass its correctness checks
(SDPA reference, poisoned outputs, exact masking, bad-input codes); without one it must say so and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "attention_gpu.py"


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def test_exits_clearly_without_a_gpu(tmp_path: Path) -> None:
    if _has_cuda():
        pytest.skip("a CUDA GPU is present: the no-GPU path does not apply")
    out = tmp_path / "attention.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True, text=True,
                          check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "no CUDA GPU" in proc.stderr and "still open" in proc.stderr
    assert json.loads(out.read_text())["status"] == "skipped"


@pytest.mark.gpu
def test_kernel_matches_sdpa_on_gpu(tmp_path: Path) -> None:
    out = tmp_path / "attention.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)], capture_output=True,
                          text=True, check=False, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["status"] == "ok" and all(c["ok"] for c in result["checks"])


PROOF = SCRIPT.parent / "gpu_proof.py"


def test_gpu_proof_exits_clearly_without_a_gpu(tmp_path: Path) -> None:
    if _has_cuda():
        pytest.skip("a CUDA GPU is present: the no-GPU path does not apply")
    proc = subprocess.run([sys.executable, str(PROOF), "--out", str(tmp_path)], capture_output=True, text=True,
                          check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "no CUDA GPU" in proc.stderr and "still open" in proc.stderr
    assert json.loads((tmp_path / "gpu_proof.json").read_text())["status"] == "skipped"


@pytest.mark.gpu
def test_gpu_proof_passes_on_gpu(tmp_path: Path) -> None:
    """No mask, padding, shared and per-batch additive bias, causal: every head size matches SDPA."""
    proc = subprocess.run([sys.executable, str(PROOF), "--quick", "--out", str(tmp_path)], capture_output=True,
                          text=True, check=False, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads((tmp_path / "gpu_proof.json").read_text())
    checks = result["attention"]["checks"]
    assert result["status"] == "ok" and all(c["ok"] for c in checks)
    assert {c["head_size"] for c in checks} == {32, 64, 128}
    assert {(c["padded"], c["bias"]) for c in checks} >= {(False, "none"), (True, "shared"), (False, "per_batch")}
    assert result["sparse_gemm"]["status"] in ("measured", "skipped")
