"""The real student calibrated once per test session, for both targets (TensorRT Q/DQ and CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .helpers import calibrate_config


@pytest.fixture(scope="session")
def student_run(student_onnx: Path, minilm_student_dir: Path, demo_data_config: Any,
                tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    from trt_edge.quantize.stage import run

    out = tmp_path_factory.mktemp("calibrate") / "student"
    cfg = calibrate_config(demo_data_config, minilm_student_dir, targets=["tensorrt", "cpu"], cpu={"runs": 3})
    record = run(cfg, student_onnx, out)
    return out, record
