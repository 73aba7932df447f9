"""Issue 34: the kit's CPU artifact against what a user would pick instead, same model, same data.

    pip install -e '.[peers]'                      # OpenVINO + NNCF into the kit's environment
    python benchmarks/peers.py --run runs/demo --config configs/demo.yaml \
        --out benchmarks/out/peers.json [--results benchmarks/RESULTS.md]

Every artifact is built from the run's own fp32 student ONNX (`export/`), and the PyTorch peer from the
same Hugging Face folder (`prune/model`, else `distill/student`); all are scored on the run's test split
and timed in one process, interleaved round by round (`trt_edge.timing.interleaved`, the kit's one timing
routine), each runtime with the same number of threads, `--repeats` times; a cell is the median over the
repeats of each repeat's median, with the spread over repeats beside it. Ratios are the kit's artifact
against each peer at the same shape in the same repeat, so the machine's drift hits both sides alike.

The peers:
- `trt-edge CPU artifact`: `calibrate/`'s chosen artifact in a trt-edge session (its session hint applied),
  and `... plain session`: the same file in a plain `onnxruntime.InferenceSession`.
- `ORT quantize_dynamic`: ONNX Runtime's `quantize_dynamic` on the fp32 ONNX (its defaults).
- `Optimum O3 + dynamic INT8`: Optimum's ORTOptimizer O3 then ORTQuantizer dynamic for this CPU's ISA
  (avx512_vnni / avx512 / avx2 / arm64). Optimum's ONNX part pins an older `transformers` than the kit's,
  so its artifact is built in its own virtual environment (`--optimum-venv`, created on first use with
  `pip install torch==<this torch> optimum-onnx[onnxruntime] onnxruntime==<this onnxruntime>`) and timed here.
- `OpenVINO fp32` and `OpenVINO + NNCF INT8` (NNCF's post-training quantization, transformer preset, on
  the kit's own calibration samples `calibrate/calibration.npz`), each with dynamic shapes and, for INT8,
  reshaped to each timed shape (`static shape`), as a deployment that knows its shape would.
- `PyTorch dynamic INT8`: `torch.ao.quantization.quantize_dynamic` on the Linear layers.

A peer that cannot be built here (a missing package, no network for the Optimum environment) is recorded
with its error and the rest still run; `--peers` picks a subset.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PEERS = ("trt-edge", "trt-edge-plain", "ort-dynamic", "optimum", "openvino-fp32", "nncf-int8",
         "nncf-int8-static", "torch-dynamic")


@dataclass
class Meta:
    """ONNX Runtime's input/output description, for runtimes that are not ONNX Runtime (duck-typed, so
    `quantize.evaluate.predict`, the kit's one batched scoring loop, scores every peer the same way)."""

    name: str
    type: str = "tensor(int64)"


