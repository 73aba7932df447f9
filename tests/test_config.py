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
                 "distill.teacher_train.epochs": 6,
                 "distill.transfer": {"source": "unused", "max_examples": 20000}}
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


def test_compare_shapes_follow_max_length_unless_given() -> None:
    from trt_edge.pipeline.config import PipelineConfig

    assert PipelineConfig().shapes(64) == [[1, 32], [1, 64], [8, 64]]
    assert PipelineConfig().shapes(128) == [[1, 64], [1, 128], [8, 128]]  # the old fixed default
    assert PipelineConfig(compare_shapes=[[2, 16]]).shapes(64) == [[2, 16]]
