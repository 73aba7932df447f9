"""The modeling layer (issue 27 item 2): one table of config-name alternatives and one head-count reader,
family quirks found once and declared per `model_type`, the supported-families table in the package
(read by tests/matrix and by preflight), and a layer that stands below tasks, distill and sparsity."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.modeling import families
from trt_edge.modeling.anatomy import config_key, config_value, head_count, hidden_size, num_layers


class _Attention:
    """An attention module as families write them: the head count under the family's own name."""

    def __init__(self, **attrs: int) -> None:
        self.__dict__.update(attrs)


def test_one_head_count_reads_every_spelling_from_configs_mappings_and_modules() -> None:
    """The two head-count readers had different name lists (sparsity/width lacked
    `encoder_attention_heads`, sparsity/permutation read only configs); now one table serves all."""
    from transformers import BertConfig, DistilBertConfig

    assert head_count(BertConfig(num_attention_heads=4, hidden_size=32)) == 4
    assert head_count(DistilBertConfig(n_heads=2, dim=32)) == 2
    assert head_count({"encoder_attention_heads": 6}) == 6  # config.json of an encoder-decoder
    assert head_count({"n_heads": 3}) == 3
    assert head_count(_Attention(num_heads=5)) == 5
    assert head_count(_Attention(head_dim=8)) is None and head_count(None) is None
    assert head_count({"num_attention_heads": True, "n_heads": 0}) is None  # not a count
    assert config_value({"n_layers": 4}, "layers") == 4 and config_value({"d_model": 64}, "hidden") == 64
    assert config_key({"n_layers": 4}, "layers") == "n_layers"  # where a new width is written
    assert config_key({}, "layers") == "num_hidden_layers"


def test_layers_and_hidden_size_of_a_family_that_names_them_otherwise() -> None:
    import transformers

    model = transformers.DistilBertForSequenceClassification(transformers.DistilBertConfig(
        vocab_size=50, dim=32, n_layers=3, n_heads=2, hidden_dim=64, max_position_embeddings=32))
    assert (num_layers(model), hidden_size(model)) == (3, 32)

    class Bare:
        config = object()

    with pytest.raises(TrtEdgeError, match="no layer count"):
        num_layers(Bare())


def _tiny(model_type: str) -> Any:
    """A tiny random-weight classifier of a covered family, from the builders the tests already have."""
    import torch
    import transformers

    torch.manual_seed(0)
    family = families.BY_MODEL_TYPE[model_type]
    if family.matrix:
        from tests.matrix.families import FAMILIES

        config = getattr(transformers, f"{family.classes}Config")(**FAMILIES[model_type](120))
        return getattr(transformers, f"{family.classes}ForSequenceClassification")(config).eval()
    from tests.tasks.audio_helpers import AUDIO_MODEL_TYPES, audio_config
    from tests.tasks.vision_helpers import DETECTORS, SEGMENTERS, detection_config, segmentation_config, vision_config

    if model_type in AUDIO_MODEL_TYPES:
        return transformers.AutoModelForAudioClassification.from_config(
            audio_config(AUDIO_MODEL_TYPES[model_type])).eval()
    if model_type in DETECTORS:
        return transformers.AutoModelForObjectDetection.from_config(detection_config(model_type, ["thing"])).eval()
    if model_type in SEGMENTERS:
        config = segmentation_config(model_type, ["background", "thing"])
        return transformers.AutoModelForSemanticSegmentation.from_config(config).eval()
    return getattr(transformers, f"{family.classes}ForImageClassification")(vision_config(model_type)).eval()


@pytest.mark.parametrize("model_type", [f.model_type for f in families.FAMILIES])
def test_declared_quirks_are_the_ones_the_model_shows(model_type: str) -> None:
    """Each family's quirks, keyed by model_type in the package table, are what the kit's detectors find on
    a real model of that family, and its config says the model_type the table keys it by."""
    from trt_edge.modeling.quirks import QUIRKS, detected

    model = _tiny(model_type)
    declared = set(families.BY_MODEL_TYPE[model_type].quirks)
    assert declared <= set(QUIRKS)
    assert model.config.model_type == model_type
    assert detected(model) == declared


def test_the_matrix_runs_exactly_the_table_s_matrix_families_and_cells() -> None:
    from tests.matrix import families as matrix
    from tests.matrix.table import CELLS, render
    from tests.matrix.test_architectures import EXPECTED_REFUSALS

    assert list(matrix.FAMILIES) == [f.model_type for f in families.FAMILIES if f.matrix]
    assert tuple(CELLS) == families.MATRIX_CELLS
    assert all(cell in families.MATRIX_CELLS for f in families.FAMILIES for cell in f.refusals)
    assert EXPECTED_REFUSALS[("modernbert", "fuse_trt")] == "rotary position embedding"
    assert families.BY_MODEL_TYPE["deberta-v2"].supports("permute")
    assert not families.BY_MODEL_TYPE["deberta-v2"].supports("fuse_cpu")
    # The docs table lists families in the package's order, whatever order the results came in.
    row = {key: "yes" for key in CELLS}
    rows = render({"albert": row, "bert": row}).splitlines()[2:]
    assert [r.split(" | ")[0] for r in rows] == ["| bert", "| albert"]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


