"""The Python that runs on a Jetson, per JetPack, and the snippets CI checks against JetPack 5's Python 3.8.

Two kinds of Python run on the device:

* **Standard-library snippets on the system ``python3``**: a bundle's ``build_on_device.sh`` (the manifest
  writer after a trtexec build, the SHA256SUMS check where ``sha256sum`` is missing) and the heredocs of
  ``jetson/*.sh``. They must run on every JetPack's Python, down to **3.8 (JetPack 5)**, because on JetPack 5
  trt-edge itself cannot be installed (it needs Python >= 3.10) and the bundle's trtexec path is the way
  to an engine there.
* **trt-edge itself** (``trt-edge build --plan`` from ``build_on_device.sh``, ``run``, ``profile``, the
  ``benchmarks/*_gpu.py`` scripts): Python >= 3.10, so **JetPack 6 (3.10) and 7 (3.12)**.

The JetPack -> Python table is the device catalog's (``trt_edge/data/devices.yaml``: 5.x 3.8, 6.x 3.10,
7.x 3.12). ``python -m trt_edge.engine.device_python --out DIR`` writes each snippet to ``DIR`` as its own file (named
after where it comes from) for ``vermin -t=3.8-`` (``.ci/python-versions``), and ``--removed-in-312 PATH...``
lists imports of standard-library modules Python 3.12 removed (vermin checks minimum versions only).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

from trt_edge.devices import platforms
from trt_edge.errors import TrtEdgeError

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_MIN = (3, 10)  # trt-edge itself: pyproject's requires-python (tests/engine/test_device_python.py)
# Standard-library modules removed by Python 3.12 (PEP 594/632 and earlier deprecations).
REMOVED_IN_312 = ("asynchat", "asyncore", "distutils", "imp", "smtpd")

_HEREDOC = re.compile(r"\bpython3?\b[^\n]*<<-?\s*'(\w+)'\n(.*?)\n\1\n", re.S)
_DASH_C = re.compile(r"\bpython3?\s+-c\s+'([^']*)'")


def jetpack_pythons() -> dict[str, tuple[int, int]]:
    """{JetPack release: its system Python (major, minor)}, from the device catalog (devices.yaml)."""
    out = {}
    for jetpack, p in platforms().items():
        major, minor = p.python.split(".")[:2]
        out[jetpack] = (int(major), int(minor))
    return out


def snippet_target() -> tuple[int, int]:
    """The oldest Python of any JetPack in the catalog: what the device snippets must run on (3.8)."""
    return min(jetpack_pythons().values())


def shell_python_snippets(text: str) -> list[str]:
    """The Python a bash script hands to ``python``/``python3``: quoted heredocs and ``-c '...'`` bodies."""
    return [m.group(2) for m in _HEREDOC.finditer(text)] + [m.group(1) for m in _DASH_C.finditer(text)]


def _bundle_script() -> str:
    """A representative build_on_device.sh: trtexec path, fused-attention plugin block and tokenizer copy."""
    from trt_edge.engine.bundle import render_script
    from trt_edge.engine.plan import BuildPlan

    plan = BuildPlan(precision="int8-qdq", trt_version="8.5.2", device="xavier-nx",
                     attention_plugin="IPluginV2DynamicExt")
    return render_script(plan, "tokenizer")


def device_snippets(repo_root: Path = REPO_ROOT) -> dict[str, str]:
    """{name: source} of every standard-library snippet that runs on the device's system Python.

    The bundle's script is rendered by the code that writes bundles; ``jetson/*.sh`` are read from the
    checkout when it has them. A script whose Python cannot be found is an error, so the check never
    passes over nothing.
    """
    sources = {"build_on_device.sh": _bundle_script()}
    jetson = repo_root / "jetson"
    if jetson.is_dir():
        for script in sorted(jetson.glob("*.sh")):
            sources[f"jetson/{script.name}"] = script.read_text()
    out: dict[str, str] = {}
    for origin, text in sources.items():
        for i, snippet in enumerate(shell_python_snippets(text), start=1):
            out[f"{origin.replace('/', '_').replace('.', '_')}_{i}.py"] = snippet + "\n"
    if not any(name.startswith("build_on_device_sh_") for name in out):
        raise TrtEdgeError("build_on_device.sh holds no Python snippet: the extraction pattern is out of date")
    return out


def removed_in_312(paths: list[Path]) -> list[str]:
    """``file:line: module`` for each import of a module Python 3.12 removed, in the .py files under paths."""
    found = []
    files = [f for p in paths for f in (sorted(p.rglob("*.py")) if p.is_dir() else [p])]
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            found += [f"{f}:{node.lineno}: {name}" for name in names if name.split(".")[0] in REMOVED_IN_312]
    return found


def main(argv: list[str] | None = None) -> int:
    """``--out DIR``: write the snippets; ``--removed-in-312 PATH...``: exit 1 when one is imported."""
    parser = argparse.ArgumentParser(prog="python -m trt_edge.engine.device_python",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="an empty or new folder for the snippets")
    parser.add_argument("--snippet-target", action="store_true",
                        help="print the oldest JetPack Python (the vermin target of the snippets, e.g. 3.8)")
    parser.add_argument("--removed-in-312", nargs="+", type=Path, metavar="PATH",
                        help="files/folders whose imports must not name a module Python 3.12 removed")
    args = parser.parse_args(argv)
    status = 0
    if args.snippet_target:
        major, minor = snippet_target()
        print(f"{major}.{minor}")
    if args.out is not None:
        if args.out.exists() and any(args.out.iterdir()):
            raise TrtEdgeError(f"{args.out} is not empty: not writing snippets into it")
        args.out.mkdir(parents=True, exist_ok=True)
        for name, source in device_snippets().items():
            (args.out / name).write_text(source)
            print(f"device-python: {args.out / name}")
    if args.removed_in_312:
        for line in removed_in_312(args.removed_in_312):
            print(f"device-python: removed in Python 3.12: {line}")
            status = 1
    return status


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TrtEdgeError as exc:
        print(f"device-python: {exc}", file=sys.stderr)
        sys.exit(2)
