"""2:4 structured sparsity: masks, channel permutations, recovery, and checks on torch and ONNX weights.

Public entry points (import from their modules; this package stays light):

* `trt_edge.sparsity.masks.prune_(model, Sparse24Config(...), filter_fn=None) -> Masks`
* `trt_edge.sparsity.permutation.permute_model_(model, consumers, seconds, seed)`
* `trt_edge.sparsity.onnx_check.check_onnx_sparsity(onnx_path, sparsity_json=None) -> SparsityReport`
* `trt_edge.sparsity.torch_check.check_model_sparsity(model_dir, sparsity_json=None) -> SparsityReport`
* `trt_edge.sparsity.check_sparsity(path, sparsity_json=None)`: either of the two, chosen by the path
* `trt_edge.sparsity.stage.run(config, model_dir, out) -> StageRecord`
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trt_edge.sparsity.report import SparsityReport


def check_sparsity(path: str | Path, sparsity_json: str | Path | None = None) -> SparsityReport:
    """Check an ONNX file, a model folder, or a stage folder's `onnx`/`model` artifact for 2:4.

    Raises TrtEdgeError for a path that is none of these.
    """
    from trt_edge.artifacts import MODEL, ONNX
    from trt_edge.errors import TrtEdgeError
    from trt_edge.stage import STAGE_FILE, read_stage, stage_artifact

    p = Path(path)
    if not p.exists():
        raise TrtEdgeError(f"{p}: no such file or folder")
    if p.is_dir() and (p / STAGE_FILE).is_file():
        artifacts = read_stage(p)["artifacts"]
        role = ONNX if ONNX in artifacts else MODEL if MODEL in artifacts else None
        if role is None:
            raise TrtEdgeError(f"{p}: this stage has no model or onnx artifact to check")
        p = stage_artifact(p, role)
    if p.is_file():
        if p.suffix.lower() != ".onnx":
            raise TrtEdgeError(f"{p}: give an .onnx file or a model folder")
        from trt_edge.sparsity.onnx_check import check_onnx_sparsity

        return check_onnx_sparsity(p, sparsity_json)
    from trt_edge.sparsity.torch_check import check_model_sparsity

    return check_model_sparsity(p, sparsity_json)
