"""2:4 masks: one verb, one config per method, a registry of handlers (torchao's `sparsify_` shape).

`prune_(model, Sparse24Config(...), filter_fn=None)` chooses the Linear layers to sparsify, computes
a mask for each and zeroes the masked weights in place. A new method (SparseGPT, Wanda, ...) is one
config dataclass and one function registered with `@register_method(ThatConfig)`.

The pattern runs along a Linear's input (reduction) dimension: torch stores `weight` as [out, in], so
every group of 4 consecutive entries of a row keeps its 2 largest magnitudes. That is the axis TensorRT
reads (Gemm transB=1 axis 1; MatMul B = weight.T axis 0), see `onnx_check.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from trt_edge.errors import TrtEdgeError
from trt_edge.log import get_logger
from trt_edge.sparsity.config import DEFAULT_EXCLUDE, DEFAULT_INCLUDE

log = get_logger("prune")

FilterFn = Callable[[torch.nn.Module, str], bool]


@dataclass
class SparsityMethodConfig:
    """Base of every masking method's config: which Linear layers it applies to.

    include (list[str]): regular expressions searched in the module name; a layer must match one.
    exclude (list[str]): regular expressions that take a layer out again.
    """

    include: list[str] = field(default_factory=lambda: list(DEFAULT_INCLUDE))
    exclude: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDE))


@dataclass
class Sparse24Config(SparsityMethodConfig):
    """Magnitude N:M pruning (2:4 for sparse tensor cores): keep the `n` largest |w| in every `m`.

    n (int): values kept per group. Defaults to 2.
    m (int): group size along the input dimension. Defaults to 4.
    """

    n: int = 2
    m: int = 4

    def __post_init__(self) -> None:
        if not 0 < self.n < self.m:
            raise ValueError(f"need 0 < n < m, got {self.n}:{self.m}")


class Masks(dict[str, torch.Tensor]):
    """Parameter name -> bool mask (True = kept), plus what was skipped and the kept magnitudes.

    skipped (dict[str, str]): Linear layers that matched but cannot carry the pattern, with the reason.
    kept_magnitude (dict[str, float]): per parameter, sum |w| kept / sum |w| before masking.
    """

    def __init__(self) -> None:
        super().__init__()
        self.skipped: dict[str, str] = {}
        self.kept_magnitude: dict[str, float] = {}
        self.total_magnitude: dict[str, float] = {}

    def overall_kept_magnitude(self) -> float:
        """Kept magnitude over all masked layers together (each weighted by its total |w|)."""
        total = sum(self.total_magnitude.values())
        if total <= 0:
            return 1.0
        return sum(self.kept_magnitude[k] * self.total_magnitude[k] for k in self) / total

    def apply(self, model: torch.nn.Module) -> None:
        """Zero every masked weight of `model` (after an optimizer step, before saving)."""
        apply_masks(model, self)


C = TypeVar("C", bound=SparsityMethodConfig)
Handler = Callable[[torch.Tensor, Any], torch.Tensor]
_HANDLERS: dict[type[SparsityMethodConfig], Handler] = {}


def register_method(config_cls: type[C]) -> Callable[[Callable[[torch.Tensor, C], torch.Tensor]],
                                                      Callable[[torch.Tensor, C], torch.Tensor]]:
    """Register `fn(weight [out, in], config) -> bool mask` as the handler of `config_cls`."""
    def wrap(fn: Callable[[torch.Tensor, C], torch.Tensor]) -> Callable[[torch.Tensor, C], torch.Tensor]:
        _HANDLERS[config_cls] = fn
        return fn
    return wrap


def nm_mask(weight: torch.Tensor, n: int = 2, m: int = 4, score: torch.Tensor | None = None) -> torch.Tensor:
    """Bool mask keeping the `n` largest scores (|weight| by default) in each group of `m` along dim -1.

    Ties go to the lower index (a stable sort), so equal magnitudes always give the same mask.
    """
    if weight.shape[-1] % m:
        raise ValueError(f"input width {weight.shape[-1]} is not a multiple of {m}")
    s = (weight.detach().abs() if score is None else score.detach()).float()
    groups = s.reshape(*s.shape[:-1], s.shape[-1] // m, m)
    order = torch.sort(-groups, dim=-1, stable=True).indices[..., :n]
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, order, True)
    return mask.reshape(weight.shape)


@register_method(Sparse24Config)
def _magnitude(weight: torch.Tensor, config: Sparse24Config) -> torch.Tensor:
    return nm_mask(weight, config.n, config.m)


def group_size(config: SparsityMethodConfig) -> int:
    return int(getattr(config, "m", 4))


def kept_magnitude(weight: torch.Tensor, mask: torch.Tensor) -> float:
    """sum |w| kept / sum |w| (1.0 for an all-zero weight)."""
    w = weight.detach().abs()
    total = float(w.sum(dtype=torch.float64))
    return float((w * mask).sum(dtype=torch.float64)) / total if total > 0 else 1.0


@dataclass
class LayerSelection:
    """The Linear layers a config applies to, and those it had to skip (name -> reason)."""

    layers: list[tuple[str, torch.nn.Linear]]
    skipped: dict[str, str]


def select_layers(model: torch.nn.Module, include: Sequence[str], exclude: Sequence[str],
                  filter_fn: FilterFn | None = None, m: int = 4) -> LayerSelection:
    """Linear layers matching `include`, not `exclude`, accepted by `filter_fn`, with a width multiple of m.

    Raises TrtEdgeError when an include pattern matches no Linear at all (a typo would otherwise prune
    nothing silently) or when no layer is eligible.
    """
    linears = [(name, mod) for name, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)]
    if not linears:
        raise TrtEdgeError(f"{type(model).__name__} has no Linear layer: nothing to prune to 2:4")
    inc = [re.compile(p) for p in include]
    exc = [re.compile(p) for p in exclude]
    for pattern in inc:
        if not any(pattern.search(name) for name, _ in linears):
            examples = ", ".join(name for name, _ in linears[:4])
            raise TrtEdgeError(f"prune.include pattern {pattern.pattern!r} matches no Linear layer of "
                               f"{type(model).__name__} (layers look like: {examples}, ...)")
    chosen: list[tuple[str, torch.nn.Linear]] = []
    skipped: dict[str, str] = {}
    for name, mod in linears:
        if not any(p.search(name) for p in inc) or any(p.search(name) for p in exc):
            continue
        if filter_fn is not None and not filter_fn(mod, name):
            continue
        if mod.in_features % m:
            skipped[f"{name}.weight"] = f"input width {mod.in_features} is not a multiple of {m}"
            log.warning("skipping %s: input width %d is not a multiple of %d (left dense)", name, mod.in_features, m)
            continue
        chosen.append((name, mod))
    if not chosen:
        why = f"; skipped: {', '.join(f'{k} ({v})' for k, v in skipped.items())}" if skipped else ""
        raise TrtEdgeError(f"{type(model).__name__}: no Linear layer is eligible for 2:4 sparsity with include="
                           f"{list(include)} exclude={list(exclude)}{why}")
    return LayerSelection(chosen, skipped)


CONVOLUTION_DENSE = ("a convolution (a waveform feature encoder, a patch or mel-frame stem): trt-edge's 2:4 covers the "
                     "transformer's Linear layers; the stem sees the raw signal, the first layer of a waveform "
                     "encoder has one input channel (no group of 4 to prune), and its error reaches every token, "
                     "so it is left dense")


def dense_convolutions(model: torch.nn.Module) -> dict[str, str]:
    """The model's convolutions, each with why 2:4 leaves it dense (recorded by the prune stage, shown by the
    report): wav2vec2's/HuBERT's feature encoder, Whisper's two stem convolutions, AST's and ViT's patch
    embedding."""
    return {f"{name}.weight": CONVOLUTION_DENSE for name, mod in model.named_modules()
            if isinstance(mod, torch.nn.Conv1d | torch.nn.Conv2d)}


TOKEN_INDEPENDENT = ("its input does not depend on the tokens (e.g. DeBERTa's relative position projections): the "
                     "export folds it into a constant, so 2:4 would cost accuracy and speed nothing; left dense")


def token_independent_linears(model: torch.nn.Module) -> dict[str, str]:
    """Linear layers (`<module>.weight` -> reason) whose input is the same for two different token batches.

    Found by running the model on two random batches with forward hooks, not by names: such a layer
    computes a constant of the weights (a position table's projection), which the ONNX export folds."""
    from trt_edge.sparsity.permutation import model_outputs, random_inputs

    seen: dict[str, list[torch.Tensor]] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            hooks.append(module.register_forward_pre_hook(
                lambda _m, args, name=name: seen.setdefault(name, []).append(args[0].detach().clone())
                if args and isinstance(args[0], torch.Tensor) else None))
    try:
        for seed in (1, 2):
            model_outputs(model, random_inputs(model, batch=2, length=12, seed=seed))
    except Exception:  # a model the probe cannot run: no layer is excluded on this ground
        return {}
    finally:
        for hook in hooks:
            hook.remove()
    out: dict[str, str] = {}
    for name, inputs in seen.items():
        half = len(inputs) // 2
        if half and all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(inputs[:half], inputs[half:],
                                                                                 strict=True)):
            out[f"{name}.weight"] = TOKEN_INDEPENDENT
    return out


