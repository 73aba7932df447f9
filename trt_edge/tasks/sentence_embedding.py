"""Sentence embedding: text in, one vector out, bound as `ADAPTER` (a `tasks.adapter.TaskAdapter`).

The inputs, tokenization, batching and ONNX feeds are exactly the text-classification task's (the same
functions, not copies). What differs is the output and what "good" means:

* the model is an encoder with its pooling (mean over the mask, CLS, last token, max), optional Dense
  projection and normalisation (`modeling/pooling.EmbeddingModel`), so the exported graph, and the engine
  built from it, gives the vector alone;
* a model is judged against a *reference* model's vectors on the same held-out texts, not against
  labels: the recall@10 of the reference's ten nearest neighbours (`tasks/retrieval.py`), the mean
  cosine to the reference, and, where the data carries labels, a k-nearest-neighbour classifier's
  accuracy. Distillation's reference is the teacher; 2:4, width pruning and INT8 are each judged against
  their own fp32 parent, paired per query with a bootstrap interval;
* distillation matches the teacher's vectors (MSE plus cosine; Reimers & Gurevych 2020, "Making
  Monolingual Sentence Embeddings Multilingual using Knowledge Distillation", train a student to
  reproduce the teacher's embeddings with an MSE loss), labels play no part.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.tasks import text_classification as text
from trt_edge.tasks.adapter import TaskAdapter
from trt_edge.tasks.config import DataConfig
from trt_edge.tasks.data import ClassificationData, load_data
from trt_edge.tasks.spec import SENTENCE_EMBEDDING as SPEC
from trt_edge.tasks.spec import TaskSpec

# Neighbours compared per query: the recall@10.
NEIGHBOURS = 10


# The temperature of the in-batch similarity term: cosine similarities live in [-1, 1], so the softened
# neighbour distribution needs a far smaller temperature than class logits (distill.temperature).
SIMILARITY_TEMPERATURE = 0.05


def embedding_loss(student: Any, teacher: Any, relational_weight: float = 0.0) -> tuple[Any, dict[str, float]]:
    """MSE plus (1 - cosine) between the student's and the teacher's vectors ([B, D] each), plus, weighted
    by `relational_weight`, the in-batch neighbour term.

    MSE alone under-weights direction for normalised vectors (their squared distance is 2 - 2cos, so the
    two terms agree there); for unnormalised ones the cosine term keeps the search geometry in view while
    MSE keeps the scale. The neighbour term is what search needs: for each example, the KL from the
    teacher's softened distribution over the other examples of the batch (cosine / 0.05) to the student's
    (relational knowledge distillation, Park et al., CVPR 2019, on the similarity matrix); it trains the
    *ranking* the recall@10 gate measures, which matching each vector alone leaves to chance. All terms
    are means over the batch; the neighbour term needs a batch of at least 3."""
    import torch
    import torch.nn.functional as F

    s, t = student.float(), teacher.float().to(student.device)
    mse = F.mse_loss(s, t)
    cos = (1.0 - F.cosine_similarity(s, t, dim=-1)).mean()
    loss = mse + cos
    parts = {"mse": float(mse.detach()), "cos": float(cos.detach())}
    if relational_weight > 0 and s.shape[0] > 2:
        ns, nt = F.normalize(s, dim=-1), F.normalize(t, dim=-1)
        eye = torch.eye(s.shape[0], dtype=torch.bool, device=s.device)
        sim_s = (ns @ ns.T / SIMILARITY_TEMPERATURE).masked_fill(eye, -1e4)
        sim_t = (nt @ nt.T / SIMILARITY_TEMPERATURE).masked_fill(eye, -1e4)
        log_p_s, log_p_t = F.log_softmax(sim_s, dim=-1), F.log_softmax(sim_t, dim=-1)
        rkd = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1).mean()
        loss = loss + relational_weight * rkd
        parts["rkd"] = float(rkd.detach())
    return loss, parts


class SentenceEmbeddingAdapter:
    """The sentence-embedding task as a `TaskAdapter` (see the module docstring)."""

    spec: TaskSpec = SPEC
    text_examples = True
    builds_from_config = False  # a text model needs a trained tokenizer
    uses_labels = False  # trains and is judged on texts alone; labels only score the kNN classifier

    @property
    def has_sequence_axis(self) -> bool:
        return self.spec.has_sequence_axis

    def load_data(self, cfg: DataConfig) -> ClassificationData:
        return load_data(cfg, labels_required=False)

    def display_examples(self, examples: Sequence[Any]) -> list[str] | None:
        return [str(t) for t in examples]

    def encode(self, preprocessor: Any, examples: Sequence[Any], max_length: int) -> text.Encoded:
        return text.encode(preprocessor, examples, max_length)

    def collate(self, features: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
        return text.collate(features, pad_token_id)

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return text.model_inputs(batch)

    def predict_logits(self, model: Any, encoded: Any, batch_size: int = 64, device: Any = None) -> np.ndarray:
        """The vectors (the task's output; the name is the protocol's, from classification)."""
        return text.predict_logits(model, encoded, batch_size, device, output=SPEC.output)

    def score(self, outputs: np.ndarray, labels: Sequence[int], num_labels: int,
              reference: np.ndarray | None = None) -> dict[str, float]:
        """Retrieval metrics of `outputs` against `reference` (recall@10, mean cosine) and, with labels
        (more than one class), the kNN classifier's; `score` is what picks a best epoch: the recall
        against the reference, or the kNN accuracy without one."""
        from trt_edge.tasks.retrieval import retrieval_metrics

        metrics: dict[str, float] = retrieval_metrics(outputs, list(labels) if num_labels > 1 else None, reference,
                                                      k=NEIGHBOURS, num_labels=num_labels)
        chosen = metrics.get(SPEC.metric, metrics.get("knn_accuracy"))
        if chosen is not None:
            metrics["score"] = float(chosen)
        return metrics

    def evaluate(self, model: Any, encoded: Any, labels: Sequence[int], num_labels: int,
                 batch_size: int = 64, reference: np.ndarray | None = None) -> tuple[dict[str, float], np.ndarray]:
        vectors = self.predict_logits(model, encoded, batch_size)
        return self.score(vectors, labels, num_labels, reference), vectors

    def example_scores(self, logits: np.ndarray, labels: Sequence[int],
                       reference: np.ndarray | None = None) -> np.ndarray:
        """Per query, the recall@10 of the reference model's neighbours (an embedding has no per-example
        correctness of its own: without a reference there is no score)."""
        from trt_edge.tasks.retrieval import recall_at_k

        del labels
        if reference is None:
            raise ValueError("a sentence embedding is scored against a reference model's vectors")
        return np.asarray(recall_at_k(reference, logits, NEIGHBOURS), dtype=np.float64)

    def judge(self, gate: str, compares: str, ref_outputs: np.ndarray, new_outputs: np.ndarray,
              labels: Sequence[int], budget_points: float | None, default_budget_points: float | None = None,
              reference: np.ndarray | None = None) -> Any:
        """The paired gate, bootstrap interval over queries: with `reference` (the teacher's vectors), the
        child's recall@10 of the teacher's neighbours against its parent's; without, the child's recall@10
        of its parent's neighbours (the parent scoring 1.0 against itself)."""
        from trt_edge.tasks.retrieval import judge_retrieval

        del labels
        return judge_retrieval(gate, compares, ref_outputs, new_outputs, budget_points, default_budget_points,
                               k=NEIGHBOURS, reference=reference)

    def output_loss(self, student_out: Any, labels: Any, teacher_outputs: Any, *, alpha: float,
                    temperature: float, neighbour_weight: float = 0.0) -> tuple[Any, dict[str, float]]:
        """The distillation loss on the task's output: the target vectors (the teacher's, or in a recovery
        the dense parent's; there is no hard-label term, so `alpha` has nothing to weigh here: which
        target a recovery takes is decided by its caller) plus `neighbour_weight` x the in-batch neighbour
        term (`embedding_loss`), whose temperature is fixed (`SIMILARITY_TEMPERATURE`: `temperature` is
        tuned for class logits)."""
        del labels, temperature, alpha
        vectors = getattr(student_out, SPEC.output)
        if teacher_outputs is None:
            raise ValueError("a sentence-embedding model trains on its teacher's (or parent's) vectors")
        return embedding_loss(vectors, teacher_outputs, relational_weight=neighbour_weight)

    def example_inputs(self, model_config: Any, names: Sequence[str], int32_inputs: bool, seed: int = 0,
                       preprocessor: Any = None) -> dict[str, Any]:
        return text.example_inputs(model_config, names, int32_inputs, seed, preprocessor)

    def feeds(self, preprocessor: Any, examples: Sequence[Any], max_length: int,
              input_names: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        return text.tokenize_padded(preprocessor, examples, max_length, input_names)

    def fit_model(self, model: Any, preprocessor: Any, source: str = "the model") -> str | None:
        return text.fit_model(model, preprocessor, source)

    def preflight_model(self, folder: Path, preprocessor: Any, trust_remote_code: bool = False) -> str | None:
        """The pooling the folder declares, read (and an unknown one refused) before any training."""
        from trt_edge.modeling.pooling import read_pooling

        del preprocessor, trust_remote_code
        return f"{folder}: {read_pooling(folder).describe()}"

    def write_processor_config(self, folder: Path, model_config: Any) -> None:
        text.ADAPTER.write_processor_config(folder, model_config)

    def example_seconds(self, preprocessor: Any) -> float | None:
        """None: texts are not signals in time."""
        del preprocessor
        return None

    def runtime_feed(self, preprocessor: Any, examples: Sequence[Any], runner_inputs: Sequence[Any],
                     max_length: int, source: str = "the model") -> dict[str, np.ndarray]:
        return text.runtime_feed(preprocessor, examples, runner_inputs, max_length, source)


ADAPTER: TaskAdapter = SentenceEmbeddingAdapter()
