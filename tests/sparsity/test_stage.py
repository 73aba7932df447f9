"""The prune stage end to end on the tiny model, the CLI commands, and the checker on real exported ONNX."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from trt_edge.cli import main
from trt_edge.config import RunConfig
from trt_edge.sparsity.onnx_check import check_onnx_sparsity
from trt_edge.sparsity.report import load_sparsity_json
from trt_edge.sparsity.torch_check import check_model_sparsity
from trt_edge.stage import StageRecord, read_stage, stage_artifact


def _export(model_dir: Path, out: Path) -> Path:
    """Export a model folder with the export area's `export_onnx` (TorchScript exporter: folded weight.T)."""
    path = out / "model.onnx"
    try:
        from trt_edge.export.exporter import export_onnx
    except ImportError:  # the export area is optional here: export the same way by hand
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        ids = torch.randint(5, 1000, (2, 16))
        torch.onnx.export(model, (ids, torch.ones_like(ids)), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                        "attention_mask": {0: "batch", 1: "sequence"}})
        return path
    export_onnx(model_dir, path, dynamo=False)
    return path


@pytest.fixture(scope="module")
def pruned_tiny(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path, demo_data_config: Any,
                cache_dir: Path) -> Path:
    """A short but complete prune stage on the tiny BERT, given as a distill-stage folder (student + teacher)."""
    from trt_edge.sparsity.stage import run

    root = tmp_path_factory.mktemp("prune-stage")
    distill = root / "distill"
    shutil.copytree(tiny_bert_dir, distill / "model")
    shutil.copytree(tiny_bert_dir, distill / "teacher")  # a stand-in teacher with a head for these labels
    StageRecord(stage="distill", config={}, artifacts={"model": "model", "teacher": "teacher"}).write(distill)
    config = RunConfig({
        "task": {"data": demo_data_config.to_dict(), "max_length": 24, "eval_batch_size": 128},
        "prune": {"permutation_seconds": 0.3, "schedule": "gradual", "gradual_steps": 2,
                  "train": {"epochs": 1, "batch_size": 32, "max_steps": 6, "learning_rate": 1e-3}},
    })
    run(config, distill, root / "out")
    return root / "out"


