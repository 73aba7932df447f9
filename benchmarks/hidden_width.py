"""Issue 19 benchmark: what hidden-size pruning adds on top of heads and neurons, two runs side by side.

Two finished width pipeline runs that differ only in `width.keep_hidden` (the base keeps the hidden size,
the other prunes it) are compared in one timing process: the teacher, both width-pruned fp32 models and
both CPU artifacts, interleaved round by round by the pipeline's comparison loop, so the hidden step's
speed-up is a same-process ratio. Accuracy: both CPU artifacts' saved test predictions paired on the same
examples (drop and its 95% interval), each also against the teacher.

    python benchmarks/hidden_width.py --base runs/demo-width-t --hidden runs/demo-width-h \
        --out benchmarks/out/hidden_width.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any


def _widths(run: Path) -> dict[str, Any]:
    from trt_edge.stage import read_stage

    return dict(read_stage(run / "width", "width")["metrics"]["structure"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="runs/demo-width-t")
    parser.add_argument("--hidden", default="runs/demo-width-h")
    parser.add_argument("--config", default="configs/demo-width.yaml")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import onnxruntime

    from trt_edge import stats
    from trt_edge.config import load_config
    from trt_edge.files import atomic_write_json
    from trt_edge.pipeline.compare import comparison_inputs, run_models
    from trt_edge.pipeline.verdict import CPU_LABEL, TEACHER_LABEL, load_all_predictions
    from trt_edge.profile.side_by_side import compare_latency
    from trt_edge.stage import read_stage

    base, hidden = Path(args.base), Path(args.hidden)
    config = load_config(args.config)
    cfg = config.section("pipeline")
    base_models, hidden_models = dict(run_models(base)), dict(run_models(hidden))
    width_label = "student width-pruned fp32"
    models = [(TEACHER_LABEL, base_models[TEACHER_LABEL]),
              (f"{width_label}, hidden kept", base_models[width_label]),
              (f"{width_label}, hidden pruned", hidden_models[width_label]),
              (f"{CPU_LABEL}, hidden kept", base_models[CPU_LABEL]),
              (f"{CPU_LABEL}, hidden pruned", hidden_models[CPU_LABEL])]
    tokenizer, texts = comparison_inputs(config, models)
    repeats = []
    for _ in range(args.repeats):
        points = compare_latency(models, tokenizer, texts, cfg.shapes(config.section("task").max_length),
                                 cfg.compare_rounds, cfg.compare_runs, progress=False, chunk_ms=cfg.compare_chunk_ms)
        repeat = {}
        for p in points:
            med = {k: v["median"] for k, v in p["latency_ms"].items()}
            repeat[f"b{p['batch']}s{p['seq']}"] = {
                "median_ms": {k: round(v, 4) for k, v in med.items()},
                "speedup_vs_teacher": p["speedup_vs_first"],
                "hidden_step_speedup_fp32": med[models[1][0]] / med[models[2][0]],
                "hidden_step_speedup_cpu_artifact": med[models[3][0]] / med[models[4][0]]}
        repeats.append(repeat)
        print(json.dumps({s: {k: round(v, 3) for k, v in r.items() if k.startswith("hidden_step")}
                          | {"cpu_vs_teacher": {m: round(x, 2) for m, x in r["speedup_vs_teacher"].items()
                                                if m.startswith(CPU_LABEL)}}
                          for s, r in repeat.items()}), flush=True)

    accuracy: dict[str, Any] = {}
    preds_base, labels_base = load_all_predictions(base, {"distill": {}, "calibrate": {}})
    preds_hidden, labels_hidden = load_all_predictions(hidden, {"distill": {}, "calibrate": {}})
    if labels_base is not None and labels_hidden is not None and (labels_base == labels_hidden).all():
        teacher = preds_base["teacher"]
        kept, pruned = preds_base[CPU_LABEL], preds_hidden[CPU_LABEL]
        accuracy = {
            "n": int(labels_base.shape[0]),
            "hidden_pruned_vs_kept": stats.judge_predictions("hidden step", "CPU artifact, hidden pruned vs kept",
                                                             kept, pruned, labels_base, None).to_dict(),
            "kept_vs_teacher": stats.judge_predictions("vs teacher", "CPU artifact, hidden kept vs teacher",
                                                       teacher, kept, labels_base, 1.0).to_dict(),
            "pruned_vs_teacher": stats.judge_predictions("vs teacher", "CPU artifact, hidden pruned vs teacher",
                                                         teacher, pruned, labels_base, 1.0).to_dict(),
        }
    cpu_choice = {name: read_stage(run / "calibrate", "calibrate")["metrics"].get("cpu_artifact")
                  for name, run in (("kept", base), ("pruned", hidden))}
    result = {"base": str(base), "hidden": str(hidden), "widths": {"kept": _widths(base), "pruned": _widths(hidden)},
              "cpu_artifact": cpu_choice, "models": [m[0] for m in models], "repeats": repeats,
              "accuracy": accuracy, "onnxruntime": onnxruntime.__version__,
              "machine": {"processor": platform.processor(), "machine": platform.machine()}}
    atomic_write_json(args.out, result)
    print(json.dumps(accuracy and {k: {"drop": round(v["drop_points"], 2),
                                       "ci": [round(x, 2) for x in v["interval_points"]]}
                                   for k, v in accuracy.items() if k != "n"}))


if __name__ == "__main__":
    main()