@dataclass
class SessionLike:
    """A runtime behind the two calls of an ONNX Runtime session that scoring needs."""

    inputs: list[str]
    output: str
    fn: Callable[[dict[str, np.ndarray]], np.ndarray]

    def get_inputs(self) -> list[Meta]:
        return [Meta(n) for n in self.inputs]

    def get_outputs(self) -> list[Meta]:
        return [Meta(self.output, "tensor(float)")]

    def run(self, names: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [self.fn(feed)]


@dataclass
class Peer:
    name: str
    runtime: str
    note: str
    session: Any = None                                   # ORT session or SessionLike: scoring
    timed: Callable[[dict[str, np.ndarray]], Callable[[], object]] | None = None  # feed -> timed call
    static_batch: int | None = None                       # scored one example at a time at a fixed shape
    path: Path | None = None
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def optimum_isa(flags: set[str]) -> str:
    """The AutoQuantizationConfig preset a user of this CPU would pick."""
    if platform.machine() in ("aarch64", "arm64"):
        return "arm64"
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


def ort_timed(sess: Any) -> Callable[[dict[str, np.ndarray]], Callable[[], object]]:
    from trt_edge.quantize.evaluate import input_dtypes, output_name

    def make(feed: dict[str, np.ndarray]) -> Callable[[], object]:
        typed = {n: feed[n].astype(t) for n, t in input_dtypes(sess).items()}
        out = output_name(sess)
        return lambda: sess.run([out], typed)
    return make


OPTIMUM_BUILD = r"""
import json, sys
from optimum.onnxruntime import ORTModelForSequenceClassification, ORTOptimizer, ORTQuantizer
from optimum.onnxruntime.configuration import AutoOptimizationConfig, AutoQuantizationConfig
src, out, isa = sys.argv[1], sys.argv[2], sys.argv[3]
model = ORTModelForSequenceClassification.from_pretrained(src)
ORTOptimizer.from_pretrained(model).optimize(save_dir=out + "/o3", optimization_config=AutoOptimizationConfig.O3())
quantizer = ORTQuantizer.from_pretrained(out + "/o3", file_name="model_optimized.onnx")
config = getattr(AutoQuantizationConfig, isa)(is_static=False, per_channel=False)
quantizer.quantize(save_dir=out + "/int8", quantization_config=config)
import glob
print(json.dumps(sorted(glob.glob(out + "/int8/*.onnx"))))
"""


def optimum_venv(venv: Path) -> Path:
    """Optimum's environment (created once): its `transformers` pin conflicts with the kit's."""
    import onnxruntime
    import torch

    python = venv / "bin" / "python"
    if python.is_file():
        return python
    print(f"creating {venv} for Optimum (once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    torch_version = torch.__version__.split("+")[0]
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"torch=={torch_version}",
                    "optimum-onnx[onnxruntime]", f"onnxruntime=={onnxruntime.__version__}"], check=True)
    return python


