"""The modeling layer: what trt-edge knows about a Hugging Face encoder, below tasks, distillation and
sparsity.

- `anatomy`: layers, hidden size, heads, head size and feed-forward width behind one table of
  config-name alternatives (`CONFIG_NAMES`, in the spirit of Optimum's NormalizedConfig), the one
  head-count function, and the encoder's list of blocks;
- `quirks`: what a family does differently (ALBERT's shared block, DINOv2's backbone stages, rotary
  tables sized from `head_dim`), each found once;
- `families`: the families the tests cover, keyed by `model_type`, with what each supports;
- `recipe`: the width-recipe checkpoint format (`trt_edge_width` in config.json) and its loader;
- `folder`: model folders on disk (`demo:` names, checks, saving);
- `pooling`: sentence-embedding models (an encoder with its pooling, Dense and normalisation, read from
  and saved as a sentence-transformers folder).

Nothing here imports tasks, distill, sparsity or a stage: they all stand on this layer. The submodules
are imported by name (`from trt_edge.modeling.anatomy import ...`), so reading the family table never
imports torch.
"""
