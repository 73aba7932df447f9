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

Continuous per-example scores (an embedding model's recall@10 of its parent's neighbours, per query) have
no 2x2 table: `judge_scores` gives their gate a **paired bootstrap interval over the examples** instead
(BCa: bias-corrected and accelerated percentile bootstrap, Efron 1987; seeded, so the same scores always
give the same interval). Its verdict has the same fields and rules, a `method` naming the bootstrap, no
`table`, and a `bootstrap` record from which `rejudge` judges it again under another budget without the
scores. Both kinds are told apart by `is_bootstrap(record)`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeGuard

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
    table: dict[str, int] | None  # the paired 2x2 table (Newcombe); None for a bootstrap verdict
    ref_accuracy: float  # the parent's mean per-example score: its accuracy, or e.g. its mean recall@10
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
    # A bootstrap verdict's own figures, unrounded so `rejudge` reproduces it exactly (`unit`, `resamples`,
    # `seed`, `drop`, `interval`): None for Newcombe.
    bootstrap: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The `stage.json` form: JSON-serialisable; a Newcombe record has `table` and no `bootstrap`, a
        bootstrap record the reverse (its dict keeps exactly the keys it had before bootstrap existed)."""
        out = asdict(self)
        out["interval_points"] = [round(v, 4) for v in self.interval_points]
        out["drop_points"] = round(self.drop_points, 4)
        if self.table is None:
            del out["table"]
        if self.bootstrap is None:
            del out["bootstrap"]
        return out

    def line(self) -> str:
        """One human sentence: drop, interval, budget, verdict (and the method, for a bootstrap)."""
        lo, hi = self.interval_points
        budget = "no budget" if self.budget_points is None else f"budget {self.budget_points:g}"
        loose = f" (loosened from {self.default_budget_points:g})" if self.loosened else ""
        unit = str(self.bootstrap.get("unit", "points")) if self.bootstrap else "points"
        how = f" ({self.method})" if self.bootstrap else ""
        return (f"{self.gate}: {self.compares} drop {self.drop_points:+.2f} {unit}, 95% CI [{lo:+.2f}, {hi:+.2f}]"
                f"{how}, n={self.n}, {budget}{loose}: {self.status}")


def judge(gate: str, compares: str, table: PairedTable, budget_points: float | None,
          default_budget_points: float | None = None) -> GateVerdict:
    """Judge `table` against a budget in accuracy points (None: record the figures, no verdict).

    The pass rule is the kit's long-standing one (observed drop <= budget); the interval says whether
    that verdict would survive another draw of the test split of the same size.
    """
    lo, hi = drop_interval(table)
    drop = table.drop_points
    loosened, passed, conclusive, status, need = _verdict(drop, lo, hi, table.n, budget_points,
                                                          default_budget_points,
                                                          lambda: examples_to_resolve(table, budget_points or 0.0))
    return GateVerdict(gate, compares, table.n, table.to_dict(), table.ref_accuracy, table.new_accuracy, drop,
                       (lo, hi), budget_points, default_budget_points, loosened, passed, conclusive, status, need)


def _verdict(drop: float, lo: float, hi: float, n: int, budget_points: float | None,
             default_budget_points: float | None,
             resolve_size: Callable[[], int | None]) -> tuple[bool, bool, bool, str, int | None]:
    """The one verdict rule of every gate, whatever its interval: (loosened, passed, conclusive, status,
    examples to resolve). Pass when the observed drop is within the budget; conclusive when the whole
    interval lies on one side of it; `resolve_size` is only asked for an inconclusive one."""
    loosened = (budget_points is not None and default_budget_points is not None
                and budget_points > default_budget_points + 1e-12)
    if budget_points is None:
        return loosened, True, True, "recorded (no budget)", None
    passed = drop <= budget_points + 1e-9
    conclusive = hi <= budget_points or lo > budget_points
    need = None if conclusive else resolve_size()
    status = "pass" if passed else "fail"
    if not conclusive:
        resolve = (f"about {need:,} test examples would resolve it" if need is not None
                   else "no test size resolves it (the drop equals the budget)")
        status += f", inconclusive at this n ({n:,}; {resolve})"
    if loosened:
        status += f", budget loosened from {default_budget_points:g}"
    return loosened, passed, conclusive, status, need


def judge_predictions(gate: str, compares: str, ref_pred: Any, new_pred: Any, labels: Any,
                      budget_points: float | None, default_budget_points: float | None = None) -> GateVerdict:
    """`judge` from per-example predictions (classes or logits) of both models and the labels."""
    return judge(gate, compares, PairedTable.from_predictions(ref_pred, new_pred, labels), budget_points,
                 default_budget_points)


def rejudge(record: dict[str, Any], budget_points: float | None, default_budget_points: float | None,
            gate: str | None = None) -> GateVerdict:
    """Judge a stored verdict again under another budget (the pipeline's gates), from its record alone:
    a Newcombe verdict from its table, a bootstrap one from its stored drop, interval and n."""
    name, compares = gate or str(record["gate"]), str(record["compares"])
    if is_bootstrap(record):
        boot = dict(record["bootstrap"])
        lo, hi = (float(v) for v in boot.get("interval", record["interval_points"]))
        drop = float(boot.get("drop", record["drop_points"]))  # unrounded, as judged
        return _judge_interval(name, compares, int(record["n"]), float(record["ref_accuracy"]),
                               float(record["new_accuracy"]), drop, (lo, hi),
                               budget_points, default_budget_points, str(record["method"]), boot)
    return judge(name, compares, PairedTable.from_dict(record["table"]), budget_points, default_budget_points)


def is_gate_record(record: Any) -> TypeGuard[dict[str, Any]]:
    """Whether a `stage.json` entry is a stored gate verdict `rejudge` can judge again (either kind)."""
    return isinstance(record, dict) and (isinstance(record.get("table"), dict) or is_bootstrap(record))


def is_bootstrap(record: Any) -> bool:
    """Whether a stored verdict (dict) or a `GateVerdict` came from `judge_scores` (a bootstrap interval)."""
    if isinstance(record, GateVerdict):
        return record.bootstrap is not None
    return isinstance(record, dict) and isinstance(record.get("bootstrap"), dict) and record.get("table") is None


# ---- continuous per-example scores: the paired bootstrap ----------------------------------------------

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_METHOD = "paired BCa bootstrap over examples ({resamples} resamples, seed {seed}), 95%"
# Resampled means held at once: resamples x examples int32 indices (about 16 MB per chunk).
_BOOTSTRAP_CELLS = 4_000_000


def bootstrap_method(resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> str:
    """The `method` string of a bootstrap verdict (the report prints it beside the interval)."""
    return BOOTSTRAP_METHOD.format(resamples=resamples, seed=seed)


def bootstrap_interval(diff: np.ndarray, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                       z: float = Z95) -> tuple[float, float]:
    """95% BCa bootstrap interval of mean(diff), resampling the examples (rows of the paired difference).

    Why BCa and not the plain percentile interval: per-query recall differences are bounded and skewed
    (most queries lose nothing, a few lose much), where the percentile interval is biased; the BCa
    correction costs one closed-form jackknife of the mean. It falls back to the percentile interval
    when the correction is undefined (every resample equal to the observed mean, e.g. no difference at
    all: then the interval is [mean, mean], which is the bootstrap's known blind spot, see the module
    docstring). The interval is widened, if need be, to contain the observed mean, so a conclusive
    verdict never contradicts the pass rule. Deterministic: a numpy Generator seeded with `seed`, drawn
    in chunks whose size depends only on the number of examples.
    """
    d = np.asarray(diff, dtype=np.float64).reshape(-1)
    n = d.shape[0]
    if n == 0:
        raise ValueError("no examples: a bootstrap interval needs at least one")
    if resamples < 100:
        raise ValueError(f"{resamples} bootstrap resamples: use at least 100")
    observed = float(d.mean())
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CELLS // n)
    means = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n), dtype=np.int32)
        means[start:stop] = d[idx].mean(axis=1)
    alpha = statistics.NormalDist().cdf(-z)  # 0.025
    lo_q, hi_q = alpha, 1.0 - alpha
    below = (np.count_nonzero(means < observed) + 0.5 * np.count_nonzero(means == observed)) / resamples
    if n > 1 and 0.0 < below < 1.0:
        normal = statistics.NormalDist()
        z0 = normal.inv_cdf(below)
        jack = (d.sum() - d) / (n - 1)  # leave-one-out means
        dev = jack.mean() - jack
        spread = float(np.sum(dev**2))
        accel = float(np.sum(dev**3)) / (6.0 * spread**1.5) if spread > 0 else 0.0
        adjusted = []
        for zq in (-z, z):
            denom = 1.0 - accel * (z0 + zq)
            adjusted.append(normal.cdf(z0 + (z0 + zq) / denom) if denom > 0 else (0.0 if zq < 0 else 1.0))
        lo_q, hi_q = adjusted
    lo, hi = (float(v) for v in np.quantile(means, [lo_q, hi_q]))
    return min(lo, observed), max(hi, observed)


def _scaled_resolve(drop: float, interval: tuple[float, float], n: int, budget_points: float) -> int | None:
    """The n' at which the interval, its half-widths scaled by sqrt(n/n'), clears the budget.

    A bootstrap interval of a mean narrows as 1/sqrt(n) when the per-example spread stays the same, so
    the side facing the budget (the upper half-width when the drop is under the budget, the lower one
    when it is over) is scaled; None when the drop equals the budget or the size passes MAX_RESOLVE_N.
    """
    lo, hi = interval
    if math.isclose(drop, budget_points, abs_tol=1e-12) or n <= 0:
        return None
    half, gap = (hi - drop, budget_points - drop) if drop < budget_points else (drop - lo, drop - budget_points)
    if half <= 0:
        return n
    need = math.ceil(n * (half / gap) ** 2 * (1 + 1e-9))
    return None if need > MAX_RESOLVE_N else max(n, need)


def _judge_interval(gate: str, compares: str, n: int, ref_mean: float, new_mean: float, drop: float,
                    interval: tuple[float, float], budget_points: float | None, default_budget_points: float | None,
                    method: str, boot: dict[str, Any]) -> GateVerdict:
    lo, hi = interval
    loosened, passed, conclusive, status, need = _verdict(
        drop, lo, hi, n, budget_points, default_budget_points,
        lambda: _scaled_resolve(drop, interval, n, budget_points or 0.0))
    return GateVerdict(gate, compares, n, None, ref_mean, new_mean, drop, (lo, hi), budget_points,
                       default_budget_points, loosened, passed, conclusive, status, need, method, boot)


def judge_scores(gate: str, compares: str, ref_scores: Sequence[float] | np.ndarray,
                 new_scores: Sequence[float] | np.ndarray, budget_points: float | None,
                 default_budget_points: float | None = None, *, seed: int = 0, unit: str = "points",
                 resamples: int = BOOTSTRAP_RESAMPLES) -> GateVerdict:
    """Judge paired per-example scores against a budget, with a paired bootstrap 95% interval.

    `ref_scores[i]` and `new_scores[i]` are the parent's and the child's score on example i, on a 0..1
    scale (recall@10 of the parent's neighbours per query: the parent scores 1.0 against itself). The
    drop is 100 * (mean(ref) - mean(new)) points; the rule is `judge`'s, the interval `bootstrap_interval`
    of the per-example differences. `unit` names the points in `line()` ("recall@10 points"). Same
    inputs and seed, same verdict.
    """
    ref = np.asarray(ref_scores, dtype=np.float64).reshape(-1)
    new = np.asarray(new_scores, dtype=np.float64).reshape(-1)
    if ref.shape != new.shape:
        raise ValueError(f"{new.shape[0]} scores for {ref.shape[0]} reference scores: the two models were not "
                         "scored on the same examples")
    if ref.size == 0:
        raise ValueError("no examples: a bootstrap interval needs at least one")
    if not (np.isfinite(ref).all() and np.isfinite(new).all()):
        raise ValueError("non-finite per-example scores")
    diff = 100.0 * (ref - new)
    lo, hi = bootstrap_interval(diff, resamples=resamples, seed=seed)
    drop = float(diff.mean())
    boot = {"unit": unit, "resamples": int(resamples), "seed": int(seed), "drop": drop, "interval": [lo, hi]}
    return _judge_interval(gate, compares, int(ref.size), float(ref.mean()), float(new.mean()), drop, (lo, hi),
                           budget_points, default_budget_points, bootstrap_method(resamples, seed), boot)


PREDICTIONS_FILE = "test_predictions.npz"


def label_array(labels: Any) -> np.ndarray:
    """A split's labels as one array: int64 classes or masks, or, for labels that are not one class or mask
    per example (a detector's object rows, of varying count), the array they say they are saved as
    (`to_array`: padded float rows; the task's adapter scores either form)."""
    to_array = getattr(labels, "to_array", None)
    if callable(to_array):
        return np.asarray(to_array())
    return np.asarray(labels, dtype=np.int64)


def save_predictions(folder: Any, labels: Any, **logits: Any) -> str:
    """Write per-example test logits of each named model and the labels (`test_predictions.npz`).

    Kept so a later stage or the report can pair any two models on the same examples (confusion
    matrices, the overall gate). A plain numeric npz: `np.load(..., allow_pickle=False)` reads it.
    Written inside a stage's temporary folder, so it appears atomically with the stage.
    """
    from pathlib import Path

    arrays = {"labels": label_array(labels)}
    for name, value in logits.items():
        arr = np.asarray(value)
        # outputs (class logits, vectors, per-pixel logits [N, K, h, w]) as floats; 1-D predicted classes as ints
        arrays[name] = arr.astype(np.float32) if arr.ndim >= 2 else arr.astype(np.int64)
    path = Path(folder) / PREDICTIONS_FILE
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]
    return PREDICTIONS_FILE


def load_predictions(path: Any) -> dict[str, np.ndarray]:
    """Read a `test_predictions.npz` (no pickle)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: np.asarray(data[k]) for k in data.files}
