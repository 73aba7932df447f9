"""The build plan: validation and trtexec rendering per TensorRT version, table-driven from the facts
file (§2.1 builder API, §2.4 INT8, §6 trtexec flags, §1.2 devices)."""

from __future__ import annotations

from typing import Any

import pytest

from trt_edge.engine.config import BuildConfig
from trt_edge.engine.plan import BuildPlan, InputProfile, OnnxInput, TrtVersion, profiles_for_inputs
from trt_edge.engine.trtexec import command_line
from trt_edge.errors import TrtEdgeError
from trt_edge.trt_version import features

VERSIONS = ["8.5", "10.3", "10.13", "11.1"]
TOKENS = [OnnxInput("input_ids", "int64", ("batch", "sequence")),
          OnnxInput("attention_mask", "int64", ("batch", "sequence"))]


def make(precision: str = "fp16", trt: str = "10.3", device: str | None = "agx-orin-64gb", **kw: Any) -> BuildPlan:
    profiles = kw.pop("profiles", profiles_for_inputs(TOKENS, {"batch": [1, 8, 32], "sequence": [1, 64, 128]}))
    return BuildPlan(precision=precision, trt_version=trt, device=device, profiles=profiles, **kw)


def test_version_parsing() -> None:
    assert TrtVersion.parse("10.3.0.30") == TrtVersion(10, 3, 0)
    assert TrtVersion.parse("11.x") == TrtVersion(11, 0, 0)
    assert TrtVersion.parse("8.5.2").code == 8502
    assert TrtVersion.parse("10.3").code == 100300
    assert TrtVersion.parse("10.13") > TrtVersion.parse("10.3")
    with pytest.raises(TrtEdgeError, match="not a TensorRT version"):
        TrtVersion.parse("ten")


@pytest.mark.parametrize(("version", "expected"), [
    ("8.5", {"explicit_batch_flag": True, "strongly_typed": False, "weak_precision_flags": True,
             "calibrators": True, "optimization_level": False, "static_dynamic_plugins": False}),
    ("8.6", {"explicit_batch_flag": True, "strongly_typed": False, "optimization_level": True,
             "version_compatible": True}),
    ("10.3", {"explicit_batch_flag": False, "strongly_typed": True, "weak_precision_flags": True,
              "weak_precision_deprecated": False, "calibrators": True, "same_compute_capability": False}),
    ("10.13", {"weak_precision_deprecated": True, "calibrators": True, "same_compute_capability": True}),
    ("11.1", {"weak_precision_flags": False, "calibrators": False, "strongly_typed": True, "dla": False}),
    ("11.4.1", {"dla": True}),
    ("9.2", {"supported": False}),
])
def test_features_by_version(version: str, expected: dict[str, bool]) -> None:
    got = features(version)
    assert {k: got[k] for k in expected} == expected


@pytest.mark.parametrize(("version", "precision", "network", "builder"), [
    ("8.5", "fp16", ["EXPLICIT_BATCH"], ["FP16"]),
    ("8.5", "int8-qdq", ["EXPLICIT_BATCH"], ["FP16", "INT8"]),      # no strong typing before 10
    ("10.3", "fp16", [], ["FP16"]),
    ("10.3", "int8-qdq", ["STRONGLY_TYPED"], []),
    ("10.3", "int8-cache", [], ["FP16", "INT8"]),
    ("10.13", "typed", ["STRONGLY_TYPED"], []),
    ("11.1", "int8-qdq", [], []),                                    # 11: always strongly typed, flag is a no-op
    ("11.1", "typed", [], []),
])
def test_flag_names(version: str, precision: str, network: list[str], builder: list[str]) -> None:
    plan = make(precision, version, calibration_cache="c.cache")
    assert plan.network_flag_names() == network
    assert plan.builder_flag_names() == builder


def test_sparse_dla_and_version_compatible_flags() -> None:
    plan = make("int8-qdq", "10.3", sparse_weights=True, dla_core=1, version_compatible=True)
    assert plan.builder_flag_names() == ["SPARSE_WEIGHTS", "GPU_FALLBACK", "VERSION_COMPATIBLE"]
    assert plan.embeds_host_code()


