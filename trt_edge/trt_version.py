"""The one TensorRT-version type of the kit and what each version offers (a leaf module: it imports
nothing from trt-edge but errors).

Four parsers used to accept different strings (`"11"` passed the build plan and was refused by the
calibration cache). Every stage now parses through `TrtVersion.parse`, which accepts `10`, `10.3`,
`10.13.3`, `10.3.0.30` and `11.x`, and refuses a float: YAML reads an unquoted `10.10` as the number
10.1, so a number is only accepted where it cannot have lost a digit (the CLI passes strings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from trt_edge.errors import TrtEdgeError

_PATTERN = re.compile(r"\s*(\d+)(?:\.(\d+|x))?(?:\.(\d+|x))?(?:\.\d+)*\s*")
# TensorRT releases before 8.5 cannot import the kit's ONNX (opset 17, LayerNormalization-free export aside).
MIN_SUPPORTED = (8, 5)


@dataclass(frozen=True, order=True)
class TrtVersion:
    """A TensorRT version `major.minor.patch`; `given` says how many parts were written (`11` -> 1), so
    a version can name a family (`11` matches every 11.x table) without losing what was asked."""

    major: int
    minor: int = 0
    patch: int = 0
    given: int = field(default=3, compare=False)

    @classmethod
    def parse(cls, text: str | TrtVersion | float | int) -> TrtVersion:
        if isinstance(text, TrtVersion):
            return text
        if isinstance(text, float):
            # 10.10 arrives as 10.1 from unquoted YAML: refuse rather than target the wrong release.
            raise TrtEdgeError(f"TensorRT version {text!r} was read as a number; quote it in YAML "
                               f"(\"{text}\"), so 10.10 does not become 10.1")
        match = _PATTERN.fullmatch(str(text))
        if not match or isinstance(text, bool):
            raise TrtEdgeError(f"TensorRT version {text!r} is not a TensorRT version "
                               "(expected MAJOR.MINOR[.PATCH], e.g. 8.5, 10.3, 10.13.3, 11.1)")
        groups = match.groups()
        given = 1 + sum(g not in (None, "x") for g in groups[1:])
        parts = [0 if g in (None, "x") else int(g) for g in groups]
        return cls(parts[0], parts[1], parts[2], given)

    @classmethod
    def supported(cls, text: str | TrtVersion | float | int) -> TrtVersion:
        """`parse`, refusing releases the kit does not target (before 8.5)."""
        v = cls.parse(text)
        if (v.major, v.minor) < MIN_SUPPORTED and not (v.given == 1 and v.major >= MIN_SUPPORTED[0]):
            raise TrtEdgeError(f"TensorRT {text} is not supported; trt-edge targets "
                               f"{MIN_SUPPORTED[0]}.{MIN_SUPPORTED[1]} and later")
        return v

    @classmethod
    def config_value(cls, value: object) -> str:
        """A config field's version as the string it stands for, or ValueError (a config's own error).
        Only the spelling is checked here; each consumer says what it supports (the plugin generations,
        the calibration cache)."""
        try:
            cls.parse(value)  # type: ignore[arg-type]
        except TrtEdgeError as exc:
            raise ValueError(str(exc)) from exc
        return str(value).strip()

    def at_least(self, major: int, minor: int = 0, patch: int = 0) -> bool:
        return (self.major, self.minor, self.patch) >= (major, minor, patch)

    @property
    def parts(self) -> tuple[int, ...]:
        """The parts that were written: (11,) for `11`, (10, 3) for `10.3`."""
        return (self.major, self.minor, self.patch)[: self.given]

    def matches(self, family: TrtVersion) -> bool:
        """Whether this version belongs to `family` (`10.3.0` belongs to `10.3` and to `10`)."""
        return (self.major, self.minor, self.patch)[: family.given] == family.parts

    @property
    def short(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def code(self) -> int:
        """`NV_TENSORRT_VERSION`: 8502 for 8.5.2, 100300 for 10.3.0 (the calibration-cache header)."""
        if self.major >= 10:
            return self.major * 10000 + self.minor * 100 + self.patch
        return self.major * 1000 + self.minor * 100 + self.patch

    @property
    def implicit_calibration(self) -> bool:
        """Whether this TensorRT still reads calibration caches (8.x-10.x; removed in 11.0)."""
        return self.major <= 10

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def features(version: str | TrtVersion) -> dict[str, bool]:
    """What a TensorRT version offers, per the facts file (§2.1 builder API, §2.4 INT8, §6 trtexec)."""
    v = TrtVersion.parse(version)
    return {
        "supported": v.at_least(8, 5) and v.major != 9,
        "explicit_batch_flag": v.major < 10,           # required on 8.x, ignored on 10.x, removed in 11
        "strongly_typed": v.at_least(10),              # NetworkDefinitionCreationFlag.STRONGLY_TYPED
        "weak_precision_flags": v.major < 11,          # BuilderFlag.FP16/INT8/BF16, trtexec --fp16/--int8/--best
        "weak_precision_deprecated": v.at_least(10, 12),
        "calibrators": v.major < 11,                   # IInt8Calibrator, trtexec --calib
        "optimization_level": v.at_least(8, 6),
        "hardware_compatibility": v.at_least(8, 6),
        "same_compute_capability": v.at_least(10, 9),
        "version_compatible": v.at_least(8, 6),
        "plugins_to_serialize": v.at_least(8, 6),
        "static_dynamic_plugins": v.at_least(8, 6),    # trtexec --staticPlugins/--dynamicPlugins (8.5: --plugins)
        "tactic_shared_memory_pool": v.at_least(10),
        "dla": v.major < 11 or v.at_least(11, 4, 1),   # DLA came back in 11.4.1 (AGX Orin, JetPack 7.2.2+)
        "skip_inference": v.at_least(10),
    }
