"""ONNX export, graph clean-up, parity checks, TensorRT compatibility lint."""
