"""Parity of an exported model with its PyTorch parent, on real examples, at several shapes.

Two kinds of check, every mismatch collected before judging (Optimum's habit):
  * the whole split at its own lengths (dynamic padding per batch): argmax agreement on real data;
  * a grid of batch sizes x padded sequence lengths: the dynamic axes hold beyond the traced example.

Figures: `max_abs_diff` (largest |onnx - torch| over all logits), `max_rel_diff` (the same divided by
the largest |logit| of that example's row: relative to the row's scale, so logits near zero do not
blow it up), `argmax_agreement` (share of examples whose predicted class agrees, over the split),
`min_cosine` (the least cosine between a PyTorch and an ONNX output row: what a pooled vector is judged
on, where argmax agreement means nothing; the task spec says which applies, `TaskSpec.min_cosine`).
The comparison takes any `trt_edge.runtime.base.Runner`, so a Q/DQ model or an engine can be checked
against PyTorch with the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from trt_edge.errors import GateError, TrtEdgeError

if TYPE_CHECKING:
    from trt_edge.tasks.spec import TaskSpec


@dataclass
class ParityCase:
    """One batch to compare: its feeds (int64 numpy) and which examples of the split it holds."""

    label: str
    feeds: dict[str, np.ndarray]
    example_ids: list[int]
    grid: bool


@dataclass
class ParityReport:
    """All figures of one comparison; `shapes` holds one entry per (batch, sequence) checked."""

    max_abs_diff: float = 0.0
    max_rel_diff: float = 0.0
    argmax_agreement: float = 1.0
    min_cosine: float = 1.0
    examples: int = 0
    disagreements: int = 0
    shapes: list[dict[str, Any]] = field(default_factory=list)
    worst: dict[str, Any] = field(default_factory=dict)
    # Per-example predicted classes over the split (index = example id), for the paired statistics;
    # kept out of `to_dict` (parity.json stays small).
    torch_pred: list[int] = field(default_factory=list, repr=False)
    onnx_pred: list[int] = field(default_factory=list, repr=False)
    # Dense outputs (per-pixel logits [K, h, w] per example): one class per example means nothing there, so
    # the per-example outputs themselves are kept (index = example id) for the task's own paired gate;
    # `argmax_agreement` is then the share of agreeing pixels and `disagreements` the examples with any.
    torch_out: list[np.ndarray] = field(default_factory=list, repr=False)
    onnx_out: list[np.ndarray] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("torch_pred", "onnx_pred", "torch_out", "onnx_out"):
            out.pop(name)
        return out

    def failures(self, atol: float, rtol: float | None, min_argmax_agreement: float,
                 min_cosine: float | None = None) -> list[str]:
        """Every tolerance that does not hold, in words with the figures (empty when all hold).
        `min_cosine` None: the cosine is not judged (class scores)."""
        problems = []
        where = _where(self.worst)
        if not np.isfinite(self.max_abs_diff):
            problems.append(f"non-finite logits {where}")
        elif self.max_abs_diff > atol:
            problems.append(f"max |logit diff| {self.max_abs_diff:.3g} > atol {atol:g} {where}")
        if rtol is not None and self.max_rel_diff > rtol:
            problems.append(f"max relative logit diff {self.max_rel_diff:.3g} > rtol {rtol:g}")
        if self.argmax_agreement < min_argmax_agreement:
            problems.append(f"argmax agreement {self.argmax_agreement:.4f} < {min_argmax_agreement:g} "
                            f"({self.disagreements} of {self.examples} examples predict another class)")
        if min_cosine is not None and not self.min_cosine >= min_cosine:
            problems.append(f"least cosine between PyTorch and ONNX vectors {self.min_cosine:.6f} < {min_cosine:g}")
        return problems


def _where(worst: dict[str, Any]) -> str:
    if not worst:
        return ""
    text = f"(at {worst.get('case')}, example {worst.get('example')}, class {worst.get('class')}"
    if worst.get("text"):
        text += f", text {worst['text']!r}"
    return text + ")"


def _pad(features: Sequence[dict[str, list[int]]], names: Sequence[str], width: int,
         pad_token_id: int) -> dict[str, np.ndarray]:
    from trt_edge.tasks.text_classification import pad_value

    feeds = {}
    for name in names:
        pad = pad_value(name, pad_token_id)
        rows = [list(f[name])[:width] + [pad] * (width - min(len(f[name]), width)) for f in features]
        feeds[name] = np.asarray(rows, dtype=np.int64)
    return feeds


def parity_cases(tokenizer: Any, texts: Sequence[str], input_names: Sequence[str], *, max_length: int = 128,
                 batch_size: int = 64, batch_sizes: Sequence[int] = (1, 8),
                 sequence_lengths: Sequence[int] = (16, 128)) -> list[ParityCase]:
    """Batches for a parity run: the split by length (dynamic padding) and the fixed-shape grid.

    Grid batches repeat the split's first examples when it has fewer than the batch size; sequences
    longer than a text are padded (the attention mask covers the padding), shorter ones truncate it.
    """
    if not texts:
        raise TrtEdgeError("parity needs at least one example; the chosen split is empty")
    longest = max([max_length, *sequence_lengths])
    encoded = tokenizer(list(texts), truncation=True, max_length=longest, padding=False)
    missing = [n for n in input_names if n not in encoded]
    if missing:
        raise TrtEdgeError(f"the tokenizer produces no {missing}, which the ONNX model takes")
    features = [{n: list(encoded[n][i]) for n in input_names} for i in range(len(texts))]
    pad = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    split_features = [{n: f[n][:max_length] for n in input_names} for f in features]
    first = input_names[0]
    order = sorted(range(len(texts)), key=lambda i: len(split_features[i][first]))
    cases = []
    for start in range(0, len(order), batch_size):
        ids = order[start:start + batch_size]
        width = max(len(split_features[i][first]) for i in ids)
        cases.append(ParityCase(f"split batch {start // batch_size} ({len(ids)}x{width})",
                                _pad([split_features[i] for i in ids], input_names, width, pad), ids, False))
    for batch in batch_sizes:
        for seq in sequence_lengths:
            ids = [i % len(texts) for i in range(batch)]
            cases.append(ParityCase(f"batch {batch} x sequence {seq}",
                                    _pad([features[i] for i in ids], input_names, seq, pad), ids, True))
    return cases


def fixed_size_parity_cases(arrays: dict[str, np.ndarray], count: int, input_names: Sequence[str], *,
                            batch_size: int = 64, batch_sizes: Sequence[int] = (1, 8)) -> list[ParityCase]:
    """Batches of real fixed-size examples (images, audio clips: `arrays`, the task adapter's feeds of
    `count` examples), and a grid of batch sizes (the one dynamic axis of such a model)."""
    if not count:
        raise TrtEdgeError("parity needs at least one example; the chosen split is empty")
    cases = []
    for start in range(0, count, batch_size):
        ids = list(range(start, min(start + batch_size, count)))
        cases.append(ParityCase(f"split batch {start // batch_size} ({len(ids)} examples)",
                                {n: arrays[n][ids] for n in input_names}, ids, False))
    for batch in batch_sizes:
        ids = [i % count for i in range(batch)]
        cases.append(ParityCase(f"batch {batch}", {n: arrays[n][ids] for n in input_names}, ids, True))
    return cases


def torch_logits(model: Any, feeds: dict[str, np.ndarray], output_name: str = "logits",
                 spec: TaskSpec | None = None) -> np.ndarray:
    """The PyTorch model's fp32 output `output_name` (the logits, or a pooled model's `sentence_embedding`)
    for int64 (token) or float32 (pixel) feeds; with `spec`, the spec's output (`TaskSpec.model_output`:
    a detector's logits and boxes packed as its exported graph gives them)."""
    import torch

    with torch.inference_mode():
        out = model(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feeds.items()})
    value = spec.model_output(out) if spec is not None else getattr(out, output_name)
    return np.asarray(value.float().cpu().numpy())


