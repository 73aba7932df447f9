"""Model anatomy: layers, hidden size, heads, head size and feed-forward width, however a family names
them.

Families spell the same number differently (`num_attention_heads` in BERT, `n_heads` in DistilBERT,
`encoder_attention_heads` in encoder-decoders; `hidden_size` / `dim` / `d_model`), in config.json and on
their attention modules alike. `CONFIG_NAMES` is the one table of those alternatives; every reader and
writer of a width goes through it, so a new family's spelling is added in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from trt_edge.errors import TrtEdgeError

if TYPE_CHECKING:
    import torch

# Field -> the names families give it, in the order they are tried. The same names serve config.json
# (or a transformers config object) and attention modules (which copy the head count and head size).
CONFIG_NAMES: dict[str, tuple[str, ...]] = {
    "layers": ("num_hidden_layers", "n_layers", "num_layers", "encoder_layers"),
    "hidden": ("hidden_size", "dim", "d_model"),
    "heads": ("num_attention_heads", "n_heads", "num_heads", "encoder_attention_heads"),
    "head_dim": ("attention_head_size", "head_dim", "head_size"),
    "attention_width": ("all_head_size", "inner_dim"),
    "ffn": ("intermediate_size", "hidden_dim", "ffn_dim", "d_ff", "encoder_ffn_dim"),
    "embedding": ("embedding_size",),
}
# Module names of classification heads (a head re-shaped or missing is the loader's to judge, not a body
# edit); a missing one may also be DistilBERT's pre-classifier (a folder saved without its head).
HEAD_PREFIXES = ("classifier", "score")
MISSING_HEAD_PREFIXES = (*HEAD_PREFIXES, "pre_classifier")


def names(field: str) -> tuple[str, ...]:
    """The names `field` goes by (a KeyError for a field the table does not have: a bug, not input)."""
    return CONFIG_NAMES[field]


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def config_value(obj: Any, field: str) -> int | None:
    """The first positive integer `obj` holds under one of `field`'s names, or None.

    `obj` is a transformers config, a config.json mapping, or an attention module."""
    for name in names(field):
        value = _get(obj, name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def config_key(obj: Any, field: str) -> str:
    """The name under which `obj` holds `field` (the table's first name when it holds none): the key to
    write a new width to."""
    return next((name for name in names(field) if _get(obj, name) is not None), names(field)[0])


def head_count(obj: Any) -> int | None:
    """The attention head count of a config (object or config.json mapping) or of an attention module:
    the one head-count reader of the kit."""
    return config_value(obj, "heads")


def num_layers(model: Any) -> int:
    """The number of transformer layers the model's config says it applies."""
    value = config_value(model.config, "layers")
    if value is None:
        raise TrtEdgeError(f"{type(model).__name__}: its config names no layer count ({'/'.join(names('layers'))})")
    return value


def hidden_size(model: Any) -> int:
    """The width of the residual stream."""
    value = config_value(model.config, "hidden")
    if value is None:
        raise TrtEdgeError(f"{type(model).__name__}: its config names no hidden size ({'/'.join(names('hidden'))})")
    return value


def layer_list(model: Any) -> tuple[torch.nn.Module, str, torch.nn.ModuleList]:
    """The encoder's ModuleList of transformer blocks as (parent module, attribute name, list), found by
    shape rather than by architecture name, so BERT, RoBERTa, DistilBERT, MPNet and similar encoders all
    work."""
    import torch

    n = num_layers(model)
    candidates = []
    for name, module in model.named_modules():
        for child_name, child in module.named_children():
            if isinstance(child, torch.nn.ModuleList) and len(child) == n and n > 0:
                candidates.append((module, child_name, child, f"{name}.{child_name}".strip(".")))
    if not candidates:
        raise TrtEdgeError(f"{type(model).__name__}: cannot find its list of {n} transformer layers")
    # The outermost list of blocks (shortest path) is the encoder's.
    module, child_name, child, _ = min(candidates, key=lambda c: c[3].count("."))
    return module, child_name, child


def stage_depths(config: Any) -> list[int] | None:
    """The blocks per stage of a hierarchical encoder (SegFormer's MiT, Swin: `depths`, one entry per stage,
    each stage its own width), None for a plain stack of same-width layers. Layers of a hierarchical encoder
    are not interchangeable, so a layer subset is not a smaller model of it."""
    depths = getattr(config, "depths", None)
    if isinstance(depths, (list, tuple)) and len(depths) > 1 and all(isinstance(d, int) for d in depths):
        return [int(d) for d in depths]
    return None


def shared_groups(config: Any) -> int | None:
    """How many shared block groups the model applies (ALBERT's `num_hidden_groups`, the `shared-block`
    quirk), or None when every layer has its own block."""
    groups = getattr(config, "num_hidden_groups", None)
    return groups if isinstance(groups, int) and not isinstance(groups, bool) else None


def block_list(model: Any) -> tuple[str, torch.nn.ModuleList]:
    """The ModuleList holding the blocks' own weights and its module name: the encoder's list of layers;
    for a model that applies one shared block at every depth (ALBERT, `num_hidden_groups: 1`), the list
    holding that block (editing it once edits every application)."""
    import torch

    groups = shared_groups(getattr(model, "config", None))
    if groups is not None and groups > 1:
        raise TrtEdgeError(f"{type(model).__name__} shares its blocks in {groups} groups (num_hidden_groups: "
                           f"{groups}); width pruning keeps one width for every block and supports one shared "
                           "group (num_hidden_groups: 1) or one block per layer")
    if groups == 1:
        inner = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m)
                 and not any(isinstance(c, torch.nn.ModuleList) for e in m for c in e.modules())
                 and any(isinstance(c, torch.nn.Linear) for c in m.modules())]
        if len(inner) == 1:
            return inner[0]
    parent, list_name, layers = layer_list(model)
    base = next(n for n, m in model.named_modules() if m is parent)
    return (f"{base}.{list_name}" if base else list_name), layers


def set_module(model: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    """Replace the submodule called `name` (dotted) by `module`."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)