@pytest.fixture
def distilbert_dir(tmp_path: Path, tiny_bert_dir: Path) -> Path:
    """A 4-layer DistilBERT folder (config names `n_layers`, `n_heads`, `dim`) with the tiny BERT's tokenizer."""
    import torch
    import transformers

    from tests.matrix.families import FAMILIES

    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_bert_dir)
    torch.manual_seed(0)
    config = transformers.DistilBertConfig(**FAMILIES["distilbert"](len(tokenizer)))
    out = tmp_path / "distilbert"
    transformers.DistilBertForSequenceClassification(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    assert "num_hidden_layers" not in json.loads((out / "config.json").read_text())
    return out


def test_preflight_reads_a_family_s_own_layer_count_name(distilbert_dir: Path) -> None:
    """Preflight read only `num_hidden_layers`, so out-of-range student layers of a DistilBERT teacher
    (`n_layers`) passed it and failed in the distill stage; now the anatomy table names the count."""
    from trt_edge.config import RunConfig
    from trt_edge.preflight import preflight

    raw = {"distill": {"teacher": str(distilbert_dir), "student": {"layers": [0, 7]}}}
    with pytest.raises(TrtEdgeError, match=r"out of range: the teacher has layers 0\.\.3"):
        preflight(RunConfig(raw), ["distill"], data=False)


def test_preflight_warns_once_on_a_model_type_no_test_covers(distilbert_dir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from trt_edge.config import RunConfig
    from trt_edge.log import get_logger
    from trt_edge.preflight import preflight

    collect = _Collect()
    get_logger().addHandler(collect)
    try:
        preflight(RunConfig({"distill": {"teacher": str(distilbert_dir)}}), ["distill"], data=False)
        assert not [line for line in collect.lines if "model_type" in line]  # a covered family: silent
        uncovered = tmp_path / "uncovered"
        shutil.copytree(distilbert_dir, uncovered)
        monkeypatch.setattr(families, "BY_MODEL_TYPE",
                            {k: v for k, v in families.BY_MODEL_TYPE.items() if k != "distilbert"})
        preflight(RunConfig({"distill": {"teacher": str(uncovered)}}), ["distill"], data=False)
    finally:
        get_logger().removeHandler(collect)
    warned = [line for line in collect.lines if "model_type" in line]
    assert len(warned) == 1 and warned[0].startswith("WARNING ")
    assert "'distilbert' is not a family trt-edge's tests cover" in warned[0] and str(uncovered) in warned[0]


def test_modeling_stands_below_tasks_distill_sparsity_and_the_stages() -> None:
    """Every import of the modeling layer, deferred ones included, stays inside foundations; and loading a
    model folder (tasks.models) no longer reaches the pruner (the tasks <-> sparsity <-> distill cycle)."""
    grimp = pytest.importorskip("grimp")

    graph = grimp.build_graph("trt_edge", cache_dir=None)
    above = ("trt_edge.tasks", "trt_edge.distill", "trt_edge.sparsity", "trt_edge.export", "trt_edge.quantize",
             "trt_edge.engine", "trt_edge.profile", "trt_edge.pipeline", "trt_edge.cli", "trt_edge.preflight")
    for module in (m for m in graph.modules if m.startswith("trt_edge.modeling")):
        bad = [m for m in graph.find_modules_directly_imported_by(module) if m.startswith(above)]
        assert not bad, f"{module} imports {bad}"
    assert not graph.chain_exists("trt_edge.tasks.models", "trt_edge.sparsity.width", as_packages=True)
    assert not graph.chain_exists("trt_edge.tasks.spec", "trt_edge.tasks.models")


FAMILIES_BEGIN = "<!-- model-families:begin (generated from trt_edge/modeling/families.py; do not edit) -->"
FAMILIES_END = "<!-- model-families:end -->"


def test_docs_families_table_is_the_package_s() -> None:
    """docs/export.md lists the covered families from the package's table (rewrite it with
    `TRT_EDGE_WRITE_DOCS=1 pytest tests/modeling -k docs_families`)."""
    import os

    from tests.matrix.table import ROOT, replace_section

    doc = ROOT / "docs" / "export.md"
    text = doc.read_text(encoding="utf-8")
    updated = replace_section(text, families.markdown(), FAMILIES_BEGIN, FAMILIES_END)
    if updated != text and os.environ.get("TRT_EDGE_WRITE_DOCS") == "1":
        doc.write_text(updated, encoding="utf-8")
        text = updated
    assert FAMILIES_BEGIN in text and updated == text, "docs/export.md's families table is stale"
    assert "| dinov2 | DINOv2 | backbone-stages | no |" in families.markdown()
