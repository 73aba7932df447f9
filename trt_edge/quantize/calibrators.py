"""Activation ranges: collect what every tensor takes on the calibration set, pick an amax per method.

Two passes over the calibration set, as TensorRT's own calibrators do: the first finds each tensor's
min/max (and whether it ever is non-finite), the second fills a fixed |x| histogram on [0, max|x|]. The
amax is then chosen by one of:

- `max`: max |x| (every outlier kept, coarse steps);
- `entropy`: TensorRT's EntropyCalibration2 — the threshold whose 128-level quantization of the |x|
  histogram diverges least (KL) from the clipped reference, searched over thresholds from bin 128 to the
  last of 2048 bins (the algorithm of NVIDIA's pytorch-quantization `_compute_amax_entropy`);
- `percentile`: the |x| percentile (e.g. 99.99), as ONNX Runtime's `PercentileCalibrater` computes it;
- `mse`: the threshold minimizing the expected squared quantization error over the histogram.

ONNX Runtime's calibrators are the references the tests compare against; we do not call them in the
product path because their entropy search runs on a signed histogram whose bin count cannot be set
through `quantize_static` (with its default 128 bins entropy equals max), and their histograms grow
with the data (memory and time without bound on outliers). A tensor that is ever ±inf or NaN (the
attention mask's `Where(mask, 0, -inf)`) or constantly zero has no usable scale: callers must not
quantize it, and `scale_from_amax` refuses it with a clear error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.log import get_logger

log = get_logger("calibrate")

QMAX = 127.0
# Magnitudes beyond this are mask fill values (torch.finfo(float32).min stands in for -inf in many
# exports), not activations: a range reaching them is treated like a non-finite one.
SENTINEL = 1e30


@dataclass
class TensorRange:
    """What one tensor took on the calibration set, and the amax chosen for it."""

    name: str
    min: float
    max: float
    amax: float
    method: str
    finite: bool = True

    @property
    def scale(self) -> float:
        return scale_from_amax(self.amax, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {"min": self.min, "max": self.max, "amax": self.amax, "method": self.method,
                "finite": self.finite, "scale": self.amax / QMAX if self.usable else None}

    @property
    def usable(self) -> bool:
        return self.finite and math.isfinite(self.amax) and self.amax > 0


def scale_from_amax(amax: float, name: str = "tensor") -> float:
    """Symmetric INT8 scale amax / 127; refuses zero, negative and non-finite ranges."""
    value = float(amax)
    if not math.isfinite(value):
        raise TrtEdgeError(f"{name}: its calibrated range is not finite (amax={value}); it is on the "
                           "attention-mask path or overflows: exclude it from quantization")
    if value <= 0:
        raise TrtEdgeError(f"{name}: its calibrated range is zero (a constant activation on the calibration "
                           "set); exclude it or use calibration data that exercises it")
    return value / QMAX


# ---- amax from a |x| histogram ------------------------------------------------------------------------
def amax_max(lo: float, hi: float) -> float:
    return float(max(abs(lo), abs(hi)))


def amax_percentile(hist: np.ndarray, edges: np.ndarray, percentile: float) -> float:
    """The left edge of the bin where the |x| CDF reaches `percentile` (ONNX Runtime's and
    pytorch-quantization's rule)."""
    total = hist.sum()
    if total == 0:
        return 0.0
    cdf = np.cumsum(hist / total)
    idx = int(np.searchsorted(cdf, percentile / 100.0))
    return float(edges[min(idx, len(edges) - 1)])


def amax_entropy(hist: np.ndarray, edges: np.ndarray, num_bits: int = 8, stride: int = 1,
                 start_bin: int = 128) -> float:
    """TensorRT EntropyCalibration2: minimise KL(reference || quantized) over candidate thresholds.

    For each candidate i (in bins), the reference is hist[:i] with every count beyond folded into the
    last bin; the candidate quantizes hist[:i] into 2^(bits-1) levels, spreading each level's count
    evenly over its non-empty bins. The zero bin is replaced by its neighbour (as TensorRT does, so the
    spike of exact zeros does not dominate). The last minimal threshold wins.
    """
    bins = np.asarray(hist, dtype=np.float64).copy()
    if bins.sum() == 0:
        return 0.0
    if len(bins) > 1:
        bins[0] = bins[1]
    nlevels = 1 << (num_bits - 1)
    stop = len(bins)
    if stop < start_bin:
        raise ValueError(f"entropy calibration needs at least {start_bin} bins, got {stop}")
    candidates = np.arange(start_bin, stop + 1, stride)
    divergences = _kl_closed_form(bins, candidates, nlevels)
    best = len(divergences) - 1 - int(np.argmin(divergences[::-1]))
    return float(edges[int(candidates[best])])


def _kl_closed_form(bins: np.ndarray, cands: np.ndarray, nlevels: int) -> np.ndarray:
    """KL(reference || quantized) for every candidate threshold i, from prefix sums in O(levels) each.

    With r the reference counts (bins below i, the outliers S_i added to bin i-1), c_k and m_k the
    count and number of non-empty bins of level k, q_j = c_k / m_k on non-empty bins, Tp = total and
    Tq = total - S_i:  KL = (Σ r log r - Σ_k c_k log(c_k/m_k) - S_i log q_{i-1}) / Tp - log Tp + log Tq.
    Equal to the bin-by-bin definition (tests compare it with a direct port of TensorRT's algorithm).
    """
    total = bins.sum()
    prefix = np.concatenate([[0.0], np.cumsum(bins)])
    with np.errstate(divide="ignore", invalid="ignore"):
        blogb = np.where(bins > 0, bins * np.log(np.where(bins > 0, bins, 1.0)), 0.0)
    prefix_blogb = np.concatenate([[0.0], np.cumsum(blogb)])
    prefix_nz = np.concatenate([[0], np.cumsum(bins > 0)])
    i = cands[:, None].astype(np.int64)
    k = np.arange(nlevels + 1)[None, :]
    starts = (k * i + nlevels - 1) // nlevels  # first bin of level k: ceil(k * i / nlevels)
    c = prefix[starts[:, 1:]] - prefix[starts[:, :-1]]
    m = prefix_nz[starts[:, 1:]] - prefix_nz[starts[:, :-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        clog = np.where(c > 0, c * np.log(np.where(c > 0, c, 1.0) / np.maximum(m, 1)), 0.0).sum(axis=1)
    ic = cands.astype(np.int64)
    outliers = total - prefix[ic]
    last = bins[ic - 1]
    r_last = last + outliers
    with np.errstate(divide="ignore", invalid="ignore"):
        rlogr = prefix_blogb[ic - 1] + np.where(r_last > 0, r_last * np.log(np.where(r_last > 0, r_last, 1.0)), 0.0)
        last_level = ((ic - 1) * nlevels) // ic
        rows = np.arange(len(cands))
        q_last = c[rows, last_level] / np.maximum(m[rows, last_level], 1)
        tail = np.where(outliers > 0, outliers * np.log(np.where(q_last > 0, q_last, 1.0)), 0.0)
        tq = total - outliers
        kl = (rlogr - clog - tail) / total - np.log(total) + np.log(np.where(tq > 0, tq, 1.0))
    kl[(last == 0) & (outliers > 0)] = np.inf
    kl[tq <= 0] = np.inf
    return np.asarray(kl, dtype=np.float64)


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """scipy.stats.entropy(p, q): both normalised; inf where q is 0 and p is not."""
    ps, qs = p.sum(), q.sum()
    if ps == 0 or qs == 0:
        return math.inf
    p = p / ps
    q = q / qs
    mask = p > 0
    if np.any(q[mask] == 0):
        return math.inf
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def amax_mse(hist: np.ndarray, edges: np.ndarray, start_bin: int = 64, stride: int = 4) -> float:
    """The threshold (a bin edge) with the least expected squared error of symmetric INT8 fake
    quantization, measured on the histogram's bin centres weighted by their counts."""
    counts = np.asarray(hist, dtype=np.float64)
    if counts.sum() == 0:
        return 0.0
    centres = (edges[:-1] + edges[1:]) / 2.0
    keep = counts > 0
    c, w = centres[keep].astype(np.float64), counts[keep]
    cand = np.asarray(edges[min(start_bin, len(edges) - 1)::stride], dtype=np.float64)
    cand = np.unique(np.append(cand[cand > 0], float(edges[-1])))
    best, best_err = float(edges[-1]), math.inf
    for chunk in np.array_split(cand, max(1, len(cand) // 128)):
        scale = chunk[:, None] / QMAX
        deq = np.clip(np.round(c[None, :] / scale), -QMAX, QMAX) * scale
        err = ((deq - c[None, :]) ** 2 * w[None, :]).sum(axis=1)
        k = int(np.argmin(err))
        if err[k] < best_err:
            best, best_err = float(chunk[k]), float(err[k])
    return best


# ---- collection -------------------------------------------------------------------------------------
class RangeAccumulator:
    """Running min/max of one tensor, and whether it was ever non-finite."""

    def __init__(self) -> None:
        self.lo = math.inf
        self.hi = -math.inf
        self.finite = True

    def add(self, array: np.ndarray) -> None:
        if array.size == 0:
            return
        flat = array.astype(np.float32, copy=False).ravel()
        lo, hi = float(flat.min()), float(flat.max())
        if not (math.isfinite(lo) and math.isfinite(hi)) or max(-lo, hi) >= SENTINEL:
            self.finite = False
            finite = flat[np.isfinite(flat) & (np.abs(flat) < SENTINEL)]
            if finite.size == 0:
                return
            lo, hi = float(finite.min()), float(finite.max())
        self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)

    @property
    def amax(self) -> float:
        return amax_max(self.lo, self.hi) if self.hi >= self.lo else 0.0


class AbsHistogram:
    """A fixed |x| histogram on [0, amax] (amax from the first pass), as TensorRT builds it."""

    def __init__(self, amax: float, num_bins: int, finite: bool = True) -> None:
        self.amax = float(amax)
        self.finite = finite
        self.num_bins = num_bins
        self.hist = np.zeros(num_bins, dtype=np.int64)
        self.edges = np.linspace(0.0, self.amax, num_bins + 1)

    def add(self, array: np.ndarray) -> None:
        if self.amax <= 0 or array.size == 0:
            return
        a = np.abs(array.astype(np.float32, copy=False).ravel())
        if not self.finite:  # only tensors seen non-finite in the first pass pay for the filter
            a = a[np.isfinite(a) & (a < SENTINEL)]
        np.multiply(a, np.float32(self.num_bins / self.amax), out=a)
        np.minimum(a, np.float32(self.num_bins - 1), out=a)
        self.hist += np.bincount(a.astype(np.intp), minlength=self.num_bins)[: self.num_bins]


def choose_amax(method: str, acc: RangeAccumulator, hist: AbsHistogram | None, *, percentile: float = 99.99,
                stride: int = 1) -> float:
    if method == "max" or hist is None:
        return acc.amax
    if method == "entropy":
        return amax_entropy(hist.hist, hist.edges, stride=stride)
    if method == "percentile":
        return min(amax_percentile(hist.hist, hist.edges, percentile), acc.amax)
    if method == "mse":
        return amax_mse(hist.hist, hist.edges)
    raise ValueError(f"unknown calibration method {method!r}")


def calibrate(run: Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]],
              batches: Callable[[], Iterable[dict[str, np.ndarray]]], names: Sequence[str], method: str,
              num_bins: int = 2048, percentile: float = 99.99, stride: int = 1) -> dict[str, TensorRange]:
    """Ranges of `names` over the calibration batches.

    `run(feed)` returns at least the named tensors for one batch; `batches()` yields the feeds again
    for each pass.
    """
    accs = {n: RangeAccumulator() for n in names}
    for feed in batches():
        outs = run(feed)
        for n in names:
            accs[n].add(np.asarray(outs[n]))
    hists: dict[str, AbsHistogram] = {}
    if method != "max":
        hists = {n: AbsHistogram(a.amax, num_bins, a.finite) for n, a in accs.items() if a.amax > 0}
        for feed in batches():
            outs = run(feed)
            for n, h in hists.items():
                h.add(np.asarray(outs[n]))
    ranges: dict[str, TensorRange] = {}
    for n, acc in accs.items():
        amax = choose_amax(method, acc, hists.get(n), percentile=percentile, stride=stride)
        ranges[n] = TensorRange(n, acc.lo, acc.hi, amax, method, acc.finite)
    return ranges