def compute_masks(model: torch.nn.Module, config: SparsityMethodConfig, filter_fn: FilterFn | None = None) -> Masks:
    """Masks for the layers `config` selects, without touching the weights."""
    handler = _HANDLERS.get(type(config))
    if handler is None:
        known = ", ".join(c.__name__ for c in _HANDLERS)
        raise TrtEdgeError(f"no sparsity method registered for {type(config).__name__} (known: {known})")
    selection = select_layers(model, config.include, config.exclude, filter_fn, group_size(config))
    masks = Masks()
    masks.skipped.update(selection.skipped)
    for name, mod in selection.layers:
        key = f"{name}.weight"
        mask = handler(mod.weight, config).to(mod.weight.device)
        masks[key] = mask
        masks.kept_magnitude[key] = kept_magnitude(mod.weight, mask)
        masks.total_magnitude[key] = float(mod.weight.detach().abs().sum(dtype=torch.float64))
    return masks


def apply_masks(model: torch.nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the masked weights in place (moving each mask to its weight's device when needed)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            if name not in params:
                raise KeyError(f"mask for {name!r} but the model has no such parameter")
            p = params[name]
            if mask.device != p.device:
                mask = mask.to(p.device)
                masks[name] = mask
            p.mul_(mask.to(p.dtype))


def prune_(model: torch.nn.Module, config: SparsityMethodConfig | None = None,
           filter_fn: FilterFn | None = None) -> Masks:
    """Sparsify `model` in place with `config` (2:4 magnitude by default) and return the masks.

    Args:
      model (torch.nn.Module): the model; its selected Linear weights are zeroed where masked.
      config (SparsityMethodConfig): the method and the layers; defaults to `Sparse24Config()`.
      filter_fn (Callable[[Module, str], bool] | None): a further say on each selected Linear.

    Returns:
      Masks: parameter name -> bool mask; `.skipped` and `.kept_magnitude` for the report.
    """
    masks = compute_masks(model, config or Sparse24Config(), filter_fn)
    apply_masks(model, masks)
    return masks


def partial_masks(model: torch.nn.Module, final: Masks, fraction: float) -> dict[str, torch.Tensor]:
    """Masks that apply `final` to the `fraction` of each layer's groups whose pruning costs least.

    The gradual schedule's step: with fraction 1 it is `final`; below 1 the groups that lose the
    smallest magnitude are pruned first, so the kept fraction of weights goes from 1 to 1/2.
    """
    if fraction >= 1:
        return dict(final)
    params = dict(model.named_parameters())
    out: dict[str, torch.Tensor] = {}
    for name, mask in final.items():
        w = params[name].detach().abs().float()
        m = 4
        lost = (w * (~mask.to(w.device))).reshape(-1, m).sum(-1)
        count = round(fraction * lost.numel())
        keep_groups = torch.ones_like(lost, dtype=torch.bool)
        if count > 0:
            order = torch.sort(lost, stable=True).indices[:count]
            keep_groups[order] = False
        grouped = mask.to(w.device).reshape(-1, m) | keep_groups[:, None]
        out[name] = grouped.reshape(mask.shape)
    return out