def test_stage_writes_a_truly_sparse_model_and_its_record(pruned_tiny: Path) -> None:
    record = read_stage(pruned_tiny, "prune")
    m = record["metrics"]
    for key in ("dense_accuracy", "pruned_accuracy_before_recovery", "sparse_accuracy", "kept_magnitude",
                "kept_magnitude_without_permutation", "sparse_layers", "skipped_layers", "dense_macro_f1",
                "sparse_macro_f1"):
        assert key in m, key
    assert m["sparse_layers"] == 12 and m["skipped_layers"] == 0 and m["permuted_layers"] == 4
    assert m["kept_magnitude"] > m["kept_magnitude_without_permutation"] > 0.5
    assert m["checker_pass_rate"] == 1.0 and m["recovery"]["steps"] == 6 and m["recovery"]["distilled"]
    assert m["permutation_max_output_change"] < 1e-5
    model_dir = stage_artifact(pruned_tiny, "model", expect="prune")
    sparsity = load_sparsity_json(model_dir)
    assert len(sparsity["tensors"]) == 12 and len(sparsity["permutations"]) == 4
    ffn = sparsity["tensors"]["bert.encoder.layer.0.output.dense.weight"]
    assert ffn["axis"] == 1 and ffn["input_channels_permuted"] == "ffn"
    assert ffn["kept_magnitude"] >= ffn["kept_magnitude_without_permutation"]
    ffn_perm = next(p for p in sparsity["permutations"] if p["kind"] == "ffn")
    assert sorted(ffn_perm["permutation"]) == list(range(ffn_perm["block"] * (64 // ffn_perm["block"])))
    report = check_model_sparsity(model_dir)
    assert report.ok and len(report.sparse_rows) == 12


def test_stage_on_a_bare_folder_without_recovery(tiny_bert_dir: Path, demo_data_config: Any, tmp_path: Path) -> None:
    from trt_edge.sparsity.stage import run

    config = RunConfig({"task": {"data": demo_data_config.to_dict(), "max_length": 16, "eval_batch_size": 200},
                        "prune": {"permute": False, "recover": False, "exclude": ["classifier", "pooler", "output"]}})
    m = run(config, tiny_bert_dir, tmp_path / "out").metrics
    assert m["sparse_layers"] == 8 and m["permuted_layers"] == 0 and m["recovery"] == {"skipped": True}
    assert m["sparse_accuracy"] == m["pruned_accuracy_before_recovery"]
    assert m["kept_magnitude"] == m["kept_magnitude_without_permutation"]
    assert m["teacher"] is None and "teacher_accuracy" not in m
    report = check_model_sparsity(tmp_path / "out" / "model")
    assert report.ok and len(report.expected) == 8


def test_checker_catches_a_planted_violation_in_exported_onnx(pruned_tiny: Path, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    model_dir = stage_artifact(pruned_tiny, "model")
    path = _export(model_dir, tmp_path)
    report = check_onnx_sparsity(path, model_dir)
    assert report.ok and report.expected_pass_rate() == 1.0
    assert {r.model_name for r in report.sparse_rows} == set(report.expected)
    # Plant a violation: make one pruned weight of the FFN output dense again.
    target = next(r for r in report.rows if r.model_name == "bert.encoder.layer.1.output.dense.weight")
    model = onnx.load(str(path))
    init = next(t for t in model.graph.initializer if t.name == target.name)
    w = numpy_helper.to_array(init).copy()
    zero = np.argwhere(w == 0)[0]
    w[tuple(zero)] = 0.123
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    report = check_onnx_sparsity(bad, model_dir)
    assert report.violations == ["bert.encoder.layer.1.output.dense.weight"]
    assert report.expected_pass_rate() == pytest.approx(11 / 12)
    # The CLI: `check-sparsity` (Fire maps check_sparsity to it) exits 1 on the violation, 0 on the good file.
    with pytest.raises(SystemExit) as exc:
        main(["check-sparsity", str(bad), "--sparsity_json", str(model_dir), "--quiet"])
    assert exc.value.code == 1
    main(["check-sparsity", str(path), "--sparsity_json", str(model_dir / "sparsity.json")])
    main(["check-sparsity", str(pruned_tiny)])  # a stage folder: its model artifact


def test_real_minilm_student_pruned_and_exported_passes_checker(minilm_student_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    from trt_edge.sparsity.masks import prune_
    from trt_edge.sparsity.report import SPARSITY_FORMAT

    model = AutoModelForSequenceClassification.from_pretrained(minilm_student_dir).eval()
    masks = prune_(model)
    model.save_pretrained(tmp_path / "m", safe_serialization=True)
    (tmp_path / "m" / "sparsity.json").write_text(json.dumps(
        {"format": SPARSITY_FORMAT, "version": 1, "tensors": {n: {"pattern": "2:4", "axis": 1} for n in masks}}))
    report = check_onnx_sparsity(_export(tmp_path / "m", tmp_path), tmp_path / "m")
    assert len(report.expected) == 18 and report.ok and report.expected_pass_rate() == 1.0


def test_checker_maps_every_weight_of_the_exported_student(student_onnx: Path, tmp_path: Path) -> None:
    """The shared real export (dynamo exporter where it works): dense, so every listed tensor is a violation."""
    report = check_onnx_sparsity(student_onnx)
    names = {r.model_name for r in report.rows}
    encoder = {f"bert.encoder.layer.{i}.{m}.weight" for i in range(3)
               for m in ("attention.self.query", "attention.self.key", "attention.self.value",
                         "attention.output.dense", "intermediate.dense", "output.dense")}
    assert encoder <= names and not report.sparse_rows
    from trt_edge.sparsity.report import SPARSITY_FORMAT

    listed = tmp_path / "sparsity.json"
    listed.write_text(json.dumps({"format": SPARSITY_FORMAT, "version": 1,
                                  "tensors": {n: {"pattern": "2:4"} for n in sorted(encoder)}}))
    report = check_onnx_sparsity(student_onnx, listed)
    assert sorted(report.violations) == sorted(encoder) and report.expected_pass_rate() == 0.0


def test_bad_input_exits_2_with_one_line(tiny_bert_dir: Path, demo_data_config: Any, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"task": {"data": demo_data_config.to_dict(), "max_length": 16}}))
    prune = ["prune", "--config", str(cfg), "--model", str(tiny_bert_dir), "--out", str(tmp_path / "o")]
    cases = [
        (["check-sparsity", str(tiny_bert_dir)], "no sparsity.json"),
        (["check-sparsity", str(tmp_path / "missing.onnx")], "no such file"),
        ([*prune, '--include=["attention.selff"]'], "matches no Linear layer"),
        ([*prune, '--include=["classifier"]', '--exclude=["classifier"]'], "no Linear layer is eligible"),
        ([*prune, "--include=[\"(unclosed\"]"], "not a valid regular expression"),
        (["prune", "--out", str(tmp_path / "o")], "give --model"),
    ]
    for argv, expected in cases:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2, argv
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("trt-edge: error:") and expected in err, err
    assert not (tmp_path / "o").exists()


def test_task_section_falls_back_to_the_distill_stage_record(tmp_path: Path, demo_data_config: Any) -> None:
    from trt_edge.sparsity.stage import task_config_for

    folder = tmp_path / "distill"
    (folder / "model").mkdir(parents=True)
    StageRecord(stage="distill", config={"task": {"data": demo_data_config.to_dict(), "max_length": 40}},
                artifacts={"model": "model"}).write(folder)
    task, source = task_config_for(RunConfig({}), folder)
    assert task.max_length == 40 and task.data.train_size == 800 and source.endswith("stage.json")
    task, source = task_config_for(RunConfig({"task": {"max_length": 20}}), folder)
    assert task.max_length == 20 and source == "config"
