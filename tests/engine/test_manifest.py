"""The manifest check that runs before any plan is deserialized: match, mismatch (TensorRT version,
compute capability), tampered plan, changed plugin, host code refused unless allowed, missing manifest.

The plan files here are arbitrary bytes: the check is about hashes and recorded versions and never
deserializes anything, so no TensorRT is involved (nor pretended)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trt_edge.engine.manifest import (
    RuntimeEnv,
    check_manifest,
    finalize_manifest,
    manifest_path_for,
    new_manifest,
    plugin_entries,
    read_manifest,
    write_manifest,
)
from trt_edge.engine.plan import BuildPlan
from trt_edge.errors import TrtEdgeError

BUILT_ON = RuntimeEnv(tensorrt="10.3.0.30", compute_capability="8.7", device_name="Orin", cuda="12.6",
                      l4t="36.4.3", jetpack="6.2")


def _built(tmp_path: Path, *, plugins: list[str] | None = None, **plan_kw: Any) -> Path:
    plan = BuildPlan(precision="int8-qdq", trt_version="10.3", device="agx-orin-64gb", **plan_kw)
    plan_path = tmp_path / "model.plan"
    plan_path.write_bytes(b"\x00plan-bytes\x01" * 100)
    manifest = new_manifest(plan, status="built", env=BUILT_ON, device_key="agx-orin-64gb",
                            plugins=plugin_entries(plugins or []))
    finalize_manifest(manifest, plan_path)
    write_manifest(manifest_path_for(plan_path), manifest)
    return plan_path


def test_matching_manifest_passes(tmp_path: Path) -> None:
    plan = _built(tmp_path)
    assert manifest_path_for(plan).name == "model.plan.json"
    assert check_manifest(plan, None, RuntimeEnv(tensorrt="10.3.0.30", compute_capability="8.7")) == []
    data = read_manifest(manifest_path_for(plan))
    assert data["tensorrt"] == "10.3.0.30" and data["device"]["compute_capability"] == "8.7"
    assert data["l4t"] == "36.4.3" and data["precision"] == "int8-qdq" and data["strongly_typed"]
    assert check_manifest(plan, data, RuntimeEnv()) == []  # unknown environment: hashes still checked


@pytest.mark.parametrize(("env", "message"), [
    (RuntimeEnv(tensorrt="10.13.3", compute_capability="8.7"),
     "built with TensorRT 10.3.0.30, this machine has 10.13.3"),
    (RuntimeEnv(tensorrt="8.5.2", compute_capability="8.7"), "this machine has 8.5.2"),
    (RuntimeEnv(tensorrt="10.3.0", compute_capability="11.0"), "built for compute capability 8.7, this GPU is 11.0"),
])
def test_mismatch_is_refused_with_what_to_rebuild(tmp_path: Path, env: RuntimeEnv, message: str) -> None:
    plan = _built(tmp_path)
    with pytest.raises(TrtEdgeError) as info:
        check_manifest(plan, None, env)
    text = str(info.value)
    assert message in text and "Rebuild it on this device" in text and "trt-edge build" in text


def test_tampered_or_truncated_plan(tmp_path: Path) -> None:
    plan = _built(tmp_path)
    plan.write_bytes(plan.read_bytes()[:-10])
    with pytest.raises(TrtEdgeError, match="plan file changed since it was built"):
        check_manifest(plan, None, BUILT_ON)


def test_missing_or_foreign_manifest(tmp_path: Path) -> None:
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"x")
    with pytest.raises(TrtEdgeError, match="manifest missing"):
        check_manifest(plan, None, BUILT_ON)
    manifest_path_for(plan).write_text('{"hello": 1}')
    with pytest.raises(TrtEdgeError, match="not a trt-edge engine manifest"):
        check_manifest(plan, None, BUILT_ON)
    manifest_path_for(plan).write_text("{trunc")
    with pytest.raises(TrtEdgeError, match="unreadable manifest"):
        check_manifest(plan, None, BUILT_ON)


def test_template_manifest_is_not_a_build(tmp_path: Path) -> None:
    plan = BuildPlan(precision="fp16", trt_version="10.3", device="agx-orin-64gb")
    (tmp_path / "model.plan").write_bytes(b"x")
    write_manifest(tmp_path / "model.plan.json", new_manifest(plan, status="template", device_key="agx-orin-64gb"))
    with pytest.raises(TrtEdgeError, match=r"run build_on_device\.sh"):
        check_manifest(tmp_path / "model.plan", None, BUILT_ON)


def test_plugin_changed_or_missing(tmp_path: Path) -> None:
    lib = tmp_path / "libplugin.so"
    lib.write_bytes(b"ELF-ish")
    plan = _built(tmp_path, plugins=[str(lib)])
    assert check_manifest(plan, None, BUILT_ON) == []
    lib.write_bytes(b"ELF-ish, recompiled")
    with pytest.raises(TrtEdgeError, match=r"libplugin\.so changed since the build"):
        check_manifest(plan, None, BUILT_ON)
    moved = tmp_path / "elsewhere.so"
    lib.rename(moved)
    with pytest.raises(TrtEdgeError, match="is missing"):
        check_manifest(plan, None, BUILT_ON)


def test_host_code_refused_unless_allowed(tmp_path: Path) -> None:
    plan = _built(tmp_path, version_compatible=True)
    with pytest.raises(TrtEdgeError, match="embeds host code"):
        check_manifest(plan, None, BUILT_ON)
    assert check_manifest(plan, None, BUILT_ON, allow_host_code=True) == []
    # a version-compatible plan runs on later TensorRT of the same major, not earlier or the next major
    assert check_manifest(plan, None, RuntimeEnv(tensorrt="10.13.3", compute_capability="8.7"),
                          allow_host_code=True) == []
    for older in ("10.2.0", "11.0.0"):
        with pytest.raises(TrtEdgeError, match="version-compatible plan"):
            check_manifest(plan, None, RuntimeEnv(tensorrt=older), allow_host_code=True)


def test_serialized_plugins_are_host_code(tmp_path: Path) -> None:
    lib = tmp_path / "libp.so"
    lib.write_bytes(b"p")
    plan = _built(tmp_path, plugins=[str(lib)], serialize_plugins=True)
    with pytest.raises(TrtEdgeError, match="serialized plugin libraries"):
        check_manifest(plan, None, BUILT_ON)


def test_hardware_compatible_plan_runs_on_later_gpus(tmp_path: Path) -> None:
    plan = _built(tmp_path, hardware_compatibility="ampere+")
    assert check_manifest(plan, None, RuntimeEnv(tensorrt="10.3.0", compute_capability="8.9")) == []
    with pytest.raises(TrtEdgeError, match="Ampere"):
        check_manifest(plan, None, RuntimeEnv(tensorrt="10.3.0", compute_capability="7.2"))


def test_every_problem_at_once(tmp_path: Path) -> None:
    plan = _built(tmp_path, version_compatible=False)
    plan.write_bytes(b"tampered")
    with pytest.raises(TrtEdgeError) as info:
        check_manifest(plan, None, RuntimeEnv(tensorrt="10.13.3", compute_capability="11.0"))
    text = str(info.value)
    assert "changed since" in text and "10.13.3" in text and "11.0" in text
