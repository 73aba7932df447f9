"""The ONNX graph library's place in the layers, and one graph index and one attribute reader in the kit."""

from __future__ import annotations

import ast
from pathlib import Path

import trt_edge

PACKAGE = Path(trt_edge.__file__).parent
# The foundations the graph library may use; everything else of the kit sits above it.
ALLOWED = {"trt_edge.errors", "trt_edge.log"}
# The modules of the graph area: the library, its emitters and the passes that read graphs through it.
AREA = [PACKAGE / "onnxgraph", PACKAGE / "export" / "lint", PACKAGE / "plugins",
        PACKAGE / "quantize" / "ort_attention.py", PACKAGE / "sparsity" / "onnx_check.py",
        PACKAGE / "quantize" / "placement.py"]


def _files(paths: list[Path]) -> list[Path]:
    return sorted(f for p in paths for f in ([p] if p.is_file() else p.rglob("*.py")))


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """Every import of a module, deferred (inside functions) ones included: (module, names)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [a.name for a in node.names]))
    return found


def test_onnxgraph_imports_nothing_above_it() -> None:
    files = _files([PACKAGE / "onnxgraph"])
    assert {f.stem for f in files} >= {"graph", "attention_match", "attention_verify", "splice"}
    for path in files:
        for module, _ in _imports(path):
            if module.startswith("trt_edge") and not module.startswith("trt_edge.onnxgraph"):
                assert module in ALLOWED, f"{path.name} imports {module}, above the graph library"


def test_one_graph_index_and_one_attribute_reader() -> None:
    for path in _files([PACKAGE]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                assert node.name != "_Graph", f"{path}: a private graph class (use onnxgraph.graph.GraphIndex)"
            if isinstance(node, ast.FunctionDef) and node.name in ("_attr", "attr"):
                assert path == PACKAGE / "onnxgraph" / "graph.py", f"{path}: an attribute reader of its own"


def test_no_private_names_cross_modules_and_modules_stay_small() -> None:
    for path in _files(AREA):
        for module, names in _imports(path):
            if module.startswith("trt_edge"):
                private = [n for n in names if n.startswith("_")]
                assert not private, f"{path}: imports private {private} from {module}"
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 600, f"{path} is over 600 lines"
