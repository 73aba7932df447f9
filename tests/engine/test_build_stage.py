"""`trt-edge build` without TensorRT: a complete on-device bundle, and bad input refused in one line.

No TensorRT here: these tests check what the stage writes for the device (plan, trtexec command, script,
manifest template) and what it refuses; the real build is in test_builder_trt.py (marked tensorrt)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from trt_edge.config import load_config
from trt_edge.engine.manifest import RuntimeEnv, check_manifest, read_manifest
from trt_edge.engine.plan import BuildPlan
from trt_edge.engine.stage import run
from trt_edge.errors import TrtEdgeError
from trt_edge.stage import StageRecord, read_stage, stage_artifact

BUNDLE_FILES = {"model.onnx", "plan.json", "trtexec_command.txt", "build_on_device.sh", "model.plan.json.template",
                "README.txt", "tokenizer"}


def _build(onnx: Path, out: Path, **overrides: object) -> StageRecord:
    return run(load_config(None, dict(overrides), "build"), onnx, out)


def test_bundle_is_complete(tiny_onnx_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "build"
    record = _build(tiny_onnx_dir / "model.onnx", out, sparse_weights=True)
    assert record.artifacts == {"bundle": "bundle", "preprocessor": "bundle/tokenizer"}
    assert record.metrics["built"] is False and "TensorRT" in record.metrics["reason"]
    bundle = stage_artifact(out, "bundle", expect="build")
    assert {p.name for p in bundle.iterdir()} >= BUNDLE_FILES
    assert (bundle / "tokenizer" / "config.json").is_file()
    assert (bundle / "README.txt").read_text().count("NO TENSORRT PLAN WAS BUILT HERE") == 1

    plan = BuildPlan.from_dict(json.loads((bundle / "plan.json").read_text()))
    assert plan.trt_version == "10.3.0" and plan.device == "agx-orin-64gb" and plan.sparse_weights
    assert [p.name for p in plan.profiles] == ["input_ids", "attention_mask", "token_type_ids"]
    assert plan.profiles[0].max == (32, 128)  # build.batch max x task.max_length
    plan.validate()

    command = (bundle / "trtexec_command.txt").read_text().strip()
    argv = shlex.split(command)
    assert argv[0] == "/usr/src/tensorrt/bin/trtexec" and "--onnx=model.onnx" in argv
    assert {"--fp16", "--sparsity=enable", "--skipInference", "--verbose"} <= set(argv)

    script = bundle / "build_on_device.sh"
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert 'trt-edge build --onnx "$HERE/model.onnx" --plan "$HERE/plan.json"' in text
    assert '--saveEngine="$OUT"/model.plan' in text and "TensorRT v1003" in text

    template = json.loads((bundle / "model.plan.json.template").read_text())
    assert template["status"] == "template" and template["tensorrt"] == "10.3.0"
    assert template["device"]["compute_capability"] == "8.7"
    assert read_stage(out)["config"]["plan"]["precision"] == "fp16"


def test_bundle_for_thor_on_tensorrt_11(tiny_onnx_dir: Path, tmp_path: Path) -> None:
    record = _build(tiny_onnx_dir / "model.onnx", tmp_path / "b", precision="typed", trt_version="11.1",
                    device="agx-thor", jetpack=None)
    cmd = (tmp_path / "b" / "bundle" / "trtexec_command.txt").read_text()
    assert "--fp16" not in cmd and "--stronglyTyped" not in cmd and "--int8" not in cmd
    assert record.metrics["trt_version"] == "11.1.0"


def test_bundle_for_a_jetpack_5_xavier_target(tiny_onnx_dir: Path, tmp_path: Path) -> None:
    """Issue 33 items 2 and 10: the `target:` section reaches the bundle through the one effective build
    config: JetPack 5.1.2's TensorRT to the patch (8.5.2, not 8.5.0), the Xavier device, and
    `sparse_weights: auto` resolved to false (recorded as a boolean in plan.json and stage.json)."""
    import onnx

    from trt_edge.config import RunConfig
    from trt_edge.export.cleanup import decompose_layernorm

    model = onnx.load(str(tiny_onnx_dir / "model.onnx"))
    assert decompose_layernorm(model) > 0  # TensorRT 8.5 imports no LayerNormalization (export's auto does this)
    jp5 = tmp_path / "jp5.onnx"
    onnx.save(model, str(jp5))
    target = {"device": "agx-xavier", "jetpack": "5.1.2", "trt_version": "8.5"}
    out = tmp_path / "b"
    record = run(RunConfig({"target": target}), jp5, out)
    bundle = out / "bundle"
    plan = json.loads((bundle / "plan.json").read_text())
    assert plan["trt_version"] == "8.5.2" and plan["device"] == "agx-xavier" and plan["sparse_weights"] is False
    assert record.metrics["trt_version"] == "8.5.2"
    assert read_stage(out)["config"]["build"]["sparse_weights"] is False
    assert "--sparsity" not in (bundle / "trtexec_command.txt").read_text()
    template = json.loads((bundle / "model.plan.json.template").read_text())
    assert template["tensorrt"] == "8.5.2"
    # The default target (AGX Orin) turns auto on, and an explicit true for Xavier is refused.
    on = run(RunConfig({}), tiny_onnx_dir / "model.onnx", tmp_path / "orin")
    assert on.config["plan"]["sparse_weights"] is True
    assert "--sparsity=enable" in (tmp_path / "orin" / "bundle" / "trtexec_command.txt").read_text()
    with pytest.raises(TrtEdgeError, match="no sparse tensor cores"):
        run(RunConfig({"target": target, "build": {"sparse_weights": True}}), jp5, tmp_path / "refused")


def _calibrate_folder(root: Path, onnx: Path, cache_text: str) -> Path:
    import shutil

    folder = root / "calibrate"
    folder.mkdir()
    shutil.copy(onnx, folder / "model.int8.onnx")
    (folder / "calibration.cache").write_text(cache_text)
    StageRecord(stage="calibrate", config={"task": {"max_length": 32}}, environment={},
                artifacts={"onnx": "model.int8.onnx", "calibration_cache": "calibration.cache"}).write(folder)
    return folder


def test_calibrate_stage_folder_brings_its_cache(tiny_onnx_dir: Path, tmp_path: Path) -> None:
    cache = "TRT-100300-EntropyCalibration2\ninput_ids: 3c008912\n"
    folder = _calibrate_folder(tmp_path, tiny_onnx_dir / "model.onnx", cache)
    _build(folder, tmp_path / "b", precision="int8-cache")
    bundle = tmp_path / "b" / "bundle"
    assert (bundle / "calibration.cache").read_text() == cache
    assert "--int8 --fp16 --calib=calibration.cache" in (bundle / "trtexec_command.txt").read_text()
    plan = json.loads((bundle / "plan.json").read_text())
    assert plan["calibration_cache"] == "calibration.cache"
    assert plan["profiles"][0]["max"] == [32, 32]  # max_length recorded by the calibrate stage


def test_a_qdq_build_from_a_calibrate_folder_leaves_its_cache_alone(qdq_onnx: Path, tmp_path: Path) -> None:
    """Issue 33 item 7: the default build (precision auto -> int8-qdq) of a calibrate stage folder does not
    warn about the cache it never reads, and plan.json names no path outside the bundle."""
    folder = _calibrate_folder(tmp_path, qdq_onnx, "TRT-100300-EntropyCalibration2\ninput_ids: 3c008912\n")
    record = _build(folder, tmp_path / "b")
    assert record.metrics["precision"] == "int8-qdq"
    assert not [w for w in record.metrics["warnings"] if "calibration cache" in w], record.metrics["warnings"]
    bundle = tmp_path / "b" / "bundle"
    plan = json.loads((bundle / "plan.json").read_text())
    assert plan["calibration_cache"] is None and not (bundle / "calibration.cache").exists()

    def strings(value: object) -> list[str]:
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    outside = [s for s in strings(plan) if s.startswith("/") or str(tmp_path) in s]
    assert outside == [], outside
    # A precision that reads the cache still gets it, carried and named relative to the bundle.
    _build(folder, tmp_path / "best", precision="best")
    assert json.loads((tmp_path / "best" / "bundle" / "plan.json").read_text())["calibration_cache"] == (
        "calibration.cache")


def test_qdq_model_builds_strongly_typed(qdq_onnx: Path, tmp_path: Path) -> None:
    _build(qdq_onnx, tmp_path / "b", precision="int8-qdq", sparse_weights=True)
    cmd = (tmp_path / "b" / "bundle" / "trtexec_command.txt").read_text()
    assert "--stronglyTyped" in cmd and "--int8" not in cmd


@pytest.mark.parametrize(("overrides", "message"), [
    ({"batch": [8, 1, 32]}, "axis 0 is min 8, opt 1, max 32"),
    ({"dla_core": 2}, "DLA core 2 does not exist"),
    ({"device": "agx-thor", "trt_version": "10.13", "dla_core": 0}, "Jetson Thor has no DLA"),
    ({"precision": "int8-qdq"}, "needs Q/DQ nodes and the ONNX has none"),
    ({"trt_version": "11.1", "jetpack": None, "precision": "int8-cache"}, "INT8 calibrator"),
])
def test_bad_plans_are_refused(tiny_onnx_dir: Path, tmp_path: Path, overrides: dict[str, object],
                               message: str) -> None:
    with pytest.raises(TrtEdgeError, match=r"cannot build model\.onnx") as info:
        _build(tiny_onnx_dir / "model.onnx", tmp_path / "b", **overrides)
    assert message in str(info.value)
    assert not (tmp_path / "b").exists()  # nothing half-written


def test_fp16_on_a_qdq_model_is_refused(qdq_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(TrtEdgeError, match="has Q/DQ nodes but precision is fp16"):
        _build(qdq_onnx, tmp_path / "b", precision="fp16")


def test_auto_precision_follows_the_onnx(qdq_onnx: Path, tiny_onnx_dir: Path, tmp_path: Path) -> None:
    assert _build(qdq_onnx, tmp_path / "q").metrics["precision"] == "int8-qdq"
    assert _build(tiny_onnx_dir / "model.onnx", tmp_path / "f").metrics["precision"] == "fp16"


def test_corrupt_onnx_and_missing_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(TrtEdgeError, match=r"not a readable ONNX model|fails onnx\.checker"):
        _build(bad, tmp_path / "b")
    with pytest.raises(TrtEdgeError, match="no such ONNX file"):
        _build(tmp_path / "missing.onnx", tmp_path / "b")


def test_cli_build_exit_codes(tiny_onnx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trt_edge.cli import main

    main(["build", "--onnx", str(tiny_onnx_dir / "model.onnx"), "--out", str(tmp_path / "ok"),
          "--trt-version", "10.13", "--device", "agx-thor", "--precision", "typed"])
    captured = capsys.readouterr()
    assert json.loads(captured.out)["trt_version"] == "10.13.0"
    assert "NO PLAN BUILT" in captured.err
    with pytest.raises(SystemExit) as info:
        main(["build", "--onnx", str(tiny_onnx_dir / "model.onnx"), "--out", str(tmp_path / "bad"),
              "--device", "orin-nano-8gb", "--dla_core", "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trt-edge: error:") and "has no DLA" in err and "\n" not in err


def test_rebuild_from_bundle_plan(tiny_onnx_dir: Path, tmp_path: Path) -> None:
    """What build_on_device.sh runs: `trt-edge build --plan plan.json` takes the plan as it is."""
    _build(tiny_onnx_dir / "model.onnx", tmp_path / "first", precision="best")
    bundle = tmp_path / "first" / "bundle"
    again = run(load_config(None, {}, "build"), bundle / "model.onnx", tmp_path / "second",
                plan_file=str(bundle / "plan.json"))
    assert again.metrics["precision"] == "best"


def _fill_script(script: Path) -> str:
    match = re.search(r"<<'PY'\n(.*)\nPY\n", script.read_text(), re.S)
    assert match
    return match.group(1)


def test_trtexec_path_writes_a_manifest_the_loader_accepts(tiny_onnx_dir: Path, tmp_path: Path) -> None:
    """The manifest writer build_on_device.sh runs after trtexec (the Jetson's stdlib Python), fed a
    stand-in plan file and log: it records the hash, the TensorRT version from the log and the
    sparsity lines, and `check_manifest` then accepts the plan (and refuses it once tampered)."""
    _build(tiny_onnx_dir / "model.onnx", tmp_path / "b", sparse_weights=True)
    bundle = tmp_path / "b" / "bundle"
    out = tmp_path / "engine"
    out.mkdir()
    (out / "model.plan").write_bytes(b"stand-in bytes, not a TensorRT plan")
    (out / "build.log").write_text(
        "[I] [TRT] (Sparsity) Layers eligible for sparse math: a, b\n"
        "[I] [TRT] (Sparsity) TRT inference plan picked sparse implementation for layers: b\n"
        "&&&& PASSED TensorRT.trtexec [TensorRT v100300] # trtexec --onnx=model.onnx\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-I", "-", str(bundle / "model.plan.json.template"), str(out)],
                   input=_fill_script(bundle / "build_on_device.sh"), text=True, check=True, env=env,
                   capture_output=True)
    manifest = read_manifest(out / "model.plan.json")
    assert manifest["status"] == "built" and manifest["tensorrt"] == "10.3.0"
    from trt_edge.files import sha256_file

    assert manifest["onnx_sha256"] == sha256_file(bundle / "model.onnx")  # what was built, not what was planned
    assert manifest["sparsity"]["sparse_layers"] == ["b"] and manifest["sparsity"]["warning"] is None
    assert check_manifest(out / "model.plan", None, RuntimeEnv(tensorrt="10.3.0.30", compute_capability="8.7")) == []
    with pytest.raises(TrtEdgeError, match=r"built with TensorRT 10\.3\.0"):
        check_manifest(out / "model.plan", None, RuntimeEnv(tensorrt="10.13.3", compute_capability="8.7"))


def test_int8_cache_from_a_real_calibrate_layout(tiny_onnx_dir: Path, qdq_onnx: Path, tmp_path: Path) -> None:
    """A calibrate folder holds the Q/DQ model; int8-cache needs the fp32 graph its ranges.json names,
    plus the cache and the calibration set (for the on-device calibrator)."""
    import shutil

    import numpy as np

    from trt_edge.engine.onnxinfo import has_qdq

    folder = tmp_path / "calibrate"
    folder.mkdir()
    shutil.copy(qdq_onnx, folder / "model.int8.onnx")
    (folder / "calibration.cache").write_text("TRT-100300-EntropyCalibration2\n")
    np.savez(folder / "calibration.npz", input_ids=np.ones((2, 8), dtype=np.int64))
    (folder / "ranges.json").write_text(json.dumps({"source_onnx": str(tiny_onnx_dir / "model.onnx")}))
    StageRecord(stage="calibrate", config={}, environment={},
                artifacts={"onnx": "model.int8.onnx", "calibration_cache": "calibration.cache",
                           "calibration_data": "calibration.npz", "ranges": "ranges.json"}).write(folder)
    _build(folder, tmp_path / "b", precision="int8-cache")
    bundle = tmp_path / "b" / "bundle"
    assert not has_qdq(bundle / "model.onnx")
    plan = json.loads((bundle / "plan.json").read_text())
    assert plan["calibration_cache"] == "calibration.cache" and plan["calibration_data"] == "calibration.npz"
    assert (bundle / "calibration.npz").is_file()
    with pytest.raises(TrtEdgeError, match="has Q/DQ nodes: build it with int8-qdq"):
        _build(qdq_onnx, tmp_path / "c", precision="int8-cache", calibration_cache=str(folder / "calibration.cache"))


def test_a_tampered_bundle_is_refused_by_the_script_and_by_build_plan(tiny_onnx_dir: Path, tmp_path: Path) -> None:
    """SHA256SUMS covers every bundle file; a replaced model.onnx is refused before anything is built,
    by build_on_device.sh (one line, exit 2, no engine folder) and by `trt-edge build --plan`."""
    import shutil

    from trt_edge.engine.bundle import read_checksums

    _build(tiny_onnx_dir / "model.onnx", tmp_path / "b")
    bundle = tmp_path / "b" / "bundle"
    sums = read_checksums(bundle)
    assert {"model.onnx", "plan.json", "build_on_device.sh", "model.plan.json.template"} <= set(sums)
    assert any(name.startswith("tokenizer/") for name in sums)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PATH="/usr/bin:/bin", TRTEXEC="/nonexistent/trtexec")
    clean = subprocess.run(["bash", str(bundle / "build_on_device.sh"), str(tmp_path / "e1")], env=env,
                           capture_output=True, text=True, timeout=60)
    assert clean.returncode == 2 and "sha256 mismatch" not in clean.stderr  # verified; then no trtexec here
    tampered = tmp_path / "tampered"
    shutil.copytree(bundle, tampered)
    data = (tampered / "model.onnx").read_bytes()
    (tampered / "model.onnx").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    bad = subprocess.run(["bash", str(tampered / "build_on_device.sh"), str(tmp_path / "e2")], env=env,
                         capture_output=True, text=True, timeout=60)
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1 and "sha256 mismatch): model.onnx;" in lines[0], bad.stderr
    assert not (tmp_path / "e2").exists()
    with pytest.raises(TrtEdgeError, match=r"changed since trt-edge wrote them .*model\.onnx"):
        run(load_config(None, {}, "build"), tampered / "model.onnx", tmp_path / "c",
            plan_file=str(tampered / "plan.json"))
    with pytest.raises(TrtEdgeError, match="not the ONNX this bundle was made for"):  # a foreign ONNX, same plan
        shutil.copy(tampered / "model.onnx", tmp_path / "other.onnx")
        run(load_config(None, {}, "build"), tmp_path / "other.onnx", tmp_path / "c",
            plan_file=str(bundle / "plan.json"))
    (tampered / "SHA256SUMS").unlink()
    with pytest.raises(TrtEdgeError, match="no SHA256SUMS"):
        run(load_config(None, {}, "build"), tampered / "model.onnx", tmp_path / "c",
            plan_file=str(tampered / "plan.json"))
    assert not (tmp_path / "c").exists()


def _with_fused_node(source: Path, dest: Path, plugin_version: str) -> Path:
    """The tiny model plus one fused-attention node (its output unused: the plan only reads its generation)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(source))
    model.graph.node.append(helper.make_node(
        "TrtEdgeFusedAttention", [model.graph.input[0].name] * 3, ["unused_attention"], name="fused0",
        domain="trt_edge", plugin_version=plugin_version, plugin_namespace="", num_heads=2, head_size=32,
        scale=0.125, causal=0, has_mask=0, has_bias=0))
    model.opset_import.append(helper.make_opsetid("trt_edge", 1))
    dest.mkdir(parents=True, exist_ok=True)
    for f in source.parent.iterdir():
        if f.is_file() and f.name != "model.onnx":
            (dest / f.name).write_bytes(f.read_bytes())
    onnx.save(model, str(dest / "model.onnx"))
    return dest / "model.onnx"


