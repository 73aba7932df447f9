"""The task contract: declared inputs and axes, the one version type, the target section, the
preprocessor that travels with the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trt_edge.config import RunConfig
from trt_edge.errors import TrtEdgeError
from trt_edge.quantize.cache import trt_version_int
from trt_edge.target import resolve_target
from trt_edge.tasks.spec import IMAGE_CLASSIFICATION, TEXT_CLASSIFICATION, preprocessor_dir, task_for_inputs
from trt_edge.trt_version import TrtVersion


def test_specs_declare_named_axes() -> None:
    assert TEXT_CLASSIFICATION.dynamic_axes == ("batch", "sequence")
    assert IMAGE_CLASSIFICATION.dynamic_axes == ("batch",)
    assert TEXT_CLASSIFICATION.required_inputs == ("input_ids", "attention_mask")
    assert task_for_inputs(["pixel_values"], "m") is IMAGE_CLASSIFICATION
    assert task_for_inputs(["input_ids", "attention_mask", "token_type_ids"], "m") is TEXT_CLASSIFICATION
    with pytest.raises(TrtEdgeError, match="match no task"):
        task_for_inputs(["x"], "m")


@pytest.mark.parametrize(("text", "parts", "short"), [("10.10", (10, 10), "10.10"), ("10.3.0.30", (10, 3, 0), "10.3"),
                                                      ("11", (11,), "11.0"), ("11.x", (11,), "11.0")])
def test_one_version_type(text: str, parts: tuple[int, ...], short: str) -> None:
    v = TrtVersion.parse(text)
    assert v.parts == parts and v.short == short
    assert TrtVersion.parse("10.10") > TrtVersion.parse("10.9")
    assert TrtVersion.parse("11.1.0").matches(TrtVersion.parse("11"))


def test_version_refuses_a_yaml_float_and_old_releases() -> None:
    with pytest.raises(TrtEdgeError, match="quote it"):
        TrtVersion.parse(10.1)
    with pytest.raises(TrtEdgeError, match="not supported"):
        TrtVersion.supported("8.4")
    # The target only checks the spelling; the calibration cache refuses 8.4 where it is used.
    assert str(resolve_target({"target": {"trt_version": "8.4"}}, "calibrate").tensorrt()) == "8.4.0"
    with pytest.raises(TrtEdgeError, match="not supported"):
        trt_version_int("8.4")
    with pytest.raises(TrtEdgeError, match="not a TensorRT version"):
        TrtVersion.parse("ten")


def test_target_section_and_deprecated_keys() -> None:
    assert str(resolve_target({}, "build").tensorrt()) == "10.3.0"  # JetPack 6.2's TensorRT
    raw = {"target": {"trt_version": "10.13"}}
    for section in ("export", "calibrate", "build"):
        assert str(resolve_target(raw, section).tensorrt()) == "10.13.0"
    assert resolve_target({"calibrate": {"trt_version": "8.5.2"}}, "calibrate").trt_version == "8.5.2"
    with pytest.raises(TrtEdgeError, match=r"deprecated: set target\.trt_version only"):
        resolve_target({"target": {"trt_version": "10.3"}, "build": {"trt_version": "11.1"}}, "build")
    with pytest.raises(TrtEdgeError, match="quote it"):
        RunConfig({"target": {"trt_version": 10.1}}).section("target")


def test_preprocessor_is_read_from_the_stage_that_wrote_the_model(tiny_bert_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    (export / "model.onnx").write_bytes(b"")
    with pytest.raises(TrtEdgeError, match="--tokenizer"):
        preprocessor_dir(export / "model.onnx")
    # A model folder elsewhere in the run is NOT searched: only the artifact the stage names.
    (export / "stage.json").write_text(json.dumps({"stage": "export", "inputs": {str(tiny_bert_dir): "x"},
                                                  "artifacts": {"onnx": "model.onnx"}}))
    with pytest.raises(TrtEdgeError, match="--tokenizer"):
        preprocessor_dir(export / "model.onnx")
    (export / "preprocessor").mkdir()
    TEXT_CLASSIFICATION.preprocessor.copy(tiny_bert_dir, export / "preprocessor")
    (export / "stage.json").write_text(json.dumps({"stage": "export", "artifacts": {"onnx": "model.onnx",
                                                                                   "preprocessor": "preprocessor"}}))
    assert preprocessor_dir(export / "model.onnx") == export / "preprocessor"
    assert not any(p.suffix == ".safetensors" for p in (export / "preprocessor").iterdir())
    assert preprocessor_dir(export / "model.onnx", tiny_bert_dir) == tiny_bert_dir


def test_padding_mask_comes_from_the_task_not_a_name_in_the_stage() -> None:
    from trt_edge.tasks.spec import IMAGE_CLASSIFICATION, TEXT_CLASSIFICATION, padding_mask_input, value_inputs

    text = list(TEXT_CLASSIFICATION.input_names)
    assert padding_mask_input(text) == TEXT_CLASSIFICATION.length_input
    assert TEXT_CLASSIFICATION.length_input not in value_inputs(text)
    assert set(value_inputs(text)) == set(text) - {TEXT_CLASSIFICATION.length_input}
    image = list(IMAGE_CLASSIFICATION.input_names)
    assert padding_mask_input(image) is None and value_inputs(image) == image
    assert padding_mask_input([TEXT_CLASSIFICATION.inputs[0].name]) is None  # exported without a mask


def test_specs_word_shapes_and_example_sets() -> None:
    """Each task prints its own words: sequences by length, images by height x width (never `s1` or
    `lengths 1-1`); a symbolic or unknown image size prints the batch alone."""
    import numpy as np

    assert TEXT_CLASSIFICATION.describe_shape(1, 64) == "b1 s64"
    assert IMAGE_CLASSIFICATION.describe_shape(1, 1, (1, 3, 224, 224)) == "b1 224x224"
    assert IMAGE_CLASSIFICATION.describe_shape(4, 1, np.zeros((4, 1, 28, 32)).shape) == "b4 28x32"
    assert IMAGE_CLASSIFICATION.describe_shape(1, 1, ("batch", 3, "h", "w")) == "b1"
    assert IMAGE_CLASSIFICATION.describe_shape(1, 1) == "b1"
    assert TEXT_CLASSIFICATION.describe_examples((4, 128), [3, 9, 5, 6]) == "lengths 3-9 (median 5)"
    assert IMAGE_CLASSIFICATION.describe_examples((8, 3, 56, 56), [1] * 8) == "56x56 images"
    assert IMAGE_CLASSIFICATION.bundle_dir == "preprocessor" and TEXT_CLASSIFICATION.bundle_dir == "tokenizer"
