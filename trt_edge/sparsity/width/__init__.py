"""Structured width pruning: whole attention heads and feed-forward neurons removed for real.

2:4 sparsity and INT8 pay only where the hardware has sparse tensor cores or integer dot-product units;
a model with fewer heads and a narrower feed-forward is faster on every chip (Volta Jetsons, an AVX2
laptop, DLA, ONNX Runtime on any CPU). This module is the torch half of the `width` prune method:

- `find_blocks` (`structure`) finds every transformer block's attention (Q/K/V or one fused QKV, output
  projection, any further per-head projections such as DeBERTa's position projections) and feed-forward
  (up, down; a gated up holding input and gate) Linear layers from the module graph (shapes and order, not class
  names), so BERT, RoBERTa, XLM-R, DistilBERT, ELECTRA, ALBERT (its one shared block), MPNet,
  DeBERTa-v2/v3, ModernBERT, ViT, DeiT and DINOv2 go through the same code;
- `activation_importance` (`importance`) scores heads and neurons (and, when asked, hidden channels)
  on calibration batches by activation magnitude;
- `plan_width` (`plan`) chooses what to keep; `shrink_` (`surgery`) slices the Linear layers (and any
  per-head table such as MPNet's relative position bias) to the kept heads and neurons, and updates the
  attention modules' head counts and the config;
- hidden-size pruning (optional) removes channels of the residual stream everywhere it lives: every
  block's projections, every LayerNorm, the embeddings (and ViT's patch projection, [CLS] token and
  position table), and the head's Linear layers that read the stream. Which head layers read the stream
  and which embedding layers write it is traced on a real forward pass (storage identity), not named;
- the pruned model is saved and reloaded in the width-recipe format of `trt_edge.modeling.recipe`
  (`save_pruned`, `load_pruned`): loading a folder belongs to the modeling layer, not to the pruner.

One module per concept: `structure` (finding the blocks), `importance` (scoring), `plan` (rounding and
choosing what to keep), `surgery` (cutting the model). This package re-exports their public names.

Widths are uniform across layers (one head count, one feed-forward width), so the config's
`intermediate_size` stays truthful, and kept widths are multiples of 8 (TensorRT's tensor-core tiles
and the 2:4 pattern's groups of 4 both still apply). A pruned hidden size is also a multiple of the head
count where the family derives the head size from `hidden_size / num_attention_heads` (BERT, RoBERTa,
DistilBERT, MPNet refuse any other config); ViT, which reads `head_dim`, only needs the multiple of 8.
"""

from __future__ import annotations

from trt_edge.sparsity.width.importance import HiddenTrace, Importance, activation_importance
from trt_edge.sparsity.width.plan import (
    MULTIPLE,
    WidthPlan,
    hidden_multiple,
    plan_width,
    round_ffn,
    round_heads,
    round_hidden,
)
from trt_edge.sparsity.width.structure import Block, Structure, describe, find_blocks
from trt_edge.sparsity.width.surgery import check_hidden_shrink, shrink_

__all__ = ["MULTIPLE", "Block", "HiddenTrace", "Importance", "Structure", "WidthPlan", "activation_importance",
           "check_hidden_shrink", "describe", "find_blocks", "hidden_multiple", "plan_width", "round_ffn",
           "round_heads", "round_hidden", "shrink_"]
