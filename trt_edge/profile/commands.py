"""CLI commands of this area, mixed into `trt_edge.cli.TrtEdge`.

Keep each method a few lines: build the config, call the library, print a short summary. Import heavy
modules inside the method so `trt-edge --help` stays fast and works without optional libraries.
"""

from __future__ import annotations


class ProfileCommands:
    """Commands of this area."""
