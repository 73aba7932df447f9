"""Paired accuracy statistics for the kit's gates: a model against its parent, on the same examples.

Every accuracy gate compares two models on one test split, so the examples are paired: what varies is
only which examples each model gets right. The figure is the paired 2x2 table (both right, only the
parent right, only the child right, both wrong) and the drop `parent - child` in accuracy points with a
95% interval from **Newcombe's square-and-add (hybrid score) interval for paired proportions**
(Newcombe 1998, method 10; Fagerland, Lydersen & Laake, *Statistical Analysis of Contingency Tables*,
ch. 8, where it is among the recommended intervals). Why this one and not a paired bootstrap:

* it is closed-form and deterministic: the same table always gives the same interval, with no seed and
  no resampling cost, so `stage.json` figures reproduce exactly and a resumed run re-judges a gate from
  the stored table alone;
* it stays sensible when the two models disagree on very few examples (an INT8 model against its fp32
  parent often differs on 3 of 1,500): a bootstrap then collapses to a zero-width interval, the score
  interval does not;
* an exact McNemar test gives a p-value for "no difference", not an interval for the size of the drop,
  which is what a budget is compared with.

A gate's verdict keeps today's rule (pass when the observed drop is within the budget) and adds how sure
it is: conclusive when the whole interval lies on one side of the budget, else "inconclusive at this n",
with the test size at which the same discordance rates would give an interval clear of the budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

METHOD = "Newcombe square-and-add score interval for paired proportions (method 10), 95%"
Z95 = 1.959963984540054
MAX_RESOLVE_N = 10_000_000


@dataclass(frozen=True)
class PairedTable:
    """Counts of the paired 2x2 table of a parent (`ref`) and a child (`new`) model on one split."""

    both: int
    ref_only: int
    new_only: int
    neither: int

    @classmethod
    def from_predictions(cls, ref_pred: Sequence[int] | np.ndarray, new_pred: Sequence[int] | np.ndarray,
                         labels: Sequence[int] | np.ndarray) -> PairedTable:
        """The table from per-example predicted classes (or logits, whose argmax is taken)."""
        y = np.asarray(labels).reshape(-1)
        ref = _classes(ref_pred, len(y))
        new = _classes(new_pred, len(y))
        r, c = ref == y, new == y
        return cls(int(np.sum(r & c)), int(np.sum(r & ~c)), int(np.sum(~r & c)), int(np.sum(~r & ~c)))

    @property
    def n(self) -> int:
        return self.both + self.ref_only + self.new_only + self.neither

    @property
    def ref_accuracy(self) -> float:
        return (self.both + self.ref_only) / self.n if self.n else math.nan

    @property
    def new_accuracy(self) -> float:
        return (self.both + self.new_only) / self.n if self.n else math.nan

    @property
    def drop_points(self) -> float:
        """Parent accuracy minus child accuracy, in points (positive: the child lost accuracy)."""
        return 100.0 * (self.ref_only - self.new_only) / self.n if self.n else math.nan

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairedTable:
        return cls(*(int(data[k]) for k in ("both", "ref_only", "new_only", "neither")))


def _classes(pred: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    arr = np.asarray(pred)
    if arr.ndim == 2:
        arr = arr.argmax(axis=1)
    arr = arr.reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{arr.shape[0]} predictions for {n} labels: the two models were not run on the same "
                         "examples")
    return arr


def wilson(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (works on non-integer counts, for the resolve search)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _scaled(table: PairedTable, factor: float) -> tuple[float, float, float, float]:
    return (table.both * factor, table.ref_only * factor, table.new_only * factor, table.neither * factor)


def _interval(a: float, b: float, c: float, d: float, z: float = Z95) -> tuple[float, float]:
    """Newcombe's paired interval of p1 - p2 (p1 = (a+b)/n, p2 = (a+c)/n), as fractions."""
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, z)
    l2, u2 = wilson(a + c, n, z)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    phi = 0.0
    if margins > 0:
        cross = a * d - b * c
        # Newcombe's continuity-corrected correlation: 0 for small positive association.
        if cross > n / 2:
            phi = (cross - n / 2) / math.sqrt(margins)
        elif cross < 0:
            phi = cross / math.sqrt(margins)
    diff = p1 - p2
    lower = diff - math.sqrt(max(0.0, (p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)))
    upper = diff + math.sqrt(max(0.0, (p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1)))
    return max(-1.0, lower), min(1.0, upper)


def drop_interval(table: PairedTable, z: float = Z95) -> tuple[float, float]:
    """95% interval of the accuracy drop (parent - child) in points."""
    if table.n == 0:
        raise ValueError("no examples: a paired interval needs at least one")
    lo, hi = _interval(*_scaled(table, 1.0), z=z)
    return 100.0 * lo, 100.0 * hi


