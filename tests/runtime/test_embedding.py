"""Sentence embeddings at run time: vectors, corpus search, the corpus cache, and `run`'s bad inputs.

The model is a tiny random BERT wrapped in masked mean pooling and L2 normalisation, exported here with
`torch.onnx.export` (inputs `input_ids`/`attention_mask`, output `sentence_embedding`, metadata
`trt_edge.task=sentence-embedding`) with the tiny tokenizer as `preprocessor/` beside it: independent of
the task adapter's own export, so these tests judge only the runtime.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trt_edge.cli import main
from trt_edge.errors import TrtEdgeError
from trt_edge.runtime import embedding
from trt_edge.runtime.embedding import CACHE_SUFFIX, TextEmbedder, read_corpus
from trt_edge.runtime.ort import OnnxRuntimeRunner
from trt_edge.tasks.spec import (
    IMAGE_CLASSIFICATION,
    SENTENCE_EMBEDDING,
    TEXT_CLASSIFICATION,
    check_run_input,
    task_for_manifest,
)

from .texts import DEMO_TEXTS

CORPUS = ["the weather is lovely today", "", "a train leaves at noon", "   ", "I lost my keys again",
          "the cat sleeps on the sofa", "please restart the robot"]


def _pooled(bert: Any) -> Any:
    import torch

    class MeanPooled(torch.nn.Module):
        """BERT, masked mean over the tokens, unit length: what a sentence-transformers MiniLM computes."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    return MeanPooled().eval()


@pytest.fixture(scope="module")
def embedding_model(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> tuple[Path, Any, Any]:
    """(model.onnx with preprocessor/ beside it, the PyTorch wrapper, the tokenizer)."""
    import onnx
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128)
    model = _pooled(BertModel(config).eval())
    out = tmp_path_factory.mktemp("embedding-onnx")
    path = out / "model.onnx"
    enc = tokenizer(["a first example", "and a somewhat longer second example"], padding=True, return_tensors="pt")
    axes = {n: {0: "batch", 1: "sequence"} for n in ("input_ids", "attention_mask")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (enc["input_ids"], enc["attention_mask"]), str(path),
                          input_names=["input_ids", "attention_mask"], output_names=["sentence_embedding"],
                          dynamic_axes={**axes, "sentence_embedding": {0: "batch"}}, opset_version=17, dynamo=False)
    proto = onnx.load(str(path))
    proto.metadata_props.add(key="trt_edge.task", value=SENTENCE_EMBEDDING.name)
    onnx.save(proto, str(path))
    SENTENCE_EMBEDDING.preprocessor.copy(tiny_bert_dir, out / "preprocessor")
    return path, model, tokenizer


@pytest.fixture()
def model_copy(embedding_model: tuple[Path, Any, Any], tmp_path: Path) -> Path:
    """A private copy of the model folder (a test may change the model file)."""
    dest = tmp_path / "model"
    shutil.copytree(embedding_model[0].parent, dest)
    return dest / "model.onnx"


def _corpus(folder: Path, lines: list[str] = CORPUS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_vectors_are_unit_and_match_pytorch(embedding_model: tuple[Path, Any, Any]) -> None:
    import torch

    path, model, tokenizer = embedding_model
    with torch.inference_mode():
        enc = tokenizer(DEMO_TEXTS, padding=True, truncation=True, max_length=64, return_tensors="pt")
        ref = model(enc["input_ids"], enc["attention_mask"]).numpy()
    embedder = TextEmbedder.from_model_file(OnnxRuntimeRunner(path), path, max_length=64, batch_size=4)
    vectors = embedder.embed(DEMO_TEXTS)
    assert vectors.shape == (len(DEMO_TEXTS), 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, ref, atol=1e-4)


def test_python_search_ranks_an_identical_line_first(model_copy: Path, tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "data")
    embedder = TextEmbedder.from_model_file(OnnxRuntimeRunner(model_copy), model_copy)
    hits = embedder.search(["a train leaves at noon", "I lost my keys again"], corpus, 3)
    assert [len(h) for h in hits] == [3, 3]
    assert (hits[0][0].text, hits[0][0].line) == ("a train leaves at noon", 3)  # line numbers count empty lines
    assert (hits[1][0].text, hits[1][0].line) == ("I lost my keys again", 5)
    for row in hits:
        assert row[0].cosine == pytest.approx(1.0, abs=1e-5)
        assert [h.cosine for h in row] == sorted((h.cosine for h in row), reverse=True)
    in_memory = embedder.search(["a train leaves at noon"], ["x y z", "a train leaves at noon"], 1)
    assert in_memory[0][0].line == 2 and in_memory[0][0].cosine == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(TrtEdgeError, match="the corpus has 5 entries"):
        embedder.search(["q"], corpus, 6)


def _cache_files(corpus: Path) -> dict[str, int]:
    folder = corpus.parent / (corpus.name + CACHE_SUFFIX)
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir())} if folder.is_dir() else {}


