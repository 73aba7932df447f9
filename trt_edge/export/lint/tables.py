"""The lint's facts: one table per TensorRT version and one for the Orin DLA (`trt_edge/data/*.json`).

Supporting a new TensorRT release is a new `trt_onnx_<version>.json` file, not a code branch; this module
finds the table a version reads (`resolve_version`) and loads it. The export's `decompose_layernorm: auto`
asks `imports_op`, so the one list of what each version imports lives here.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from trt_edge.errors import TrtEdgeError
from trt_edge.trt_version import TrtVersion

_TABLE_PREFIX = "trt_onnx_"


def _data_dir() -> Any:
    return resources.files("trt_edge") / "data"


def available_versions() -> list[str]:
    """TensorRT versions with a table, oldest first."""
    names = [p.name for p in _data_dir().iterdir() if p.name.startswith(_TABLE_PREFIX) and p.name.endswith(".json")]
    versions = [n[len(_TABLE_PREFIX):-len(".json")] for n in names]
    return sorted(versions, key=_version_key)


def _version_key(version: str) -> tuple[int, ...]:
    """The parts a table name writes (`11` -> (11,), `10.13` -> (10, 13)), through the kit's version type."""
    return TrtVersion.parse(version).parts


def resolve_version(trt: str) -> str:
    """The table for `trt`: the one its version belongs to (`10.3` for 10.3.0, `11` for 11.1), else the
    newest older table of the same major (a conservative reading: `10.13` for 10.16)."""
    want = TrtVersion.parse(trt)
    versions = available_versions()
    exact = [v for v in versions if want.matches(TrtVersion.parse(v))]
    if exact:
        return max(exact, key=lambda v: len(_version_key(v)))
    older = [v for v in versions if TrtVersion.parse(v).major == want.major and TrtVersion.parse(v) <= want]
    if older:
        return older[-1]
    raise TrtEdgeError(f"--trt {trt}: no lint table for this TensorRT version; tables exist for "
                       f"{', '.join(versions)}")


def is_exact(version: str, trt: str) -> bool:
    """Whether `version` is the table of `trt` itself (not a fallback to an older one)."""
    return TrtVersion.parse(trt).matches(TrtVersion.parse(version))


@cache
def load_table(version: str) -> dict[str, Any]:
    """The parsed table of one TensorRT version (as named by `resolve_version`)."""
    path = _data_dir() / f"{_TABLE_PREFIX}{version}.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TrtEdgeError(f"no lint table for TensorRT {version}") from exc
    return data


def imports_op(trt: str, op: str) -> bool:
    """Whether TensorRT `trt`'s ONNX parser imports the standard op `op`, per its lint table: the one
    list of what each version imports (the export's `decompose_layernorm: auto` reads it too)."""
    return op in load_table(resolve_version(trt))["supported"]


@cache
def load_dla_table(name: str) -> dict[str, Any]:
    """The parsed DLA table `name` (as a TensorRT table's `dla` entry names it)."""
    data: dict[str, Any] = json.loads((_data_dir() / name).read_text(encoding="utf-8"))
    return data
