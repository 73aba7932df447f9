"""Issue 32 item 5: a Triton model repository generated from the manifest, each `config.pbtxt` parsed with
Triton's own `model_config.proto` (vendored) through protobuf, and compared with the bundle it came from.

Triton does not run here: these tests prove the configuration is what Triton's schema accepts and that it
says what the manifest, the ONNX and the profile say; bad input is in tests/test_bad_inputs.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trt_edge.config import RunConfig, load_config
from trt_edge.engine.manifest import finalize_manifest, new_manifest, write_manifest
from trt_edge.engine.onnxinfo import onnx_inputs, onnx_outputs
from trt_edge.engine.plan import BuildPlan
from trt_edge.engine.triton import (
    CONFIG_FILE,
    LABELS_FILE,
    TritonModel,
    _onnx_model,
    _quote,
    parse_config,
    render_config,
    write_repository,
)
from trt_edge.errors import TrtEdgeError
from trt_edge.files import sha256_file

DATA = Path(__file__).resolve().parents[2] / "trt_edge" / "data" / "triton"
_TYPES = {"float32": "TYPE_FP32", "int64": "TYPE_INT64"}


def _config(folder: Path) -> Any:
    return parse_config((folder / CONFIG_FILE).read_text(encoding="utf-8"), str(folder))


def _type_name(message: Any, number: int) -> str:
    return str(message.DESCRIPTOR.file.pool.FindEnumTypeByName("inference.DataType").values_by_number[number].name)


def _assert_io_like_onnx(config: Any, onnx: Path, batching: bool) -> None:
    """Every input and output of the config is the ONNX's: names, data types, dims (-1 where dynamic)."""
    for parsed, declared in ((config.input, onnx_inputs(onnx)), (config.output, onnx_outputs(onnx))):
        assert [t.name for t in parsed] == [t.name for t in declared]
        for p, d in zip(parsed, declared, strict=True):
            assert _type_name(config, p.data_type) == _TYPES[d.dtype]
            dims = [x if isinstance(x, int) else -1 for x in d.dims]
            assert list(p.dims) == (dims[1:] if batching else dims)


