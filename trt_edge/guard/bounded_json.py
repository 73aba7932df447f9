"""Untrusted JSON: depth and size bounded, one line when it is not what it should be.

Stage records, shard indexes, reports and configs are read from folders a user hands in; a deeply nested
or huge file must be refused in one line rather than overflow the stack or the memory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from trt_edge.errors import TrtEdgeError

MAX_JSON_BYTES = 256 << 20
MAX_JSON_DEPTH = 64


def too_big(value: Any, max_depth: int = MAX_JSON_DEPTH, max_nodes: int | None = None) -> bool:
    """More than `max_depth` levels, or more than `max_nodes` values once shared references (YAML
    aliases) are expanded: walked iteratively, so the check itself cannot overflow the stack."""
    count = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > max_depth or (max_nodes is not None and count > max_nodes):
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return False


def parse_json(text: str, where: str, what: str = "JSON") -> Any:
    """Parse JSON text; refuse deep nesting (RecursionError in the stdlib parser) in one line."""
    try:
        data = json.loads(text)
    except RecursionError as exc:
        raise TrtEdgeError(f"{where}: {what} nested too deeply") from exc
    except ValueError as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise TrtEdgeError(f"{where}: not valid {what} ({msg})") from exc
    if too_big(data):
        raise TrtEdgeError(f"{where}: {what} nested more than {MAX_JSON_DEPTH} levels deep")
    return data


def load_json(path: str | os.PathLike[str], what: str = "JSON") -> Any:
    """Read and parse a JSON file (see `parse_json`), or say in one line why not."""
    p = Path(path)
    try:
        if not p.is_file():
            raise TrtEdgeError(f"{p}: no such {what} file")
        if p.stat().st_size > MAX_JSON_BYTES:
            raise TrtEdgeError(f"{p}: {what} file too large ({p.stat().st_size} bytes)")
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TrtEdgeError(f"{p}: unreadable ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise TrtEdgeError(f"{p}: not UTF-8 {what} (byte {exc.start})") from exc
    return parse_json(text, str(p), what)
