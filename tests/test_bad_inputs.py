"""A corpus of malformed inputs, one per case: configs, data files, model folders, ONNX files, manifests,
bundles, tegrastats logs and command-line arguments. Each must be refused with exactly one
`trt-edge: error:` line and exit status 2, without a traceback, and leave nothing behind.

Cases run in-process through `trt_edge.cli.main` on tiny fixtures (a 2-layer BERT, its ONNX, a 60-row
CSV), so the whole corpus takes seconds; `test_cli.py` covers the same contract through subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from trt_edge.cli import main


@dataclass
class Ctx:
    """Shared read-only fixtures (`model`, `onnx`, `csv`) and a fresh per-case folder (`work`)."""

    model: Path
    onnx: Path
    csv: Path
    bundle: Path
    work: Path

    def file(self, name: str, content: str | bytes) -> str:
        path = self.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return str(path)

    def model_copy(self, name: str) -> Path:
        dest = self.work / name
        shutil.copytree(self.model, dest)
        return dest

    def out(self, name: str = "out") -> str:
        return str(self.work / name)


Case = Callable[[Ctx], list[str]]
CASES: dict[str, tuple[Case, str]] = {}


def case(name: str, expect: str) -> Callable[[Case], Case]:
    """Register a case: `expect` is a substring the one error line must contain."""
    def register(fn: Case) -> Case:
        CASES[name] = (fn, expect)
        return fn
    return register


def _jsonl(rows: list[object]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _good_rows(n: int = 30) -> list[object]:
    return [{"text": f"text {i}", "label": "ab"[i % 2]} for i in range(n)]


# configs --------------------------------------------------------------------------------------------
@case("config-missing", "config file not found")
def _(c: Ctx) -> list[str]:
    return ["distill", "--config", str(c.work / "nope.yaml"), "--out", c.out()]


@case("config-is-a-folder", "config file not found")
def _(c: Ctx) -> list[str]:
    (c.work / "cfg.yaml").mkdir()
    return ["distill", "--config", str(c.work / "cfg.yaml"), "--out", c.out()]


@case("config-duplicate-keys", "duplicate key 'max_length'")
def _(c: Ctx) -> list[str]:
    return ["distill", "--config", c.file("c.yaml", "task:\n  max_length: 16\n  max_length: 32\n"), "--out", c.out()]


@case("config-duplicate-sections", "duplicate key 'task'")
def _(c: Ctx) -> list[str]:
    return ["distill", "--config", c.file("c.yaml", "task: {}\ntask: {}\n"), "--out", c.out()]


@case("config-top-level-list", "must be a YAML mapping")
def _(c: Ctx) -> list[str]:
    return ["distill", "--config", c.file("c.yaml", "- a\n- b\n"), "--out", c.out()]


@case("config-alias-bomb", "too large or too deeply nested")
def _(c: Ctx) -> list[str]:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 7)]
    return ["distill", "--config", c.file("c.yaml", "\n".join(lines) + "\n"), "--out", c.out()]


@case("config-deep-nesting", "nested too deeply")
def _(c: Ctx) -> list[str]:
    return ["distill", "--config", c.file("c.yaml", "a: " + "[" * 3000 + "]" * 3000 + "\n"), "--out", c.out()]


@case("config-binary", "unreadable")
def _(c: Ctx) -> list[str]:
    return ["distill", "--config", c.file("c.yaml", b"\xff\xfe\x00\x01garbage"), "--out", c.out()]


@case("config-malformed-yaml", "malformed YAML at line")
def _(c: Ctx) -> list[str]:
    return ["distill", "--config", c.file("c.yaml", "task: [unclosed\n"), "--out", c.out()]


@case("config-unknown-section", "unknown config section 'distil'")
def _(c: Ctx) -> list[str]:
    return ["distill", "--config", c.file("c.yaml", "distil: {}\n"), "--out", c.out()]


@case("config-section-not-mapping", "must be a mapping")
def _(c: Ctx) -> list[str]:
    return ["distill", "--config", c.file("c.yaml", "task: 3\n"), "--out", c.out()]


@case("config-unknown-key", "did you mean 'temperature'")
def _(c: Ctx) -> list[str]:
    return ["distill", "--distill.temprature=3", "--out", c.out()]


@case("config-train-size-nan", "expected a number, got NaN")
def _(c: Ctx) -> list[str]:
    return ["distill", "--config", c.file("c.yaml", "task:\n  data:\n    train_size: .nan\n"), "--out", c.out()]


@case("config-train-size-inf", "train_size must be a positive")
def _(c: Ctx) -> list[str]:
    return ["distill", "--config", c.file("c.yaml", "task:\n  data:\n    train_size: .inf\n"), "--out", c.out()]


@case("config-train-size-fractional-count", "neither a fraction")
def _(c: Ctx) -> list[str]:
    return ["distill", "--task.data.train_size=2.5", "--out", c.out()]


@case("config-max-length-zero", "max_length must be at least 8")
def _(c: Ctx) -> list[str]:
    return ["distill", "--task.max_length=0", "--out", c.out()]


@case("config-max-length-negative", "max_length must be at least 8")
def _(c: Ctx) -> list[str]:
    return ["export", "--model", str(c.model), "--task.max_length=-5", "--out", c.out()]


@case("config-max-length-past-positions-distill", "has 128 positions")
def _(c: Ctx) -> list[str]:
    return ["distill", f"--distill.teacher={c.model}", f"--task.data.source={c.csv}", "--task.max_length=100000",
            "--out", c.out()]


@case("config-max-length-past-positions-calibrate", "has 128 positions")
def _(c: Ctx) -> list[str]:
    return ["calibrate", "--onnx", str(c.onnx), f"--task.data.source={c.csv}", "--task.max_length=100000",
            "--data.samples=8", "--out", c.out()]


@case("config-unknown-encoding", "not a text encoding")
def _(c: Ctx) -> list[str]:
    return ["distill", "--task.data.encoding=utf-99", "--out", c.out()]


@case("config-codec-not-text", "not a text encoding")
def _(c: Ctx) -> list[str]:
    return ["distill", "--task.data.encoding=rot13", "--out", c.out()]


@case("config-wrong-type", "expected an integer")
def _(c: Ctx) -> list[str]:
    return ["distill", "--distill.train.epochs=abc", "--out", c.out()]


# data files -----------------------------------------------------------------------------------------
@case("data-missing", "dataset not found")
def _(c: Ctx) -> list[str]:
    return ["distill", f"--task.data.source={c.work / 'none.csv'}", "--out", c.out()]


@case("data-folder-named-csv", "expected one sub-folder")
def _(c: Ctx) -> list[str]:
    (c.work / "data.csv").mkdir()
    return ["distill", f"--task.data.source={c.work / 'data.csv'}", "--out", c.out()]


@case("data-folder-named-csv-format-csv", "found a folder")
def _(c: Ctx) -> list[str]:
    (c.work / "data.csv").mkdir()
    return ["distill", f"--task.data.source={c.work / 'data.csv'}", "--task.data.format=csv", "--out", c.out()]


@case("data-nan-label", "label is nan")
def _(c: Ctx) -> list[str]:
    path = c.file("d.jsonl", _jsonl(_good_rows()) + '{"text": "x", "label": NaN}\n')
    return ["distill", f"--task.data.source={path}", "--out", c.out()]


@case("data-list-label", "label is a list")
def _(c: Ctx) -> list[str]:
    path = c.file("d.jsonl", _jsonl([*_good_rows(), {"text": "x", "label": [1, 2]}]))
    return ["distill", f"--task.data.source={path}", "--out", c.out()]


@case("data-dict-text", "text is a dict")
def _(c: Ctx) -> list[str]:
    path = c.file("d.jsonl", _jsonl([*_good_rows(), {"text": {"a": 1}, "label": "a"}]))
    return ["distill", f"--task.data.source={path}", "--out", c.out()]


@case("data-nan-label-csv", "missing value")
def _(c: Ctx) -> list[str]:
    path = c.file("d.csv", "text,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(30)) + "x,NaN\n")
    return ["distill", f"--task.data.source={path}", "--out", c.out()]


@case("data-deep-jsonl", "nested too deeply")
def _(c: Ctx) -> list[str]:
    path = c.file("d.jsonl", '{"text": ' + "[" * 50000 + "]" * 50000 + ', "label": "a"}\n')
    return ["distill", f"--task.data.source={path}", "--out", c.out()]


@case("data-jsonl-not-object", "must be an object")
def _(c: Ctx) -> list[str]:
    path = c.file("d.jsonl", "[1, 2]\n")
    return ["distill", f"--task.data.source={path}", "--out", c.out()]


@case("data-csv-nul", "NUL")
def _(c: Ctx) -> list[str]:
    path = c.file("d.csv", b"text,label\na\x00b,c\n")
    return ["distill", f"--task.data.source={path}", "--out", c.out()]


@case("data-csv-extra-fields", "more fields than the header")
def _(c: Ctx) -> list[str]:
    path = c.file("d.csv", "text,label\na,b,c\n")
    return ["distill", f"--task.data.source={path}", "--out", c.out()]


@case("data-missing-column", "no column 'text'")
def _(c: Ctx) -> list[str]:
    path = c.file("d.csv", "body,y\na,b\n")
    return ["distill", f"--task.data.source={path}", "--out", c.out()]


@case("data-one-class", "at least 2 classes")
def _(c: Ctx) -> list[str]:
    path = c.file("d.csv", "text,label\n" + "".join(f"t{i},a\n" for i in range(20)))
    return ["distill", f"--task.data.source={path}", "--out", c.out()]


@case("data-undecodable", "not utf-8 text (invalid continuation byte at byte 14)")
def _(c: Ctx) -> list[str]:
    path = c.file("d.csv", b"text,label\ncaf\xe9,a\n")
    return ["distill", f"--task.data.source={path}", "--out", c.out()]


@case("data-empty-file", "no rows")
def _(c: Ctx) -> list[str]:
    path = c.file("d.csv", "")
    return ["distill", f"--task.data.source={path}", "--out", c.out()]


@case("data-splits-too-large", "only 60 remain")
def _(c: Ctx) -> list[str]:
    return ["distill", f"--task.data.source={c.csv}", "--task.data.train_size=100", "--out", c.out()]


@case("data-unknown-suffix", "cannot tell the format")
def _(c: Ctx) -> list[str]:
    path = c.file("d.xlsx", "x")
    return ["distill", f"--task.data.source={path}", "--out", c.out()]


# model folders --------------------------------------------------------------------------------------
def _export(c: Ctx, model: Path | str) -> list[str]:
    return ["export", "--model", str(model), f"--task.data.source={c.csv}", "--out", c.out()]


@case("model-pickle-only", "pickled")
def _(c: Ctx) -> list[str]:
    m = c.model_copy("m")
    (m / "model.safetensors").unlink()
    (m / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    return _export(c, m)


@case("model-pickle-side-door", "pickled")
def _(c: Ctx) -> list[str]:
    m = c.model_copy("m")
    (m / "model.safetensors").rename(m / "adapter.safetensors")
    (m / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    return _export(c, m)


@case("model-truncated-safetensors", "truncated")
def _(c: Ctx) -> list[str]:
    m = c.model_copy("m")
    data = (m / "model.safetensors").read_bytes()
    (m / "model.safetensors").write_bytes(data[: len(data) // 2])
    return _export(c, m)


@case("model-random-safetensors", "not a safetensors file")
def _(c: Ctx) -> list[str]:
    m = c.model_copy("m")
    (m / "model.safetensors").write_bytes(bytes(range(256)) * 20)
    return _export(c, m)


@case("model-empty-safetensors", "not a safetensors file")
def _(c: Ctx) -> list[str]:
    m = c.model_copy("m")
    (m / "model.safetensors").write_bytes(b"")
    return _export(c, m)


@case("model-index-outside-relative", "outside the model folder")
def _(c: Ctx) -> list[str]:
    m = c.model_copy("m")
    (m / "model.safetensors").rename(c.work / "elsewhere.safetensors")
    (m / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "../elsewhere.safetensors"}}))
    return _export(c, m)


@case("model-index-outside-absolute", "outside the model folder")
def _(c: Ctx) -> list[str]:
    m = c.model_copy("m")
    (m / "model.safetensors").rename(c.work / "elsewhere.safetensors")
    target = str(c.work / "elsewhere.safetensors")
    (m / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": target}}))
    return _export(c, m)


@case("model-index-missing-shard", "is missing")
def _(c: Ctx) -> list[str]:
    m = c.model_copy("m")
    (m / "model.safetensors").unlink()
    (m / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "part-1.safetensors"}}))
    return _export(c, m)


@case("model-index-not-json", "not valid shard index")
def _(c: Ctx) -> list[str]:
    m = c.model_copy("m")
    (m / "model.safetensors").unlink()
    (m / "model.safetensors.index.json").write_text("{nope")
    return _export(c, m)


@case("model-without-tokenizer", "tokenizer")
def _(c: Ctx) -> list[str]:
    m = c.work / "m"
    m.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(c.model / name, m / name)
    return _export(c, m)


@case("model-config-not-json", "config.json")
def _(c: Ctx) -> list[str]:
    m = c.model_copy("m")
    (m / "config.json").write_text("{not json")
    return _export(c, m)


@case("model-config-unknown-arch", "not a model config")
def _(c: Ctx) -> list[str]:
    m = c.model_copy("m")
    (m / "config.json").write_text(json.dumps({"model_type": "no-such-arch"}))
    return _export(c, m)


@case("model-is-a-file", "not a file")
def _(c: Ctx) -> list[str]:
    return _export(c, c.file("model.bin", "x"))


@case("model-missing", "model folder not found")
def _(c: Ctx) -> list[str]:
    return _export(c, c.work / "none")


@case("prune-without-model", "give --model")
def _(c: Ctx) -> list[str]:
    return ["prune", "--out", c.out()]


# ONNX files -----------------------------------------------------------------------------------------
@case("onnx-garbage-build", "not a readable ONNX")
def _(c: Ctx) -> list[str]:
    return ["build", "--onnx", c.file("m.onnx", b"garbage"), "--out", c.out()]


@case("onnx-empty-build", "onnx.checker")
def _(c: Ctx) -> list[str]:
    return ["build", "--onnx", c.file("m.onnx", b""), "--out", c.out()]


@case("onnx-wrong-inputs-calibrate", "expected inputs")
def _(c: Ctx) -> list[str]:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(c.work / "id.onnx"))
    return ["calibrate", "--onnx", str(c.work / "id.onnx"), "--tokenizer", str(c.model), "--out", c.out()]


@case("onnx-garbage-lint", "onnx")
def _(c: Ctx) -> list[str]:
    return ["lint", c.file("m.onnx", b"\x08\x07garbage")]


@case("onnx-garbage-check-sparsity", "not a readable ONNX")
def _(c: Ctx) -> list[str]:
    return ["check-sparsity", c.file("m.onnx", b"garbage")]


@case("check-sparsity-json-out-user-file", "is not a trt-edge sparsity check report")
def _(c: Ctx) -> list[str]:
    return ["check-sparsity", str(c.onnx), "--json_out", c.file("notes.json", '{"mine": 1}')]


@case("check-sparsity-json-out-folder", "is a folder")
def _(c: Ctx) -> list[str]:
    (c.work / "reports").mkdir()
    return ["check-sparsity", str(c.onnx), "--json_out", str(c.work / "reports")]


@case("onnx-garbage-run", "ONNX")
def _(c: Ctx) -> list[str]:
    return ["run", "--text", "x", "--onnx", c.file("m.onnx", b"garbage"), "--tokenizer", str(c.model)]


@case("onnx-external-data-outside", "points outside")
def _(c: Ctx) -> list[str]:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 4), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    path = c.work / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path),
              save_as_external_data=True, location="data.bin", size_threshold=0)
    model = onnx.load(str(path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../../etc/passwd"
    onnx.save(model, str(path))
    return ["build", "--onnx", str(path), "--out", c.out()]


@case("onnx-missing", "no such ONNX file")
def _(c: Ctx) -> list[str]:
    return ["build", "--onnx", str(c.work / "none.onnx"), "--out", c.out()]


@case("stage-artifact-outside-folder", "points outside the stage folder")
def _(c: Ctx) -> list[str]:
    c.file("st/stage.json", json.dumps({"stage": "export", "artifacts": {"onnx": "../../etc/passwd"}}))
    return ["build", "--onnx", str(c.work / "st"), "--out", c.out()]


@case("stage-artifacts-malformed", "malformed stage record")
def _(c: Ctx) -> list[str]:
    c.file("st/stage.json", json.dumps({"stage": "export", "artifacts": {"onnx": ["a"]}}))
    return ["calibrate", "--onnx", str(c.work / "st"), "--out", c.out()]


@case("stage-json-deep", "unreadable")
def _(c: Ctx) -> list[str]:
    c.file("st/stage.json", "[" * 100000 + "]" * 100000)
    return ["export", "--model", str(c.work / "st"), "--out", c.out()]


# the qat stage: every input checked before the data is loaded or a step is trained -------------------
def _calibrate_folder(c: Ctx, artifacts: dict[str, str], onnx_sha: str = "0" * 64) -> str:
    """A calibrate stage record (no real calibration needed: the qat stage refuses before reading more)."""
    for name in artifacts.values():
        c.file(f"cal/{name}", "{}")
    c.file("cal/stage.json", json.dumps({"stage": "calibrate", "artifacts": artifacts, "metrics": {},
                                         "inputs": {"onnx": onnx_sha}}))
    return str(c.work / "cal")


@case("qat-no-calibrate", "qat needs --calibrate")
def _(c: Ctx) -> list[str]:
    return ["qat", "--model", str(c.model), "--out", c.out()]


@case("qat-calibrate-missing", "not a finished calibrate stage folder")
def _(c: Ctx) -> list[str]:
    return ["qat", "--calibrate", str(c.work / "none"), "--model", str(c.model), "--out", c.out()]


@case("qat-model-missing", "model folder not found")
def _(c: Ctx) -> list[str]:
    cal = _calibrate_folder(c, {"onnx": "model.int8.onnx", "ranges": "calibration.json"})
    return ["qat", "--calibrate", cal, "--model", str(c.work / "none"), "--out", c.out()]


@case("qat-calibrate-without-qdq", "not a calibrate stage with a TensorRT Q/DQ model")
def _(c: Ctx) -> list[str]:
    cal = _calibrate_folder(c, {"onnx_cpu": "model.cpu.onnx"})  # calibrate.targets: [cpu]
    return ["qat", "--calibrate", cal, "--model", str(c.model), "--out", c.out()]


@case("qat-onnx-not-the-calibrated-one", "sha256 differs")
def _(c: Ctx) -> list[str]:
    cal = _calibrate_folder(c, {"onnx": "model.int8.onnx", "ranges": "calibration.json"})
    return ["qat", "--calibrate", cal, "--model", str(c.model), "--onnx", str(c.onnx), "--out", c.out()]


@case("qat-onnx-missing", "give it with --onnx")
def _(c: Ctx) -> list[str]:
    cal = _calibrate_folder(c, {"onnx": "model.int8.onnx", "ranges": "calibration.json"})
    return ["qat", "--calibrate", cal, "--model", str(c.model), "--onnx", str(c.work / "none.onnx"), "--out",
            c.out()]


# manifests ------------------------------------------------------------------------------------------
def _engine(c: Ctx, manifest: str | None) -> list[str]:
    plan = c.file("e/model.plan", b"not a plan")
    if manifest is not None:
        c.file("e/model.plan.json", manifest)
    return ["run", "--text", "x", "--engine", plan]


_MANIFEST = {"kind": "trt-edge engine manifest", "schema": 1, "status": "built"}


@case("manifest-missing", "manifest missing")
def _(c: Ctx) -> list[str]:
    return _engine(c, None)


@case("manifest-not-json", "unreadable manifest")
def _(c: Ctx) -> list[str]:
    return _engine(c, "{oops")


@case("manifest-deep", "unreadable manifest")
def _(c: Ctx) -> list[str]:
    return _engine(c, "[" * 100000 + "]" * 100000)


@case("manifest-profile-without-max", "no valid 'max' shape")
def _(c: Ctx) -> list[str]:
    return _engine(c, json.dumps({**_MANIFEST, "io": [{"name": "input_ids", "profile": {"min": [1, 1]}}]}))


@case("manifest-wrong-kind", "not a trt-edge engine manifest")
def _(c: Ctx) -> list[str]:
    return _engine(c, json.dumps({"kind": "something else"}))


@case("manifest-io-not-list", "manifest field 'io' is not a list")
def _(c: Ctx) -> list[str]:
    return _engine(c, json.dumps({**_MANIFEST, "io": "x"}))


@case("manifest-plugins-not-objects", "non-object entry")
def _(c: Ctx) -> list[str]:
    return _engine(c, json.dumps({**_MANIFEST, "plugins": ["libx.so"]}))


# bundles --------------------------------------------------------------------------------------------
def _bundle_copy(c: Ctx) -> Path:
    dest = c.work / "bundle"
    shutil.copytree(c.bundle, dest)
    return dest


def _build_plan(c: Ctx, bundle: Path, onnx: Path | None = None) -> list[str]:
    return ["build", "--onnx", str(onnx or bundle / "model.onnx"), "--plan", str(bundle / "plan.json"),
            "--out", c.out()]


@case("bundle-onnx-replaced", "sha256 mismatch): model.onnx")
def _(c: Ctx) -> list[str]:
    b = _bundle_copy(c)
    data = (b / "model.onnx").read_bytes()
    (b / "model.onnx").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    return _build_plan(c, b)


@case("bundle-plan-edited", "sha256 mismatch): plan.json")
def _(c: Ctx) -> list[str]:
    b = _bundle_copy(c)
    (b / "plan.json").write_text((b / "plan.json").read_text().replace('"workspace_mib": 1024', '"workspace_mib": 1'))
    return _build_plan(c, b)


@case("bundle-without-checksums", "no SHA256SUMS")
def _(c: Ctx) -> list[str]:
    b = _bundle_copy(c)
    (b / "SHA256SUMS").unlink()
    return _build_plan(c, b)


@case("bundle-checksums-escape", "not a sha256sum line for a file inside the bundle")
def _(c: Ctx) -> list[str]:
    b = _bundle_copy(c)
    with open(b / "SHA256SUMS", "a", encoding="utf-8") as handle:
        handle.write("0" * 64 + "  ../../etc/passwd\n")
    return _build_plan(c, b)


@case("bundle-foreign-onnx", "not the ONNX this bundle was made for")
def _(c: Ctx) -> list[str]:
    b = _bundle_copy(c)
    other = c.work / "other.onnx"
    data = (b / "model.onnx").read_bytes()
    other.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    return _build_plan(c, b, other)


@case("bundle-onnx-and-checksums-replaced", "not the model the bundle was made for")
def _(c: Ctx) -> list[str]:
    from trt_edge.engine.bundle import write_checksums

    b = _bundle_copy(c)
    data = (b / "model.onnx").read_bytes()
    (b / "model.onnx").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    write_checksums(b)  # as `sha256sum * > SHA256SUMS` would
    return _build_plan(c, b)


# triton repositories (issue 32 item 5) ---------------------------------------------------------------
@case("triton-no-manifest", "no manifest here")
def _(c: Ctx) -> list[str]:
    c.file("src/model.onnx", b"not read")
    return ["triton", "--bundle", str(c.work / "src"), "--out", c.out()]


@case("triton-bundle-onnx-replaced", "sha256 mismatch): model.onnx")
def _(c: Ctx) -> list[str]:
    b = _bundle_copy(c)
    data = (b / "model.onnx").read_bytes()
    (b / "model.onnx").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    return ["triton", "--bundle", str(b), "--out", c.out()]


@case("triton-bundle-without-its-manifest", "cannot be verified")
def _(c: Ctx) -> list[str]:
    b = _bundle_copy(c)
    (b / "model.plan.json.template").unlink()
    return ["triton", "--bundle", str(b), "--out", c.out()]


@case("triton-plan-not-the-manifest-s", "sha256 does not match the manifest")
def _(c: Ctx) -> list[str]:
    from trt_edge.engine.manifest import new_manifest, write_manifest
    from trt_edge.engine.plan import BuildPlan

    engine = c.work / "engine"
    c.file("engine/model.plan", b"stand-in bytes, never deserialized")
    manifest = new_manifest(BuildPlan(precision="fp16", trt_version="10.3"), status="built")
    manifest["plan"] = {"file": "model.plan", "sha256": "0" * 64, "bytes": 34}
    write_manifest(engine / "model.plan.json", manifest)
    return ["triton", "--bundle", str(engine), "--out", c.out()]


@case("triton-out-is-a-user-folder", "trt-edge did not write")
def _(c: Ctx) -> list[str]:
    c.file("out/notes.txt", "mine")
    return ["triton", "--bundle", str(c.bundle), "--out", c.out()]


@case("triton-out-is-another-stage", "was not written by trt-edge triton (it holds a export stage)")
def _(c: Ctx) -> list[str]:
    c.file("out/stage.json", json.dumps({"stage": "export", "artifacts": {}}))
    c.file("out/model.onnx", b"theirs")
    return ["triton", "--bundle", str(c.bundle), "--out", c.out()]


@case("triton-max-batch-zero", "--max-batch must be at least 1")
def _(c: Ctx) -> list[str]:
    return ["triton", "--bundle", str(c.bundle), "--out", c.out(), "--max-batch", "0"]


@case("triton-bad-name", "--name 'a/b'")
def _(c: Ctx) -> list[str]:
    return ["triton", "--bundle", str(c.bundle), "--out", c.out(), "--name", "a/b"]


# tegrastats logs ------------------------------------------------------------------------------------
@case("tegrastats-empty", "no tegrastats line found")
def _(c: Ctx) -> list[str]:
    return ["tegrastats", c.file("t.log", "")]


@case("tegrastats-binary", "no tegrastats line found")
def _(c: Ctx) -> list[str]:
    return ["tegrastats", c.file("t.log", bytes(range(256)) * 8)]


@case("tegrastats-folder", "not found")
def _(c: Ctx) -> list[str]:
    (c.work / "t.log").mkdir()
    return ["tegrastats", str(c.work / "t.log")]


@case("tegrastats-missing", "not found")
def _(c: Ctx) -> list[str]:
    return ["tegrastats", str(c.work / "none.log")]


@case("tegrastats-garbage-lines", "no tegrastats line found")
def _(c: Ctx) -> list[str]:
    return ["tegrastats", c.file("t.log", "RAM lots\nGPU@ nope\nVDD_IN x/y\n" * 5)]


# command-line arguments -----------------------------------------------------------------------------
def _run(c: Ctx, *args: str) -> list[str]:
    return ["run", "--onnx", str(c.onnx), *args]


@case("cli-unknown-command", "unknown command 'frobnicate'")
def _(c: Ctx) -> list[str]:
    return ["frobnicate"]


@case("cli-unknown-option", "unknown option --nope")
def _(c: Ctx) -> list[str]:
    return _run(c, "--text", "x", "--nope", "1")


@case("cli-missing-required", "export needs --model")
def _(c: Ctx) -> list[str]:
    return ["export", "--out", c.out()]


@case("cli-extra-positional", "unexpected argument")
def _(c: Ctx) -> list[str]:
    return ["tegrastats", "a.log", "b", "c"]


@case("cli-run-no-text", "run needs")
def _(c: Ctx) -> list[str]:
    return _run(c)


@case("cli-run-empty-text", "non-empty")
def _(c: Ctx) -> list[str]:
    return _run(c, "--text", "")


@case("cli-run-text-without-value", "run needs")
def _(c: Ctx) -> list[str]:
    return _run(c, "--text")


@case("cli-run-engine-and-onnx", "exactly one of")
def _(c: Ctx) -> list[str]:
    return _run(c, "--text", "x", "--engine", "a.plan")


@case("cli-run-max-length-negative", "at least 2")
def _(c: Ctx) -> list[str]:
    return _run(c, "--text", "x", "--max_length", "-5")


@case("cli-run-max-length-zero", "at least 2")
def _(c: Ctx) -> list[str]:
    return _run(c, "--text", "x", "--max-length", "0")


@case("cli-run-max-length-word", "whole number")
def _(c: Ctx) -> list[str]:
    return _run(c, "--text", "x", "--max-length", "abc")


@case("cli-run-max-length-past-positions", "positions the model has")
def _(c: Ctx) -> list[str]:
    return _run(c, "--text", "x", "--max-length", "100000")


@case("cli-run-text-file-missing", "no such file")
def _(c: Ctx) -> list[str]:
    return _run(c, "--text-file", str(c.work / "none.txt"))


@case("cli-run-text-file-binary", "not UTF-8 text")
def _(c: Ctx) -> list[str]:
    return _run(c, "--text-file", c.file("t.txt", b"\xff\xfe\xfa"))


@case("cli-run-text-and-text-file", "not both")
def _(c: Ctx) -> list[str]:
    return _run(c, "--text", "x", "--text-file", c.file("t.txt", "y"))


@case("cli-run-lines-without-file", "--lines goes with --text-file")
def _(c: Ctx) -> list[str]:
    return _run(c, "--text", "x", "--lines")


@case("cli-switch-with-a-word", "is a switch")
def _(c: Ctx) -> list[str]:
    return ["pipeline", "--force=maybe", "--out", c.out()]


@case("cli-trt-version-garbage", "not a TensorRT version")
def _(c: Ctx) -> list[str]:
    return ["build", "--onnx", str(c.onnx), "--trt-version", "ten", "--out", c.out()]


@case("cli-lint-unknown-trt", "no lint table")
def _(c: Ctx) -> list[str]:
    return ["lint", str(c.onnx), "--trt", "99.1"]


@case("cli-profile-batch-zero", "positive")
def _(c: Ctx) -> list[str]:
    return ["profile", "--onnx", str(c.onnx), "--batch", "0", "--out", c.out()]


@case("cli-profile-iterations-and-duration", "not both")
def _(c: Ctx) -> list[str]:
    return ["profile", "--onnx", str(c.onnx), "--iterations", "3", "--duration", "1", "--out", c.out()]


@case("cli-out-is-a-file", "existing file")
def _(c: Ctx) -> list[str]:
    return ["build", "--onnx", str(c.onnx), "--out", c.file("mine.txt", "keep me")]


@case("cli-out-is-a-foreign-folder", "did not write")
def _(c: Ctx) -> list[str]:
    c.file("mine/notes.txt", "keep me")
    return ["build", "--onnx", str(c.onnx), "--out", str(c.work / "mine")]


@case("cli-out-empty", "not a usable path")
def _(c: Ctx) -> list[str]:
    return ["build", "--onnx", str(c.onnx), "--out", ""]


@case("cli-report-out-is-a-file", "existing file")
def _(c: Ctx) -> list[str]:
    return ["report", str(c.work), "--out", c.file("r.txt", "keep me")]


@case("cli-build-unknown-device", "unknown device")
def _(c: Ctx) -> list[str]:
    return ["build", "--onnx", str(c.onnx), "--device", "agx-nope", "--out", c.out()]


@case("cli-build-reversed-batch", "min <= opt <= max")
def _(c: Ctx) -> list[str]:
    return ["build", "--onnx", str(c.onnx), "--batch=[32,8,1]", "--out", c.out()]


@case("cli-build-negative-workspace", "workspace_mib must be at least 1")
def _(c: Ctx) -> list[str]:
    return ["build", "--onnx", str(c.onnx), "--workspace_mib=-1", "--out", c.out()]


# pipeline: refused by the validation pass, before any stage runs and before the run folder exists ----
def _pipeline(c: Ctx, *args: str) -> list[str]:
    return ["pipeline", "--config", "configs/demo.yaml", f"--task.data.source={c.csv}",
            "--task.data.label_column=label", "--task.data.encoding=utf-8", "--task.data.min_values={}",
            "--task.data.max_examples=60",
            "--task.data.train_size=40", "--task.data.validation_size=10", "--task.data.test_size=10",
            "--distill.teacher=" + str(c.model), "--distill.student.layers=[0]", *args, "--out", c.out("run")]


@case("pipeline-calibration-larger-than-train", "the train split")
def _(c: Ctx) -> list[str]:
    return _pipeline(c)  # demo.yaml draws 512 calibration samples; the train split has 40


@case("pipeline-unknown-build-device", "unknown device")
def _(c: Ctx) -> list[str]:
    # demo.yaml names its device in `target:`; the deprecated build.device would now contradict it first.
    return _pipeline(c, "--calibrate.data.samples=16", "--target.device=nope")


@case("pipeline-legacy-build-device-contradicts-target", "set target.device only")
def _(c: Ctx) -> list[str]:
    return _pipeline(c, "--calibrate.data.samples=16", "--build.device=agx-xavier")


@case("pipeline-xavier-target-with-sparse-weights", "no sparse tensor cores")
def _(c: Ctx) -> list[str]:
    # The target is applied by preflight: refused before the first stage, not at the build stage.
    return _pipeline(c, "--calibrate.data.samples=16", "--target.device=agx-xavier", "--target.jetpack=5.1.2",
                     '--target.trt_version="8.5"', "--build.sparse_weights=true")


@case("pipeline-trt-version-contradicts-jetpack", "ships TensorRT 8.5.2")
def _(c: Ctx) -> list[str]:
    return _pipeline(c, "--calibrate.data.samples=16", "--target.jetpack=5.1.2", '--target.trt_version="10.3"')


@case("pipeline-layernorm-kept-for-tensorrt-8.5", "no LayerNormalization importer")
def _(c: Ctx) -> list[str]:
    return _pipeline(c, "--calibrate.data.samples=16", "--target.jetpack=5.1.2", '--target.trt_version="8.5"',
                     "--export.decompose_layernorm=false")


@case("pipeline-reversed-batch-profile", "min <= opt <= max")
def _(c: Ctx) -> list[str]:
    return _pipeline(c, "--calibrate.data.samples=16", "--build.batch=[32,8,1]")


@case("pipeline-compare-beyond-max-length", "go beyond task.max_length 64")
def _(c: Ctx) -> list[str]:
    return _pipeline(c, "--calibrate.data.samples=16", "--pipeline.compare_shapes=[[1,64],[1,128]]")


@case("pipeline-teacher-without-tokenizer", "no vocabulary")
def _(c: Ctx) -> list[str]:
    m = c.work / "teacher"
    m.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(c.model / name, m / name)
    return [*_pipeline(c, "--calibrate.data.samples=16")[:-2], f"--distill.teacher={m}", "--out", c.out("run")]


@case("pipeline-from-without-earlier-stages", "has no finished output")
def _(c: Ctx) -> list[str]:
    return _pipeline(c, "--calibrate.data.samples=16", "--from", "prune")  # the new run folder is removed again


@case("pipeline-unknown-stage", "unknown stage 'nope'")
def _(c: Ctx) -> list[str]:
    return _pipeline(c, "--pipeline.stages=[distill,nope]")


@case("pipeline-from-unknown", "--from 'nope'")
def _(c: Ctx) -> list[str]:
    return _pipeline(c, "--from", "nope")


# audio (issue 30) -------------------------------------------------------------------------------------
def _wav(path: Path, seconds: float = 0.3, rate: int = 16000) -> Path:
    import numpy as np
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (0.1 * np.sin(np.arange(int(seconds * rate)) / 5)).astype(np.float32), rate)
    return path


def _speech(c: Ctx) -> Path:
    for word in ("yes", "no"):
        for voice in range(3):
            _wav(c.work / "speech" / word / f"v{voice}_nohash_0.wav")
    return c.work / "speech"


@case("audio-truncated-wav", "truncated WAV file")
def _(c: Ctx) -> list[str]:
    good = _wav(c.work / "good.wav")
    (_speech(c) / "yes" / "v9_nohash_0.wav").write_bytes(good.read_bytes()[:2000])
    return ["check-data", str(c.work / "speech"), "--kind", "audio"]


@case("audio-no-voice-in-names", "split by voice, never by file")
def _(c: Ctx) -> list[str]:
    for word in ("yes", "no"):
        _wav(c.work / "anon" / word / "clip.wav")
    return ["check-data", str(c.work / "anon"), "--kind", "audio"]


@case("audio-rate-not-resamplable", "sample rate 2000 Hz is outside")
def _(c: Ctx) -> list[str]:
    _wav(_speech(c) / "no" / "v5_nohash_0.wav", rate=2000)
    return ["check-data", str(c.work / "speech"), "--kind", "audio"]


@case("audio-for-a-text-model", "it takes text, not audio")
def _(c: Ctx) -> list[str]:
    return ["run", "--onnx", str(c.onnx), "--audio", str(_wav(c.work / "a.wav"))]


@case("audio-hop-not-a-number", "--hop 'fast'")
def _(c: Ctx) -> list[str]:
    return ["run", "--onnx", str(c.onnx), "--stream", str(_wav(c.work / "a.wav")), "--hop", "fast"]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path, tiny_bert_onnx: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-inputs-shared")
    csv = root / "data.csv"
    csv.write_text("text,label\n" + "".join(f"text number {i},{'neg' if i % 2 else 'pos'}\n" for i in range(60)),
                   encoding="utf-8")
    onnx_dir = root / "onnx"
    onnx_dir.mkdir()
    shutil.copy2(tiny_bert_onnx, onnx_dir / "model.onnx")
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        if (tiny_bert_dir / name).is_file():
            shutil.copy2(tiny_bert_dir / name, onnx_dir / name)
    from trt_edge.config import load_config
    from trt_edge.engine.stage import run

    run(load_config(None, {}, "build"), onnx_dir / "model.onnx", root / "build")
    return {"model": tiny_bert_dir, "onnx": onnx_dir / "model.onnx", "csv": csv, "bundle": root / "build" / "bundle"}


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_refused_in_one_line(name: str, shared: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # configs/demo.yaml
    monkeypatch.setenv("TRT_EDGE_CACHE", str(tmp_path / "cache-not-used"))
    build, expect = CASES[name]
    ctx = Ctx(shared["model"], shared["onnx"], shared["csv"], shared["bundle"], tmp_path / "case")
    ctx.work.mkdir()
    argv = build(ctx)
    before = _tree(ctx.work)
    shared_before = {k: _tree(v) for k, v in shared.items() if v.is_dir()}
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:  # any other exception is a traceback the user would see
        main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("trt-edge: error:")]
    assert info.value.code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert expect in lines[0], lines[0]
    assert _tree(ctx.work) == before, "left files behind"
    assert not (tmp_path / "cache-not-used").exists()
    assert {k: _tree(v) for k, v in shared.items() if v.is_dir()} == shared_before
    assert os.path.exists(ctx.work)
