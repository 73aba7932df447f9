"""Cutting a model to a width plan, in place: Linear layers sliced to the kept heads and neurons (and
hidden channels), the attention modules' head counts, per-head tables and the config updated (`shrink_`),
and a trial cut that proves the family can be rebuilt at a new hidden size (`check_hidden_shrink`)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from trt_edge.errors import TrtEdgeError
from trt_edge.modeling.anatomy import names, set_module
from trt_edge.modeling.quirks import has_rotary
from trt_edge.modeling.recipe import WIDTH_FORMAT, WIDTH_KEY, apply_recipe, shape_recipe
from trt_edge.sparsity.width.importance import HiddenTrace, Importance
from trt_edge.sparsity.width.plan import WidthPlan, plan_width
from trt_edge.sparsity.width.structure import Structure, reads_head_dim


def _sliced(linear: torch.nn.Linear, rows: torch.Tensor | None, cols: torch.Tensor | None) -> torch.nn.Linear:
    weight = linear.weight.detach()
    rows = rows.to(weight.device) if rows is not None else None
    cols = cols.to(weight.device) if cols is not None else None
    if rows is not None:
        weight = weight.index_select(0, rows)
    if cols is not None:
        weight = weight.index_select(1, cols)
    new = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=linear.bias is not None,
                          device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if linear.bias is not None:
            bias = linear.bias.detach()
            new.bias.copy_(bias.index_select(0, rows) if rows is not None else bias)
    new.train(linear.training)
    return new


def _sliced_embedding(table: torch.nn.Embedding, cols: torch.Tensor) -> torch.nn.Embedding:
    """`table` keeping only the embedding channels `cols` (every row kept)."""
    new = torch.nn.Embedding(table.num_embeddings, len(cols), padding_idx=table.padding_idx,
                             device=table.weight.device, dtype=table.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(table.weight.detach().index_select(1, cols.to(table.weight.device)))
    return new


def _channels(indices: list[int], size: int) -> torch.Tensor:
    return torch.tensor([i * size + j for i in indices for j in range(size)], dtype=torch.long)


def shrink_(model: Any, structure: Structure, plan: WidthPlan) -> Structure:
    """Slice `model` in place to the plan's heads and neurons; return the new structure.

    Q/K/V lose the rows of the dropped heads, the output projection the matching columns; the
    feed-forward up projection loses rows, down loses columns. Attention modules' head counts, per-head
    tables and the config (`intermediate_size` and kin; `num_attention_heads` and `head_dim` where the
    family reads `head_dim`) follow. The function computed by the kept heads and neurons is unchanged.
    """
    modules = dict(model.named_modules())
    new_blocks = []
    for block, heads, neurons in zip(structure.blocks, plan.heads, plan.neurons, strict=True):
        rows = _channels(heads, block.head_dim)
        width = block.heads * block.head_dim
        stacked = torch.cat([rows + k * width for k in range(block.qkv_chunks)])
        for name in block.qkv:
            set_module(model, name, _sliced(modules[name], stacked, None))
        for name in block.extra:
            set_module(model, name, _sliced(modules[name], rows, None))
        set_module(model, block.out, _sliced(modules[block.out], None, rows))
        keep = torch.tensor(neurons, dtype=torch.long)
        up_rows = torch.cat([keep + k * block.ffn for k in range(block.up_chunks)])
        set_module(model, block.up, _sliced(modules[block.up], up_rows, None))
        set_module(model, block.down, _sliced(modules[block.down], None, keep))
        attention = modules[block.attention]
        for attr in names("heads"):
            if getattr(attention, attr, None) == block.heads:
                setattr(attention, attr, len(heads))
        for attr in names("attention_width"):
            if getattr(attention, attr, None) == block.heads * block.head_dim:
                setattr(attention, attr, len(heads) * block.head_dim)
        new_blocks.append(dataclasses.replace(block, heads=len(heads), ffn=len(neurons)))
    for name in structure.head_tables:
        table = modules[name]
        assert isinstance(table, torch.nn.Embedding)
        keep = torch.tensor(plan.heads[0], dtype=torch.long)
        set_module(model, name, _sliced_embedding(table, keep))
        owner = modules[name.rpartition(".")[0]] if "." in name else model
        for attr in names("heads"):
            if getattr(owner, attr, None) == structure.heads:
                setattr(owner, attr, len(keep))
    config = model.config
    for key in names("ffn"):
        if getattr(config, key, None) == structure.ffn:
            setattr(config, key, new_blocks[0].ffn)
            break
    if reads_head_dim(model):
        for key in names("heads"):
            if getattr(config, key, None) == structure.heads:
                setattr(config, key, new_blocks[0].heads)
        config.head_dim = structure.head_dim
    result = Structure(new_blocks, list(structure.head_tables))
    if plan.hidden is not None:
        assert plan.trace is not None
        _shrink_hidden_(model, result, plan.hidden, plan.trace)
        for block in result.blocks:
            block.hidden = len(plan.hidden)
    return result


def _logits(output: Any) -> torch.Tensor:
    logits: torch.Tensor = output.logits if hasattr(output, "logits") else output[0]
    return logits


def check_hidden_shrink(model: Any, structure: Structure, importance: Importance,
                        batch: Mapping[str, torch.Tensor], keep_hidden: int) -> None:
    """Cut a copy of `model` to `keep_hidden` channels, run `batch` through it, rebuild it from its config
    and the width recipe as `load_pruned` will, and compare the two: a family whose stream is read in a
    way the trace does not see (a head that concatenates pooled tokens, say), or whose config cannot say
    the new size (a table computed from it, such as rotary frequencies), fails here in one line, before
    any timing or training."""
    trial = copy.deepcopy(model)
    try:
        plan = plan_width(structure, importance, structure.heads, structure.ffn, keep_hidden)
        shrink_(trial, structure, plan)
        trial.eval()
        with torch.inference_mode():
            got = _logits(trial(**batch))
        config = copy.deepcopy(trial.config)
        config.__dict__.pop(WIDTH_KEY, None)
        rebuilt = type(trial)(config)  # the config, with the new hidden size, must still build the family
        apply_recipe(rebuilt, shape_recipe(trial) or {"format": WIDTH_FORMAT})
        rebuilt.load_state_dict(trial.state_dict(), strict=True)
        rebuilt.eval()
        with torch.inference_mode():
            again = _logits(rebuilt(**batch))
        if not torch.allclose(again, got, atol=1e-4, rtol=1e-3):
            raise RuntimeError(f"rebuilt from its config it computes other outputs (max |diff| "
                               f"{float((again - got).abs().max()):.3g})")
    except TrtEdgeError:
        raise
    except Exception as exc:  # any failure means the family is not supported
        # One line: torch's load_state_dict puts the useful part (which keys) on the lines after the first.
        first = " ".join(line.strip() for line in str(exc).splitlines()[:3])[:300] if str(exc) else \
            type(exc).__name__
        raise TrtEdgeError(f"hidden-size pruning does not support {type(model).__name__} ({first}) at a hidden "
                           f"size of {keep_hidden}; try another width.keep_hidden, or 1 to prune heads and neurons only"
                           ) from exc
    finally:
        del trial


def _shrink_hidden_(model: Any, structure: Structure, keep: list[int], trace: HiddenTrace) -> None:
    """Remove the hidden channels not in `keep` from everything that carries the residual stream.

    The blocks' Q/K/V and feed-forward up projections lose input columns, their output and down
    projections lose rows; every LayerNorm of the hidden size, every Embedding of that width (the per-head
    tables excepted), a Conv2d producing it (ViT's patch projection), and raw parameters and float buffers
    whose last axis is the hidden size ([CLS], mask token, ViT's position table, layer scales) are sliced
    on that axis; the traced writers lose rows and readers lose columns. Unlike heads and neurons this
    changes the function (each LayerNorm now normalizes over fewer channels): recovery is what repairs it.
    """
    size = structure.hidden
    index = torch.tensor(keep, dtype=torch.long)
    modules = dict(model.named_modules())

    def pick(t: torch.Tensor, dim: int) -> torch.Tensor:
        return t.detach().index_select(dim, index.to(t.device)).clone()

    for block in structure.blocks:
        for name in (*block.head_projections, block.up):
            set_module(model, name, _sliced(modules[name], None, index))
        for name in (block.out, block.down):
            set_module(model, name, _sliced(modules[name], index, None))
    for name in trace.writers:
        set_module(model, name, _sliced(modules[name], index, None))
    for name in trace.readers:
        set_module(model, name, _sliced(modules[name], None, index))
    handled = (torch.nn.Linear, torch.nn.LayerNorm, torch.nn.Embedding, torch.nn.Conv2d)
    for name, module in modules.items():
        if isinstance(module, torch.nn.LayerNorm) and tuple(module.normalized_shape) == (size,) \
                and name not in trace.head_norms:
            norm = torch.nn.LayerNorm(len(keep), eps=module.eps, elementwise_affine=module.elementwise_affine,
                                      bias=module.bias is not None,
                                      device=index.device if module.weight is None else module.weight.device,
                                      dtype=None if module.weight is None else module.weight.dtype)
            with torch.no_grad():
                if module.weight is not None:
                    norm.weight.copy_(pick(module.weight, 0))
                if module.bias is not None:
                    norm.bias.copy_(pick(module.bias, 0))
            norm.train(module.training)
            set_module(model, name, norm)
        elif (isinstance(module, torch.nn.Embedding) and module.embedding_dim == size
              and name not in structure.head_tables):
            set_module(model, name, _sliced_embedding(module, index))
        elif isinstance(module, torch.nn.Conv2d) and module.out_channels == size:
            conv = torch.nn.Conv2d(module.in_channels, len(keep), module.kernel_size,  # type: ignore[arg-type]
                                   stride=module.stride, padding=module.padding,  # type: ignore[arg-type]
                                   dilation=module.dilation, groups=module.groups,  # type: ignore[arg-type]
                                   bias=module.bias is not None, padding_mode=module.padding_mode,
                                   device=module.weight.device, dtype=module.weight.dtype)
            with torch.no_grad():
                conv.weight.copy_(pick(module.weight, 0))
                if module.bias is not None:
                    conv.bias.copy_(pick(module.bias, 0))  # type: ignore[union-attr]
            set_module(model, name, conv)
        elif not isinstance(module, handled):
            for pname, param in list(module._parameters.items()):
                if param is not None and param.dim() >= 1 and param.shape[-1] == size:
                    module._parameters[pname] = torch.nn.Parameter(
                        pick(param, param.dim() - 1), requires_grad=param.requires_grad)
            for bname, buf in list(module._buffers.items()):
                if buf is not None and buf.is_floating_point() and buf.dim() >= 1 and buf.shape[-1] == size:
                    module._buffers[bname] = pick(buf, buf.dim() - 1)
    config = model.config
    for key in names("hidden"):
        if getattr(config, key, None) == size:
            setattr(config, key, len(keep))
            break
    for key in names("embedding"):
        # An embedding as wide as the stream was sliced with it (ELECTRA builds its embedding projection
        # only when `embedding_size` differs from `hidden_size`): the config must say its new width too.
        if getattr(config, key, None) == size:
            setattr(config, key, len(keep))
    if has_rotary(model) and getattr(config, "head_dim", None) is None:
        # Rotary tables (transformers' `inv_freq`, ModernBERT) take their size from `config.head_dim`, else
        # from hidden_size / num_attention_heads, which no longer is the head size: say it.
        config.head_dim = structure.head_dim
