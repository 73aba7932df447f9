"""ONNX Runtime CPU latency of the exported teacher and student, side by side in one run.

    python benchmarks/export_latency.py --out export_latency.json [--runs 50] [--markdown]

Teacher: the full packaged 6-layer MiniLM with a classification head. Student: the same model cut to
layers 0, 2, 4 (the demo's distilled shape). Both go through `trt_edge.export.exporter.export_onnx`
(the same contract as `trt-edge export`), then ONNX Runtime's CPU provider runs them at batch 1 and 8,
sequence 64 and 128 (full attention masks). Per shape: warm-up runs, then `--runs` timed runs with the
two models interleaved (teacher, student, teacher, ...) so that background load on a shared machine hits
both alike; median and p90 in milliseconds, and the teacher/student ratio of the medians.

The heads are freshly initialised (latency does not depend on the head's values; parity and accuracy
are measured by the export stage and its tests, not here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SHAPES = [(1, 64), (1, 128), (8, 64), (8, 128)]
LABELS = ["negative", "neutral", "positive"]


def _export(tmp: Path) -> dict[str, dict[str, Any]]:
    from trt_edge.distill.student import student_from_teacher
    from trt_edge.export.exporter import export_onnx
    from trt_edge.tasks.models import LoadedClassifier, load_classifier

    teacher = load_classifier("demo:minilm", LABELS)
    student_model, _ = student_from_teacher(teacher.model, [0, 2, 4])
    student_model.eval()
    student = LoadedClassifier(student_model, teacher.tokenizer, teacher.path, True, "benchmark")
    models = {}
    for name, loaded in (("teacher", teacher), ("student", student)):
        path = tmp / f"{name}.onnx"
        info = export_onnx(teacher.path, path, loaded=loaded)
        params = int(sum(p.numel() for p in loaded.model.parameters()))
        models[name] = {"path": path, "exporter": info.exporter, "onnx_bytes": info.onnx_bytes,
                        "layers": int(loaded.model.config.num_hidden_layers), "params": params}
    return models


def _feeds(batch: int, seq: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch * 1000 + seq)
    ids = rng.integers(1000, 30000, size=(batch, seq), dtype=np.int64)
    ids[:, 0] = 101
    ids[:, -1] = 102
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def measure(models: dict[str, dict[str, Any]], runs: int, warmup: int, threads: int | None) -> list[dict[str, Any]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    sessions = {n: ort.InferenceSession(str(m["path"]), sess_options=options, providers=["CPUExecutionProvider"])
                for n, m in models.items()}
    rows = []
    for batch, seq in SHAPES:
        feeds = _feeds(batch, seq)
        for _ in range(warmup):
            for session in sessions.values():
                session.run(["logits"], feeds)
        times: dict[str, list[float]] = {n: [] for n in sessions}
        for _ in range(runs):
            for name, session in sessions.items():
                start = time.perf_counter()
                session.run(["logits"], feeds)
                times[name].append((time.perf_counter() - start) * 1e3)
        row: dict[str, Any] = {"batch": batch, "sequence": seq, "runs": runs}
        for name, values in times.items():
            arr = np.asarray(values)
            row[name] = {"median_ms": float(np.median(arr)), "p90_ms": float(np.percentile(arr, 90)),
                         "min_ms": float(arr.min())}
        row["teacher_over_student"] = row["teacher"]["median_ms"] / row["student"]["median_ms"]
        rows.append(row)
        print(f"batch {batch:2d} seq {seq:3d}: teacher {row['teacher']['median_ms']:7.2f} ms "
              f"(p90 {row['teacher']['p90_ms']:7.2f}), student {row['student']['median_ms']:7.2f} ms "
              f"(p90 {row['student']['p90_ms']:7.2f}), ratio {row['teacher_over_student']:.2f}x", file=sys.stderr)
    return rows


def markdown(result: dict[str, Any]) -> str:
    lines = ["| batch | seq | teacher median / p90 (ms) | student median / p90 (ms) | teacher / student |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    for r in result["rows"]:
        t, s = r["teacher"], r["student"]
        lines.append(f"| {r['batch']} | {r['sequence']} | {t['median_ms']:.2f} / {t['p90_ms']:.2f}"
                     f" | {s['median_ms']:.2f} / {s['p90_ms']:.2f} | "
                     f"{r['teacher_over_student']:.2f}x |")
    m = result["models"]
    lines.append("")
    lines.append(f"Teacher: {m['teacher']['layers']} layers, {m['teacher']['params'] / 1e6:.1f} M parameters, "
                 f"{m['teacher']['onnx_bytes'] / 1e6:.1f} MB ONNX; student: {m['student']['layers']} layers, "
                 f"{m['student']['params'] / 1e6:.1f} M parameters, {m['student']['onnx_bytes'] / 1e6:.1f} MB ONNX "
                 f"(exporter: {m['student']['exporter']}); {result['runs']} timed runs per model and shape after "
                 f"{result['warmup']} warm-up runs, models interleaved; onnxruntime {result['onnxruntime']}, "
                 f"intra-op threads {result['threads'] or 'default'}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("export_latency.json"), help="JSON result file")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per model and shape")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs per model and shape first")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table on stdout")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="export-latency-") as tmp:
        started = time.time()
        models = _export(Path(tmp))
        rows = measure(models, args.runs, args.warmup, args.threads or None)
    result = {
        "benchmark": "export_latency", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}",
        "onnxruntime": ort.__version__, "threads": args.threads or None, "runs": args.runs, "warmup": args.warmup,
        "seconds": time.time() - started,
        "models": {n: {k: v for k, v in m.items() if k != "path"} for n, m in models.items()}, "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
