"""The command line: every command's help works without TensorRT, user errors are one line and exit 2."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import trt_edge
from trt_edge.cli import TrtEdge, _fire_argv

ENV = {**os.environ, "PAGER": "cat", "HF_HUB_OFFLINE": "1"}


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trt_edge", *args], capture_output=True, text=True, env=ENV,
                          cwd=cwd, timeout=300)


def test_every_module_imports() -> None:
    for info in pkgutil.walk_packages(trt_edge.__path__, "trt_edge."):
        importlib.import_module(info.name)


def _commands() -> list[str]:
    return [name for name, _ in inspect.getmembers(TrtEdge, inspect.isfunction) if not name.startswith("_")]


def test_every_command_has_help() -> None:
    commands = _commands()
    assert "distill" in commands
    top = _run("--help")
    assert top.returncode == 0, top.stderr
    for name in commands:
        doc = inspect.getdoc(getattr(TrtEdge, name)) or ""
        assert doc.strip(), f"{name} has no docstring"
        result = _run(name.replace("_", "-"), "--help")
        assert result.returncode == 0, (name, result.stderr)
        assert doc.splitlines()[0][:40] in result.stdout + result.stderr, name


def test_qat_help_lists_its_config_keys() -> None:
    result = _run("qat", "--help")
    assert result.returncode == 0, result.stderr
    assert "--calibrate" in result.stdout + result.stderr  # Fire's part of the help
    for key in ("qat.when", "qat.trigger", "qat.learn_scales", "qat.train.max_steps", "qat.budget"):
        assert key in result.stdout, key


def test_help_flag_is_moved_past_overrides() -> None:
    assert _fire_argv(["distill", "--help"]) == ["distill", "--", "--help"]
    assert _fire_argv(["distill", "-h", "--x=1"]) == ["distill", "--x=1", "--", "--help"]
    assert _fire_argv(["distill", "--out", "o"]) == ["distill", "--out", "o"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("distill", "--config", "missing.yaml"), "config file not found: missing.yaml"),
        (("distill", "--distill.temprature=3"), "did you mean 'temperature'"),
        (("distill", "--task.data.source=/no/such.csv"), "dataset not found"),
        (("qat", "--model", "m"), "qat needs --calibrate"),
        (("qat", "--calibrate", "/no/such/calibrate", "--model", "."), "not a finished calibrate stage folder"),
    ],
)
def test_user_errors_are_one_line_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = _run(*args, "--out", str(tmp_path / "o"))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("trt-edge: error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()
