"""The plugin generation follows the target TensorRT: IPluginV2DynamicExt (plugin_version "2") for 8.5/8.6,
IPluginV3 (plugin_version "1") for 10+; the ONNX rewrite emits it and the build plan records and checks it."""

from __future__ import annotations

import pytest
from onnx import helper

from trt_edge.engine.plan import BuildPlan
from trt_edge.errors import TrtEdgeError
from trt_edge.plugins.generation import (
    IPLUGIN_V2,
    IPLUGIN_V3,
    by_interface,
    model_generations,
    node_attributes,
    plugin_generation,
)
from trt_edge.plugins.onnx_rewrite import fuse_attention

from .test_onnx_rewrite import _attention_model, _feeds, _fused_nodes


@pytest.mark.parametrize(("version", "expected"), [
    ("8.5", IPLUGIN_V2), ("8.5.2.2", IPLUGIN_V2), ("8.6.1", IPLUGIN_V2), ("8.6.x", IPLUGIN_V2),
    ("10.0", IPLUGIN_V3), ("10.3.0", IPLUGIN_V3), ("10.13.3", IPLUGIN_V3), ("11.1", IPLUGIN_V3), (None, IPLUGIN_V3),
])
def test_generation_by_tensorrt_version(version: str | None, expected: object) -> None:
    assert plugin_generation(version) == expected
    assert node_attributes(version) == {"plugin_version": plugin_generation(version).plugin_version,
                                        "plugin_namespace": ""}


@pytest.mark.parametrize("version", ["8.4.1", "9.2", "7.1.3"])
def test_versions_without_a_generation_are_refused(version: str) -> None:
    with pytest.raises(TrtEdgeError, match="no generation"):
        plugin_generation(version)


def test_generations_have_distinct_plugin_versions() -> None:
    assert (IPLUGIN_V3.plugin_version, IPLUGIN_V2.plugin_version) == ("1", "2")  # FusedAttentionCommon.h
    assert by_interface("IPluginV2DynamicExt") == IPLUGIN_V2
    with pytest.raises(TrtEdgeError, match="unknown plugin generation"):
        by_interface("IPluginV4")


@pytest.mark.parametrize(("version", "plugin_version"), [("8.5.2", b"2"), ("8.6", b"2"), ("10.3", b"1"),
                                                         ("11.1", b"1"), (None, b"1")])
def test_rewrite_emits_the_targets_generation(version: str | None, plugin_version: bytes) -> None:
    model = _attention_model(2, 32, "padding", layers=2)
    fused, layers, unfused = fuse_attention(model, _feeds(64), version)
    assert len(layers) == 2 and unfused == []
    for node in _fused_nodes(fused):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["plugin_version"] == plugin_version and attrs["plugin_namespace"] == b""
    assert model_generations(fused) == {plugin_generation(version)}
    assert model_generations(model) == set()


@pytest.mark.parametrize(("onnx_generation", "trt", "ok"), [
    ("IPluginV2DynamicExt", "8.5.2", True), ("IPluginV2DynamicExt", "8.6", True), ("IPluginV3", "10.3", True),
    ("IPluginV3", "11.1", True), ("IPluginV3", "8.5.2", False), ("IPluginV3", "8.6", False),
    ("IPluginV2DynamicExt", "10.3", False), (None, "8.5.2", True),
])
def test_build_plan_checks_the_onnx_generation(onnx_generation: str | None, trt: str, ok: bool) -> None:
    plan = BuildPlan(precision="fp16", trt_version=trt, attention_plugin=onnx_generation)
    problems, _ = plan.check()
    generation_problems = [p for p in problems if "fused-attention" in p]
    assert (generation_problems == []) == ok, problems
    if not ok:
        assert f"plugin_version {plugin_generation(trt).plugin_version}" in generation_problems[0]
    assert BuildPlan.from_dict(plan.to_dict()).attention_plugin == onnx_generation


def test_export_targets_the_configs_tensorrt() -> None:
    """`trt-edge export --fuse-attention` fuses for build.trt_version, else build.jetpack's TensorRT."""
    from trt_edge.config import RunConfig
    from trt_edge.export.stage import _target_trt_version

    assert _target_trt_version(RunConfig({"build": {"trt_version": "8.6", "jetpack": None}})) == "8.6.0"
    assert plugin_generation(_target_trt_version(RunConfig({"build": {"jetpack": "5.1.2"}}))) == IPLUGIN_V2
    assert plugin_generation(_target_trt_version(RunConfig({"build": {"jetpack": "6.2"}}))) == IPLUGIN_V3
    assert _target_trt_version(RunConfig({"build": {"jetpack": None}})) is None
    with pytest.raises(TrtEdgeError, match="no generation"):
        _target_trt_version(RunConfig({"build": {"trt_version": "8.4"}}))
