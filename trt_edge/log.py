"""One logger for the kit, with a stage prefix and warnings that are said once.

Messages go to standard error so that commands that print JSON keep standard output clean.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

_LOGGER_NAME = "trt_edge"
_said: set[str] = set()


def get_logger(stage: str | None = None) -> logging.Logger:
    """Return the kit's logger, or a child named after a stage (`trt_edge.distill`)."""
    root = logging.getLogger(_LOGGER_NAME)
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(name)s] %(levelname)s %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    return root.getChild(stage) if stage else root


def warn_once(message: str, stage: str | None = None) -> None:
    """Warn once per process: repeated warnings inside loops drown the one that matters."""
    if message in _said:
        return
    _said.add(message)
    get_logger(stage).warning(message)


def info_once(message: str, stage: str | None = None) -> None:
    """Say a fact once per process: every stage of a pipeline reloads the data, and the same line five
    times reads like five events."""
    if message in _said:
        return
    _said.add(message)
    get_logger(stage).info(message)


def debug_lazy(build: Callable[[], str], stage: str | None = None) -> None:
    """Build an expensive debug message only when debug logging is on."""
    logger = get_logger(stage)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(build())
