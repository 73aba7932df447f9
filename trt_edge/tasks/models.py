"""Loading encoders and classifiers from local folders, safely.

Any BERT-family folder (BERT, MiniLM, DistilBERT, RoBERTa, MPNet, ...) loads through
`AutoModelForSequenceClassification`; a bare encoder gets a fresh head, and we say so. A pooled task
(sentence embeddings, `TaskSpec.pooled`) loads the encoder with its pooling instead
(`load_embedding_model`). Weights must be
safetensors (no pickle), `trust_remote_code` is off unless asked, and nothing is fetched from a hub.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trt_edge.errors import TrtEdgeError
from trt_edge.log import get_logger
from trt_edge.modeling.anatomy import MISSING_HEAD_PREFIXES
from trt_edge.modeling.folder import resolve_model_path as resolve_model_path  # also for the stages' imports
from trt_edge.modeling.folder import save_classifier as save_classifier  # moved; kept for tests and benchmarks

log = get_logger("models")

_GENERIC_LABEL = "LABEL_"


@dataclass
class LoadedClassifier:
    model: Any  # transformers.PreTrainedModel
    tokenizer: Any  # the preprocessor: a tokenizer, or an image processor for image tasks
    path: Path
    head_trained: bool
    head_note: str

    @property
    def preprocessor(self) -> Any:
        return self.tokenizer


def check_preprocessor(path: Path, task: str, require: bool = True) -> None:
    """Refuse a folder whose preprocessor belongs to another task (a text model given image data, or the
    reverse), or (`require`) carries none, before any weights are loaded."""
    from trt_edge.tasks.spec import TASKS, get_task

    spec = get_task(task)
    if spec.preprocessor.present(path):
        return
    other = [s for s in TASKS.values() if s is not spec and s.preprocessor.present(path)]
    if not other and not require:
        return
    if other:
        raise TrtEdgeError(f"{path}: this is a model for {other[0].name} (it carries a {other[0].preprocessor.kind}), "
                           f"the task is {task}; set task.type: {other[0].name} or give a {spec.modality} model")
    raise TrtEdgeError(f"{path}: no {spec.preprocessor.kind} in this folder ({' or '.join(spec.preprocessor.files)}); "
                       "a model folder must carry the preprocessor its inputs come from")


def read_model_config(path: Path, trust_remote_code: bool = False) -> Any:
    """The folder's transformers config (local files only, the hub kept offline), or a one-line error."""
    import transformers

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    try:
        return transformers.AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise TrtEdgeError(f"{path}: config.json is not a model config transformers knows ({first})") from exc


def _head_keys(keys: list[str]) -> list[str]:
    return [k for k in keys if k.startswith(MISSING_HEAD_PREFIXES) or ".classifier." in k]


