"""Classify text with a trt-edge engine (or its ONNX model) in a few lines.

    python examples/python/classify.py runs/demo/build/model.plan --tokenizer runs/demo/distill/model "great show!"
    python examples/python/classify.py runs/demo/calibrate/model.int8.onnx --tokenizer runs/demo/distill/model "meh"

The TensorRT runner checks the plan's manifest (TensorRT version, GPU, hashes) before loading it.
"""

import argparse

import numpy as np
from transformers import AutoTokenizer

from trt_edge.runtime.ort import OnnxRuntimeRunner

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("model", help="model.plan (TensorRT) or model.onnx (ONNX Runtime)")
parser.add_argument("--tokenizer", required=True, help="the model folder holding the tokenizer")
parser.add_argument("text", nargs="+")
args = parser.parse_args()

if args.model.endswith(".onnx"):
    runner = OnnxRuntimeRunner(args.model)
else:
    from trt_edge.runtime.tensorrt import TensorRTRunner

    runner = TensorRTRunner(args.model)
tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, local_files_only=True)
labels = tokenizer.init_kwargs.get("id2label") or None
with runner:
    names = {m.name: m.dtype for m in runner.inputs()}
    enc = tokenizer(args.text, padding=True, truncation=True, max_length=128, return_tensors="np")
    logits = runner.infer({n: np.asarray(enc[n]).astype(dtype) for n, dtype in names.items()})["logits"]
probs = np.exp(logits - logits.max(-1, keepdims=True))
probs /= probs.sum(-1, keepdims=True)
for text, p in zip(args.text, probs, strict=True):
    print(f"{int(p.argmax())}  {p.max():.3f}  {text}")
