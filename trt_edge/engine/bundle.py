"""The on-device build bundle: everything a Jetson needs to build the plan this machine could not.

Written by `trt-edge build` where TensorRT is absent (every CI and laptop machine). The folder holds
the ONNX (and its external data), the calibration cache if any, `plan.json` (the validated build plan),
`trtexec_command.txt` (the equivalent trtexec line for the target TensorRT), `build_on_device.sh` (runs
`trt-edge build --plan plan.json` when trt-edge and TensorRT's Python bindings are there, else trtexec,
and then writes the manifest), `model.plan.json.template` (the manifest with the target's versions),
the tokenizer (for `trt-edge run`), and a README that says no plan was built here and why.

When the ONNX holds fused-attention nodes (`plan.attention_plugin`), the plugin's sources go into
`plugins/fused_attention/` and `build_on_device.sh` first builds `plugins/build/libtrt_edge_attention_plugin.so`
there with CMake, against the device's own TensorRT (whose major version picks the plugin generation,
IPluginV2DynamicExt on 8.5/8.6 or IPluginV3 on 10+), refuses to go on when that generation is not the one the
ONNX's nodes name, and loads it in the build; the manifest records its sha256.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trt_edge import __version__
from trt_edge.devices import l4t_to_jetpack
from trt_edge.engine.manifest import new_manifest
from trt_edge.engine.onnxinfo import task_name
from trt_edge.engine.plan import BuildPlan
from trt_edge.engine.trtexec import JETPACK_TRTEXEC, command_line, render_build, shell_join
from trt_edge.errors import TrtEdgeError
from trt_edge.files import atomic_write_json, atomic_write_text, sha256_file
from trt_edge.stage import now
from trt_edge.trt_version import TrtVersion

ONNX_NAME = "model.onnx"
CACHE_NAME = "calibration.cache"
CALIB_DATA_NAME = "calibration.npz"
PLAN_JSON = "plan.json"
SCRIPT = "build_on_device.sh"
TRTEXEC_TXT = "trtexec_command.txt"
TEMPLATE = "model.plan.json.template"
README = "README.txt"
TOKENIZER_DIR = "tokenizer"  # a text model's; the task spec names the folder (`TaskSpec.bundle_dir`)
PLUGIN_SOURCES_DIR = "plugins/fused_attention"
PLUGIN_BUILD_DIR = "plugins/build"
TOKENIZER_EXTRA = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model",
                   "added_tokens.json", "preprocessor_config.json")  # the last: an image model's processor
_OUT = "OUT_DIR_PLACEHOLDER"

# The manifest writer used after a trtexec build: standard library only (it runs on the Jetson's
# system Python, which may have neither trt-edge nor numpy). It fills the template with what the device
# reports and marks fields it could only infer.
_FILL_MANIFEST = r'''
import hashlib, json, os, re, sys, datetime
template, out = sys.argv[1], sys.argv[2]
m = json.load(open(template))
plan = os.path.join(out, "model.plan")
h = hashlib.sha256()
with open(plan, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
log_path = os.path.join(out, "build.log")
log = open(log_path, errors="replace").read() if os.path.exists(log_path) else ""
trt = None
try:
    import tensorrt
    trt = tensorrt.__version__
except Exception:
    code = re.search(r"TensorRT v(\d+)", log)
    if code:
        n = int(code.group(1))
        parts = (n // 10000, n // 100 % 100, n % 100) if n >= 100000 else (n // 1000, n // 100 % 10, n % 100)
        trt = "%d.%d.%d" % parts
l4t = None
if os.path.exists("/etc/nv_tegra_release"):
    r = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", open("/etc/nv_tegra_release").read())
    l4t = "%s.%s" % (r.group(1), r.group(2)) if r else None
eligible, picked = [], []
for line in log.splitlines():
    if "(Sparsity)" not in line:
        continue
    names = [n.strip() for n in line.split(":", 1)[-1].split(",") if n.strip()] if ":" in line else []
    if re.search(r"eligible", line, re.I):
        eligible += names
    elif re.search(r"picked sparse|using sparse", line, re.I):
        picked += names
sparse_layers = list(picked)
layers = os.path.join(out, "model.layers.json")
if os.path.exists(layers):
    try:
        info = json.load(open(layers))
        for layer in info.get("Layers", []):
            if isinstance(layer, dict) and int(layer.get("HasSparseWeights", layer.get("AllowSparse", 0)) or 0):
                sparse_layers.append(layer.get("Name"))
    except ValueError:
        pass
requested = bool(m["build"].get("sparse_weights"))
m["sparsity"] = {"requested": requested, "eligible_layers": eligible, "sparse_layers": sorted(set(sparse_layers)),
                 "warning": ("SPARSITY REQUESTED BUT NOT APPLIED: no layer got a sparse kernel"
                             if requested and not sparse_layers else None)}
if m["sparsity"]["warning"]:
    sys.stderr.write("build_on_device.sh: WARNING: " + m["sparsity"]["warning"] + "\n")
if trt:
    m["tensorrt"] = trt
m["l4t"] = l4t
m["jetpack"] = JETPACK.get(l4t) if l4t else None
m["plan"] = {"file": "model.plan", "sha256": h.hexdigest(), "bytes": os.path.getsize(plan)}
onnx_file = os.path.join(os.path.dirname(os.path.abspath(template)), "model.onnx")
if os.path.exists(onnx_file):  # the hash of the ONNX this build read, not the one the template names
    ho = hashlib.sha256()
    with open(onnx_file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            ho.update(chunk)
    m["onnx_sha256"] = ho.hexdigest()
plugins = []
for lib in m["build"].get("plugins") or []:
    ph = hashlib.sha256()
    with open(lib, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            ph.update(chunk)
    plugins.append({"path": os.path.abspath(lib), "sha256": ph.hexdigest()})
m["plugins"] = plugins
m["status"] = "built"
m["built_by"] = "trtexec (build_on_device.sh)"
m["inferred"] = ["device.compute_capability (from the device catalog, not queried)"] + ([] if trt else ["tensorrt"])
m["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
tmp = os.path.join(out, ".model.plan.json.tmp")
with open(tmp, "w") as f:
    json.dump(m, f, indent=2)
os.replace(tmp, os.path.join(out, "model.plan.json"))
print("manifest written to " + os.path.join(out, "model.plan.json"))
'''


def render_script(plan: BuildPlan, preprocessor: str | None) -> str:
    """`build_on_device.sh` for this plan (bash; run on the Jetson from anywhere); `preprocessor` is the
    bundle's preprocessor folder (`tokenizer`, `preprocessor`), None when it carries none."""
    v = TrtVersion.parse(plan.trt_version)
    argv = render_build(plan, v, onnx=ONNX_NAME, engine=f"{_OUT}/model.plan", layer_info=f"{_OUT}/model.layers.json",
                        timing_cache=f"{_OUT}/timing.cache" if plan.timing_cache else None,
                        trtexec="TRTEXEC_PLACEHOLDER")
    trtexec_line = shell_join(argv).replace("TRTEXEC_PLACEHOLDER", '"$TRTEXEC"').replace(f"{_OUT}/", '"$OUT"/')
    tok = f' --tokenizer "$HERE/{preprocessor}"' if preprocessor else ""
    plugin_block = _plugin_build_block(plan) if plan.attention_plugin else ""
    code_prefix = f"{v.major}{v.minor:02d}" if v.major >= 10 else f"{v.major}{v.minor}"  # v100300, v8502
    fill = _FILL_MANIFEST.replace("JETPACK.get", f"{json.dumps(l4t_to_jetpack())}.get")
    return f"""#!/usr/bin/env bash
# Generated by trt-edge {__version__} on {now()}.
# Builds model.plan for {plan.device or "this GPU"} with TensorRT {v.short} ({plan.precision}) and writes
# its manifest model.plan.json. Usage: ./build_on_device.sh [OUT_DIR]   (default: ./engine)
# Uses `trt-edge build` when trt-edge and TensorRT's Python bindings are installed (set USE_TRTEXEC=1 to
# force trtexec), else trtexec ($TRTEXEC, or trtexec on PATH, or {JETPACK_TRTEXEC}).
set -euo pipefail
HERE="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
{render_verify_block()}
OUT="$(mkdir -p "${{1:-$HERE/engine}}" && cd "${{1:-$HERE/engine}}" && pwd)"
EXPECTED_TRT="{v.short}"
{plugin_block}
if [ "${{USE_TRTEXEC:-0}}" != 1 ] && command -v trt-edge >/dev/null 2>&1 \\
    && python3 -c "import tensorrt" >/dev/null 2>&1; then
  exec trt-edge build --onnx "$HERE/{ONNX_NAME}" --plan "$HERE/{PLAN_JSON}" --out "$OUT"{tok}
fi

TRTEXEC="${{TRTEXEC:-$(command -v trtexec || echo {JETPACK_TRTEXEC})}}"
if [ ! -x "$TRTEXEC" ]; then
  echo "build_on_device.sh: neither trt-edge with TensorRT's Python bindings nor trtexec was found" >&2
  exit 2
fi
cd "$HERE"
set +e
{trtexec_line} 2>&1 | tee "$OUT/build.log"
status=${{PIPESTATUS[0]}}
set -e
if [ "$status" != 0 ]; then
  echo "build_on_device.sh: trtexec failed (exit $status); see $OUT/build.log" >&2
  exit "$status"
fi
if ! grep -q "TensorRT v{code_prefix}" "$OUT/build.log"; then
  echo "build_on_device.sh: WARNING: this TensorRT may not be $EXPECTED_TRT, the version the plan was checked for" >&2
fi
{f'cp -r "$HERE/{preprocessor}" "$OUT/"' if preprocessor else ":"}
python3 - "$HERE/{TEMPLATE}" "$OUT" <<'PY'
{fill.strip()}
PY
"""