def load_classifier(ref: str | Path, label_names: list[str], trust_remote_code: bool = False,
                    task: str = "text-classification") -> LoadedClassifier:
    """Load a classifier of `task` for `label_names` from a local folder (the task spec names the
    transformers auto class and the preprocessor).

    `head_trained` is False when the folder holds no head for these labels (a bare encoder, another
    number of labels, or other label names): the caller must fine-tune before trusting its outputs.
    """
    import transformers

    from trt_edge.tasks.spec import check_model_task, get_task, task_for_architectures

    spec = get_task(task)
    if spec.pooled:  # one vector per example: an encoder with its pooling, no head and no labels
        return load_embedding_model(ref, trust_remote_code=trust_remote_code, task=task)
    path = resolve_model_path(str(ref))
    check_preprocessor(path, task, require=False)  # the stages require it; the library tries transformers
    config = read_model_config(path, trust_remote_code)
    # Two image tasks share the image processor: the head the folder was saved with tells them apart.
    check_model_task(task_for_architectures(getattr(config, "architectures", None)), task, str(path))
    saved_labels = [config.id2label[i] for i in sorted(config.id2label)] if getattr(config, "id2label", None) else []
    label_match = saved_labels == list(label_names)
    generic = all(str(n).startswith(_GENERIC_LABEL) for n in saved_labels)
    id2label = dict(enumerate(label_names))
    from trt_edge.modeling.recipe import load_pruned, width_recipe

    tokenizer = spec.preprocessor.load(path, trust_remote_code)  # before the weights: the cheaper refusal first
    try:
        auto_class = getattr(transformers, spec.auto_model)
        if width_recipe(config) is not None:  # width-pruned: shapes config.json alone cannot say
            config.num_labels, config.id2label = len(label_names), id2label
            config.label2id = {n: i for i, n in id2label.items()}
            model, info = load_pruned(path, config, auto_class, trust_remote_code)
        else:
            model, info = auto_class.from_pretrained(
                path, num_labels=len(label_names), id2label=id2label,
                label2id={n: i for i, n in id2label.items()}, local_files_only=True,
                trust_remote_code=trust_remote_code, ignore_mismatched_sizes=True, output_loading_info=True,
                use_safetensors=True,  # never the pickle next to it (pytorch_model.bin)
            )
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise TrtEdgeError(f"{path}: cannot build a {task} model from this folder ({first})") from exc
    except OSError as exc:
        raise TrtEdgeError(f"{path}: incomplete model folder ({str(exc).splitlines()[0]})") from exc
    except RuntimeError as exc:  # weights that do not fit the config (shapes), a corrupt tensor
        raise TrtEdgeError(f"{path}: the weights do not load into this config ({str(exc).splitlines()[0][:200]})") \
            from exc
    missing = _head_keys(list(info.get("missing_keys", [])))
    mismatched = [k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys", [])]
    if missing or mismatched:
        head_trained, note = False, "no trained head for this task in the folder: a fresh head was added"
    elif not label_match and not generic:
        head_trained = False
        note = f"the saved head predicts {saved_labels}, not {label_names}: it was re-initialised"
        _reinit_head(model)
    else:
        head_trained, note = True, "trained head loaded"
    from trt_edge.tasks.adapter import adapter_for

    fitted = adapter_for(spec).fit_model(model, tokenizer, str(path))  # a vision model to its processor's size
    if fitted:
        log.info("%s", fitted)
    model.eval()
    return LoadedClassifier(model, tokenizer, path, head_trained, note)


def load_embedding_model(ref: str | Path, pooling: str = "auto", normalize: bool | None = None,
                         trust_remote_code: bool = False, task: str = "sentence-embedding") -> LoadedClassifier:
    """Load a sentence-embedding model (`modeling.pooling.EmbeddingModel`) from a local folder: a
    sentence-transformers folder gives its pooling, Dense modules and normalisation (`modules.json`), a
    plain encoder folder takes `pooling` (`auto`: mean) and `normalize` (None: normalised); explicit
    arguments override the folder. Safetensors only, local files only, `trust_remote_code` off unless
    asked; `head_trained` is True (a pooled model has no head to train) and `head_note` says the pooling."""

    from trt_edge.modeling.pooling import load_embedding_model as load_encoder
    from trt_edge.modeling.pooling import read_pooling
    from trt_edge.tasks.spec import get_task

    spec = get_task(task)
    path = resolve_model_path(str(ref))
    check_preprocessor(path, task, require=False)
    how = read_pooling(path, pooling, normalize)  # a mode the kit does not know: refused before any weights
    config = read_model_config(path, trust_remote_code)
    tokenizer = spec.preprocessor.load(path, trust_remote_code)
    model = load_encoder(path, config, how, trust_remote_code)
    return LoadedClassifier(model, tokenizer, path, True, how.describe())


def _reinit_head(model: Any) -> None:
    for name, module in model.named_modules():
        if name.split(".")[0] in MISSING_HEAD_PREFIXES and hasattr(module, "reset_parameters"):
            module.reset_parameters()


def count_parameters(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def weight_bytes(folder: Path) -> int:
    return int(sum(p.stat().st_size for p in folder.glob("*.safetensors")))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