@pytest.fixture(scope="module")
def text_build(tiny_onnx_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trt_edge.engine.stage import run

    out = tmp_path_factory.mktemp("triton-text") / "build"
    run(load_config(None, {"batch": [1, 4, 16]}, "build"), tiny_onnx_dir / "model.onnx", out)
    return out


def test_vendored_descriptor_matches_the_proto(tmp_path: Path) -> None:
    """The descriptor set the kit parses with is the vendored .proto compiled again (no drift)."""
    protoc = pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools (a dev dependency) compiles the .proto")
    from google.protobuf import descriptor_pb2

    out = tmp_path / "fresh.pb"
    assert protoc.main(["protoc", f"-I{DATA}", f"--descriptor_set_out={out}", "model_config.proto"]) == 0
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    vendored = descriptor_pb2.FileDescriptorSet.FromString((DATA / "model_config.descriptor.pb").read_bytes())
    assert fresh == vendored
    text = (DATA / "model_config.proto").read_text(encoding="utf-8")
    assert "Redistribution and use in source and binary forms" in text and (DATA / "LICENSE").is_file()


def test_schema_refuses_what_triton_would(tmp_path: Path) -> None:
    """The parse is a real check: an unknown field or a data type Triton lacks is refused in one line."""
    assert parse_config('name: "m"\nmax_batch_size: 8\n').max_batch_size == 8
    with pytest.raises(TrtEdgeError, match="not a valid Triton model configuration"):
        parse_config('name: "m"\nmax_batch: 8\n')
    with pytest.raises(TrtEdgeError, match="not a valid Triton model configuration"):
        parse_config('input [ { name: "x" data_type: TYPE_FP8 dims: [ 4 ] } ]\n')
    # Strings are escaped so that any name or note survives: quotes, backslashes, newlines, non-ASCII.
    odd = 'ré"sumé\\ x\n✓'
    assert parse_config(f"name: {_quote(odd)}\n").name == odd


def test_text_bundle_gives_the_plan_and_its_onnx_fallback(text_build: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    record = write_repository(text_build, repo)
    bundle = text_build / "bundle"
    onnx = bundle / "model.onnx"
    plan = BuildPlan.from_dict(json.loads((bundle / "plan.json").read_text()))
    assert [m["name"] for m in record.metrics["models"]] == ["text_classification_trt", "text_classification_onnx"]

    trt = _config(repo / "text_classification_trt")
    assert trt.platform == "tensorrt_plan" and trt.default_model_filename == "model.plan"
    assert trt.max_batch_size == max(p.max[0] for p in plan.profiles) == 16  # the profile's batch bound
    assert list(trt.dynamic_batching.preferred_batch_size) == [4, 16]  # the profile's opt and max
    _assert_io_like_onnx(trt, onnx, batching=True)
    assert [g.kind for g in trt.instance_group] == [1]  # KIND_GPU
    params = {k: v.string_value for k, v in trt.parameters.items()}
    assert params["trt_edge.task"] == "text-classification"
    assert params["trt_edge.max_length"] == str(plan.profiles[0].max[1])
    assert params["trt_edge.preprocessor"] == "tokenizer"
    # No TensorRT here: the plan's folder waits for build_on_device.sh's engine, and the README says so.
    assert not any((repo / "text_classification_trt" / "1").iterdir())
    assert "NO PLAN YET" in (repo / "README.txt").read_text()
    assert "Triton itself did not run" in (repo / "README.txt").read_text()

    cpu = _config(repo / "text_classification_onnx")
    assert (cpu.platform, cpu.backend) == ("onnxruntime_onnx", "onnxruntime")
    assert [g.kind for g in cpu.instance_group] == [2]  # KIND_CPU
    assert cpu.max_batch_size == trt.max_batch_size
    _assert_io_like_onnx(cpu, onnx, batching=True)
    assert sha256_file(repo / "text_classification_onnx" / "1" / "model.onnx") == sha256_file(onnx)
    assert onnx.is_file()  # copied, not moved
    for name in ("text_classification_trt", "text_classification_onnx"):
        (logits,) = _config(repo / name).output
        assert logits.label_filename == LABELS_FILE
        labels = (repo / name / LABELS_FILE).read_text().splitlines()
        id2label = json.loads((bundle / "tokenizer" / "config.json").read_text())["id2label"]
        assert labels == [id2label[str(i)] for i in range(len(id2label))] and len(labels) == logits.dims[0]
        assert (repo / name / "tokenizer" / "tokenizer.json").is_file()

    # Generated again into the same folder: it is this command's, so it is replaced, not refused.
    write_repository(text_build, repo, name="sentiment")
    assert sorted(p.name for p in repo.iterdir() if p.is_dir()) == ["sentiment_onnx", "sentiment_trt"]


def test_built_engine_in_the_bundle_is_copied_with_its_manifest_io(text_build: Path, tmp_path: Path) -> None:
    """Where build_on_device.sh left engine/model.plan, its manifest's I/O (TensorRT's shapes and profile 0,
    as `builder.engine_io` writes them) drive the config and the plan is copied after its sha256 is checked.
    The bytes stand in for a plan: no TensorRT reads them here, only the manifest-to-config translation is
    under test."""
    bundle = tmp_path / "bundle"
    shutil.copytree(text_build / "bundle", bundle)
    engine = bundle / "engine"
    engine.mkdir()
    (engine / "model.plan").write_bytes(b"stand-in bytes, never deserialized")
    io = [{"name": n, "mode": "input", "dtype": "int64", "shape": [-1, -1],
           "profile": {"min": [1, 1], "opt": [4, 16], "max": [16, 32]}} for n in ("input_ids", "attention_mask")]
    io.append({"name": "logits", "mode": "output", "dtype": "float", "shape": [-1, 3]})
    plan = BuildPlan.from_dict(json.loads((bundle / "plan.json").read_text()))
    manifest = finalize_manifest(new_manifest(plan, status="built", io=io, task="text-classification"),
                                 engine / "model.plan")
    write_manifest(engine / "model.plan.json", manifest)
    repo = tmp_path / "repo"
    write_repository(bundle, repo)
    trt = _config(repo / "text_classification_trt")
    assert trt.max_batch_size == 16 and list(trt.dynamic_batching.preferred_batch_size) == [4, 16]
    assert [(t.name, _type_name(trt, t.data_type), list(t.dims)) for t in trt.input] == [
        ("input_ids", "TYPE_INT64", [-1]), ("attention_mask", "TYPE_INT64", [-1])]
    assert [(t.name, _type_name(trt, t.data_type), list(t.dims)) for t in trt.output] == [("logits", "TYPE_FP32", [3])]
    assert {k: v.string_value for k, v in trt.parameters.items()}["trt_edge.max_length"] == "32"
    assert sha256_file(repo / "text_classification_trt" / "1" / "model.plan") == manifest["plan"]["sha256"]

    # The engine folder alone (build_on_device.sh's output): the plan's model only, from the same manifest.
    write_repository(engine, tmp_path / "engine-repo")
    assert [p.name for p in (tmp_path / "engine-repo").iterdir() if p.is_dir()] == ["text_classification_trt"]
    assert _config(tmp_path / "engine-repo" / "text_classification_trt").max_batch_size == 16

    # A manifest written after a trtexec build lists no I/O: the bundle around the engine gives them.
    write_manifest(engine / "model.plan.json", {**manifest, "io": []})
    write_repository(bundle, repo)
    trt = _config(repo / "text_classification_trt")
    assert trt.max_batch_size == plan.profiles[0].max[0]
    assert (repo / "text_classification_trt" / "1" / "model.plan").is_file()
    _assert_io_like_onnx(trt, bundle / "model.onnx", batching=True)

    (engine / "model.plan").write_bytes(b"another plan")  # not the one the manifest describes
    with pytest.raises(TrtEdgeError, match="sha256 does not match the manifest"):
        write_repository(bundle, tmp_path / "repo2")
    assert not (tmp_path / "repo2").exists()


def test_cpu_artifact_repository(tiny_bert_onnx: Path, tiny_bert_dir: Path, demo_data_config: Any,
                                 tmp_path: Path) -> None:
    from trt_edge.quantize.stage import run

    cfg = RunConfig({"task": {"max_length": 32, "data": demo_data_config.to_dict()},
                     "calibrate": {"targets": ["cpu"], "data": {"samples": 16}, "tokenizer": str(tiny_bert_dir),
                                   "cpu": {"runs": 1, "candidates": ["fp32"], "budget": 100.0}}})
    calibrate = tmp_path / "calibrate"
    run(cfg, tiny_bert_onnx, calibrate)
    repo = tmp_path / "repo"
    write_repository(calibrate, repo, max_batch=8)
    (name,) = [p.name for p in repo.iterdir() if p.is_dir()]
    assert name == "text_classification_cpu"
    cpu = _config(repo / name)
    assert (cpu.platform, cpu.max_batch_size, [g.kind for g in cpu.instance_group]) == ("onnxruntime_onnx", 8, [2])
    _assert_io_like_onnx(cpu, calibrate / "model.cpu.onnx", batching=True)
    params = {k: v.string_value for k, v in cpu.parameters.items()}
    assert params["trt_edge.max_length"] == "32" and params["trt_edge.preprocessor"] == "tokenizer"
    assert sha256_file(repo / name / "1" / "model.onnx") == sha256_file(calibrate / "model.cpu.onnx")
    from trt_edge.runtime.ort import DISABLED_OPTIMIZERS_KEY

    hint = [n for n in params.get(DISABLED_OPTIMIZERS_KEY, "").split(",") if n]
    assert hint == json.loads((calibrate / "stage.json").read_text())["metrics"]["cpu_disabled_optimizers"]
    assert cpu.optimization.graph.level == (-1 if hint else 0)

    # The session hint, where the winner carries one: the nearest Triton setting plus the exact list.
    model = _onnx_model("hinted", calibrate / "model.cpu.onnx", calibrate, 8, 32, ["SkipLayerNormFusion"])
    parsed = parse_config(render_config(model))
    assert parsed.optimization.graph.level == -1
    assert parsed.parameters[DISABLED_OPTIMIZERS_KEY].string_value == "SkipLayerNormFusion"

    # A folder edited after the stage wrote it is refused before anything is copied.
    (calibrate / "model.cpu.onnx").write_bytes((calibrate / "model.cpu.onnx").read_bytes() + b"\0")
    with pytest.raises(TrtEdgeError, match="changed since the calibrate stage wrote them"):
        write_repository(calibrate, tmp_path / "repo2")


def test_image_bundle_repository(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
    from vision_helpers import LABELS, write_image_folder, write_vision_model

    from trt_edge.engine.stage import run as build
    from trt_edge.export.stage import run as export

    images = write_image_folder(tmp_path / "images")
    cfg = RunConfig({"task": {"type": "image-classification",
                              "data": {"source": str(images), "train_size": 0.6, "validation_size": 0.2,
                                       "test_size": 0.2}},
                     "export": {"parity_batch_sizes": [1]}})
    export(cfg, write_vision_model(tmp_path / "vit", "vit"), tmp_path / "export")
    build(RunConfig({**cfg.raw, "build": {"batch": [1, 2, 8]}}), tmp_path / "export", tmp_path / "build")
    repo = tmp_path / "repo"
    write_repository(tmp_path / "build" / "bundle", repo)
    onnx = tmp_path / "build" / "bundle" / "model.onnx"
    for name in ("image_classification_trt", "image_classification_onnx"):
        config = _config(repo / name)
        assert config.max_batch_size == 8
        _assert_io_like_onnx(config, onnx, batching=True)
        assert list(config.input[0].dims) == [3, 16, 16]
        assert (repo / name / "preprocessor" / "preprocessor_config.json").is_file()
        assert (repo / name / LABELS_FILE).read_text().splitlines() == list(LABELS)
        params = {k: v.string_value for k, v in config.parameters.items()}
        assert params["trt_edge.task"] == "image-classification" and "trt_edge.max_length" not in params


def test_a_model_without_a_batch_axis_is_not_batched(tmp_path: Path) -> None:
    """max_batch_size 0 and full dims where the I/O's first axis is not the dynamic batch."""
    from trt_edge.engine.triton import Tensor

    model = TritonModel("fixed", "onnxruntime", [Tensor("x", "TYPE_FP32", (1, 4))], [Tensor("y", "TYPE_FP32", (1, 2))],
                        0)
    parsed = parse_config(render_config(model))
    assert parsed.max_batch_size == 0 and list(parsed.input[0].dims) == [1, 4]
    assert not parsed.HasField("dynamic_batching")


def test_cli_writes_the_repository(text_build: Path, tmp_path: Path) -> None:
    """`trt-edge triton` end to end in a real subprocess: one JSON line per model, exit 0."""
    done = subprocess.run([sys.executable, "-m", "trt_edge", "triton", "--bundle", str(text_build), "--out",
                           str(tmp_path / "repo")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [m["platform"] for m in lines] == ["tensorrt_plan", "onnxruntime_onnx"]
    assert "Triton itself was not run" in done.stderr


def _tritonserver() -> str | None:
    """A Triton server binary: $TRITONSERVER, `tritonserver` on PATH, or the one inside an installed
    nvidia-pytriton wheel (which ships the server with the Python backend only)."""
    import importlib.util
    import os

    if os.environ.get("TRITONSERVER"):
        return os.environ["TRITONSERVER"]
    found = shutil.which("tritonserver")
    if found:
        return found
    spec = importlib.util.find_spec("pytriton")
    if spec is not None and spec.submodule_search_locations:
        binary = Path(next(iter(spec.submodule_search_locations))) / "tritonserver" / "bin" / "tritonserver"
        return str(binary) if binary.is_file() else None
    return None


def test_tritonserver_reads_the_repository(text_build: Path, tmp_path: Path) -> None:
    """Where a Triton server binary exists, it reads every generated config.pbtxt with its own C++ parser: each
    model gets past the configuration to loading (READY, or a backend or plan this machine lacks), never a
    parse error. Skipped without one (none is installed by the dev dependencies: nvidia-pytriton would
    downgrade numpy and protobuf)."""
    import re

    server = _tritonserver()
    if server is None:
        pytest.skip("no tritonserver (set TRITONSERVER=/path/to/tritonserver, e.g. from the nvidia-pytriton wheel)")
    repo = tmp_path / "repo"
    write_repository(text_build, repo)
    done = subprocess.run([server, f"--model-repository={repo}", "--allow-http=false", "--allow-grpc=false",
                           "--allow-metrics=false", "--disable-auto-complete-config"],
                          capture_output=True, text=True, timeout=120)
    log = done.stdout + done.stderr
    assert "Error parsing text-format" not in log, log[-3000:]
    status = dict(re.findall(r"^\| (\S+)\s+\| 1\s+\| (.+?)\s*\|$", log, re.MULTILINE))
    assert set(status) == {"text_classification_trt", "text_classification_onnx"}, log[-3000:]
    for name, state in status.items():
        assert state == "READY" or "unable to find backend library" in state or "model.plan" in state, (name, state)
