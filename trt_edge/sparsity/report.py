"""The 2:4 pattern test and the report both checkers (torch weights, ONNX graphs) return.

numpy only, so the ONNX checker runs on a machine with neither torch nor TensorRT. The rule is the one
TensorRT's SPARSE_WEIGHTS flag applies: along the reduction axis of a weight, every group of 4
consecutive values holds at least 2 zeros, and the axis length is a multiple of 4.

`sparsity.json` (written by the prune stage inside the model folder) names the tensors that must carry
the pattern; a checker turns "a listed tensor lost its pattern" into a violation and the CLI into exit 1.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError

SPARSITY_FILE = "sparsity.json"
SPARSITY_FORMAT = "trt-edge-sparsity"
SPARSITY_VERSION = 1


@dataclass(frozen=True)
class PatternStats:
    """How far one tensor is from N:M along one axis.

    groups (int): groups of M along the axis (0 when the axis length is not a multiple of M).
    groups_ok (int): groups holding at least M - N zeros.
    zero_fraction (float): share of exact zeros in the whole tensor.
    eligible (bool): the axis length is a multiple of M.
    """

    groups: int
    groups_ok: int
    zero_fraction: float
    eligible: bool

    @property
    def fraction_ok(self) -> float:
        return self.groups_ok / self.groups if self.groups else 0.0

    @property
    def holds(self) -> bool:
        return self.eligible and self.groups > 0 and self.groups_ok == self.groups


def pattern_stats(values: np.ndarray, axis: int, n: int = 2, m: int = 4) -> PatternStats:
    """Count the groups of `m` consecutive values along `axis` that hold at least `m - n` zeros."""
    array = np.asarray(values)
    zero_fraction = float((array == 0).mean()) if array.size else 0.0
    if array.ndim == 0:
        return PatternStats(0, 0, zero_fraction, False)
    axis = axis % array.ndim
    length = array.shape[axis]
    if length == 0 or length % m:
        return PatternStats(0, 0, zero_fraction, False)
    moved = np.moveaxis(array == 0, axis, -1)
    zeros_per_group = moved.reshape(*moved.shape[:-1], length // m, m).sum(axis=-1)
    groups = int(zeros_per_group.size)
    ok = int((zeros_per_group >= m - n).sum())
    return PatternStats(groups, ok, zero_fraction, True)


@dataclass
class TensorCheck:
    """One row of a sparsity report: one weight as one consumer reads it.

    name (str): the tensor's name (torch parameter name, or the ONNX initializer it comes from).
    consumer (str): the module or ONNX node that reads it.
    op (str): `Linear` for torch; `MatMul`, `Gemm` or `Conv` for ONNX.
    axis (int): the reduction axis in the stored tensor's own layout (None when a Reshape hides it).
    shape (list[int]): the stored tensor's shape.
    is_2to4 (bool): every group of 4 along the axis holds at least 2 zeros.
    fraction_ok (float): share of groups that hold the pattern.
    zero_fraction (float): share of exact zeros.
    model_name (str | None): the torch parameter this ONNX weight was exported from, when known.
    path (list[str]): ops followed from the consumer back to the stored tensor.
    note (str): why a tensor cannot carry the pattern (axis length), or ''.
    """

    name: str
    consumer: str
    op: str
    axis: int | None
    shape: list[int]
    is_2to4: bool
    fraction_ok: float
    zero_fraction: float
    model_name: str | None = None
    path: list[str] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SparsityReport:
    """Per-tensor rows, and the listed tensors (from `sparsity.json`) that lost their pattern.

    source (str): the checked model folder or ONNX file.
    rows (list[TensorCheck]): one per weight and consumer.
    expected (list[str]): tensors `sparsity.json` says carry 2:4 (empty without a sparsity.json).
    violations (list[str]): expected tensors that are not 2:4, or that were not found.
    problems (dict[str, str]): for each violation, what is wrong.
    sparsity_json (str | None): the sparsity.json used.
    """

    source: str
    rows: list[TensorCheck] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    sparsity_json: str | None = None

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def sparse_rows(self) -> list[TensorCheck]:
        return [r for r in self.rows if r.is_2to4]

    def expected_pass_rate(self) -> float | None:
        """Share of the tensors listed in sparsity.json that hold the pattern here (None if none listed)."""
        if not self.expected:
            return None
        return 1.0 - len(self.violations) / len(self.expected)

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "tensors": len(self.rows),
            "tensors_2to4": len(self.sparse_rows),
            "expected": len(self.expected),
            "violations": len(self.violations),
            "expected_pass_rate": self.expected_pass_rate(),
            "ok": self.ok,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "sparsity_json": self.sparsity_json,
            "rows": [r.to_dict() for r in self.rows],
            "expected_tensors": list(self.expected),
            "violation_tensors": list(self.violations),
            "problems": dict(self.problems),
        }

    def to_table(self) -> str:
        """A fixed-width table, one row per tensor, listed tensors marked with `*`."""
        expected = set(self.expected)
        header = ("", "tensor", "consumer", "op", "axis", "shape", "2:4", "groups ok", "zeros")
        lines: list[tuple[str, ...]] = [header]
        for r in self.rows:
            label = r.model_name or r.name
            mark = "*" if (r.model_name in expected or r.name in expected) else ""
            lines.append((
                mark, label, r.consumer, r.op, "-" if r.axis is None else str(r.axis),
                "x".join(str(d) for d in r.shape), "yes" if r.is_2to4 else ("n/a" if r.note else "no"),
                f"{100 * r.fraction_ok:.1f}%", f"{100 * r.zero_fraction:.1f}%",
            ))
        widths = [min(max(len(line[i]) for line in lines), 72) for i in range(len(header))]
        out = ["  ".join(cell[:72].ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines]
        s = self.summary()
        out.append(f"{s['tensors_2to4']}/{s['tensors']} weights are 2:4 sparse"
                   + (f"; {s['expected'] - s['violations']}/{s['expected']} tensors listed in sparsity.json hold "
                      "the pattern (*)" if self.expected else "; no sparsity.json"))
        for name in self.violations:
            out.append(f"VIOLATION {name}: {self.problems.get(name, 'lost the 2:4 pattern')}")
        return "\n".join(out)


def find_sparsity_json(path: str | Path) -> Path | None:
    """`path` itself when it is a file, `path/sparsity.json` for a folder; None when absent."""
    p = Path(path)
    if p.is_dir():
        p = p / SPARSITY_FILE
    return p if p.is_file() else None


def load_sparsity_json(path: str | Path) -> dict[str, Any]:
    """Read and check a `sparsity.json` (a file, or a folder holding one)."""
    found = find_sparsity_json(path)
    if found is None:
        raise TrtEdgeError(f"{path}: no {SPARSITY_FILE} here; run `trt-edge prune` first or give the pruned "
                           "model folder")
    try:
        data = json.loads(found.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise TrtEdgeError(f"{found}: unreadable ({exc}); rerun `trt-edge prune`") from exc
    if not isinstance(data, dict) or data.get("format") != SPARSITY_FORMAT or not isinstance(data.get("tensors"), dict):
        raise TrtEdgeError(f"{found}: not a trt-edge sparsity.json (expected format {SPARSITY_FORMAT!r} with a "
                           "'tensors' mapping)")
    return data


def expected_tensors(sparsity: dict[str, Any]) -> list[str]:
    """Names of the tensors a sparsity.json says carry the 2:4 pattern."""
    return [name for name, info in sparsity["tensors"].items()
            if isinstance(info, dict) and info.get("pattern", "2:4") == "2:4"]
