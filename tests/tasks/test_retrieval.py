"""Retrieval metrics: neighbours by cosine (leave-one-out, deterministic ties), recall@k of the parent's
neighbours, cosines, the kNN classifier, and the recall gate with its bootstrap interval."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trt_edge import stats
from trt_edge.tasks import retrieval


def _vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim))


def test_normalized_rows_are_unit_and_zero_rows_stay_zero() -> None:
    x = np.array([[3.0, 4.0], [0.0, 0.0], [-2.0, 0.0]])
    out = retrieval.normalized(x)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]])


def test_nearest_leaves_the_query_out_and_orders_by_cosine() -> None:
    emb = _vectors(50, 8)
    nn = retrieval.nearest(emb, 5)
    assert nn.shape == (50, 5) and nn.dtype == np.int64
    assert not (nn == np.arange(50)[:, None]).any()
    unit = retrieval.normalized(emb)
    sims = np.take_along_axis(unit @ unit.T, nn, axis=1)
    assert (np.diff(sims, axis=1) <= 1e-12).all()  # nearest first
    # by hand: 2-d unit vectors at known angles
    angles = np.radians([0, 10, 30, 100, 200])
    pts = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    assert retrieval.nearest(pts, 2)[0].tolist() == [1, 2]
    assert retrieval.nearest(pts, 1)[3].tolist() == [2]  # 100 deg: 70 from 30, 90 from 10, 100 from 200


def test_nearest_breaks_ties_by_the_lower_index_and_is_chunk_independent(monkeypatch: pytest.MonkeyPatch) -> None:
    # rows 1..6 all equal: every tie among them goes to the lower indices, whatever argpartition picks
    emb = np.array([[1.0, 0.0]] + [[0.0, 1.0]] * 6 + [[-1.0, 0.0]])
    nn = retrieval.nearest(emb, 3)
    assert nn[1].tolist() == [2, 3, 4] and nn[4].tolist() == [1, 2, 3]
    assert nn[0].tolist() == [1, 2, 3]  # all six at cosine 0: the lowest indices
    emb = _vectors(120, 6, seed=3)
    whole = retrieval.nearest(emb, 7)
    monkeypatch.setattr(retrieval, "CHUNK_CELLS", 200)  # 1 row per chunk
    np.testing.assert_array_equal(retrieval.nearest(emb, 7), whole)


def test_nearest_into_a_corpus_and_bad_k() -> None:
    corpus = np.eye(4)
    queries = np.array([[0.9, 0.1, 0.0, 0.0], [0.0, 0.0, 0.2, 1.0]])
    assert retrieval.nearest(queries, 2, corpus).tolist() == [[0, 1], [3, 2]]
    assert retrieval.nearest(queries, 4, corpus).shape == (2, 4)  # nothing left out of a corpus
    with pytest.raises(ValueError, match="out of 3"):
        retrieval.nearest(corpus, 4)
    with pytest.raises(ValueError, match="dimension"):
        retrieval.nearest(queries, 1, np.eye(3))
    with pytest.raises(ValueError, match="non-finite"):
        retrieval.nearest(np.array([[np.nan, 1.0], [1.0, 0.0]]), 1)


def test_identical_and_geometry_preserving_vectors_recall_everything() -> None:
    ref = _vectors(200, 16)
    assert retrieval.recall_at_k(ref, ref.copy()).tolist() == [1.0] * 200
    # a rotation, a permutation of the dimensions and a positive scale per row keep every cosine
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(16, 16)))
    scale = np.random.default_rng(2).uniform(0.1, 10.0, size=(200, 1))
    moved = (ref @ q)[:, np.random.default_rng(3).permutation(16)] * scale
    assert retrieval.recall_at_k(ref, moved, k=10).min() == 1.0
    # permuting the examples of both models together keeps every figure (paired by position)
    order = np.random.default_rng(4).permutation(200)
    noisy = ref + 0.5 * _vectors(200, 16, seed=5)
    np.testing.assert_allclose(retrieval.recall_at_k(ref[order], noisy[order]),
                               retrieval.recall_at_k(ref, noisy)[order])


def test_random_vectors_recall_about_chance() -> None:
    n, k = 400, 10
    recall = retrieval.recall_at_k(_vectors(n, 32, seed=0), _vectors(n, 24, seed=1), k)  # dims may differ
    chance = k / (n - 1)
    assert recall.shape == (n,) and recall.min() >= 0.0 and recall.max() <= 1.0
    assert 0.5 * chance < recall.mean() < 2.0 * chance
    # a lightly perturbed copy keeps most neighbours: between chance and everything
    ref = _vectors(n, 32)
    near = retrieval.recall_at_k(ref, ref + 0.2 * _vectors(n, 32, seed=9), k).mean()
    assert 0.5 < near < 1.0


def test_k_is_clamped_to_the_others_and_two_examples_are_needed() -> None:
    ref = _vectors(5, 4)
    assert retrieval.effective_k(5, 10) == 4
    assert retrieval.recall_at_k(ref, ref, k=10).tolist() == [1.0] * 5
    metrics = retrieval.retrieval_metrics(ref, reference=ref, k=10)
    assert metrics["k"] == 4 and metrics["recall_at_10"] == 1.0
    with pytest.raises(ValueError, match="at least 2"):
        retrieval.recall_at_k(ref[:1], ref[:1])
    with pytest.raises(ValueError, match="same examples"):
        retrieval.recall_at_k(ref, ref[:4])


def test_cosines_only_in_one_space() -> None:
    ref = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    new = np.array([[1.0, 1.0], [0.0, -3.0], [2.0, 2.0]])
    values = retrieval.cosines(ref, new)
    assert values is not None
    np.testing.assert_allclose(values, [np.sqrt(0.5), -1.0, 1.0])
    assert retrieval.mean_cosine(ref, new) == pytest.approx((np.sqrt(0.5) - 1.0 + 1.0) / 3)
    wider = np.hstack([new, new])
    assert retrieval.cosines(ref, wider) is None and np.isnan(retrieval.mean_cosine(ref, wider))
    assert "mean_cosine" not in retrieval.retrieval_metrics(wider, reference=ref)


def test_knn_on_separable_clusters_is_perfect_and_ties_go_to_the_nearest() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])
    labels = np.repeat([0, 1, 2], 30)
    emb = centres[labels] + rng.normal(scale=0.5, size=(90, 3))
    assert retrieval.knn_accuracy(emb, labels, k=10) == 1.0
    metrics = retrieval.retrieval_metrics(emb, labels=labels, k=10)
    assert metrics["knn_accuracy"] == 1.0 and metrics["knn_macro_f1"] == 1.0 and metrics["examples"] == 90
    assert "recall_at_10" not in metrics  # no reference model given
    # query 0's two neighbours carry one vote each: the nearest (index 1, label 7) wins
    pts = np.array([[1.0, 0.0], [1.0, 0.1], [1.0, -0.3], [-1.0, 0.0]])
    assert retrieval.knn_predictions(pts, [5, 7, 9, 9], k=2)[0] == 7
    # a majority beats a nearer single vote
    pts = np.array([[1.0, 0.0], [1.0, 0.05], [1.0, 0.2], [1.0, -0.25], [-1.0, 0.0]])
    assert retrieval.knn_predictions(pts, [0, 1, 2, 2, 0], k=3)[0] == 2


def test_the_recall_gate_has_a_bootstrap_interval_and_a_stored_form() -> None:
    ref = _vectors(300, 16)
    same = retrieval.judge_retrieval("prune", "sparse vs dense", ref, ref.copy(), 3.0, 3.0)
    assert same.drop_points == 0.0 and same.passed and same.conclusive and same.interval_points == (0.0, 0.0)
    noisy = ref + 0.3 * _vectors(300, 16, seed=1)
    verdict = retrieval.judge_retrieval("prune", "sparse vs dense", ref, noisy, 3.0, 3.0)
    recall = retrieval.recall_at_k(ref, noisy)
    assert verdict.drop_points == pytest.approx(100 * (1 - recall.mean()))
    assert verdict.ref_accuracy == 1.0 and verdict.new_accuracy == pytest.approx(recall.mean())
    lo, hi = verdict.interval_points
    assert lo <= verdict.drop_points <= hi and verdict.table is None
    assert not verdict.passed and "bootstrap" in verdict.method and "recall@10 points" in verdict.line()
    record = json.loads(json.dumps(verdict.to_dict()))
    assert stats.rejudge(record, 100.0, 3.0).passed


def test_judge_retrieval_with_the_teachers_vectors_pairs_both_models_against_them() -> None:
    """With a reference, the gate is the child's recall of the teacher's neighbours against its parent's:
    a child as good as its parent loses nothing even where both miss the teacher's neighbours, and a
    child that finds fewer of them loses points (paired per query)."""
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(60, 8))
    parent = teacher + rng.normal(scale=0.8, size=teacher.shape)  # finds some of the teacher's neighbours
    same = retrieval.judge_retrieval("prune", "child vs parent", parent, parent.copy(), 3.0, reference=teacher)
    assert same.drop_points == pytest.approx(0.0) and same.passed
    assert "teacher" in same.bootstrap["unit"]
    child = rng.normal(size=teacher.shape)
    worse = retrieval.judge_retrieval("prune", "child vs parent", parent, child, 3.0, reference=teacher)
    lo, hi = worse.interval_points
    assert worse.drop_points > 3.0 and lo <= worse.drop_points <= hi and not worse.passed
    # Without a reference the parent scores 1.0 against itself: the same child loses far more.
    alone = retrieval.judge_retrieval("prune", "child vs parent", parent, child, 3.0)
    assert alone.drop_points > worse.drop_points