# validation ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("version", "device", "kw", "message"), [
    ("11.1", "agx-thor", {"precision": "fp16"}, "removed (strong typing only)"),
    ("11.1", "agx-thor", {"precision": "best"}, "removed (strong typing only)"),
    ("11.1", "agx-thor", {"precision": "int8-cache", "calibration_cache": "c"}, "INT8 calibrator"),
    ("10.3", "agx-orin-64gb", {"precision": "int8-cache"}, "needs a calibration cache"),
    ("10.13", "agx-thor", {"dla_core": 0}, "Jetson Thor has no DLA"),
    ("10.3", "orin-nano-8gb", {"dla_core": 0}, "has no DLA"),
    ("10.3", "agx-orin-64gb", {"dla_core": 2}, "DLA core 2 does not exist on Jetson AGX Orin 64GB"),
    ("10.3", "orin-nx-8gb", {"dla_core": 1}, "cores 0..0"),
    ("11.1", "agx-orin-64gb", {"precision": "int8-qdq", "dla_core": 0}, "no DLA support"),
    ("10.3", "agx-orin-64gb", {"precision": "fp32", "dla_core": 0}, "FP16 or INT8 only"),
    ("8.5", "agx-xavier", {"sparse_weights": True}, "no sparse tensor cores"),
    ("10.3", "agx-orin-64gb", {"precision": "fp32", "sparse_weights": True}, "FP16 or INT8 only"),
    ("10.3", "agx-orin-64gb", {"precision": "fp8-qdq"}, "FP8"),
    ("8.5", "agx-orin-64gb", {"precision": "typed"}, "needs strongly typed networks (TensorRT 10+)"),
    ("8.5", "agx-orin-64gb", {"optimization_level": 5}, "needs TensorRT 8.6+"),
    ("8.5", "agx-orin-64gb", {"version_compatible": True}, "version-compatible plans need TensorRT 8.6+"),
    ("10.3", "agx-orin-64gb", {"hardware_compatibility": "same-cc"}, "same-cc needs TensorRT 10.9+"),
    ("10.3", "agx-xavier", {"hardware_compatibility": "ampere+"}, "needs an Ampere or later GPU"),
    ("8.5", "agx-orin-64gb", {"memory_pools": {"tactic_shared_memory": 64}}, "needs TensorRT 10+"),
    ("10.3", "agx-orin-64gb", {"dla_core": 0, "memory_pools": {"dla_sram": 3}}, "power of two"),
    ("9.2", "agx-orin-64gb", {}, "not a supported target"),
])
def test_validate_rejects(version: str, device: str, kw: dict[str, Any], message: str) -> None:
    plan = make(trt=version, device=device, **kw)
    with pytest.raises(TrtEdgeError, match="build plan not possible") as info:
        plan.validate()
    assert message in str(info.value)


@pytest.mark.parametrize(("version", "device", "kw"), [
    ("8.5", "agx-xavier", {"precision": "int8-cache", "calibration_cache": "c.cache", "dla_core": 1}),
    ("8.5", "agx-orin-64gb", {"precision": "int8-qdq", "sparse_weights": True}),
    ("10.3", "agx-orin-64gb", {"precision": "int8-qdq", "sparse_weights": True, "dla_core": 1}),
    ("10.3", "orin-nano-8gb", {"precision": "fp16", "sparse_weights": True}),
    ("10.13", "agx-thor", {"precision": "fp8-qdq", "sparse_weights": True}),
    ("11.1", "agx-thor", {"precision": "int8-qdq"}),
    ("11.1", None, {"precision": "typed"}),
])
def test_validate_accepts(version: str, device: str | None, kw: dict[str, Any]) -> None:
    make(trt=version, device=device, **kw).validate()


def test_all_problems_reported_at_once() -> None:
    bad = InputProfile("input_ids", (1, 128), (8, 64), (32, 128))
    plan = make("fp16", "11.1", "agx-thor", dla_core=0, profiles=[bad])
    problems, _ = plan.check()
    assert len(problems) == 4, problems  # fp16 removed, Thor no DLA, 11.1 no DLA, profile ordering
    with pytest.raises(TrtEdgeError) as info:
        plan.validate()
    text = str(info.value)
    assert "removed" in text and "no DLA" in text and "axis 1 is min 128, opt 64, max 128" in text
    assert "\n" not in text  # one line


