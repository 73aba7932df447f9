"""Weights: safetensors only, inside the model folder, readable.

A pickled checkpoint runs code when it is loaded, and a truncated safetensors file fails deep inside
transformers: both are refused here, in one line, before a stage starts.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from trt_edge.errors import TrtEdgeError
from trt_edge.files import sha256_file
from trt_edge.guard.bounded_json import load_json

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
_MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header


def _check_safetensors_file(file: Path) -> None:
    """Validate a safetensors header and its offsets without loading tensors (a truncated, random or
    empty file is refused here in one line instead of deep inside transformers)."""
    try:
        size = file.stat().st_size
        with open(file, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise TrtEdgeError(f"{file}: not a safetensors file ({size} bytes; truncated or empty)")
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER or 8 + n > size:
                raise TrtEdgeError(f"{file}: not a safetensors file (header of {n} bytes in a {size}-byte file; "
                                   "truncated or not safetensors)")
            header = json.loads(handle.read(n).decode("utf-8"))
    except OSError as exc:
        raise TrtEdgeError(f"{file}: unreadable ({exc.strerror})") from exc
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise TrtEdgeError(f"{file}: not a safetensors file (its header is not JSON)") from exc
    if not isinstance(header, dict):
        raise TrtEdgeError(f"{file}: not a safetensors file (its header is not a mapping)")
    data = size - 8 - n
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            raise TrtEdgeError(f"{file}: tensor {str(name)[:60]!r} has no valid data_offsets; the file is corrupt")
        end = max(end, offsets[1])
    if end > data:
        raise TrtEdgeError(f"{file}: truncated ({data} bytes of tensor data, the header needs {end})")


def _index_shards(folder: Path) -> list[Path]:
    """The shards a `model.safetensors.index.json` names, refused if any lies outside `folder`."""
    index = folder / SAFE_INDEX
    data = load_json(index, "shard index")
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise TrtEdgeError(f"{index}: no weight_map; not a safetensors shard index")
    shards: list[Path] = []
    for name in sorted({str(v) for v in weight_map.values()}):
        # A plain file name only: no folder part, no `..`, no absolute path, no symlink out of the folder.
        if (not name or name != os.path.basename(name) or name in (".", "..") or "\\" in name
                or not name.endswith(".safetensors")):
            raise TrtEdgeError(f"{index}: shard {name[:80]!r} is not a .safetensors file inside {folder}; "
                               "refusing weights from outside the model folder")
        shard = folder / name
        if not shard.is_file():
            raise TrtEdgeError(f"{index}: shard {name} is missing from {folder}")
        if shard.is_symlink() and folder.resolve() not in shard.resolve().parents:
            raise TrtEdgeError(f"{shard}: a link out of the model folder; refusing weights from outside it")
        shards.append(shard)
    return shards


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files transformers will read from `folder` (with `use_safetensors=True`), each
    checked; a folder whose only weights are pickles, or with none, is refused."""
    single = folder / SAFE_WEIGHTS
    if (folder / SAFE_INDEX).is_file():
        files = _index_shards(folder)
    elif single.is_file():
        files = [single]
    else:
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickles:
            raise TrtEdgeError(
                f"{folder}: weights are pickled ({', '.join(pickles[:3])}), which trt-edge refuses to load; convert "
                "them to safetensors (model.save_pretrained(..., safe_serialization=True)) in a trusted environment"
            )
        others = sorted(p.name for p in folder.glob("*.safetensors"))
        if others:
            raise TrtEdgeError(f"{folder}: no {SAFE_WEIGHTS} or {SAFE_INDEX} (found {', '.join(others[:3])}); "
                               f"name the weights {SAFE_WEIGHTS}")
        raise TrtEdgeError(f"{folder}: no model weights ({SAFE_WEIGHTS}) in this folder")
    if (folder / SAFE_WEIGHTS).exists() and not single.is_file():
        raise TrtEdgeError(f"{single}: not a file")
    for file in files:
        _check_safetensors_file(file)
    return files


def weight_hashes(folder: Path, role: str) -> dict[str, str]:
    """`{"ROLE/FILE": sha256}` for every weight file a stage reads from `folder` (for stage.json inputs)."""
    return {f"{role}/{f.name}": sha256_file(f) for f in weight_files(folder)}
