"""Our own fused attention: the CUDA kernel and TensorRT plugin in `plugins/fused_attention/`, and here the
Python side: `library` (locate/build/load the libraries, sha256 for the manifest), `onnx_rewrite` (replace
attention blocks of an exported model with the plugin's node, with CPU parity) and `ort_reference` (the
CPU reference of the fused node). Importing this package imports neither onnx nor onnxruntime.
"""

from __future__ import annotations

from trt_edge.plugins.library import library_sha256, load_plugin_library, plugin_library_path

__all__ = ["fuse_attention_file", "library_sha256", "load_plugin_library", "plugin_library_path"]


def __getattr__(name: str) -> object:
    # fuse_attention_file lives with the ONNX code; resolved lazily to keep this import light.
    if name == "fuse_attention_file":
        from trt_edge.plugins.onnx_rewrite import fuse_attention_file

        return fuse_attention_file
    raise AttributeError(name)
