"""The 2:4 GEMM benchmark script: a clear exit without a GPU; on a GPU, sparse results match dense."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sparse_gemm_gpu.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sparse_gemm_gpu", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_student_shapes_are_the_pruned_linears(minilm_dir: Path) -> None:
    shapes = {(o, i): names for o, i, names in _load().linear_shapes(str(minilm_dir))}
    assert set(shapes) == {(384, 384), (1536, 384), (384, 1536)}
    assert len(shapes[(384, 384)]) == 6 * 4  # Q, K, V, attention output in 6 layers


def test_without_gpu_it_exits_2_and_records_the_skip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the skip path is not taken")
    out = tmp_path / "g.json"
    assert _load().main(["--out", str(out)]) == 2
    assert json.loads(out.read_text())["status"] == "skipped"
    assert "still open" in capsys.readouterr().err


@pytest.mark.gpu
def test_sparse_gemm_matches_dense_on_gpu(tmp_path: Path) -> None:
    import torch

    if torch.cuda.get_device_capability(0)[0] < 8:
        pytest.skip("2:4 sparse tensor cores need SM 8.0 or newer")
    out = tmp_path / "g.json"
    assert _load().main(["--out", str(out), "--rows", "128,1024", "--iters", "10", "--warmup", "3"]) == 0
    report = json.loads(out.read_text())
    assert report["status"] == "measured" and len(report["results"]) == 6
    assert all(r["sparse_ms"] > 0 and r["dense_ms"] > 0 for r in report["results"])
