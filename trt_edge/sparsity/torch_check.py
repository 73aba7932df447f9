"""Prove the 2:4 pattern in a model folder's saved weights (safetensors), against its `sparsity.json`.

Reads the tensors straight from the safetensors files (no model class, no remote code), so it checks
exactly what the next stage will load. Torch stores a Linear weight as [out, in]: the pattern runs along
axis 1, the input (reduction) dimension.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.sparsity.report import (
    SPARSITY_FILE,
    SparsityReport,
    TensorCheck,
    expected_tensors,
    load_sparsity_json,
    pattern_stats,
)


def load_weights(model_dir: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a Hugging Face folder's safetensors files, as float32 numpy arrays."""
    from safetensors import safe_open

    folder = Path(model_dir)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise TrtEdgeError(f"{folder}: no .safetensors weights in this folder")
    out: dict[str, np.ndarray] = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    out[name] = handle.get_tensor(name).float().numpy()
        except Exception as exc:  # safetensors raises its own error types
            raise TrtEdgeError(f"{file}: unreadable safetensors file ({exc})") from exc
    return out


def check_model_sparsity(model_dir: str | Path, sparsity_json: str | Path | None = None) -> SparsityReport:
    """Test every 2-D weight of a model folder for 2:4 along its input dimension.

    Args:
      model_dir (str | Path): a Hugging Face folder (safetensors) written by the prune stage.
      sparsity_json (str | Path | None): the list of tensors that must be 2:4. Defaults to the folder's own
        `sparsity.json`, which must then exist.

    Raises:
      TrtEdgeError: not a folder, no weights, or no sparsity.json (the folder is not a pruned model).
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        raise TrtEdgeError(f"{folder}: not a model folder")
    source = sparsity_json if sparsity_json is not None else folder
    if sparsity_json is None and not (folder / SPARSITY_FILE).is_file():
        raise TrtEdgeError(f"{folder}: no {SPARSITY_FILE} in this folder, so nothing says which tensors must be 2:4; "
                           "give the output of `trt-edge prune` (its model/ folder)")
    sparsity = load_sparsity_json(source)
    expected = expected_tensors(sparsity)
    weights = load_weights(folder)
    report = SparsityReport(source=str(folder), expected=expected, sparsity_json=str(source))
    for name, value in weights.items():
        listed = name in sparsity["tensors"]
        if value.ndim != 2 or (not listed and ("embeddings" in name or not name.endswith(".weight"))):
            continue
        stats = pattern_stats(value, axis=1)
        report.rows.append(TensorCheck(
            name=name, consumer=name.removesuffix(".weight"), op="Linear", axis=1, shape=list(value.shape),
            is_2to4=stats.holds, fraction_ok=stats.fraction_ok, zero_fraction=stats.zero_fraction, model_name=name,
            note="" if stats.eligible else f"input width {value.shape[1]} is not a multiple of 4",
        ))
    rows = {r.name: r for r in report.rows}
    for name in expected:
        row = rows.get(name)
        if row is None:
            report.violations.append(name)
            report.problems[name] = "listed in sparsity.json but not a 2-D tensor of this model"
        elif not row.is_2to4:
            report.violations.append(name)
            report.problems[name] = f"lost the 2:4 pattern: {100 * row.fraction_ok:.1f}% of groups hold it"
    return report
