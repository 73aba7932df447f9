"""Input hardening in one place: weights, tokenizers, output folders, writer locks, untrusted JSON.

Every check here turns a bad input into one `TrtEdgeError` line *before* expensive work starts, and
never leaves anything behind when it refuses. Stages and commands call these helpers instead of
re-checking by hand, so one rule (no pickle, one writer per folder, never replace a user's file)
holds on every path.

One module per concern: `weights` (safetensors only), `tokenizers` (a real vocabulary, sequence lengths
within the position table), `bounded_json` (untrusted JSON), `outputs` (output folders and writer locks).
This package re-exports their public names, so `from trt_edge.guard import X` is the way to use them.
"""

from __future__ import annotations

from trt_edge.guard.bounded_json import MAX_JSON_BYTES, MAX_JSON_DEPTH, load_json, parse_json, too_big
from trt_edge.guard.outputs import (
    OUTPUT_MARKERS,
    check_output,
    check_report_file,
    is_trt_edge_output,
    lock_path,
    output_folder,
    remove_stale_partials,
    writer_lock,
    writes_output,
)
from trt_edge.guard.tokenizers import check_positions, load_tokenizer, model_positions
from trt_edge.guard.weights import PICKLE_SUFFIXES, SAFE_INDEX, SAFE_WEIGHTS, weight_files, weight_hashes

__all__ = [
    "MAX_JSON_BYTES", "MAX_JSON_DEPTH", "OUTPUT_MARKERS", "PICKLE_SUFFIXES", "SAFE_INDEX", "SAFE_WEIGHTS",
    "check_output", "check_positions", "check_report_file", "is_trt_edge_output", "load_json",
    "load_tokenizer", "lock_path", "model_positions", "output_folder", "parse_json", "remove_stale_partials",
    "too_big", "weight_files", "weight_hashes", "writer_lock", "writes_output",
]