def compare(model: Any, runner: Any, cases: Sequence[ParityCase], texts: Sequence[str] | None = None,
            output_name: str = "logits", spec: TaskSpec | None = None) -> ParityReport:
    """Run every case through PyTorch `model` and an active `runner`; collect all figures.

    Feeds are cast to the dtype each runner input declares (int32 exports take int32). With `spec`, its
    output is compared (`output_name` is ignored) and argmax agreement is over its class scores
    (`TaskSpec.class_scores`: a detector's classes per query, not its boxes).
    """
    if spec is not None:
        output_name = spec.output
    classes = spec.class_scores if spec is not None else (lambda x: x)
    report = ParityReport()
    dtypes = {meta.name: meta.dtype for meta in runner.inputs()}
    torch_pred: dict[int, int] = {}
    onnx_pred: dict[int, int] = {}
    dense: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}  # outputs, then class scores
    worst = -1.0
    for case in cases:
        expected = torch_logits(model, case.feeds, output_name, spec)
        feed = {k: v.astype(dtypes.get(k, v.dtype), copy=False) for k, v in case.feeds.items() if k in dtypes}
        got = np.asarray(runner.infer(feed)[output_name], dtype=np.float32)
        if got.shape != expected.shape:
            raise GateError(f"parity: {case.label}: ONNX logits have shape {list(got.shape)}, PyTorch "
                            f"{list(expected.shape)}", {"case": case.label})
        diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        if not np.all(np.isfinite(got)):
            diff = np.where(np.isfinite(got), diff, np.inf)
        scale = np.maximum(np.abs(expected).max(axis=1, keepdims=True), 1e-6)
        rel = diff / scale
        case_abs = float(diff.max()) if diff.size else 0.0
        report.min_cosine = min(report.min_cosine, _least_cosine(expected, got))
        shape = next(iter(case.feeds.values())).shape
        batch, seq = shape[0], (shape[1] if len(shape) == 2 else 0)  # images have no sequence axis
        got_classes, expected_classes = classes(got), classes(expected)
        agree = float(np.mean(got_classes.argmax(axis=1) == expected_classes.argmax(axis=1))) if len(got) else 1.0
        report.shapes.append({"case": case.label, "batch": int(batch), "sequence": int(seq),
                              "max_abs_diff": case_abs, "argmax_agreement": agree, "grid": case.grid})
        report.max_abs_diff = max(report.max_abs_diff, case_abs)
        report.max_rel_diff = max(report.max_rel_diff, float(rel.max()) if rel.size else 0.0)
        if case_abs > worst:
            worst = case_abs
            where = np.unravel_index(int(np.argmax(diff)), diff.shape)  # (row, class[, y, x])
            example = case.example_ids[int(where[0])]
            report.worst = {"case": case.label, "example": example, "class": int(where[1]), "abs_diff": case_abs,
                            "torch": float(expected[where]), "onnx": float(got[where])}
            if len(where) > 2:
                report.worst["position"] = [int(i) for i in where[2:]]
            if texts is not None:
                report.worst["text"] = str(texts[example])[:60]
        if not case.grid:
            for r, example in enumerate(case.example_ids):
                if expected.ndim > 2:
                    dense[example] = (expected[r], got[r], expected_classes[r], got_classes[r])
                else:
                    torch_pred[example] = int(expected[r].argmax())
                    onnx_pred[example] = int(got[r].argmax())
    if dense:
        ids = sorted(dense)
        shares = [float(np.mean(dense[i][2].argmax(0) == dense[i][3].argmax(0))) for i in ids]
        report.examples = len(ids)
        report.disagreements = sum(share < 1.0 for share in shares)
        report.argmax_agreement = float(np.mean(shares))
        report.torch_out = [dense[i][0] for i in ids]
        report.onnx_out = [dense[i][1] for i in ids]
    if torch_pred:
        report.examples = len(torch_pred)
        report.disagreements = sum(torch_pred[i] != onnx_pred[i] for i in torch_pred)
        report.argmax_agreement = 1.0 - report.disagreements / report.examples
        ids = sorted(torch_pred)
        report.torch_pred = [torch_pred[i] for i in ids]
        report.onnx_pred = [onnx_pred[i] for i in ids]
    return report


