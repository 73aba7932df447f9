"""The runner interface every backend implements (after Polygraphy's `BaseRunner`).

Public methods do all the checking (state, input names, shapes against the declared dynamic axes,
dtypes) and call `*_impl` hooks that a backend overrides. Runners are context managers. Profiling and
accuracy checks accept any runner, so the same code measures ONNX Runtime on a laptop and TensorRT on a
Jetson.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

import numpy as np

from trt_edge.errors import TrtEdgeError

T = TypeVar("T")


@dataclass(frozen=True)
class TensorMeta:
    """A named I/O tensor: shape with None (or a name string) for dynamic axes, numpy dtype."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: np.dtype

    def check(self, array: np.ndarray) -> list[str]:
        """Every way `array` does not fit this tensor (empty when it fits)."""
        problems = []
        if array.ndim != len(self.shape):
            problems.append(f"{self.name}: rank {array.ndim}, expected {len(self.shape)} (shape {self.shape})")
        else:
            for axis, (got, want) in enumerate(zip(array.shape, self.shape, strict=True)):
                if isinstance(want, int) and want >= 0 and got != want:
                    problems.append(f"{self.name}: axis {axis} is {got}, expected {want}")
        if array.dtype != self.dtype:
            problems.append(f"{self.name}: dtype {array.dtype}, expected {self.dtype}")
        return problems


class Runner(ABC):
    """Load a model, run it on named numpy arrays, release it.

    Subclasses implement `activate_impl`, `infer_impl`, `deactivate_impl`, `inputs_impl`, `outputs_impl`.
    """

    name: str = "runner"

    def __init__(self) -> None:
        self.is_active = False
        self.last_inference_ms: float | None = None

    # public API --------------------------------------------------------------------------------
    def activate(self) -> Runner:
        if self.is_active:
            raise RuntimeError(f"{self.name}: already active")
        self.activate_impl()
        self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    close = deactivate

    def inputs(self) -> list[TensorMeta]:
        self._require_active()
        return list(self.inputs_impl())

    def outputs(self) -> list[TensorMeta]:
        self._require_active()
        return list(self.outputs_impl())

    def infer(self, feed: Mapping[str, np.ndarray], check: bool = True) -> dict[str, np.ndarray]:
        """Run once. With `check`, every problem with the feed is reported at once, as one error."""
        self._require_active()
        if check:
            problems = self.check_feed(feed)
            if problems:
                raise TrtEdgeError(f"{self.name}: bad inputs: " + "; ".join(problems))
        start = time.perf_counter()
        out = self.infer_impl(feed)
        self.last_inference_ms = (time.perf_counter() - start) * 1e3
        return out

    def check_feed(self, feed: Mapping[str, np.ndarray]) -> list[str]:
        metas = {m.name: m for m in self.inputs()}
        problems = [f"unexpected input {n!r} (inputs: {', '.join(metas)})" for n in feed if n not in metas]
        problems += [f"missing input {n!r}" for n in metas if n not in feed]
        for name, meta in metas.items():
            if name in feed:
                problems += meta.check(np.asarray(feed[name]))
        return problems

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.deactivate()

    def _require_active(self) -> None:
        if not self.is_active:
            raise RuntimeError(f"{self.name}: not active; use `with runner:` or call activate()")

    # hooks -------------------------------------------------------------------------------------
    @abstractmethod
    def activate_impl(self) -> None: ...

    @abstractmethod
    def deactivate_impl(self) -> None: ...

    @abstractmethod
    def inputs_impl(self) -> Sequence[TensorMeta]: ...

    @abstractmethod
    def outputs_impl(self) -> Sequence[TensorMeta]: ...

    @abstractmethod
    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def logits_in_chunks(runner: Runner, items: Sequence[T], batch_size: int,
                     make_feed: Callable[[Sequence[T]], dict[str, np.ndarray]],
                     preferred: str = "logits", on_chunk: Callable[[int], None] | None = None,
                     what: str = "classify") -> np.ndarray:
    """The `preferred` output (or the only one) for `items`, `batch_size` at a time, in order; the runner
    is activated for the call when it is not active. The text and image classifiers and the text embedder
    share this loop; `on_chunk(n)` is told each chunk's size (a progress bar), `what` names the work in
    the error for no items."""
    if not items:
        raise TrtEdgeError(f"nothing to {what}")
    was_active = runner.is_active
    if not was_active:
        runner.activate()
    try:
        outputs = [o.name for o in runner.outputs()]
        name = preferred if preferred in outputs else outputs[0]
        chunks = []
        for i in range(0, len(items), batch_size):
            chunks.append(runner.infer(make_feed(items[i:i + batch_size]))[name])
            if on_chunk is not None:
                on_chunk(len(chunks[-1]))
    finally:
        if not was_active:
            runner.deactivate()
    return np.concatenate(chunks).astype(np.float32)
