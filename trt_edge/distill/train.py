"""One training loop for teacher fine-tuning, distillation and sparse recovery.

Written on Hugging Face Accelerate, so `accelerate launch -m trt_edge distill ...` (or `torchrun`) runs
the same code data-parallel on several GPUs or nodes, and a single GPU is used when present. Batches are
split across the processes (`split_batches`): `batch_size` is the global batch, so the step count, the
learning-rate schedule and the trained student do not depend on how many processes share the work
(tests/distill/test_data_parallel.py checks two CPU processes against one). Validation runs on the main
process and its figures are broadcast, so every process keeps the same best epoch. The loss is a callable,
so every use differs only in what it computes from a batch; `on_step` runs after each optimizer step
(the sparsity stage re-applies its masks there). The best epoch by validation accuracy is kept.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from trt_edge.distill.config import TrainConfig
from trt_edge.log import get_logger
from trt_edge.tasks.adapter import task_adapter

log = get_logger("train")

LossFn = Callable[[Any, dict[str, Any]], tuple[torch.Tensor, dict[str, float]]]
EvalFn = Callable[[Any], dict[str, float]]


@dataclass
class TrainResult:
    best_epoch: int
    best_metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    examples_per_second: float = 0.0


class RunningLoss:
    """The progress bar's loss: an exponential moving average with bias correction, carried across epochs.

    A plain EMA started at 0 reads far too low for its first steps, and one reset at every epoch start
    climbs from near 0 each epoch, which looks like divergence (0.09 -> 0.63 in epoch 2 on a DINOv2 run).
    Dividing by the weight the average has collected (1 - decay**n) gives the mean of the recent losses
    from the first step on.
    """

    def __init__(self, decay: float = 0.9) -> None:
        self.decay = decay
        self._ema = 0.0
        self._weight = 0.0

    def update(self, value: float) -> float:
        self._ema = self.decay * self._ema + (1.0 - self.decay) * value
        self._weight = self.decay * self._weight + (1.0 - self.decay)
        return self.value

    @property
    def value(self) -> float:
        return self._ema / self._weight if self._weight > 0 else 0.0


class LengthGroupedBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Shuffled batches of examples of similar length, a new order every epoch.

    Examples are shuffled, cut into windows of 50 batches, sorted by length inside each window, batched,
    and the batches shuffled again. Padding per batch drops sharply (tweets vary from 5 to 60 tokens)
    while batches stay random. With `group=False` it is a plain shuffled batching.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, group: bool = True) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.group = group
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        if self.group:
            window = self.batch_size * 50
            order = [i for w in range(0, len(order), window)
                     for i in sorted(order[w:w + window], key=lambda j: self.lengths[j])]
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for b in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[b]


def _freeze_word_embeddings(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Freeze the token embedding table: half of a small encoder's parameters, a dense gradient and
    AdamW state on every step, and little to gain from tuning it on a few thousand examples."""
    get = getattr(model, "get_input_embeddings", None)
    try:
        embedding = get() if callable(get) else None
    except NotImplementedError:  # transformers raises it for models with no token table (wav2vec2, SegFormer, DETR)
        embedding = None
    if not isinstance(embedding, torch.nn.Embedding) or not embedding.weight.requires_grad:  # ViT: patches
        return []
    weight: torch.nn.Parameter = embedding.weight  # type: ignore[assignment]
    weight.requires_grad_(False)
    return [weight]


def _param_groups(modules: Sequence[torch.nn.Module], weight_decay: float) -> list[dict[str, Any]]:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for module in modules:
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def selection_key(metrics: dict[str, float]) -> str:
    """The validation metric that picks the best epoch: a task's `score` where its adapter gives one (a
    sentence embedding's recall of the teacher's neighbours), else `accuracy`."""
    return "score" if "score" in metrics else "accuracy"


