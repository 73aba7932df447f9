"""Run ONNX models in ONNX Runtime on the CPU, for the checks of graph rewrites.

A rewrite is trusted only after it is run: `run_with_intermediates` reads tensors inside a block (the
attention verification), `compare_models` puts a rewritten model beside its original on the same feeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def run_with_intermediates(model: Any, names: list[str], feeds: list[dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """The values of `names` (any tensors inside the graph) on each feed, with graph optimisations off so
    every named tensor exists as exported."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    for name in names:
        if name not in existing:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
            existing.add(name)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    results = []
    for feed in feeds:
        values = session.run(names, feed)
        results.append(dict(zip(names, values, strict=True)))
    return results


def run_models(model: Any, feeds: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    """The outputs of `model` on each feed (CPU, default graph optimisations)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return [list(session.run(None, feed)) for feed in feeds]


def compare_models(reference: Any, candidate: Any, feeds: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Two ONNX models in ONNX Runtime on the same feeds: max |diff| over all outputs, and the share of
    rows whose arg-max of the first output agrees."""
    max_abs = 0.0
    agree = 0
    rows = 0
    for ref_outs, got_outs in zip(run_models(reference, feeds), run_models(candidate, feeds), strict=True):
        for ref, got in zip(ref_outs, got_outs, strict=True):
            max_abs = max(max_abs, float(np.max(np.abs(np.asarray(ref, np.float64) - np.asarray(got, np.float64)))))
        ref0 = np.asarray(ref_outs[0])
        got0 = np.asarray(got_outs[0])
        agree += int(np.sum(ref0.argmax(axis=-1) == got0.argmax(axis=-1)))
        rows += int(ref0.argmax(axis=-1).size)
    return {"max_abs_diff": max_abs, "argmax_agreement": agree / rows if rows else 1.0}
