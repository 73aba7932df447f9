"""One logger for the kit, with a stage prefix and warnings that are said once.

Messages go to standard error so that commands that print JSON keep standard output clean.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator

_LOGGER_NAME = "trt_edge"
# How often each `warn_once` message was raised in this process, and the count last reported.
_said: dict[str, int] = {}
_reported: dict[str, int] = {}
# The `info_once` facts already said in this process.
_told: set[str] = set()


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
    """Warn once per process: repeated warnings inside loops (or in every stage that loads the same data)
    drown the one that matters. Repeats are counted; `report_repeats` says how many there were."""
    _said[message] = _said.get(message, 0) + 1
    if _said[message] == 1:
        get_logger(stage).warning(message)


def report_repeats(stage: str | None = None) -> list[str]:
    """One INFO line per `warn_once` warning raised more than once (the warning itself was shown once),
    with its count, e.g. "repeated warning (×7): ..."; a count already reported is not reported again.
    Called at the end of a command and of a pipeline. Returns the lines."""
    lines = []
    for message, count in _said.items():
        if count > 1 and _reported.get(message) != count:
            _reported[message] = count
            lines.append(f"repeated warning (×{count}, shown once above): {message}")
    for line in lines:
        get_logger(stage).info("%s", line)
    return lines


@contextlib.contextmanager
def quiet_third_party() -> Iterator[None]:
    """Silence third-party warnings the user cannot act on while a library call runs (ONNX Runtime's
    quantizer asks for its pre-processing script, its optimizer for a `pytorch` producer name).

    Records at WARNING and below are dropped for the duration (errors still show); with the kit's logger
    at DEBUG nothing is dropped. A NullHandler on the root logger keeps `logging.warning()` inside the
    library from installing a root handler (`basicConfig`) that would print every later warning of every
    library in the process.
    """
    if get_logger().isEnabledFor(logging.DEBUG):
        yield
        return
    root = logging.getLogger()
    guard = logging.NullHandler() if not root.handlers else None
    if guard is not None:
        root.addHandler(guard)
    previous = logging.root.manager.disable
    logging.disable(max(previous, logging.WARNING))
    try:
        yield
    finally:
        logging.disable(previous)
        if guard is not None:
            root.removeHandler(guard)


def info_once(message: str, stage: str | None = None) -> None:
    """Say a fact once per process: every stage of a pipeline reloads the data, and the same line five
    times reads like five events."""
    if message in _told:
        return
    _told.add(message)
    get_logger(stage).info(message)


def debug_lazy(build: Callable[[], str], stage: str | None = None) -> None:
    """Build an expensive debug message only when debug logging is on."""
    logger = get_logger(stage)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(build())