def examples_to_resolve(table: PairedTable, budget_points: float) -> int | None:
    """The test size at which the same discordance rates give an interval clear of the budget.

    None when no size does (the observed drop equals the budget). The search scales the table; it says
    how many examples a conclusive answer needs, assuming the models keep behaving as on this split.
    """
    if table.n == 0 or math.isclose(table.drop_points, budget_points, abs_tol=1e-12):
        return None

    def clear(factor: float) -> bool:
        lo, hi = _interval(*_scaled(table, factor))
        return 100 * hi <= budget_points or 100 * lo > budget_points

    if clear(1.0):
        return table.n
    lo_f, hi_f = 1.0, 2.0
    while not clear(hi_f):
        lo_f, hi_f = hi_f, hi_f * 2
        if hi_f * table.n > MAX_RESOLVE_N:
            return None
    for _ in range(40):
        mid = (lo_f + hi_f) / 2
        lo_f, hi_f = (lo_f, mid) if clear(mid) else (mid, hi_f)
    return math.ceil(hi_f * table.n)


@dataclass
class GateVerdict:
    """One gate's figures and verdict, as recorded in `stage.json` (`metrics.gate` or `metrics.gates`)."""

    gate: str
    compares: str
    n: int
    table: dict[str, int]
    ref_accuracy: float
    new_accuracy: float
    drop_points: float
    interval_points: tuple[float, float]
    budget_points: float | None
    default_budget_points: float | None
    loosened: bool
    passed: bool
    conclusive: bool
    status: str
    examples_to_resolve: int | None
    method: str = METHOD

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval_points"] = [round(v, 4) for v in self.interval_points]
        out["drop_points"] = round(self.drop_points, 4)
        return out

    def line(self) -> str:
        """One human sentence: drop, interval, budget, verdict."""
        lo, hi = self.interval_points
        budget = "no budget" if self.budget_points is None else f"budget {self.budget_points:g}"
        loose = f" (loosened from {self.default_budget_points:g})" if self.loosened else ""
        return (f"{self.gate}: {self.compares} drop {self.drop_points:+.2f} points, 95% CI [{lo:+.2f}, {hi:+.2f}], "
                f"n={self.n}, {budget}{loose}: {self.status}")


def judge(gate: str, compares: str, table: PairedTable, budget_points: float | None,
          default_budget_points: float | None = None) -> GateVerdict:
    """Judge `table` against a budget in accuracy points (None: record the figures, no verdict).

    The pass rule is the kit's long-standing one (observed drop <= budget); the interval says whether
    that verdict would survive another draw of the test split of the same size.
    """
    lo, hi = drop_interval(table)
    drop = table.drop_points
    loosened = (budget_points is not None and default_budget_points is not None
                and budget_points > default_budget_points + 1e-12)
    if budget_points is None:
        passed, conclusive, status, need = True, True, "recorded (no budget)", None
    else:
        passed = drop <= budget_points + 1e-9
        conclusive = hi <= budget_points or lo > budget_points
        need = None if conclusive else examples_to_resolve(table, budget_points)
        status = "pass" if passed else "fail"
        if not conclusive:
            resolve = (f"about {need:,} test examples would resolve it" if need is not None
                       else "no test size resolves it (the drop equals the budget)")
            status += f", inconclusive at this n ({table.n:,}; {resolve})"
        if loosened:
            status += f", budget loosened from {default_budget_points:g}"
    return GateVerdict(gate, compares, table.n, table.to_dict(), table.ref_accuracy, table.new_accuracy, drop,
                       (lo, hi), budget_points, default_budget_points, loosened, passed, conclusive, status, need)


def judge_predictions(gate: str, compares: str, ref_pred: Any, new_pred: Any, labels: Any,
                      budget_points: float | None, default_budget_points: float | None = None) -> GateVerdict:
    """`judge` from per-example predictions (classes or logits) of both models and the labels."""
    return judge(gate, compares, PairedTable.from_predictions(ref_pred, new_pred, labels), budget_points,
                 default_budget_points)


def rejudge(record: dict[str, Any], budget_points: float | None, default_budget_points: float | None,
            gate: str | None = None) -> GateVerdict:
    """Judge a stored verdict again under another budget (the pipeline's gates), from its table."""
    return judge(gate or str(record["gate"]), str(record["compares"]), PairedTable.from_dict(record["table"]),
                 budget_points, default_budget_points)


PREDICTIONS_FILE = "test_predictions.npz"


def save_predictions(folder: Any, labels: Any, **logits: Any) -> str:
    """Write per-example test logits of each named model and the labels (`test_predictions.npz`).

    Kept so a later stage or the report can pair any two models on the same examples (confusion
    matrices, the overall gate). A plain numeric npz: `np.load(..., allow_pickle=False)` reads it.
    Written inside a stage's temporary folder, so it appears atomically with the stage.
    """
    from pathlib import Path

    arrays = {"labels": np.asarray(labels, dtype=np.int64)}
    for name, value in logits.items():
        arr = np.asarray(value)
        arrays[name] = arr.astype(np.float32) if arr.ndim == 2 else arr.astype(np.int64)
    path = Path(folder) / PREDICTIONS_FILE
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]
    return PREDICTIONS_FILE


def load_predictions(path: Any) -> dict[str, np.ndarray]:
    """Read a `test_predictions.npz` (no pickle)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: np.asarray(data[k]) for k in data.files}
