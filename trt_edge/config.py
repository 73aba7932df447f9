"""The run config: one YAML file with one section per stage, plus command-line overrides.

This module only reads YAML and composes; each section's dataclass belongs to its stage and is found
through `SECTIONS` (imported lazily, so reading a config never imports torch). Unknown sections and keys
are refused with the nearest valid name. Overrides use dotted keys (`--distill.train.epochs=2`); a stage
command also accepts its own keys bare (`trt-edge distill --temperature 4`).
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from trt_edge.configbase import ConfigBase, nearest
from trt_edge.errors import TrtEdgeError
from trt_edge.guard import too_big

# section name -> "module:Class". Every stage registers its own section here.
SECTIONS: dict[str, str] = {
    "task": "trt_edge.tasks.config:TaskConfig",
    "target": "trt_edge.target:TargetConfig",
    "distill": "trt_edge.distill.config:DistillConfig",
    "prune": "trt_edge.sparsity.config:PruneConfig",
    "width": "trt_edge.sparsity.config:WidthConfig",
    "export": "trt_edge.export.config:ExportConfig",
    "calibrate": "trt_edge.quantize.config:CalibrateConfig",
    "qat": "trt_edge.quantize.config:QatConfig",
    "build": "trt_edge.engine.config:BuildConfig",
    "profile": "trt_edge.profile.config:ProfileConfig",
    "pipeline": "trt_edge.pipeline.config:PipelineConfig",
}
# Top-level keys that are not sections.
TOP_LEVEL = {"version", "name", "description"}


def section_class(name: str) -> type[ConfigBase]:
    if name not in SECTIONS:
        raise TrtEdgeError(f"unknown config section {name!r}{nearest(name, SECTIONS)}")
    module_name, _, cls_name = SECTIONS[name].partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    if not (isinstance(cls, type) and issubclass(cls, ConfigBase)):
        raise TypeError(f"{SECTIONS[name]} is not a ConfigBase")
    return cls


class RunConfig:
    """Raw sections from YAML + overrides; `section(name)` builds and validates one typed config."""

    def __init__(self, raw: Mapping[str, Any] | None = None, source: str | None = None) -> None:
        self.raw: dict[str, Any] = copy.deepcopy(dict(raw or {}))
        self.source = source
        for key, value in self.raw.items():
            if key in TOP_LEVEL:
                continue
            if key not in SECTIONS:
                valid = ", ".join(sorted(SECTIONS))
                raise TrtEdgeError(f"unknown config section {key!r}{nearest(key, SECTIONS)}; valid: {valid}")
            if value is not None and not isinstance(value, Mapping):
                raise TrtEdgeError(f"config section {key!r} must be a mapping, got {value!r}")

    def section(self, name: str) -> Any:
        return section_class(name).from_dict(self.raw.get(name) or {}, name)

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.raw)


class YamlFloat(float):
    """A YAML float that remembers how it was written: `trt_version: 10.10` is the float 10.1, but the
    string field it is meant for gets "10.10" back (`configbase` reads `.text`)."""

    text: str = ""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (the last one silently won) and keeps float spellings."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:
            continue  # unhashable: SafeLoader refuses it below with its own message
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


def _float(loader: _StrictLoader, node: yaml.ScalarNode) -> float:
    value = YamlFloat(loader.construct_yaml_float(node))
    value.text = str(node.value)
    return value


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _float)
_MAX_NODES = 100_000


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, or say in one line what is wrong with the file."""
    p = Path(path)
    if not p.is_file():
        raise TrtEdgeError(f"config file not found: {p}")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TrtEdgeError(f"{p}: malformed YAML{where}: {problem}") from exc
    except RecursionError as exc:
        raise TrtEdgeError(f"{p}: YAML nested too deeply") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise TrtEdgeError(f"{p}: unreadable ({exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TrtEdgeError(f"{p}: a config must be a YAML mapping of sections, got {type(data).__name__}")
    if too_big(data, max_depth=64, max_nodes=_MAX_NODES):
        raise TrtEdgeError(f"{p}: too large or too deeply nested for a config (aliases expand to over "
                           f"{_MAX_NODES} values, or more than 64 levels)")
    return data


def apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any],
                    default_section: str | None = None) -> dict[str, Any]:
    """Set dotted keys into a copy of `raw`. A bare key goes into `default_section` when given."""
    out = copy.deepcopy(raw)
    for key, value in overrides.items():
        parts = str(key).replace("-", "_").split(".")
        if len(parts) == 1 or parts[0] not in SECTIONS:
            if parts[0] in TOP_LEVEL and len(parts) == 1:
                out[parts[0]] = value
                continue
            if default_section is None:
                raise TrtEdgeError(
                    f"unknown option --{key}{nearest(parts[0], SECTIONS)}; use SECTION.KEY "
                    f"(sections: {', '.join(sorted(SECTIONS))})"
                )
            parts = [default_section, *parts]
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise TrtEdgeError(f"cannot set {key}: {part!r} is not a mapping in the config")
            node = child
        node[parts[-1]] = value
    return out


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                default_section: str | None = None) -> RunConfig:
    """The YAML file (or an empty config) with the overrides applied."""
    raw = load_yaml(path) if path else {}
    raw = apply_overrides(raw, overrides or {}, default_section)
    return RunConfig(raw, source=str(path) if path else None)
