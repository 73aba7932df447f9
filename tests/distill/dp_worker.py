"""Train a tiny classifier with `trt_edge.distill.train.train`; run alone or under `torchrun` (gloo, CPU).

Writes the trained weights (safetensors) from the main process. Dropout is off so one process and two
processes compute the same steps: the test compares the students they train.
"""

from __future__ import annotations

import sys


def main(out: str) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertForSequenceClassification

    from trt_edge.distill.config import TrainConfig
    from trt_edge.distill.train import train

    torch.manual_seed(0)
    config = BertConfig(vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertForSequenceClassification(config)
    rng = torch.Generator().manual_seed(1)
    features = []
    for _ in range(64):
        length = int(torch.randint(4, 20, (1,), generator=rng))
        ids = torch.randint(5, 200, (length,), generator=rng).tolist()
        features.append({"input_ids": ids, "attention_mask": [1] * length,
                         "labels": torch.tensor(ids[0] % 3)})  # learnable: the class is in the first token
    def loss_fn(m: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        out = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return torch.nn.functional.cross_entropy(out.logits, batch["labels"]), {}

    def eval_fn(m: torch.nn.Module) -> dict[str, float]:
        return {"accuracy": float(-sum(p.abs().sum() for p in m.parameters()))}  # any deterministic figure

    cfg = TrainConfig(epochs=2, batch_size=8, learning_rate=3e-3, warmup_ratio=0.1)
    result = train(model, features, 0, loss_fn, cfg, eval_fn=eval_fn, seed=0, show_progress=False)
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        save_file(state, out, metadata={"steps": str(result.steps), "best_epoch": str(result.best_epoch),
                                        "world_size": str(world)})


if __name__ == "__main__":
    main(sys.argv[1])
