"""The import contract (pyproject's [tool.importlinter], run by .ci/run as `lint-imports`) holds on the
real tree and catches a planted violation: an upward import, and an import cycle inside a package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parents[1]


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the `trt_edge` package under `tree`, with the project's contract."""
    script = ("import sys; from importlinter.cli import lint_imports; "
              "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True))")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, "-c", script], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=600)


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "trt_edge", tree / "trt_edge", ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_real_tree_keeps_the_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    files = tree / "trt_edge" / "files.py"
    # A deferred import counts like a module-level one: the foundations may not reach up to the pipeline.
    files.write_text(files.read_text() + "\n\ndef _planted() -> None:\n    from trt_edge.pipeline import runner\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert "trt_edge.files -> trt_edge.pipeline.runner" in result.stdout


def test_a_cycle_inside_a_package_breaks_the_contract(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    plan = tree / "trt_edge" / "engine" / "plan.py"
    # trtexec renders plans; the plan importing its renderer back is the cycle this contract forbids.
    plan.write_text(plan.read_text() + "\n\ndef _planted() -> None:\n    from trt_edge.engine import trtexec\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert "No cycles are allowed in trt_edge.engine" in result.stdout
