"""The `target:` config section: the TensorRT version, device and JetPack every stage aims at.

Export's lint, calibrate (the calibration-cache header, whether a cache is written at all) and build
(the plan, the bundle) all read the target from here. The old per-section keys (`export.lint_trt`,
`calibrate.trt_version`, `build.trt_version`, `build.device`, `build.jetpack`) still work, with a
deprecation warning, when the `target:` section does not set the same thing; set in both places with
different values they are refused, since one of them would be silently ignored.
"""

from __future__ import annotations

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
        an unquoted 10.10 reads as 10.1 and is refused). None takes the one `jetpack` ships. Defaults to None.
    device (str | None): target Jetson from the device catalog (`agx-orin-64gb`, `orin-nano-8gb`,
        `agx-thor`, ...); None for a non-Jetson GPU. Defaults to `agx-orin-64gb`.
    jetpack (str | None): target JetPack; fixes the TensorRT version when `trt_version` is unset.
        Defaults to `6.2`.
    """

    trt_version: Any = None
    device: str | None = "agx-orin-64gb"
    jetpack: str | None = "6.2"

    def __post_init__(self) -> None:
        if self.trt_version is not None:
            self.trt_version = TrtVersion.config_value(self.trt_version)
        if self.jetpack is not None:
            self.jetpack = str(self.jetpack)

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