def test_fused_attention_bundle_builds_the_targets_plugin(tiny_onnx_dir: Path, tmp_path: Path) -> None:
    """TensorRT 8.6 (JetPack 6.0; the tiny model's LayerNormalization needs 8.6, so not 8.5 here): the plan
    records IPluginV2DynamicExt, the bundle carries the plugin sources and its script builds the plugin before
    the engine; V3 nodes are refused for that target and accepted for JetPack 6.2 (TensorRT 10.3)."""
    v2 = _with_fused_node(tiny_onnx_dir / "model.onnx", tmp_path / "v2", "2")
    out = tmp_path / "build"
    record = _build(v2, out, device="agx-orin-64gb", jetpack="6.0")
    assert record.metrics["attention_plugin"] == "IPluginV2DynamicExt"
    bundle = stage_artifact(out, "bundle", expect="build")
    plan = BuildPlan.from_dict(json.loads((bundle / "plan.json").read_text()))
    assert plan.trt_version.startswith("8.6.") and plan.attention_plugin == "IPluginV2DynamicExt"
    assert plan.plugins == ["plugins/build/libtrt_edge_attention_plugin.so"]
    assert {"CMakeLists.txt", "fused_attention.cu", "FusedAttentionPluginV2.cpp",
            "FusedAttentionRegistration.cpp"} <= {p.name for p in (bundle / "plugins" / "fused_attention").iterdir()}
    assert "Plugins=plugins/build/libtrt_edge_attention_plugin.so" in (bundle / "trtexec_command.txt").read_text()
    template = json.loads((bundle / "model.plan.json.template").read_text())
    assert template["attention_plugin"] == "IPluginV2DynamicExt"
    script = bundle / "build_on_device.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "plugin_generation=IPluginV2DynamicExt" in text
    assert text.index('cmake --build "$PLUGIN_BUILD"') < text.index("exec trt-edge build")
    shellcheck = Path(sys.executable).parent / "shellcheck"
    if shellcheck.is_file():
        proc = subprocess.run([str(shellcheck), str(script)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout

    v3 = _with_fused_node(tiny_onnx_dir / "model.onnx", tmp_path / "v3", "1")
    with pytest.raises(TrtEdgeError, match=r"IPluginV3 .*export it again"):
        _build(v3, tmp_path / "refused", device="agx-orin-64gb", jetpack="6.0")
    record = _build(v3, tmp_path / "orin", device="agx-orin-64gb", jetpack="6.2")
    assert record.metrics["attention_plugin"] == "IPluginV3"


def test_image_bundle_ships_a_preprocessor_folder_and_old_bundles_still_read(tmp_path: Path) -> None:
    """An image model's bundle says `preprocessor/` (its folder, the script, the stage record); a bundle
    written before, with the image processor in `tokenizer/`, still classifies."""
    from trt_edge.config import RunConfig
    from trt_edge.export.stage import run as export
    from trt_edge.runtime.image import ImageClassifier
    from trt_edge.runtime.ort import OnnxRuntimeRunner
    from trt_edge.tasks.spec import preprocessor_dir

    sys.path.insert(0, str(Path(__file__).parents[1] / "tasks"))
    from vision_helpers import LABELS, write_image_folder, write_vision_model

    images = write_image_folder(tmp_path / "images", per_class=4)
    config = RunConfig({"task": {"type": "image-classification", "data": {"source": str(images)}},
                        "export": {"parity_batch_sizes": [1]}})
    export(config, write_vision_model(tmp_path / "vit", "vit"), tmp_path / "export")
    record = _build(tmp_path / "export" / "model.onnx", tmp_path / "build")
    assert record.artifacts == {"bundle": "bundle", "preprocessor": "bundle/preprocessor"}
    assert record.metrics["preprocessor"] is True and "tokenizer" not in record.metrics
    bundle = tmp_path / "build" / "bundle"
    assert (bundle / "preprocessor" / "preprocessor_config.json").is_file() and not (bundle / "tokenizer").exists()
    script = (bundle / "build_on_device.sh").read_text()
    assert '--tokenizer "$HERE/preprocessor"' in script and 'cp -r "$HERE/preprocessor" "$OUT/"' in script
    subprocess.run(["bash", "-n", str(bundle / "build_on_device.sh")], check=True)
    assert preprocessor_dir(bundle / "model.onnx") == bundle / "preprocessor"

    (bundle / "preprocessor").rename(bundle / "tokenizer")  # as bundles were written before
    assert preprocessor_dir(bundle / "model.onnx") == bundle / "tokenizer"
    with OnnxRuntimeRunner(bundle / "model.onnx") as runner:
        (result,) = ImageClassifier.from_model_file(runner, bundle / "model.onnx").classify(
            [next((images / LABELS[0]).glob("*.png"))])
    assert result["label"] in LABELS
