"""One writer per output folder, stale leftovers taken over, user files never replaced, and values that
must reach a command verbatim (texts, versions): the silent wrong successes of issue 16."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trt_edge.cli import TrtEdge, main
from trt_edge.cli_util import verbatim_argv
from trt_edge.errors import TrtEdgeError
from trt_edge.guard import check_output, lock_path, output_folder, writer_lock

HOLDER = """
import sys, time
from trt_edge.guard import writer_lock
with writer_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def _holder(folder: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_holder_and_a_dead_ones_lock_is_taken_over(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _holder(out)
    try:
        with pytest.raises(TrtEdgeError, match=rf"being written by PID {proc.pid} "), writer_lock(out):
            pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert lock_path(out).exists()  # the killed holder could not clean up ...
    (tmp_path / ".run.partial-abc").mkdir()  # ... nor its temporary output
    (tmp_path / ".run.partial-abc" / "weights").write_bytes(b"x" * 100)
    with output_folder(out):  # ... and both are taken over / removed by the next writer
        assert not (tmp_path / ".run.partial-abc").exists()
    assert not lock_path(out).exists() and not out.exists()


def test_the_lock_is_reentrant_in_one_process_and_leaves_no_folders(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "out"
    with writer_lock(out), writer_lock(out):
        assert lock_path(out).is_file()
    assert not (tmp_path / "a").exists()  # parents made for the lock are removed again


def test_out_never_replaces_a_users_file_or_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine.onnx"
    mine.write_text("precious")
    with pytest.raises(TrtEdgeError, match="existing file"):
        check_output(mine)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep")
    with pytest.raises(TrtEdgeError, match="did not write"):
        check_output(notes)
    assert check_output(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty")
    done = tmp_path / "done"
    done.mkdir()
    (done / "stage.json").write_text("{}")
    check_output(done)  # a previous trt-edge output may be replaced
    with pytest.raises(SystemExit):
        main(["build", "--onnx", str(mine), "--out", str(mine)])
    assert mine.read_text() == "precious" and sorted(p.name for p in tmp_path.iterdir()) == [
        "done", "empty", "mine.onnx", "notes"]


@pytest.mark.parametrize(("argv", "value"), [
    (["run", "--text", "great, thanks", "--onnx", "m.onnx"], "great, thanks"),
    (["run", "--text=1e5", "--onnx", "m.onnx"], "1e5"),
    (["run", "great, thanks", "--onnx", "m.onnx"], "great, thanks"),
    (["run", "--text", "[1, 2]", "--onnx", "m.onnx"], "[1, 2]"),
    (["run", "--text", "True", "--onnx", "m.onnx"], "True"),
    (["build", "--onnx", "m.onnx", "--trt-version", "10.10"], "10.10"),
    (["build", "--onnx", "m.onnx", "--build.trt_version=10.10"], "10.10"),
    (["calibrate", "--onnx", "m.onnx", "--trt_version", "10.10"], "10.10"),
    (["build", "--onnx", "m.onnx", "--out", "runs/a,b"], "runs/a,b"),
])
def test_string_values_reach_the_command_verbatim(argv: list[str], value: str) -> None:
    import fire.parser

    quoted = verbatim_argv(argv, TrtEdge)
    parsed = [fire.parser.DefaultParseValue(a.split("=", 1)[1] if a.startswith("--") else a) for a in quoted[1:]
              if not (a.startswith("--") and "=" not in a)]
    assert value in parsed


def test_numbers_and_lists_for_numeric_keys_stay_numbers() -> None:
    assert verbatim_argv(["build", "--onnx", "m", "--batch=[1,8,32]", "--workspace_mib=2048"], TrtEdge)[2:] == [
        "--batch=[1,8,32]", "--workspace_mib=2048"]
    assert verbatim_argv(["profile", "--onnx", "m", "--batch", "1,8"], TrtEdge)[2] == "--batch=1,8"


def test_yaml_versions_keep_their_spelling(tmp_path: Path) -> None:
    from trt_edge.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("build:\n  trt_version: 10.10\ncalibrate:\n  trt_version: 10.10\n")
    config = load_config(path)
    assert config.section("build").trt_version == "10.10"
    assert config.section("calibrate").trt_version == "10.10"
    assert json.loads(json.dumps(config.to_dict()))["build"]["trt_version"] == 10.1  # plain JSON float still


def test_run_classifies_the_text_verbatim(tiny_bert_onnx: Path, tiny_bert_dir: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    long_text = "word " * 5000
    (tmp_path / "long.txt").write_text(long_text + "\nsecond line\n")
    for argv, texts in (
        (["--text", "great, thanks"], ["great, thanks"]),
        (["--text", "1e5"], ["1e5"]),
        (["--text", long_text.strip()], [long_text.strip()]),
        (["--text-file", str(tmp_path / "long.txt"), "--lines"], [long_text.strip(), "second line"]),
    ):
        main(["run", *argv, "--onnx", str(tiny_bert_onnx), "--tokenizer", str(tiny_bert_dir)])
        printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [p["text"].strip() for p in printed] == texts


def test_a_killed_standalone_command_leaves_nothing_the_next_run_keeps(tiny_bert_onnx: Path, tmp_path: Path) -> None:
    """SIGKILL in the middle of `build`: its .partial folder is removed by the next command on that --out."""
    out = tmp_path / "b"
    (tmp_path / ".b.partial-dead").mkdir()
    (tmp_path / ".b.partial-dead" / "model.onnx").write_bytes(b"half")
    (tmp_path / ".b.lock").write_text(json.dumps({"pid": 999999, "host": "x"}))  # its stale lock
    started = time.monotonic()
    main(["build", "--onnx", str(tiny_bert_onnx), "--out", str(out)])
    assert time.monotonic() - started < 120
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