def _plugin_build_block(plan: BuildPlan) -> str:
    """The part of build_on_device.sh that builds the fused-attention plugin from the bundled sources."""
    from trt_edge.plugins.library import PLUGIN_LIBRARY, REGISTRY_PLUGIN_LIBRARY

    library = REGISTRY_PLUGIN_LIBRARY if plan.serialize_plugins else PLUGIN_LIBRARY
    generation = plan.attention_plugin
    arch = ""
    if plan.device:
        from trt_edge.devices import device

        arch = f"CUDA_ARCHITECTURES=\"${{CUDA_ARCHITECTURES:-{device(plan.device).sm}}}\"  # the target's SM\n"
    return f"""
# The fused-attention plugin, built here against this device's TensorRT: its major version picks the plugin
# generation (IPluginV2DynamicExt on 8.5/8.6, IPluginV3 on 10+); the ONNX's nodes need {generation}.
# CUDA_ARCHITECTURES (e.g. 87, or native with CMake >= 3.24) limits the build to this GPU's SM.
{arch}PLUGIN_BUILD="$HERE/{PLUGIN_BUILD_DIR}"
if [ ! -f "$PLUGIN_BUILD/{library}" ]; then
  if ! command -v cmake >/dev/null 2>&1; then
    echo "build_on_device.sh: cmake (3.18 or newer) is needed to build the fused-attention plugin:" \\
         "sudo apt-get install cmake, or pip3 install cmake" >&2
    exit 2
  fi
  export CUDACXX="${{CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}}"
  cmake -S "$HERE/{PLUGIN_SOURCES_DIR}" -B "$PLUGIN_BUILD" -DCMAKE_BUILD_TYPE=Release \\
    ${{CUDA_ARCHITECTURES:+-DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCHITECTURES}}
  cmake --build "$PLUGIN_BUILD" -j"$(nproc)"
fi
if ! grep -qx "plugin_generation={generation}" "$PLUGIN_BUILD/trt_edge_build_info.txt"; then
  echo "build_on_device.sh: the plugin built against this TensorRT is not {generation}, which the ONNX's" \\
       "fused-attention nodes name (see $PLUGIN_BUILD/trt_edge_build_info.txt): export the model again" \\
       "for this TensorRT" >&2
  exit 2
fi
"""