def test_cache_is_reused_and_invalidated(model_copy: Path, tmp_path: Path) -> None:
    import onnx

    corpus = _corpus(tmp_path / "data")
    siblings = {p.name for p in corpus.parent.iterdir()}

    def index() -> embedding.CorpusIndex:
        return TextEmbedder.from_model_file(OnnxRuntimeRunner(model_copy), model_copy).index(corpus, progress=False)

    first = index()
    assert not first.from_cache and first.cache_file is not None and first.matrix.shape == (5, 32)
    files = _cache_files(corpus)
    assert sorted(Path(n).suffix for n in files) == [".json", ".npy"]
    assert {p.name for p in corpus.parent.iterdir()} == siblings | {corpus.name + CACHE_SUFFIX}
    record = json.loads(first.cache_file.with_suffix(".json").read_text(encoding="utf-8"))
    assert (record["count"], record["dim"], record["corpus_sha256"]) == (5, 32, read_corpus(corpus).sha256)
    assert np.load(first.cache_file, allow_pickle=False).shape == (5, 32)

    again = index()  # unchanged: read back, nothing rewritten
    assert again.from_cache and again.cache_file == first.cache_file
    assert _cache_files(corpus) == files
    np.testing.assert_array_equal(again.matrix, first.matrix)

    _corpus(corpus.parent, [*CORPUS, "a new line"])  # the corpus changed: embedded again, the stale entry goes
    changed = index()
    assert not changed.from_cache and changed.matrix.shape == (6, 32)
    assert set(_cache_files(corpus)).isdisjoint(files) and len(_cache_files(corpus)) == 2

    proto = onnx.load(str(model_copy))  # the model file changed (same graph, other bytes): embedded again
    proto.metadata_props.add(key="note", value="retrained")
    onnx.save(proto, str(model_copy))
    retrained = index()
    assert not retrained.from_cache and retrained.cache_file != changed.cache_file
    assert len(_cache_files(corpus)) == 4  # both models' entries for this corpus are kept
    assert index().from_cache


