"""The distill stage end to end: tiny model for the contract, the real MiniLM for learning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trt_edge.config import RunConfig
from trt_edge.distill.stage import run
from trt_edge.errors import TrtEdgeError
from trt_edge.stage import read_stage, stage_artifact
from trt_edge.tasks.config import DataConfig


def _config(data: DataConfig, teacher: str, **distill: object) -> RunConfig:
    return RunConfig({
        "task": {"max_length": 32, "eval_batch_size": 64, "data": data.to_dict()},
        "distill": {"teacher": teacher, "train": {"epochs": 1, "batch_size": 32}, **distill},
    })


def test_tiny_distill_writes_the_stage_contract(tmp_path: Path, tiny_bert_dir: Path, cache_dir: Path,
                                                demo_data_config: DataConfig) -> None:
    data = demo_data_config.replace(max_examples=300, train_size=200, validation_size=50, test_size=50)
    cfg = _config(data, str(tiny_bert_dir), student={"layers": [1]}, cache_dir=str(cache_dir),
                  teacher_finetune="never")
    out = tmp_path / "distill"
    record = run(cfg, out)
    stage = read_stage(out, "distill")
    for key in ("teacher_accuracy", "student_accuracy", "student_hard_label_accuracy", "teacher_params",
                "student_params", "train_seconds", "student_macro_f1"):
        assert key in stage["metrics"], key
    assert stage["metrics"]["student_params"] < stage["metrics"]["teacher_params"]
    model = stage_artifact(out, "model")
    assert (model / "model.safetensors").is_file() and (model / "tokenizer.json").is_file()
    assert json.loads((model / "config.json").read_text())["num_hidden_layers"] == 1
    assert stage_artifact(out, "teacher").is_dir()
    assert record.metrics["teacher_finetuned"] is False
    assert set(stage["inputs"]) == {"data", "teacher", "teacher/model.safetensors"}  # every weight file hashed


def test_bad_inputs_fail_before_any_work(tmp_path: Path, tiny_bert_dir: Path, demo_data_config: DataConfig) -> None:
    with pytest.raises(TrtEdgeError, match="out of range"):
        run(_config(demo_data_config, str(tiny_bert_dir), student={"layers": [0, 7]}, teacher_finetune="never"),
            tmp_path / "a")
    with pytest.raises(TrtEdgeError, match="model folder not found"):
        run(_config(demo_data_config, str(tmp_path / "missing")), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_real_minilm_student_learns_and_reruns_from_cache(tmp_path: Path, cache_dir: Path,
                                                          demo_data_config: DataConfig) -> None:
    """Fine-tune the packaged MiniLM on 800 tweets, distil 3 of its layers, check the student learned."""
    cfg = _config(demo_data_config, "demo:minilm", cache_dir=str(cache_dir),
                  teacher_train={"epochs": 1, "batch_size": 32, "learning_rate": 1e-4, "freeze_embeddings": True},
                  train={"epochs": 2, "batch_size": 32, "learning_rate": 2e-4, "freeze_embeddings": True},
                  student={"layers": [0, 2, 4]})
    record = run(cfg, tmp_path / "d1")
    m = record.metrics
    majority = m["majority_accuracy"]
    assert m["teacher_finetuned"] is True
    assert m["teacher_accuracy"] > majority + 0.08
    assert m["student_accuracy"] > majority + 0.08, m
    assert m["student_params"] < 0.8 * m["teacher_params"]
    # A rerun with the same teacher budget reuses the fine-tuned teacher and its logits.
    again = run(cfg.__class__({**cfg.raw, "distill": {**cfg.raw["distill"], "ablation": False}}), tmp_path / "d2")
    assert again.metrics["teacher_cache"] == "hit"
    assert again.metrics["teacher_logits_cache"] == "hit"
    assert again.metrics["teacher_accuracy"] == pytest.approx(m["teacher_accuracy"])


def test_student_tokenizer_is_checked_before_any_work(tmp_path: Path, tiny_bert_dir: Path,
                                                      demo_data_config: DataConfig,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15: a separate student with another tokenizer is refused before the teacher is fine-tuned or
    run (prepare_teacher is never reached), with the one-line reason."""
    import shutil

    from transformers import AutoTokenizer

    import trt_edge.distill.stage as stage

    student = tmp_path / "student"
    shutil.copytree(tiny_bert_dir, student)
    tokenizer = AutoTokenizer.from_pretrained(student)
    tokenizer.add_tokens(["zzzunseenzzz"])
    tokenizer.save_pretrained(student)

    def no_work(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the teacher was prepared before the tokenizer check")

    monkeypatch.setattr(stage, "prepare_teacher", no_work)
    monkeypatch.setattr(stage, "load_task_data", no_work)
    with pytest.raises(TrtEdgeError, match="tokenizer differs from the teacher's"):
        run(_config(demo_data_config, str(tiny_bert_dir), student={"model": str(student)}), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_intermediate_losses_run_on_a_layer_subset_student(tmp_path: Path, tiny_bert_dir: Path, cache_dir: Path,
                                                           demo_data_config: DataConfig) -> None:
    """The hidden-state and attention losses (off in the demo) train a student of teacher layers end to end:
    kept layer 0 learns teacher layer 0's output, the last kept layer the teacher's last."""
    data = demo_data_config.replace(max_examples=200, train_size=100, validation_size=50, test_size=50)
    cfg = _config(data, str(tiny_bert_dir), student={"layers": [0]}, cache_dir=str(cache_dir),
                  teacher_finetune="never", hidden_weight=1.0, attention_weight=1.0, ablation=False)
    record = run(cfg, tmp_path / "distill")
    assert record.metrics["distill"]["steps"] > 0
    assert 0.0 <= record.metrics["student_accuracy"] <= 1.0
