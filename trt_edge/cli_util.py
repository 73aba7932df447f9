"""Small helpers shared by the CLI command mixins."""

from __future__ import annotations

import json
from typing import Any


def print_summary(record: Any, keys: tuple[str, ...]) -> None:
    """Print the named metrics of a StageRecord as JSON on standard output."""
    metrics = record.metrics
    print(json.dumps({k: metrics[k] for k in keys if k in metrics}, indent=2, default=str))
