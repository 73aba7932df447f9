"""CLI commands of this area, mixed into `trt_edge.cli.TrtEdge`."""

from __future__ import annotations


class PipelineCommands:
    """Commands of this area."""
