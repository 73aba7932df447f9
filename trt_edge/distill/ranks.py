"""Which process of a data-parallel launch writes files (no torch import: the stage imports it early)."""

from __future__ import annotations

import os


def is_main_process() -> bool:
    """True outside a distributed launch, and on rank 0 inside one (`accelerate launch`, `torchrun` set RANK).

    Every process trains; only this one writes caches and the stage folder, so ranks never race on a file.
    """
    return int(os.environ.get("RANK", "0")) == 0
