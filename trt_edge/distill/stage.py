"""The distill stage: teacher (fine-tuned when it has no head) -> student -> `stage.json`.

Outputs in the stage folder: `model/` (the student, a Hugging Face folder in safetensors), `teacher/`
(the teacher actually used, so later stages distill from the same one), `stage.json`. The fine-tuned
teacher and its training-set logits are cached by content hash, so a rerun skips that work.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge import stats
from trt_edge.artifacts import MODEL, PREDICTIONS, TEACHER, StageDescriptor
from trt_edge.config import RunConfig
from trt_edge.distill.config import DistillConfig, TrainConfig
from trt_edge.distill.ranks import is_main_process
from trt_edge.errors import TrtEdgeError
from trt_edge.files import kit_cache_dir, sha256_json, sha256_tree
from trt_edge.guard import weight_hashes
from trt_edge.log import get_logger
from trt_edge.stage import StageRecord, stage_output
from trt_edge.tasks.adapter import TaskAdapter, adapter_for, load_task_data, task_adapter
from trt_edge.tasks.config import TaskConfig
from trt_edge.tasks.data import ClassificationData, resolve_data_source
from trt_edge.tasks.metrics import BOOKKEEPING, prefixed
from trt_edge.tasks.models import (
    LoadedClassifier,
    count_parameters,
    load_classifier,
    resolve_model_path,
    save_classifier,
    weight_bytes,
)
from trt_edge.tasks.spec import get_task, task_spec

TextClassificationData = ClassificationData

log = get_logger("distill")


def describe_metrics(metrics: dict[str, float]) -> str:
    """A stage log line's metrics: `accuracy 0.8713, macro_f1 0.8602` (whatever the task scores)."""
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k not in BOOKKEEPING)


def cache_root(cfg: DistillConfig) -> Path:
    return Path(cfg.cache_dir).expanduser() if cfg.cache_dir else kit_cache_dir()


def adapter(task: TaskConfig | None) -> TaskAdapter:
    """The task's adapter (encode, collate, model_inputs, predict_logits, evaluate); None: the default
    task's (callers from before tasks had types)."""
    return task_adapter(task.type if task is not None else None)


def validation_eval_fn(encoded: Any, labels: list[int], num_labels: int, batch_size: int,
                       task: TaskConfig | None = None, reference: np.ndarray | None = None) -> Any:
    """The training loop's validation: the task's metrics of a model on the validation split (`reference`:
    another model's outputs on it, for a task judged against a model: the teacher's vectors)."""
    evaluate = adapter(task).evaluate

    def run(model: Any) -> dict[str, float]:
        metrics: dict[str, float] = evaluate(model, encoded, labels, num_labels, batch_size, reference)[0]
        return metrics
    return run


def reference_outputs(model: Any, encoded: Any, batch_size: int, task: TaskConfig) -> np.ndarray | None:
    """A reference model's outputs for validation, where the task is judged against a model rather than
    labels (`uses_labels` False: the teacher's vectors); None for classification, which needs none."""
    a = adapter(task)
    return None if a.uses_labels else a.predict_logits(model, encoded, batch_size).astype(np.float32)


def training_features(encoded: Any, labels: list[int], logits: np.ndarray | None = None) -> list[dict[str, Any]]:
    import torch

    out = []
    for i, feature in enumerate(encoded.features):
        item: dict[str, Any] = {**feature, "labels": torch.tensor(labels[i])}
        if logits is not None:
            item["teacher_logits"] = torch.from_numpy(logits[i])
        out.append(item)
    return out


