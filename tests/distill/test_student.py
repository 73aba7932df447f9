"""Student construction keeps exactly the chosen layers and reloads from disk unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trt_edge.distill.student import default_layers, student_from_teacher, subset_layer_map, uniform_layer_map
from trt_edge.errors import TrtEdgeError
from trt_edge.tasks.models import load_classifier, save_classifier

LABELS = ["negative", "neutral", "positive"]


def test_default_is_every_other_layer() -> None:
    assert default_layers(6) == [0, 2, 4]
    assert default_layers(12) == [0, 2, 4, 6, 8, 10]


def test_student_copies_the_chosen_layers(tiny_bert_dir: Path, tmp_path: Path) -> None:
    teacher = load_classifier(tiny_bert_dir, LABELS).model
    student, keep = student_from_teacher(teacher, [1])
    assert keep == [1]
    assert student.config.num_hidden_layers == 1
    t_layer = teacher.bert.encoder.layer[1].state_dict()
    s_layer = student.bert.encoder.layer[0].state_dict()
    assert all(torch.equal(t_layer[k], s_layer[k]) for k in t_layer)
    assert torch.equal(student.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    # The teacher is untouched.
    assert teacher.config.num_hidden_layers == 2 and len(teacher.bert.encoder.layer) == 2
    save_classifier(student, load_classifier(tiny_bert_dir, LABELS).tokenizer, tmp_path)
    again = load_classifier(tmp_path, LABELS)
    assert again.head_trained
    x = {"input_ids": torch.tensor([[101, 2000, 2001, 102]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    with torch.no_grad():
        assert torch.allclose(student.eval()(**x).logits, again.model(**x).logits, atol=1e-6)


@pytest.mark.parametrize(("layers", "message"), [([5], "out of range"), ([], "empty"), ([1, 0], "increasing")])
def test_bad_layer_lists(tiny_bert_dir: Path, layers: list[int], message: str) -> None:
    teacher = load_classifier(tiny_bert_dir, LABELS).model
    with pytest.raises(TrtEdgeError, match=message):
        student_from_teacher(teacher, layers)


def test_uniform_layer_map() -> None:
    assert uniform_layer_map(3, 6) == [(0, 1), (1, 3), (2, 5)]
    assert uniform_layer_map(2, 2) == [(0, 0), (1, 1)]


def test_subset_layer_map_ends_on_the_teachers_last_layer() -> None:
    assert subset_layer_map([0, 2, 4], 6) == [(0, 1), (1, 3), (2, 5)]
    assert subset_layer_map([1, 2], 6) == [(0, 1), (1, 5)]
    assert subset_layer_map([0, 1, 2], 3) == [(0, 0), (1, 1), (2, 2)]


def test_a_config_student_takes_the_teachers_inputs() -> None:
    """`distill.student.config` (any task): what it leaves out of the inputs is the teacher's (model_type,
    vocabulary, positions), its own sizes stay; an input key that differs or labels that are not the task's are
    refused in one line; nothing here builds a model."""
    from transformers import BertConfig

    from trt_edge.distill.student import student_config

    teacher = BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=96)
    out = student_config({"num_hidden_layers": 1, "hidden_size": 16}, teacher, ["a", "b"])
    assert (out["model_type"], out["vocab_size"], out["max_position_embeddings"]) == ("bert", 1000, 96)
    assert (out["num_hidden_layers"], out["hidden_size"]) == (1, 16) and "num_labels" not in out
    assert student_config({"max_position_embeddings": 64}, teacher)["max_position_embeddings"] == 64
    with pytest.raises(TrtEdgeError, match=r"vocab_size is 500, the teacher's is 1000"):
        student_config({"vocab_size": 500}, teacher)
    with pytest.raises(TrtEdgeError, match=r"model_type is 'roberta', the teacher's is 'bert'"):
        student_config({"model_type": "roberta"}, teacher.to_dict())  # config.json's dict works too
    with pytest.raises(TrtEdgeError, match=r"not the task's 2 classes"):
        student_config({"id2label": {"0": "a", "1": "c"}}, teacher, ["a", "b"])
    assert "id2label" not in student_config({"id2label": {"0": "a", "1": "b"}}, teacher, ["a", "b"])
