"""Input hardening in one place: weights, tokenizers, output folders, writer locks, untrusted JSON.

Every check here turns a bad input into one `TrtEdgeError` line *before* expensive work starts, and
never leaves anything behind when it refuses. Stages and commands call these helpers instead of
re-checking by hand, so one rule (no pickle, one writer per folder, never replace a user's file)
holds on every path.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import inspect
import json
import os
import shutil
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

from trt_edge.errors import TrtEdgeError

F = TypeVar("F", bound=Callable[..., Any])

# ---------------------------------------------------------------------------------------------------
# Weights: safetensors only, inside the folder, readable.

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
    from trt_edge.stage import sha256_file

    return {f"{role}/{f.name}": sha256_file(f) for f in weight_files(folder)}


# ---------------------------------------------------------------------------------------------------
# Tokenizers: a folder without vocabulary files gives a tokenizer with only special tokens.

_MIN_VOCAB = 32


def load_tokenizer(folder: str | os.PathLike[str], trust_remote_code: bool = False) -> Any:
    """`AutoTokenizer.from_pretrained(folder)` offline, refusing a tokenizer with no real vocabulary
    (transformers builds one from `config.json` alone, and every word then becomes [UNK])."""
    from transformers import AutoTokenizer

    path = Path(folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True,
                                                  trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise TrtEdgeError(f"{path}: no usable tokenizer ({str(exc).splitlines()[0][:200]})") from exc
    specials = len(set(getattr(tokenizer, "all_special_tokens", []) or []))
    if len(tokenizer) - specials < _MIN_VOCAB:
        raise TrtEdgeError(f"{path}: the tokenizer has no vocabulary ({len(tokenizer)} tokens); the folder lacks its "
                           "tokenizer files (tokenizer.json or vocab.txt): copy them from the original model")
    return tokenizer


# ---------------------------------------------------------------------------------------------------
# Untrusted JSON: depth and size bounded, one line when it is not what it should be.

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


# ---------------------------------------------------------------------------------------------------
# Output folders: never replace what trt-edge did not write; say early when a folder is not writable.

OUTPUT_MARKERS = ("stage.json", "pipeline.json")


def is_trt_edge_output(folder: Path) -> bool:
    """A folder trt-edge wrote: it holds stage.json or pipeline.json (a stage or a run folder), or the
    engine manifest build_on_device.sh's trtexec path writes (no stage.json there)."""
    if any((folder / m).is_file() for m in OUTPUT_MARKERS):
        return True
    manifest = folder / "model.plan.json"
    try:
        with open(manifest, "rb") as handle:
            return b'"trt-edge engine manifest"' in handle.read(1 << 16)
    except OSError:
        return False


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output(out: str | os.PathLike[str], what: str = "--out", *, run_folder: bool = False) -> Path:
    """Refuse an output path that would replace a user's file or folder, or cannot be written.

    Accepted: a path that does not exist yet (its nearest existing parent must be a writable folder), an
    empty folder, or a folder trt-edge wrote before (`stage.json`; for a run folder `pipeline.json` or
    stage sub-folders). Nothing is created here.
    """
    text = str(out)
    if not text or "\0" in text:
        raise TrtEdgeError(f"{what}: not a usable path: {text!r}")
    path = Path(text).expanduser()
    try:
        if path.is_symlink() and not path.exists():
            raise TrtEdgeError(f"{what} {path}: a dangling link; remove it or choose another folder")
        if path.exists():
            if not path.is_dir():
                raise TrtEdgeError(f"{what} {path} is an existing file, not a folder; trt-edge never replaces a "
                                   "file it did not write: choose another --out")
            entries = [e for e in path.iterdir() if not e.name.startswith(".")]
            ours = (is_trt_edge_output(path) or (path.parent / "pipeline.json").is_file()  # a run's stage folder
                    or (run_folder and any(is_trt_edge_output(e) for e in entries if e.is_dir())))
            if entries and not ours:
                raise TrtEdgeError(f"{what} {path} is a non-empty folder trt-edge did not write (no stage.json); "
                                   "it would be replaced: choose a new or empty folder")
            if ours and not run_folder and (path / "pipeline.json").is_file():
                raise TrtEdgeError(f"{what} {path} is a pipeline run folder; give a stage folder inside it "
                                   "or a new one")
        base = _nearest_existing(path.parent if not path.exists() else path)
        if not base.is_dir():
            raise TrtEdgeError(f"{what} {path}: {base} is a file, so the folder cannot be made")
        if not os.access(base, os.W_OK | os.X_OK):
            raise TrtEdgeError(f"{what} {path}: {base} is not writable")
        if path.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
            raise TrtEdgeError(f"{what} {path}: {path.parent} is not writable (the folder is replaced atomically)")
    except OSError as exc:
        raise TrtEdgeError(f"{what} {path}: {exc.strerror or exc}") from exc
    return path


# ---------------------------------------------------------------------------------------------------
# One writer per folder: a lock file next to it, held with flock and naming the holder's PID.

_held: dict[str, tuple[int, int]] = {}  # lock path -> (fd, depth); re-entrant within this process
_held_guard = threading.Lock()


