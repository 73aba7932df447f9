"""Sparse recovery: fine-tune the pruned model with its masks enforced, distilling from the teacher.

Pruning half the weights of every block costs accuracy; a short fine-tune with the masks re-applied
after every optimizer step (so a pruned weight never comes back) wins most of it back, and distilling
from the teacher at the same time ("sparse distillation") wins back more than the labels alone.

Two schedules: `oneshot` trains the fully 2:4 model; `gradual` reaches 2:4 in steps over the first part
of training (capped at the first epoch, so every epoch the training loop evaluates, and may keep as the
best, is already fully sparse). Each gradual step recomputes the 2:4 target from the current weights and
prunes the cheapest share of groups first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trt_edge.distill.config import TrainConfig
from trt_edge.log import get_logger
from trt_edge.sparsity.masks import Masks, apply_masks, nm_mask, partial_masks

log = get_logger("prune")


def gradual_schedule(total_steps: int, steps_per_epoch: int, stages: int, fraction: float) -> list[tuple[int, float]]:
    """(optimizer step after which to apply, share of groups pruned) for each gradual stage.

    The first stage applies before training (step 0); the last, at full 2:4, no later than
    `fraction` of training and the end of the first epoch.
    """
    end = max(0, min(round(fraction * total_steps), steps_per_epoch, total_steps))
    if stages <= 1 or end == 0:
        return [(0, 1.0)]
    return [(round(end * i / (stages - 1)), (i + 1) / stages) for i in range(stages)]


@dataclass
class MaskEnforcer:
    """The `on_step` hook of the training loop: re-applies the current masks after every step.

    In the gradual schedule it also moves to the next stage's masks when their step comes.
    """

    final: Masks
    schedule: list[tuple[int, float]] = field(default_factory=lambda: [(0, 1.0)])
    step: int = 0
    current: dict[str, torch.Tensor] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.current:
            self.current = dict(self.final)  # until a gradual stage says otherwise: the full 2:4 masks

    def start(self, model: torch.nn.Module) -> None:
        """Apply the stage due at step 0 (before the first optimizer step)."""
        self._advance(model)
        apply_masks(model, self.current)

    def __call__(self, model: torch.nn.Module) -> None:
        self.step += 1
        self._advance(model)
        apply_masks(model, self.current)

    def _advance(self, model: torch.nn.Module) -> None:
        due = [(s, f) for s, f in self.schedule if s == self.step]
        if not due:
            return
        fraction = due[-1][1]
        if fraction >= 1 and len(self.schedule) == 1:
            self.current = dict(self.final)
        else:
            # Recompute the 2:4 target from the weights as they are now, then prune the cheapest share.
            params = dict(model.named_parameters())
            target = Masks()
            for name in self.final:
                target[name] = nm_mask(params[name])
            self.current = partial_masks(model, target, fraction)
            if fraction >= 1:
                for name, mask in target.items():
                    self.final[name] = mask
        if not self.final:  # no masks: plain distillation (width recovery)
            return
        kept = sum(float(m.float().mean()) for m in self.current.values()) / max(len(self.current), 1)
        self.history.append({"step": float(self.step), "groups_pruned": fraction, "weights_kept": kept})
        log.info("sparse recovery: step %d, %.0f%% of groups pruned to 2:4", self.step, 100 * fraction)


@dataclass
class RecoveryResult:
    steps: int
    seconds: float
    best_epoch: int
    validation_accuracy: float  # the best epoch's selection metric (`train.selection_key`: accuracy, or a task's score)
    schedule: list[dict[str, float]]
    distilled: bool

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "seconds": self.seconds, "best_epoch": self.best_epoch,
                "validation_accuracy": self.validation_accuracy, "schedule": self.schedule,
                "distilled": self.distilled}


def recovery_set(cfg: Any, task: Any, data: Any, encode: Any, tokenizer: Any, teacher: Any, teacher_dir: Any,
                 train_enc: Any) -> tuple[list[dict[str, Any]], np.ndarray | None, dict[str, Any]]:
    """The examples a prune method recovers on: the labelled training split with the teacher's logits
    (cached), plus, with `cfg.transfer`, the transfer set (teacher logits only, labelled UNLABELLED so the
    task loss skips them), exactly as `distill` builds its training set. Returns the features, the teacher
    logits row-aligned with them (None without a teacher) and what to record."""
    from trt_edge.distill.config import DistillConfig
    from trt_edge.distill.stage import teacher_train_logits, training_features

    info: dict[str, Any] = {}
    features = training_features(train_enc, data.train.labels)
    if teacher is None or teacher_dir is None:
        if cfg.transfer.source is not None:
            log.warning("no teacher: the transfer set (%s) is not used (it has no labels)", cfg.transfer.source)
        return features, None, info
    logits_cfg = DistillConfig(cache_dir=cfg.cache_dir)
    logits, info["teacher_logits_cache"] = teacher_train_logits(logits_cfg, teacher, teacher_dir, train_enc,
                                                                task.eval_batch_size, task)
    if cfg.transfer.source is not None:
        from trt_edge.distill.losses import UNLABELLED
        from trt_edge.distill.transfer import transfer_examples

        examples, transfer_info = transfer_examples(cfg.transfer, task, data)
        if examples:
            t_enc = encode(tokenizer, examples, task.max_length)
            t_logits, transfer_info["teacher_logits_cache"] = teacher_train_logits(
                logits_cfg, teacher, teacher_dir, t_enc, task.eval_batch_size, task)
            features += training_features(t_enc, [UNLABELLED] * len(t_enc))
            logits = np.concatenate([logits, t_logits])
        info["transfer"] = transfer_info
        log.info("recovery on %d labelled + %d transfer examples", len(data.train.labels), len(examples))
    return features, logits, info


def recover(model: torch.nn.Module, masks: Masks, train_features: Sequence[dict[str, Any]], pad_token_id: int,
            train_cfg: TrainConfig, *, eval_fn: Any, teacher_logits: np.ndarray | None, alpha: float,
            temperature: float, schedule: str = "oneshot", gradual_steps: int = 4, gradual_fraction: float = 0.3,
            seed: int = 0, desc: str | None = None, task: str | None = None,
            neighbour_weight: float = 0.0) -> RecoveryResult:
    """Fine-tune `model` in place with `masks` enforced after every optimizer step (and at the end).

    Args:
      model (torch.nn.Module): the (permuted) model; masked weights are zeroed before training starts.
      masks (Masks): the 2:4 masks; in the gradual schedule they are recomputed and updated in place.
      train_features (Sequence[dict]): tokenized training examples with `labels`.
      pad_token_id (int): padding id for batching.
      train_cfg (TrainConfig): the training budget.
      eval_fn: validation metrics of a model (`accuracy` picks the best epoch).
      teacher_logits (np.ndarray | None): teacher logits per training example; None trains on labels only.
      alpha (float): weight of the KD term (the task loss gets 1 - alpha).
      temperature (float): KD temperature.
      schedule (str): `oneshot` or `gradual`.
      gradual_steps (int), gradual_fraction (float): the gradual schedule.
      seed (int): shuffling and initialisation seed.
      desc (str | None): progress-bar label. Defaults to `sparse recovery (<schedule>)`.
      task (str | None): the task whose adapter batches the features. None: the default task
        (`text-classification`).
      neighbour_weight (float): the task's in-batch neighbour term (sentence embedding), 0 for none.
    """
    from trt_edge.distill.losses import combined_loss
    from trt_edge.distill.train import selection_key, train
    from trt_edge.tasks.adapter import task_adapter

    adapter = task_adapter(task)
    model_inputs = adapter.model_inputs

    features = []
    for i, feature in enumerate(train_features):
        item = dict(feature)
        if teacher_logits is not None:
            item["teacher_logits"] = torch.from_numpy(np.asarray(teacher_logits[i], dtype=np.float32))
        features.append(item)
    # A task judged against a model (embeddings) always trains on its targets: it has no labels to weigh them with.
    distilled = teacher_logits is not None and (alpha > 0 or not adapter.uses_labels)

    def loss_fn(m: Any, batch: dict[str, Any]) -> Any:
        out = m(**model_inputs(batch))
        return combined_loss(out, batch["labels"], batch.get("teacher_logits") if distilled else None,
                             alpha=alpha if distilled else 0.0, temperature=temperature, task=task,
                             neighbour_weight=neighbour_weight)

    steps_per_epoch = math.ceil(len(features) / train_cfg.batch_size)
    total = train_cfg.epochs * steps_per_epoch
    if train_cfg.max_steps is not None:
        total = min(total, train_cfg.max_steps)
    plan = gradual_schedule(total, steps_per_epoch, gradual_steps, gradual_fraction) if schedule == "gradual" \
        else [(0, 1.0)]
    enforcer = MaskEnforcer(masks, plan)
    enforcer.start(model)
    result = train(model, features, pad_token_id, loss_fn, train_cfg, eval_fn=eval_fn, seed=seed,
                   desc=desc or f"sparse recovery ({schedule})", on_step=enforcer, collate_fn=adapter.collate)
    apply_masks(model, masks)  # the loop restored the best epoch's weights: make sure they are truly zero
    return RecoveryResult(result.steps, result.seconds, result.best_epoch,
                          float(result.best_metrics.get(selection_key(result.best_metrics), float("nan"))),
                          enforcer.history, distilled)
