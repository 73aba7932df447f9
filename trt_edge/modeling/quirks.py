"""What a model family does differently, each found once.

The kit finds structure by shape, not by class name; a few families still need a config key or a table
kept in step with an edit. Each quirk is detected from what the model or config holds (so a family
derived from one, such as DINOv2 with registers, gets it too), and `families.FAMILIES` lists, per
`model_type`, which quirks each covered family has (`tests/modeling` checks the two agree):

- `shared-block` (ALBERT): one block applied `num_hidden_layers` times (`num_hidden_groups`);
- `backbone-stages` (DINOv2): `config.stage_names` follows the depth;
- `layer-types` (ModernBERT): `config.layer_types` holds one entry per layer;
- `rotary` (ModernBERT): rotary tables take their size from `config.head_dim`, else from
  hidden_size / heads, which a pruned hidden size no longer matches;
- `embedding-size` (ELECTRA, ALBERT): the embeddings have their own width (`embedding_size`), projected
  to the hidden size when it differs.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from trt_edge.errors import TrtEdgeError
from trt_edge.modeling.anatomy import config_key, config_value, shared_groups, stage_depths

QUIRKS = ("shared-block", "backbone-stages", "layer-types", "rotary", "embedding-size")


def set_depth(config: Any, keep: list[int], layers: int) -> None:
    """Make `config` describe a model of the `layers`-deep original keeping layers `keep`: the layer
    count and every per-layer list a family keeps (DINOv2's backbone stages, ModernBERT's layer types)."""
    setattr(config, config_key(config, "layers"), len(keep))
    if isinstance(getattr(config, "stage_names", None), list):  # DINOv2's backbone stages follow the depth
        config.stage_names = ["stem", *(f"stage{i}" for i in range(1, len(keep) + 1))]
        setter = getattr(config, "set_output_features_output_indices", None)
        if callable(setter):
            setter(out_features=None, out_indices=None)
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == layers:
        config.layer_types = [layer_types[i] for i in keep]
    # A dense head reading chosen layers' outputs (DPT's neck: `backbone_out_indices`, read on every forward)
    # reads the same teacher layers in the student, at their new positions (`check_layer_subset` made sure
    # each is kept).
    check_layer_subset(config, keep)
    taps = getattr(config, "backbone_out_indices", None)
    if isinstance(taps, (list, tuple)) and taps:
        config.backbone_out_indices = [keep.index(int(i)) for i in taps]


def default_layers(teacher_layers: int) -> list[int]:
    """The layers a student keeps when `distill.student.layers` names none: every other layer, starting
    with the first (DistilBERT's choice)."""
    return list(range(0, teacher_layers, 2))


def check_layer_subset(config: Any, keep: list[int] | None) -> None:
    """Refuse, in one line, a layer-subset student the model cannot be cut to (`config`: a transformers
    config or config.json as a dict, so the preflight asks before any training): a hierarchical encoder
    (SegFormer's stages of different widths, `stage_depths`), or a subset dropping a layer whose output a
    dense head reads (DPT's `backbone_out_indices`; not checked when `keep` is None: not known yet)."""
    as_object = SimpleNamespace(**config) if isinstance(config, dict) else config
    depths = stage_depths(as_object)
    if depths is not None:
        name = (getattr(as_object, "architectures", None) or [getattr(as_object, "model_type", "the model")])[0]
        raise TrtEdgeError(f"{name} has a hierarchical encoder (stages of {depths} blocks, each its own width): a "
                           "subset of its layers is not a smaller model of it; give a smaller model folder of the "
                           "same family as distill.student.model")
    taps = getattr(as_object, "backbone_out_indices", None)
    if isinstance(taps, (list, tuple)) and taps and keep is not None:
        dropped = [int(i) for i in taps if int(i) not in keep]
        if dropped:
            raise TrtEdgeError(f"distill.student.layers {keep} drops layers {dropped} whose outputs the model's dense "
                               f"head reads (backbone_out_indices {list(taps)}); keep them all")


def has_rotary(model: Any) -> bool:
    """Whether the model holds rotary frequency tables (transformers' `inv_freq` buffers)."""
    return any(b.endswith("inv_freq") for m in model.modules() for b in m._buffers)


def detected(model: Any) -> set[str]:
    """The quirks `model` shows (the names in `QUIRKS`)."""
    config = model.config
    found = set()
    if shared_groups(config) is not None:
        found.add("shared-block")
    if isinstance(getattr(config, "stage_names", None), list):
        found.add("backbone-stages")
    if isinstance(getattr(config, "layer_types", None), list):
        found.add("layer-types")
    if has_rotary(model):
        found.add("rotary")
    if config_value(config, "embedding") is not None:
        found.add("embedding-size")
    return found
