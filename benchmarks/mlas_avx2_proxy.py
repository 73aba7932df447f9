"""Issue 19 proxy: the CPU artifact's speed-up with ONNX Runtime's MLAS kernels forced to AVX2/FMA3.

    python benchmarks/mlas_avx2_proxy.py --run runs/demo-width-t --config configs/demo-width.yaml \
        --repeats 3 --out benchmarks/out/mlas_avx2_proxy.json

Issue 19 asks for the speed-up on an AVX2-only x86 CPU (no VNNI, no AMX). When only a newer CPU is at hand,
this is the closest honest stand-in: MLAS (ONNX Runtime's CPU math library) picks its GEMM kernels once,
from CPUID, in its platform constructor, and has no switch to cap the instruction set. This script copies
the installed `onnxruntime` package to a temporary folder and flips three conditional jumps in that
constructor so MLAS takes its AVX2/FMA3 kernels (fp32 FMA3 SGEMM, int8 `vpmaddubsw` U8S8 GEMM) instead of
AVX-512, AVX512-VNNI, AVX-VNNI and AVX-VNNI-INT8. Each patch site is found by its exact byte pattern and
must match exactly once; otherwise the script stops and says the build differs (then a real AVX2 machine,
running `cpu_target_repeat.py`, is the only measurement).

What the proxy is and is not: the same kernels an AVX2-only CPU runs, executed on this CPU's cores, whose
caches, clocks and 256-bit throughput are not a Zen 3's or a Haswell's. It measures whether the int8 path
keeps its lead once the dot-product instructions are gone; it does not stand in for the issue's AVX2
machine in `benchmarks/RESULTS.md`.

The run: (1) a probe of one fp32 MatMul and one dynamic int8 MatMul under the stock and the patched
package, in separate processes, so the JSON shows the dispatch changed (the patched copy must be slower
on a CPU that has the newer instructions); (2) every model of the run on the test split under both, since
the AVX2 int8 kernels multiply in 16-bit pairs (`vpmaddubsw`, which saturates) where VNNI accumulates in
32 bits, so the artifact's accuracy there is measured, not assumed; (3) `benchmarks/cpu_target_repeat.py`
on the run, stock then patched, alternating, `--repeats` times each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Each pattern ends on (or holds, at the named group) the short `je` that skips a newer kernel family when
# its CPUID bit is clear; the patch turns that `je` (0x74) into `jmp` (0xEB), so the family is never chosen.
#   cpuid(7, 1); test $0x10, %al; je      -> AVX-VNNI skipped
#   test $0x10000, %r10d; je ... test $0xe0 (XCR0 AVX-512 state) ...; test $0x10, %dl; je
#                                          -> AVX-512F (and with it AVX512-VNNI) and AVX-VNNI-INT8 skipped
PATCHES: list[tuple[str, bytes]] = [
    ("avx-vnni", rb"\xb8\x07\x00\x00\x00\xb9\x01\x00\x00\x00\x0f\xa2\xa8\x10(?P<je>\x74)"),
    ("avx-512", rb"\x41\xf7\xc2\x00\x00\x01\x00(?P<je>\x74)\x0e\x4c\x89\xc0\x48\xf7\xd0\xa8\xe0\x0f\x84"),
    ("avx-vnni-int8", rb"\x41\xf7\xc2\x00\x00\x01\x00\x74\x0e\x4c\x89\xc0\x48\xf7\xd0\xa8\xe0\x0f\x84"
                      rb"....\xf6\xc2\x10(?P<je>\x74)"),
]

PROBE = r"""
import json, sys, time
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)
w = rng.standard_normal((384, 1536)).astype(np.float32)
x = rng.standard_normal((64, 384)).astype(np.float32)
graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "probe",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 384])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 1536])],
                          [numpy_helper.from_array(w, "w")])
fp32 = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
wq = np.clip(np.round(w * 40), -127, 127).astype(np.int8)
nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
         helper.make_node("MatMulInteger", ["xq", "wq", "xz", "wz"], ["acc"])]
graph = helper.make_graph(nodes, "probe_int8",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 384])],
                          [helper.make_tensor_value_info("acc", TensorProto.INT32, [64, 1536])],
                          [numpy_helper.from_array(wq, "wq"), numpy_helper.from_array(np.int8(0), "wz")])