def finetune_classifier(model: Any, tokenizer: Any, data: TextClassificationData, task: TaskConfig,
                        train_cfg: TrainConfig, seed: int, desc: str) -> dict[str, Any]:
    """Plain cross-entropy fine-tuning (teacher heads, and the hard-label ablation): the task's own loss
    (`output_loss`) with no teacher and alpha 0, so a task whose labels are not one class per example (a
    segmentation mask) trains the same way."""
    from trt_edge.distill.train import train

    a = adapter(task)
    train_enc = a.encode(tokenizer, data.train.texts, task.max_length)
    val_enc = a.encode(tokenizer, data.validation.texts, task.max_length)

    def loss_fn(m: Any, batch: dict[str, Any]) -> Any:
        out = m(**a.model_inputs(batch))
        loss, _ = a.output_loss(out, batch["labels"], None, alpha=0.0, temperature=1.0)
        return loss, {}

    result = train(model, training_features(train_enc, data.train.labels), train_enc.pad_token_id, loss_fn, train_cfg,
                   eval_fn=validation_eval_fn(val_enc, data.validation.labels, data.num_labels, task.eval_batch_size,
                                              task),
                   seed=seed, desc=desc, collate_fn=a.collate)
    return {"best_epoch": result.best_epoch, "seconds": result.seconds, "steps": result.steps,
            f"validation_{a.spec.metric}": result.best_metrics[a.spec.metric]}


def prepare_teacher(cfg: DistillConfig, task: TaskConfig, data: TextClassificationData
                    ) -> tuple[LoadedClassifier, Path, dict[str, Any]]:
    """Load the teacher; fine-tune it first when it has no trained head (cached by content hash). A
    teacher given as `{config: {...}}` is built with random weights and trained from scratch."""
    teacher_ref = teacher_folder(cfg, task, data)
    loaded = load_classifier(teacher_ref, data.label_names, cfg.trust_remote_code, task.type)
    if cfg.student.config is not None:  # refused before the teacher trains, not after
        from trt_edge.distill.student import student_config

        student_config(cfg.student.config, loaded.model.config, data.label_names)
    if not isinstance(cfg.teacher, str):  # random weights: its head (and everything else) must be trained
        loaded.head_trained = False
        loaded.head_note = "random weights from distill.teacher.config: trained from scratch"
    info: dict[str, Any] = {"teacher_head": loaded.head_note, "teacher_finetuned": False}
    needs = cfg.teacher_finetune == "always" or (cfg.teacher_finetune == "auto" and not loaded.head_trained)
    if needs and not adapter(task).uses_labels:
        raise TrtEdgeError(f"distill.teacher_finetune={cfg.teacher_finetune}: a {task.type} teacher is used as it is "
                           "(it has no head to train on labels); set distill.teacher_finetune to auto")
    if not needs:
        if not loaded.head_trained:
            raise TrtEdgeError(f"{teacher_ref}: {loaded.head_note}; set distill.teacher_finetune to auto")
        return loaded, loaded.path, info
    key = sha256_json({
        "teacher": sha256_tree(loaded.path), "data": data.fingerprint(), "train": cfg.teacher_train.to_dict(),
        "max_length": task.max_length, "seed": cfg.seed, "labels": data.label_names,
    })[:24]
    cached = cache_root(cfg) / "teachers" / key
    if (cached / "config.json").is_file() and (cached / "finetune.json").is_file():
        log.info("teacher: reusing the fine-tuned teacher cached at %s", cached)
        import json

        info.update(json.loads((cached / "finetune.json").read_text()))
        info["teacher_cache"] = "hit"
        return load_classifier(cached, data.label_names, cfg.trust_remote_code, task.type), cached, info
    log.info("teacher: %s; fine-tuning it on the task (%d epochs)", loaded.head_note, cfg.teacher_train.epochs)
    ft = finetune_classifier(loaded.model, loaded.tokenizer, data, task, cfg.teacher_train, cfg.seed,
                             "teacher fine-tune")
    info.update({"teacher_finetuned": True, "teacher_finetune": ft, "teacher_cache": "miss"})
    loaded.head_trained = True
    if not is_main_process():  # data-parallel: rank 0 alone writes the cache
        return loaded, loaded.path, info
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cached.parent))
    save_classifier(loaded.model, loaded.tokenizer, tmp)
    import json

    (tmp / "finetune.json").write_text(json.dumps({"teacher_finetuned": True, "teacher_finetune": ft}))
    if cached.exists():
        shutil.rmtree(cached)
    os.replace(tmp, cached)
    return loaded, cached, info


