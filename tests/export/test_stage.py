"""The export stage and the CLI: stage.json contract, inputs from a stage folder, the head/task check,
the fp16 variant, fuse_attention without the plugin area, and the exit codes of `export` and `lint`."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml

from trt_edge.cli import main
from trt_edge.errors import TrtEdgeError
from trt_edge.export.stage import check_head, resolve_model_input
from trt_edge.stage import StageRecord, read_stage


def _config(tmp_path: Path, demo_data_config, **export) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"task": {"max_length": 32, "data": demo_data_config.to_dict()},
                                    "export": {"exporter": "torchscript", "parity_max_examples": 96,
                                               "parity_sequence_lengths": [16, 64], **export}}))
    return path


def test_export_command_writes_the_stage(tiny_bert_dir: Path, demo_data_config, tmp_path: Path,  # type: ignore[no-untyped-def]
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "export"
    main(["export", str(tiny_bert_dir), "--config", str(_config(tmp_path, demo_data_config)), "--out", str(out),
          "--int32_inputs", "true"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["argmax_agreement"] == 1.0 and printed["exporter"] == "torchscript"
    data = read_stage(out, "export")
    m = data["metrics"]
    assert data["artifacts"] == {"onnx": "model.onnx", "parity": "parity.json", "preprocessor": "preprocessor",
                                 "predictions": "test_predictions.npz"}  # per-example, for the paired gate
    assert m["max_abs_diff"] <= 1e-4 and m["argmax_agreement"] == 1.0 and m["opset"] == 17
    assert m["onnx_bytes"] == (out / "model.onnx").stat().st_size
    assert m["input_dtype"] == "int32" and m["parity_examples"] == 96
    assert {(s["batch"], s["sequence"]) for s in m["parity_shapes"]} == {(1, 16), (1, 64), (8, 16), (8, 64)}
    assert m["lint"]["errors"] == 0 and m["lint"]["tensorrt"] == "10.3"
    # The default target (JetPack 6.2, TensorRT 10.3) imports LayerNormalization: auto keeps it.
    assert m["decompose_layernorm"] == {"setting": "auto", "resolved": False, "target_tensorrt": "10.3.0"}
    assert m["op_counts"].get("LayerNormalization", 0) > 0
    assert data["config"]["export"]["int32_inputs"] is True
    parity = json.loads((out / "parity.json").read_text())
    assert parity["fp32"]["examples"] == 96


def test_a_jetpack_5_target_decomposes_layernorm_by_itself(tiny_bert_dir: Path, demo_data_config,  # type: ignore[no-untyped-def]
                                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 33 item 11: with `target: {jetpack: "5.1.2", trt_version: "8.5"}` the export needs no
    decompose_layernorm flag (auto: TensorRT 8.5 has no LayerNormalization importer), stage.json says
    what auto resolved to, and an explicit false for that target is refused in one line before any work."""
    cfg = _config(tmp_path, demo_data_config)
    raw = yaml.safe_load(cfg.read_text())
    raw["target"] = {"device": "agx-xavier", "jetpack": "5.1.2", "trt_version": "8.5"}
    cfg.write_text(yaml.safe_dump(raw))
    out = tmp_path / "export"
    main(["export", str(tiny_bert_dir), "--config", str(cfg), "--out", str(out)])
    capsys.readouterr()
    m = read_stage(out, "export")["metrics"]
    assert m["decompose_layernorm"] == {"setting": "auto", "resolved": True, "target_tensorrt": "8.5.2"}
    assert "LayerNormalization" not in m["op_counts"] and m["cleanup"]["layernorm_decomposed"] > 0
    assert m["lint"]["errors"] == 0 and m["lint"]["table"] == "8.5"
    with pytest.raises(SystemExit) as err:
        main(["export", str(tiny_bert_dir), "--config", str(cfg), "--out", str(tmp_path / "refused"),
              "--decompose_layernorm", "false"])
    assert err.value.code == 2 and not (tmp_path / "refused").exists()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "no LayerNormalization importer" in lines[0]


def test_stage_folder_input_and_head_check(tiny_bert_dir: Path, tmp_path: Path) -> None:
    stage = tmp_path / "distill"
    shutil.copytree(tiny_bert_dir, stage / "model")
    StageRecord(stage="distill", config={}, artifacts={"model": "model"}).write(stage)
    assert resolve_model_input(stage) == stage / "model"
    assert resolve_model_input(tiny_bert_dir) == tiny_bert_dir
    labels = ["negative", "neutral", "positive"]
    check_head(labels, labels, tiny_bert_dir)
    check_head(["LABEL_0", "LABEL_1", "LABEL_2"], labels, tiny_bert_dir)  # generic names: count decides
    with pytest.raises(TrtEdgeError, match="predicts 2 classes"):
        check_head(["LABEL_0", "LABEL_1"], labels, tiny_bert_dir)
    with pytest.raises(TrtEdgeError, match="task's labels"):
        check_head(["joy", "anger", "fear"], labels, tiny_bert_dir)


