"""The two kinds of failure the kit knows.

`TrtEdgeError` is the user's or the environment's problem (a missing file, a bad config, a package not
installed): the CLI prints its message on one line and exits 2, without a traceback. `GateError` is a
measured gate that did not hold (accuracy, parity): exit 1 with the figures. Anything else is a bug in
the kit and propagates with its traceback.
"""

from __future__ import annotations

from typing import Any


class TrtEdgeError(Exception):
    """A user or environment error: one line, exit status 2."""

    exit_code = 2


class GateError(TrtEdgeError):
    """An accuracy or parity gate failed: exit status 1, the message carries the figures."""

    exit_code = 1

    def __init__(self, message: str, figures: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.figures = dict(figures or {})


def require(condition: bool, message: str) -> None:
    """Raise `TrtEdgeError(message)` unless `condition` holds (validation without `assert`)."""
    if not condition:
        raise TrtEdgeError(message)
