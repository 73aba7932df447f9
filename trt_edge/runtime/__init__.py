"""One runner interface over TensorRT and ONNX Runtime."""