def train(model: torch.nn.Module, features: Sequence[dict[str, Any]], pad_token_id: int, loss_fn: LossFn,
          cfg: TrainConfig, *, eval_fn: EvalFn, seed: int, desc: str = "train",
          extra_modules: Sequence[torch.nn.Module] = (), on_step: Callable[[Any], None] | None = None,
          show_progress: bool = True, collate_fn: Callable[..., dict[str, Any]] | None = None) -> TrainResult:
    """Train `model` in place; on return it holds the weights of the best validation epoch.

    `collate_fn(features, pad_token_id)` batches the task's features (the default task's collate when
    None: callers from before tasks had types); examples are grouped by the length of their first
    input (1 for fixed-size images).
    """
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, broadcast_object_list
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    accelerator = Accelerator(dataloader_config=DataLoaderConfiguration(split_batches=True))
    if cfg.batch_size % accelerator.num_processes:
        raise ValueError(f"batch_size {cfg.batch_size} must be a multiple of the {accelerator.num_processes} "
                         "processes (each takes an equal share of every batch)")
    items = list(features)
    first = next(iter(items[0])) if items else ""
    lengths = [len(f[first]) if isinstance(f[first], list) else 1 for f in items]
    sampler = LengthGroupedBatchSampler(lengths, cfg.batch_size, seed, cfg.group_by_length)
    batch_fn = collate_fn or task_adapter(None).collate
    loader: torch.utils.data.DataLoader[Any] = torch.utils.data.DataLoader(
        items,  # type: ignore[arg-type]
        batch_sampler=sampler, collate_fn=lambda batch: batch_fn(batch, pad_token_id),
    )
    frozen = _freeze_word_embeddings(model) if cfg.freeze_embeddings else []
    optimizer = torch.optim.AdamW(_param_groups([model, *extra_modules], cfg.weight_decay), lr=cfg.learning_rate)
    steps_per_epoch = len(loader)  # split_batches: every process sees every step
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    scheduler = get_linear_schedule_with_warmup(  # type: ignore[no-untyped-call]
        optimizer, int(cfg.warmup_ratio * total), total
    )
    model, optimizer, loader, scheduler, *_extras = accelerator.prepare(
        model, optimizer, loader, scheduler, *extra_modules
    )
    best_state: dict[str, torch.Tensor] | None = None
    result = TrainResult(best_epoch=-1, best_metrics={})
    stale = 0
    started = time.perf_counter()
    examples = 0
    bar = tqdm(total=total, desc=desc, unit="step", disable=not (show_progress and accelerator.is_main_process),
               dynamic_ncols=True, leave=False, mininterval=0.1 if sys.stderr.isatty() else 10.0)
    running = RunningLoss()
    for epoch in range(cfg.epochs):
        model.train()
        for batch in loader:
            loss, parts = loss_fn(model, batch)
            accelerator.backward(loss)
            if cfg.max_grad_norm > 0:
                accelerator.clip_grad_norm_(
                    [p for g in optimizer.param_groups for p in g["params"]], cfg.max_grad_norm
                )
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if on_step is not None:
                on_step(accelerator.unwrap_model(model))
            result.steps += 1
            examples += int(batch[first].shape[0]) * accelerator.num_processes  # this process's share
            running.update(float(loss.detach()))
            rate = examples / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix(epoch=epoch + 1, loss=f"{running.value:.4f}", ex_s=f"{rate:.0f}", **{
                k: f"{v:.3f}" for k, v in parts.items()})
            bar.update(1)
            if result.steps >= total:
                break
        unwrapped = accelerator.unwrap_model(model)
        shared: list[Any] = [eval_fn(unwrapped) if accelerator.is_main_process else None]
        if accelerator.num_processes > 1:
            broadcast_object_list(shared, from_process=0)
        metrics = dict(shared[0])
        metrics = {**metrics, "epoch": float(epoch + 1), "train_loss": running.value}
        result.history.append(metrics)
        key = selection_key(metrics)
        log.info("%s epoch %d: validation %s %.4f, loss %.4f", desc, epoch + 1, key, metrics[key], running.value)
        if metrics[key] > result.best_metrics.get(key, -math.inf):
            result.best_epoch, result.best_metrics, stale = epoch + 1, metrics, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in unwrapped.state_dict().items()}
        else:
            stale += 1
            if cfg.early_stop_patience and stale >= cfg.early_stop_patience:
                log.info("%s: early stop after epoch %d (best epoch %d)", desc, epoch + 1, result.best_epoch)
                break
        if result.steps >= total:
            break
    bar.close()
    result.seconds = time.perf_counter() - started
    result.examples_per_second = examples / max(result.seconds, 1e-9)
    unwrapped = accelerator.unwrap_model(model)
    if best_state is not None:
        unwrapped.load_state_dict(best_state)
    unwrapped.eval()
    for param in frozen:
        param.requires_grad_(True)
    accelerator.free_memory()
    return result
