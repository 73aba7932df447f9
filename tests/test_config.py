"""Config composition: YAML reading, strict keys with the nearest valid name, dotted overrides, typing."""

from __future__ import annotations

from pathlib import Path

import pytest

from trt_edge.config import apply_overrides, load_config, load_yaml
from trt_edge.distill.config import DistillConfig, TrainConfig
from trt_edge.errors import TrtEdgeError


def test_demo_config_builds_every_registered_section_it_names() -> None:
    cfg = load_config(Path(__file__).parents[1] / "configs" / "demo.yaml")
    distill = cfg.section("distill")
    assert isinstance(distill, DistillConfig)
    assert distill.student.layers == [0, 2, 4]
    assert cfg.section("task").data.label_column == "sentiment"


def test_demo_kd_is_the_demo_with_its_documented_distillation_budget() -> None:
    """benchmarks/kd_seeds.py's figures are read as "the demo": the two files may differ only where
    demo-kd.yaml's header says, or the figures stop describing the quick demo's recipe."""
    configs = Path(__file__).parents[1] / "configs"
    overrides = {"name": "demo-minilm-tweets-kd", "task.data.max_examples": 12000, "task.data.test_size": 7500,
                 "distill.teacher_train.epochs": 6, "distill.teacher_train.learning_rate": 5e-5,
                 "distill.transfer.max_examples": 20000}
    expected = load_config(configs / "demo.yaml", overrides)
    actual = load_config(configs / "demo-kd.yaml")
    assert actual.to_dict() == expected.to_dict()


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).parents[1] / "configs").glob("*.yaml")))
def test_every_shipped_config_validates_every_section(name: str) -> None:
    """A key renamed or a value out of range in a shipped config fails here, not minutes into a run."""
    from trt_edge.config import SECTIONS

    cfg = load_config(Path(__file__).parents[1] / "configs" / name)
    sections = [s for s in cfg.raw if s in SECTIONS]
    assert sections
    for section in sections:
        cfg.section(section)


def test_dotted_and_bare_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("distill:\n  temperature: 2.0\n  train: {epochs: 3}\n")
    cfg = load_config(path, {"distill.train.epochs": 1, "alpha": 0.25, "task.max_length": 32}, "distill")
    d = cfg.section("distill")
    assert (d.train.epochs, d.alpha, d.temperature) == (1, 0.25, 2.0)
    assert cfg.section("task").max_length == 32


def test_unknown_key_names_the_nearest(tmp_path: Path) -> None:
    with pytest.raises(TrtEdgeError, match=r"distill\.temprature.*did you mean 'temperature'"):
        load_config(None, {"distill.temprature": 3}).section("distill")
    with pytest.raises(TrtEdgeError, match="did you mean 'distill'"):
        load_config(None, {"distil.alpha": 0.1})
    path = tmp_path / "c.yaml"
    path.write_text("distil:\n  alpha: 0.1\n")
    with pytest.raises(TrtEdgeError, match=r"unknown config section 'distil'.*did you mean 'distill'"):
        load_config(path)


