"""Data keys that do not apply to the chosen data source are refused, not silently ignored.

A folder of class sub-folders has no columns: a `text_column`, `label_column` or `min_values` set for it
would be ignored, and the user would believe their filter or column choice took effect.
"""

from __future__ import annotations

from pathlib import Path

from trt_edge.errors import TrtEdgeError
from trt_edge.tasks.config import DataConfig

# keys that only a table file (csv, tsv, jsonl) reads
TABLE_ONLY = ("text_column", "label_column", "min_values")


def check_source_keys(cfg: DataConfig, fmt: str, path: Path) -> None:
    """Raise when a key set away from its default does not apply to format `fmt` of `path`."""
    if fmt == "lines":  # one text per line: no columns either
        default = DataConfig()
        set_keys = [k for k in TABLE_ONLY if getattr(cfg, k) != getattr(default, k) and
                    not (k == "label_column" and cfg.label_column is None)]
        if set_keys:
            raise TrtEdgeError(f"{', '.join('task.data.' + k for k in set_keys)} do not apply to {path}, a file of "
                               "one text per line; remove them, or give a CSV/TSV/JSONL file")
        return
    if fmt != "folder":
        return
    default = DataConfig()
    set_keys = [k for k in TABLE_ONLY if getattr(cfg, k) != getattr(default, k)]
    if set_keys:
        keys = ", ".join(f"task.data.{k}" for k in set_keys)
        raise TrtEdgeError(f"{keys} {'does' if len(set_keys) == 1 else 'do'} not apply to {path}, a folder of "
                           "class sub-folders (the text is each .txt file, the label its sub-folder's name); "
                           "remove it, or point task.data.source at a CSV/TSV/JSONL file")
