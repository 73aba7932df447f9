"""The calibration set: stratified real examples, padded arrays with true lengths, npz round trip,
length buckets, and the refusals (too small, wrong input names, no tokenizer)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.quantize.calib_data import draw_calibration_set, load_calibration_set
from trt_edge.quantize.config import CalibrationDataConfig

NAMES = ["input_ids", "attention_mask", "token_type_ids"]


@pytest.fixture(scope="module")
def demo_split(demo_data_config):  # type: ignore[no-untyped-def]
    from trt_edge.tasks.data import load_data

    return load_data(demo_data_config).train


def _tokenizer(folder: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def test_draw_is_stratified_real_and_round_trips(demo_split, tiny_bert_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    recipe = CalibrationDataConfig(samples=90)
    cs = draw_calibration_set(demo_split.texts, demo_split.labels, _tokenizer(tiny_bert_dir), recipe, 32, 7, NAMES)
    assert len(cs) == 90 and cs.max_length == 32
    assert set(cs.inputs) == set(NAMES) and all(a.dtype == np.int64 for a in cs.inputs.values())
    np.testing.assert_array_equal(cs.lengths, cs.inputs["attention_mask"].sum(1))
    whole = Counter(demo_split.labels)
    drawn = Counter(cs.labels.tolist())
    for label, count in whole.items():  # class shares kept within one example
        assert abs(drawn[label] - 90 * count / len(demo_split)) <= 1.5
    assert cs.inputs["input_ids"][:, 0].tolist() == [101] * 90  # real [CLS]-prefixed text, not noise
    again = draw_calibration_set(demo_split.texts, demo_split.labels, _tokenizer(tiny_bert_dir), recipe, 32, 7,
                                 NAMES)
    np.testing.assert_array_equal(again.inputs["input_ids"], cs.inputs["input_ids"])  # seeded
    sha = cs.save(tmp_path / "calib.npz")
    assert len(sha) == 64
    with np.load(tmp_path / "calib.npz", allow_pickle=False) as raw:  # no pickled objects inside
        assert "lengths" in raw.files
    back = load_calibration_set(tmp_path / "calib.npz", NAMES, 90)
    np.testing.assert_array_equal(back.inputs["input_ids"], cs.inputs["input_ids"])
    assert back.meta["samples"] == 90
    # Buckets: each batch trimmed to the smallest bucket holding its examples; all examples served once.
    seen = 0
    for feed in back.batches(16, [8, 16], NAMES):
        width = feed["input_ids"].shape[1]
        assert width in (8, 16, 32)
        assert feed["attention_mask"].sum(1).max() <= width
        seen += feed["input_ids"].shape[0]
    assert seen == 90


def test_refusals(demo_split, tiny_bert_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tok = _tokenizer(tiny_bert_dir)
    with pytest.raises(TrtEdgeError, match="asks for 5000"):
        draw_calibration_set(demo_split.texts, demo_split.labels, tok, CalibrationDataConfig(samples=5000), 32, 0,
                             NAMES)
    cs = draw_calibration_set(demo_split.texts, demo_split.labels, tok, CalibrationDataConfig(samples=20), 16, 0,
                              ["input_ids", "attention_mask"])
    cs.save(tmp_path / "small.npz")
    with pytest.raises(TrtEdgeError, match="holds 20 examples, the recipe asks for 64"):
        load_calibration_set(tmp_path / "small.npz", ["input_ids"], 64)
    with pytest.raises(TrtEdgeError, match="missing \\['token_type_ids'\\]"):
        load_calibration_set(tmp_path / "small.npz", NAMES, 1)
    np.savez(tmp_path / "plain.npz", input_ids=np.zeros((4, 4)))
    with pytest.raises(TrtEdgeError, match="not a trt-edge calibration set"):
        load_calibration_set(tmp_path / "plain.npz", NAMES)