def test_warnings() -> None:
    assert any("deprecated in TensorRT 10.12" in w for w in make("fp16", "10.13", "agx-thor").validate())
    assert any("placeholder ranges" in w for w in make("best", "10.3").validate())
    assert any("catalog ships" in w for w in make("fp16", "10.13", "agx-orin-64gb").validate())
    assert any("does not support JetPack" in w for w in make("int8-qdq", "11.1", "agx-thor").validate())
    assert make("int8-qdq", "10.3").validate() == []


def test_profiles_from_onnx_inputs() -> None:
    inputs = [*TOKENS, OnnxInput("fixed", "float32", (1, 4))]
    profiles = profiles_for_inputs(inputs, {"batch": [1, 4, 16], "sequence": [8, 32, 64]})
    assert profiles == [InputProfile("input_ids", (1, 8), (4, 32), (16, 64)),
                        InputProfile("attention_mask", (1, 8), (4, 32), (16, 64))]
    with pytest.raises(TrtEdgeError, match="axis 2 is dynamic"):
        profiles_for_inputs([OnnxInput("x", "float32", ("batch", "sequence", "h"))],
                            {"batch": [1, 1, 1], "sequence": [1, 1, 1]})
    # Axes are matched by name, not position: an image input [batch, 3, 32, 32] gets only a batch range,
    # and a sequence-first layout still gets the sequence range on its named axis.
    image = profiles_for_inputs([OnnxInput("pixel_values", "float32", ("batch", 3, 32, 32))],
                                {"batch": [1, 4, 16], "sequence": [8, 32, 64]})
    assert image == [InputProfile("pixel_values", (1, 3, 32, 32), (4, 3, 32, 32), (16, 3, 32, 32))]
    swapped = profiles_for_inputs([OnnxInput("t", "int64", ("sequence", "batch"))],
                                  {"batch": [1, 4, 16], "sequence": [8, 32, 64]})
    assert swapped == [InputProfile("t", (8, 1), (32, 4), (64, 16))]


def test_check_inputs_against_onnx() -> None:
    plan = make()
    assert plan.check_inputs(TOKENS) == []
    problems = plan.check_inputs([TOKENS[0], OnnxInput("token_type_ids", "int64", ("batch", "sequence"))])
    assert any("no such input" in p for p in problems)
    assert any("'token_type_ids' has dynamic axes but no profile" in p for p in problems)


def test_plan_from_config_and_json_round_trip() -> None:
    cfg = BuildConfig(precision="int8-qdq", jetpack="6.2", batch=[1, 4, 8], sparse_weights=True)
    plan = BuildPlan.from_config(cfg, TOKENS, max_length=64)
    assert plan.trt_version == "10.3.0"  # JetPack 6.2 ships TensorRT 10.3
    assert plan.profiles[0] == InputProfile("input_ids", (1, 1), (4, 32), (8, 64))
    again = BuildPlan.from_dict(plan.to_dict())
    assert again == plan
    with pytest.raises(TrtEdgeError, match="unknown plan keys"):
        BuildPlan.from_dict({**plan.to_dict(), "bogus": 1})
    cfg11 = BuildConfig(trt_version="11.1", jetpack=None, device="agx-thor")
    assert BuildPlan.from_config(cfg11, TOKENS, 64).trt_version == "11.1.0"


@pytest.mark.parametrize(("device", "precision", "expected"), [
    ("agx-orin-64gb", "int8-qdq", True), ("orin-nano-8gb", "fp16", True), ("agx-thor", "fp8-qdq", True),
    ("agx-xavier", "int8-qdq", False), ("xavier-nx", "fp16", False), (None, "fp16", False),
    ("agx-orin-64gb", "fp32", False),
])
def test_plan_records_what_sparse_weights_auto_resolved_to(device: str | None, precision: str,
                                                           expected: bool) -> None:
    """Issue 33 item 2: the plan (and so the bundle's plan.json) holds a boolean, never "auto", and auto
    never makes a request the plan check would refuse (Xavier, fp32)."""
    cfg = BuildConfig(precision=precision, device=device, jetpack=None,  # type: ignore[arg-type]
                      trt_version="10.13" if device == "agx-thor" else "8.5" if device and "xavier" in device
                      else "10.3")
    assert cfg.sparse_weights == "auto"
    plan = BuildPlan.from_config(cfg, TOKENS, max_length=64)
    assert plan.sparse_weights is expected and plan.to_dict()["sparse_weights"] is expected
    assert ("SPARSE_WEIGHTS" in plan.builder_flag_names()) is expected
    assert plan.check()[0] == []


