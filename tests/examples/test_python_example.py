"""The Python embedding example runs end to end on the real exported student and prints one label a text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "python" / "classify.py"


def test_python_example_classifies(student_onnx: Path, minilm_student_dir: Path) -> None:
    texts = ["what a great show tonight!", "worst traffic ever, so annoyed"]
    result = subprocess.run([sys.executable, str(EXAMPLE), str(student_onnx), "--tokenizer", str(minilm_student_dir),
                             *texts], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    for line, text in zip(lines, texts, strict=True):
        label, probability, *_ = line.split()
        assert label in {"negative", "neutral", "positive"} and 1 / 3 <= float(probability) <= 1.0
        assert line.endswith(text)
