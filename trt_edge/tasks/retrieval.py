"""Retrieval metrics of an embedding model against its parent, on the same held-out examples (numpy only).

An embedding model is judged by what its vectors are used for: search. The figures here say how much of
the parent's search result a child model (a distilled, pruned or INT8 student) reproduces:

* `recall_at_k`: per query, the share of the parent's k nearest neighbours (on the parent's vectors)
  that the child's k nearest (on its own vectors) find too. It compares *rankings*, so it works when the
  two models' vector spaces differ (a 384-d student of a 768-d teacher) and it is the figure a user of
  the search feels: the issue's "recall@10 of the teacher's 10 nearest neighbours".
* `cosines` / `mean_cosine`: how close each vector is to the parent's own vector of the same example;
  only defined when both live in the same space (same dimension), else NaN/None.
* `knn_predictions` / `knn_accuracy`: where the data has labels, a leave-one-out k-nearest-neighbour
  classifier on the vectors: whether the geometry still separates the classes.

Neighbours are by cosine, leave-one-out within the set (a query is never its own neighbour), ties broken
by the lower index so every figure is deterministic, and computed in row chunks so 10k x 10k examples
never hold more than about 100 MB at once. The gate on recall@10 (`judge_retrieval`) is a paired
bootstrap interval over the queries (`trt_edge.stats.judge_scores`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trt_edge import stats
from trt_edge.tasks.metrics import accuracy, macro_f1

# Similarity cells held at once per chunk: float64 similarities plus the int64 partition indices and a
# comparison mask, about 25 bytes a cell, so 4M cells stay near 100 MB.
CHUNK_CELLS = 4_000_000


def _matrix(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty [examples, dim] matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: non-finite values in the vectors (NaN or inf)")
    return arr


def _paired(reference: Any, candidate: Any) -> tuple[np.ndarray, np.ndarray]:
    ref, cand = _matrix(reference, "reference"), _matrix(candidate, "candidate")
    if ref.shape[0] != cand.shape[0]:
        raise ValueError(f"{cand.shape[0]} candidate vectors for {ref.shape[0]} reference vectors: the two "
                         "models were not run on the same examples")
    return ref, cand


def normalized(x: Any) -> np.ndarray:
    """Rows scaled to unit length (float64), so a dot product is the cosine.

    A zero row stays zero instead of becoming NaN: its cosine with anything is 0, which ranks it as
    unrelated rather than poisoning every comparison it takes part in.
    """
    arr = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    out: np.ndarray = np.divide(arr, norms, out=np.zeros_like(arr), where=norms > 0)
    return out


def effective_k(n: int, k: int) -> int:
    """The k a leave-one-out figure on n examples uses: k clamped to n - 1 (a query has n - 1 others).

    Why clamp rather than refuse: a small held-out set (a test, a tiny demo) still gets a figure; the
    metrics dict records the k it used (`k`). Fewer than two examples have no neighbours at all.
    """
    if k < 1:
        raise ValueError(f"k={k}: need at least one neighbour")
    if n < 2:
        raise ValueError(f"{n} example(s): nearest neighbours need at least 2")
    return min(int(k), n - 1)


def _top_k(sims: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries of each row, largest first, ties by the lower index.

    An argpartition finds the k candidates in O(m) per row; only a row whose ties straddle the k-th place
    (where argpartition picks among equals arbitrarily) pays a full stable sort.
    """
    neg = -sims
    part = np.argpartition(neg, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(neg, part, axis=1)
    kth = vals.max(axis=1)
    order = np.lexsort((part, vals), axis=-1)
    top: np.ndarray = np.take_along_axis(part, order, axis=1)
    straddles = np.count_nonzero(neg <= kth[:, None], axis=1) > k
    for row in np.flatnonzero(straddles):
        top[row] = np.argsort(neg[row], kind="stable")[:k]
    return top


def nearest(emb: Any, k: int, corpus: Any = None) -> np.ndarray:
    """[n, k] indices of each row's k nearest rows by cosine, nearest first, ties by the lower index.

    Without `corpus`, neighbours are searched within `emb` itself, leaving the query out (the held-out
    set is both the queries and the corpus, and a vector is trivially its own nearest). With `corpus`,
    the rows of `emb` are queries into it (indices into `corpus`, nothing left out). k must fit:
    1 <= k <= n - 1 (leave-one-out) or the corpus size. Computed in row chunks of at most `CHUNK_CELLS`
    similarities.
    """
    queries = normalized(_matrix(emb, "emb"))
    leave_one_out = corpus is None
    base = queries if leave_one_out else normalized(_matrix(corpus, "corpus"))
    if base.shape[1] != queries.shape[1]:
        raise ValueError(f"queries of dimension {queries.shape[1]} against a corpus of dimension {base.shape[1]}")
    n, m = queries.shape[0], base.shape[0]
    available = m - 1 if leave_one_out else m
    if not 1 <= k <= available:
        raise ValueError(f"k={k} nearest neighbours out of {available} candidate rows")
    out = np.empty((n, k), dtype=np.int64)
    rows = max(1, CHUNK_CELLS // m)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        sims = queries[start:stop] @ base.T
        if leave_one_out:
            sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        out[start:stop] = _top_k(sims, k)
    return out


def _rows_per_chunk(k: int) -> int:
    """Rows per chunk of [rows, k, k] neighbour comparisons: at most `CHUNK_CELLS` cells."""
    return max(1, CHUNK_CELLS // (k * k))


def recall_at_k(reference: Any, candidate: Any, k: int = 10) -> np.ndarray:
    """[n] per query: the share of the reference's k nearest neighbours the candidate's k nearest reproduce.

    `reference[i]` and `candidate[i]` are two models' vectors of the same example i (paired); their
    dimensions may differ, since each model's neighbours are found in its own space. k is clamped to
    n - 1 (`effective_k`; fewer than 2 examples raise ValueError). The reference against itself scores
    1.0 on every query; random vectors score about k / (n - 1).
    """
    ref, cand = _paired(reference, candidate)
    kk = effective_k(ref.shape[0], k)
    a, b = nearest(ref, kk), nearest(cand, kk)
    hits = np.empty(ref.shape[0], dtype=np.int64)
    step = _rows_per_chunk(kk)
    for start in range(0, ref.shape[0], step):
        sa, sb = a[start:start + step], b[start:start + step]
        hits[start:start + step] = (sa[:, :, None] == sb[:, None, :]).any(axis=2).sum(axis=1)
    out: np.ndarray = hits / kk
    return out


def cosines(reference: Any, candidate: Any) -> np.ndarray | None:
    """[n] cosine between each example's candidate vector and its reference vector; None when the
    dimensions differ (a cosine compares vectors of one space: a 384-d student and a 768-d teacher have
    none, and recall@k is their figure). A zero vector has cosine 0 with anything."""
    ref, cand = _paired(reference, candidate)
    if ref.shape[1] != cand.shape[1]:
        return None
    out: np.ndarray = np.einsum("ij,ij->i", normalized(ref), normalized(cand))
    return out


def mean_cosine(reference: Any, candidate: Any) -> float:
    """Mean of `cosines`; NaN when the dimensions differ (no shared space to compare in)."""
    values = cosines(reference, candidate)
    return float("nan") if values is None else float(values.mean())


def knn_predictions(emb: Any, labels: Sequence[int] | np.ndarray, k: int = 10) -> np.ndarray:
    """[n] leave-one-out k-nearest-neighbour majority vote of the labels (k clamped to n - 1).

    A tie between classes goes to the tied class whose first neighbour is nearest (with k = 1 or
    all-different labels, the nearest neighbour's label): deterministic, and the natural order of a
    search result. Why leave-one-out: the held-out set is its own corpus, and an example must not vote
    for itself.
    """
    vectors = _matrix(emb, "emb")
    y = np.asarray(labels).reshape(-1)
    if y.shape[0] != vectors.shape[0]:
        raise ValueError(f"{y.shape[0]} labels for {vectors.shape[0]} vectors")
    kk = effective_k(vectors.shape[0], k)
    nn = nearest(vectors, kk)
    pred = np.empty_like(y)
    step = _rows_per_chunk(kk)
    for start in range(0, len(y), step):
        voters = y[nn[start:start + step]]  # [rows, k] the neighbours' labels, nearest first
        votes = (voters[:, :, None] == voters[:, None, :]).sum(axis=2)  # each neighbour's label's votes
        first_top = (votes == votes.max(axis=1, keepdims=True)).argmax(axis=1)
        pred[start:start + step] = voters[np.arange(len(voters)), first_top]
    return pred


def knn_accuracy(emb: Any, labels: Sequence[int] | np.ndarray, k: int = 10) -> float:
    """Accuracy of `knn_predictions` on the labels."""
    return accuracy(knn_predictions(emb, labels, k), np.asarray(labels).reshape(-1))


def retrieval_metrics(outputs: Any, labels: Sequence[int] | np.ndarray | None = None, reference: Any = None,
                      k: int = 10, *, num_labels: int | None = None) -> dict[str, float]:
    """The embedding task's metrics of one model's held-out vectors, as a stage records them.

    `recall_at_{k}` (`recall_at_10` by default) and `mean_cosine` against `reference` (the parent's
    vectors of the same examples; mean_cosine only when the dimensions match), `k` the neighbours used
    (clamped to examples - 1), `knn_accuracy` and `knn_macro_f1` when labels are given (macro-F1 over
    `num_labels` classes, default max(label) + 1), and `examples`. Absent figures are left out rather
    than NaN, so the dict stays valid JSON.
    """
    vectors = _matrix(outputs, "outputs")
    n = vectors.shape[0]
    out: dict[str, float] = {"examples": n}
    if reference is not None or labels is not None:
        out["k"] = effective_k(n, k)
    if reference is not None:
        out[f"recall_at_{k}"] = float(recall_at_k(reference, vectors, k).mean())
        cos = mean_cosine(reference, vectors)
        if not np.isnan(cos):
            out["mean_cosine"] = cos
    if labels is not None:
        y = np.asarray(labels).reshape(-1)
        pred = knn_predictions(vectors, y, k)
        classes = int(num_labels) if num_labels is not None else int(y.max()) + 1
        out["knn_accuracy"] = accuracy(pred, y)
        out["knn_macro_f1"] = macro_f1(pred, y, classes)
    return out


def judge_retrieval(gate: str, compares: str, ref_outputs: Any, new_outputs: Any, budget_points: float | None,
                    default_budget_points: float | None = None, k: int = 10, *, seed: int = 0,
                    reference: Any = None) -> stats.GateVerdict:
    """The recall@k gate of a child model against its parent, with a paired bootstrap 95% interval.

    With a `reference` (the teacher's vectors of the same examples), both models are scored by what the
    gate is about: each query's recall@k of the *teacher's* neighbours, the child's against the parent's,
    paired per query (a 2:4 student loses points only where it finds fewer of the teacher's neighbours than
    the dense student did). Without one, the parent is the reference: its per-query score is 1.0 (its
    neighbours against themselves) and the child's `recall_at_k(ref_outputs, new_outputs, k)`. The drop is
    in recall@k points (100 x the mean lost share). Lives here, not in `stats`: stats is a bottom layer
    and knows nothing of embeddings.
    """
    if reference is not None:
        ref_scores = recall_at_k(reference, ref_outputs, k)
        new_scores = recall_at_k(reference, new_outputs, k)
    else:
        new_scores = recall_at_k(ref_outputs, new_outputs, k)
        ref_scores = np.ones_like(new_scores)
    kk = effective_k(len(new_scores), k)
    unit = f"recall@{kk} points" + (" (of the teacher's neighbours)" if reference is not None else "")
    return stats.judge_scores(gate, compares, ref_scores, new_scores, budget_points, default_budget_points, seed=seed,
                              unit=unit)
