"""Issues 9 and 10 benchmark: the demo pipeline's wall time per stage, accuracy at every stage, and the
ONNX Runtime CPU latency of every model side by side (same run, interleaved), as ratios to the teacher.

    TRT_EDGE_CACHE=$(mktemp -d) /usr/bin/time -v trt-edge pipeline --config configs/demo.yaml --out runs/demo
    python benchmarks/pipeline_demo.py --run runs/demo --out benchmarks/out/pipeline_demo.json

Targets: issue 9 — pipeline < 15 min on 2 cores, INT8 student within 1.5 points of the teacher, batch-1
ONNX Runtime latency >= 4x lower than the fp32 teacher's; issue 10 — the CPU artifact >= 4x faster than the
teacher at batch 1 (sequence 64 and 128) and within 1 point of the fp32 student.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/demo")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    run = Path(args.run)
    record = json.loads((run / "pipeline.json").read_text())
    stages = {name: json.loads((run / name / "stage.json").read_text()) for name in record["stages"]}
    seconds = {name: entry["seconds"] for name, entry in record["stages"].items()}
    comparison = json.loads((run / "profile" / "comparison.json").read_text())
    d, c = stages["distill"]["metrics"], stages["calibrate"]["metrics"]
    p = stages.get("prune", {}).get("metrics", {})
    q = stages.get("qat", {}).get("metrics", {})  # the qat stage's deployed INT8 (QAT's or PTQ's), when it ran
    deployed = q.get("int8_accuracy", c.get("int8_accuracy"))
    latency = {f"b{s['batch']}s{s['seq']}": {label: st["median"] for label, st in s["latency_ms"].items()}
               for s in comparison["shapes"]}
    speedup = {f"b{s['batch']}s{s['seq']}": s["speedup_vs_first"] for s in comparison["shapes"]}
    teacher = d["teacher_accuracy"]
    result = {
        "seconds_per_stage": seconds, "total_seconds": round(sum(seconds.values()), 1),
        "accuracy": {"teacher": teacher, "student": d["student_accuracy"],
                     "student_hard_label": d.get("student_hard_label_accuracy"),
                     "sparse_student": p.get("sparse_accuracy"), "student_onnx_fp32": c.get("fp32_accuracy"),
                     "int8_qdq_tensorrt": c.get("int8_accuracy"), "int8_qdq_qat": q.get("qat_accuracy"),
                     "int8_qdq_deployed": deployed, "cpu_artifact": c.get("cpu_accuracy")},
        "int8_deployed": q.get("deployed", "ptq"), "int8_deployed_reason": q.get("deployed_reason"),
        "cpu_artifact": c.get("cpu_artifact"),
        "cpu_candidates": [{k: v for k, v in cand.items() if k in ("name", "accuracy", "latency_ms", "speedup_vs_fp32",
                                                                      "passed", "note")}
                           for cand in c.get("cpu_candidates", [])],
        "ort_latency_median_ms": latency, "speedup_vs_teacher": speedup,
        "comparison_method": comparison["method"], "onnxruntime": comparison["onnxruntime"],
        "targets": {
            "pipeline_under_15_minutes": sum(seconds.values()) < 900,
            "int8_within_1_5_points_of_teacher": (teacher - deployed) * 100 <= 1.5,
            "cpu_artifact_within_1_5_points_of_teacher": (teacher - c["cpu_accuracy"]) * 100 <= 1.5
            if c.get("cpu_accuracy") is not None else None,
            "cpu_artifact_within_1_point_of_fp32_student": (c["fp32_accuracy"] - c["cpu_accuracy"]) * 100 <= 1.0
            if c.get("cpu_accuracy") is not None else None,
            "cpu_artifact_4x_faster_than_teacher_b1": {k: v.get("student INT8 (CPU)", 0) >= 4.0
                                                       for k, v in speedup.items() if k.startswith("b1")},
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
