"""Issue 31 benchmark: does quantization-aware distillation keep what post-training INT8 loses?

    python benchmarks/qat_seeds.py --run runs/demo --config configs/demo.yaml \
        --out benchmarks/out/qat_demo.json [--seeds 0 1 2] [--scales learned frozen] [--set qat.train.epochs=2 ...]

Reads a finished run (its calibrate stage, the export it quantized and the model export read) and runs the
qat stage with `qat.when=always` once per seed and per scale mode (learned LSQ scales, frozen PTQ scales)
into `<work>/<mode>-seed<N>`. Every model is scored on the same test split, so per example we have fp32,
PTQ (as calibrate deployed it) and QAT. Per run: the stage's own paired verdicts (QAT vs fp32, PTQ vs fp32).
Over the seeds, per mode: each test example's correctness averaged over the seeds, and the mean of
(fp32 - QAT) with a 95% normal interval over the test examples (kd_seeds.py's `seed_average`); the same
for PTQ (one run: its own seed), and the share of PTQ's drop QAT closes. The JSON is rewritten after every
run, so an interrupted benchmark keeps what it measured.

Targets (issue 31): QAT with every layer INT8 within 0.3 points of its fp32 input; where PTQ lost >= 0.5
points, QAT closes at least half of it; over 3 seeds where one run's difference is inside the noise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kd_seeds import _cpu_model, seed_average  # the one seed-averaging rule of the benchmarks


def _correct(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.asarray(outputs.argmax(-1) == labels, dtype=np.float64)


def _negated(summary: dict[str, Any]) -> dict[str, Any]:
    lo, hi = summary["interval_points"]
    return {**summary, "mean_points": -summary["mean_points"], "interval_points": [-hi, -lo]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a finished pipeline run folder (calibrate stage done)")
    parser.add_argument("--config", required=True, help="the run's config file")
    parser.add_argument("--out", required=True)
    parser.add_argument("--work", default=None, help="where the qat stage folders go (default: <run>/qat-seeds)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--scales", nargs="+", choices=["learned", "frozen"], default=["learned", "frozen"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args()

    from trt_edge.config import load_config
    from trt_edge.quantize.qat_stage import quantization_aware
    from trt_edge.stats import load_predictions

    run = Path(args.run)
    work = Path(args.work) if args.work else run / "qat-seeds"
    model = next(run / s for s in ("prune", "width", "distill") if (run / s / "stage.json").is_file())
    import yaml

    overrides = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    result: dict[str, Any] = {"run": str(run), "config": args.config, "cpu": _cpu_model(), "overrides": overrides,
                              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": [], "pooled": {}}
    cal = json.loads((run / "calibrate" / "stage.json").read_text())["metrics"]
    result["calibrate"] = {k: cal.get(k) for k in ("fp32_accuracy", "int8_accuracy", "accuracy_drop_points",
                                                   "accuracy_drop_before_fallback", "excluded_layers", "gate")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    correct: dict[str, list[np.ndarray]] = {}
    base: dict[str, np.ndarray] = {}
    for mode in args.scales:
        for seed in args.seeds:
            folder = work / f"{mode}-seed{seed}"
            if not (folder / "stage.json").is_file():
                config = load_config(args.config, {**overrides, "qat.when": "always", "qat.seed": seed,
                                                   "qat.learn_scales": mode == "learned"})
                t0 = time.perf_counter()
                quantization_aware(config, run / "calibrate", model, folder, onnx=run / "export")
                seconds = time.perf_counter() - t0
            else:
                seconds = float(json.loads((folder / "stage.json").read_text())["metrics"].get("seconds", "nan"))
            m = json.loads((folder / "stage.json").read_text())["metrics"]
            preds = load_predictions(folder / "test_predictions.npz")
            labels = preds["labels"]
            base.setdefault("fp32", _correct(preds["fp32"], labels))
            base.setdefault("ptq", _correct(preds["ptq"], labels))
            correct.setdefault(mode, []).append(_correct(preds["qat"], labels))
            result["runs"].append({
                "mode": mode, "seed": seed, "seconds": round(seconds, 1), "deployed": m["deployed"],
                "fp32_accuracy": m["fp32_accuracy"], "ptq_accuracy": m["ptq_accuracy"],
                "qat_accuracy": m["qat_accuracy"], "qat_vs_fp32": m["gate"], "ptq_vs_fp32": m["ptq_gate"],
                "qat_vs_ptq": m["qat_vs_ptq"], "quantized_nodes": m["quantized_nodes"],
                "ptq_float_layers": m["ptq_float_layers"], "train": m["train"],
                "sparse_pattern_intact": m.get("sparse_pattern_intact")})
            for name, rows in correct.items():
                qat = np.stack(rows)
                drop = _negated(seed_average(qat, base["fp32"][None]))  # fp32 - QAT, seeds counted from QAT's
                ptq = seed_average(base["fp32"][None], base["ptq"][None])
                closed = (ptq["mean_points"] - drop["mean_points"]) / ptq["mean_points"] \
                    if ptq["mean_points"] > 0 else None
                result["pooled"][name] = {"qat_drop_vs_fp32": drop, "ptq_drop_vs_fp32": ptq,
                                          "share_of_ptq_drop_closed": closed,
                                          "qat_minus_ptq": seed_average(qat, base["ptq"][None])}
            out.write_text(json.dumps(result, indent=2) + "\n")
            print(f"{mode} seed {seed}: fp32 {m['fp32_accuracy']:.4f} PTQ {m['ptq_accuracy']:.4f} "
                  f"QAT {m['qat_accuracy']:.4f} ({seconds:.0f} s)", flush=True)
    print(json.dumps(result["pooled"], indent=2))


if __name__ == "__main__":
    main()
