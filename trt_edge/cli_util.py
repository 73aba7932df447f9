"""Small helpers shared by the CLI command mixins."""

from __future__ import annotations

import json
from typing import Any


def print_summary(record: Any, keys: tuple[str, ...]) -> None:
    """Print the named metrics of a StageRecord as JSON on standard output."""
    metrics = record.metrics
    print(json.dumps({k: metrics[k] for k in keys if k in metrics}, indent=2, default=str))


# ---------------------------------------------------------------------------------------------------
# Fire reads every value as a Python literal: `--text "great, thanks"` becomes a tuple of two texts,
# `--text 1e5` the float 100000.0, `--trt-version 10.10` the float 10.1, `--out 2024,1` a tuple. Values of
# string parameters (and of string config keys given as overrides) are handed to Fire as quoted string
# literals instead, so they arrive verbatim.

VERBATIM_PARAMS = ("text", "trt_version", "trt")
# Parameters a user may give more than once (`run --text a --text b`): Fire would keep only the last value,
# so the values are handed over as one list literal of verbatim strings.
REPEATABLE_PARAMS = ("text",)
_BOOLS = ("true", "false", "1", "0", "yes", "no")  # typed Any/str but always meant as text


def _is_flag(token: str) -> bool:
    """Fire's rule: starts with `--` or `-x`, and is not a negative number."""
    if token.startswith("--"):
        return True
    return len(token) > 1 and token[0] == "-" and token[1].isalpha()


def _string_override(key: str, default_section: str | None) -> bool:
    """Whether the override `key` (`build.trt_version`, or a bare key of the command's own section) names
    a string config field."""
    import dataclasses
    import types
    import typing

    from trt_edge.config import SECTIONS, section_class
    from trt_edge.configbase import ConfigBase

    parts = key.split(".")
    if parts[0] not in SECTIONS:
        if default_section is None:
            return False
        parts = [default_section, *parts]
    tp: Any = section_class(parts[0])
    for part in parts[1:]:
        if not (isinstance(tp, type) and issubclass(tp, ConfigBase)):
            return False
        names = {f.name for f in dataclasses.fields(tp)}
        if part not in names:
            return False
        tp = typing.get_type_hints(tp)[part]
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else None
    return tp is str


def verbatim_argv(argv: list[str], commands: type) -> list[str]:
    """`argv` with the values of string parameters quoted so Fire passes them through unchanged."""
    import inspect

    index = next((i for i, a in enumerate(argv) if not _is_flag(a)), None)
    if index is None or "--" in argv[:index]:
        return argv
    if "--" in argv and any(a in ("--help", "-h") for a in argv[argv.index("--"):]):
        return argv  # help: Fire shows it, whatever else was given
    command = argv[index]
    method = getattr(commands, command.replace("-", "_"), None)
    if method is None or not callable(method) or command.startswith("_"):
        from trt_edge.configbase import nearest
        from trt_edge.errors import TrtEdgeError

        names = sorted(n.replace("_", "-") for n in dir(commands) if not n.startswith("_")
                       and callable(getattr(commands, n)))
        raise TrtEdgeError(f"unknown command {command!r}{nearest(command, names)}; commands: {', '.join(names)}")
    params = [p for p in inspect.signature(method).parameters.values() if p.name != "self"]
    named = {p.name: p for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    has_overrides = any(p.kind == p.VAR_KEYWORD for p in params)
    from trt_edge.config import SECTIONS

    default_section = command if command in SECTIONS else None

    def verbatim(name: str) -> bool:
        if name in named:
            p = named[name]
            return name in VERBATIM_PARAMS or p.annotation in ("str", str)
        if has_overrides:
            try:
                return _string_override(name, default_section)
            except Exception:  # an unknown section or key: the config refuses it later with its own message
                return False
        return False

    out = argv[: index + 1]
    rest = argv[index + 1:]
    given: set[str] = set()
    repeated: dict[str, tuple[int, str, list[str]]] = {}  # name: (its slot in `out`, flag spelling, values)
    positional: list[str] = []
    i = 0
    while i < len(rest):
        token = rest[i]
        if token == "--":
            out += rest[i:]
            break
        if _is_flag(token):
            stripped = token.lstrip("-")
            key, eq, value = stripped.partition("=")
            name = key.replace("-", "_")
            if not eq and (i + 1 == len(rest) or _is_flag(rest[i + 1])):
                bare = name[2:] if name.startswith("no") and name[2:] in named else name
                _known_option(bare, named, has_overrides, command)
                given.add(bare)
                out.append(token)  # a boolean flag (or a value-less one, refused by the command)
                i += 1
                continue
            if not eq:
                value = rest[i + 1]
                i += 1
            given.add(name)
            _known_option(name, named, has_overrides, command)
            if name in named and named[name].annotation in ("bool", bool) and value.lower() not in _BOOLS:
                from trt_edge.errors import TrtEdgeError

                raise TrtEdgeError(f"--{key} is a switch: give it alone, or as --{key}=true / --{key}=false; "
                                   f"got {value!r}")
            if name in REPEATABLE_PARAMS and verbatim(name):
                if name not in repeated:
                    repeated[name] = (len(out), key, [])
                    out.append("")  # filled below, once every value of the option is known
                repeated[name][2].append(value)
            else:
                out.append(f"--{key}={value!r}" if verbatim(name) else f"--{key}={value}")
            i += 1
            continue
        positional.append(token)
        out.append(token)
        i += 1
    for at, key, values in repeated.values():
        out[at] = f"--{key}={values[0]!r}" if len(values) == 1 else f"--{key}=[{', '.join(map(repr, values))}]"
    # Positional values fill the parameters not given by flag, in order (as Fire does).
    free = [p.name for p in params if p.name not in given and p.kind in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY)]
    from trt_edge.errors import TrtEdgeError

    if len(positional) > len(free):
        raise TrtEdgeError(f"{command}: unexpected argument {positional[len(free)]!r}; options take --NAME VALUE")
    missing = [n for n in free[len(positional):] if named[n].default is named[n].empty]
    if missing:
        raise TrtEdgeError(f"{command} needs --{missing[0].replace('_', '-')}")
    slots = iter(free)
    for k, token in enumerate(out[index + 1:], start=index + 1):
        if token == "--":
            break
        if token in positional and not _is_flag(token):
            slot = next(slots, None)
            if slot is not None and verbatim(slot):
                out[k] = repr(token)
    return out


def _known_option(name: str, named: dict[str, Any], has_overrides: bool, command: str) -> None:
    """Refuse an option a command without config overrides does not take (Fire would print its usage)."""
    if has_overrides or name in named:
        return
    from trt_edge.configbase import nearest
    from trt_edge.errors import TrtEdgeError

    options = [n.replace("_", "-") for n in named]
    flag = name.replace("_", "-")
    raise TrtEdgeError(f"{command}: unknown option --{flag}{nearest(flag, options)}; "
                       f"options: {', '.join('--' + o for o in options)}")
