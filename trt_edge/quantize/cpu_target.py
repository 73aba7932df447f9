"""The CPU artifact: candidates built from the same calibration set, measured here, the fastest that passes.

The INT8 graph TensorRT wants (signed activations, Q/DQ on every projection) is slow on a CPU: ONNX Runtime
on x86 fuses Q/DQ MatMuls only with unsigned activations (quantization-measurements.md, trap 5). So the CPU
target gets its own artifact, chosen by measurement rather than by rule, because which variant wins
depends on the CPU, the ONNX Runtime version and the model:

- `fp32`: the exported student unchanged (always a candidate: nothing slower is ever chosen);
- `fused`: ONNX Runtime's transformer fusions (Attention, SkipLayerNorm, BiasGelu, EmbedLayerNorm) through
  `onnxruntime.transformers`, saved at the portable graph level (contrib ops, no CPU-specific layouts);
- `dynamic-int8` (and `fused-dynamic-int8`): int8 weights, activations quantized at run time;
- `u8s8-qdq`: static Q/DQ on MatMul only, unsigned 8-bit activations and signed per-channel weights,
  ranges from the calibration set (MinMax; the attention mask never passes through a MatMul input).

Each candidate is evaluated on the test split (accuracy, agreement with fp32) and timed interleaved with
the others at batch 1; the fastest within the accuracy budget wins.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.lazy import lazy_import
from trt_edge.log import get_logger

log = get_logger("calibrate.cpu")

CANDIDATES = ("fp32", "fused", "dynamic-int8", "fused-dynamic-int8", "u8s8-qdq")
LATENCY_SHAPES = ((1, 64), (1, 128))


@dataclass
class CpuCandidate:
    name: str
    path: Path | None
    accuracy: float | None = None
    macro_f1: float | None = None
    agreement: float | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    speedup_vs_fp32: dict[str, float] = field(default_factory=dict)
    passed: bool = False
    bytes: int | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = self.path.name if self.path else None
        return out


def _fuse(src: Path, dst: Path) -> str:
    """ONNX Runtime's BERT fusions at the portable level; returns what was fused."""
    optimizer = lazy_import("onnxruntime.transformers.optimizer")
    # num_heads/hidden_size 0: detected from the graph. opt_level 0: Python fusions only, no ORT
    # session optimizations baked into the file (those may be hardware-specific).
    model = optimizer.optimize_model(str(src), model_type="bert", num_heads=0, hidden_size=0, opt_level=0,
                                     use_gpu=False, only_onnxruntime=False)
    stats = {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}
    if not any(k in stats for k in ("Attention", "MultiHeadAttention", "SkipLayerNormalization",
                                    "EmbedLayerNormalization", "BiasGelu", "FastGelu", "Gelu", "LayerNormalization")):
        raise TrtEdgeError(f"ONNX Runtime found no transformer pattern to fuse ({stats})")
    model.save_model_to_file(str(dst), use_external_data_format=False)
    return ", ".join(f"{k}×{v}" for k, v in sorted(stats.items()))


def _dynamic(src: Path, dst: Path) -> str:
    q = lazy_import("onnxruntime.quantization")
    q.quantize_dynamic(str(src), str(dst), weight_type=q.QuantType.QInt8, per_channel=True,
                       op_types_to_quantize=["MatMul", "Gemm", "Attention"])
    return "int8 weights (per channel), activations quantized at run time"


def _u8s8(src: Path, dst: Path, feeds: Sequence[dict[str, np.ndarray]]) -> str:
    q = lazy_import("onnxruntime.quantization")

    class Reader(q.CalibrationDataReader):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    q.quantize_static(str(src), str(dst), Reader(), quant_format=q.QuantFormat.QDQ,
                      activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8, per_channel=True,
                      op_types_to_quantize=["MatMul"], calibrate_method=q.CalibrationMethod.MinMax,
                      extra_options={"WeightSymmetric": True, "ActivationSymmetric": False,
                                     "QuantizeBias": False})
    return "static Q/DQ on MatMul, uint8 activations, int8 per-channel weights, MinMax ranges"