def teacher_folder(cfg: DistillConfig, task: TaskConfig, data: ClassificationData) -> str | Path:
    """The teacher's folder: `distill.teacher` itself, or for `{config: {...}}` a folder (cached by the
    config's hash) holding that architecture with random weights and the preprocessor it needs."""
    if isinstance(cfg.teacher, str):
        return cfg.teacher
    import json

    spec = get_task(task.type)
    if not adapter_for(spec).builds_from_config:
        raise TrtEdgeError("distill.teacher as {config: ...} (trained from scratch) is supported for image tasks "
                           "only: a text model needs a tokenizer, give a model folder")
    raw = dict(cfg.teacher["config"])
    key = sha256_json({"config": raw, "labels": data.label_names, "seed": cfg.seed})[:24]
    folder = cache_root(cfg) / "scratch" / key
    if (folder / "config.json").is_file() and (folder / "preprocessor_config.json").is_file():
        return folder
    model, config = random_model(raw, data.label_names, task.type, cfg.seed, "distill.teacher.config")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=folder.parent))
    model.save_pretrained(tmp, safe_serialization=True)
    adapter_for(spec).write_processor_config(tmp, config)
    (tmp / "scratch.json").write_text(json.dumps({"from_config": cfg.teacher["config"], "seed": cfg.seed}))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    log.info("teacher: a %s built from distill.teacher.config with random weights (trained from scratch)",
             type(model).__name__)
    return folder


def random_model(raw: dict[str, Any], label_names: list[str], task_type: str, seed: int, what: str,
                 default_type: str = "vit") -> tuple[Any, Any]:
    """(model, config): the task's head model of the architecture `raw` describes (`model_type` + sizes;
    `default_type` when it names none) with the task's labels and random weights drawn with `seed`. The one
    builder of a model from a config: a from-scratch teacher (`distill.teacher.config`) and a config student
    (`distill.student.config`). A config transformers refuses is one line naming `what`."""
    import torch
    import transformers

    spec = get_task(task_type)
    raw = dict(raw)
    model_type = str(raw.pop("model_type", default_type))
    try:
        config = transformers.AutoConfig.for_model(model_type, **raw)
    except (ValueError, TypeError) as exc:
        raise TrtEdgeError(f"{what}: not a {model_type} config ({str(exc).splitlines()[0]})") from exc
    config.num_labels = len(label_names)
    config.id2label = dict(enumerate(label_names))
    config.label2id = {n: i for i, n in enumerate(label_names)}
    torch.manual_seed(seed)
    try:
        model = getattr(transformers, spec.auto_model).from_config(config)
    except ValueError as exc:
        raise TrtEdgeError(f"{what}: {model_type} has no {task_type} model ({exc})") from exc
    return model, config


def teacher_train_logits(cfg: DistillConfig, teacher: LoadedClassifier, teacher_dir: Path,
                         encoded: Any, batch_size: int, task: TaskConfig | None = None) -> tuple[np.ndarray, str]:
    """Teacher logits on the training split, cached on disk by teacher and data hashes."""
    features: Any = encoded.features
    if features and not isinstance(next(iter(features[0].values())), list):  # arrays (pixels, audio): hash them
        import hashlib

        stacked = getattr(encoded, "pixels", None)
        if stacked is None:
            stacked = np.stack([np.asarray(next(iter(f.values()))) for f in features])
        features = hashlib.sha256(np.ascontiguousarray(stacked).tobytes()).hexdigest()
    key = sha256_json({"teacher": sha256_tree(teacher_dir), "features": features})[:24]
    path = cache_root(cfg) / "teacher_logits" / f"{key}.npy"
    if path.is_file():
        logits = np.load(path, allow_pickle=False)
        if logits.shape[0] == len(encoded):
            return logits, "hit"
    predict_logits = adapter(task).predict_logits
    logits = predict_logits(teacher.model, encoded, batch_size).astype(np.float32)
    if not is_main_process():
        return logits, "miss"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".npy", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        np.save(handle, logits, allow_pickle=False)
    os.replace(tmp, path)
    return logits, "miss"