def test_read_only_corpus_folder_caches_in_the_kit_cache(model_copy: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = _corpus(tmp_path / "data")
    monkeypatch.setenv("TRT_EDGE_CACHE", str(tmp_path / "kit-cache"))
    monkeypatch.setattr(embedding, "_writable", lambda folder: False)
    embedder = TextEmbedder.from_model_file(OnnxRuntimeRunner(model_copy), model_copy)
    first = embedder.index(corpus, progress=False)
    assert first.cache_file is not None and first.cache_file.parent == tmp_path / "kit-cache" / "embeddings"
    assert [p.name for p in corpus.parent.iterdir()] == ["corpus.txt"]
    assert embedder.index(corpus, progress=False).from_cache


def test_cli_prints_vectors(embedding_model: tuple[Path, Any, Any], capsys: pytest.CaptureFixture[str]) -> None:
    path = embedding_model[0]
    main(["run", "--onnx", str(path), "--text", "so happy today"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 1 and rows[0]["text"] == "so happy today" and rows[0]["dim"] == 32
    assert len(rows[0]["embedding"]) == 32
    assert np.linalg.norm(rows[0]["embedding"]) == pytest.approx(1.0, abs=1e-5)


def test_cli_takes_several_texts(embedding_model: tuple[Path, Any, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """`--text` repeated gives one line per text, in order, each verbatim (Fire alone kept only the last)."""
    main(["run", "--onnx", str(embedding_model[0]), "--text", "stop, the arm", "--text", "1e5", "--text", "[a]"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["stop, the arm", "1e5", "[a]"]


def test_cli_top_end_to_end(model_copy: Path, tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "data")
    queries = tmp_path / "queries.txt"
    queries.write_text("please restart the robot\nthe weather is lovely today\n", encoding="utf-8")
    env = {**os.environ, "PAGER": "cat", "HF_HUB_OFFLINE": "1", "TRT_EDGE_CACHE": str(tmp_path / "kit-cache")}

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "trt_edge", "run", "--onnx", str(model_copy), "--top", "2",
                               "--corpus", str(corpus), "--text-file", str(queries), "--lines"],
                              capture_output=True, text=True, env=env, timeout=300)

    helped = subprocess.run([sys.executable, "-m", "trt_edge", "run", "--help"], capture_output=True, text=True,
                            env=env, timeout=300)
    shown = helped.stdout + helped.stderr  # Fire shows help on stderr without a terminal
    assert helped.returncode == 0 and "--top" in shown and "--corpus" in shown
    done = run()
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["please restart the robot", "the weather is lovely today"]
    assert [r["top"][0]["text"] for r in rows] == [r["text"] for r in rows]
    assert [r["top"][0]["line"] for r in rows] == [7, 1]
    for r in rows:
        assert len(r["top"]) == 2 and r["top"][0]["cosine"] == pytest.approx(1.0, abs=1e-5)
        assert r["top"][0]["cosine"] >= r["top"][1]["cosine"]
    assert "cached 5 corpus embeddings" in done.stderr
    files = _cache_files(corpus)
    again = run()
    assert again.returncode == 0 and again.stdout == done.stdout
    assert "read 5 corpus embeddings from the cache" in again.stderr
    assert _cache_files(corpus) == files
    assert not (tmp_path / "kit-cache").exists()


def test_task_of_a_plan_and_run_input_checks() -> None:
    def io(*names: tuple[str, str]) -> dict[str, Any]:
        return {"io": [{"name": n, "mode": m} for n, m in names]}

    text_in = (("input_ids", "input"), ("attention_mask", "input"))
    assert task_for_manifest(io(*text_in, ("sentence_embedding", "output"))) is SENTENCE_EMBEDDING
    assert task_for_manifest(io(*text_in, ("logits", "output"))) is TEXT_CLASSIFICATION
    assert task_for_manifest({"task": "sentence-embedding", "io": []}) is SENTENCE_EMBEDDING
    assert task_for_manifest({"io": []}) is None  # a trtexec build's manifest: the runner's I/O decides
    check_run_input(SENTENCE_EMBEDDING, "text", "m", search=True)
    check_run_input(TEXT_CLASSIFICATION, "text", "m")
    with pytest.raises(TrtEdgeError, match="sentence-embedding model: it takes text, not image"):
        check_run_input(SENTENCE_EMBEDDING, "image", "m")
    with pytest.raises(TrtEdgeError, match="image-classification model: --top/--corpus"):
        check_run_input(IMAGE_CLASSIFICATION, "image", "m", search=True)


def test_the_bundle_manifest_records_the_task(model_copy: Path, tmp_path: Path) -> None:
    """A bundle's manifest template (which build_on_device.sh fills after a trtexec build, with no I/O)
    names the task, so `run --engine` knows an embedding plan before loading it."""
    from trt_edge.config import load_config
    from trt_edge.engine.bundle import TEMPLATE
    from trt_edge.engine.stage import run

    run(load_config(None, {}, "build"), model_copy, tmp_path / "build")
    template = json.loads((tmp_path / "build" / "bundle" / TEMPLATE).read_text(encoding="utf-8"))
    assert template["task"] == SENTENCE_EMBEDDING.name and template["io"] == []
    assert task_for_manifest(template) is SENTENCE_EMBEDDING


# --- bad input: one line, exit 2, before any work --------------------------------------------------
BAD: dict[str, str] = {  # case: a substring of its one error line
    "corpus-blank": "no non-empty line",
    "corpus-not-utf8": "not UTF-8 text",
    "corpus-missing": "no such file",
    "top-past-corpus": "--top 6: the corpus has 5 entries",
    "top-zero": "--top must be at least 1",
    "top-word": "--top takes a whole number",
    "top-without-corpus": "--top K goes with --corpus",
    "corpus-without-top": "--corpus FILE goes with --top",
    "embedding-given-image": "sentence-embedding model: it takes text, not image",
    "classifier-given-top": "text-classification model: --top/--corpus",
    "plan-embedding-given-image": "sentence-embedding model: it takes text, not image",
}


def _bad_args(name: str, work: Path, onnx: Path, classifier: Path) -> list[str]:
    corpus = _corpus(work / "data")
    blank = work / "blank.txt"
    blank.write_text("\n   \n\t\n", encoding="utf-8")
    binary = work / "binary.txt"
    binary.write_bytes(b"ok\n\xff\xfe\xfa\n")
    image = work / "x.png"
    image.write_bytes(b"\x89PNG not really")
    run = ["run", "--onnx", str(onnx), "--text", "q"]
    return {
        "corpus-blank": [*run, "--top", "1", "--corpus", str(blank)],
        "corpus-not-utf8": [*run, "--top", "1", "--corpus", str(binary)],
        "corpus-missing": [*run, "--top", "1", "--corpus", str(work / "none.txt")],
        "top-past-corpus": [*run, "--top", "6", "--corpus", str(corpus)],
        "top-zero": [*run, "--top", "0", "--corpus", str(corpus)],
        "top-word": [*run, "--top", "many", "--corpus", str(corpus)],
        "top-without-corpus": [*run, "--top", "3"],
        "corpus-without-top": [*run, "--corpus", str(corpus)],
        "embedding-given-image": ["run", "--onnx", str(onnx), "--image", str(image)],
        "classifier-given-top": ["run", "--onnx", str(classifier), "--text", "q", "--top", "1", "--corpus",
                                 str(corpus)],
        "plan-embedding-given-image": ["run", "--engine", str(_plan(work)), "--image", str(image)],
    }[name]


def _plan(work: Path) -> Path:
    """A plan whose manifest records a sentence-embedding engine's I/O (never loaded: refused before)."""
    folder = work / "engine"
    folder.mkdir()
    (folder / "model.plan").write_bytes(b"never deserialized")
    io = [{"name": "input_ids", "mode": "input"}, {"name": "attention_mask", "mode": "input"},
          {"name": "sentence_embedding", "mode": "output"}]
    manifest = {"kind": "trt-edge engine manifest", "schema": 1, "status": "built", "io": io}
    (folder / "model.plan.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder / "model.plan"


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_run_input_is_one_line_before_any_work(name: str, embedding_model: tuple[Path, Any, Any],
                                                   tiny_onnx: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def no_inference(self: Any) -> None:
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(OnnxRuntimeRunner, "activate_impl", no_inference)
    monkeypatch.setenv("TRT_EDGE_CACHE", str(tmp_path / "kit-cache"))
    onnx = tmp_path / "model" / "model.onnx"
    shutil.copytree(embedding_model[0].parent, onnx.parent)
    argv = _bad_args(name, tmp_path / "work", onnx, tiny_onnx)
    before = sorted(p for p in tmp_path.rglob("*"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("trt-edge: error:")]
    assert info.value.code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert BAD[name] in lines[0], lines[0]
    assert sorted(p for p in tmp_path.rglob("*")) == before, "left files behind"