def test_bare_override_without_a_section_is_refused() -> None:
    with pytest.raises(TrtEdgeError, match="unknown option --epochs"):
        apply_overrides({}, {"epochs": 1})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"distill.temperature": 0}, "temperature must be positive"),
        ({"distill.temperature": "hot"}, "expected a number"),
        ({"distill.train.epochs": 1.5}, "expected an integer"),
        ({"distill.teacher_finetune": "sometimes"}, "is not one of"),
        ({"distill.student.layers": "0,2"}, "expected a list"),
        ({"distill.alpha": 1.5}, r"alpha must be in \[0, 1\]"),
    ],
)
def test_bad_values_are_one_clear_error(overrides: dict, message: str) -> None:
    with pytest.raises(TrtEdgeError, match=message):
        load_config(None, overrides).section("distill")


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("distill:\n  alpha: [0.1\n  temperature: 2\n")
    with pytest.raises(TrtEdgeError, match=r"malformed YAML at line \d+"):
        load_yaml(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(TrtEdgeError, match="must be a YAML mapping"):
        load_yaml(path)
    with pytest.raises(TrtEdgeError, match="config file not found"):
        load_yaml(tmp_path / "missing.yaml")


def test_config_round_trips_through_dict() -> None:
    cfg = DistillConfig(temperature=3.0, train=TrainConfig(epochs=1))
    again = DistillConfig.from_dict(cfg.to_dict())
    assert again == cfg


def test_a_named_jetpack_fixes_the_tensorrt_version_to_the_patch() -> None:
    """Issue 33 item 10: `jetpack: "5.1.2"` with `trt_version: "8.5"` is TensorRT 8.5.2 (what JetPack 5.1.2
    ships), a contradicting version is refused in one line, and the dataclass default JetPack (6.2) is
    never "named": a lone `trt_version: "10.13"` is not measured against it."""
    from trt_edge.config import RunConfig
    from trt_edge.target import resolve_target

    jp5 = {"device": "agx-xavier", "jetpack": "5.1.2", "trt_version": "8.5"}
    target = resolve_target({"target": jp5}, "build")
    assert target.trt_version == "8.5.2" and str(target.tensorrt()) == "8.5.2"
    assert RunConfig({"target": jp5}).section("target").trt_version == "8.5.2"  # the section itself, too
    # The deprecated build keys name a JetPack just as well.
    assert resolve_target({"build": {"jetpack": "5.1.2", "trt_version": "8.5"}}, "build").trt_version == "8.5.2"
    # A version more specific than the table's entry, and agreeing with it, is kept as written.
    assert resolve_target({"target": {"jetpack": "7.0", "trt_version": "10.13.3"}}).trt_version == "10.13.3"
    for version in ("10.3", "8.6", "8.5.1", "10"):
        with pytest.raises(TrtEdgeError, match=r"target\.jetpack 5\.1\.2 ships TensorRT 8\.5\.2"):
            resolve_target({"target": {"jetpack": "5.1.2", "trt_version": version}}, "export")
    with pytest.raises(TrtEdgeError, match=r"ships TensorRT 8\.5\.2"):
        RunConfig({"target": {"jetpack": "5.1.2", "trt_version": "10.3"}}).section("target")
    # No jetpack key: the default 6.2 is not named, so 10.13 and 8.5 are taken as asked and the default
    # JetPack, which would misdescribe the target, is dropped.
    for version, full in (("10.13", "10.13.0"), ("8.5", "8.5.0")):
        lone = resolve_target({"target": {"trt_version": version}}, "build")
        assert str(lone.tensorrt()) == full and lone.jetpack is None
    # ... and a lone version that agrees with the default keeps it (and is not completed by it).
    assert resolve_target({"target": {"trt_version": "10.3"}}).jetpack == "6.2"
    assert resolve_target({"target": {"trt_version": "10.3"}}).trt_version == "10.3"
    assert str(resolve_target({}).tensorrt()) == "10.3.0"


def test_sparse_weights_auto_follows_the_target_device() -> None:
    """Issue 33 item 2: `build.sparse_weights` defaults to auto, resolved by the one function that applies
    the target for preflight and the build stage: on where the device has sparse tensor cores."""
    from trt_edge.config import RunConfig
    from trt_edge.engine.config import BuildConfig, effective_build_config

    assert BuildConfig().sparse_weights == "auto"

    def effective(raw: dict[str, object]) -> BuildConfig:
        return effective_build_config(RunConfig(raw))

    xavier = effective({"target": {"device": "agx-xavier", "jetpack": "5.1.2", "trt_version": "8.5"}})
    assert xavier.sparse_weights is False and xavier.device == "agx-xavier" and xavier.trt_version == "8.5.2"
    assert effective({}).sparse_weights is True  # the default target: AGX Orin
    assert effective({"target": {"device": "agx-thor", "trt_version": "10.13"}}).sparse_weights is True
    assert effective({"target": {"device": None, "trt_version": "10.3"}}).sparse_weights is False
    assert effective({"build": {"precision": "fp32"}}).sparse_weights is False  # fp32 runs no sparse kernel
    # An explicit choice is kept: existing Orin configs that say true, and false anywhere.
    assert effective({"build": {"sparse_weights": True}}).sparse_weights is True
    assert effective({"build": {"sparse_weights": "false"}}).sparse_weights is False
    # The target's device is the one preflight checks (the bug: build's own default device was used).
    assert effective({"target": {"device": "orin-nano-8gb"}}).device == "orin-nano-8gb"
    with pytest.raises(TrtEdgeError, match="sparse_weights"):
        RunConfig({"build": {"sparse_weights": "sometimes"}}).section("build")


def test_decompose_layernorm_auto_follows_the_target_tensorrt() -> None:
    """Issue 33 item 11: `export.decompose_layernorm` defaults to auto, on exactly where the target
    TensorRT has no LayerNormalization importer (the lint tables say which); false there is refused."""
    from trt_edge.export.config import ExportConfig
    from trt_edge.export.lint import available_versions, imports_op, load_table
    from trt_edge.target import TargetConfig

    auto = ExportConfig()
    assert auto.decompose_layernorm == "auto"
    for version in available_versions():  # the tables are the one source
        lacks = "LayerNormalization" not in load_table(version)["supported"]
        assert auto.layernorm_decomposed(TargetConfig(trt_version=version, jetpack=None)) is lacks
        assert imports_op(version, "LayerNormalization") is not lacks
    assert auto.layernorm_decomposed(TargetConfig(jetpack="5.1.2")) is True  # 8.5.2 from the JetPack
    assert auto.layernorm_decomposed(TargetConfig()) is False  # JetPack 6.2: TensorRT 10.3
    assert auto.layernorm_decomposed(TargetConfig(device=None, jetpack=None)) is False  # no target TensorRT
    assert ExportConfig(decompose_layernorm=True).layernorm_decomposed(TargetConfig()) is True
    assert ExportConfig(decompose_layernorm=False).layernorm_decomposed(TargetConfig()) is False
    with pytest.raises(TrtEdgeError, match="has no LayerNormalization importer"):
        ExportConfig(decompose_layernorm=False).layernorm_decomposed(TargetConfig(trt_version="8.5"))


def test_preflight_applies_the_target_section() -> None:
    """Issue 33 items 2 and 11: preflight checks the build the stage will make (the target applied), so a
    Xavier target with 2:4 kernels asked for, or an export keeping LayerNormalization for TensorRT 8.5, is
    refused before the first stage; with auto it says instead that 2:4 buys no TensorRT speed there."""
    from trt_edge.config import RunConfig
    from trt_edge.preflight import preflight

    xavier = {"device": "agx-xavier", "jetpack": "5.1.2", "trt_version": "8.5"}
    with pytest.raises(TrtEdgeError, match=r"TensorRT 8\.5 on agx-xavier would be refused: 2:4 sparse kernels"):
        preflight(RunConfig({"target": xavier, "build": {"sparse_weights": True}}), ["build"], data=False)
    with pytest.raises(TrtEdgeError, match="no LayerNormalization importer"):
        preflight(RunConfig({"target": xavier, "export": {"decompose_layernorm": False}}), ["export", "build"],
                  data=False)
    facts = preflight(RunConfig({"target": xavier}), ["prune", "export", "build"], data=False)
    assert len(facts["notes"]) == 1
    assert "no TensorRT speed-up on Jetson AGX Xavier" in facts["notes"][0] and "CPU artifact" in facts["notes"][0]
    assert "notes" not in preflight(RunConfig({}), ["prune", "export", "build"], data=False)
    # Existing Orin configs that ask for 2:4 keep passing.
    preflight(RunConfig({"target": {"device": "agx-orin-64gb", "jetpack": "6.2", "trt_version": "10.3"},
                         "build": {"sparse_weights": True}}), ["build"], data=False)


def test_compare_shapes_follow_max_length_unless_given() -> None:
    from trt_edge.pipeline.config import PipelineConfig

    assert PipelineConfig().shapes(64) == [[1, 32], [1, 64], [8, 64]]
    assert PipelineConfig().shapes(128) == [[1, 64], [1, 128], [8, 128]]  # the old fixed default
    assert PipelineConfig(compare_shapes=[[2, 16]]).shapes(64) == [[2, 16]]
    assert PipelineConfig().shapes(None) == [[1, 1], [8, 1]]  # no sequence axis: batch 1 and 8