def check_student_tokenizer(cfg: DistillConfig, task: TaskConfig | None = None) -> None:
    """Refuse a separate student whose tokenizer differs from the teacher's, before any fine-tuning or
    teacher inference: logit distillation needs the same tokenization of each example. An image task's
    student has its own image processor (each model sees the same image through its own), so nothing is
    compared there."""
    if not cfg.student.model or not adapter(task).text_examples:
        return
    import transformers


    def vocab(ref: str) -> dict[str, int]:
        path = resolve_model_path(ref)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True,
                                                                   trust_remote_code=cfg.trust_remote_code)
        except (OSError, ValueError) as exc:
            raise TrtEdgeError(f"{ref}: cannot load its tokenizer ({str(exc).splitlines()[0]})") from exc
        return dict(tokenizer.get_vocab())

    if vocab(cfg.student.model) != vocab(cfg.teacher):
        raise TrtEdgeError(
            f"{cfg.student.model}: its tokenizer differs from the teacher's; logit distillation needs the "
            "same tokenization of each example (use a student from the same model family)"
        )


def build_student(cfg: DistillConfig, teacher: LoadedClassifier,
                  data: TextClassificationData, task_type: str | None = None
                  ) -> tuple[Any, Any, dict[str, Any]]:
    """The student model, its tokenizer, and how it was made (for stage.json)."""
    import torch

    from trt_edge.distill.student import student_from_teacher
    from trt_edge.modeling.anatomy import num_layers

    torch.manual_seed(cfg.seed)
    if cfg.student.config is not None:
        return config_student(cfg, teacher, data, task_type)
    if cfg.student.model:
        # Same tokenizer as the teacher: checked by `check_student_tokenizer` before any work.
        loaded = load_classifier(cfg.student.model, data.label_names, cfg.trust_remote_code,
                                 task_spec(task_type).name)
        return loaded.model, loaded.tokenizer, {"student_source": str(loaded.path),
                                                "student_layers": num_layers(loaded.model)}
    student, keep = student_from_teacher(teacher.model, cfg.student.layers)
    return student, teacher.tokenizer, {"student_source": "teacher layers", "student_layers": keep}


def config_student(cfg: DistillConfig, teacher: LoadedClassifier, data: TextClassificationData,
                   task_type: str | None) -> tuple[Any, Any, dict[str, Any]]:
    """The student `distill.student.config` describes (`student.student_config`: the teacher's family and
    inputs), random weights, saved with the teacher's preprocessor and loaded back through the task's own
    loader (`load_classifier`: whatever a task wraps around a model, as for a folder student)."""
    from trt_edge.distill.student import student_config
    from trt_edge.modeling.anatomy import num_layers

    spec = task_spec(task_type)
    raw = student_config(cfg.student.config or {}, teacher.model.config, data.label_names)
    model, _ = random_model(raw, data.label_names, spec.name, cfg.seed, "distill.student.config")
    with tempfile.TemporaryDirectory(prefix="trt-edge-student-") as folder:
        save_classifier(model, teacher.tokenizer, Path(folder))
        loaded = load_classifier(folder, data.label_names, cfg.trust_remote_code, spec.name)
    log.info("student: a %s built from distill.student.config with random weights (%d parameters)",
             type(loaded.model).__name__, sum(p.numel() for p in loaded.model.parameters()))
    return loaded.model, loaded.tokenizer, {"student_source": "distill.student.config (random weights)",
                                            "student_layers": num_layers(loaded.model)}