def plugin_library_entry(plan: BuildPlan) -> str | None:
    """The bundle-relative plugin library the plan must load for its fused attention, None when it loads
    one already (a path the user configured) or has no fused attention."""
    from trt_edge.plugins.library import PLUGIN_LIBRARY, REGISTRY_PLUGIN_LIBRARY, has_attention_library

    if not plan.attention_plugin or has_attention_library(plan.plugins):
        return None
    return f"{PLUGIN_BUILD_DIR}/{REGISTRY_PLUGIN_LIBRARY if plan.serialize_plugins else PLUGIN_LIBRARY}"


def copy_plugin_sources(dest: Path) -> list[str]:
    """Copy the fused-attention plugin's sources (what CMake builds) into `dest`; their names."""
    from trt_edge.plugins.library import plugin_source_files

    dest.mkdir(parents=True, exist_ok=True)
    files = plugin_source_files()
    for f in files:
        shutil.copy2(f, dest / f.name)
    return [f.name for f in files]


def copy_tokenizer(source: Path | None, dest: Path) -> bool:
    """Copy the preprocessor files (a tokenizer's or an image processor's) and `config.json` (label
    names) of a model folder; False when none."""
    if source is None or not source.is_dir():
        return False
    files = [source / name for name in TOKENIZER_EXTRA if (source / name).is_file()]
    if not files:
        return False
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, dest / f.name)
    return True


