"""Which TensorRT plugin generation runs the fused-attention node on a given TensorRT version.

TensorRT 10 introduced IPluginV3; TensorRT 8.5 (JetPack 5, the last release for Jetson Xavier) and 8.6
(JetPack 6.0) only have IPluginV2DynamicExt. The plugin library registers one generation, chosen when it is
compiled from the TensorRT headers' major version (plugins/fused_attention/FusedAttentionRegistration.cpp),
and each generation's creator has its own `plugin_version`, so the ONNX node must name the generation of
the TensorRT that will parse it. This module is the one place that choice is made: the ONNX rewrite asks
it for the node's attributes and the build plan for the generation it records (and checks the ONNX
against). Pure Python, no TensorRT import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trt_edge.errors import TrtEdgeError
from trt_edge.plugins.ort_reference import PLUGIN_DOMAIN, PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION
from trt_edge.trt_version import TrtVersion  # the project's TensorRT version type (single import, see issue 14)


@dataclass(frozen=True)
class PluginGeneration:
    """One plugin generation: its TensorRT interface and the `plugin_version` its creator registers."""

    interface: str
    plugin_version: str
    tensorrt: str  # the TensorRT releases it serves, for messages and docs

    def to_dict(self) -> dict[str, str]:
        return {"interface": self.interface, "plugin_version": self.plugin_version, "tensorrt": self.tensorrt}


# The versions match kFusedAttentionVersionV3 / kFusedAttentionVersionV2 in FusedAttentionCommon.h.
IPLUGIN_V3 = PluginGeneration("IPluginV3", PLUGIN_VERSION, "10.0 and later")  # the original "1"
IPLUGIN_V2 = PluginGeneration("IPluginV2DynamicExt", "2", "8.5 and 8.6")
GENERATIONS = (IPLUGIN_V3, IPLUGIN_V2)
# What the rewrite emits when no target TensorRT is known (an export without build.trt_version/jetpack).
DEFAULT_GENERATION = IPLUGIN_V3


def plugin_generation(trt_version: str | TrtVersion | None) -> PluginGeneration:
    """The generation for a target TensorRT version: IPluginV2DynamicExt on 8.5/8.6, IPluginV3 on 10+.

    Args:
        trt_version (str | TrtVersion | None): e.g. "8.5.2", "10.3". None gives `DEFAULT_GENERATION`.

    Raises:
        TrtEdgeError: a version no generation serves (before 8.5, or 9.x, which shipped for no Jetson).
    """
    if trt_version is None:
        return DEFAULT_GENERATION
    v = TrtVersion.parse(trt_version)
    if v.major >= 10:
        return IPLUGIN_V3
    if v.major == 8 and v.minor >= 5:
        return IPLUGIN_V2
    raise TrtEdgeError(f"the fused-attention plugin has no generation for TensorRT {v.short} "
                       "(IPluginV2DynamicExt serves 8.5/8.6, IPluginV3 10.0 and later)")


def by_interface(interface: str) -> PluginGeneration:
    """The generation named by its interface (`IPluginV3`, `IPluginV2DynamicExt`), as plans record it."""
    for gen in GENERATIONS:
        if gen.interface == interface:
            return gen
    raise TrtEdgeError(f"unknown plugin generation {interface!r} (known: "
                       f"{', '.join(g.interface for g in GENERATIONS)})")


def node_attributes(trt_version: str | TrtVersion | None) -> dict[str, Any]:
    """The attributes by which TensorRT's ONNX parser finds the creator: plugin_version and namespace."""
    return {"plugin_version": plugin_generation(trt_version).plugin_version, "plugin_namespace": PLUGIN_NAMESPACE}


def model_generations(model: Any) -> set[PluginGeneration]:
    """The generations the fused-attention nodes of an onnx.ModelProto are written for (empty: none).

    Raises:
        TrtEdgeError: a fused node with a plugin_version no generation registers.
    """
    import onnx

    found: set[PluginGeneration] = set()
    by_version = {g.plugin_version: g for g in GENERATIONS}
    for node in model.graph.node:
        if node.op_type != PLUGIN_NAME or node.domain != PLUGIN_DOMAIN:
            continue
        version = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "plugin_version"),
                       b"1")  # TensorRT's parser reads a missing plugin_version as "1"
        text = version.decode() if isinstance(version, bytes) else str(version)
        if text not in by_version:
            raise TrtEdgeError(f"fused-attention node {node.name!r} has plugin_version {text!r}, which no plugin "
                               f"generation registers ({', '.join(sorted(by_version))})")
        found.add(by_version[text])
    return found


def onnx_generation(path: Any) -> PluginGeneration | None:
    """The generation an ONNX file's fused-attention nodes are written for; None when it has none.

    Raises:
        TrtEdgeError: the file cannot be read, or its nodes mix generations (one library registers one).
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises several types for a bad file
        raise TrtEdgeError(f"cannot read ONNX model {path}: {exc}") from exc
    found = model_generations(model)
    if len(found) > 1:
        raise TrtEdgeError(f"{path}: its fused-attention nodes mix plugin generations "
                           f"({', '.join(sorted(g.interface for g in found))}); fuse it again for one TensorRT")
    return next(iter(found), None)