def test_student_stage_with_fp16_and_fused_attention(minilm_student_dir: Path, demo_data_config,  # type: ignore[no-untyped-def]
                                                      tmp_path: Path) -> None:
    """The real student through the stage with both optional outputs: the fp16 variant keeps fp32 I/O and
    passes its own gate; the fused model comes from the plugin area's rewrite, recorded in stage.json."""
    from trt_edge.config import load_config
    from trt_edge.export.stage import run

    pytest.importorskip("trt_edge.plugins.onnx_rewrite")
    config = load_config(_config(tmp_path, demo_data_config, fp16=True, fuse_attention=True,
                                 parity_max_examples=32, parity_batch_sizes=[2], parity_sequence_lengths=[24]))
    out = tmp_path / "export"
    record = run(config, minilm_student_dir, out)
    assert set(record.artifacts) == {"onnx", "parity", "onnx_fp16", "onnx_fused", "predictions", "preprocessor"}
    m = record.metrics
    assert m["argmax_agreement"] == 1.0 and m["max_abs_diff"] <= 1e-4
    fp16 = onnx.load(str(out / "model.fp16.onnx"))
    assert fp16.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16.graph.initializer)
    assert 0 < m["fp16"]["max_abs_diff"] <= 5e-2 and m["fp16"]["argmax_agreement"] >= 0.98
    assert m["fp16"]["onnx_bytes"] < 0.6 * m["onnx_bytes"]
    assert isinstance(m["fuse_attention"], dict) and m["fuse_attention"]
    assert read_stage(out, "export")["metrics"]["fuse_attention"] == json.loads(json.dumps(m["fuse_attention"]))


def test_fuse_attention_without_the_plugin_area_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                            tiny_bert_onnx: Path, tmp_path: Path) -> None:
    from trt_edge.export.stage import _fuse_attention

    monkeypatch.setitem(sys.modules, "trt_edge.plugins.onnx_rewrite", None)  # import fails
    with pytest.raises(TrtEdgeError, match="not available"):
        _fuse_attention(tiny_bert_onnx, tmp_path / "f.onnx", [{"input_ids": np.zeros((1, 4), np.int64)}])


def test_cli_exit_codes(tiny_bert_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["lint", str(tiny_bert_onnx), "--trt", "10.3", "--dla"])  # warnings only: returns normally
    assert "0 errors" in capsys.readouterr().out
    main(["lint", str(tiny_bert_onnx), "--trt", "10.13", "--json"])
    assert json.loads(capsys.readouterr().out)["errors"] == 0
    with pytest.raises(SystemExit) as err:  # TensorRT 8.5 cannot import LayerNormalization
        main(["lint", str(tiny_bert_onnx), "--trt", "8.5"])
    assert err.value.code == 1
    assert "refuse" in capsys.readouterr().err
    garbage = tmp_path / "g.onnx"
    garbage.write_bytes(b"nope")
    for argv in (["lint", str(garbage)], ["lint", str(tiny_bert_onnx), "--trt", "9.0"],
                 ["export", str(tmp_path / "missing")]):
        with pytest.raises(SystemExit) as err:
            main(argv)
        assert err.value.code == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_unfusable_attention_keeps_the_plain_export_unless_strict(tiny_bert_onnx: Path, tmp_path: Path) -> None:
    """Issue 15: blocks the fused node cannot express are reported per layer with the matcher's reason and
    no model.fused.onnx is written; `strict` turns that into a one-line error."""
    import onnx
    from onnx import helper

    from trt_edge.export.stage import _fuse_attention

    model = onnx.load(str(tiny_bert_onnx))
    for softmax in [n for n in model.graph.node if n.op_type == "Softmax"]:
        broken = f"{softmax.name}_sqrt"
        model.graph.node.insert(list(model.graph.node).index(softmax),
                                helper.make_node("Sqrt", [softmax.input[0]], [broken]))
        softmax.input[0] = broken
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    ids = np.full((2, 6), 7, np.int64)
    mask = np.ones((2, 6), np.int64)
    mask[1, 4:] = 0
    feeds = [{"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}]
    result = _fuse_attention(path, tmp_path / "model.fused.onnx", feeds)
    assert result["fused_layers"] == [] and len(result["unfused"]) == 2
    assert all("no Q.Kᵀ MatMul before the softmax" in u["reason"] for u in result["unfused"])
    assert not (tmp_path / "model.fused.onnx").exists()
    with pytest.raises(TrtEdgeError, match="fuse_attention_strict: 2 attention layers cannot be fused"):
        _fuse_attention(path, tmp_path / "model.fused.onnx", feeds, strict=True)
