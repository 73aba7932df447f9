"""Issue 2 benchmark: the demo distillation's accuracies, the hard-label ablation, sizes and wall time.

    python benchmarks/distill_demo.py --out benchmarks/out/distill_demo.json [--stage runs/demo/distill]

With `--stage`, a finished distill stage folder (e.g. the pipeline's) is read; otherwise the stage runs now
from `--config` into a temporary folder, with a private cache so the teacher is fine-tuned from scratch.
Targets (issue 2): student >= 97% of the teacher's accuracy, distilled student > hard-label student, the
whole demo distillation < 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--stage", default="", help="a finished distill stage folder to read instead of running")
    args = parser.parse_args()
    if args.stage:
        stage_dir = Path(args.stage)
        wall = None
    else:
        tmp = Path(tempfile.mkdtemp(prefix="distill-demo-"))
        stage_dir = tmp / "distill"
        env = {**os.environ, "TRT_EDGE_CACHE": str(tmp / "cache")}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "trt_edge", "distill", "--config", args.config, "--out", str(stage_dir)],
                       check=True, env=env)
        wall = time.perf_counter() - start
    stage = json.loads((stage_dir / "stage.json").read_text())
    m = stage["metrics"]
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "stage": str(stage_dir),
        "teacher_accuracy": m["teacher_accuracy"], "teacher_macro_f1": m.get("teacher_macro_f1"),
        "student_accuracy": m["student_accuracy"], "student_macro_f1": m.get("student_macro_f1"),
        "student_hard_label_accuracy": m.get("student_hard_label_accuracy"),
        "student_vs_teacher": m["student_accuracy"] / m["teacher_accuracy"],
        "teacher_params": m["teacher_params"], "student_params": m["student_params"],
        "teacher_weight_bytes": m.get("teacher_weight_bytes"), "student_weight_bytes": m.get("student_weight_bytes"),
        "stage_seconds": m["train_seconds"], "wall_seconds": wall,
        "teacher_cache": m.get("teacher_cache"), "test_examples": m["data"]["sizes"]["test"],
        "targets": {
            "student_at_least_97pct_of_teacher": m["student_accuracy"] >= 0.97 * m["teacher_accuracy"],
            "distilled_beats_hard_label": (m.get("student_hard_label_accuracy") is not None
                                           and m["student_accuracy"] > m["student_hard_label_accuracy"]),
            "under_10_minutes": m["train_seconds"] < 600,
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