def distill_student(cfg: DistillConfig, task: TaskConfig, data: TextClassificationData, teacher: LoadedClassifier,
                    student: Any, tokenizer: Any, train_logits: np.ndarray, student_layers: Any,
                    transfer: tuple[Any, np.ndarray] | None = None) -> dict[str, Any]:
    """Train `student` in place from teacher logits (+ optional hidden/attention losses), on the labelled
    split and, when given, the transfer set (teacher logits only, no label)."""
    import torch

    from trt_edge.distill.losses import combined_loss
    from trt_edge.distill.student import subset_layer_map, uniform_layer_map
    from trt_edge.distill.train import train
    from trt_edge.modeling.anatomy import head_count, hidden_size, num_layers

    a = adapter(task)
    length_input = get_task(task.type).length_input
    train_enc = a.encode(tokenizer, data.train.texts, task.max_length)
    val_enc = a.encode(tokenizer, data.validation.texts, task.max_length)
    online = cfg.hidden_weight > 0 or cfg.attention_weight > 0
    layer_map: list[tuple[int, int]] = []
    projection: torch.nn.Module | None = None
    if online:
        if isinstance(student_layers, list):
            layer_map = subset_layer_map(student_layers, num_layers(teacher.model))
        else:
            layer_map = uniform_layer_map(num_layers(student), num_layers(teacher.model))
        if hidden_size(student) != hidden_size(teacher.model) and cfg.hidden_weight > 0:
            projection = torch.nn.Linear(hidden_size(student), hidden_size(teacher.model))
        heads = (head_count(student.config), head_count(teacher.model.config))
        if cfg.attention_weight > 0 and heads[0] != heads[1]:
            raise TrtEdgeError(f"distill.attention_weight needs the same number of attention heads in student and "
                               f"teacher (student {heads[0]}, teacher {heads[1]})")
        teacher.model.eval()
        if cfg.attention_weight > 0:
            for m in (student, teacher.model):
                m.config._attn_implementation = "eager"  # attention probabilities are needed

    output_projection = vector_projection(a, student, train_enc, train_logits)

    def loss_fn(m: Any, batch: dict[str, Any]) -> Any:
        inputs = a.model_inputs(batch)
        out = m(**inputs, output_hidden_states=cfg.hidden_weight > 0, output_attentions=cfg.attention_weight > 0)
        if output_projection is not None:  # a student whose vectors are narrower or wider than the teacher's
            name = a.spec.output
            setattr(out, name, output_projection(getattr(out, name)))
        mask = inputs[length_input] if length_input else None
        if mask is None and online:  # no padding (images): every token position counts
            states = out.hidden_states if cfg.hidden_weight > 0 else out.attentions
            tokens = states[0].shape[1] if cfg.hidden_weight > 0 else states[0].shape[-1]
            mask = torch.ones(states[0].shape[0], tokens, device=states[0].device)
        teacher_out = None
        if online:
            with torch.no_grad():
                teacher_out = teacher.model(**{k: v.to(next(teacher.model.parameters()).device)
                                               for k, v in inputs.items()},
                                            output_hidden_states=cfg.hidden_weight > 0,
                                            output_attentions=cfg.attention_weight > 0)
        return combined_loss(out, batch["labels"], batch["teacher_logits"], alpha=cfg.alpha,
                             temperature=cfg.temperature, teacher_out=teacher_out, mask=mask,
                             layer_map=layer_map, hidden_weight=cfg.hidden_weight,
                             attention_weight=cfg.attention_weight, projection=projection, task=task.type,
                             neighbour_weight=cfg.neighbour_weight)

    features = training_features(train_enc, data.train.labels, train_logits)
    if transfer is not None:
        from trt_edge.distill.losses import UNLABELLED

        t_enc, t_logits = transfer
        features += training_features(t_enc, [UNLABELLED] * len(t_enc), t_logits)
    reference = reference_outputs(teacher.model, val_enc, task.eval_batch_size, task)
    result = train(student, features, train_enc.pad_token_id,
                   loss_fn, cfg.train, eval_fn=validation_eval_fn(val_enc, data.validation.labels, data.num_labels,
                                                        task.eval_batch_size, task, reference),
                   seed=cfg.seed, desc="distill",
                   extra_modules=[p for p in (projection, output_projection) if p is not None],
                   collate_fn=a.collate)
    if cfg.attention_weight > 0:
        student.config._attn_implementation = "sdpa"
    return {"best_epoch": result.best_epoch, "seconds": result.seconds, "steps": result.steps,
            "examples_per_second": result.examples_per_second,
            **{f"validation_{k}": v for k, v in result.best_metrics.items() if k not in ("epoch", "train_loss")}}


def vector_projection(a: TaskAdapter, student: Any, train_enc: Any, targets: np.ndarray) -> Any:
    """A trained linear map from the student's vectors to the teacher's width, for the loss only, where a
    task judged against a model (embeddings) distils a student whose vectors have another width (a
    separate `distill.student.model`); None when the widths agree or the task has class logits. The
    saved student keeps its own width: search compares each model's neighbours, not raw vectors."""
    import torch

    if a.uses_labels or not len(train_enc):
        return None
    batch = a.collate([train_enc.features[0]], train_enc.pad_token_id)
    with torch.no_grad():
        width = int(getattr(student(**a.model_inputs(batch)), a.spec.output).shape[-1])
    if width == targets.shape[-1]:
        return None
    log.info("distill: the student's vectors have %d dims, the teacher's %d: a linear projection maps them in the "
             "loss (not saved with the student)", width, targets.shape[-1])
    return torch.nn.Linear(width, int(targets.shape[-1]))


