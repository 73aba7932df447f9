"""2:4 structured sparsity: masks, channel permutations, recovery, and checks on torch and ONNX weights."""
