"""Sentence-embedding models: an encoder, its pooling, Dense projections and normalisation as one module.

A sentence-transformers folder says how its vector is made in `modules.json` (Transformer -> Pooling ->
Dense* -> Normalize) with `1_Pooling/config.json` and `N_Dense/{config.json,model.safetensors}` beside
the encoder's own files. `read_pooling` reads that (both the legacy `pooling_mode_*` booleans and the
newer `pooling_mode` key), a plain encoder folder takes the declared mode (`auto`: mean) and
normalisation. Normalisation follows the folder: a sentence-transformers model without a `Normalize`
module is NOT normalised (its users compare vectors with a cosine that normalises itself); a plain
encoder folder is normalised unless told otherwise, since the kit's retrieval metrics use cosine.

`EmbeddingModel` registers the encoder under its `base_model_prefix` (`bert`, `mpnet`, `roberta`...), so
its parameter names are those of the ForSequenceClassification model and every helper that finds layers
by module name (layer dropping, 2:4 masks, width pruning) works unchanged. Its forward has no
data-dependent Python control flow, so both ONNX exporters trace pooling and normalisation into the graph:
the engine alone gives the vector.

Weights are safetensors only (never pickle); nothing here imports tasks or sentence-transformers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers.utils.generic import ModelOutput

from trt_edge.errors import TrtEdgeError

MODES = ("mean", "cls", "lasttoken", "max", "mean_sqrt_len")
# sentence-transformers' names (legacy boolean keys and the newer `pooling_mode` values) -> ours.
_ST_MODE_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_ST_MODE_NAMES = {"cls": "cls", "mean": "mean", "max": "max", "mean_sqrt_len_tokens": "mean_sqrt_len",
                  "weightedmean": "weightedmean", "lasttoken": "lasttoken"}
_OUR_TO_ST = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens", "max": "pooling_mode_max_tokens",
              "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens", "lasttoken": "pooling_mode_lasttoken"}
# Dense activations a folder may name (a class path, as sentence-transformers writes it) -> torch class.
ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    "torch.nn.modules.activation.Tanh": torch.nn.Tanh,
    "torch.nn.modules.linear.Identity": torch.nn.Identity,
    "torch.nn.modules.activation.ReLU": torch.nn.ReLU,
    "torch.nn.modules.activation.GELU": torch.nn.GELU,
    "torch.nn.modules.activation.Sigmoid": torch.nn.Sigmoid,
}
_ACTIVATION_NAMES = {cls: name for name, cls in ACTIVATIONS.items()}
MODULE_KINDS = ("Transformer", "Pooling", "Dense", "Normalize")
MODULES_FILE = "modules.json"
SENTENCE_CONFIG = "sentence_bert_config.json"
# What the kit writes into modules.json: the legacy names, which every sentence-transformers release loads.
_ST_TYPES = {kind: f"sentence_transformers.models.{kind}" for kind in MODULE_KINDS}


@dataclass(frozen=True)
class DenseSpec:
    """One Dense projection: `activation` is the class path sentence-transformers writes; `folder` holds its
    `model.safetensors` (None for a fresh layer)."""

    in_features: int
    out_features: int
    bias: bool = True
    activation: str = "torch.nn.modules.activation.Tanh"
    folder: Path | None = None


@dataclass(frozen=True)
class Pooling:
    """How token states become one vector: `mode` over the attention mask, then the `dense` projections in
    order, then L2 normalisation when `normalize`. `source` says where it was read from (for messages)."""

    mode: str = "mean"
    normalize: bool = False
    dense: tuple[DenseSpec, ...] = ()
    source: str = "declared"

    def describe(self) -> str:
        dense = "".join(f", Dense {d.in_features}->{d.out_features}" for d in self.dense)
        return f"pooling: {self.mode}{dense}, {'normalised' if self.normalize else 'not normalised'} ({self.source})"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["dense"] = [{k: v for k, v in asdict(d).items() if k != "folder"} for d in self.dense]
        return data


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise TrtEdgeError(f"{path}: unreadable ({str(exc).splitlines()[0][:200] if str(exc) else exc})") from exc


def _check_mode(mode: str, where: str) -> str:
    if mode not in MODES:
        raise TrtEdgeError(f"{where}: pooling mode {mode!r} is not one the kit knows; known: {', '.join(MODES)}")
    return mode


def _st_pooling_mode(path: Path) -> str:
    """The one pooling mode of a sentence-transformers `Pooling` config (legacy booleans or `pooling_mode`)."""
    data = _load_json(path)
    if not isinstance(data, Mapping):
        raise TrtEdgeError(f"{path}: not a JSON object")
    if "pooling_mode" in data:
        raw = data["pooling_mode"]
        given = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list) else [str(raw)]
        modes = [_ST_MODE_NAMES.get(str(m), str(m)) for m in given]
    else:
        modes = [ours for key, ours in _ST_MODE_KEYS.items() if data.get(key)] or ["mean"]
    if len(modes) != 1:
        raise TrtEdgeError(f"{path}: pooling modes {' + '.join(modes)} at once (concatenated) are not supported; "
                           f"known: one of {', '.join(MODES)}")
    if data.get("include_prompt") is False:
        raise TrtEdgeError(f"{path}: include_prompt: false (prompt tokens excluded from pooling) is not supported; "
                           f"known: pooling over every token, modes {', '.join(MODES)}")
    return _check_mode(modes[0], str(path))


def _dense_spec(folder: Path) -> DenseSpec:
    config_path = folder / "config.json"
    data = _load_json(config_path)
    if not isinstance(data, Mapping):
        raise TrtEdgeError(f"{config_path}: not a JSON object")
    activation = str(data.get("activation_function") or "torch.nn.modules.activation.Tanh")
    if activation not in ACTIVATIONS:
        raise TrtEdgeError(f"{config_path}: Dense activation {activation!r} is not one the kit knows; known: "
                           f"{', '.join(ACTIVATIONS)}")
    if data.get("use_residual"):
        raise TrtEdgeError(f"{config_path}: Dense with use_residual is not supported; known: a Linear layer "
                           "and an activation")
    try:
        spec = DenseSpec(int(data["in_features"]), int(data["out_features"]), bool(data.get("bias", True)),
                         activation, folder)
    except (KeyError, TypeError, ValueError) as exc:
        raise TrtEdgeError(f"{config_path}: a Dense config needs integer in_features and out_features") from exc
    if not (folder / "model.safetensors").is_file():
        raise TrtEdgeError(f"{folder}: no model.safetensors for this Dense module (pickled weights are not read)")
    return spec


def read_modules(folder: Path) -> tuple[str, bool, tuple[DenseSpec, ...]] | None:
    """(mode, normalize, dense) from a sentence-transformers folder's `modules.json`, or None without one."""
    path = folder / MODULES_FILE
    if not path.is_file():
        return None
    entries = _load_json(path)
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise TrtEdgeError(f"{path}: expected a list of modules")
    mode, normalize, dense = "mean", False, []
    kinds = []
    for entry in sorted(entries, key=lambda e: int(e.get("idx", 0))):
        full = str(entry.get("type", ""))
        kind = full.rsplit(".", 1)[-1]
        if not full.startswith("sentence_transformers.") or kind not in MODULE_KINDS:
            raise TrtEdgeError(f"{path}: module {full!r} is not one the kit knows; known: "
                               f"{', '.join(MODULE_KINDS)} (sentence_transformers.models.*)")
        sub = folder / str(entry.get("path", ""))
        if kind == "Transformer" and str(entry.get("path", "")) not in ("", "."):
            raise TrtEdgeError(f"{path}: the Transformer module must be the folder itself (path \"\"), not "
                               f"{entry.get('path')!r}")
        if kind == "Pooling":
            mode = _st_pooling_mode(sub / "config.json")
        elif kind == "Dense":
            dense.append(_dense_spec(sub))
        elif kind == "Normalize":
            normalize = True
        kinds.append(kind)
    if kinds[:2] != ["Transformer", "Pooling"] or kinds.count("Transformer") != 1 or kinds.count("Pooling") != 1:
        raise TrtEdgeError(f"{path}: modules {' -> '.join(kinds)}; known: Transformer -> Pooling -> Dense* -> "
                           "Normalize")
    return mode, normalize, tuple(dense)