def ablation_budget(cfg: DistillConfig, data: TextClassificationData, distill_info: dict[str, Any]) -> TrainConfig:
    """The hard-label ablation's budget: the distilled student's optimizer steps on the labelled split.

    Without a transfer set that is `distill.train` itself; with one, the distilled student took more steps
    (labelled + transfer examples), so the ablation gets as many steps over the labelled data, more epochs.
    """
    if cfg.transfer.source is None:
        return cfg.train
    import math

    steps = int(distill_info["steps"])
    per_epoch = math.ceil(len(data.train) / cfg.train.batch_size)
    return cfg.train.replace(epochs=max(cfg.train.epochs, math.ceil(steps / per_epoch)), max_steps=steps)


def run(config: RunConfig, out: str | Path) -> StageRecord:
    """Distill the configured teacher into a student and write the stage folder `out`."""
    started = time.perf_counter()
    task: TaskConfig = config.section("task")
    cfg: DistillConfig = config.section("distill")
    a = adapter(task)
    encode, evaluate = a.encode, a.evaluate
    if isinstance(cfg.teacher, str):
        from trt_edge.tasks.models import check_preprocessor, resolve_model_path

        check_preprocessor(resolve_model_path(cfg.teacher), task.type)  # wrong modality: before the data
        check_student_tokenizer(cfg, task)  # before the teacher's fine-tuning and logits, the expensive part
    data = load_task_data(task)
    teacher, teacher_dir, teacher_info = prepare_teacher(cfg, task, data)
    test = data.test
    t_enc = encode(teacher.tokenizer, test.texts, task.max_length)
    teacher_metrics, teacher_test_logits = evaluate(teacher.model, t_enc, test.labels, data.num_labels,
                                                    task.eval_batch_size)
    log.info("teacher test %s", describe_metrics(teacher_metrics))
    train_enc = encode(teacher.tokenizer, data.train.texts, task.max_length)
    logits, logits_cache = teacher_train_logits(cfg, teacher, teacher_dir, train_enc, task.eval_batch_size, task)

    transfer_info: dict[str, Any] = {}
    transfer: tuple[Any, np.ndarray] | None = None
    if cfg.transfer.source is not None:
        from trt_edge.distill.transfer import transfer_examples

        examples, transfer_info = transfer_examples(cfg.transfer, task, data)
        t_enc = encode(teacher.tokenizer, examples, task.max_length)
        t_logits, transfer_info["teacher_logits_cache"] = teacher_train_logits(cfg, teacher, teacher_dir, t_enc,
                                                                               task.eval_batch_size, task)
        transfer = (t_enc, t_logits)

    student, tokenizer, student_info = build_student(cfg, teacher, data, task.type)
    distill_info = distill_student(cfg, task, data, teacher, student, tokenizer, logits,
                                   student_info["student_layers"], transfer)
    s_enc = encode(tokenizer, test.texts, task.max_length)
    # A task judged against a model (embeddings) scores the student against the teacher's test vectors.
    student_metrics, student_test_logits = evaluate(student, s_enc, test.labels, data.num_labels,
                                                    task.eval_batch_size,
                                                    None if a.uses_labels else teacher_test_logits)
    log.info("student test %s", describe_metrics(student_metrics))

    metrics: dict[str, Any] = {
        **prefixed("teacher", teacher_metrics), **prefixed("student", student_metrics),
        **({"student_vs_teacher": student_metrics["accuracy"] / max(teacher_metrics["accuracy"], 1e-9)}
           if "accuracy" in teacher_metrics and "accuracy" in student_metrics else {}),
        **({"majority_accuracy": data.majority_accuracy("test")} if a.uses_labels else {}),
        "teacher_params": count_parameters(teacher.model),
        "student_params": count_parameters(student),
        "distill": distill_info,
        "teacher_logits_cache": logits_cache,
        "transfer": transfer_info or None,
        **teacher_info,
        **student_info,
    }
    # The pipeline judges this pair against pipeline.gates.distill; the stage records the table.
    paired = a.judge("distill", "student vs teacher", teacher_test_logits, student_test_logits, test.labels, None)
    metrics["gate"] = paired.to_dict()
    log.info("%s", paired.line())
    predictions: dict[str, np.ndarray] = {"teacher": teacher_test_logits, "student": student_test_logits}
    if cfg.ablation and not a.uses_labels:
        metrics["ablation_skipped"] = f"a {task.type} model has no hard labels to train on instead of its teacher"
        log.info("distill.ablation skipped: %s", metrics["ablation_skipped"])
    elif cfg.ablation:
        hard_student, hard_tok, _ = build_student(cfg, teacher, data, task.type)
        hard_info = finetune_classifier(hard_student, hard_tok, data, task, ablation_budget(cfg, data, distill_info),
                                        cfg.seed, "hard-label student")
        hard_metrics, hard_logits = evaluate(hard_student, encode(hard_tok, test.texts, task.max_length),
                                             test.labels, data.num_labels, task.eval_batch_size)
        metrics.update({"student_hard_label_accuracy": hard_metrics["accuracy"],
                        "student_hard_label_macro_f1": hard_metrics["macro_f1"], "hard_label": hard_info})
        log.info("hard-label student test accuracy %.4f", hard_metrics["accuracy"])
        # Distillation pays when this drop (hard-label minus distilled) has its whole interval below 0.
        ablation = stats.judge_predictions("distill.ablation", "distilled vs hard-label student", hard_logits,
                                           student_test_logits, test.labels, None)
        pays = ablation.interval_points[1] < 0
        if pays:
            ablation.status = "distillation pays: the whole interval is below 0"
        elif ablation.interval_points[0] > 0:
            ablation.status = "distillation costs accuracy here: the hard-label student is better (interval above 0)"
        else:
            ablation.status = f"no evidence at this n ({ablation.n:,}) either way: the interval contains 0"
        metrics["ablation_gate"] = ablation.to_dict()
        metrics["distillation_pays"] = pays
        log.info("%s", ablation.line())
        predictions["hard_label"] = hard_logits
        del hard_student

    from trt_edge.distill.transfer import transfer_input

    record = StageRecord(
        stage="distill",
        config={"task": task.to_dict(), "distill": cfg.to_dict()},
        inputs={"data": sha256_tree(resolve_data_source(task.data.source)),
                "teacher": teacher_hash(cfg), **transfer_input(cfg.transfer, task.data),
                **(weight_hashes(resolve_teacher_source(cfg), "teacher") if isinstance(cfg.teacher, str) else {}),
                **(weight_hashes(resolve_model_path(cfg.student.model), "student") if cfg.student.model else {})},
        artifacts={MODEL: "model", TEACHER: "teacher", PREDICTIONS: stats.PREDICTIONS_FILE},
    )
    if not is_main_process():  # data-parallel: every rank holds the same student; rank 0 writes the stage
        record.metrics = metrics
        return record
    with stage_output(out) as tmp:
        save_classifier(student, tokenizer, tmp / "model")
        save_classifier(teacher.model, teacher.tokenizer, tmp / "teacher")
        np.save(tmp / "teacher" / "test_logits.npy", teacher_test_logits.astype(np.float32), allow_pickle=False)
        stats.save_predictions(tmp, test.labels, **predictions)
        metrics["student_weight_bytes"] = weight_bytes(tmp / "model")
        metrics["teacher_weight_bytes"] = weight_bytes(tmp / "teacher")
        metrics["train_seconds"] = time.perf_counter() - started
        metrics["data"] = data.record()
        record.metrics = metrics
        record.write(tmp, declared=STAGE.produces)
    return record


def resolve_teacher_source(cfg: DistillConfig) -> Path:

    return resolve_model_path(cfg.teacher)


def teacher_hash(cfg: DistillConfig) -> str:
    """The teacher's input hash: its folder's, or its config's when it is trained from scratch."""
    if isinstance(cfg.teacher, str):
        return sha256_tree(resolve_teacher_source(cfg))
    return sha256_json(cfg.teacher)


# The first stage: reads no stage, writes the student, the teacher it learned from and their predictions.
STAGE = StageDescriptor("distill", ("task", "distill"), run, produces=(MODEL, TEACHER, PREDICTIONS))
