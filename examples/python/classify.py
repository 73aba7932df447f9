"""Classify text with a trt-edge engine (or its ONNX model) in a few lines.

    python examples/python/classify.py runs/demo/build/model.plan "great show!" "meh"
    python examples/python/classify.py runs/demo/calibrate/model.cpu.onnx --tokenizer runs/demo/distill/model "meh"

The TensorRT runner checks the plan's manifest (TensorRT version, GPU, hashes) before loading it; the
tokenizer and the label names come from the model folder found next to the file (or --tokenizer).
"""

import argparse

from trt_edge.runtime.text import TextClassifier

parser = argparse.ArgumentParser(description="Classify text with a trt-edge engine or ONNX model.")
parser.add_argument("model", help="model.plan (TensorRT) or a .onnx file (ONNX Runtime)")
parser.add_argument("--tokenizer", default=None, help="the model folder with the tokenizer, if not found next to it")
parser.add_argument("text", nargs="+")
args = parser.parse_args()

if args.model.endswith(".onnx"):
    from trt_edge.runtime.ort import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(args.model)
else:
    from trt_edge.runtime.tensorrt import TensorRTRunner

    runner = TensorRTRunner(args.model)
with runner:
    classifier = TextClassifier.from_model_file(runner, args.model, args.tokenizer)
    for prediction in classifier.classify(args.text):
        print(f"{prediction.label:<10} {max(prediction.probabilities.values()):.3f}  {prediction.text}")
