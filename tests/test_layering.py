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


# Still being removed by the other parts of issue 27; delete each entry when its change lands.


def _cycles() -> list[set[str]]:
    """The import graph's strongly connected components of more than one module (Tarjan, iterative)."""
    import grimp

    graph = grimp.build_graph("trt_edge", cache_dir=None)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_no_import_cycles_between_modules() -> None:
    """Across packages too (the contract's acyclic check looks inside each package, and the stages layer
    lets its packages import one another)."""
    pytest.importorskip("grimp")
    assert _cycles() == []


def test_no_module_imports_a_private_name_of_another() -> None:
    import ast

    found = set()
    for path in sorted((ROOT / "trt_edge").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trt_edge"):
                found |= {(module, node.module, a.name) for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")}
    assert found == set()
