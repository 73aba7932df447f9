"""Output folders and writer locks: never replace what trt-edge did not write, one writer per folder.

Every writing command checks its output path before any work (a user's file or folder is refused, an
unwritable parent said early), holds an `flock` next to the folder while it writes, and clears the
temporary siblings a killed writer left.
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
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

from trt_edge.errors import TrtEdgeError
from trt_edge.files import STAGE_FILE
from trt_edge.guard.bounded_json import load_json

F = TypeVar("F", bound=Callable[..., Any])


OUTPUT_MARKERS = (STAGE_FILE, "pipeline.json")


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
