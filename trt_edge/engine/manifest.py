"""`model.plan.json`: what a plan was built with and for, checked before the plan is ever deserialized.

A TensorRT plan runs only on the TensorRT version and GPU it was built for; a mismatch fails deep inside
`deserialize_cuda_engine` with a message users cannot act on ("version mismatch", or a crash with a
plugin). The manifest records the versions, the device's compute capability, the sha256 of the plan and
of every plugin library, and the build options; `check_manifest` compares them with the machine about to
run the plan and refuses with one line that says what to rebuild. A plan that embeds host code (a
version-compatible plan's lean runtime, serialized plugin libraries) is code the runtime would execute:
it is refused unless the caller explicitly allows host code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trt_edge import __version__
from trt_edge.engine.plan import BuildPlan
from trt_edge.errors import TrtEdgeError
from trt_edge.files import atomic_write_json, sha256_file
from trt_edge.stage import now
from trt_edge.trt_version import TrtVersion

MANIFEST_SCHEMA = 1
MANIFEST_KIND = "trt-edge engine manifest"


def manifest_path_for(plan_path: str | os.PathLike[str]) -> Path:
    """`model.plan` -> `model.plan.json` (next to it)."""
    p = Path(plan_path)
    return p.with_name(p.name + ".json")


@dataclass
class RuntimeEnv:
    """The machine about to run (or build) a plan. None means unknown: that comparison is skipped."""

    tensorrt: str | None = None
    compute_capability: str | None = None
    device_name: str | None = None
    cuda: str | None = None
    cudnn: str | None = None
    l4t: str | None = None
    jetpack: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect_runtime_env() -> RuntimeEnv:
    """Versions and GPU of this machine, from TensorRT, cuda-python or torch, and /etc/nv_tegra_release."""
    from trt_edge.devices import jetpack_from_l4t, read_l4t
    from trt_edge.lazy import tensorrt_version

    env = RuntimeEnv(tensorrt=tensorrt_version())
    env.l4t = read_l4t()
    env.jetpack = jetpack_from_l4t(env.l4t) if env.l4t else None
    cc, name, cuda = _gpu_info()
    env.compute_capability, env.device_name, env.cuda = cc, name, cuda
    env.cudnn = _cudnn_version()
    return env


def _gpu_info() -> tuple[str | None, str | None, str | None]:
    """(compute capability, device name, CUDA runtime version) of GPU 0, or Nones without a GPU."""
    import importlib

    cudart: Any = None
    for name in ("cuda.bindings.runtime", "cuda.cudart"):  # cuda-python >= 12.6 layout, then the old one
        try:
            cudart = importlib.import_module(name)
            break
        except ImportError:
            continue
    if cudart is not None:
        try:
            err, props = cudart.cudaGetDeviceProperties(0)
            err2, version = cudart.cudaRuntimeGetVersion()
            if int(err) == 0:
                name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
                cuda = f"{version // 1000}.{(version % 1000) // 10}" if int(err2) == 0 else None
                return f"{props.major}.{props.minor}", name.rstrip("\x00"), cuda
        except Exception:  # a broken driver install: fall through to torch
            pass
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return f"{major}.{minor}", str(torch.cuda.get_device_name(0)), torch.version.cuda
    except ImportError:
        pass
    return None, None, None


def _cudnn_version() -> str | None:
    try:
        import torch

        v = torch.backends.cudnn.version() if torch.cuda.is_available() else None
    except ImportError:
        return None
    if not v:
        return None
    v = int(v)
    major = v // 10000 if v >= 10000 else v // 1000
    rest = v % 10000 if v >= 10000 else v % 1000
    return f"{major}.{rest // 100}.{rest % 100}"


def new_manifest(plan: BuildPlan, *, status: str, plan_file: str = "model.plan", env: RuntimeEnv | None = None,
                 device_key: str | None = None, onnx_sha256: str | None = None,
                 plugins: Sequence[Mapping[str, str]] = (), io: Sequence[Mapping[str, Any]] = (),
                 sparsity: Mapping[str, Any] | None = None, precisions: Mapping[str, Any] | None = None,
                 built_by: str = "trt-edge", task: str | None = None) -> dict[str, Any]:
    """A manifest dict. `status` is `built` (a plan exists; its hash is filled by `finalize_manifest`) or
    `template` (an on-device bundle: versions are the target's, to be replaced by the device's). `task` is
    the ONNX's task (`engine.onnxinfo.onnx_task`): `trt-edge run` reads what the plan computes from it
    (`tasks.spec.task_for_manifest`), where a trtexec build records no I/O."""
    from trt_edge.devices import device

    env = env or RuntimeEnv()
    dev = device(device_key) if device_key else None
    return {
        "schema": MANIFEST_SCHEMA,
        "kind": MANIFEST_KIND,
        "status": status,
        "plan": {"file": plan_file, "sha256": None, "bytes": None},
        "tensorrt": env.tensorrt or (str(TrtVersion.parse(plan.trt_version)) if status == "template" else None),
        "cuda": env.cuda,
        "cudnn": env.cudnn,
        "jetpack": env.jetpack,
        "l4t": env.l4t,
        "device": {"key": device_key, "name": env.device_name or (dev.name if dev else None),
                   "compute_capability": env.compute_capability or (dev.compute_capability if dev else None)},
        "precision": plan.precision,
        "strongly_typed": plan.strongly_typed(),
        "sparsity": dict(sparsity or {"requested": plan.sparse_weights}),
        "precisions": dict(precisions or {}),
        "io": [dict(t) for t in io],
        "onnx_sha256": onnx_sha256,
        "task": task,
        "plugins": [dict(p) for p in plugins],
        "attention_plugin": plan.attention_plugin,  # plugin generation of the fused attention, None without
        "host_code": plan.embeds_host_code(),
        "version_compatible": plan.version_compatible,
        "hardware_compatibility": plan.hardware_compatibility,
        "dla_core": plan.dla_core,
        "build": plan.to_dict(),
        "built_by": built_by,
        "created": now(),
        "trt_edge_version": __version__,
    }


def plugin_entries(paths: Sequence[str | os.PathLike[str]]) -> list[dict[str, str]]:
    """`{path, sha256}` for each plugin library (missing ones are an error: the plan would need them)."""
    out = []
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise TrtEdgeError(f"plugin library {p} not found")
        out.append({"path": str(p), "sha256": sha256_file(p)})
    return out


def finalize_manifest(manifest: dict[str, Any], plan_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Stamp the plan's sha256 and size; the manifest then describes exactly this file."""
    p = Path(plan_path)
    manifest["plan"] = {"file": p.name, "sha256": sha256_file(p), "bytes": p.stat().st_size}
    manifest["status"] = "built"
    return manifest


