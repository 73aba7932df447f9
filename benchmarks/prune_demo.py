"""The demo student pruned to 2:4: accuracy vs dense, kept magnitude with and without permutation, proof in ONNX.

    python benchmarks/prune_demo.py --distill runs/demo-distill --work runs/demo-prune --out prune_demo.json \
        [--config configs/demo.yaml] [--reuse] [--set prune.train.epochs=1 ...]

1. Runs the prune stage (`trt_edge.sparsity.stage.run`, the same as `trt-edge prune --config CFG --model
   DISTILL --out WORK/prune`) on the distilled demo student, unless `--reuse` finds it finished.
2. Exports the sparse model with the export area's `export_onnx` and runs the ONNX sparsity checker on it
   against the model's `sparsity.json`.
3. Writes one JSON with the issue's targets: sparse accuracy within 1.5 points of the dense student,
   permutation raising the kept magnitude on every permuted layer, 100% of pruned tensors 2:4 in the ONNX.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml


def _overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        out[key] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distill", type=Path, default=Path("runs/demo-distill"), help="distill stage folder")
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--work", type=Path, default=Path("runs/demo-prune"), help="where prune/ and model.onnx go")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--reuse", action="store_true", help="reuse WORK/prune when it holds a finished stage")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    args = parser.parse_args(argv)

    from trt_edge.config import load_config
    from trt_edge.errors import TrtEdgeError
    from trt_edge.sparsity.onnx_check import check_onnx_sparsity
    from trt_edge.sparsity.stage import run
    from trt_edge.stage import read_stage, stage_artifact

    prune_dir = args.work / "prune"
    started = time.time()
    try:
        if args.reuse and (prune_dir / "stage.json").is_file():
            record = read_stage(prune_dir, "prune")
        else:
            record = run(load_config(args.config, _overrides(args.overrides), "prune"), args.distill,
                         prune_dir).to_dict()
        prune_seconds = time.time() - started
        model_dir = stage_artifact(prune_dir, "model", expect="prune")
        from trt_edge.export.exporter import export_onnx

        onnx_path = args.work / "model.onnx"
        info = export_onnx(model_dir, onnx_path)
        report = check_onnx_sparsity(onnx_path, model_dir)
    except TrtEdgeError as exc:
        print(f"prune_demo: {exc}", file=sys.stderr)
        return 2
    m = record["metrics"]
    sparsity = json.loads((model_dir / "sparsity.json").read_text())
    layers = []
    for name, info_ in sparsity["tensors"].items():
        layers.append({"tensor": name, "permuted": info_["input_channels_permuted"],
                       "kept_magnitude": round(info_["kept_magnitude"], 5),
                       "kept_magnitude_without_permutation": round(info_["kept_magnitude_without_permutation"], 5)})
    permuted = [row for row in layers if row["permuted"]]
    drop = 100 * (m["dense_accuracy"] - m["sparse_accuracy"])
    result = {
        "distill": str(args.distill), "config": args.config, "overrides": args.overrides,
        "dense_accuracy": m["dense_accuracy"], "pruned_accuracy_before_recovery": m["pruned_accuracy_before_recovery"],
        "sparse_accuracy": m["sparse_accuracy"], "dense_macro_f1": m.get("dense_macro_f1"),
        "sparse_macro_f1": m.get("sparse_macro_f1"), "teacher_accuracy": m.get("teacher_accuracy"),
        "accuracy_drop_points": drop,
        "kept_magnitude": m["kept_magnitude"],
        "kept_magnitude_without_permutation": m["kept_magnitude_without_permutation"],
        "sparse_layers": m["sparse_layers"], "skipped_layers": m["skipped_layers"],
        "permuted_layers": len(permuted), "permutation_seconds": m.get("permutation_seconds"),
        "recovery": {k: v for k, v in m.get("recovery", {}).items() if k != "schedule"},
        "onnx_exporter": info.exporter, "onnx_checker": report.summary(),
        "layers": layers,
        "targets": {
            "sparse_within_1.5_points_of_dense": drop <= 1.5,
            "permutation_raises_kept_magnitude_on_every_permuted_layer": bool(permuted) and all(
                r["kept_magnitude"] > r["kept_magnitude_without_permutation"] for r in permuted),
            "all_pruned_tensors_2to4_in_onnx": report.expected_pass_rate() == 1.0,
        },
        "prune_seconds": prune_seconds, "seconds": time.time() - started,
    }
    text = json.dumps(result, indent=2) + "\n"
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(json.dumps({k: result[k] for k in ("dense_accuracy", "pruned_accuracy_before_recovery", "sparse_accuracy",
                                             "accuracy_drop_points", "kept_magnitude",
                                             "kept_magnitude_without_permutation", "targets")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
