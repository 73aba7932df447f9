"""Every config key, findable: `trt-edge COMMAND --help` and `docs/config.md`, from the config dataclasses.

The dataclasses are the one place a key is declared (type, default) and documented (the class
docstring's `name (Type): text` entries), so the listing is generated from them and cannot drift:
`python -m trt_edge.config_doc > docs/config.md` rewrites the page, and a test fails when it is stale.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import typing
from dataclasses import dataclass
from typing import Any

from trt_edge.config import SECTIONS, section_class
from trt_edge.configbase import ConfigBase

# The config sections each command reads (the rest of a YAML file is ignored by that command).
COMMAND_SECTIONS: dict[str, tuple[str, ...]] = {
    "distill": ("task", "distill"),
    "prune": ("task", "prune", "width"),  # `width` with --method width
    "export": ("task", "export"),
    "calibrate": ("task", "calibrate"),
    "qat": ("task", "qat"),
    "build": ("build",),
    "profile": ("task", "profile"),
    "pipeline": tuple(SECTIONS),
}


@dataclass(frozen=True)
class KeyDoc:
    key: str
    type: str
    default: str
    doc: str


def _type_text(tp: Any) -> str:
    text = str(tp) if not isinstance(tp, type) else tp.__name__
    text = text.replace("typing.", "").replace("NoneType", "None")
    text = re.sub(r"trt_edge\.[\w.]+\.(\w+)", r"\1", text)
    return re.sub(r"<class '([\w.]+)'>", lambda m: m.group(1).rsplit(".", 1)[-1], text)


def _default_text(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "(required)"
    if isinstance(value, ConfigBase):
        return "(section)"
    return repr(_plainish(value))


def _plainish(value: Any) -> Any:
    if isinstance(value, ConfigBase):
        return value.to_dict()
    return value


def field_docs(cls: type) -> dict[str, str]:
    """`name (Type): text` entries of a config class docstring, by field name (joined continuation lines).

    An entry may name several fields (`train_size / validation_size / test_size (float): ...`).
    """
    doc = inspect.getdoc(cls) or ""
    out: dict[str, str] = {}
    current: list[str] = []
    text: list[str] = []

    def flush() -> None:
        for name in current:
            out[name] = _without_default(" ".join(text).strip())

    for line in doc.splitlines():
        match = re.match(r"^([A-Za-z_][\w]*(?:\s*/\s*[A-Za-z_]\w*)*)\s*\(([^)]*)\):\s*(.*)$", line)
        if match:
            flush()
            current = [n.strip() for n in match.group(1).split("/")]
            text = [match.group(3)]
        elif current and line.startswith("    ") and line.strip():
            text.append(line.strip())
        elif current:
            flush()
            current, text = [], []
    flush()
    return out


def _without_default(text: str) -> str:
    """Drop a closing `Defaults to X.` sentence: the default column, read from the field, is the truth
    (a shared class such as TrainConfig documents its own default, which a parent section overrides)."""
    at = text.rfind("Defaults to ")
    if at < 0 or ". " in text[at:].rstrip():
        return text
    return text[:at].rstrip()


def section_keys(cls: type[ConfigBase], prefix: str) -> list[KeyDoc]:
    """Every key of a section, nested sections flattened to dotted keys."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    keys: list[KeyDoc] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        name = f"{prefix}.{f.name}"
        nested = tp if isinstance(tp, type) and issubclass(tp, ConfigBase) else None
        if nested is not None:
            keys.append(KeyDoc(name, nested.__name__, "(section)", docs.get(f.name, "")))
            sub = section_keys(nested, name)
            # A nested section whose parent gives other defaults (distill.train) shows the parent's.
            if f.default_factory is not dataclasses.MISSING:
                instance = f.default_factory()
                sub = [KeyDoc(k.key, k.type, repr(_lookup(instance, k.key[len(name) + 1:])), k.doc)
                       if k.default != "(section)" else k for k in sub]
            keys.extend(sub)
        else:
            keys.append(KeyDoc(name, _type_text(tp), _default_text(f), docs.get(f.name, "")))
    return keys


def _lookup(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return _plainish(obj)


def all_keys(sections: tuple[str, ...] | None = None) -> list[KeyDoc]:
    out: list[KeyDoc] = []
    for name in sections or tuple(SECTIONS):
        out.extend(section_keys(section_class(name), name))
    return out


def help_text(command: str) -> str:
    """The config keys a command reads, for `trt-edge COMMAND --help` (empty for other commands)."""
    sections = COMMAND_SECTIONS.get(command)
    if not sections:
        return ""
    lines = ["", "CONFIG KEYS (YAML sections " + ", ".join(sections) + "; override any with --SECTION.KEY=VALUE"
             + (", or the command's own section's keys bare" if command != "pipeline" else "") + "):"]
    for k in all_keys(sections):
        if k.default == "(section)":
            lines.append(f"    {k.key}:")
            continue
        lines.append(f"    {k.key} ({k.type}) = {k.default}")
        if k.doc:
            lines.append(f"        {k.doc}")
    lines.append("    Every key: docs/config.md")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown() -> str:
    """docs/config.md: every section and key, with type, default and what it does."""
    lines = ["# Config reference", "",
             "<!-- Generated by `python -m trt_edge.config_doc > docs/config.md` from the config dataclasses; "
             "do not edit by hand (tests/test_config_doc.py fails when this page is stale). -->", "",
             "One YAML file holds one section per stage; `trt-edge COMMAND --help` lists the keys of the "
             "sections that command reads, and `--SECTION.KEY=VALUE` overrides any of them.", "",
             "| command | sections |", "|---|---|"]
    lines += [f"| `{c}` | {', '.join(f'`{s}`' for s in secs)} |" for c, secs in COMMAND_SECTIONS.items()]
    for name in SECTIONS:
        cls = section_class(name)
        summary = (inspect.getdoc(cls) or "").split("\n\n", 1)[0].replace("\n", " ")
        lines += ["", f"## `{name}`", "", summary, "", "| key | type | default | description |", "|---|---|---|---|"]
        for k in section_keys(cls, name):
            lines.append(f"| `{k.key}` | `{_cell(k.type)}` | `{_cell(k.default)}` | {_cell(k.doc)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