def _least_cosine(expected: np.ndarray, got: np.ndarray) -> float:
    """The least cosine between matching rows (1.0 for none; a zero row counts as agreeing only with zero)."""
    if not expected.size:
        return 1.0
    a, b = expected.astype(np.float64), got.astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    same = np.all(a == b, axis=1)
    cos = np.where(norms > 0, (a * b).sum(axis=1) / np.maximum(norms, 1e-300), np.where(same, 1.0, 0.0))
    cos = np.where(np.isfinite(cos), cos, -1.0)
    return float(cos.min())


def check(report: ParityReport, *, atol: float, rtol: float | None, min_argmax_agreement: float,
          what: str = "model.onnx", min_cosine: float | None = None) -> None:
    """Raise `GateError` (exit 1) with every failed tolerance and the figures; return when all hold."""
    problems = report.failures(atol, rtol, min_argmax_agreement, min_cosine)
    if problems:
        figures = {"max_abs_diff": report.max_abs_diff, "max_rel_diff": report.max_rel_diff,
                   "argmax_agreement": report.argmax_agreement, "min_cosine": report.min_cosine,
                   "worst": report.worst}
        raise GateError(f"parity of {what} with PyTorch failed: " + "; ".join(problems), figures)


def task_parity_cases(task: str, preprocessor: Any, examples: Sequence[Any], input_names: Sequence[str],
                      model_config: Any, *, max_length: int = 128, batch_size: int = 64,
                      batch_sizes: Sequence[int] = (1, 8), sequence_lengths: Sequence[int] = (16, 128)
                      ) -> list[ParityCase]:
    """The parity batches of a task's examples: texts (the adapter's `text_examples`) over batch and
    sequence, fixed-size examples (images) over the batch, their one dynamic axis. The one place a
    stage's parity check picks between the two."""
    from trt_edge.tasks.adapter import task_adapter

    adapter = task_adapter(task)
    if not adapter.text_examples:
        if not examples:
            raise TrtEdgeError("parity needs at least one example; the chosen split is empty")
        arrays, _ = adapter.feeds(preprocessor, examples, max_length, input_names)
        return fixed_size_parity_cases(arrays, len(examples), input_names, batch_size=batch_size,
                                       batch_sizes=batch_sizes)
    return parity_cases(preprocessor, examples, input_names, max_length=max_length, batch_size=batch_size,
                        batch_sizes=batch_sizes, sequence_lengths=sequence_lengths)


def run_parity(model: Any, onnx_path: Any, cases: Sequence[ParityCase], texts: Sequence[str] | None = None,
               providers: Sequence[str] | None = None, output_name: str = "logits",
               spec: TaskSpec | None = None) -> ParityReport:
    """`compare` against ONNX Runtime (CPU unless `providers` says otherwise) on an ONNX file."""
    from trt_edge.runtime.ort import OnnxRuntimeRunner

    with OnnxRuntimeRunner(onnx_path, providers=providers) as runner:
        return compare(model, runner, cases, texts, output_name, spec)
