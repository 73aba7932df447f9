"""Typed configs: dataclasses that build from plain dicts (YAML, JSON, CLI) and go back to them.

Each stage owns its config dataclass (`distill/config.py`, ...), subclassing `ConfigBase`. Validation of
values happens in `__post_init__` with `ValueError`; this module checks keys and types, and turns both
kinds of problem into one `TrtEdgeError` line that names the key (`distill.train.epochs: ...`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, Union, get_args, get_origin

from trt_edge.errors import TrtEdgeError

T = TypeVar("T", bound="ConfigBase")


def nearest(name: str, choices: typing.Iterable[str]) -> str:
    """' (did you mean X?)' for the closest valid name, or ''."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


@dataclasses.dataclass
class ConfigBase:
    """Base for every stage config: strict keys, light type checks, JSON round trip."""

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
        data = dict(data or {})
        if not isinstance(data, dict):
            raise TrtEdgeError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = [k for k in data if k not in fields]
        if unknown:
            key = unknown[0]
            raise TrtEdgeError(
                f"unknown config key {_join(where, key)!r}{nearest(key, fields)}; "
                f"valid keys: {', '.join(sorted(fields))}"
            )
        kwargs = {k: _coerce(v, hints[k], _join(where, k)) for k, v in data.items()}
        try:
            return cls(**kwargs)
        except ValueError as exc:
            raise TrtEdgeError(f"{where or cls.__name__}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _plain(value: Any) -> Any:
    if isinstance(value, ConfigBase):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Union or origin is types.UnionType:
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except TrtEdgeError as exc:
                errors.append(str(exc))
        raise TrtEdgeError(errors[0] if len(errors) == 1 else
                           f"{where}: {value!r} is not any of {', '.join(_type_name(a) for a in args)}")
    if origin is typing.Literal:
        if value not in get_args(tp):
            choices = ", ".join(repr(a) for a in get_args(tp))
            hint = nearest(str(value), map(str, get_args(tp)))
            raise TrtEdgeError(f"{where}: {value!r} is not one of {choices}{hint}")
        return value
    if isinstance(tp, type) and issubclass(tp, ConfigBase):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise TrtEdgeError(f"{where}: expected a mapping, got {value!r}")
        return tp.from_dict(value, where)
    if origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise TrtEdgeError(f"{where}: expected a list, got {value!r}")
        args = get_args(tp)
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin or tp) is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise TrtEdgeError(f"{where}: expected a mapping, got {value!r}")
        args = get_args(tp)
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise TrtEdgeError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise TrtEdgeError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TrtEdgeError(f"{where}: expected a number, got {value!r}")
        if math.isnan(value):
            raise TrtEdgeError(f"{where}: expected a number, got NaN")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            text = getattr(value, "text", None) if isinstance(value, float) else None
            if text:
                return str(text)  # as written in YAML: `10.10` stays "10.10" (config.YamlFloat)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
            raise TrtEdgeError(f"{where}: expected a string, got {value!r}")
        return value
    return value
