"""The architecture matrix (issue 15): every encoder family the kit claims, through the whole chain.

Each family is a tiny random-weight classifier built from a config (`families.py`) with a small WordPiece
tokenizer trained here on the demo texts. It goes distill (layer subset) -> prune (2:4 + permutation) ->
export (with `--fuse-attention`) -> calibrate (TensorRT Q/DQ and CPU targets) -> build (the on-device
bundle), through the stages' own `run` functions, with parity checked at every step:

- prune: the stage proves the permutation kept the function and the masks are 2:4;
- export: the stage's parity gate (fp32 ONNX vs PyTorch) and the 2:4 pattern surviving the export;
- fuse TRT: the fused model, every plugin node expanded by `ort_reference`, vs the export:
  max |Δ| <= 1e-3 and every arg-max equal;
- fuse CPU: ONNX Runtime's Attention/MultiHeadAttention graph vs the export, same bounds;
- width: the width stage on the distilled student (half the heads and feed-forward neurons, 3/4 of the
  hidden size, one step): its ONNX has the smaller shapes (fewer bytes than the dense-shaped export) and
  passes the stage's parity gate after reloading through the width recipe;
- INT8: both calibrate targets write their artifacts and the bundle is built from the Q/DQ model.

What a family cannot do is a refusal with the reason the kit gives (`EXPECTED_REFUSALS`): a cell that
refuses without being expected, or is expected to refuse and works, fails the test. The cells are
collected and rendered into the tables of docs/export.md and docs/plugins.md (`table.py`);
`test_docs_tables_are_current` fails when the docs are stale (regenerate: `python -m tests.matrix.table`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trt_edge.modeling.families import BY_MODEL_TYPE

from . import families
from .table import CELLS, DOCS, render, replace_section

TOLERANCE = 1e-3
# The kit's own reason for each cell a family is expected not to do (a substring of it): the package's
# family table says it.
EXPECTED_REFUSALS: dict[tuple[str, str], str] = {(name, cell): reason for name in families.FAMILIES
                                                 for cell, reason in BY_MODEL_TYPE[name].refusals.items()}
# TorchScript is the fast exporter (seconds instead of half a minute each under load); the default
# (dynamo) path is what the other export tests and the MPNet benchmark use.
EXPORTER: dict[str, str] = {}
RESULTS: dict[str, dict[str, str]] = {}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """One torch thread: the tiny models are latency-bound, and threads oversubscribe a shared CI box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory, demo_data_config: Any) -> Path:
    """A 600-token WordPiece tokenizer trained on the demo texts (offline, a second)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    from trt_edge.tasks.data import load_data

    texts = load_data(demo_data_config).train.texts
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=600, special_tokens=special))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.WordPiece()
    fast = BertTokenizerFast(tokenizer_object=tok, model_max_length=128)
    out = tmp_path_factory.mktemp("matrix-tokenizer")
    fast.save_pretrained(out)
    return out


def _config(demo_data_config: Any, cache: Path, opset: int, exporter: str) -> dict[str, Any]:
    data = demo_data_config.replace(max_examples=150, train_size=64, validation_size=24, test_size=48).to_dict()
    return {
        "version": 1,
        "task": {"max_length": 32, "eval_batch_size": 32, "data": data},
        "distill": {"teacher_finetune": "never", "student": {"layers": [0, 2]}, "ablation": False,
                    "train": {"epochs": 1, "batch_size": 32, "max_steps": 2}, "cache_dir": str(cache)},
        "prune": {"train": {"epochs": 1, "batch_size": 32, "max_steps": 1}, "permutation_seconds": 0.05,
                  "cache_dir": str(cache)},
        "export": {"opset": opset, "exporter": exporter, "parity_batch_sizes": [2], "parity_sequence_lengths": [16],
                   "parity_max_examples": 8, "fuse_attention": True, "lint_trt": None},
        "calibrate": {"targets": ["tensorrt", "cpu"], "data": {"samples": 16, "length_buckets": [16, 32]},
                      "latency_runs": 0, "gate": {"budget": 100.0, "mixed_precision": False},
                      "cpu": {"candidates": ["fp32", "fused", "dynamic-int8"], "runs": 1, "budget": 100.0,
                              "calibration_samples": 16}},
    }


def _feeds(onnx_path: Path, tokenizer_dir: Path, texts: list[str]) -> list[dict[str, np.ndarray]]:
    import onnxruntime as ort
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    names = [i.name for i in ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).get_inputs()]
    feeds = []
    for batch in (texts[:4], texts[4:7]):
        enc = tokenizer(batch, padding=True, return_tensors="np")
        feeds.append({n: np.asarray(enc[n]).astype(np.int64) for n in names})
    assert any((f["attention_mask"] == 0).any() for f in feeds)  # real padding in every check
    return feeds


def _cell(family: str, cell: str, ok: bool, detail: str) -> str:
    """The table text of one cell, checked against the expected refusals."""
    expected = EXPECTED_REFUSALS.get((family, cell))
    if ok:
        assert expected is None, f"{family} {cell}: expected to refuse ({expected}) but it worked: {detail}"
        return f"yes{': ' + detail if detail else ''}"
    assert expected is not None, f"{family} {cell}: refused without being expected to: {detail}"
    assert expected in detail, f"{family} {cell}: refused for another reason than {expected!r}: {detail}"
    return f"no: {expected}"


def _short(reasons: list[dict[str, str]]) -> str:
    return "; ".join(sorted({r["reason"] for r in reasons}))


@pytest.mark.parametrize("family", families.FAMILIES)
def test_family_through_the_chain(family: str, tokenizer_dir: Path, demo_data_config: Any, cache_dir: Path,
                                  tmp_path: Path) -> None:
    import onnx

    from trt_edge.config import RunConfig
    from trt_edge.distill.stage import run as distill
    from trt_edge.engine.stage import run as build
    from trt_edge.errors import TrtEdgeError
    from trt_edge.export.stage import run as export
    from trt_edge.onnxgraph.runtime import compare_models
    from trt_edge.plugins.ort_reference import expand_fused_attention
    from trt_edge.quantize.ort_attention import fuse_attention_ort
    from trt_edge.quantize.stage import run as calibrate
    from trt_edge.sparsity.onnx_check import check_onnx_sparsity
    from trt_edge.sparsity.stage import run as prune
    from trt_edge.sparsity.width_stage import run as width_prune

    if family not in families.available():
        pytest.fail(f"{family}: the installed transformers has no {families.CLASSES[family]} (upgrade it)")
    teacher = families.build(family, tokenizer_dir, tmp_path / "teacher")
    cells: dict[str, str] = {}
    opset = 17
    raw = _config(demo_data_config, cache_dir, opset, EXPORTER.get(family, "torchscript"))
    raw["distill"]["teacher"] = str(teacher)
    distilled = distill(RunConfig(raw), tmp_path / "distill")
    assert distilled.metrics["student_layers"] == [0, 2]

    pruned = prune(RunConfig(raw), tmp_path / "distill", tmp_path / "prune")
    m = pruned.metrics
    assert m["sparse_layers"] > 0 and m["permutation_max_output_change"] <= 1e-4
    kinds = sorted({v["input_channels_permuted"] for v in m["layers"].values() if v["input_channels_permuted"]})
    if m["permuted_layers"]:
        cells["permute"] = _cell(family, "permute", True, " + ".join(
            {"ffn": "FFN in->out", "value": "V->O"}.get(k, k) for k in kinds))
    else:
        cells["permute"] = _cell(family, "permute", False, json.dumps(m["permutation_skipped"]))
    cells["sparse_2_4"] = _cell(family, "sparse_2_4", True, f"{m['sparse_layers']} Linear layers")

    try:
        exported = export(RunConfig(raw), tmp_path / "prune", tmp_path / "export")
        cells["export"] = _cell(family, "export", True, "" if opset == 17 else f"opset {opset}")
    except TrtEdgeError as exc:
        if "use export.opset=18" not in str(exc):
            raise
        opset = 18  # ModernBERT's dynamo export has a Split that opset 17 cannot express
        raw["export"]["opset"] = opset
        exported = export(RunConfig(raw), tmp_path / "prune", tmp_path / "export")
        cells["export"] = _cell(family, "export", True, f"opset {opset} (17 refused)")
    e = exported.metrics
    assert e["max_abs_diff"] <= 1e-4 and e["argmax_agreement"] == 1.0
    onnx_path = tmp_path / "export" / "model.onnx"
    assert check_onnx_sparsity(onnx_path, tmp_path / "export" / "sparsity.json").ok

    # Width pruning from the distilled student, exported with the settings the export stage settled on.
    raw["width"] = {"keep_heads": 0.5, "keep_ffn": 0.5, "keep_hidden": 0.75, "steps": 1, "calibration_samples": 16,
                    "train": {"epochs": 1, "batch_size": 32, "max_steps": 1}, "cache_dir": str(cache_dir)}
    width = width_prune(RunConfig(raw), tmp_path / "distill", tmp_path / "width").metrics
    dense, narrow = width["dense_structure"], width["structure"]
    assert all(narrow[key] < dense[key] for key in ("heads", "ffn", "hidden")), (dense, narrow)
    assert width["onnx_bytes"] < e["onnx_bytes"] and width["parity_max_abs_diff"] <= 1e-4, width
    cells["width"] = _cell(family, "width", True, " · ".join(
        f"{label} {dense[key]}→{narrow[key]}" for key, label in (("heads", "heads"), ("ffn", "FFN"),
                                                                 ("hidden", "hidden"))))

    # Fused for TensorRT: the plugin nodes expanded by the CPU reference, against the export.
    feeds = _feeds(onnx_path, tokenizer_dir, ["I love this!", "the bus never came and it rained all day",
                                              "ok", "not sure about the update", "great", "meh, fine I guess",
                                              "worst service ever"])
    fusion = e["fuse_attention"]
    original = onnx.load(str(onnx_path))
    if fusion["fused_layers"]:
        fused = onnx.load(str(tmp_path / "export" / "model.fused.onnx"))
        figures = compare_models(original, expand_fused_attention(fused), feeds)
        assert figures["max_abs_diff"] <= TOLERANCE and figures["argmax_agreement"] == 1.0, figures
        assert not fusion["unfused"], fusion["unfused"]
        bias = any(layer["has_bias"] for layer in fusion["layers"])
        cells["fuse_trt"] = _cell(family, "fuse_trt", True, f"{len(fusion['fused_layers'])}/2 layers"
                                  + (", with position bias" if bias else ""))
    else:
        assert "exported" not in fusion and "onnx_fused" not in exported.artifacts
        cells["fuse_trt"] = _cell(family, "fuse_trt", False, _short(fusion["unfused"]))

    # Fused for the CPU: ONNX Runtime's attention ops, against the export.
    try:
        cpu_fused, report = fuse_attention_ort(original, feeds)
        figures = compare_models(original, cpu_fused, feeds)
        assert figures["max_abs_diff"] <= TOLERANCE and figures["argmax_agreement"] == 1.0, figures
        cells["fuse_cpu"] = _cell(family, "fuse_cpu", True, report.summary())
    except TrtEdgeError as exc:
        cells["fuse_cpu"] = _cell(family, "fuse_cpu", False, str(exc))

    # INT8 for both targets, then the on-device bundle from the Q/DQ model.
    calibrated = calibrate(RunConfig(raw), tmp_path / "export", tmp_path / "calibrate")
    assert {"onnx", "onnx_cpu"} <= set(calibrated.artifacts)
    candidates = {c["name"]: c for c in calibrated.metrics["cpu_candidates"]}
    if cells["fuse_cpu"].startswith("yes"):
        assert candidates["fused"]["path"] and "Attention" in candidates["fused"]["note"]
    bundle = build(RunConfig({"build": {"precision": "int8-qdq"}}), tmp_path / "calibrate" / "model.int8.onnx",
                   tmp_path / "build", bundle=True, tokenizer=str(tokenizer_dir))
    assert "bundle" in bundle.artifacts
    cells["int8"] = _cell(family, "int8", True, "Q/DQ (TensorRT) + CPU artifact, bundle built")
    assert set(cells) == set(CELLS)
    RESULTS[family] = cells


def test_docs_tables_are_current() -> None:
    """The matrix in the docs is the one these tests produced (regenerate: `python -m tests.matrix.table`)."""
    missing = [f for f in families.FAMILIES if f not in RESULTS]
    if missing:
        pytest.skip(f"the matrix did not run for {missing} in this session (run the whole module)")
    table = render(RESULTS)
    stale = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        updated = replace_section(text, table)
        if updated != text:
            if os.environ.get("TRT_EDGE_WRITE_MATRIX") == "1":
                doc.write_text(updated, encoding="utf-8")
            else:
                stale.append(doc.name)
    assert not stale, f"the architecture matrix in {stale} is stale: run `python -m tests.matrix.table`"
