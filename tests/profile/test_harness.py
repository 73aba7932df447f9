"""The harness on the ONNX Runtime runner: statistics, inputs from real texts, timing by count and by
duration, per-layer times from ONNX Runtime's profiler, and sweep shapes a model refuses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.profile import harness
from trt_edge.runtime.base import Runner, TensorMeta
from trt_edge.runtime.ort import OnnxRuntimeRunner


def test_latency_stats() -> None:
    s = harness.latency_stats(list(range(1, 101)))
    assert (s["count"], s["min"], s["max"], s["median"], s["mean"]) == (100, 1, 100, 50.5, 50.5)
    assert s["p90"] == pytest.approx(90.1) and s["p99"] == pytest.approx(99.01)
    assert harness.latency_stats([3.0])["std"] == 0.0
    with pytest.raises(ValueError):
        harness.latency_stats([])


def test_feeds_from_texts_and_random(tiny_bert_dir: Path) -> None:
    from transformers import AutoTokenizer

    metas = [TensorMeta("input_ids", ("batch", "sequence"), np.dtype(np.int64)),
             TensorMeta("attention_mask", ("batch", "sequence"), np.dtype(np.int64))]
    src = harness.TextSource(AutoTokenizer.from_pretrained(tiny_bert_dir), ["a short one", "a " * 100])
    feed = harness.make_feed(metas, 3, 12, src)
    assert feed["input_ids"].shape == (3, 12) and feed["input_ids"].dtype == np.int64
    assert feed["attention_mask"][0].sum() < 12 and feed["attention_mask"][1].sum() == 12  # padded, truncated
    assert (feed["input_ids"][0] == feed["input_ids"][2]).all()  # texts cycle
    rnd = harness.make_feed(metas, 2, 5)
    assert rnd["attention_mask"].all() and rnd["input_ids"].min() >= 1000
    bad = [TensorMeta("pixel_values", ("batch", 3), np.dtype(np.float32))]
    with pytest.raises(TrtEdgeError, match="pixel_values"):
        harness.make_feed(bad, 1, 4, src)


def test_benchmark_count_and_duration(tiny_bert_onnx: Path) -> None:
    with OnnxRuntimeRunner(tiny_bert_onnx, intra_op_threads=1) as runner:
        feed = harness.make_feed(runner.inputs(), 2, 16)
        r = harness.benchmark(runner, feed, warmup=2, iterations=25)
        assert len(r.samples_ms) == 25 and r.latency_ms["count"] == 25 and (r.batch, r.seq) == (2, 16)
        s = r.latency_ms
        assert 0 < s["min"] <= s["median"] <= s["p90"] <= s["p95"] <= s["p99"] <= s["max"]
        assert r.window[1] - r.window[0] >= sum(r.samples_ms) / 1e3
        d = r.to_dict()
        assert d["throughput_ips"] == pytest.approx(50 / r.duration_s, rel=1e-3) and d["device_ms"] is None
        timed = harness.benchmark(runner, feed, warmup=0, duration_s=0.2)
        assert timed.duration_s >= 0.2 and len(timed.samples_ms) >= 1
        floor = harness.benchmark(runner, feed, warmup=0, iterations=1, min_duration_s=0.15)
        assert floor.duration_s >= 0.15 and len(floor.samples_ms) > 1
        with pytest.raises(TrtEdgeError, match="bad inputs"):
            harness.benchmark(runner, {"input_ids": feed["input_ids"]}, iterations=1)


def test_ort_layer_times(tiny_bert_onnx: Path, tmp_path: Path) -> None:
    with OnnxRuntimeRunner(tiny_bert_onnx) as runner:
        feed = harness.make_feed(runner.inputs(), 1, 16)
    keep = tmp_path / "ort.json"
    layers = harness.ort_layer_times(tiny_bert_onnx, feed, runs=5, keep_profile=keep)
    assert keep.is_file() and layers["runs"] == 5 and layers["source"] == "onnxruntime profiler"
    names = [x["name"] for x in layers["layers"]]
    assert any("MatMul" in n for n in names) and len(names) > 10
    means = [x["mean_ms"] for x in layers["layers"]]
    assert means == sorted(means, reverse=True) and layers["total_ms"] > 0
    assert sum(x["percent"] for x in layers["layers"]) == pytest.approx(100, abs=0.1)
    assert "MatMul" in layers["by_op_ms"]
    assert not list(tiny_bert_onnx.parent.glob("*ort_profile*"))  # nothing left next to the model


class _FixedRunner(Runner):
    """A runner whose inputs have a fixed sequence axis and an engine-like profile range."""

    name = "fixed"

    def activate_impl(self) -> None: ...

    def deactivate_impl(self) -> None: ...

    def inputs_impl(self) -> Sequence[TensorMeta]:
        return [TensorMeta("input_ids", ("batch", 64), np.dtype(np.int32))]

    def outputs_impl(self) -> Sequence[TensorMeta]:
        return []

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {}

    def profile_shapes(self, name: str, profile: int = 0) -> tuple[list[int], list[int], list[int]]:
        return [1, 64], [4, 64], [8, 64]


def test_sweep_shape_outside_the_model_is_refused() -> None:
    with _FixedRunner() as runner:
        harness.check_shape(runner, 8, 64)
        with pytest.raises(TrtEdgeError, match="axis 1 is fixed at 64"):
            harness.check_shape(runner, 1, 128)
        with pytest.raises(TrtEdgeError, match=r"16 outside the engine's profile \[1, 8\]"):
            harness.check_shape(runner, 16, 64)
