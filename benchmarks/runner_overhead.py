"""What the Runner interface costs: OnnxRuntimeRunner.infer (feed checks, timing) vs a bare
onnxruntime session, on the packaged MiniLM exported to ONNX, at a few batch x sequence shapes.

Writes JSON (`--out`); the figures go to benchmarks/RESULTS.md. CPU only; a few minutes at most.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def export(out: Path) -> Path:
    import torch
    from transformers import AutoModelForSequenceClassification

    from trt_edge.tasks.models import resolve_model_path

    path = resolve_model_path("demo:minilm")
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3, use_safetensors=True).eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    ids = torch.ones((2, 16), dtype=torch.long)
    onnx_path = out / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids, ids, torch.zeros_like(ids)), str(onnx_path), input_names=names,
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names}, "logits": {0: "batch"}})
    return onnx_path


def timed(fn: Any, repeats: int) -> dict[str, float]:
    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(samples), "p90_ms": float(np.percentile(samples, 90)),
            "min_ms": min(samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="benchmarks/out/runner_overhead.json")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import onnxruntime as ort

    from trt_edge.runtime.ort import OnnxRuntimeRunner

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export(Path(tmp))
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        with OnnxRuntimeRunner(onnx_path, intra_op_threads=args.threads) as runner:
            for batch, seq in ((1, 16), (1, 64), (8, 64)):
                feed = {n: np.ones((batch, seq), dtype=np.int64) for n in ("input_ids", "attention_mask")}
                feed["token_type_ids"] = np.zeros((batch, seq), dtype=np.int64)
                bare = timed(lambda feed=feed: session.run(["logits"], feed), args.repeats)
                wrapped = timed(lambda feed=feed: runner.infer(feed), args.repeats)
                checks = timed(lambda feed=feed: runner.check_feed(feed), 200)
                rows.append({"batch": batch, "sequence": seq, "bare_ort": bare, "runner": wrapped,
                             "check_feed_us": checks["median_ms"] * 1e3,
                             "overhead_ms": wrapped["median_ms"] - bare["median_ms"]})
                print(json.dumps(rows[-1]))
    result = {"model": "demo:minilm (6 layers, hidden 384) exported with torch.onnx (TorchScript exporter)",
              "threads": args.threads, "repeats": args.repeats, "machine": platform.platform(), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