def write_manifest(path: str | os.PathLike[str], manifest: Mapping[str, Any]) -> Path:
    return atomic_write_json(path, dict(manifest))


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise TrtEdgeError(f"{p}: manifest missing; a plan is only run after its manifest is checked "
                           "(rebuild with trt-edge build, which writes model.plan.json next to model.plan)")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise TrtEdgeError(f"{p}: unreadable manifest ({exc}); rebuild the engine") from exc
    if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND:
        raise TrtEdgeError(f"{p}: not a trt-edge engine manifest; rebuild the engine with trt-edge build")
    if data.get("schema") != MANIFEST_SCHEMA:
        raise TrtEdgeError(f"{p}: manifest schema {data.get('schema')} is not {MANIFEST_SCHEMA}; rebuild the engine")
    # The shapes later code reads without re-checking: one line here instead of an AttributeError there.
    for key, kind in (("plan", dict), ("device", dict), ("plugins", list), ("io", list), ("sparsity", dict),
                      ("precisions", dict)):
        if data.get(key) is not None and not isinstance(data[key], kind):
            raise TrtEdgeError(f"{p}: manifest field {key!r} is not a {kind.__name__}; rebuild the engine")
    for key in ("plugins", "io"):
        if not all(isinstance(entry, dict) for entry in data.get(key) or []):
            raise TrtEdgeError(f"{p}: manifest field {key!r} holds a non-object entry; rebuild the engine")
    return data


def _version_problem(built: str, running: str, version_compatible: bool) -> str | None:
    b, r = TrtVersion.parse(built), TrtVersion.parse(running)
    if version_compatible:
        if r.major != b.major or r < b:
            return (f"it is a version-compatible plan built with TensorRT {built}, which runs on TensorRT "
                    f"{b.major}.x from {b} on, not on {running}")
        return None
    if r != b:
        return f"it was built with TensorRT {built}, this machine has {running}"
    return None


