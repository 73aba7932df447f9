"""Width pruning: structure found in every family, real slicing that keeps the kept function, a folder that
reloads, the stage end to end (smaller ONNX shapes, parity, lint, 2:4 after it), target mode, bad configs."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from trt_edge.config import RunConfig
from trt_edge.modeling import recipe as R
from trt_edge.sparsity import width as W
from trt_edge.stage import StageRecord, read_stage, stage_artifact

FAMILIES = ("bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "deberta-v2", "deberta-v3", "albert", "modernbert",
            "vit")


def _tiny(kind: str) -> Any:
    import transformers as T

    torch.manual_seed(0)
    common = {"num_labels": 3}
    if kind == "bert":
        return T.BertForSequenceClassification(T.BertConfig(
            vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
            **common)).eval()
    if kind == "roberta":
        return T.RobertaForSequenceClassification(T.RobertaConfig(
            vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
            max_position_embeddings=130, **common)).eval()
    if kind == "xlm-roberta":
        return T.XLMRobertaForSequenceClassification(T.XLMRobertaConfig(
            vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
            max_position_embeddings=130, **common)).eval()
    if kind in ("deberta-v2", "deberta-v3"):
        # v2 layout: own position projections per block (pos_key_proj, pos_query_proj beside Q/K/V); v3
        # layout (the released v3 checkpoints): Q and K shared with the positions, LayerNorm on the
        # relative embeddings.
        v3 = kind == "deberta-v3"
        return T.DebertaV2ForSequenceClassification(T.DebertaV2Config(
            vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
            relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=16, max_relative_positions=32,
            position_biased_input=False, share_att_key=v3, norm_rel_ebd="layer_norm" if v3 else "none",
            **common)).eval()
    if kind == "albert":  # one block's weights applied at every depth; embeddings 32 wide, projected to 64
        return T.AlbertForSequenceClassification(T.AlbertConfig(
            vocab_size=100, embedding_size=32, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=128, **common)).eval()
    if kind == "modernbert":  # fused Wqkv, a gated feed-forward (Wi holds input and gate), rotary positions
        return T.ModernBertForSequenceClassification(T.ModernBertConfig(
            vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
            max_position_embeddings=130, local_attention=8, global_attn_every_n_layers=2, pad_token_id=0,
            bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2, **common)).eval()
    if kind == "distilbert":
        return T.DistilBertForSequenceClassification(T.DistilBertConfig(
            vocab_size=100, dim=64, n_layers=2, n_heads=4, hidden_dim=128, **common)).eval()
    if kind == "mpnet":
        return T.MPNetForSequenceClassification(T.MPNetConfig(
            vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
            **common)).eval()
    if kind == "electra":  # an embedding projection [32 -> 64] writes the stream
        return T.ElectraForSequenceClassification(T.ElectraConfig(
            vocab_size=100, embedding_size=32, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=128, **common)).eval()
    if kind == "electra-tied":  # embeddings as wide as the stream: ELECTRA then builds no projection
        return T.ElectraForSequenceClassification(T.ElectraConfig(
            vocab_size=100, embedding_size=64, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=128, **common)).eval()
    if kind == "deit":  # a distillation token and two heads reading the stream
        return T.DeiTForImageClassificationWithTeacher(T.DeiTConfig(
            image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=128, **common)).eval()
    return T.ViTForImageClassification(T.ViTConfig(
        image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, **common)).eval()


def _batch(kind: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    if kind in ("vit", "deit"):
        return {"pixel_values": torch.randn(2, 3, 32, 32, generator=g)}
    return {"input_ids": torch.randint(5, 100, (2, 12), generator=g),
            "attention_mask": torch.tensor([[1] * 12, [1] * 8 + [0] * 4])}


class _NoTokenizer:
    def save_pretrained(self, folder: Path) -> None:
        pass


@pytest.mark.parametrize("kind", FAMILIES)
def test_heads_and_neurons_are_removed_for_real_and_the_rest_is_unchanged(kind: str, tmp_path: Path) -> None:
    import transformers as T

    model = _tiny(kind)
    batch = _batch(kind)
    structure = W.find_blocks(model)
    assert len(structure.blocks) == (1 if kind == "albert" else 2)
    assert (structure.heads, structure.head_dim, structure.ffn) == (4, 16, 128)
    assert structure.head_tables == (["mpnet.encoder.relative_attention_bias"] if kind == "mpnet" else [])
    extra = ("pos_key_proj", "pos_query_proj") if kind == "deberta-v2" else ()
    assert all(tuple(n.rsplit(".", 1)[1] for n in b.extra) == extra for b in structure.blocks)
    importance = W.activation_importance(model, structure, [batch])
    assert all(h.shape == (4,) and bool((h > 0).all()) for h in importance.heads)
    plan = W.plan_width(structure, importance, 2, 64)
    # The reference: the same model with the dropped heads' and neurons' contributions zeroed.
    reference = copy.deepcopy(model)
    modules = dict(reference.named_modules())
    with torch.no_grad():
        for block, heads, neurons in zip(structure.blocks, plan.heads, plan.neurons, strict=True):
            for h in set(range(block.heads)) - set(heads):
                modules[block.out].weight[:, h * block.head_dim:(h + 1) * block.head_dim] = 0
            modules[block.down].weight[:, sorted(set(range(block.ffn)) - set(neurons))] = 0
    shrunk = W.shrink_(model, structure, plan)
    assert (shrunk.heads, shrunk.ffn) == (2, 64)
    names = dict(model.named_modules())
    for block in shrunk.blocks:
        assert (block.qkv_chunks, block.up_chunks) == ((3, 2) if kind == "modernbert" else (1, 1))
        assert all(tuple(names[q].weight.shape) == (32 * block.qkv_chunks, 64) for q in block.qkv)
        assert all(tuple(names[q].weight.shape) == (32, 64) for q in block.extra)
        assert tuple(names[block.out].weight.shape) == (64, 32)
        assert tuple(names[block.up].weight.shape) == (64 * block.up_chunks, 64)
        assert tuple(names[block.down].weight.shape) == (64, 64)
    with torch.no_grad():
        expected, got = reference(**batch).logits, model(**batch).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    recipe = R.save_pruned(model, _NoTokenizer(), tmp_path)
    config = T.AutoConfig.from_pretrained(tmp_path)
    cls = T.AutoModelForImageClassification if kind == "vit" else T.AutoModelForSequenceClassification
    if kind == "vit":  # ViT builds its attention from config.head_dim: plain from_pretrained reloads it
        assert recipe == {} and R.width_recipe(config) is None and config.num_attention_heads == 2
        reloaded = cls.from_pretrained(tmp_path).eval()
    else:  # the head size derives from hidden_size / num_attention_heads: the recipe rebuilds the shapes
        assert recipe and R.width_recipe(config) == recipe
        reloaded, info = R.load_pruned(tmp_path, config, cls)
        assert info["missing_keys"] == [] and info["mismatched_keys"] == []
    ffn_key = "hidden_dim" if kind == "distilbert" else "intermediate_size"
    assert getattr(config, ffn_key) == 64
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, got, atol=1e-6, rtol=1e-6)


# What reads the stream after the last block (its input columns go) and what writes it before the first
# (its rows go); everything else outside the blocks keeps its width.
STREAM = {"bert": ([], ["bert.pooler.dense"]), "roberta": ([], ["classifier.dense"]),
          "xlm-roberta": ([], ["classifier.dense"]), "deberta-v2": ([], ["pooler.dense"]),
          "deberta-v3": ([], ["pooler.dense"]),
          "albert": (["albert.encoder.embedding_hidden_mapping_in"], ["albert.pooler"]),
          "modernbert": ([], ["head.dense"]),
          "distilbert": ([], ["pre_classifier"]), "mpnet": ([], ["classifier.dense"]), "vit": ([], ["classifier"]),
          "electra": (["electra.embeddings_project"], ["classifier.dense"]),
          "electra-tied": ([], ["classifier.dense"]),
          "deit": ([], ["cls_classifier", "distillation_classifier"])}
# Parameters whose output side is the head's own space (they keep the old width 64 on purpose).
HEAD_SPACE = ("bert.pooler", "albert.pooler", "pooler.", "head.", "classifier", "pre_classifier", "cls_classifier",
              "distillation_classifier")


@pytest.mark.parametrize("kind", [*FAMILIES, "electra", "electra-tied", "deit"])
def test_hidden_size_is_removed_everywhere_the_stream_lives_and_reloads(kind: str, tmp_path: Path) -> None:
    import transformers as T

    model = _tiny(kind)
    batch = _batch(kind)
    structure = W.find_blocks(model)
    assert structure.hidden == 64
    importance = W.activation_importance(model, structure, [batch], hidden=True)
    assert importance.hidden is not None and importance.hidden.shape == (64,) and bool((importance.hidden > 0).all())
    assert importance.trace is not None and (importance.trace.writers, importance.trace.readers) == STREAM[kind]
    keep = W.round_hidden(64, 0.6, W.hidden_multiple(model))
    assert keep == 40  # 38.4 rounded up to a multiple of 8 (4 heads divide it)
    W.check_hidden_shrink(model, structure, importance, batch, keep)
    shrunk = W.shrink_(model, structure, W.plan_width(structure, importance, 2, 96, keep))
    assert (shrunk.hidden, shrunk.heads, shrunk.ffn) == (40, 2, 96)
    # Nothing outside the head's own space is 64 wide any more: embeddings, position tables, [CLS],
    # patch projection, every LayerNorm, every block's inputs and outputs.
    left = [(n, tuple(p.shape)) for n, p in model.named_parameters()
            if 64 in p.shape and not n.startswith(HEAD_SPACE)]
    assert left == [] or (kind in ("electra", "albert") and all(".embeddings." in n and 32 in s for n, s in left))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(tuple(m.normalized_shape) in ((40,), (32,)) for m in norms if m is not getattr(
        getattr(model, "head", None), "norm", None))  # ModernBERT's head norm is the head's own space
    assert importance.trace.head_norms == (["head.norm"] if kind == "modernbert" else [])
    config_key = "dim" if kind == "distilbert" else "hidden_size"
    assert getattr(model.config, config_key) == 40
    if kind == "electra-tied":  # the sliced embeddings' width must be said too, or the reload builds a projection
        assert model.config.embedding_size == 40
    with torch.no_grad():
        got = model(**batch).logits
    assert got.shape == (2, 3) and bool(torch.isfinite(got).all())
    recipe = R.save_pruned(model, _NoTokenizer(), tmp_path)
    config = T.AutoConfig.from_pretrained(tmp_path)
    cls = T.AutoModelForImageClassification if kind in ("vit", "deit") else T.AutoModelForSequenceClassification
    if kind in ("vit", "deit"):
        assert recipe == {}
        reloaded = cls.from_pretrained(tmp_path).eval() if kind == "vit" else \
            T.DeiTForImageClassificationWithTeacher.from_pretrained(tmp_path).eval()
    else:
        assert recipe["format"] == R.WIDTH_FORMAT
        reloaded, info = R.load_pruned(tmp_path, config, cls)
        assert info["missing_keys"] == [] and info["mismatched_keys"] == []
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, got, atol=1e-6, rtol=1e-6)


def test_a_stream_reader_the_trace_cannot_see_is_refused_before_any_work() -> None:
    import transformers as T

    from trt_edge.errors import TrtEdgeError

    torch.manual_seed(0)
    model = T.Dinov2ForImageClassification(T.Dinov2Config(  # its head reads [CLS] concatenated with the mean
        image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2,
        num_labels=3)).eval()
    batch = _batch("vit")
    structure = W.find_blocks(model)
    importance = W.activation_importance(model, structure, [batch], hidden=True)
    with pytest.raises(TrtEdgeError, match=r"does not support Dinov2ForImageClassification .*keep_hidden"):
        W.check_hidden_shrink(model, structure, importance, batch, 32)
    assert structure.hidden == 64 and W.find_blocks(model).hidden == 64  # the model itself is untouched


def test_hidden_sizes_stay_multiples_of_eight_and_of_the_head_count() -> None:
    import transformers as T

    assert W.round_hidden(384, 0.75, 24) == 288 and W.round_hidden(384, 0.5, 24) == 192
    assert W.round_hidden(384, 0.6, 24) == 240 and W.round_hidden(64, 0.01, 8) == 8
    assert W.round_hidden(100, 1.0, 8) == 100 and W.round_hidden(100, 0.99, 8) == 100
    bert12 = T.BertForSequenceClassification(T.BertConfig(vocab_size=50, hidden_size=96, num_hidden_layers=1,
                                                          num_attention_heads=12, intermediate_size=32))
    vit12 = T.ViTForImageClassification(T.ViTConfig(image_size=16, patch_size=8, hidden_size=96,
                                                     num_hidden_layers=1, num_attention_heads=12,
                                                     intermediate_size=32))
    assert W.hidden_multiple(bert12) == 24  # BERT refuses a hidden size its 12 heads do not divide
    assert W.hidden_multiple(vit12) == 8  # ViT reads head_dim


def _head_pruned_bert(folder: Path) -> W.Structure:
    """A tiny BERT with half its heads and half its feed-forward neurons removed, saved with its recipe."""
    model = _tiny("bert")
    structure = W.find_blocks(model)
    W.shrink_(model, structure, W.plan_width(structure, W.activation_importance(model, structure, [_batch("bert")]),
                                             2, 64))
    R.save_pruned(model, _NoTokenizer(), folder)
    return structure


def test_plain_from_pretrained_refuses_a_recipe_folder_instead_of_loading_it_wrong(tmp_path: Path) -> None:
    import transformers as T

    _head_pruned_bert(tmp_path)
    with pytest.raises(Exception, match=r"(?i)size|shape"):
        T.AutoModelForSequenceClassification.from_pretrained(tmp_path)


def test_an_edited_recipe_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    import transformers as T
    from safetensors.torch import load_file, save_file

    from trt_edge.errors import TrtEdgeError

    structure = _head_pruned_bert(tmp_path)
    config = T.AutoConfig.from_pretrained(tmp_path)
    R.load_pruned(tmp_path, config, T.AutoModelForSequenceClassification)  # as saved: loads
    state = load_file(str(tmp_path / "model.safetensors"))
    key = structure.blocks[0].qkv[0] + ".weight"
    state[key] = torch.zeros(64, 64)  # the dense width back in one projection
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(TrtEdgeError, match=r"do not match the width recorded in config.json .*query.*edited"):
        R.load_pruned(tmp_path, config, T.AutoModelForSequenceClassification)
    del state[key]
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(TrtEdgeError, match=r"weights missing from model.safetensors: .*query"):
        R.load_pruned(tmp_path, config, T.AutoModelForSequenceClassification)


def test_widths_stay_multiples_of_eight() -> None:
    assert W.round_heads(12, 32, 0.5) == 6 and W.round_heads(12, 32, 0.01) == 1
    assert W.round_heads(4, 4, 0.25) == 2  # 1 head of 4 channels is not a multiple of 8: 2 heads are kept
    assert W.round_heads(3, 4, 0.1) == 2
    assert W.round_ffn(1536, 0.5) == 768 and W.round_ffn(1536, 0.3) == 464 and W.round_ffn(1536, 0.001) == 8
    assert W.round_ffn(100, 0.99) == 100  # never more than there is
    for f in (0.1, 0.33, 0.5, 0.77):
        assert W.round_ffn(1536, f) % 8 == 0


def test_a_model_without_the_usual_structure_is_refused_in_one_line() -> None:
    import transformers as T

    from trt_edge.errors import TrtEdgeError

    model = _tiny("bert")
    model.bert.encoder.layer[1].attention.self.key = torch.nn.Linear(64, 48)
    with pytest.raises(TrtEdgeError, match=r"block 1.*no attention found"):
        W.find_blocks(model)
    albert = T.AlbertForSequenceClassification(T.AlbertConfig(  # two groups of shared blocks: two widths
        vocab_size=100, hidden_size=64, num_hidden_layers=4, num_attention_heads=2, intermediate_size=128,
        embedding_size=32, num_hidden_groups=2))
    with pytest.raises(TrtEdgeError, match=r"num_hidden_groups: 2.*one shared group"):
        W.find_blocks(albert)


# ----- the stage end to end on the tiny BERT (hidden 32, 4 heads of 8, feed-forward 64) -----

@pytest.fixture(scope="module")
def distill_like(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("width-input")
    shutil.copytree(tiny_bert_dir, root / "model")
    shutil.copytree(tiny_bert_dir, root / "teacher")  # a stand-in teacher with a head for these labels
    StageRecord(stage="distill", config={}, artifacts={"model": "model", "teacher": "teacher"}).write(root)
    return root


def _config(demo_data_config: Any, **width: Any) -> RunConfig:
    return RunConfig({
        "task": {"data": demo_data_config.to_dict(), "max_length": 24, "eval_batch_size": 128},
        "width": {"keep_heads": 0.5, "keep_ffn": 0.5, "steps": 2, "calibration_samples": 64,
                  "train": {"epochs": 1, "batch_size": 32, "max_steps": 3, "learning_rate": 1e-3}, **width},
        "export": {"exporter": "torchscript", "parity_batch_sizes": [1, 4], "parity_sequence_lengths": [16]},
        "prune": {"permutation_seconds": 0.2, "train": {"epochs": 1, "max_steps": 2}},
    })


@pytest.fixture(scope="module")
def width_run(tmp_path_factory: pytest.TempPathFactory, distill_like: Path, demo_data_config: Any,
              cache_dir: Path) -> tuple[Path, RunConfig]:
    from trt_edge.sparsity.width_stage import run

    config = _config(demo_data_config)
    out = tmp_path_factory.mktemp("width-stage") / "width"
    run(config, distill_like, out)
    return out, config


def _initializer_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    return {i.name: tuple(numpy_helper.to_array(i).shape) for i in model.graph.initializer}


def test_stage_removes_heads_and_neurons_and_recovers_in_steps(width_run: tuple[Path, RunConfig]) -> None:
    out, _ = width_run
    record = read_stage(out, "width")
    m = record["metrics"]
    assert m["dense_structure"]["heads"] == 4 and m["dense_structure"]["ffn"] == 64
    assert m["structure"]["heads"] == 2 and m["structure"]["ffn"] == 32 and m["structure"]["attention_width"] == 16
    assert [s["heads"] for s in m["steps"]] == [3, 2] and [s["ffn"] for s in m["steps"]] == [48, 32]
    assert all(s["recovery"]["steps"] == 3 and s["recovery"]["distilled"] for s in m["steps"])
    assert m["params"] < m["dense_params"] and 0 <= m["width_accuracy"] <= 1
    assert set(record["artifacts"]) == {"model", "onnx", "teacher", "predictions"}
    assert (out / "teacher" / "config.json").is_file()
    # The gate is paired on the test examples (the pipeline rejudges it; the report lists it) and the
    # predictions it was judged on are saved with the stage.
    gate = m["gate"]
    assert gate["gate"] == "width" and gate["n"] == len(np.load(out / "test_predictions.npz")["labels"])
    assert abs(gate["drop_points"] - 100 * (m["dense_accuracy"] - m["width_accuracy"])) < 1e-6
    lo, hi = gate["interval_points"]
    assert lo <= gate["drop_points"] <= hi
    assert m["parity_max_abs_diff"] < 1e-4


def test_the_pruned_onnx_has_smaller_shapes_not_zeros(width_run: tuple[Path, RunConfig]) -> None:
    import onnx
    from onnx import numpy_helper

    out, _ = width_run
    path = stage_artifact(out, "onnx")
    model = onnx.load(str(path))
    weights = [numpy_helper.to_array(i) for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT]
    matrices = [w for w in weights if w.ndim == 2 and min(w.shape) > 3 and max(w.shape) < 1000]
    shapes = sorted({tuple(sorted(w.shape)) for w in matrices})
    # Q/K/V [32 -> 16] and output [16 -> 32]; feed-forward [32 -> 32] both ways; no [32, 64] left.
    assert (16, 32) in shapes and (32, 32) in shapes and (32, 64) not in shapes, shapes
    assert all(bool(np.abs(w).sum(axis=1).min() > 0) for w in matrices), "an all-zero row: masked, not removed"


def test_export_stage_parity_and_lint_then_2_4_then_checker(width_run: tuple[Path, RunConfig],
                                                             tmp_path: Path) -> None:
    from trt_edge.export.stage import run as export_run
    from trt_edge.sparsity.onnx_check import check_onnx_sparsity
    from trt_edge.sparsity.stage import run as prune_run

    out, config = width_run
    exported = export_run(config, out, tmp_path / "export-width").metrics
    assert exported["max_abs_diff"] < 1e-4 and exported["argmax_agreement"] == 1.0
    assert exported["lint"]["errors"] == 0 and exported["lint"]["attention_blocks"] == 2
    # 2:4 on the width-pruned model: the prune stage reads the width folder like a distill folder.
    pruned = prune_run(config, out, tmp_path / "prune").metrics
    assert pruned["dense_accuracy"] == pytest.approx(read_stage(out)["metrics"]["width_accuracy"])
    assert pruned["checker_pass_rate"] == 1.0 and pruned["sparse_layers"] == 12
    export_run(config, tmp_path / "prune", tmp_path / "export")
    onnx_path = stage_artifact(tmp_path / "export", "onnx")
    report = check_onnx_sparsity(onnx_path, stage_artifact(tmp_path / "prune", "model"))
    assert report.ok and report.expected_pass_rate() == 1.0
    shapes = set(_initializer_shapes(onnx_path).values())
    assert not any(64 in s for s in shapes if len(s) == 2 and 32 in s)  # still the narrow model


@pytest.fixture(scope="module")
def hidden_run(tmp_path_factory: pytest.TempPathFactory, distill_like: Path, demo_data_config: Any,
               cache_dir: Path) -> tuple[Path, RunConfig]:
    from trt_edge.sparsity.width_stage import run

    config = _config(demo_data_config, keep_ffn=0.75, keep_hidden=0.5)
    out = tmp_path_factory.mktemp("width-hidden") / "width"
    run(config, distill_like, out)
    return out, config


def test_stage_prunes_the_hidden_size_in_steps_then_export_2_4_and_checker(hidden_run: tuple[Path, RunConfig],
                                                                          tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    from trt_edge.export.stage import run as export_run
    from trt_edge.sparsity.onnx_check import check_onnx_sparsity
    from trt_edge.sparsity.stage import run as prune_run

    out, config = hidden_run
    m = read_stage(out, "width")["metrics"]
    assert m["dense_structure"]["hidden"] == 32 and m["structure"]["hidden"] == 16 and m["keep_hidden"] == 0.5
    assert [(s["heads"], s["ffn"], s["hidden"]) for s in m["steps"]] == [(3, 56, 24), (2, 48, 16)]
    assert all(s["hidden_readers"] == ["bert.pooler.dense"] and s["recovery"]["distilled"] for s in m["steps"])
    assert m["parity_max_abs_diff"] < 1e-4 and m["config_reload"].startswith("trt_edge_width")
    model = onnx.load(str(stage_artifact(out, "onnx")))
    weights = [numpy_helper.to_array(i) for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT]
    shapes = {tuple(sorted(w.shape)) for w in weights if w.ndim == 2 and min(w.shape) > 3 and max(w.shape) < 1000}
    # Q/K/V and output [16 x 16], feed-forward [16 x 48], position table [128 x 16]; the pooler reads 16
    # and keeps its own 32.
    assert shapes == {(16, 16), (16, 48), (16, 128), (16, 32)}, shapes
    vocab = [w for w in weights if w.ndim == 2 and w.shape[0] > 1000]
    assert vocab and all(w.shape[1] == 16 for w in vocab)  # the word embeddings lost channels too
    exported = export_run(config, out, tmp_path / "export-width").metrics
    assert exported["max_abs_diff"] < 1e-4 and exported["lint"]["errors"] == 0
    pruned = prune_run(config, out, tmp_path / "prune").metrics
    assert pruned["checker_pass_rate"] == 1.0 and pruned["sparse_layers"] == 12
    export_run(config, tmp_path / "prune", tmp_path / "export")
    report = check_onnx_sparsity(stage_artifact(tmp_path / "export", "onnx"),
                                 stage_artifact(tmp_path / "prune", "model"))
    assert report.ok and report.expected_pass_rate() == 1.0


def test_recovery_adds_the_transfer_set_in_both_prune_methods(distill_like: Path, demo_data_config: Any,
                                                               tmp_path: Path, cache_dir: Path) -> None:
    """Width and 2:4 recovery train on the labelled split plus the transfer set (teacher logits only), as
    distill does; the transfer source is one of the stage's input hashes."""
    from trt_edge.sparsity.stage import run as prune_run
    from trt_edge.sparsity.width_stage import run

    train = {"epochs": 1, "batch_size": 32, "learning_rate": 1e-3}
    transfer = {"source": "unused", "max_examples": 50}
    config = _config(demo_data_config, steps=1, train=train, transfer=transfer)
    config.raw["prune"] = {"permutation_seconds": 0.2, "train": train, "transfer": transfer}
    record = run(config, distill_like, tmp_path / "w")
    m = record.metrics
    assert m["transfer"]["examples"] == 50 and "transfer" in record.inputs
    assert m["steps"][0]["recovery"]["steps"] == -(-(800 + 50) // 32)  # labelled + transfer, one epoch
    pruned = prune_run(config, tmp_path / "w", tmp_path / "p")
    assert pruned.metrics["transfer"]["examples"] == 50 and "transfer" in pruned.inputs
    assert pruned.metrics["recovery"]["steps"] == -(-(800 + 50) // 32)
    without = _config(demo_data_config, steps=1, train=train)
    assert run(without, distill_like, tmp_path / "w0").metrics["steps"][0]["recovery"]["steps"] == -(-800 // 32)


def test_target_mode_picks_by_measured_latency(distill_like: Path, demo_data_config: Any, tmp_path: Path,
                                               cache_dir: Path) -> None:
    from trt_edge.sparsity.width_stage import run

    config = _config(demo_data_config, target_speedup=1000.0, target_shapes=[[1, 16]], target_rounds=1,
                     candidates=[[1.0, 1.0], [0.5, 0.5], [0.5, 0.25], [0.5, 0.5, 0.5]], steps=1, recover=False)
    m = run(config, distill_like, tmp_path / "w").metrics
    target = m["target"]
    assert target["target_met"] is False  # nothing is 1000x faster than itself
    table = target["candidates"]
    assert [(c["heads"], c["ffn"], c["hidden"]) for c in table] == [(4, 64, 32), (2, 32, 32), (2, 16, 32),
                                                                      (2, 32, 16)]
    assert table[-1]["label"].endswith("hidden 16/32")
    best = max(table, key=lambda c: c["slowest"])
    assert target["chosen"] == best["label"]
    assert (m["structure"]["heads"], m["structure"]["ffn"], m["structure"]["hidden"]) == \
        (best["heads"], best["ffn"], best["hidden"])
    assert all(c["slowest"] > 0 for c in table)


ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


@pytest.mark.parametrize(("args", "message"), [
    (("--method", "widht"), "unknown prune method 'widht' (did you mean 'width'?)"),
    (("--method", "width", "--width.keep_heads=0"), "width: keep_heads must be in (0, 1]"),
    (("--method", "width", "--keep_fnn=0.5"), "did you mean 'keep_ffn'"),
    (("--method", "width", "--width.keep_hidden=1.5"), "width: keep_hidden must be in (0, 1]"),
    (("--method", "width", "--target_speedup=3"), "relative to the teacher"),
])
def test_bad_width_configs_are_refused_in_one_line(args: tuple[str, ...], message: str, tiny_bert_dir: Path,
                                                   tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "trt_edge", "prune", "--model", str(tiny_bert_dir),
                             "--out", str(tmp_path / "o"), *args], capture_output=True, text=True, env=ENV,
                            timeout=300)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("trt-edge: error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "o").exists()


def test_pipeline_config_places_width_before_2_4() -> None:
    from trt_edge.errors import TrtEdgeError
    from trt_edge.pipeline.runner import parent_of

    config = RunConfig({"pipeline": {"stages": ["distill", "width", "prune", "export"],
                                     "gates": {"width": 2.0}}})
    stages = config.section("pipeline").stages
    root = Path("run")
    assert parent_of("width", stages, root) == root / "distill"
    assert parent_of("prune", stages, root) == root / "width"
    assert parent_of("export", ["distill", "width", "export"], root) == root / "width"
    assert "width" not in RunConfig({}).section("pipeline").stages  # opt-in
    with pytest.raises(TrtEdgeError, match="pipeline order"):
        RunConfig({"pipeline": {"stages": ["distill", "prune", "width"]}}).section("pipeline")
