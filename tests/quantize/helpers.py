"""Shared pieces of the calibrate tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trt_edge.config import RunConfig


def calibrate_config(data_config: Any, tokenizer: Path, **calibrate: Any) -> RunConfig:
    cal = {"data": {"samples": 128}, "latency_runs": 3, "tokenizer": str(tokenizer)}
    for key, value in calibrate.items():
        if isinstance(value, dict) and isinstance(cal.get(key), dict):
            cal[key] = {**cal[key], **value}  # type: ignore[dict-item]
        else:
            cal[key] = value
    return RunConfig({"task": {"max_length": 64, "data": data_config.to_dict()}, "calibrate": cal})