def read_pooling(folder: str | Path, mode: str = "auto", normalize: bool | None = None) -> Pooling:
    """The pooling of a model folder. A sentence-transformers folder (`modules.json`) gives its own mode,
    Dense modules and normalisation; a plain encoder folder gets `mode` (`auto`: mean) and `normalize`
    (None: True). An explicit `mode` or `normalize` overrides the folder; Dense modules always come from it."""
    path = Path(folder)
    if mode != "auto":
        _check_mode(mode, "pooling")
    found = read_modules(path)
    if found is None:
        return Pooling(mode="mean" if mode == "auto" else mode, normalize=True if normalize is None else normalize,
                       source="declared")
    folder_mode, folder_norm, dense = found
    pooling = Pooling(mode=folder_mode, normalize=folder_norm, dense=dense,
                      source=f"from {MODULES_FILE} and 1_Pooling/config.json")
    if mode != "auto":
        pooling = replace(pooling, mode=mode, source=pooling.source + f", mode {mode} declared")
    if normalize is not None:
        pooling = replace(pooling, normalize=normalize)
    return pooling


@dataclass
class EmbeddingOutput(ModelOutput):
    """`sentence_embedding` [batch, dim]; the encoder's `hidden_states` and `attentions` when asked (the
    distillation losses use them) and its `last_hidden_state`."""

    sentence_embedding: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class Dense(torch.nn.Module):
    """sentence-transformers' Dense: `activation(linear(x))`; the same `linear.*` weight names."""

    def __init__(self, spec: DenseSpec) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(spec.in_features, spec.out_features, bias=spec.bias)
        self.activation_function = ACTIVATIONS[spec.activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.activation_function(self.linear(x))
        return out

    def spec(self) -> DenseSpec:
        name = _ACTIVATION_NAMES.get(type(self.activation_function), "torch.nn.modules.activation.Tanh")
        return DenseSpec(self.linear.in_features, self.linear.out_features, self.linear.bias is not None, name)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Token states [B, S, H] to one vector [B, H] over the mask, as sentence-transformers pools (mean:
    sum(mask * h) / clamp(sum mask, 1e-9); cls: position 0; lasttoken: the last real token, whichever side
    the padding is on; max: the largest value over real tokens). `mode` is fixed at build time, so the
    branch is not data-dependent."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if mode in ("mean", "mean_sqrt_len"):
        total = (hidden * mask).sum(dim=1)
        count = torch.clamp(mask.sum(dim=1), min=1e-9)
        return total / (count if mode == "mean" else torch.sqrt(count))
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    if mode == "lasttoken":
        # The position of the last real token: argmax of position * mask, in float (ONNX Runtime has no
        # int64 ArgMax); an empty mask gives position 0.
        positions = torch.arange(hidden.shape[1], device=hidden.device, dtype=hidden.dtype).unsqueeze(0)
        last = (positions * mask.squeeze(-1)).argmax(dim=1)
        index = last.view(-1, 1, 1).expand(-1, 1, hidden.shape[-1])
        return torch.gather(hidden, 1, index).squeeze(1)
    raise ValueError(f"unknown pooling mode {mode!r}")


class EmbeddingModel(torch.nn.Module):
    """An encoder with its pooling, Dense projections and normalisation. The encoder lives under its
    `base_model_prefix` (`self.bert`, `self.mpnet`...) so module names match the classification model's."""

    def __init__(self, config: Any, pooling: Pooling | None = None, encoder: Any = None) -> None:
        super().__init__()
        import transformers

        if encoder is None:
            encoder = transformers.AutoModel.from_config(config)  # type: ignore[no-untyped-call]
        self.base_model_prefix: str = str(getattr(encoder, "base_model_prefix", "") or "encoder")
        setattr(self, self.base_model_prefix, encoder)
        self.config = encoder.config
        self.pooling = pooling if pooling is not None else Pooling()
        _check_mode(self.pooling.mode, "pooling")
        self.dense = torch.nn.ModuleList([Dense(spec) for spec in self.pooling.dense])
        # The folder's `sentence_bert_config.json` (sentence-transformers' max_seq_length, lower-casing),
        # written back on save so the saved folder encodes as the source did.
        self.sentence_config: dict[str, Any] = {}
        import inspect

        self._token_types = "token_type_ids" in inspect.signature(encoder.forward).parameters

    @property
    def encoder_model(self) -> Any:
        """The transformers base model (what `save_pretrained` writes as the folder's encoder)."""
        return getattr(self, self.base_model_prefix)

    @property
    def embedding_dim(self) -> int:
        if len(self.dense):
            return int(self.dense_layers()[-1].linear.out_features)
        from trt_edge.modeling.anatomy import hidden_size

        return hidden_size(self)

    def build_like(self, config: Any) -> EmbeddingModel:
        """A fresh model of this kind from `config` with the same pooling (width recipes compare against it)."""
        return EmbeddingModel(config, replace(self.pooling, dense=self.dense_specs()))

    def save_folder(self, tokenizer: Any, folder: str | Path) -> None:
        """`folder.save_classifier`'s hook: a sentence-transformers folder (`save_embedding_model`)."""
        save_embedding_model(self, tokenizer, folder)

    def dense_layers(self) -> list[Dense]:
        return [d for d in self.dense if isinstance(d, Dense)]

    def dense_specs(self) -> tuple[DenseSpec, ...]:
        return tuple(d.spec() for d in self.dense_layers())

    def current_pooling(self) -> Pooling:
        """The pooling with the Dense shapes the model has now (after any width change)."""
        return replace(self.pooling, dense=self.dense_specs())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None, output_hidden_states: bool = False,
                output_attentions: bool = False, return_dict: bool = True, **kwargs: Any) -> EmbeddingOutput:
        feeds: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and self._token_types:
            feeds["token_type_ids"] = token_type_ids
        out = self.encoder_model(**feeds, output_hidden_states=output_hidden_states,
                                 output_attentions=output_attentions, return_dict=True)
        hidden = out.last_hidden_state
        vector = pool(hidden, attention_mask, self.pooling.mode)
        for layer in self.dense_layers():
            vector = layer(vector)
        if self.pooling.normalize:
            vector = F.normalize(vector, p=2, dim=1)
        return EmbeddingOutput(sentence_embedding=vector, last_hidden_state=hidden,
                               hidden_states=getattr(out, "hidden_states", None),
                               attentions=getattr(out, "attentions", None))


