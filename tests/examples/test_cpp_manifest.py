"""The C++ example's manifest check, compiled with g++ and run against manifests (no TensorRT needed)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2] / "examples" / "cpp"
pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to compile the C++ example")


@pytest.fixture(scope="module")
def checker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = tmp_path_factory.mktemp("cpp") / "trt_edge_check_manifest"
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-O1", "-o", str(exe),
                    str(ROOT.parents[1] / "cpp" / "src" / "manifest.cpp"), str(ROOT / "check_manifest_main.cpp")],
                   check=True)
    return exe


def _plan(tmp_path: Path, **changes: object) -> Path:
    plan = tmp_path / "model.plan"
    plan.write_bytes(os.urandom(200_003))  # several SHA-256 blocks and a ragged tail
    plugin = tmp_path / "libattn.so"
    plugin.write_bytes(b"\x7fELF plugin bytes")
    manifest = {
        "kind": "trt-edge engine manifest", "status": "built", "schema": 1, "tensorrt": "10.3.0",
        "plan": {"file": plan.name, "sha256": hashlib.sha256(plan.read_bytes()).hexdigest()},
        "device": {"name": "Orin", "compute_capability": "8.7"}, "host_code": False,
        "plugins": [{"path": str(plugin), "sha256": hashlib.sha256(plugin.read_bytes()).hexdigest()}],
        "note": "unicode \u00e9 and escapes \"quoted\" \\ ok",
    }
    manifest.update(changes)
    (tmp_path / "model.plan.json").write_text(json.dumps(manifest, indent=2))
    return plan


def _check(exe: Path, plan: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(exe), str(plan), *args], capture_output=True, text=True, timeout=60)


def test_matching_manifest_is_accepted(checker: Path, tmp_path: Path) -> None:
    result = _check(checker, _plan(tmp_path), "--trt", "10.3.0", "--cc", "8.7")
    assert result.returncode == 0, result.stderr
    assert "1 plugin libraries" in result.stdout


def test_every_mismatch_is_refused(checker: Path, tmp_path: Path) -> None:
    plan = _plan(tmp_path, host_code=True)
    (tmp_path / "libattn.so").write_bytes(b"changed")
    data = plan.read_bytes()
    plan.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])  # always a different first byte (b"X" could equal it)
    result = _check(checker, plan, "--trt", "10.13.3", "--cc", "11.0")
    assert result.returncode == 2
    for text in ("sha256 does not match", "TensorRT 10.3.0, this machine has 10.13.3",
                 "compute capability 8.7, this GPU is 11.0", "embeds host code", "libattn.so changed"):
        assert text in result.stderr, (text, result.stderr)


def test_host_code_allowed_only_when_asked(checker: Path, tmp_path: Path) -> None:
    plan = _plan(tmp_path, host_code=True)
    assert _check(checker, plan).returncode == 2
    assert _check(checker, plan, "--allow-host-code").returncode == 0


def test_template_and_malformed_manifests(checker: Path, tmp_path: Path) -> None:
    plan = _plan(tmp_path, status="template")
    result = _check(checker, plan)
    assert result.returncode == 2 and "template" in result.stderr
    (tmp_path / "model.plan.json").write_text('{"kind": "trt-edge engine manifest", "plan": {')
    result = _check(checker, plan)
    assert result.returncode == 2 and "malformed JSON at byte" in result.stderr
