"""The `target:` config section: the TensorRT version, device and JetPack every stage aims at.

Export's lint, calibrate (the calibration-cache header, whether a cache is written at all) and build
(the plan, the bundle) all read the target from here. The old per-section keys (`export.lint_trt`,
`calibrate.trt_version`, `build.trt_version`, `build.device`, `build.jetpack`) still work, with a
deprecation warning, when the `target:` section does not set the same thing; set in both places with
different values they are refused, since one of them would be silently ignored.

A JetPack the user names (in `target:` or a legacy key) fixes the TensorRT version to the patch: with
`jetpack: "5.1.2"`, `trt_version: "8.5"` is completed to 8.5.2 and `"10.3"` is refused. The dataclass
default JetPack (6.2) is not named: it only stands in when no version is set, so `trt_version: "10.13"`
alone is not measured against it (and the default JetPack is dropped, since it no longer describes the
target).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trt_edge.configbase import ConfigBase
from trt_edge.errors import TrtEdgeError
from trt_edge.log import warn_once
from trt_edge.trt_version import TrtVersion

# Legacy key in a stage section -> the target key it stood for.
LEGACY_KEYS: dict[str, dict[str, str]] = {
    "export": {"lint_trt": "trt_version"},
    "calibrate": {"trt_version": "trt_version"},
    "build": {"trt_version": "trt_version", "device": "device", "jetpack": "jetpack"},
}


@dataclass
class TargetConfig(ConfigBase):
    """What the artifacts are for (section `target`).

    trt_version (str | None): TensorRT version, e.g. `10.3`, `8.5.2`, `10.13`, `11.1` (quote it in YAML:
        an unquoted 10.10 reads as 10.1 and is refused). None takes the one `jetpack` ships. With a
        `jetpack` you set, a shorter version that agrees is completed to the JetPack's (`8.5` with 5.1.2
        is 8.5.2) and one that contradicts it is refused. Defaults to None.
    device (str | None): target Jetson from the device catalog (`agx-orin-64gb`, `orin-nano-8gb`,
        `agx-thor`, ...); None for a non-Jetson GPU. Defaults to `agx-orin-64gb`.
    jetpack (str | None): target JetPack; fixes the TensorRT version (to the patch). The default only
        applies when `trt_version` is unset, and is dropped when a `trt_version` you set is not the one
        JetPack 6.2 ships. Defaults to `6.2`.
    """

    trt_version: Any = None
    device: str | None = "agx-orin-64gb"
    jetpack: str | None = "6.2"

    def __post_init__(self) -> None:
        if self.trt_version is not None:
            self.trt_version = TrtVersion.config_value(self.trt_version)
        if self.jetpack is not None:
            self.jetpack = str(self.jetpack)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "") -> TargetConfig:
        """The section as read from a config: a JetPack written in `data` is *named* (see the module
        docstring), the dataclass default is not."""
        target = super().from_dict(data, where)
        named = data is not None and data.get("jetpack") is not None
        return target.reconciled(named_jetpack=named)

    def reconciled(self, *, named_jetpack: bool) -> TargetConfig:
        """This target with `trt_version` completed from a named JetPack (or refused when it contradicts
        it); with an unnamed (default) JetPack that disagrees with `trt_version`, the JetPack is dropped."""
        if not self.trt_version or not self.jetpack:
            return self
        from trt_edge.devices import platform

        shipped_text = platform(self.jetpack).tensorrt
        shipped, asked = TrtVersion.parse(shipped_text), TrtVersion.parse(self.trt_version)
        common = min(shipped.given, asked.given)
        agree = shipped.parts[:common] == asked.parts[:common]
        if not named_jetpack:
            return self if agree else self.replace(jetpack=None)
        if not agree:
            raise TrtEdgeError(f"target.trt_version is {self.trt_version} but target.jetpack {self.jetpack} ships "
                               f"TensorRT {shipped_text}: set the TensorRT the device has, or unset one of the two")
        return self.replace(trt_version=shipped_text) if asked.given < shipped.given else self

    def tensorrt_text(self) -> str:
        """The target TensorRT as written (`10.3`, not `10.3.0`): what lint summaries and caches record."""
        if self.trt_version:
            return str(self.trt_version)
        if self.jetpack:
            from trt_edge.devices import platform

            return str(platform(self.jetpack).tensorrt)
        return str(self.tensorrt())  # raises the one-line "set target.trt_version" error

    def tensorrt(self) -> TrtVersion:
        """The target TensorRT: `trt_version`, else the one the target JetPack ships."""
        if self.trt_version:
            return TrtVersion.parse(self.trt_version)
        if self.jetpack:
            from trt_edge.devices import platform

            return TrtVersion.parse(platform(self.jetpack).tensorrt)
        raise TrtEdgeError("set target.trt_version (e.g. 10.3) or target.jetpack (e.g. 6.2) to say which "
                           "TensorRT to target")


def resolve_target(raw: dict[str, Any], section: str | None = None) -> TargetConfig:
    """The `target:` section of a raw run config, with `section`'s deprecated keys applied over it.

    A legacy key that agrees with the target section, or that the target section leaves unset, is used
    and warned about once; one that disagrees with an explicit `target:` value is an error.
    """
    target_raw = dict(raw.get("target") or {})
    legacy = LEGACY_KEYS.get(section or "", {})
    stage_raw = raw.get(section or "") or {}
    for old, new in legacy.items():
        if old not in stage_raw or (stage_raw[old] is None and new == "trt_version"):
            continue  # an unset version means "from the JetPack"; an explicit null device/JetPack is a value
        value = stage_raw[old]
        if target_raw.get(new) is not None and str(target_raw[new]) != str(value):
            raise TrtEdgeError(f"{section}.{old} is {value!r} but target.{new} is {target_raw[new]!r}; "
                               f"{section}.{old} is deprecated: set target.{new} only")
        warn_once(f"{section}.{old} is deprecated; set target.{new} (read by export, calibrate and build)")
        target_raw[new] = value
    return TargetConfig.from_dict(target_raw, "target")