def write_bundle(folder: Path, plan: BuildPlan, onnx: Path, *, external_data: Sequence[Path] = (),
                 calibration_cache: Path | None = None, calibration_data: Path | None = None,
                 tokenizer: Path | None = None, reason: str,
                 warnings: Sequence[str] = (), onnx_sha256: str | None = None,
                 preprocessor_dir: str = TOKENIZER_DIR) -> dict[str, Any]:
    """Write the bundle into `folder`, the preprocessor (`tokenizer`, the folder holding it) into its
    `preprocessor_dir` sub-folder (the task spec's `bundle_dir`); return a summary for stage.json."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(onnx, folder / ONNX_NAME)
    for data in external_data:
        shutil.copy2(data, folder / data.name)
    bundled = BuildPlan.from_dict(plan.to_dict())
    bundled.onnx = ONNX_NAME
    # plan.json names only files the bundle carries, relative to it: a cache left behind (one the
    # precision does not read) is not recorded, and no path of this machine reaches the device.
    bundled.calibration_cache = None
    if calibration_cache is not None:
        shutil.copy2(calibration_cache, folder / CACHE_NAME)
        bundled.calibration_cache = CACHE_NAME
    plugin_entry = plugin_library_entry(bundled)
    if plugin_entry is not None:
        copy_plugin_sources(folder / PLUGIN_SOURCES_DIR)
        bundled.plugins = [*bundled.plugins, plugin_entry]
    bundled.calibration_data = None
    if calibration_data is not None and calibration_data.is_file():
        shutil.copy2(calibration_data, folder / CALIB_DATA_NAME)
        bundled.calibration_data = CALIB_DATA_NAME
    atomic_write_json(folder / PLAN_JSON, bundled.to_dict())
    command = command_line(bundled, bundled.trt_version, onnx=ONNX_NAME, trtexec=JETPACK_TRTEXEC)
    atomic_write_text(folder / TRTEXEC_TXT, command + "\n")
    has_tok = copy_tokenizer(tokenizer, folder / preprocessor_dir)
    script = folder / SCRIPT
    atomic_write_text(script, render_script(bundled, preprocessor_dir if has_tok else None))
    script.chmod(0o755)
    template = new_manifest(bundled, status="template", device_key=bundled.device, onnx_sha256=onnx_sha256,
                            task=task_name(onnx))
    template["note"] = ("template: the versions are the target's; build_on_device.sh replaces them with the "
                        "device's and stamps the plan's sha256")
    atomic_write_json(folder / TEMPLATE, template)
    lines = [
        "trt-edge on-device build bundle",
        "",
        f"NO TENSORRT PLAN WAS BUILT HERE: {reason}.",
        f"Target: {bundled.device or 'any GPU'}, TensorRT {TrtVersion.parse(bundled.trt_version).short}, "
        f"precision {bundled.precision}, sparse weights {'on' if bundled.sparse_weights else 'off'}.",
        "",
        "On the Jetson: copy this folder over, then run ./build_on_device.sh [OUT_DIR]",
        "It builds OUT_DIR/model.plan and writes OUT_DIR/model.plan.json (the manifest trt-edge run checks).",
        "",
        "The equivalent trtexec command (also in trtexec_command.txt):",
        "  " + command,
    ]
    if bundled.attention_plugin:
        lines += ["", f"Fused attention: the ONNX's nodes bind to the {bundled.attention_plugin} plugin; "
                  f"build_on_device.sh builds it from {PLUGIN_SOURCES_DIR}/ into {PLUGIN_BUILD_DIR}/ first "
                  "(needs cmake and the CUDA toolkit on the device)."]
    if bundled.plugins:
        lines += ["", "Plugin libraries the build loads (build them on the device at these paths):"]
        lines += [f"  {p}" for p in bundled.plugins]
    if warnings:
        lines += ["", "Warnings:"] + [f"  - {w}" for w in warnings]
    atomic_write_text(folder / README, "\n".join(lines) + "\n")
    write_checksums(folder)
    return {"built": False, "reason": reason, "trtexec": command, "preprocessor": has_tok,
            "calibration_cache": calibration_cache is not None, "attention_plugin": bundled.attention_plugin}


# ---------------------------------------------------------------------------------------------------
# Bundle integrity: SHA256SUMS lists every file; build_on_device.sh and `trt-edge build --plan` verify it
# before building, so a replaced model.onnx (or cache, plan.json, tokenizer) is refused, not built.

CHECKSUMS = "SHA256SUMS"


def write_checksums(folder: Path) -> dict[str, str]:
    """Write `SHA256SUMS` (the `sha256sum` format, checkable on the device without trt-edge) over every
    file in the bundle; call it last, after every other file is written."""
    sums = {f.relative_to(folder).as_posix(): sha256_file(f) for f in sorted(folder.rglob("*"))
            if f.is_file() and f.name != CHECKSUMS}
    atomic_write_text(folder / CHECKSUMS, "".join(f"{h}  {name}\n" for name, h in sums.items()))
    return sums


def read_checksums(folder: Path) -> dict[str, str]:
    """`SHA256SUMS` of a bundle as {relative path: sha256}; refused in one line when missing or malformed."""
    path = folder / CHECKSUMS
    if not path.is_file():
        raise TrtEdgeError(f"{folder}: no {CHECKSUMS}, so the bundle cannot be verified; rebuild it with "
                           "trt-edge build")
    sums: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TrtEdgeError(f"{path}: unreadable ({exc}); rebuild the bundle") from exc
    for lineno, line in enumerate(lines, 1):
        digest, sep, name = line.partition("  ")
        name = name.lstrip("*")
        if (not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not name
                or name.startswith("/") or ".." in name.split("/")):
            raise TrtEdgeError(f"{path}:{lineno}: not a sha256sum line for a file inside the bundle; "
                               "rebuild the bundle")
        sums[name] = digest
    return sums


def verify_bundle(folder: Path) -> dict[str, str]:
    """Check every file `SHA256SUMS` lists; refuse every mismatch at once, in one line."""
    sums = read_checksums(folder)
    bad = [name for name, digest in sums.items()
           if not (folder / name).is_file() or sha256_file(folder / name) != digest]
    if bad:
        raise TrtEdgeError(f"{folder}: bundle files changed since trt-edge wrote them (sha256 mismatch): "
                           f"{', '.join(bad)}; rebuild the bundle instead of building from it")
    # The template names the ONNX the bundle was made from: a model.onnx swapped together with a
    # regenerated SHA256SUMS still disagrees with it.
    template = folder / TEMPLATE
    if template.is_file():
        from trt_edge.guard import load_json

        recorded = load_json(template, "manifest template")
        recorded = recorded.get("onnx_sha256") if isinstance(recorded, dict) else None
        if recorded and sums.get(ONNX_NAME) not in (None, recorded):
            raise TrtEdgeError(f"{folder}: {ONNX_NAME} is not the model the bundle was made for (its sha256 differs "
                               f"from {TEMPLATE}); rebuild the bundle")
    return sums


def render_verify_block() -> str:
    """The bash block of build_on_device.sh that checks SHA256SUMS before anything is built."""
    return r'''# --- bundle integrity (trt-edge): every file must match SHA256SUMS before anything is built ---
verify_bundle() {
  if [ ! -f "$HERE/SHA256SUMS" ]; then
    echo "build_on_device.sh: error: $HERE/SHA256SUMS is missing, the bundle cannot be verified; rebuild it" >&2
    return 2
  fi
  local bad
  if command -v sha256sum >/dev/null 2>&1; then
    bad="$( (cd "$HERE" && LC_ALL=C sha256sum -c SHA256SUMS 2>/dev/null) | grep -v ': OK$' | cut -d: -f1 \
      | tr '\n' ' ' || true)"
  else
    bad="$(cd "$HERE" && python3 -c 'import hashlib,sys
for line in open("SHA256SUMS"):
    h, _, n = line.rstrip("\n").partition("  ")
    try:
        ok = hashlib.sha256(open(n, "rb").read()).hexdigest() == h
    except OSError:
        ok = False
    if not ok:
        sys.stdout.write(n + " ")' || true)"
  fi
  if [ -n "$bad" ]; then
    echo "build_on_device.sh: error: bundle files changed since trt-edge wrote them (sha256 mismatch):" \
      "${bad% }; rebuild the bundle" >&2
    return 2
  fi
}
verify_bundle || exit 2
# --- end of bundle integrity ---'''
