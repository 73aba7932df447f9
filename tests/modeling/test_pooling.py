"""Sentence-embedding models (issue 29): pooling, Dense and normalisation read from a sentence-transformers
folder, the kit's `EmbeddingModel` equal to sentence-transformers' own `encode`, folders it cannot
represent refused in one line, and a saved folder that sentence-transformers loads to the same vectors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.modeling.embedding_helpers import TEXTS, st_encode, torch_encode, write_st_folder
from trt_edge.errors import TrtEdgeError
from trt_edge.modeling.pooling import EmbeddingModel, read_pooling

# (family, sentence-transformers pooling mode, Dense width, normalise)
FOLDERS = {
    "bert-mean": ("bert", "mean", None, True),
    "bert-cls-dense": ("bert", "cls", 24, True),
    "mpnet-mean": ("mpnet", "mean", None, True),
    "xlmr-lasttoken": ("xlm-roberta", "lasttoken", None, False),
    "bert-max": ("bert", "max", None, True),
    "bert-sqrt": ("bert", "mean_sqrt_len_tokens", None, False),
}
OUR_MODE = {"mean_sqrt_len_tokens": "mean_sqrt_len"}  # sentence-transformers' name -> the kit's


@pytest.fixture(scope="module")
def st_folders(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("st-folders")
    return {name: write_st_folder(family, minilm_dir, root / name, mode, dense, norm)
            for name, (family, mode, dense, norm) in FOLDERS.items()}


def test_the_packaged_minilm_is_mean_pooled_and_normalised() -> None:
    from trt_edge.modeling.folder import resolve_model_path

    pooling = read_pooling(resolve_model_path("demo:minilm"))
    assert (pooling.mode, pooling.normalize, pooling.dense) == ("mean", True, ())


def test_folders_written_by_sentence_transformers_are_read_as_written(st_folders: dict[str, Path]) -> None:
    for name, (_, mode, dense, norm) in FOLDERS.items():
        pooling = read_pooling(st_folders[name])
        assert pooling.mode == OUR_MODE.get(mode, mode), name
        assert pooling.normalize is norm, name
        assert [d.out_features for d in pooling.dense] == ([dense] if dense else []), name


def test_explicit_arguments_override_the_folder_and_a_plain_encoder_takes_the_declared_mode(
        st_folders: dict[str, Path], tiny_bert_dir: Path) -> None:
    pooling = read_pooling(st_folders["bert-mean"], mode="cls", normalize=False)
    assert (pooling.mode, pooling.normalize) == ("cls", False)
    plain = read_pooling(tiny_bert_dir)  # no modules.json: auto is mean, normalised
    assert (plain.mode, plain.normalize) == ("mean", True)
    assert read_pooling(tiny_bert_dir, mode="lasttoken", normalize=False).mode == "lasttoken"


@pytest.mark.parametrize("name", list(FOLDERS))
def test_the_embedding_model_equals_sentence_transformers_encode(st_folders: dict[str, Path], name: str) -> None:
    from trt_edge.tasks.models import load_classifier

    loaded = load_classifier(st_folders[name], [], task="sentence-embedding")
    assert isinstance(loaded.model, EmbeddingModel) and loaded.head_trained
    assert "pooling:" in loaded.head_note
    ours = torch_encode(loaded)
    expected = st_encode(st_folders[name])
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=0)


def test_the_packaged_minilm_equals_sentence_transformers_encode(minilm_dir: Path) -> None:
    from trt_edge.tasks.models import load_embedding_model

    loaded = load_embedding_model("demo:minilm")
    ours = torch_encode(loaded)
    np.testing.assert_allclose(ours, st_encode(minilm_dir), atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_parameter_names_are_the_classifiers_so_layer_helpers_apply(st_folders: dict[str, Path]) -> None:
    """The encoder sits under its base_model_prefix: `bert.encoder.layer.0.attention.self.query`, as in
    BertForSequenceClassification, so layer dropping and 2:4 masks find the same modules."""
    from trt_edge.distill.student import student_from_teacher
    from trt_edge.modeling.anatomy import layer_list
    from trt_edge.tasks.models import load_classifier

    loaded = load_classifier(st_folders["bert-cls-dense"], [], task="sentence-embedding")
    names = dict(loaded.model.named_modules())
    assert "bert.encoder.layer.0.attention.self.query" in names
    assert loaded.model.base_model_prefix == "bert"
    student, _ = student_from_teacher(loaded.model, [0, 2])
    assert len(layer_list(student)[2]) == 2 and student.config.num_hidden_layers == 2
    assert torch_encode(type(loaded)(student, loaded.tokenizer, loaded.path, True, "")).shape == (len(TEXTS), 24)


def test_hidden_states_and_attentions_come_through_for_distillation(st_folders: dict[str, Path]) -> None:
    import torch

    from trt_edge.tasks.models import load_classifier

    loaded = load_classifier(st_folders["bert-mean"], [], task="sentence-embedding")
    loaded.model.config._attn_implementation = "eager"
    enc = loaded.tokenizer(TEXTS[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = loaded.model(**enc, output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == loaded.model.config.num_hidden_layers + 1
    assert len(out.attentions) == loaded.model.config.num_hidden_layers
    assert out.sentence_embedding.shape == (2, loaded.model.config.hidden_size)


def test_saved_folders_load_in_sentence_transformers_and_read_back_identically(
        st_folders: dict[str, Path], tmp_path: Path) -> None:
    from trt_edge.modeling.folder import save_classifier
    from trt_edge.tasks.models import load_classifier

    for name in ("bert-cls-dense", "xlmr-lasttoken"):
        loaded = load_classifier(st_folders[name], [], task="sentence-embedding")
        out = tmp_path / name
        save_classifier(loaded.model, loaded.tokenizer, out)  # the stages' one save call
        assert json.loads((out / "modules.json").read_text())[0]["type"].endswith("Transformer")
        assert not list(out.rglob("*.bin"))  # safetensors only
        source = json.loads((st_folders[name] / "sentence_bert_config.json").read_text())
        assert json.loads((out / "sentence_bert_config.json").read_text()) == source
        before = torch_encode(loaded)
        np.testing.assert_allclose(st_encode(out), before, atol=1e-5, rtol=0)
        again = load_classifier(out, [], task="sentence-embedding")
        assert _shape(read_pooling(out)) == _shape(read_pooling(st_folders[name]))
        np.testing.assert_allclose(torch_encode(again), before, atol=1e-6, rtol=0)


def _shape(pooling: object) -> tuple[object, ...]:
    p = pooling
    return (p.mode, p.normalize,  # type: ignore[attr-defined]
            [(d.in_features, d.out_features, d.bias, d.activation) for d in p.dense])  # type: ignore[attr-defined]


def _edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("edit, expect", [
    (lambda f: _edit_json(f / "1_Pooling" / "config.json", pooling_mode="weightedmean"), "weightedmean"),
    (lambda f: _edit_json(f / "1_Pooling" / "config.json", pooling_mode=["cls", "mean"]), "cls + mean"),
    (lambda f: (f / "modules.json").write_text(json.dumps(
        [*json.loads((f / "modules.json").read_text()),
         {"idx": 9, "name": "9", "path": "9_Custom", "type": "my_package.CustomPooling"}])),
     "my_package.CustomPooling"),
    (lambda f: _edit_json(f / "2_Dense" / "config.json", activation_function="my.Activation"), "my.Activation"),
])
def test_a_folder_the_kit_cannot_represent_is_refused_in_one_line(st_folders: dict[str, Path], tmp_path: Path,
                                                                  edit: object, expect: str) -> None:
    from trt_edge.tasks.models import load_classifier

    folder = tmp_path / "model"
    shutil.copytree(st_folders["bert-cls-dense"], folder)
    edit(folder)  # type: ignore[operator]
    with pytest.raises(TrtEdgeError) as err:
        load_classifier(folder, [], task="sentence-embedding")
    message = str(err.value)
    assert "\n" not in message and expect in message and "known" in message
    assert str(folder) in message


def test_an_unknown_declared_mode_is_refused() -> None:
    with pytest.raises(TrtEdgeError, match="known: mean, cls"):
        read_pooling(Path("/nonexistent"), mode="weightedmean")


def test_a_width_pruned_embedding_model_reloads(st_folders: dict[str, Path], tmp_path: Path) -> None:
    """A width recipe written for the EmbeddingModel (module names under `bert.`) reloads on the bare
    encoder: the kit's width format works for pooled models."""
    import torch

    from trt_edge.modeling.recipe import save_pruned
    from trt_edge.tasks.models import load_classifier

    loaded = load_classifier(st_folders["bert-mean"], [], task="sentence-embedding")
    model = loaded.model
    for layer in model.bert.encoder.layer:  # narrow every FFN from 128 to 96
        inter, out = layer.intermediate.dense, layer.output.dense
        small_in, small_out = torch.nn.Linear(inter.in_features, 96), torch.nn.Linear(96, out.out_features)
        with torch.no_grad():
            small_in.weight.copy_(inter.weight[:96])
            small_in.bias.copy_(inter.bias[:96])
            small_out.weight.copy_(out.weight[:, :96])
            small_out.bias.copy_(out.bias)
        layer.intermediate.dense, layer.output.dense = small_in, small_out
    save_pruned(model, loaded.tokenizer, tmp_path / "pruned")
    again = load_classifier(tmp_path / "pruned", [], task="sentence-embedding")
    assert again.model.bert.encoder.layer[0].intermediate.dense.out_features == 96
    np.testing.assert_allclose(torch_encode(again), torch_encode(loaded), atol=1e-6, rtol=0)