def build_optimum(fp32: Path, hf_folder: Path, work: Path, venv: Path, isa: str) -> Path:
    import shutil

    python = optimum_venv(venv)
    src = work / "optimum-src"
    src.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(fp32, src / "model.onnx")
    if (fp32.parent / (fp32.name + ".data")).is_file():
        shutil.copyfile(fp32.parent / (fp32.name + ".data"), src / (fp32.name + ".data"))
    shutil.copyfile(hf_folder / "config.json", src / "config.json")
    out = subprocess.run([str(python), "-c", OPTIMUM_BUILD, str(src), str(work / "optimum"), isa],
                         check=True, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    files = json.loads(out.stdout.strip().splitlines()[-1])
    if not files:
        raise RuntimeError("Optimum wrote no quantized ONNX")
    return Path(files[0])


def openvino_peer(name: str, ov_model: Any, threads: int, inputs: list[str], note: str,
                  static: bool, max_length: int) -> Peer:
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    output = ov_model.outputs[0].get_any_name()

    def compiled_for(shape: tuple[int, int] | None) -> Any:
        model = ov_model.clone()
        if shape is not None:
            model.reshape({n: list(shape) for n in inputs})
        return core.compile_model(model, "CPU", config)

    def infer_fn(compiled: Any) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        request = compiled.create_infer_request()

        def fn(feed: dict[str, np.ndarray]) -> np.ndarray:
            request.infer({n: feed[n] for n in inputs})
            return np.array(request.get_output_tensor(0).data)
        return fn

    if static:
        scoring = compiled_for((1, max_length))
        one = infer_fn(scoring)

        def score(feed: dict[str, np.ndarray]) -> np.ndarray:
            rows = []
            for i in range(len(feed[inputs[0]])):
                padded = {}
                for n in inputs:
                    row = feed[n][i:i + 1]
                    padded[n] = np.pad(row, ((0, 0), (0, max_length - row.shape[1])))
                rows.append(one(padded))
            return np.concatenate(rows)
        fn = score
    else:
        fn = infer_fn(compiled_for(None))
    # On a CPU with AMX or AVX-512 BF16, OpenVINO's default precision for float layers is bf16, not fp32:
    # that default is what a user gets, so it is kept and named.
    precision = compiled_for(None).get_property("INFERENCE_PRECISION_HINT")
    name_of = getattr(precision, "get_type_name", None)
    note = f"{note}; float layers run in {name_of() if callable(name_of) else precision}"

    def timed(feed: dict[str, np.ndarray]) -> Callable[[], object]:
        run = infer_fn(compiled_for(tuple(feed[inputs[0]].shape)) if static else compiled_for(None))
        typed = {n: feed[n].astype(np.int64) for n in inputs}
        return lambda: run(typed)
    return Peer(name, f"OpenVINO {ov.__version__}", note, SessionLike(inputs, output, fn), timed)


def torch_peer(hf_folder: Path, threads: int, inputs: list[str]) -> Peer:
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.set_num_threads(threads)
    model = AutoModelForSequenceClassification.from_pretrained(hf_folder).eval()
    qmodel = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)

    def fn(feed: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            return qmodel(**{n: torch.from_numpy(np.ascontiguousarray(feed[n])) for n in inputs}).logits.numpy()

    def timed(feed: dict[str, np.ndarray]) -> Callable[[], object]:
        typed = {n: feed[n].astype(np.int64) for n in inputs}
        return lambda: fn(typed)
    return Peer("PyTorch dynamic INT8", f"PyTorch {torch.__version__}", "quantize_dynamic on nn.Linear, qint8",
                SessionLike(inputs, "logits", fn), timed)


def build_peers(args: argparse.Namespace, run: Path, work: Path, inputs: list[str], max_length: int,
                calib: dict[str, np.ndarray]) -> list[Peer]:
    import onnxruntime

    from trt_edge.quantize import evaluate
    from trt_edge.stage import read_stage

    wanted = set(args.peers.split(",")) if args.peers else set(PEERS)
    cal = read_stage(run / "calibrate")
    fp32 = run / "export" / read_stage(run / "export")["artifacts"]["onnx"]
    cpu_art = run / "calibrate" / cal["artifacts"]["onnx_cpu"]
    hf = next((p for p in (run / "prune" / "model", run / "distill" / "student") if (p / "config.json").is_file()),
              None)
    chosen = cal["metrics"].get("cpu_artifact", "?")
    ort_rt = f"ONNX Runtime {onnxruntime.__version__}"
    peers: list[Peer] = []

    def attempt(key: str, make: Callable[[], Peer]) -> None:
        if key not in wanted:
            return
        try:
            peers.append(make())
        except Exception as exc:  # a peer that cannot be built here is recorded, the rest still run
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300]
            peers.append(Peer(key, "", "", error=f"{type(exc).__name__}: {first}"))
            print(f"peer {key}: not built: {peers[-1].error}", flush=True)

    def ort_peer(name: str, path: Path, hint: bool, note: str) -> Peer:
        # The kit's one session builder: its disabled-optimizer hint honoured (None) or every optimizer on ([]).
        sess = evaluate.session(str(path), args.threads, None if hint else [])
        return Peer(name, ort_rt, note, sess, ort_timed(sess), path=path)

    attempt("trt-edge", lambda: ort_peer("trt-edge CPU artifact", cpu_art, True,
                                         f"{chosen}, in a trt-edge session (session hint applied)"))
    attempt("trt-edge-plain", lambda: ort_peer("trt-edge CPU artifact, plain session", cpu_art, False,
                                               "the same file in a plain InferenceSession"))

    def ort_dynamic() -> Peer:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        dst = work / "ort-dynamic.onnx"
        quantize_dynamic(str(fp32), str(dst), weight_type=QuantType.QInt8)
        return ort_peer("ORT quantize_dynamic", dst, False, "quantize_dynamic(weight_type=QInt8), defaults")
    attempt("ort-dynamic", ort_dynamic)

    isa = optimum_isa(cpu_flags())

    def optimum() -> Peer:
        if hf is None:
            raise RuntimeError("the run has no Hugging Face folder for Optimum's config.json")
        path = build_optimum(fp32, hf, work, Path(args.optimum_venv), isa)
        return ort_peer("Optimum O3 + dynamic INT8", path, False, f"ORTOptimizer O3, ORTQuantizer {isa} dynamic")
    attempt("optimum", optimum)

    ov_fp32: Any = None
    ov_int8: Any = None
    if wanted & {"openvino-fp32", "nncf-int8", "nncf-int8-static"}:
        try:
            import openvino as ov
            ov_fp32 = ov.Core().read_model(str(fp32))
        except Exception as exc:
            print(f"OpenVINO: {type(exc).__name__}: {exc}", flush=True)
    attempt("openvino-fp32", lambda: openvino_peer("OpenVINO fp32", ov_fp32, args.threads, inputs,
                                                   "read_model(fp32 ONNX), dynamic shape", False, max_length))
    if ov_fp32 is not None and wanted & {"nncf-int8", "nncf-int8-static"}:
        try:
            import nncf
            samples = [{n: calib[n][i:i + 1] for n in inputs} for i in range(len(calib[inputs[0]]))]
            ov_int8 = nncf.quantize(ov_fp32, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER,
                                    subset_size=len(samples))
        except Exception as exc:
            print(f"NNCF: {type(exc).__name__}: {exc}", flush=True)
    attempt("nncf-int8", lambda: openvino_peer("OpenVINO + NNCF INT8", ov_int8, args.threads, inputs,
                                               "nncf.quantize (transformer preset, the kit's calibration samples), "
                                               "dynamic shape", False, max_length))
    attempt("nncf-int8-static", lambda: openvino_peer(
        "OpenVINO + NNCF INT8, static shape", ov_int8, args.threads, inputs,
        f"the same, reshaped to each timed shape (scored at 1x{max_length})", True, max_length))
    if "torch-dynamic" in wanted:
        if hf is None:
            peers.append(Peer("torch-dynamic", "", "", error="the run has no Hugging Face folder"))
        else:
            attempt("torch-dynamic", lambda: torch_peer(hf, args.threads, inputs))
    return peers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/demo")
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--out", required=True)
    parser.add_argument("--shapes", default="1x64,1x128,8x128", help="batch x sequence, comma-separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per chunk (at most)")
    parser.add_argument("--chunk-ms", type=float, default=500.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--peers", default="", help=f"comma-separated subset of {','.join(PEERS)}")
    parser.add_argument("--optimum-venv", default=str(ROOT / ".cache" / "peers-optimum"))
    parser.add_argument("--results", default="", help="append the table to this markdown file")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import onnxruntime

    from trt_edge.config import load_config
    from trt_edge.profile.harness import TextSource, latency_stats, make_feed
    from trt_edge.quantize import calib_data
    from trt_edge.quantize.evaluate import predict
    from trt_edge.runtime.base import TensorMeta
    from trt_edge.tasks.adapter import adapter_for
    from trt_edge.tasks.metrics import classification_metrics
    from trt_edge.tasks.spec import get_task
    from trt_edge.timing import interleaved

    run = Path(args.run)
    config = load_config(args.config)
    task = config.section("task")
    spec = get_task(task.type)
    adapter = adapter_for(spec)
    data = adapter.load_data(task.data)
    tokenizer = spec.preprocessor.load(run / "export" / "preprocessor")
    inputs = [i.name for i in spec.inputs if i.name in tokenizer.model_input_names] or \
        [i.name for i in spec.inputs]
    arrays, lengths = calib_data.prepare(tokenizer, data.test.texts, task.max_length, inputs, task.type)
    labels = np.asarray(data.test.labels)
    num_labels = int(labels.max()) + 1
    calib_file = np.load(run / "calibrate" / "calibration.npz")
    calib = {n: calib_file[f"input.{n}"] for n in inputs}
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        peers = build_peers(args, run, Path(tmp), inputs, task.max_length, calib)
        live = [p for p in peers if p.error is None]
        for peer in live:
            logits = (predict(peer.session, arrays, lengths, batch_size=task.eval_batch_size))
            peer.metrics = classification_metrics(logits, labels, num_labels)
            if peer.path is not None:
                peer.metrics["bytes"] = peer.path.stat().st_size
            print(f"{peer.name}: accuracy {peer.metrics['accuracy']:.4f}", flush=True)
        source = TextSource(tokenizer, list(data.test.texts))
        metas = [TensorMeta(n, (-1, -1), np.dtype(np.int64)) for n in inputs]
        repeats: list[dict[str, dict[str, float]]] = []
        for r in range(args.repeats):
            per_shape: dict[str, dict[str, float]] = {}
            for batch, seq in shapes:
                feed = make_feed(metas, batch, seq, source)
                calls = [p.timed(feed) for p in live if p.timed is not None]
                samples = interleaved(calls, rounds=args.rounds, runs=args.runs, max_ms=args.chunk_ms, min_runs=5)
                per_shape[f"b{batch}s{seq}"] = {p.name: latency_stats(s)["median"]
                                               for p, s in zip(live, samples, strict=True)}
                print(f"repeat {r + 1} b{batch} s{seq}: " + ", ".join(
                    f"{k} {v:.2f}" for k, v in per_shape[f"b{batch}s{seq}"].items()), flush=True)
            repeats.append(per_shape)

    kit = "trt-edge CPU artifact"
    table: dict[str, Any] = {}
    for shape in repeats[0]:
        table[shape] = {}
        for peer in live:
            values = [rep[shape][peer.name] for rep in repeats]
            entry: dict[str, Any] = {"median_ms": float(np.median(values)), "repeats_ms": values}
            if kit in repeats[0][shape] and peer.name != kit:
                ratios = [rep[shape][peer.name] / rep[shape][kit] for rep in repeats]
                entry["kit_speedup"] = {"median": float(np.median(ratios)), "min": min(ratios), "max": max(ratios)}
            table[shape][peer.name] = entry
    versions: dict[str, str] = {"onnxruntime": onnxruntime.__version__}
    for mod in ("openvino", "nncf", "torch", "transformers"):
        with contextlib.suppress(Exception):
            versions[mod] = __import__(mod).__version__
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    result = {
        "date": datetime.date.today().isoformat(), "machine": cpu_model(), "cores": os.cpu_count(),
        "isa": optimum_isa(cpu_flags()), "threads": args.threads, "commit": commit, "versions": versions,
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "run": str(run),
        "rounds": args.rounds, "repeats": args.repeats,
        "peers": [{"name": p.name, "runtime": p.runtime, "note": p.note, "error": p.error, **p.metrics}
                  for p in peers],
        "latency": table,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(result)
    print(md)
    if args.results:
        with open(args.results, "a") as f:
            f.write("\n" + md)


def markdown(result: dict[str, Any]) -> str:
    shapes = list(result["latency"])
    lines = [f"### CPU peers ({result['date']}, {result['machine']}, {result['threads']} threads, commit "
             f"{result['commit']})", "", f"`{result['command']}`; "
             + ", ".join(f"{k} {v}" for k, v in result["versions"].items())
             + f"; {result['repeats']} repeats x {result['rounds']} interleaved rounds; median ms (median over "
               "repeats); in brackets the kit's speed-up over that peer (min-max over repeats).", "",
             "| artifact | runtime | accuracy | macro-F1 | " + " | ".join(shapes) + " |",
             "|---|---|---|---|" + "---|" * len(shapes)]
    for peer in result["peers"]:
        if peer["error"]:
            lines.append(f"| {peer['name']} | not built: {peer['error']} |" + " |" * (len(shapes) + 2))
            continue
        cells = []
        for shape in shapes:
            entry = result["latency"][shape].get(peer["name"])
            if entry is None:
                cells.append("–")
                continue
            s = entry.get("kit_speedup")
            cells.append(f"{entry['median_ms']:.2f}" + (f" ({s['median']:.2f}×, {s['min']:.2f}–{s['max']:.2f})"
                                                       if s else ""))
        lines.append(f"| {peer['name']} | {peer['runtime']} | {peer['accuracy']:.4f} | {peer['macro_f1']:.4f} | "
                     + " | ".join(cells) + " |")
    lines += [""] + [f"- {p['name']}: {p['note']}" for p in result["peers"] if not p["error"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
