"""The ONNX graph library: one index over a graph, and attention fusion as match, verify and splice.

- `graph`: `GraphIndex` (producers, consumers, initializers, constant values, declared types) and `attr`,
  the one node-attribute reader. Every pass that reads an exported graph uses these.
- `attention_match`: the structural pattern of an attention block (`find_attention_candidates`).
- `attention_verify`: the numeric checks on real feeds (`verify_candidates`, `attention_reference`).
- `splice`: the shared graph surgery (the int32 mask cast, the bias tensor, `splice_nodes`).
- `runtime`: ONNX Runtime runs for the checks (`run_with_intermediates`, `compare_models`).

The emitters that use it sit above: `trt_edge.plugins.onnx_rewrite` (our TensorRT plugin node) and
`trt_edge.quantize.ort_attention` (ONNX Runtime's contrib ops); the TensorRT lint reads graphs through
`GraphIndex` and reports the matcher's reasons. This package imports only onnx, onnxruntime, numpy and
`trt_edge.errors`: task knowledge (which input is the padding mask) comes in as a parameter.
"""