def test_config_rejects_bad_values() -> None:
    for kw in ({"batch": [1, 8]}, {"optimization_level": 6}, {"memory_pools": {"sram": 1}},
               {"dla_core": -1}, {"serialize_plugins": True}):
        with pytest.raises(ValueError):
            BuildConfig(**kw)


# trtexec rendering -------------------------------------------------------------------------------------
COMMON = "--onnx=model.onnx --saveEngine=model.plan"
SHAPES = ("--minShapes=input_ids:1x1,attention_mask:1x1 --optShapes=input_ids:8x64,attention_mask:8x64 "
          "--maxShapes=input_ids:32x128,attention_mask:32x128")


@pytest.mark.parametrize(("version", "precision", "present", "absent"), [
    ("8.5", "fp16", ["--fp16", "--memPoolSize=workspace:1024 ", SHAPES, "--timingCacheFile=timing.cache"],
     ["--builderOptimizationLevel", "--stronglyTyped", "--skipInference", "1024M"]),
    ("10.3", "fp16", ["--fp16", "--memPoolSize=workspace:1024M", "--builderOptimizationLevel=3", "--skipInference",
                      "--profilingVerbosity=detailed --exportLayerInfo=model.layers.json"], ["--stronglyTyped"]),
    ("10.13", "fp16", ["--fp16", "--builderOptimizationLevel=3"], ["--stronglyTyped"]),
    ("8.5", "int8-qdq", ["--int8 --fp16"], ["--stronglyTyped", "--calib"]),
    ("10.3", "int8-qdq", ["--stronglyTyped"], ["--int8", "--fp16", "--calib"]),
    ("10.13", "int8-qdq", ["--stronglyTyped"], ["--int8", "--fp16"]),
    ("11.1", "int8-qdq", ["--builderOptimizationLevel=3"], ["--stronglyTyped", "--int8", "--fp16", "--best"]),
    ("10.3", "int8-cache", ["--int8 --fp16 --calib=calibration.cache"], ["--stronglyTyped"]),
    ("8.5", "int8-cache", ["--int8 --fp16 --calib=calibration.cache"], []),
    ("10.3", "best", ["--best"], ["--fp16", "--int8"]),
    ("10.3", "fp32", [], ["--fp16", "--int8", "--best", "--stronglyTyped"]),
])
def test_trtexec_by_version(version: str, precision: str, present: list[str], absent: list[str]) -> None:
    plan = make(precision, version, calibration_cache="calibration.cache")
    cmd = command_line(plan) + " "
    assert cmd.startswith(f"trtexec {COMMON} ")
    for flag in present:
        assert flag in cmd, (flag, cmd)
    for flag in absent:
        assert flag not in cmd, (flag, cmd)


@pytest.mark.parametrize("version", VERSIONS)
def test_trtexec_sparsity_dla_plugins(version: str) -> None:
    plan = make("int8-qdq", version, sparse_weights=True, dla_core=1, plugins=["libfused.so"],
                memory_pools={"dla_sram": 1})
    cmd = command_line(plan)
    assert "--sparsity=enable" in cmd
    assert "--useDLACore=1 --allowGPUFallback" in cmd
    assert "dlaSRAM:1" in cmd
    assert ("--plugins=libfused.so" if version == "8.5" else "--staticPlugins=libfused.so") in cmd


def test_trtexec_serialized_plugins_and_compat() -> None:
    plan = make("int8-qdq", "10.3", plugins=["libp.so"], serialize_plugins=True, version_compatible=True,
                hardware_compatibility="ampere+")
    cmd = command_line(plan)
    assert "--dynamicPlugins=libp.so --setPluginsToSerialize=libp.so" in cmd
    assert "--versionCompatible" in cmd and "--hardwareCompatibilityLevel=ampere+" in cmd


def test_trtexec_quotes_names_with_colons() -> None:
    import shlex

    plan = make(profiles=[InputProfile("input:0", (1, 2), (1, 2), (1, 2))])
    argv = shlex.split(command_line(plan))
    assert "--minShapes='input:0':1x2" in argv  # trtexec's own quoting survives the shell
