"""The report's overlays: a few test images with the teacher's and the final model's predictions drawn side by
side (a detector's boxes, a segmenter's blended class map), so a user sees what INT8 and distillation did to
the output before flashing a device, not only a metric.

Nothing is re-run: the predictions are the test outputs the stages saved (`test_predictions.npz`: the
teacher's from distill, the final model's from qat or calibrate, else the latest stage that saved the student's),
and the images are the test split's first few, loaded by the task's adapter from the data the distill stage
recorded (the saved labels must equal the loaded split's, else the split changed and no overlay is drawn).
The drawing is `runtime.overlay`'s, the one `trt-edge run --image --overlay` uses. Tasks with one label or
vector per example (classification, embeddings) have nothing to draw: their reports do not change.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge import stats
from trt_edge.errors import TrtEdgeError
from trt_edge.pipeline.verdict import MODELS, deployed_label

OVERLAY_IMAGES = 4  # test images shown
TEACHER = ("distill", "teacher")
# The final model's saved outputs, most deployed first: the INT8 Q/DQ graph, the CPU artifact, then the
# student before quantization when the run stopped earlier.
FINAL = (("qat", "int8"), ("calibrate", "int8"), ("calibrate", "cpu"), ("prune", "sparse"), ("width", "width"),
         ("distill", "student"))


@dataclass
class Overlay:
    """One test image drawn twice: the PNG file names (in the report folder) and the model each shows."""

    index: int
    teacher_file: str
    final_file: str
    final_model: str
    size: tuple[int, int]  # (width, height) of the image, and of both PNGs
    teacher_png: bytes
    final_png: bytes

    def data_uri(self, which: str) -> str:
        data = self.teacher_png if which == "teacher" else self.final_png
        return "data:image/png;base64," + base64.b64encode(data).decode()


def _saved(run_dir: Path, stage: str, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    path = run_dir / stage / stats.PREDICTIONS_FILE
    if not path.is_file():
        return None
    data = stats.load_predictions(path)
    return (data[key], data["labels"]) if key in data else None


def _processor_folder(run_dir: Path, stages: dict[str, dict[str, Any]]) -> Path:
    """The final model's image processor (a detector's threshold and top-k travel in it)."""
    from trt_edge.artifacts import PREPROCESSOR

    calibrate = stages.get("calibrate", {}).get("artifacts", {})
    if PREPROCESSOR in calibrate and (run_dir / "calibrate" / calibrate[PREPROCESSOR]).is_dir():
        return run_dir / "calibrate" / str(calibrate[PREPROCESSOR])
    return run_dir / "distill" / "model"


def make_overlays(run_dir: Path, stages: dict[str, dict[str, Any]], count: int = OVERLAY_IMAGES
                  ) -> tuple[list[Overlay], str | None]:
    """The overlays of a segmentation or detection run (empty for other tasks), and why there are none
    where a dense run has none (a note for the report: data moved, split changed, outputs not saved)."""
    from trt_edge.config import RunConfig
    from trt_edge.runtime import overlay as drawing
    from trt_edge.tasks.adapter import adapter_for
    from trt_edge.tasks.spec import task_for_record

    spec = task_for_record(stages.get("distill"))
    if spec is None:
        return [], None
    detects = bool(spec.packed_outputs)
    if not detects and len(spec.output_axes) < 3:
        return [], None  # one label or vector per example: nothing to draw
    teacher = _saved(run_dir, *TEACHER)
    final, final_name = None, ""
    for stage, key in FINAL:
        final = _saved(run_dir, stage, key)
        if final is not None:
            final_name = MODELS.get((stage, key)) or deployed_label(stages)  # qat's int8: QAT's or PTQ's
            break
    if teacher is None or final is None:
        return [], "no overlays: the teacher's or the final model's test outputs were not saved"
    if not np.array_equal(teacher[1], final[1]):
        return [], "no overlays: the teacher and the final model were scored on different test splits"
    task = RunConfig({"task": (stages["distill"].get("config") or {}).get("task") or {}}).section("task")
    try:
        data = adapter_for(spec).load_data(task.data)
    except TrtEdgeError as exc:
        return [], f"no overlays: the test images could not be loaded ({exc})"
    if not np.array_equal(stats.label_array(data.test.labels), teacher[1]):
        return [], f"no overlays: {task.data.source} no longer gives the test split the stages saved"
    images = [np.asarray(x) for x in data.test.examples[:count]]
    sizes = [(int(x.shape[0]), int(x.shape[1])) for x in images]
    if detects:
        from trt_edge.tasks.object_detection import postprocessing

        processor = spec.preprocessor.load(_processor_folder(run_dir, stages))
        settings = postprocessing(processor, "the final model")
        threshold, top_k = float(settings["threshold"]), int(settings["top_k"])

        def draw(outputs: np.ndarray) -> list[np.ndarray]:
            found = drawing.detection_boxes(outputs[:len(images)], sizes, data.label_names, threshold, top_k)
            return [drawing.draw_boxes(x, boxes) for x, boxes in zip(images, found, strict=True)]
    else:
        def draw(outputs: np.ndarray) -> list[np.ndarray]:
            return [drawing.segmentation_overlay(x, maps) for x, maps in zip(images, outputs, strict=False)]

    out = []
    for i, (t, f) in enumerate(zip(draw(teacher[0]), draw(final[0]), strict=True)):
        out.append(Overlay(i, f"overlay_{i}_teacher.png", f"overlay_{i}_final.png", final_name,
                           (sizes[i][1], sizes[i][0]), _png(t), _png(f)))
    return out, None


def _png(pixels: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def markdown(overlays: list[Overlay], note: str | None) -> list[str]:
    """The report's "Predictions on test images" section: a table of image pairs (or the note why none)."""
    if not overlays:
        return [note, ""] if note else []
    final = overlays[0].final_model
    lines = ["## Predictions on test images", "",
             f"The first {len(overlays)} test images: the teacher's prediction (left) and the {final}'s (right).", "",
             f"| test image | teacher | {final} |", "|---|---|---|"]
    lines += [f"| {o.index} ({o.size[0]}x{o.size[1]}) | ![teacher {o.index}]({o.teacher_file}) | "
              f"![final {o.index}]({o.final_file}) |" for o in overlays]
    return [*lines, ""]


def html_section(overlays: list[Overlay], note: str | None) -> str:
    """The same section for the self-contained HTML page (images inline)."""
    import html

    esc = html.escape
    if not overlays:
        return f"<p>{esc(note)}</p>" if note else ""
    final = esc(overlays[0].final_model)
    pairs = "".join(
        f'<div class="pair"><figure><img alt="teacher {o.index}" src="{o.data_uri("teacher")}" '
        f'data-file="{esc(o.teacher_file)}"><figcaption>teacher, test image {o.index}</figcaption></figure>'
        f'<figure><img alt="final {o.index}" src="{o.data_uri("final")}" data-file="{esc(o.final_file)}">'
        f"<figcaption>{final}, test image {o.index}</figcaption></figure></div>" for o in overlays)
    return (f"<h2>Predictions on test images</h2><p>The first {len(overlays)} test images: the teacher's "
            f"prediction (left) and the {final}'s (right).</p><div class=\"overlays\">{pairs}</div>")
