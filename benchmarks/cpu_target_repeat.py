"""Issue 10 benchmark, repeated: the side-by-side ONNX Runtime CPU comparison of a finished pipeline run,
timed again several times, so the spread of the CPU artifact's speed-up over the teacher is on record
(one comparison on a shared 2-core machine moves by ±10%).

    python benchmarks/cpu_target_repeat.py --run runs/demo --repeats 3 --out benchmarks/out/cpu_target_repeat.json

Same models, texts and timing routine as the pipeline's profile stage (`pipeline.compare`), batch 1.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/demo")
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import onnxruntime

    from trt_edge.config import load_config
    from trt_edge.pipeline.compare import comparison_inputs, run_models
    from trt_edge.profile.side_by_side import compare_latency

    run = Path(args.run)
    config = load_config(args.config)
    cfg = config.section("pipeline")
    models = run_models(run)
    tokenizer, texts = comparison_inputs(config, models)
    repeats = []
    for _ in range(args.repeats):
        points = compare_latency(models, tokenizer, texts, [[1, 64], [1, 128]], cfg.compare_rounds,
                                 cfg.compare_runs, progress=False, chunk_ms=cfg.compare_chunk_ms)
        repeats.append({f"b{p['batch']}s{p['seq']}": {"median_ms": {k: round(v["median"], 4)
                                                                    for k, v in p["latency_ms"].items()},
                                                       "speedup_vs_teacher": p["speedup_vs_first"]}
                        for p in points})
        print(json.dumps({k: v["speedup_vs_teacher"] for k, v in repeats[-1].items()}), flush=True)
    label = models[-1][0]
    spread = {shape: {"min": min(r[shape]["speedup_vs_teacher"][label] for r in repeats),
                      "max": max(r[shape]["speedup_vs_teacher"][label] for r in repeats)}
              for shape in repeats[0]}
    result = {"run": str(run), "models": [m[0] for m in models], "cpu_artifact_label": label,
              "repeats": repeats, "cpu_artifact_speedup_spread": spread,
              "target_4x_met_in_every_repeat": all(v["min"] >= 4.0 for v in spread.values()),
              "onnxruntime": onnxruntime.__version__, "machine": platform.processor() or platform.machine()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(spread))


if __name__ == "__main__":
    main()
