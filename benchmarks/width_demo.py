"""Issue 19 benchmark: what width pruning adds, in one timing run. The dense distilled student of a
width pipeline run (`distill/model`, exported here) is timed side by side with the run's own models
(teacher fp32, width-pruned fp32, the 2:4 student, the INT8 artifacts), so the width step's speed-up over
layer dropping alone is a same-run ratio.

    python benchmarks/width_demo.py --run runs/demo-width --config configs/demo-width.yaml \
        --out benchmarks/out/width_demo.json

Same inputs (texts or images, by the config's task), shapes (`pipeline.compare_shapes`) and timing routine
as the pipeline's profile stage (`profile.side_by_side.compare_latency`).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/demo-width")
    parser.add_argument("--config", default="configs/demo-width.yaml")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import onnxruntime

    from trt_edge.config import load_config
    from trt_edge.export.exporter import export_onnx
    from trt_edge.files import atomic_write_json
    from trt_edge.pipeline.compare import comparison_inputs, run_models
    from trt_edge.profile.side_by_side import compare_latency

    run = Path(args.run)
    config = load_config(args.config)
    cfg = config.section("pipeline")
    tokenizer, texts = comparison_inputs(config, run_models(run))
    with tempfile.TemporaryDirectory(prefix="width-demo-") as tmp:
        dense = Path(tmp) / "dense-student.onnx"
        export_onnx(run / "distill" / "model", dense, task=config.section("task").type)
        models = run_models(run)
        models.insert(1, ("dense student fp32 (before width)", dense))
        repeats = []
        for _ in range(args.repeats):
            shapes = cfg.shapes(config.section("task").max_length)
            points = compare_latency(models, tokenizer, texts, shapes, cfg.compare_rounds, cfg.compare_runs,
                                     progress=False, chunk_ms=cfg.compare_chunk_ms)
            repeats.append({f"b{p['batch']}s{p['seq']}": {
                "median_ms": {k: round(v["median"], 4) for k, v in p["latency_ms"].items()},
                "p90_ms": {k: round(v["p90"], 4) for k, v in p["latency_ms"].items()},
                "speedup_vs_teacher": p["speedup_vs_first"]} for p in points})
            print(json.dumps({s: r["speedup_vs_teacher"] for s, r in repeats[-1].items()}))
    atomic_write_json(args.out, {"run": str(run), "models": [label for label, _ in models], "repeats": repeats,
                                 "onnxruntime": onnxruntime.__version__,
                                 "machine": {"processor": platform.processor(), "machine": platform.machine()}})


if __name__ == "__main__":
    main()