def test_a_plain_encoder_folder_saves_as_a_sentence_transformers_folder(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """A classifier folder (no modules.json) loads as an encoder with the declared pooling; saved, it is a
    sentence-transformers folder that gives the same vectors."""
    from trt_edge.modeling.folder import save_classifier
    from trt_edge.tasks.models import load_embedding_model

    loaded = load_embedding_model(tiny_bert_dir, pooling="cls", normalize=False)
    assert loaded.head_note == "pooling: cls, not normalised (declared)"
    out = tmp_path / "saved"
    save_classifier(loaded.model, loaded.tokenizer, out)
    assert json.loads((out / "sentence_bert_config.json").read_text())["max_seq_length"] == 128
    np.testing.assert_allclose(st_encode(out), torch_encode(loaded), atol=1e-5, rtol=0)
    assert (read_pooling(out).mode, read_pooling(out).normalize) == ("cls", False)


@pytest.mark.parametrize("side", ["right", "left"])
def test_every_mode_pools_as_sentence_transformers_pools(side: str) -> None:
    """`pool` against sentence-transformers' own Pooling module on random token states, with right and left
    padding (CLS is position 0, so it is compared on right padding only, the side our tokenizers pad)."""
    import torch
    from sentence_transformers.sentence_transformer.modules import Pooling as STPooling

    from trt_edge.modeling.pooling import pool

    torch.manual_seed(0)
    hidden = torch.randn(3, 7, 8)
    lengths = [7, 4, 1]
    mask = torch.zeros(3, 7, dtype=torch.int64)
    for row, n in enumerate(lengths):
        if side == "right":
            mask[row, :n] = 1
        else:
            mask[row, 7 - n:] = 1
    for ours, theirs in [("mean", "mean"), ("max", "max"), ("lasttoken", "lasttoken"),
                         ("mean_sqrt_len", "mean_sqrt_len_tokens"), ("cls", "cls")]:
        if ours == "cls" and side == "left":
            continue
        expected = STPooling(8, pooling_mode=theirs)({"token_embeddings": hidden, "attention_mask": mask})
        torch.testing.assert_close(pool(hidden, mask, ours), expected["sentence_embedding"], rtol=0, atol=1e-6)


def test_two_four_selection_finds_the_classifiers_layers(st_folders: dict[str, Path]) -> None:
    """The default 2:4 patterns pick the same encoder Linears in the embedding model as in the classifier of
    the same folder (names under `bert.`), and leave the Dense projection and the pooler dense."""
    from trt_edge.sparsity.config import DEFAULT_EXCLUDE, DEFAULT_INCLUDE
    from trt_edge.sparsity.masks import select_layers
    from trt_edge.tasks.models import load_classifier

    folder = st_folders["bert-cls-dense"]
    embedding = load_classifier(folder, [], task="sentence-embedding").model
    classifier = load_classifier(folder, ["a", "b"], task="text-classification").model
    ours = [n for n, _ in select_layers(embedding, DEFAULT_INCLUDE, DEFAULT_EXCLUDE).layers]
    theirs = [n for n, _ in select_layers(classifier, DEFAULT_INCLUDE, DEFAULT_EXCLUDE).layers]
    assert ours == theirs and ours and all(n.startswith("bert.encoder.layer.") for n in ours)
