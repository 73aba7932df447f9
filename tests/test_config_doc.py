"""Every config key is findable: `--help` lists a command's sections, docs/config.md is generated and fresh."""

from __future__ import annotations

from pathlib import Path

import pytest

from trt_edge.cli import main
from trt_edge.config_doc import COMMAND_SECTIONS, all_keys, help_text, markdown
from trt_edge.errors import TrtEdgeError
from trt_edge.tasks.config import DataConfig
from trt_edge.tasks.data import load_data

ROOT = Path(__file__).resolve().parents[1]


def test_docs_config_md_is_generated_from_the_dataclasses() -> None:
    page = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert page == markdown(), "docs/config.md is stale: run `python -m trt_edge.config_doc > docs/config.md`"


def test_every_key_has_a_type_default_and_description() -> None:
    keys = all_keys()
    assert len(keys) > 100
    undocumented = [k.key for k in keys if not k.doc]
    assert not undocumented, f"keys without a docstring entry in their config class: {undocumented}"
    by_key = {k.key: k for k in keys}
    assert by_key["distill.train.epochs"].default == "3"  # the parent section's default, not TrainConfig's
    assert by_key["task.data.text_column"].type == "str"
    assert by_key["pipeline.gates"].default.startswith("{'distill': 3.0")


@pytest.mark.parametrize("command", ["distill", "calibrate", "build"])
def test_command_help_lists_its_config_sections(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert "CONFIG KEYS" in out
    for section in COMMAND_SECTIONS[command]:
        assert f"\n    {section}." in out
    if command == "distill":
        assert "distill.temperature (float) = 2.0" in out and "task.data.text_column (str) = 'text'" in out
    assert help_text("lint") == ""


def test_table_keys_on_a_folder_source_are_refused(tmp_path: Path) -> None:
    for label in ("cats", "dogs"):
        (tmp_path / label).mkdir()
        for i in range(10):
            (tmp_path / label / f"{i}.txt").write_text(f"{label} {i}")
    assert load_data(DataConfig(source=str(tmp_path))).num_labels == 2
    with pytest.raises(TrtEdgeError, match=r"task.data.text_column does not apply to .*a folder"):
        load_data(DataConfig(source=str(tmp_path), text_column="body"))
    with pytest.raises(TrtEdgeError, match=r"task\.data\.label_column, task\.data\.min_values do not apply"):
        load_data(DataConfig(source=str(tmp_path), label_column="y", min_values={"score": 0.5}))