def load_dense_weights(model: EmbeddingModel) -> None:
    """Load each Dense module's `model.safetensors` (sentence-transformers' `linear.weight`/`linear.bias`)."""
    from safetensors.torch import load_file

    for layer, spec in zip(model.dense_layers(), model.pooling.dense, strict=True):
        if spec.folder is None:
            continue
        path = spec.folder / "model.safetensors"
        try:
            state = load_file(str(path))
        except Exception as exc:  # a corrupt or truncated file: safetensors raises its own errors
            raise TrtEdgeError(f"{path}: unreadable safetensors ({str(exc).splitlines()[0][:200]})") from exc
        try:
            layer.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise TrtEdgeError(f"{path}: the weights do not match {spec.folder / 'config.json'} "
                               f"({str(exc).splitlines()[0][:200]})") from exc


def save_embedding_model(model: EmbeddingModel, tokenizer: Any, folder: str | Path) -> None:
    """Write a sentence-transformers folder: the encoder (`save_pretrained`, safetensors) and tokenizer at
    the top, `modules.json`, `1_Pooling/config.json`, `N_Dense/` (config + safetensors) and a `Normalize`
    entry; sentence-transformers loads it as it is and `read_pooling` reads it back identically."""
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    model.encoder_model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    hidden = int(getattr(model.config, "hidden_size", 0) or model.embedding_dim)
    modules: list[dict[str, Any]] = [{"idx": 0, "name": "0", "path": "", "type": _ST_TYPES["Transformer"]}]
    mode = model.pooling.mode
    pooling_config: dict[str, Any] = {"word_embedding_dimension": hidden,
                                      **{key: key == _OUR_TO_ST[mode] for key in _OUR_TO_ST.values()},
                                      "include_prompt": True}
    _write_module(out, modules, "Pooling", pooling_config)
    for layer in model.dense_layers():
        spec = layer.spec()
        sub = _write_module(out, modules, "Dense", {"in_features": spec.in_features, "out_features": spec.out_features,
                                                    "bias": spec.bias, "activation_function": spec.activation})
        save_file({k: v.detach().contiguous().cpu() for k, v in layer.state_dict().items()},
                  str(sub / "model.safetensors"))
    if model.pooling.normalize:
        _write_module(out, modules, "Normalize", None)
    (out / MODULES_FILE).write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
    data = dict(model.sentence_config)  # the source folder's, as it was (its keys vary between releases)
    if not data:
        limit = getattr(tokenizer, "model_max_length", None)
        positions = getattr(model.config, "max_position_embeddings", None)
        known = [int(v) for v in (limit, positions) if isinstance(v, int) and 0 < v < 1_000_000]
        data = {"max_seq_length": min(known) if known else 512, "do_lower_case": False}
    (out / SENTENCE_CONFIG).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _write_module(out: Path, modules: list[dict[str, Any]], kind: str, config: dict[str, Any] | None) -> Path:
    idx = len(modules)
    name = f"{idx}_{kind}"
    sub = out / name
    if sub.exists():  # a stale module from an earlier save into the same folder
        import shutil

        shutil.rmtree(sub)
    sub.mkdir(parents=True)
    if config is not None:
        (sub / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    modules.append({"idx": idx, "name": str(idx), "path": name, "type": _ST_TYPES[kind]})
    return sub


def strip_prefix_recipe(recipe: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """A width recipe written for an `EmbeddingModel` (module names under `prefix.`) as the bare encoder's
    (the names without it); entries outside the encoder (Dense layers, whose shapes their own config.json
    gives) are dropped."""
    head = f"{prefix}."

    def strip(entries: Mapping[str, Any]) -> dict[str, Any]:
        return {k[len(head):]: v for k, v in entries.items() if k.startswith(head)}

    return {**dict(recipe), "modules": strip(dict(recipe.get("modules", {}))),
            "attributes": strip(dict(recipe.get("attributes", {})))}


def load_embedding_model(path: Path, config: Any, pooling: Pooling,
                         trust_remote_code: bool = False) -> EmbeddingModel:
    """The encoder of a local folder (`AutoModel`, safetensors, local files only; a width-pruned folder
    through `recipe.load_pruned`) with `pooling` and its Dense weights. A folder saved from a classifier
    (`bert.` names) loads too: transformers strips the prefix. Errors are one line (`TrtEdgeError`)."""
    import copy

    import transformers

    from trt_edge.modeling.recipe import WIDTH_KEY, load_pruned, width_recipe

    try:
        recipe = width_recipe(config)
        if recipe is not None:  # written for the EmbeddingModel: module names under the encoder's prefix
            bare = copy.deepcopy(config)
            with torch.device("meta"):
                prefix = str(transformers.AutoModel.from_config(bare).base_model_prefix)  # type: ignore[no-untyped-call]
            setattr(bare, WIDTH_KEY, strip_prefix_recipe(recipe, prefix))
            encoder, info = load_pruned(path, bare, transformers.AutoModel, trust_remote_code)
        else:
            encoder, info = transformers.AutoModel.from_pretrained(
                path, config=config, local_files_only=True, trust_remote_code=trust_remote_code,
                use_safetensors=True, output_loading_info=True)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise TrtEdgeError(f"{path}: cannot build an encoder from this folder ({first})") from exc
    except OSError as exc:
        raise TrtEdgeError(f"{path}: incomplete model folder ({str(exc).splitlines()[0]})") from exc
    except RuntimeError as exc:
        raise TrtEdgeError(f"{path}: the weights do not load into this config ({str(exc).splitlines()[0][:200]})") \
            from exc
    parameters = {name for name, _ in encoder.named_parameters()}
    missing = [k for k in info.get("missing_keys", []) if k in parameters and not k.startswith("pooler.")]
    if missing:
        raise TrtEdgeError(f"{path}: encoder weights missing from the folder: {', '.join(sorted(missing)[:3])}")
    model = EmbeddingModel(encoder.config, pooling, encoder=encoder)
    load_dense_weights(model)
    sentence_config = path / SENTENCE_CONFIG
    if sentence_config.is_file():
        data = _load_json(sentence_config)
        model.sentence_config = dict(data) if isinstance(data, Mapping) else {}
    model.eval()
    return model


__all__ = ["MODES", "DenseSpec", "EmbeddingModel", "EmbeddingOutput", "Pooling", "load_dense_weights",
           "load_embedding_model", "pool", "read_pooling", "save_embedding_model"]
