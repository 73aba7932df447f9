"""The kit's logger: a warning said once per process, its repeats counted and reported with the count."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest


def test_a_repeated_fallback_encoding_warning_is_shown_once_with_its_count(tmp_path: Path) -> None:
    """Issue 33 item 8: every stage loads the data again; the fallback-encoding warning for one file used
    to be printed once per load (7 times in a pipeline). Now once, and the count at the end.

    The kit's records are collected by a handler on its own logger (it does not propagate, and its stderr
    handler is bound to whatever stream an earlier test left in sys.stderr)."""
    from trt_edge.log import get_logger, report_repeats
    from trt_edge.tasks.config import DataConfig
    from trt_edge.tasks.data import Decoding, decode_file

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(f"{record.levelname} {record.getMessage()}")

    collect = Collect()
    get_logger().addHandler(collect)
    try:
        path = tmp_path / "tweets.csv"
        path.write_bytes("text,label\ncaf\xe9,joy\n".encode("latin-1"))
        cfg = DataConfig(source=str(path), encoding="utf-8", fallback_encoding="latin-1")
        for _ in range(7):
            assert decode_file(path, cfg, Decoding()).startswith("text,label\ncafé")
        lines = report_repeats()
    finally:
        get_logger().removeHandler(collect)
    warning = f"{path}: not utf-8 text (byte 14); read as latin-1"
    assert [line for line in collect.lines if warning in line] == [
        f"WARNING {warning}", f"INFO repeated warning (×7, shown once above): {warning}"]
    assert lines == [f"repeated warning (×7, shown once above): {warning}"]
    assert report_repeats() == []  # a count is reported once


def test_quiet_third_party_drops_library_warnings_and_installs_no_root_handler(
        capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    from trt_edge.log import get_logger, quiet_third_party

    root = logging.getLogger()
    handlers = list(root.handlers)
    with quiet_third_party():
        logging.warning("Please consider to run pre-processing before quantization.")
        logging.getLogger("onnx_model").warning('Model producer not matched: Expected "pytorch"')
    assert root.handlers == handlers  # no basicConfig() handler left behind for every later library warning
    get_logger("test").warning("ours still shows")
    err = capfd.readouterr().err + "\n".join(r.getMessage() for r in caplog.records)
    assert "pre-processing" not in err and "producer" not in err and "ours still shows" in err
