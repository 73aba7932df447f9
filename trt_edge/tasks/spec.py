"""The task contract: what a task's model takes and gives, declared once (Optimum's per-task ONNX configs).

A `TaskSpec` names the model inputs with their dtypes and NAMED axes (which of them are dynamic), the
output, the preprocessor the inputs come from (a tokenizer, an image processor) and the files that
make it up, the adapter module (`tasks/adapter.py`'s `TaskAdapter`: data, batching, prediction,
feeds) that `adapter_for(spec)` returns, the metric, and the parity tolerances. Stages ask the spec:
the exporter writes its names and axes into the ONNX, the build plan
makes TensorRT profiles by the axis names, calibration and evaluation feed what it lists, and the
preprocessor travels as an artifact beside every model (`preprocessor/` in export, calibrate and build
folders, the model folder itself for distill and prune) so no stage searches for it.

This module is the only place where input names are written down.
"""

from __future__ import annotations

import importlib
import operator
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trt_edge.errors import TrtEdgeError

BATCH_AXIS = "batch"
SEQUENCE_AXIS = "sequence"
PREPROCESSOR_DIR = "preprocessor"
# What the build stage and its on-device bundle call the same folder for a text model (`tokenizer/`, from
# before images); an image model's bundle says `preprocessor/` (`TaskSpec.bundle_dir`). Both are read.
BUNDLE_PREPROCESSOR_DIR = "tokenizer"


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name, numpy dtype name, axis names, and which axes are dynamic.

    `optional` inputs are fed only when the model's forward takes them and the preprocessor makes them
    (BERT's `token_type_ids`). `pad` is the value a padded position takes (`pad_token_id` for ids).
    """

    name: str
    dtype: str
    axes: tuple[str, ...]
    dynamic: tuple[str, ...]
    optional: bool = False
    pad: str | int = 0
    # Other axis layouts the same input name has in other model families of the task (AST's `input_values`
    # are [batch, frames, mel], wav2vec2's [batch, samples]): `axes_for(rank)` picks the one of a graph's rank.
    layouts: tuple[tuple[str, ...], ...] = ()

    def axes_for(self, rank: int) -> tuple[str, ...]:
        """The axis names of this input in a graph (or tensor) of `rank` dimensions: `axes`, or the layout of
        that rank; `axes` when none has it (the caller's rank check then says so)."""
        return next((layout for layout in (self.axes, *self.layouts) if len(layout) == rank), self.axes)


@dataclass(frozen=True)
class PreprocessorSpec:
    """The preprocessor a task needs: its kind, the files that identify it, the transformers loader."""

    kind: str
    files: tuple[str, ...]
    loader: str  # "module:attribute" with `from_pretrained`
    # Two kinds share `preprocessor_config.json` (image processors, audio feature extractors): a key of that
    # JSON tells them apart (`sampling_rate`: a feature extractor's). `requires_key`: the file must have it;
    # `refuses_key`: the file must not.
    requires_key: str | None = None
    refuses_key: str | None = None

    def present(self, folder: Path) -> bool:
        if not folder.is_dir():
            return False
        found = [folder / name for name in self.files if (folder / name).is_file()]
        if not found:
            return False
        if self.requires_key is None and self.refuses_key is None:
            return True
        keys = _json_keys(found[0])
        return (self.requires_key is None or self.requires_key in keys) and \
            (self.refuses_key is None or self.refuses_key not in keys)

    def load(self, folder: Path, trust_remote_code: bool = False) -> Any:
        """Load it from `folder` (local files only), or say in one line what is missing. transformers is
        asked even when none of `files` is there (some tokenizers rebuild from the model config); the
        stages refuse such folders earlier (`tasks.models.check_preprocessor`)."""
        if self.kind == "tokenizer":  # also refuses a tokenizer with no real vocabulary (every word [UNK])
            from trt_edge.guard import load_tokenizer

            return load_tokenizer(folder, trust_remote_code)
        module, _, attr = self.loader.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        try:
            return cls.from_pretrained(str(folder), local_files_only=True, trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            what = "unreadable" if self.present(folder) else f"no {' or '.join(self.files)} for the"
            raise TrtEdgeError(f"{folder}: {what} {self.kind} ({str(exc).splitlines()[0][:200]})") from exc

    def copy(self, src: Path, dst: Path) -> Path:
        """Copy the preprocessor's files (and `config.json`, which holds the label names) into `dst`."""
        if not self.present(src):
            raise TrtEdgeError(f"{src}: no {self.kind} ({' or '.join(self.files)}) to carry forward")
        dst.mkdir(parents=True, exist_ok=True)
        for item in sorted(src.iterdir()):
            if item.is_file() and not item.name.endswith((".safetensors", ".onnx", ".bin", ".data")) \
                    and item.name != "stage.json":
                shutil.copyfile(item, dst / item.name)
        return dst


def _json_keys(file: Path) -> set[str]:
    """The top-level keys of a preprocessor JSON file (empty when it is not a JSON object)."""
    import json

    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return set(data) if isinstance(data, dict) else set()


@dataclass(frozen=True)
class TaskSpec:
    """A task's contract. `adapter_module` names the module whose `ADAPTER` (a `TaskAdapter`) loads the
    task's data, batches and predicts; `tasks.adapter.adapter_for(spec)` returns it."""

    name: str
    modality: str
    inputs: tuple[InputSpec, ...]
    output: str
    output_axes: tuple[str, ...]
    preprocessor: PreprocessorSpec
    adapter_module: str
    auto_model: str
    metric: str = "accuracy"
    atol: float = 1e-4
    min_argmax_agreement: float = 1.0
    # The input whose row sum is an example's true length (sequence tasks), None for fixed-size inputs.
    length_input: str | None = None
    # The folder of a build output / on-device bundle that holds the preprocessor (`preprocessor_dir`
    # reads either name, so bundles written before image tasks said `preprocessor/` keep working).
    bundle_dir: str = BUNDLE_PREPROCESSOR_DIR
    # One pooled vector per example (`modeling.pooling.EmbeddingModel`: an encoder with its pooling and
    # normalisation), not class scores: no label names, no head to check, parity on the vectors; `trt-edge
    # run` prints it and searches a corpus with it (the one capability `run` dispatches on).
    pooled: bool = False
    # Parity of a pooled output: the least cosine between each PyTorch and ONNX vector (None: not judged).
    # Argmax agreement means nothing for a vector and is judged only for class scores (`pooled` False).
    min_cosine: float | None = None
    # A packed output (object detection): `output` is the model's outputs of these names joined on their last
    # axis, in order (name, its width on that axis; None for the one part whose width is the rest: the class
    # scores, listed first). Empty: `output` is the model's own output of that name (`model_output`).
    packed_outputs: tuple[tuple[str, int | None], ...] = ()

    def model_output(self, out: Any) -> Any:
        """The spec's output (a torch tensor) of a transformers model's output: the attribute named `output`,
        or the `packed_outputs` joined on the last axis. The exporter traces this, parity and prediction
        read it, so the graph's one output and PyTorch's agree by construction."""
        if not self.packed_outputs:
            return getattr(out, self.output)
        import torch

        parts = [getattr(out, name) for name, _ in self.packed_outputs]
        return torch.cat([p.to(parts[0].dtype) for p in parts], dim=-1)

    def class_scores(self, outputs: Any) -> Any:
        """Outputs [batch, ...] (numpy) as class scores with the classes on axis 1, what argmax agreement
        compares: the outputs themselves, or a packed output's class part with its last axis moved to 1
        (a detector's [batch, queries, classes + 1 + 4] -> [batch, classes + 1, queries])."""
        if not self.packed_outputs:
            return outputs
        import numpy as np

        fixed = sum(width or 0 for _, width in self.packed_outputs)
        return np.moveaxis(outputs[..., :outputs.shape[-1] - fixed], -1, 1)
    # transformers' name mapping (in `transformers.models.auto.modeling_auto`) of the task's head classes, when
    # a head's class name does not end as the auto class does (wav2vec2's audio head is
    # `Wav2Vec2ForSequenceClassification`, which the text task's suffix would claim).
    head_mapping: str | None = None

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.inputs)

    @property
    def required_inputs(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.inputs if not i.optional)

    @property
    def dynamic_axes(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for i in self.inputs:
            for axis in i.dynamic:
                seen.setdefault(axis, None)
        return tuple(seen)

    def fixed_size(self, shape: Sequence[Any]) -> tuple[int, int] | None:
        """(height, width) of an example of this task given the shape of its first input (a feed, an
        ONNX input), from the axes the spec names `height` and `width`; None for a sequence task or a
        shape that does not say (a symbolic axis)."""
        axes = self.inputs[0].axes
        if "height" not in axes or "width" not in axes or len(shape) != len(axes):
            return None
        try:  # numpy and ONNX Runtime give integers of several types; a symbolic axis is a string
            return operator.index(shape[axes.index("height")]), operator.index(shape[axes.index("width")])
        except TypeError:
            return None

    def describe_shape(self, batch: int, sequence: int, shape: Sequence[Any] | None = None) -> str:
        """How a timed shape prints: `b1 s64` for a sequence task, `b1 224x224` for images (their size from
        `shape`, the first input's; `b1` when unknown: an image's `sequence` means nothing)."""
        if self.has_sequence_axis:
            return f"b{batch} s{sequence}"
        size = self.fixed_size(shape) if shape is not None else None
        return f"b{batch} {size[0]}x{size[1]}" if size else f"b{batch}"

    def describe_examples(self, shape: Sequence[Any], lengths: Sequence[int]) -> str:
        """A set of examples in words: `lengths 12-64 (median 30)` for a sequence task, `224x224 images`
        for images (`shape` is the first input's array shape, `lengths` the true lengths)."""
        if self.length_input is not None and len(lengths):
            ordered, mid = sorted(int(n) for n in lengths), len(lengths) // 2
            median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
            return f"lengths {ordered[0]}-{ordered[-1]} (median {int(median)})"
        size = self.fixed_size(shape)
        return f"{size[0]}x{size[1]} images" if size else f"inputs of shape {list(shape)}"

    def first_fed(self, names: Iterable[str]) -> str:
        """The first of the spec's inputs among `names` (a feed's keys): the example's own values (token ids,
        pixels, audio), whichever of a task's optional inputs the model takes (Whisper: `input_features`)."""
        present = set(names)
        return next((i.name for i in self.inputs if i.name in present), self.inputs[0].name)

    def input(self, name: str) -> InputSpec:
        for i in self.inputs:
            if i.name == name:
                return i
        raise KeyError(name)

    @property
    def has_sequence_axis(self) -> bool:
        """Whether the inputs have a dynamic sequence axis (positions to check against max_length)."""
        return SEQUENCE_AXIS in self.dynamic_axes

    def check_onnx_io(self, input_names: list[str], output_names: list[str], source: str) -> list[str]:
        """The graph's inputs, after checking they are this task's (required ones present, none unknown)."""
        missing = [n for n in self.required_inputs if n not in input_names]
        unknown = [n for n in input_names if n not in self.input_names]
        if missing or unknown or self.output not in output_names:
            optional = [n for n in self.input_names if n not in self.required_inputs]
            raise TrtEdgeError(
                f"{source}: expected inputs {list(self.required_inputs)}"
                + (f" (+ {', '.join(optional)})" if optional else "")
                + f" and output {self.output!r} of a {self.name} model, found inputs {input_names} and outputs "
                f"{output_names}; export it with `trt-edge export`"
            )
        return input_names


TEXT_CLASSIFICATION = TaskSpec(
    name="text-classification",
    modality="text",
    inputs=(
        InputSpec("input_ids", "int64", (BATCH_AXIS, SEQUENCE_AXIS), (BATCH_AXIS, SEQUENCE_AXIS), pad="pad_token_id"),
        InputSpec("attention_mask", "int64", (BATCH_AXIS, SEQUENCE_AXIS), (BATCH_AXIS, SEQUENCE_AXIS)),
        InputSpec("token_type_ids", "int64", (BATCH_AXIS, SEQUENCE_AXIS), (BATCH_AXIS, SEQUENCE_AXIS), optional=True),
    ),
    output="logits",
    output_axes=(BATCH_AXIS, "classes"),
    preprocessor=PreprocessorSpec("tokenizer", ("tokenizer.json", "vocab.txt", "tokenizer_config.json",
                                                "spiece.model", "vocab.json"),
                                  "transformers:AutoTokenizer"),
    adapter_module="trt_edge.tasks.text_classification",
    auto_model="AutoModelForSequenceClassification",
    length_input="attention_mask",
)

IMAGE_CLASSIFICATION = TaskSpec(
    name="image-classification",
    modality="image",
    inputs=(InputSpec("pixel_values", "float32", (BATCH_AXIS, "channels", "height", "width"), (BATCH_AXIS,)),),
    output="logits",
    output_axes=(BATCH_AXIS, "classes"),
    preprocessor=PreprocessorSpec("image processor", ("preprocessor_config.json",),
                                  "transformers:AutoImageProcessor", refuses_key="sampling_rate"),
    adapter_module="trt_edge.tasks.image_classification",
    auto_model="AutoModelForImageClassification",
    bundle_dir=PREPROCESSOR_DIR,
)

# Text in, one vector out: the model's pooling (mean, CLS, last token, max) and normalisation are inside the
# exported graph, so the engine alone gives the vector (tasks/sentence_embedding.py). The metric is the
# recall@10 of the parent's (ultimately the teacher's) nearest neighbours, per query (tasks/retrieval.py).
SENTENCE_EMBEDDING = TaskSpec(
    name="sentence-embedding",
    modality="text",
    inputs=TEXT_CLASSIFICATION.inputs,
    output="sentence_embedding",
    output_axes=(BATCH_AXIS, "dim"),
    preprocessor=TEXT_CLASSIFICATION.preprocessor,
    adapter_module="trt_edge.tasks.sentence_embedding",
    auto_model="AutoModel",
    metric="recall_at_10",
    length_input="attention_mask",
    pooled=True,
    min_cosine=0.9999,
)

# Pixels in, per-pixel class logits out at the model's output stride (SegFormer: 1/4 of the input; DPT: the
# input's size), so the exported graph needs no resize and the engine's output is small: the adapter upsamples
# them to each gold mask's size for metrics (tasks/semantic_segmentation.py). Parity is judged per pixel: the
# share of pixels whose argmax agrees, plus the logits tolerance.
SEMANTIC_SEGMENTATION = TaskSpec(
    name="semantic-segmentation",
    modality="image",
    inputs=IMAGE_CLASSIFICATION.inputs,
    output="logits",
    output_axes=(BATCH_AXIS, "classes", "out_height", "out_width"),
    preprocessor=IMAGE_CLASSIFICATION.preprocessor,
    adapter_module="trt_edge.tasks.semantic_segmentation",
    auto_model="AutoModelForSemanticSegmentation",
    metric="miou",
    atol=1e-3,
    min_argmax_agreement=0.999,
    bundle_dir=PREPROCESSOR_DIR,
)

# Pixels in, one fixed set of predictions per image out (DETR, YOLOS: `queries` object slots), each a class
# distribution over the classes plus "no object" (the model's `logits` [batch, queries, classes + 1]) and a box
# (its `pred_boxes` [batch, queries, 4]: normalised cx, cy, w, h, as transformers' DETR and YOLOS give them).
# The exported graph's one output `detections` [batch, queries, classes + 1 + 4] is the two side by side
# (`packed_outputs`), so every stage and runtime that carries one output per model (parity, calibration,
# the bundle, `run`) carries both; the last 4 columns are the box. The image size is fixed by the processor
# (the graph's height and width). The adapter (tasks/object_detection.py) decodes boxes to the image's pixels
# and scores COCO mAP@[.5:.95] (`map`; `map_50` too).
OBJECT_DETECTION = TaskSpec(
    name="object-detection",
    modality="image",
    inputs=IMAGE_CLASSIFICATION.inputs,
    output="detections",
    output_axes=(BATCH_AXIS, "queries", "classes_no_object_box"),
    preprocessor=IMAGE_CLASSIFICATION.preprocessor,
    adapter_module="trt_edge.tasks.object_detection",
    auto_model="AutoModelForObjectDetection",
    metric="map",
    atol=1e-3,
    min_argmax_agreement=0.99,
    bundle_dir=PREPROCESSOR_DIR,
    packed_outputs=(("logits", None), ("pred_boxes", 4)),
)

# Audio in, class logits out (tasks/audio_classification.py). The input is what the model's feature extractor
# makes, and its name says which: `input_values` raw waveform [batch, samples] (wav2vec2, HuBERT) or log-mel
# frames [batch, frames, mel] (AST), `input_features` log-mel [batch, mel, frames] (Whisper's encoder). Both
# are optional: a model takes the one its extractor lists and its forward accepts. Clips have one length
# (`task.data.clip_seconds`), so only the batch axis is dynamic.
AUDIO_CLASSIFICATION = TaskSpec(
    name="audio-classification",
    modality="audio",
    inputs=(
        InputSpec("input_values", "float32", (BATCH_AXIS, "samples"), (BATCH_AXIS,), optional=True,
                  layouts=((BATCH_AXIS, "frames", "mel"),)),
        InputSpec("input_features", "float32", (BATCH_AXIS, "mel", "frames"), (BATCH_AXIS,), optional=True),
    ),
    output="logits",
    output_axes=(BATCH_AXIS, "classes"),
    preprocessor=PreprocessorSpec("feature extractor", ("preprocessor_config.json",),
                                  "transformers:AutoFeatureExtractor", requires_key="sampling_rate"),
    adapter_module="trt_edge.tasks.audio_classification",
    auto_model="AutoModelForAudioClassification",
    atol=1e-3,
    bundle_dir=PREPROCESSOR_DIR,
    head_mapping="MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES",
)

TASKS: dict[str, TaskSpec] = {s.name: s for s in (TEXT_CLASSIFICATION, IMAGE_CLASSIFICATION, SENTENCE_EMBEDDING,
                                                  SEMANTIC_SEGMENTATION, OBJECT_DETECTION, AUDIO_CLASSIFICATION)}
# The task of a call or a stage record that names none: everything written before image tasks was
# text classification. The only place a task is a default; stages call `task_spec`/`task_for_record`.
DEFAULT_TASK = TEXT_CLASSIFICATION


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise TrtEdgeError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]


def task_spec(name: str | None) -> TaskSpec:
    """`get_task(name)`, or the default task for None (a caller or an old record that names none)."""
    return DEFAULT_TASK if name is None else get_task(name)


def task_for_record(record: dict[str, Any] | None) -> TaskSpec | None:
    """The task a stage record's config names (`config.task.type`), the default task for a record
    written before tasks had types, None for no record or a type no longer known."""
    if record is None:
        return None
    task = (record.get("config") or {}).get("task") or {}
    return TASKS.get(str(task.get("type") or DEFAULT_TASK.name))


def task_for_model_config(config: Any) -> TaskSpec:
    """The task a bare model config suggests, for callers that name none: an image model's config has an
    image size and no vocabulary; anything else is the default task."""
    if hasattr(config, "num_mel_bins") or hasattr(config, "conv_dim"):  # AST, Whisper; wav2vec2's conv encoder
        return AUDIO_CLASSIFICATION
    image = hasattr(config, "image_size") and not hasattr(config, "vocab_size")
    return IMAGE_CLASSIFICATION if image else DEFAULT_TASK


def task_for_architectures(architectures: Iterable[str] | None) -> TaskSpec | None:
    """The task a model config's `architectures` (config.json) were saved for: the spec whose auto class
    names the head (`AutoModelForSemanticSegmentation` -> `...ForSemanticSegmentation`); None when no
    architecture names one (a bare encoder, an unknown head, a config without the list). Two image tasks
    share a preprocessor, so the head is what tells a segmenter from a classifier."""
    names = [str(a) for a in architectures or ()]
    for spec in TASKS.values():  # heads named in transformers' mapping first: they may end like another task's
        if spec.head_mapping and names and any(a in _head_classes(spec.head_mapping) for a in names):
            return spec
    prefix = "AutoModel"
    for spec in TASKS.values():
        suffix = spec.auto_model[len(prefix):] if spec.auto_model.startswith(prefix) else ""
        if suffix and any(str(a).endswith(suffix) for a in architectures or ()):
            return spec
    return None


def _head_classes(mapping: str) -> set[str]:
    """The class names of one of transformers' auto-model name mappings (imported only when asked)."""
    module = importlib.import_module("transformers.models.auto.modeling_auto")
    table = getattr(module, mapping, None) or {}
    return {str(v) for v in table.values()}


RUN_FLAGS = {"text": '--text "..."', "image": "--image FILE", "audio": "--audio FILE|FOLDER or --stream FILE"}


def check_run_input(spec: TaskSpec | None, asked: str, source: str, search: bool = False) -> None:
    """Refuse, in one line, `trt-edge run` input the model's task (`spec`, None when nothing says) does not
    take: another modality (`asked`: "text" for --text, "image" for --image, "audio" for --audio/--stream), or a
    corpus search (`search`: --top/--corpus) with a model whose output is not a vector. The line names the task and
    what it takes."""
    if spec is None:
        return
    article = "an" if spec.name[0] in "aeiou" else "a"
    takes = RUN_FLAGS.get(spec.modality, '--text "..."')
    if spec.pooled:
        takes += " (it prints the vector; --top K --corpus FILE searches a corpus)"
    if spec.modality != asked:
        raise TrtEdgeError(f"{source} is {article} {spec.name} model: it takes {spec.modality}, not {asked}; "
                           f"use {takes}")
    if search and not spec.pooled:
        needs = ", ".join(s.name for s in TASKS.values() if s.pooled)
        raise TrtEdgeError(f"{source} is {article} {spec.name} model: --top/--corpus search a corpus with a "
                           f"{needs} model; this one takes {takes}")


def check_model_task(model_task: TaskSpec | None, configured: str, source: str) -> None:
    """Refuse, in one line, a model made for another task than the run's (an embedding model given a
    classification task, or the reverse): the two text tasks take the same inputs, so nothing else would
    stop the stages from scoring vectors as logits. `model_task` None: the model does not say."""
    if model_task is None or model_task.name == configured:
        return
    article = "an" if model_task.name[0] in "aeiou" else "a"
    raise TrtEdgeError(f"{source} is {article} {model_task.name} model, the task is {configured}; set task.type: "
                       f"{model_task.name} or give a {configured} model")


def task_for_inputs(input_names: list[str], source: str) -> TaskSpec:
    """The task whose required inputs an exported graph takes (stages that get only an ONNX file)."""
    for spec in TASKS.values():
        if all(n in input_names for n in spec.required_inputs) and all(n in spec.input_names for n in input_names):
            return spec
    known = "; ".join(f"{s.name}: {list(s.required_inputs)}" for s in TASKS.values())
    raise TrtEdgeError(f"{source}: inputs {input_names} match no task ({known}); export it with `trt-edge export`")


def task_for_io(input_names: Sequence[str], output_names: Iterable[str]) -> TaskSpec | None:
    """The task whose required inputs and whose output a model has, with no input the task does not
    declare (two tasks take the same text inputs: the output tells them apart); None when none fits."""
    outputs = set(output_names)
    for spec in TASKS.values():
        if spec.output in outputs and all(n in input_names for n in spec.required_inputs) \
                and all(n in spec.input_names for n in input_names):
            return spec
    return None


def task_for_onnx(model: Any, source: str) -> TaskSpec:
    """The task of an ONNX ModelProto: the `trt_edge.task` its exporter recorded, else the task whose inputs
    and output the graph has (`task_for_io`), else `task_for_inputs` on its inputs (initializers excluded)."""
    recorded = {p.key: p.value for p in model.metadata_props}.get("trt_edge.task")
    if recorded in TASKS:
        return TASKS[recorded]
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    found = task_for_io(names, (o.name for o in model.graph.output))
    return found if found is not None else task_for_inputs(names, source)


def task_for_manifest(manifest: dict[str, Any]) -> TaskSpec | None:
    """The task of a TensorRT plan, from its manifest (`model.plan.json`): the `task` it records, else the
    task whose inputs and output the engine's recorded I/O has; None when it says neither (a manifest a
    trtexec build filled in has no I/O)."""
    recorded = manifest.get("task")
    if isinstance(recorded, str) and recorded in TASKS:
        return TASKS[recorded]
    io = [t for t in manifest.get("io") or [] if isinstance(t, dict) and isinstance(t.get("name"), str)]
    inputs = [t["name"] for t in io if t.get("mode") == "input"]
    outputs = [t["name"] for t in io if t.get("mode") == "output"]
    return task_for_io(inputs, outputs) if inputs and outputs else None


def describe_feed(feed: dict[str, Any], batch: int, sequence: int) -> str:
    """A timed feed's shape in its task's words (`b1 s64`, `b1 224x224`: `TaskSpec.describe_shape`), for the
    profile and the pipeline's comparison; `b1 s64` for inputs of no known task."""
    try:
        spec = task_for_inputs(list(feed), "the timed model")
    except TrtEdgeError:
        return f"b{batch} s{sequence}"
    return spec.describe_shape(batch, sequence, feed[spec.first_fed(feed)].shape)


def padding_mask_input(input_names: Iterable[str]) -> str | None:
    """The key-padding mask among a graph's (or a feed's) inputs: the `length_input` of the task those
    inputs belong to, or None (an image task, or a graph exported without one). The attention rewrites,
    the Q/DQ placement and the width importance ask this instead of naming the mask."""
    names = set(input_names)
    for spec in TASKS.values():
        if spec.length_input is not None and spec.length_input in names:
            return spec.length_input
    return None


def value_inputs(input_names: Iterable[str]) -> list[str]:
    """The inputs whose values are the example itself (token ids, segment ids, pixels): every input but
    the padding mask. Q/DQ placement follows their values to tell them from the mask's path."""
    mask = padding_mask_input(input_names)
    return [n for n in input_names if n != mask]


def task_for_model_folder(folder: Path) -> TaskSpec | None:
    """The task a Hugging Face folder's preprocessor belongs to (None when it carries none)."""
    for spec in TASKS.values():
        if spec.preprocessor.present(folder):
            return spec
    return None


def task_max_length(config: Any, record: dict[str, Any] | None = None) -> int:
    """The one derivation of `max_length` for stages that get a model file: the run config's
    `task.max_length` when it has a task section, else the one the stage that wrote the model recorded
    (`record`, its stage.json), else the default."""
    if "task" in config.raw or record is None:
        return int(config.section("task").max_length)
    task = (record.get("config") or {}).get("task") or {}
    return int(task.get("max_length") or config.section("task").max_length)


def recorded_stage(model_file: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The stage.json beside a model file, or None (a bare file)."""
    import json

    path = Path(model_file).parent / "stage.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def sequence_profile(max_length: int) -> list[int]:
    """min/opt/max of the `sequence` axis when the config gives none: [1, max_length // 2, max_length].
    The one place `max_length` turns into engine shapes (build plan, bundle, profile sweeps)."""
    return [1, max(1, max_length // 2), max_length]


def preprocessor_dir(model_file: str | os.PathLike[str], explicit: str | os.PathLike[str] | None = None) -> Path:
    """The preprocessor folder of a model file (ONNX or plan): `explicit`, else the `preprocessor`
    artifact the stage that wrote the file names in its `stage.json`, else `preprocessor/` or (an
    on-device bundle, a build folder: a text model's, or an image model's written before it said
    `preprocessor/`) `tokenizer/` beside the file, else the file's own folder when the preprocessor
    files lie there. Never a search through other stages' folders."""
    import json

    if explicit:
        path = Path(str(explicit))
        if str(explicit).startswith("demo:"):
            from trt_edge.modeling.folder import resolve_model_path

            path = resolve_model_path(str(explicit))
        if not any(s.preprocessor.present(path) for s in TASKS.values()):
            raise TrtEdgeError(f"{path}: no tokenizer files or preprocessor_config.json in this folder")
        return path
    model = Path(model_file)
    stage_file = model.parent / "stage.json"
    if stage_file.is_file():
        try:
            record = json.loads(stage_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise TrtEdgeError(f"{stage_file}: unreadable ({exc})") from exc
        rel = (record.get("artifacts") or {}).get("preprocessor")
        if isinstance(rel, str) and (model.parent / rel).is_dir():
            return model.parent / rel
    for name in (PREPROCESSOR_DIR, BUNDLE_PREPROCESSOR_DIR):
        beside = model.parent / name
        if beside.is_dir():
            return beside
    if any(s.preprocessor.present(model.parent) for s in TASKS.values()):  # a hand-made folder: files beside
        return model.parent
    raise TrtEdgeError(f"{model}: no preprocessor beside it ({PREPROCESSOR_DIR}/ or a stage.json naming one); "
                       "export the model with `trt-edge export` (which carries it), or pass --tokenizer FOLDER")
