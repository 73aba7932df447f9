"""The width-recipe checkpoint format: a width-pruned model saved as a Hugging Face folder.

Transformers 5 has no `prune_heads` and most text families derive the head size from
`hidden_size / num_attention_heads`, so fewer heads cannot be said in their config.json alone:
`save_pruned` writes the shapes that differ from what the config builds under `trt_edge_width` in
config.json, and `load_pruned` (which every trt-edge stage uses through `tasks.models.load_classifier`)
rebuilds them, then loads the weights through transformers' own `from_pretrained` (its checkpoint key
conversions included) and refuses any body weight that is missing or of another shape. A folder whose
config already builds the right shapes (FFN-only pruning, ViT with `head_dim`) carries no such key and
loads with plain `from_pretrained`.

The format belongs to the model folder, not to the pruning that writes it: loading a folder must not
import the pruner.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from trt_edge.errors import TrtEdgeError
from trt_edge.modeling.anatomy import HEAD_PREFIXES, MISSING_HEAD_PREFIXES, set_module

WIDTH_KEY = "trt_edge_width"
# 2: attributes may be floats (attention scaling after hidden-size pruning); 3: LayerNorm modules (a head's
# own norm that keeps its width while the stream narrows)
WIDTH_FORMAT = 3
READABLE_FORMATS = (1, 2, 3)


_SHAPED = (torch.nn.Linear, torch.nn.Embedding, torch.nn.LayerNorm, torch.nn.Conv2d)


def shape_recipe(model: Any) -> dict[str, Any]:
    """What `type(model)(model.config)` would build differently from `model`: the Linear and Embedding
    shapes and the scalar attributes (head counts, head sizes, attention scaling: any int or float a
    module computed from the config) that `load_pruned` must set before loading the weights."""
    import copy

    config = copy.deepcopy(model.config)
    config.__dict__.pop(WIDTH_KEY, None)
    build = getattr(model, "build_like", None)  # a model that is more than its config (an EmbeddingModel's pooling)
    with torch.device("meta"):
        fresh = build(config) if build is not None else type(model)(config)
    fresh_modules = dict(fresh.named_modules())
    modules: dict[str, Any] = {}
    attrs: dict[str, dict[str, int | float]] = {}
    for name, module in model.named_modules():
        other = fresh_modules.get(name)
        if other is None:
            raise RuntimeError(f"{name} has no counterpart in a model built from the config: a bug in trt-edge")
        if isinstance(module, torch.nn.Linear) and tuple(module.weight.shape) != tuple(other.weight.shape):
            modules[name] = {"type": "Linear", "in": module.in_features, "out": module.out_features,
                             "bias": module.bias is not None}
        elif isinstance(module, torch.nn.Embedding) and tuple(module.weight.shape) != tuple(other.weight.shape):
            modules[name] = {"type": "Embedding", "num": module.num_embeddings, "dim": module.embedding_dim,
                             "padding_idx": module.padding_idx}
        elif isinstance(module, torch.nn.LayerNorm) and tuple(module.normalized_shape) != tuple(other.normalized_shape):
            # A head-space norm the config sizes from the hidden size (ModernBERT's prediction head) keeps its
            # width while the stream narrows.
            modules[name] = {"type": "LayerNorm", "shape": list(module.normalized_shape), "eps": module.eps,
                             "affine": module.elementwise_affine, "bias": module.bias is not None}
        elif isinstance(module, torch.nn.Conv2d) and tuple(module.weight.shape) != tuple(other.weight.shape):
            raise RuntimeError(f"{name}: a {type(module).__name__} the config does not build; hidden-size pruning "
                               "must update the config's hidden size (a bug in trt-edge)")
        if isinstance(module, _SHAPED):
            continue  # replaced whole by their module spec
        changed = {a: v for a, v in vars(module).items()
                   if isinstance(v, int | float) and not isinstance(v, bool) and v != getattr(other, a, None)}
        if changed:
            attrs[name] = changed
    return {"format": WIDTH_FORMAT, "modules": modules, "attributes": attrs} if modules or attrs else {}


def apply_recipe(model: Any, recipe: Mapping[str, Any]) -> None:
    """Give a freshly built model the shapes and head counts a width-pruned folder records."""
    if recipe.get("format") not in READABLE_FORMATS:
        raise TrtEdgeError(f"config.json {WIDTH_KEY} has format {recipe.get('format')!r}; this trt-edge reads "
                           f"formats {', '.join(map(str, READABLE_FORMATS))}: upgrade trt-edge")
    for name, spec in dict(recipe.get("modules", {})).items():
        if spec.get("type") == "Linear":
            new: torch.nn.Module = torch.nn.Linear(int(spec["in"]), int(spec["out"]), bias=bool(spec["bias"]))
        elif spec.get("type") == "Embedding":
            new = torch.nn.Embedding(int(spec["num"]), int(spec["dim"]), padding_idx=spec.get("padding_idx"))
        elif spec.get("type") == "LayerNorm":
            new = torch.nn.LayerNorm([int(v) for v in spec["shape"]], eps=float(spec["eps"]),
                                     elementwise_affine=bool(spec["affine"]), bias=bool(spec["bias"]))
        else:
            raise TrtEdgeError(f"config.json {WIDTH_KEY}: unknown module type {spec.get('type')!r} for {name}")
        try:
            model.get_submodule(name)
        except AttributeError as exc:
            raise TrtEdgeError(f"config.json {WIDTH_KEY} names {name}, which this model does not have") from exc
        set_module(model, name, new)
    for name, values in dict(recipe.get("attributes", {})).items():
        module = model.get_submodule(name) if name else model
        for attr, value in dict(values).items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise TrtEdgeError(f"config.json {WIDTH_KEY}: {name}.{attr} is {value!r}, not a number")
            setattr(module, attr, value)


def save_pruned(model: Any, tokenizer: Any, folder: Path) -> dict[str, Any]:
    """Save a width-pruned model; returns the recipe written to config.json ({} when the config alone
    builds the right shapes)."""
    from trt_edge.modeling.folder import save_classifier

    model.config.__dict__.pop(WIDTH_KEY, None)
    recipe = shape_recipe(model)
    if recipe:
        setattr(model.config, WIDTH_KEY, recipe)
    save_classifier(model, tokenizer, folder)
    return recipe


def width_recipe(config: Any) -> dict[str, Any] | None:
    recipe = getattr(config, WIDTH_KEY, None)
    return dict(recipe) if isinstance(recipe, Mapping) and recipe else None


def load_pruned(path: Path, config: Any, model_cls: Any, trust_remote_code: bool = False) -> tuple[Any, dict[str, Any]]:
    """Load a width-pruned folder: transformers' own `from_pretrained`, on a model class that applies the
    width recipe right after building from the config.

    Loading through transformers (not a hand-written state-dict load) keeps its checkpoint key
    conversions: transformers 5 renames some families' weights in memory and back on save (DINOv2's
    `attention.attention.query` is `attention.q_proj` in memory), so the saved names are not the module
    names. Returns the model and transformers' loading info; a body weight whose shape differs from the
    recipe's is refused (the folder was edited), a head that differs is the caller's to judge.
    """
    recipe = width_recipe(config)
    if recipe is None:
        raise RuntimeError(f"{path}: load_pruned called on a folder without {WIDTH_KEY}")
    if not any(path.glob("*.safetensors")):
        raise TrtEdgeError(f"{path}: no model.safetensors")
    with torch.device("meta"):  # only the concrete class is wanted: no memory, no initialisation
        concrete = type(model_cls.from_config(config, trust_remote_code=trust_remote_code))

    def init(self: Any, config: Any, *args: Any, **kwargs: Any) -> None:
        concrete.__init__(self, config, *args, **kwargs)
        apply_recipe(self, recipe)

    # The same name and module: transformers looks conversions up by class name, then model type.
    pruned_cls: Any = type(concrete.__name__, (concrete,), {"__init__": init, "__module__": concrete.__module__})
    model, info = pruned_cls.from_pretrained(
        path, config=config, local_files_only=True, trust_remote_code=trust_remote_code, use_safetensors=True,
        ignore_mismatched_sizes=True, output_loading_info=True)
    # transformers 5 reports each as (name, shape in the folder, shape the model expects)
    entries = [k if isinstance(k, tuple) else (k,) for k in info.get("mismatched_keys", [])]
    mismatched = [str(e[0]) for e in entries]
    wrong = [e for e in entries if not str(e[0]).startswith(HEAD_PREFIXES)]
    if wrong:
        shapes = f": {tuple(wrong[0][1])} vs {tuple(wrong[0][2])}" if len(wrong[0]) == 3 else ""
        raise TrtEdgeError(f"{path}: weights do not match the width recorded in config.json ({wrong[0][0]}{shapes}); "
                           "the folder was edited")
    unexpected = list(info.get("unexpected_keys", []))
    if unexpected:
        raise TrtEdgeError(f"{path}: weights the model does not have: {', '.join(unexpected[:3])}")
    parameters = {name for name, _ in model.named_parameters()}
    missing = [k for k in info.get("missing_keys", []) if k in parameters]
    body_missing = [k for k in missing if not k.startswith(MISSING_HEAD_PREFIXES)]
    if body_missing:
        raise TrtEdgeError(f"{path}: weights missing from model.safetensors: {', '.join(body_missing[:3])}")
    model.eval()
    return model, {"missing_keys": missing, "mismatched_keys": mismatched}
