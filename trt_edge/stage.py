"""What every stage shares: `stage.json`, the output folder swap, resume checks.

A stage is `run(config, inputs, out) -> StageRecord`. It writes everything into a temporary sibling of
its output folder and renames it into place at the end (`stage_output`), so an interrupted stage leaves
the previous result untouched and no half-written file a later stage could mistake for a finished one.
`stage.json` is the contract between stages: later stages find their inputs through its `artifacts`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trt_edge import __version__
from trt_edge.errors import TrtEdgeError
from trt_edge.files import STAGE_FILE as STAGE_FILE  # the record's name; defined below, as the hash skips it
from trt_edge.files import atomic_write_json, sha256_json, sha256_tree
from trt_edge.guard.outputs import check_output, remove_stale_partials, writer_lock

STAGE_SCHEMA = 1


@contextlib.contextmanager
def stage_output(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder to write a stage's output into; rename it to `out` on success.

    On failure the temporary folder is removed and an existing `out` is left exactly as it was. `out` must
    be new, empty or a previous trt-edge output (a user's file or folder is never replaced), and one
    writer at a time holds it (`guard.writer_lock`); temporary folders a killed writer left are removed.
    """
    final = check_output(out).resolve()
    with writer_lock(final):
        remove_stale_partials(final)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
        except OSError as exc:
            raise TrtEdgeError(f"{final}: cannot write the output folder ({exc.strerror})") from exc
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old: Path | None = None
        try:
            if final.exists():
                old = final.with_name(f".{final.name}.old-{os.getpid()}")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
            os.replace(tmp, final)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if old is not None and old.exists() and not final.exists():
                os.replace(old, final)
            raise TrtEdgeError(f"{final}: cannot replace the output folder ({exc.strerror})") from exc
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def environment() -> dict[str, Any]:
    """Versions of the libraries that decide a stage's result, for `stage.json`."""
    from trt_edge.lazy import tensorrt_version

    env: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("torch", "transformers", "onnx", "onnxruntime"):
        try:
            module = __import__(name)
            env[name] = str(getattr(module, "__version__", "unknown"))
        except ImportError:
            env[name] = None
    env["tensorrt"] = tensorrt_version()
    device = "cpu"
    try:
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    env["device"] = device
    return env


@dataclass
class StageRecord:
    """The content of `stage.json`."""

    stage: str
    config: dict[str, Any]
    inputs: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    started: str = field(default_factory=now)
    finished: str = ""
    environment: dict[str, Any] = field(default_factory=environment)
    trt_edge_version: str = __version__
    schema: int = STAGE_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "schema": self.schema,
            "trt_edge_version": self.trt_edge_version,
            "config": self.config,
            "config_sha256": sha256_json(self.config),
            "inputs": self.inputs,
            "metrics": self.metrics,
            "artifacts": self.artifacts,
            "started": self.started,
            "finished": self.finished,
            "environment": self.environment,
        }

    def write(self, folder: str | os.PathLike[str], declared: Iterable[str] = ()) -> Path:
        """Check that every artifact exists, stamp the finish time and write `stage.json` (last).

        `declared`: the artifacts the stage's descriptor promises (`StageDescriptor.produces`); a record
        without one is refused here, before `stage.json` exists, so a later stage never finds a finished
        folder that lacks what it reads.
        """
        root = Path(folder)
        missing = [role for role in declared if role not in self.artifacts]
        if missing:
            raise TrtEdgeError(f"stage {self.stage}: its record lacks the declared artifact "
                               f"{', '.join(repr(m) for m in missing)}")
        for role, rel in self.artifacts.items():
            if not (root / rel).exists():
                raise RuntimeError(f"stage {self.stage}: artifact {role!r} -> {rel} was not written")
        self.finished = now()
        data = self.to_dict()
        # The hash of everything the stage wrote: a later run that finds it changed knows the folder
        # was edited by hand and reruns the stage instead of trusting it.
        data["outputs_sha256"] = sha256_tree(root)
        return atomic_write_json(root / STAGE_FILE, data)


def read_stage(folder: str | os.PathLike[str], expect: str | None = None) -> dict[str, Any]:
    """Read a stage folder's `stage.json`, or say clearly why it is not a finished stage."""
    root = Path(folder)
    path = root / STAGE_FILE
    if not root.exists():
        raise TrtEdgeError(f"{root}: no such folder")
    if not path.is_file():
        raise TrtEdgeError(f"{root}: no {STAGE_FILE} here; it is not the output of a finished trt-edge stage")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON or bad UTF-8
        raise TrtEdgeError(f"{path}: unreadable ({str(exc)[:200]}); rerun the stage") from exc
    if not isinstance(data, dict) or "stage" not in data or "artifacts" not in data:
        raise TrtEdgeError(f"{path}: not a trt-edge stage record; rerun the stage")
    artifacts = data["artifacts"]
    if not isinstance(data["stage"], str) or not isinstance(artifacts, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in artifacts.items()):
        raise TrtEdgeError(f"{path}: malformed stage record (stage and artifacts must be names and paths); "
                           "rerun the stage")
    for role, rel in artifacts.items():  # artifacts live inside the stage folder, never elsewhere
        if not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise TrtEdgeError(f"{path}: artifact {role!r} points outside the stage folder ({rel[:80]!r}); "
                               "rerun the stage")
    if expect is not None and data["stage"] != expect:
        raise TrtEdgeError(f"{root}: holds the output of stage {data['stage']!r}, expected {expect!r}")
    return data


def stage_artifact(folder: str | os.PathLike[str], role: str, expect: str | None = None) -> Path:
    """Path of the artifact a finished stage recorded under `role` (e.g. 'model', 'onnx')."""
    data = read_stage(folder, expect)
    artifacts: Mapping[str, str] = data["artifacts"]
    if role not in artifacts:
        raise TrtEdgeError(
            f"{folder}: stage {data['stage']!r} has no {role!r} artifact (it has: {', '.join(artifacts)})"
        )
    path = Path(folder) / artifacts[role]
    if not path.exists():
        raise TrtEdgeError(f"{path}: recorded in stage.json but missing; rerun stage {data['stage']!r}")
    return path


def is_up_to_date(folder: str | os.PathLike[str], stage: str, config: Mapping[str, Any],
                  inputs: Mapping[str, str]) -> bool:
    """True when `folder` holds a finished `stage` made from this config and these input hashes,
    and its artifacts were not edited since (their hashes are re-checked)."""
    try:
        data = read_stage(folder, stage)
    except TrtEdgeError:
        return False
    if data.get("config_sha256") != sha256_json(dict(config)) or data.get("inputs") != dict(inputs):
        return False
    return bool(data.get("outputs_sha256") == sha256_tree(folder))
