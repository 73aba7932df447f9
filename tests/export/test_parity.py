"""Parity: every shape of the grid and the split are compared; a planted logit offset fails the gate with
the figures and says where; a clean export passes at the fp32 default tolerance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from trt_edge.errors import GateError
from trt_edge.export.exporter import load_for_export
from trt_edge.export.parity import check, parity_cases, run_parity

TEXTS = ["I love it", "this is the worst", "meeting at noon", "so so", "great game last night!!",
         "nothing to say", "why does this keep happening", "fine"]
NAMES = ["input_ids", "attention_mask", "token_type_ids"]


def test_cases_cover_the_split_and_the_grid(tiny_bert_dir: Path) -> None:
    loaded = load_for_export(tiny_bert_dir)
    cases = parity_cases(loaded.tokenizer, TEXTS, NAMES, max_length=32, batch_size=3, batch_sizes=[1, 4],
                         sequence_lengths=[8, 40])
    split = [c for c in cases if not c.grid]
    grid = [c for c in cases if c.grid]
    assert sorted(i for c in split for i in c.example_ids) == list(range(len(TEXTS)))
    assert [c.feeds["input_ids"].shape for c in grid] == [(1, 8), (1, 40), (4, 8), (4, 40)]
    for case in cases:
        assert set(case.feeds) == set(NAMES)
        assert all(v.dtype == np.int64 for v in case.feeds.values())


def test_clean_export_passes_the_default_gate(tiny_bert_dir: Path, tiny_bert_onnx: Path) -> None:
    loaded = load_for_export(tiny_bert_dir)
    cases = parity_cases(loaded.tokenizer, TEXTS, NAMES, max_length=32, batch_size=4)
    report = run_parity(loaded.model, tiny_bert_onnx, cases, TEXTS)
    check(report, atol=1e-4, rtol=None, min_argmax_agreement=1.0)
    assert report.examples == len(TEXTS)
    assert report.argmax_agreement == 1.0
    assert 0 <= report.max_abs_diff < 1e-5
    assert {(s["batch"], s["sequence"]) for s in report.shapes if s["grid"]} == {(1, 16), (1, 128), (8, 16), (8, 128)}


def test_a_planted_offset_fails_with_figures(tiny_bert_dir: Path, tiny_bert_onnx: Path, tmp_path: Path) -> None:
    model = onnx.load(str(tiny_bert_onnx))
    bias = next(t for t in model.graph.initializer
                if numpy_helper.to_array(t).shape == (3,) and numpy_helper.to_array(t).dtype == np.float32)
    value = numpy_helper.to_array(bias).copy()
    value[1] += 0.01
    bias.CopyFrom(numpy_helper.from_array(value, bias.name))
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    loaded = load_for_export(tiny_bert_dir)
    cases = parity_cases(loaded.tokenizer, TEXTS, NAMES, max_length=32, batch_size=4, batch_sizes=[2],
                         sequence_lengths=[16])
    report = run_parity(loaded.model, bad, cases, TEXTS)
    assert report.max_abs_diff == pytest.approx(0.01, rel=1e-3)
    assert report.worst["class"] == 1
    with pytest.raises(GateError) as err:
        check(report, atol=1e-4, rtol=None, min_argmax_agreement=0.0)
    message = str(err.value)
    assert "max |logit diff| 0.01 > atol 0.0001" in message and "example" in message and "\n" not in message
    assert err.value.exit_code == 1
    assert err.value.figures["max_abs_diff"] == pytest.approx(0.01, rel=1e-3)
    check(report, atol=0.02, rtol=None, min_argmax_agreement=0.0)  # a looser tolerance holds