def build_candidates(onnx_fp32: Path, feeds: Sequence[dict[str, np.ndarray]], work: Path,
                     names: Sequence[str] = CANDIDATES) -> list[CpuCandidate]:
    """Write every candidate into `work`; a candidate that cannot be built is kept with its reason."""
    work.mkdir(parents=True, exist_ok=True)
    out: list[CpuCandidate] = []
    fused: Path | None = None
    for name in names:
        path = work / f"model.cpu.{name}.onnx"
        try:
            if name == "fp32":
                shutil.copyfile(onnx_fp32, path)
                note = "the exported student"
            elif name == "fused":
                note = "fused: " + _fuse(onnx_fp32, path)
                fused = path
            elif name == "dynamic-int8":
                note = _dynamic(onnx_fp32, path)
            elif name == "fused-dynamic-int8":
                if fused is None:
                    raise TrtEdgeError("no fused model to quantize")
                note = "fused graph, " + _dynamic(fused, path)
            elif name == "u8s8-qdq":
                note = _u8s8(onnx_fp32, path, feeds)
            else:
                raise TrtEdgeError(f"unknown CPU candidate {name!r}; known: {', '.join(CANDIDATES)}")
            out.append(CpuCandidate(name, path, bytes=path.stat().st_size, note=note))
        except Exception as exc:  # a failed candidate is a measured outcome, not a crash of the stage
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            log.info("CPU candidate %s not built: %s", name, reason)
            out.append(CpuCandidate(name, None, note=f"not built: {reason}"))
    return out


def latency_feeds(tokenizer: Any, texts: Sequence[str], input_names: Sequence[str],
                  shapes: Sequence[tuple[int, int]] = LATENCY_SHAPES) -> dict[str, dict[str, np.ndarray]]:
    """One feed per (batch, sequence): real texts, the longest first, padded to exactly the sequence."""
    from trt_edge.quantize.calib_data import tokenize_padded

    by_length = sorted(texts, key=len, reverse=True)
    return {f"b{b}s{s}": tokenize_padded(tokenizer, by_length[:b], s, input_names)[0] for b, s in shapes}


def select_cpu_artifact(candidates: list[CpuCandidate], arrays: dict[str, np.ndarray], lengths: np.ndarray,
                        labels: np.ndarray, budget_points: float, feeds: dict[str, dict[str, np.ndarray]],
                        runs: int = 30, threads: int | None = None) -> CpuCandidate:
    """Evaluate and time every built candidate; return the fastest whose accuracy is within
    `budget_points` of the fp32 candidate's (fp32 itself always qualifies). `feeds` are the timed
    inputs by shape key (see `latency_feeds`)."""
    from trt_edge.quantize.evaluate import latency_ms, predict, session

    built = [c for c in candidates if c.path is not None]
    if not built or built[0].name != "fp32":
        raise TrtEdgeError("the fp32 candidate is needed as the reference of the CPU target")
    sessions = [session(str(c.path), threads) for c in built]
    logits = [predict(s, arrays, lengths) for s in sessions]
    ref_pred = logits[0].argmax(-1)
    ref_acc = float((ref_pred == labels).mean())
    from trt_edge.tasks.metrics import macro_f1

    for cand, lg in zip(built, logits, strict=True):
        pred = lg.argmax(-1)
        cand.accuracy = float((pred == labels).mean())
        cand.macro_f1 = macro_f1(pred, labels, int(lg.shape[-1]))
        cand.agreement = float((pred == ref_pred).mean())
        cand.passed = (ref_acc - cand.accuracy) * 100 <= budget_points
    for key, feed in feeds.items():
        medians = latency_ms(sessions, feed, runs)
        for cand, ms in zip(built, medians, strict=True):
            cand.latency_ms[key] = round(ms, 4)
            cand.speedup_vs_fp32[key] = round(medians[0] / ms, 3)
    def score(c: CpuCandidate) -> float:
        return float(np.mean(list(c.latency_ms.values()))) if c.latency_ms else float("inf")

    winner = min((c for c in built if c.passed), key=score)
    log.info("CPU artifact: %s (accuracy %.4f vs fp32 %.4f; speed-up %s)", winner.name, winner.accuracy or 0,
             ref_acc, winner.speedup_vs_fp32)
    return winner