int8 = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
out = {"onnxruntime": ort.__file__}
for name, model in (("fp32_matmul_64x384x1536", fp32), ("int8_matmul_64x384x1536", int8)):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    for _ in range(50):
        sess.run(None, {"x": x})
    times = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(200):
            sess.run(None, {"x": x})
        times.append((time.perf_counter() - start) / 200 * 1e6)
    out[name + "_us"] = sorted(times)[len(times) // 2]
print(json.dumps(out))
"""


ACCURACY = r"""
import json, sys
from pathlib import Path
import numpy as np
import onnxruntime
from trt_edge.config import load_config
from trt_edge.pipeline.compare import comparison_inputs, run_models
from trt_edge.runtime.ort import OnnxRuntimeRunner
from trt_edge.runtime.text import TextClassifier
from trt_edge.tasks.data import load_data

config = load_config(sys.argv[2])
task = config.section("task")
test = load_data(task.data).test
labels = np.asarray(test.labels)
out = {"onnxruntime": onnxruntime.__file__, "n": int(labels.size), "accuracy": {}}
models = run_models(Path(sys.argv[1]))
tokenizer, _ = comparison_inputs(config, models)
for label, path in models:
    with OnnxRuntimeRunner(path) as runner:
        classifier = TextClassifier(runner, tokenizer, None, task.max_length, task.eval_batch_size)
        pred = classifier.logits(test.texts).argmax(axis=1)
    out["accuracy"][label] = float((pred == labels).mean())
print(json.dumps(out))
"""


def patch_package(dest: Path) -> dict[str, Any]:
    """Copy the installed onnxruntime package under `dest` and patch MLAS's dispatch in its Python module."""
    import onnxruntime

    source = Path(onnxruntime.__file__).parent
    target = dest / "onnxruntime"
    shutil.copytree(source, target, symlinks=True)
    libraries = sorted((target / "capi").glob("onnxruntime_pybind11_state*.so"))
    if len(libraries) != 1:
        raise SystemExit(f"error: expected one onnxruntime_pybind11_state*.so under {target / 'capi'}, "
                         f"found {len(libraries)}; this proxy supports the x86-64 Linux wheel only")
    library = libraries[0]
    original = library.read_bytes()
    data = bytearray(original)
    applied = []
    for name, pattern in PATCHES:  # every site is found in the unpatched bytes, then all are flipped
        matches = list(re.finditer(pattern, original, re.S))
        if len(matches) != 1:
            raise SystemExit(f"error: the {name} dispatch check matches {len(matches)} times in {library.name} "
                             f"(onnxruntime {onnxruntime.__version__}); this build differs from the one the "
                             "patterns were written for: measure on a real AVX2-only CPU instead")
        offset = matches[0].start("je")
        data[offset] = 0xEB
        applied.append({"check": name, "file_offset": hex(offset)})
    library.write_bytes(bytes(data))
    return {"onnxruntime": onnxruntime.__version__, "library": library.name, "patched": applied}


def _cpu_flags() -> list[str]:
    """The instruction-set flags that decide MLAS's kernels, as the kernel reports them."""
    wanted = {"avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx_vnni_int8", "amx_int8"}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            return sorted(wanted & set(line.split(":", 1)[1].split()))
    return []


def _env(pythonpath: str | None) -> dict[str, str]:
    env = dict(os.environ)
    parts = [p for p in (pythonpath, str(Path.cwd())) if p]
    env["PYTHONPATH"] = os.pathsep.join(parts + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def _probe(pythonpath: str | None) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         env=_env(pythonpath))
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _accuracy(pythonpath: str | None, run: str, config: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", ACCURACY, run, config], capture_output=True, text=True,
                         check=True, env=_env(pythonpath))
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _repeat(pythonpath: str | None, run: str, config: str, out: Path) -> dict[str, Any]:
    subprocess.run([sys.executable, "benchmarks/cpu_target_repeat.py", "--run", run, "--config", config,
                    "--repeats", "1", "--out", str(out)], check=True, env=_env(pythonpath))
    return dict(json.loads(out.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/demo-width-t")
    parser.add_argument("--config", default="configs/demo-width.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if not Path(args.run, "pipeline.json").is_file():
        raise SystemExit(f"error: {args.run} is not a finished pipeline run (no pipeline.json); "
                         "run `trt-edge pipeline` first")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from kd_seeds import _cpu_model

    with tempfile.TemporaryDirectory(prefix="ort-avx2-") as tmp:
        patched_path = Path(tmp) / "site"
        patch = patch_package(patched_path)
        result: dict[str, Any] = {
            "benchmark": "mlas_avx2_proxy", "date": time.strftime("%Y-%m-%d"), "cpu": _cpu_model(),
            "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
            "cpu_flags": _cpu_flags(), "command": " ".join([sys.executable, *sys.argv]), "patch": patch,
            "probe": {"stock": _probe(None), "avx2": _probe(str(patched_path))},
            "repeats": {"stock": [], "avx2": []},
            "test_accuracy": {"stock": _accuracy(None, args.run, args.config),
                              "avx2": _accuracy(str(patched_path), args.run, args.config)},
        }
        if not all(result[k]["avx2"]["onnxruntime"].startswith(str(patched_path)) for k in ("probe", "test_accuracy")):
            raise SystemExit("error: the patched onnxruntime copy was not the one imported")
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=False)
        result["commit"] = commit.stdout.strip()
        for _ in range(args.repeats):
            for label, path in (("stock", None), ("avx2", str(patched_path))):
                one = _repeat(path, args.run, args.config, Path(tmp) / f"{label}.json")
                result["repeats"][label].extend(one.get("repeats", []))
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({"probe": result["probe"], "repeats": result["repeats"]}, indent=2))


if __name__ == "__main__":
    main()