def check_report_file(path: str | os.PathLike[str], kind: str) -> Path:
    """A report file trt-edge may write: new, or a previous report of the same `kind` (its JSON says so).
    Anything else at that path (a user's file, a folder) is refused before any work, never replaced."""
    p = Path(path)
    if p.is_dir():
        raise TrtEdgeError(f"{p}: is a folder; give a file path for the report")
    if p.exists():
        try:
            previous = load_json(p, "report")
        except TrtEdgeError:
            previous = None
        if not (isinstance(previous, dict) and previous.get("kind") == kind):
            raise TrtEdgeError(f"{p}: exists and is not a {kind} report written by trt-edge; "
                               "choose another path or remove the file")
    return p


def lock_path(folder: str | os.PathLike[str]) -> Path:
    """`.NAME.lock` next to the folder: it survives the folder being replaced by `stage_output`."""
    p = Path(folder).expanduser().resolve()
    return p.with_name(f".{p.name}.lock")


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"PID {int(info['pid'])}" + (f" on {info['host']}" if info.get("host") != socket.gethostname() else "")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def writer_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the folder's writer lock; a second writer is refused in one line naming the holder's PID.

    The lock is an `flock` on `.NAME.lock`: the kernel releases it when the holder dies, so a lock left by
    a killed process is simply taken over. Re-entrant within one process (pipeline -> stage).
    """
    path = lock_path(folder)
    key = str(path)
    with _held_guard:
        if key in _held:
            fd, depth = _held[key]
            _held[key] = (fd, depth + 1)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield path
        finally:
            with _held_guard:
                fd, depth = _held[key]
                _held[key] = (fd, depth - 1)
        return
    created: list[Path] = []  # parent folders made for the lock, removed again if left empty
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        created.append(parent)
        parent = parent.parent
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrtEdgeError(f"{path.parent}: cannot create the output's parent folder ({exc.strerror})") from exc
    fd = -1
    for _ in range(20):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            _remove_empty(created)
            raise TrtEdgeError(f"{path}: cannot create the writer lock ({exc.strerror}); is the folder writable?") \
                from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            _remove_empty(created)
            raise TrtEdgeError(f"{Path(folder)} is being written by {_holder(path)} (lock {path}); wait for it to "
                               "finish or use another --out") from None
        try:  # the holder may have unlinked the file between our open and our lock: retry on the new one
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
        fd = -1
        _remove_empty(created)
        raise TrtEdgeError(f"{path}: could not take the writer lock")
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
    with _held_guard:
        _held[key] = (fd, 1)
    try:
        yield path
    finally:
        with _held_guard:
            _held.pop(key, None)
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
        _remove_empty(created)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        with contextlib.suppress(OSError):
            folder.rmdir()


def remove_stale_partials(out: str | os.PathLike[str]) -> list[str]:
    """Remove `.NAME.partial-*` / `.NAME.old-*` siblings of `out` left by a killed writer. Call it only
    while holding `writer_lock(out)`: then no live process can own them."""
    p = Path(out).expanduser().resolve()
    removed: list[str] = []
    if not p.parent.is_dir():
        return removed
    for pattern in (f".{p.name}.partial-*", f".{p.name}.old-*"):
        for stale in p.parent.glob(pattern):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
                removed.append(stale.name)
    return removed


@contextlib.contextmanager
def output_folder(out: str | os.PathLike[str], what: str = "--out", *, run_folder: bool = False) -> Iterator[Path]:
    """What every writing command does first: check the path, take the writer lock, clear stale partials."""
    path = check_output(out, what, run_folder=run_folder)
    with writer_lock(path):
        from trt_edge.log import get_logger

        for name in remove_stale_partials(path):
            get_logger().info("removed %s, left by an interrupted command", name)
        yield path


def writes_output(param: str = "out", *, run_folder: bool = False) -> Callable[[F], F]:
    """Decorate a command or entry point whose argument `param` names its output folder: the path is
    checked and its writer lock held for the whole call (before any work, so a second writer or a
    user's file is refused at once), and stale temporary folders of a killed run are removed."""
    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return fn(*args, **kwargs)  # let the call itself report the bad arguments
            bound.apply_defaults()
            out = bound.arguments.get(param)
            if out is None or out == "":
                return fn(*args, **kwargs)
            if not isinstance(out, (str, os.PathLike)):
                raise TrtEdgeError(f"--{param} takes one folder path, got {out!r}")
            with output_folder(out, f"--{param}", run_folder=run_folder):
                return fn(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


# ---------------------------------------------------------------------------------------------------
# Sequence lengths: a max_length past the model's position table fails deep inside ONNX Runtime or torch.

def model_positions(folder: str | os.PathLike[str], tokenizer: Any = None) -> int | None:
    """How many token positions a model folder takes: the smaller of config.json's
    `max_position_embeddings` and the tokenizer's `model_max_length` (RoBERTa's 514 vs 512); None if
    neither says."""
    limits: list[int] = []
    config = Path(folder) / "config.json"
    if config.is_file():
        try:
            data = load_json(config, "model config")
        except TrtEdgeError:
            data = None
        value = data.get("max_position_embeddings") if isinstance(data, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            limits.append(value)
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 1_000_000:
        limits.append(value)
    return min(limits) if limits else None


def check_positions(length: int, folder: str | os.PathLike[str], tokenizer: Any = None,
                    what: str = "task.max_length") -> None:
    """Refuse a sequence length longer than the model's position table, in one line."""
    positions = model_positions(folder, tokenizer)
    if positions is not None and length > positions:
        raise TrtEdgeError(f"{what} is {length} but the model in {folder} has {positions} positions; "
                           f"use at most {positions}")