def _cc_problem(built: str, running: str, level: str) -> str | None:
    def number(cc: str) -> tuple[int, int]:
        major, _, minor = cc.partition(".")
        return int(major), int(minor or 0)

    if level == "ampere+":
        if number(running) < (8, 0):
            return f"it is an Ampere+ hardware-compatible plan, this GPU is compute capability {running}"
        return None
    if number(built) != number(running):
        return f"it was built for compute capability {built}, this GPU is {running}"
    return None


def check_manifest(plan_path: str | os.PathLike[str], manifest: Mapping[str, Any] | str | os.PathLike[str] | None,
                   runtime_env: RuntimeEnv | None = None, *, allow_host_code: bool = False,
                   plugin_paths: Mapping[str, str] | None = None) -> list[str]:
    """Refuse a plan that cannot (or must not) run here, naming every reason and what to rebuild.

    Args:
      plan_path: the plan file.
      manifest: the manifest dict or its path; None looks for `<plan>.json` next to the plan.
      runtime_env: this machine (`detect_runtime_env()`); a None field skips that comparison.
      allow_host_code: accept a plan that embeds host code (version-compatible, serialized plugins).
      plugin_paths: where each recorded plugin library is on this machine, by its recorded path;
        default: the recorded path (relative paths are relative to the manifest's folder).

    Returns the warnings (things that do not stop the plan). Raises `TrtEdgeError` otherwise.
    """
    plan = Path(plan_path)
    if not plan.is_file():
        raise TrtEdgeError(f"{plan}: no such plan file")
    if manifest is None or isinstance(manifest, (str, os.PathLike)):
        mpath = Path(manifest) if manifest is not None else manifest_path_for(plan)
        data = read_manifest(mpath)
        base = mpath.parent
    else:
        data, base = dict(manifest), plan.parent
    env = runtime_env or RuntimeEnv()
    problems: list[str] = []
    warnings: list[str] = []
    if data.get("status") != "built":
        raise TrtEdgeError(f"{plan}: its manifest is a {data.get('status')!r} manifest from an on-device bundle, "
                           "not from a build; run build_on_device.sh on the device to build and record the plan")
    recorded = (data.get("plan") or {}).get("sha256")
    actual = sha256_file(plan)
    if not recorded:
        problems.append("the manifest records no plan hash")
    elif recorded != actual:
        problems.append(f"the plan file changed since it was built (sha256 {actual[:12]}…, manifest says "
                        f"{str(recorded)[:12]}…): it was replaced, truncated or edited")
    built_trt = data.get("tensorrt")
    if env.tensorrt and built_trt and (
            p := _version_problem(str(built_trt), env.tensorrt, bool(data.get("version_compatible")))):
        problems.append(p)
    built_cc = (data.get("device") or {}).get("compute_capability")
    if env.compute_capability and built_cc and (
            p := _cc_problem(str(built_cc), env.compute_capability, str(data.get("hardware_compatibility", "none")))):
        problems.append(p)
    for entry in data.get("plugins") or []:
        recorded_path = str(entry.get("path", ""))
        local = Path((plugin_paths or {}).get(recorded_path, recorded_path))
        if not local.is_absolute():
            local = base / local
        if not local.is_file():
            problems.append(f"plugin library {recorded_path} is missing ({local})")
        elif sha256_file(local) != entry.get("sha256"):
            problems.append(f"plugin library {local} changed since the build (sha256 differs)")
    if data.get("host_code") and not allow_host_code:
        why = ("a version-compatible plan's lean runtime" if data.get("version_compatible")
               else "serialized plugin libraries")
        problems.append(f"the plan embeds host code ({why}) that would run in this process; allow it "
                        "explicitly (allow_host_code=True, --allow-host-code) only if you trust where it came from")
    if env.jetpack and data.get("jetpack") and env.jetpack != data.get("jetpack"):
        warnings.append(f"built on JetPack {data.get('jetpack')}, this is JetPack {env.jetpack}")
    if problems:
        target = f"TensorRT {env.tensorrt}" if env.tensorrt else "this machine's TensorRT"
        if env.compute_capability:
            target += f", compute capability {env.compute_capability}"
        raise TrtEdgeError(f"{plan} cannot run here: " + "; ".join(problems)
                           + f". Rebuild it on this device ({target}) with `trt-edge build --onnx MODEL.onnx "
                             "--out DIR`, or run build_on_device.sh from its bundle")
    return warnings
