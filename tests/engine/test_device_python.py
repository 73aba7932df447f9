"""The Python that runs on a Jetson runs on its JetPack's Python (trt_edge.engine.device_python,
.ci/python-versions): the snippets of build_on_device.sh and jetson/*.sh parse as Python 3.8 and pass vermin
at 3.8; a 3.9-only snippet fails that check; trt-edge's own floor matches pyproject; 3.12 removals are found.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from trt_edge.engine import device_python as dp

REPO = Path(__file__).resolve().parents[2]


def test_jetpack_pythons_come_from_the_device_catalog() -> None:
    pythons = dp.jetpack_pythons()
    majors = {jp.split(".")[0]: v for jp, v in pythons.items()}
    assert majors["5"] == (3, 8) and majors["6"] == (3, 10) and majors["7"] == (3, 12)
    assert dp.snippet_target() == (3, 8)


def test_package_floor_is_pyprojects_requires_python() -> None:
    text = (REPO / "pyproject.toml").read_text()
    m = re.search(r'requires-python\s*=\s*">=(\d+)\.(\d+)"', text)
    assert m is not None
    assert (int(m.group(1)), int(m.group(2))) == dp.PACKAGE_MIN


def test_shell_python_snippets_finds_heredocs_and_dash_c() -> None:
    script = ("python3 - a b <<'PY'\nimport sys\nprint(sys.argv)\nPY\n"
              "x=$(python3 -c 'import os\nprint(os.sep)')\n"
              "python - <<'EOF'\nprint(1)\nEOF\n")
    assert dp.shell_python_snippets(script) == ["import sys\nprint(sys.argv)", "print(1)", "import os\nprint(os.sep)"]


def test_device_snippets_cover_the_bundle_and_jetson_scripts() -> None:
    snippets = dp.device_snippets()
    from_bundle = [s for name, s in snippets.items() if name.startswith("build_on_device_sh_")]
    # the manifest writer after trtexec and the SHA256SUMS check without sha256sum
    assert any("model.plan.json" in s and "hashlib" in s for s in from_bundle)
    assert any("SHA256SUMS" in s for s in from_bundle)
    assert any(name.startswith("jetson_setup_sh_") for name in snippets)
    for name, source in snippets.items():
        ast.parse(source, filename=name, feature_version=dp.snippet_target())


def _vermin() -> str:
    found = shutil.which("vermin")
    if found is None:
        pytest.skip("vermin not installed (dev extra): the Python-version check needs it")
    return found


def test_vermin_passes_the_snippets_at_38_and_fails_a_39_one(tmp_path: Path) -> None:
    vermin = _vermin()
    assert dp.main(["--out", str(tmp_path / "ok")]) == 0
    ok = subprocess.run([vermin, "-t=3.8-", "--no-tips", "--violations", str(tmp_path / "ok")],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "new.py").write_text('name = "model.plan".removesuffix(".plan")\n')  # str.removesuffix: 3.9
    failed = subprocess.run([vermin, "-t=3.8-", "--no-tips", "--violations", str(bad)],
                            capture_output=True, text=True, check=False)
    assert failed.returncode != 0 and "removesuffix" in failed.stdout


def test_out_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(dp.TrtEdgeError, match="not empty"):
        dp.main(["--out", str(tmp_path)])
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_removed_in_312_finds_removed_modules(tmp_path: Path) -> None:
    f = tmp_path / "old.py"
    f.write_text("import os\nfrom distutils.util import strtobool\nimport imp\nfrom . import asyncore\n")
    assert dp.removed_in_312([tmp_path]) == [f"{f}:2: distutils.util", f"{f}:3: imp"]
    assert dp.removed_in_312([REPO / "trt_edge"]) == []
