"""trt-edge: Hugging Face transformer to a fast, small, verified TensorRT engine on NVIDIA Jetson."""

__version__ = "0.1.0"
