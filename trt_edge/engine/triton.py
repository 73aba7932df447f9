"""A Triton Inference Server model repository, generated from what the kit already wrote and checked.

Users who serve with Triton write `config.pbtxt` by hand (triton-inference-server/server#3584: "no utility to
generate config.pbtxt") and get the inputs, dims or batch bound subtly wrong. Everything such a file needs
is already recorded next to the model: the manifest's (or the ONNX's) I/O names, types and shapes, the
optimization profile's batch range, the task and its preprocessor. `write_repository` turns one source into
a repository, one folder per model (`NAME/config.pbtxt`, `NAME/1/model.plan|model.onnx`):

- an on-device bundle (`trt-edge build` without TensorRT): every file is checked against `SHA256SUMS`
  first. The plan's config takes its I/O from the bundle's ONNX and its batch bound from `plan.json`'s
  profile (the engine built from it has exactly that profile); `model.plan` is copied in when
  `build_on_device.sh` has built one in the bundle's `engine/` (its manifest's sha256 checked), else the
  README says where to put it. The bundle's ONNX is also served by ONNX Runtime on the CPU: the fallback on
  a device without the engine.
- an engine folder (`model.plan` + `model.plan.json`): the plan's sha256 must be the manifest's; the I/O are
  the manifest's (TensorRT's own shapes and profile 0). A trtexec build records no I/O: then the bundle the
  folder sits in (`bundle/engine/`, build_on_device.sh's default) gives them, else it is refused.
- a stage folder: `build` (its bundle or its plan), `calibrate` (the CPU artifact `model.cpu.onnx`),
  `export` (`model.onnx`); the folder must hash to the `outputs_sha256` its stage.json records.

Artifacts are copied, never moved, and each copy is hashed again. The CPU artifact's session hint (ONNX
Runtime optimizers to disable, `runtime.ort.DISABLED_OPTIMIZERS_KEY`) has no exact Triton setting: the
ONNX Runtime backend takes only a graph optimization level, so the config asks for level -1 (basic: no
extended fusions, the one it names included; the file already holds the transformer fusions the CPU target
made) and records the exact list as a parameter. Each `config.pbtxt` is parsed with Triton's own
`model_config.proto` (vendored in `trt_edge/data/triton/`) through protobuf's `text_format` before the
repository is kept, and compared field by field with what was meant. No Triton server serves a model here
(docs/triton.md says what a server binary, where one exists, checks in the tests).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trt_edge.engine.bundle import CHECKSUMS, ONNX_NAME, PLAN_JSON, TEMPLATE, verify_bundle
from trt_edge.engine.manifest import manifest_path_for, read_manifest
from trt_edge.engine.onnxinfo import external_data_files, onnx_inputs, onnx_outputs, onnx_task
from trt_edge.engine.plan import BuildPlan, InputProfile, OnnxInput
from trt_edge.errors import TrtEdgeError
from trt_edge.files import atomic_write_text, sha256_file, sha256_tree
from trt_edge.stage import StageRecord, read_stage, stage_output

if TYPE_CHECKING:
    from trt_edge.tasks.spec import TaskSpec

STAGE = "triton"
CONFIG_FILE = "config.pbtxt"
README = "README.txt"
LABELS_FILE = "labels.txt"
VERSION = "1"
PLAN_FILE = "model.plan"
PROTO_PACKAGE = "inference"
# Where the engine of a bundle lands when build_on_device.sh is run without an argument.
BUNDLE_ENGINE_DIR = "engine"

# ONNX element types (`onnxinfo` names) and TensorRT data types (`builder.engine_io` names) -> Triton's.
_ONNX_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "float64": "TYPE_FP64", "bfloat16": "TYPE_BF16",
               "int64": "TYPE_INT64", "int32": "TYPE_INT32", "int16": "TYPE_INT16", "int8": "TYPE_INT8",
               "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL"}
_TRT_TYPES = {"float": "TYPE_FP32", "half": "TYPE_FP16", "bf16": "TYPE_BF16", "int64": "TYPE_INT64",
              "int32": "TYPE_INT32", "int8": "TYPE_INT8", "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL"}
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True)
class Tensor:
    """One model input or output as Triton declares it: its Triton data type and its full shape (batch axis
    included, -1 where the size is dynamic)."""

    name: str
    data_type: str
    shape: tuple[int, ...]


@dataclass
class TritonModel:
    """One model of the repository, as data: rendered to `config.pbtxt`, then parsed back and compared."""

    name: str
    backend: str  # "tensorrt" or "onnxruntime"
    inputs: list[Tensor]
    outputs: list[Tensor]
    max_batch_size: int  # 0: no batch axis Triton may batch on
    preferred_batch: list[int] = field(default_factory=list)
    model_file: Path | None = None  # None: the plan is built later, on the device
    model_sha256: str | None = None
    extra_files: list[Path] = field(default_factory=list)  # the ONNX's external data, copied beside it
    parameters: dict[str, str] = field(default_factory=dict)
    graph_level: int | None = None
    labels: list[str] | None = None
    label_output: str | None = None
    preprocessor: Path | None = None
    preprocessor_name: str | None = None

    @property
    def platform(self) -> str:
        return "tensorrt_plan" if self.backend == "tensorrt" else "onnxruntime_onnx"

    @property
    def filename(self) -> str:
        return PLAN_FILE if self.backend == "tensorrt" else ONNX_NAME

    @property
    def kind(self) -> str:
        return "KIND_GPU" if self.backend == "tensorrt" else "KIND_CPU"

    def dims(self, tensor: Tensor) -> list[int]:
        """The dims Triton wants: without the batch axis when the model batches."""
        return list(tensor.shape[1:] if self.max_batch_size > 0 else tensor.shape)


# ---------------------------------------------------------------------------------------------------
# Triton's schema: the vendored descriptor set, loaded into a pool of its own.


@functools.lru_cache(maxsize=1)
def model_config_class() -> Any:
    """The `inference.ModelConfig` message class, built from Triton's `model_config.proto` (compiled into
    `trt_edge/data/triton/model_config.descriptor.pb`; see the README there) in a private descriptor pool,
    so it neither needs generated code matching this protobuf nor clashes with another copy of the schema."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    data = (resources.files("trt_edge") / "data" / "triton" / "model_config.descriptor.pb").read_bytes()
    files = descriptor_pb2.FileDescriptorSet.FromString(data)
    pool = descriptor_pool.DescriptorPool()
    for proto in files.file:
        pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PROTO_PACKAGE}.ModelConfig"))


def parse_config(text: str, source: str = CONFIG_FILE) -> Any:
    """Parse a `config.pbtxt` into Triton's `ModelConfig`; an unknown field, a bad enum value or a syntax
    error is refused in one line (what Triton's own loader would reject)."""
    from google.protobuf import text_format

    message = model_config_class()()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise TrtEdgeError(f"{source}: not a valid Triton model configuration ({exc})") from exc
    return message


# ---------------------------------------------------------------------------------------------------
# Rendering and checking one config.pbtxt


def _quote(text: str) -> str:
    """A protobuf text-format string literal: printable ASCII kept, everything else as octal UTF-8 bytes."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        out.append(char if 32 <= byte < 127 and char not in '"\\' else f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def render_config(model: TritonModel) -> str:
    """`config.pbtxt` for `model`, in the layout Triton's documentation uses."""
    lines = [f"# Generated by trt-edge from {model.parameters.get('trt_edge.source', 'its source')}.",
             f"name: {_quote(model.name)}", f"platform: {_quote(model.platform)}",
             f"backend: {_quote(model.backend)}", f"default_model_filename: {_quote(model.filename)}",
             f"max_batch_size: {model.max_batch_size}"]

    def tensors(key: str, items: Sequence[Tensor]) -> None:
        lines.append(f"{key} [")
        for k, t in enumerate(items):
            label = (f"\n    label_filename: {_quote(LABELS_FILE)}"
                     if key == "output" and t.name == model.label_output and model.labels else "")
            dims = ", ".join(str(d) for d in model.dims(t))
            lines.append(f"  {{\n    name: {_quote(t.name)}\n    data_type: {t.data_type}\n"
                         f"    dims: [ {dims} ]{label}\n  }}{',' if k + 1 < len(items) else ''}")
        lines.append("]")

    tensors("input", model.inputs)
    tensors("output", model.outputs)
    if model.max_batch_size > 0:
        preferred = "".join(f"\n  preferred_batch_size: {b}" for b in model.preferred_batch)
        lines.append(f"dynamic_batching {{{preferred}\n}}")
    lines.append(f"instance_group [\n  {{\n    count: 1\n    kind: {model.kind}\n  }}\n]")
    if model.graph_level is not None:
        lines.append(f"optimization {{\n  graph {{\n    level: {model.graph_level}\n  }}\n}}")
    for key, value in model.parameters.items():
        lines.append(f"parameters {{\n  key: {_quote(key)}\n  value: {{ string_value: {_quote(value)} }}\n}}")
    return "\n".join(lines) + "\n"


def check_config(message: Any, model: TritonModel, source: str) -> None:
    """Compare a parsed `ModelConfig` with the model it was rendered from: every field this module sets."""
    problems: list[str] = []

    def same(what: str, got: Any, want: Any) -> None:
        if got != want:
            problems.append(f"{what} is {got!r}, expected {want!r}")

    data_type = model_config_class().DESCRIPTOR.file.pool.FindEnumTypeByName(f"{PROTO_PACKAGE}.DataType")
    same("name", message.name, model.name)
    same("platform", message.platform, model.platform)
    same("backend", message.backend, model.backend)
    same("default_model_filename", message.default_model_filename, model.filename)
    same("max_batch_size", message.max_batch_size, model.max_batch_size)
    for key, parsed, wanted in (("input", message.input, model.inputs), ("output", message.output, model.outputs)):
        same(f"{key} names", [t.name for t in parsed], [t.name for t in wanted])
        for p, w in zip(parsed, wanted, strict=False):
            same(f"{key} {w.name} data_type", data_type.values_by_number[p.data_type].name, w.data_type)
            same(f"{key} {w.name} dims", list(p.dims), model.dims(w))
    labelled = [t.name for t in message.output if t.label_filename]
    same("outputs with labels", labelled, [model.label_output] if model.labels and model.label_output else [])
    same("dynamic batching", message.HasField("dynamic_batching"), model.max_batch_size > 0)
    if model.max_batch_size > 0:
        same("preferred_batch_size", list(message.dynamic_batching.preferred_batch_size), model.preferred_batch)
    group = model_config_class().DESCRIPTOR.fields_by_name["instance_group"].message_type.enum_types_by_name["Kind"]
    same("instance kinds", [group.values_by_number[g.kind].name for g in message.instance_group], [model.kind])
    same("graph level", message.optimization.graph.level if message.HasField("optimization") else None,
         model.graph_level)
    same("parameters", {k: v.string_value for k, v in message.parameters.items()}, model.parameters)
    if problems:
        raise TrtEdgeError(f"{source}: the generated config does not say what was meant: {'; '.join(problems)}")


# ---------------------------------------------------------------------------------------------------
# Sources


def _triton_type(dtype: str, table: dict[str, str], tensor: str, source: Path) -> str:
    if dtype not in table:
        raise TrtEdgeError(f"{source}: tensor {tensor!r} is {dtype}, which Triton has no data type for; export the "
                           "model with float32/float16 or integer I/O")
    return table[dtype]


def _onnx_tensors(items: Sequence[OnnxInput], source: Path) -> list[Tensor]:
    return [Tensor(t.name, _triton_type(t.dtype, _ONNX_TYPES, t.name, source),
                   tuple(d if isinstance(d, int) else -1 for d in t.dims)) for t in items]


def _onnx_batching(items: Sequence[OnnxInput]) -> bool:
    """Whether every I/O tensor's first axis is the task's dynamic batch axis (Triton batches on it)."""
    from trt_edge.tasks.spec import BATCH_AXIS

    return bool(items) and all(t.dims and t.dims[0] == BATCH_AXIS for t in items)


def _profile_batch(profiles: Sequence[InputProfile]) -> tuple[int, list[int]] | None:
    """(max batch, preferred batches) from the profile's batch axis: max is the least max over the inputs,
    preferred the profile's opt (where TensorRT tuned its kernels) and max."""
    if not profiles or any(not p.max for p in profiles):
        return None
    top = min(p.max[0] for p in profiles)
    opt = min(p.opt[0] for p in profiles)
    return top, sorted({b for b in (opt, top) if 1 < b <= top})


def _sequence_max(profiles: Sequence[InputProfile], spec: TaskSpec | None) -> int | None:
    """The longest sequence the profile admits (the tokenizer's truncation length), for text tasks."""
    from trt_edge.tasks.spec import SEQUENCE_AXIS

    if spec is None:
        return None
    for inp in spec.inputs:
        if SEQUENCE_AXIS in inp.axes:
            for p in profiles:
                if p.name == inp.name:
                    return p.max[inp.axes.index(SEQUENCE_AXIS)]
    return None


def _preprocessing(model: TritonModel, model_file: Path, spec: TaskSpec | None, max_length: int | None,
                   source: Path) -> None:
    """Fill the preprocessing note (parameters), the labels of a classifier and the preprocessor to carry."""
    from trt_edge.tasks.spec import BATCH_AXIS, preprocessor_dir

    model.parameters["trt_edge.source"] = str(source)
    if model.model_sha256:
        model.parameters["trt_edge.model_sha256"] = model.model_sha256
    if spec is None:
        model.parameters["trt_edge.preprocessing"] = "unknown task: feed the tensors the inputs name"
        return
    model.parameters["trt_edge.task"] = spec.name
    try:
        folder: Path | None = preprocessor_dir(model_file)
    except TrtEdgeError:
        folder = None
    if folder is not None and not spec.preprocessor.present(folder):
        folder = None
    if folder is not None:
        model.preprocessor, model.preprocessor_name = folder, spec.bundle_dir
        model.parameters["trt_edge.preprocessor"] = spec.bundle_dir
    from trt_edge.tasks.adapter import adapter_for

    if adapter_for(spec).text_examples:
        how = (f"tokenize with the {spec.preprocessor.kind} in {spec.bundle_dir}/ (transformers AutoTokenizer, or "
               "the app's own tokenizer reading tokenizer.json)" if folder is not None else
               "tokenize with the model's own tokenizer (none was carried with the model)")
        how += (f", truncation to {max_length} tokens; pad every request to {max_length} tokens so that Triton's "
                "dynamic batcher, which batches only requests of one shape, can combine them" if max_length else "")
        model.parameters["trt_edge.preprocessing"] = how + f"; feed {', '.join(t.name for t in model.inputs)}"
        if max_length:
            model.parameters["trt_edge.max_length"] = str(max_length)
    else:
        loader = spec.preprocessor.loader.rsplit(":", 1)[-1]
        feeds = ", ".join(f"{t.name} {t.data_type.removeprefix('TYPE_').lower()}" for t in model.inputs)
        model.parameters["trt_edge.preprocessing"] = (
            f"prepare each input with the {spec.preprocessor.kind} in {spec.bundle_dir}/ "
            f"({', '.join(spec.preprocessor.files)}, transformers {loader}); feed {feeds}"
            if folder is not None else
            f"prepare each input as the model's {spec.preprocessor.kind} does (none was carried with the model)")
    out = next((t for t in model.outputs if t.name == spec.output), None)
    if spec.pooled:
        model.parameters["trt_edge.postprocessing"] = f"{spec.output} is the sentence vector (pooling in the graph)"
    elif spec.output_axes == (BATCH_AXIS, "classes") and out is not None and len(out.shape) == 2 and out.shape[1] > 0:
        from trt_edge.runtime.text import label_names_for

        model.parameters["trt_edge.postprocessing"] = (f"softmax over {spec.output}; class names in {LABELS_FILE} "
                                                       "(Triton's classification extension reads it)")
        if folder is not None:
            model.labels = label_names_for(folder, out.shape[1])
            model.label_output = out.name
    else:
        model.parameters["trt_edge.postprocessing"] = f"{spec.output} axes {', '.join(spec.output_axes)}"


def _onnx_model(name: str, onnx: Path, source: Path, default_batch: int, max_length: int | None,
                disabled: Sequence[str] = (), preferred: Sequence[int] = ()) -> TritonModel:
    """An ONNX file served by ONNX Runtime on the CPU."""
    inputs, outputs = onnx_inputs(onnx), onnx_outputs(onnx)
    batching = _onnx_batching([*inputs, *outputs])
    model = TritonModel(name, "onnxruntime", _onnx_tensors(inputs, onnx), _onnx_tensors(outputs, onnx),
                        default_batch if batching else 0,
                        [b for b in preferred if 1 < b <= default_batch] if batching else [],
                        onnx, sha256_file(onnx), external_data_files(onnx))
    if disabled:
        model.graph_level = -1
        from trt_edge.runtime.ort import DISABLED_OPTIMIZERS_KEY

        model.parameters[DISABLED_OPTIMIZERS_KEY] = ",".join(disabled)
    _preprocessing(model, onnx, onnx_task(onnx), max_length, source)
    return model


def _disabled_optimizers(onnx: Path) -> list[str]:
    """The session hint the CPU target wrote into the file's metadata (`runtime.ort.DISABLED_OPTIMIZERS_KEY`)."""
    import onnx as onnx_lib

    from trt_edge.runtime.ort import DISABLED_OPTIMIZERS_KEY

    model = onnx_lib.load(str(onnx), load_external_data=False)
    hint = {p.key: p.value for p in model.metadata_props}.get(DISABLED_OPTIMIZERS_KEY, "")
    return [n.strip() for n in hint.split(",") if n.strip()]


def _built_plan(folder: Path) -> tuple[Path, dict[str, Any]]:
    """An engine folder's plan and manifest, the plan's sha256 checked against the manifest's."""
    plan = folder / PLAN_FILE
    manifest = read_manifest(manifest_path_for(plan))
    if manifest.get("status") != "built":
        raise TrtEdgeError(f"{folder}: its manifest is a {manifest.get('status')!r} manifest, not a built plan's")
    if not plan.is_file():
        raise TrtEdgeError(f"{folder}: the manifest names {PLAN_FILE}, which is missing; rebuild the engine")
    recorded = (manifest.get("plan") or {}).get("sha256")
    if not recorded or recorded != sha256_file(plan):
        raise TrtEdgeError(f"{plan}: its sha256 does not match the manifest's ({str(recorded)[:12]}…): the plan was "
                           "replaced or edited since it was built; rebuild it")
    return plan, manifest


def _plan_from_manifest(name: str, plan: Path, manifest: dict[str, Any], source: Path,
                        bundle: Path | None) -> TritonModel:
    """The TensorRT model of a built plan: I/O from the manifest (or, for a trtexec build, from its bundle)."""
    from trt_edge.tasks.spec import task_for_manifest

    io = [t for t in manifest.get("io") or [] if isinstance(t, dict)]
    if not io:
        if bundle is None:
            raise TrtEdgeError(f"{manifest_path_for(plan)}: lists no inputs and outputs (a trtexec build); give the "
                               "bundle the engine was built from instead (--bundle BUNDLE, with the plan in "
                               f"BUNDLE/{BUNDLE_ENGINE_DIR}/)")
        model = _plan_from_bundle(name, bundle, source)
        model.model_file, model.model_sha256 = plan, sha256_file(plan)
        model.parameters["trt_edge.model_sha256"] = model.model_sha256
        return model
    try:
        inputs = [Tensor(str(t["name"]), _triton_type(str(t["dtype"]), _TRT_TYPES, str(t["name"]), plan),
                         tuple(int(d) for d in t["shape"])) for t in io if t.get("mode") == "input"]
        outputs = [Tensor(str(t["name"]), _triton_type(str(t["dtype"]), _TRT_TYPES, str(t["name"]), plan),
                          tuple(int(d) for d in t["shape"])) for t in io if t.get("mode") == "output"]
        profiles = [InputProfile.from_dict({"name": t["name"], **t["profile"]}) for t in io
                    if t.get("mode") == "input" and isinstance(t.get("profile"), dict)]
    except (KeyError, TypeError, ValueError) as exc:
        raise TrtEdgeError(f"{manifest_path_for(plan)}: malformed I/O entry ({exc}); rebuild the engine") from exc
    batching = bool(inputs) and all(t.shape and t.shape[0] == -1 for t in [*inputs, *outputs]) \
        and len(profiles) == len(inputs)
    batch = _profile_batch(profiles) if batching else None
    spec = task_for_manifest(manifest)
    model = TritonModel(name, "tensorrt", inputs, outputs, batch[0] if batch else 0, batch[1] if batch else [],
                        plan, sha256_file(plan))
    _preprocessing(model, plan, spec, _sequence_max(profiles, spec), source)
    return model


def _plan_from_bundle(name: str, bundle: Path, source: Path) -> TritonModel:
    """The TensorRT model a bundle will build: I/O from its ONNX, batch bound from plan.json's profile."""
    onnx = bundle / ONNX_NAME
    try:
        plan = BuildPlan.from_dict(_read_json(bundle / PLAN_JSON))
    except (KeyError, TypeError, ValueError) as exc:
        raise TrtEdgeError(f"{bundle / PLAN_JSON}: not a build plan ({exc}); rebuild the bundle") from exc
    inputs, outputs = onnx_inputs(onnx), onnx_outputs(onnx)
    batch = _profile_batch(plan.profiles) if _onnx_batching([*inputs, *outputs]) else None
    spec = onnx_task(onnx)
    model = TritonModel(name, "tensorrt", _onnx_tensors(inputs, onnx), _onnx_tensors(outputs, onnx),
                        batch[0] if batch else 0, batch[1] if batch else [])
    _preprocessing(model, onnx, spec, _sequence_max(plan.profiles, spec), source)
    return model


def _read_json(path: Path) -> dict[str, Any]:
    from trt_edge.guard import load_json

    data = load_json(path, path.name)
    if not isinstance(data, dict):
        raise TrtEdgeError(f"{path}: not a JSON object; rebuild it")
    return data


def _is_bundle(folder: Path) -> bool:
    return (folder / CHECKSUMS).is_file() or (folder / TEMPLATE).is_file()


def _bundle_models(bundle: Path, name: str, source: Path, default_batch: int) -> list[TritonModel]:
    """The plan (built later, or already in `engine/`) and the bundle's ONNX on ONNX Runtime."""
    if not (bundle / CHECKSUMS).is_file() or not (bundle / TEMPLATE).is_file():
        raise TrtEdgeError(f"{bundle}: no {CHECKSUMS} and {TEMPLATE} (the bundle's manifest), so it cannot be "
                           "verified; rebuild the bundle with trt-edge build")
    verify_bundle(bundle)
    engine = bundle / BUNDLE_ENGINE_DIR
    if manifest_path_for(engine / PLAN_FILE).is_file():
        plan, manifest = _built_plan(engine)
        trt = _plan_from_manifest(f"{name}_trt", plan, manifest, source, bundle)
    else:
        trt = _plan_from_bundle(f"{name}_trt", bundle, source)
    length = trt.parameters.get("trt_edge.max_length")
    cpu = _onnx_model(f"{name}_onnx", bundle / ONNX_NAME, source, trt.max_batch_size or default_batch,
                      int(length) if length else None)
    return [trt, cpu]


def _stage_models(folder: Path, name: str, default_batch: int) -> list[TritonModel]:
    record = read_stage(folder)
    if record.get("outputs_sha256") != sha256_tree(folder):
        raise TrtEdgeError(f"{folder}: its files changed since the {record['stage']} stage wrote them (sha256 differs "
                           "from stage.json's outputs_sha256); rerun the stage")
    artifacts: dict[str, str] = record["artifacts"]
    stage = record["stage"]
    max_length = ((record.get("config") or {}).get("task") or {}).get("max_length")
    length = int(max_length) if isinstance(max_length, int) else None
    if stage == "build":
        if "bundle" in artifacts:
            return _bundle_models(folder / artifacts["bundle"], name, folder, default_batch)
        plan, manifest = _built_plan(folder)
        return [_plan_from_manifest(f"{name}_trt", plan, manifest, folder, None)]
    if stage == "calibrate":
        if "onnx_cpu" not in artifacts:
            raise TrtEdgeError(f"{folder}: this calibrate run made no CPU artifact (calibrate.targets without cpu); "
                               "give its build folder for the TensorRT model, or calibrate for the cpu target")
        onnx = folder / artifacts["onnx_cpu"]
        return [_onnx_model(f"{name}_cpu", onnx, folder, default_batch, length, _disabled_optimizers(onnx))]
    if stage == "export" and "onnx" in artifacts:
        return [_onnx_model(f"{name}_onnx", folder / artifacts["onnx"], folder, default_batch, length)]
    raise TrtEdgeError(f"{folder}: a {stage!r} stage folder; give a bundle, an engine folder, or a build, calibrate "
                       "or export stage folder")


def source_models(source: Path, name: str | None = None, default_batch: int | None = None) -> list[TritonModel]:
    """The models of a repository generated from `source` (see the module docstring), every artifact's
    sha256 checked against the manifest or record that describes it."""
    from trt_edge.engine.config import BuildConfig

    batch = int(default_batch) if default_batch is not None else int(BuildConfig().batch[-1])
    if not source.is_dir():
        raise TrtEdgeError(f"--bundle {source}: no such folder (give an on-device bundle, an engine folder with "
                           "model.plan.json, or a build, calibrate or export stage folder)")
    base = name or "model"
    if (source / "stage.json").is_file():
        models = _stage_models(source, base, batch)
    elif _is_bundle(source):
        models = _bundle_models(source, base, source, batch)
    elif manifest_path_for(source / PLAN_FILE).is_file():
        plan, manifest = _built_plan(source)
        parent = source.parent if _is_bundle(source.parent) else None
        if parent is not None:
            verify_bundle(parent)
        models = [_plan_from_manifest(f"{base}_trt", plan, manifest, source, parent)]
    else:
        raise TrtEdgeError(f"--bundle {source}: no manifest here (no model.plan.json, no bundle {TEMPLATE} with "
                           f"{CHECKSUMS}, no stage.json); give what trt-edge build, calibrate or export wrote")
    task = models[0].parameters.get("trt_edge.task")
    if name is None and task:  # by default the models are named after their task: text_classification_trt
        for m in models:
            m.name = task.replace("-", "_") + m.name[len(base):]
    return models


def check_name(name: str) -> str:
    """A model name Triton and every file system take (letters, digits, `_`, `.`, `-`)."""
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise TrtEdgeError(f"--name {name!r}: use letters, digits, '_', '.' and '-' (up to 100), not starting with "
                           "'.' or '-'")
    return name


# ---------------------------------------------------------------------------------------------------
# Writing the repository


def _copy_checked(src: Path, dst: Path, sha256: str | None) -> None:
    """Copy (never move) an artifact and check the copy hashes as the source was recorded."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    if sha256 is not None and sha256_file(dst) != sha256:
        raise TrtEdgeError(f"{src}: changed while it was copied (sha256 differs); run the command again")


def check_repository_output(out: Path, source: Path) -> None:
    """Refuse an output folder that exists and that this command did not write (another stage's folder
    included), and one inside the source or holding it."""
    if out.exists() and out.is_dir() and any(not e.name.startswith(".") for e in out.iterdir()):
        stage = None
        if (out / "stage.json").is_file():
            try:
                stage = read_stage(out)["stage"]
            except TrtEdgeError:
                stage = None
        if stage != STAGE:
            raise TrtEdgeError(f"--out {out} exists and was not written by trt-edge triton"
                               f"{f' (it holds a {stage} stage)' if stage else ''}; choose a new or empty folder")
    src, dst = source.resolve(), out.resolve()
    if dst == src or src in dst.parents or dst in src.parents:
        raise TrtEdgeError(f"--out {out} and --bundle {source} overlap; write the repository to a folder of its own")


def write_repository(source: str | os.PathLike[str], out: str | os.PathLike[str], name: str | None = None,
                     max_batch: int | None = None) -> StageRecord:
    """Write a Triton model repository for `source` into `out` (all or nothing) and return its record.

    Every check comes first (output folder, name, sha256 of every artifact); then the models are copied,
    their `config.pbtxt` rendered, parsed with Triton's schema and compared with what was meant.
    """
    src, dest = Path(source), Path(out)
    if name is not None:
        check_name(name)
    if max_batch is not None and (isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1):
        raise TrtEdgeError(f"--max-batch takes a whole number of at least 1, got {max_batch!r}")
    check_repository_output(dest, src)
    models = source_models(src, name, max_batch)
    with stage_output(dest) as tmp:
        summary = []
        for model in models:
            folder = tmp / model.name
            (folder / VERSION).mkdir(parents=True)
            if model.model_file is not None:
                _copy_checked(model.model_file, folder / VERSION / model.filename, model.model_sha256)
                for data in model.extra_files:
                    _copy_checked(data, folder / VERSION / data.name, None)
            if model.preprocessor is not None and model.preprocessor_name:
                from trt_edge.tasks.spec import task_spec

                task_spec(model.parameters["trt_edge.task"]).preprocessor.copy(
                    model.preprocessor, folder / model.preprocessor_name)
            if model.labels:
                atomic_write_text(folder / LABELS_FILE, "".join(f"{label}\n" for label in model.labels))
            text = render_config(model)
            atomic_write_text(folder / CONFIG_FILE, text)
            check_config(parse_config((folder / CONFIG_FILE).read_text(encoding="utf-8"),
                                      f"{model.name}/{CONFIG_FILE}"), model, f"{model.name}/{CONFIG_FILE}")
            summary.append({"name": model.name, "platform": model.platform, "max_batch_size": model.max_batch_size,
                            "model_file": model.model_file is not None,
                            "inputs": [t.name for t in model.inputs], "outputs": [t.name for t in model.outputs]})
        atomic_write_text(tmp / README, render_readme(models, src))
        record = StageRecord(stage=STAGE, config={"name": name, "max_batch": max_batch},
                             inputs={"source": str(src)},
                             metrics={"models": summary, "validated_with": "model_config.proto (protobuf text_format)"},
                             artifacts={**{f"model_{m.name}": m.name for m in models}, "readme": README})
        record.write(tmp)
    return record


def render_readme(models: Sequence[TritonModel], source: Path) -> str:
    """The repository's README: what each model is, how to serve it, its preprocessing, what is unproven."""
    lines = ["Triton Inference Server model repository generated by trt-edge", "",
             f"Source: {source}", "", "Serve it (Triton's container, or tritonserver on the Jetson's JetPack build):",
             "  tritonserver --model-repository <this folder>", ""]
    for m in models:
        lines.append(f"{m.name}: {m.platform}, max_batch_size {m.max_batch_size}"
                     + (f", preferred batches {m.preferred_batch}" if m.preferred_batch else "")
                     + f", {m.kind}")
        lines += [f"  input  {t.name} {t.data_type} {list(m.dims(t))}" for t in m.inputs]
        lines += [f"  output {t.name} {t.data_type} {list(m.dims(t))}" for t in m.outputs]
        if m.model_file is None:
            lines.append(f"  NO PLAN YET: run build_on_device.sh in the bundle on the Jetson, then copy "
                         f"{BUNDLE_ENGINE_DIR}/{PLAN_FILE} to {m.name}/{VERSION}/{PLAN_FILE} (or generate this "
                         "repository again from the bundle, which then picks it up and checks its manifest). "
                         "Until then start tritonserver with --exit-on-error=false, or load only the other models "
                         "(--model-control-mode=explicit --load-model=NAME).")
        for key in ("trt_edge.task", "trt_edge.preprocessing", "trt_edge.max_length", "trt_edge.postprocessing"):
            if key in m.parameters:
                lines.append(f"  {key.removeprefix('trt_edge.')}: {m.parameters[key]}")
        if m.graph_level is not None:
            disabled = m.parameters.get("trt_edge.ort.disabled_optimizers")
            lines.append(f"  The CPU artifact asks ONNX Runtime to disable {disabled}; Triton's backend has no such "
                         "setting, so optimization.graph.level is -1 (basic: no extended fusions at all).")
        lines.append("")
    lines += ["Each config.pbtxt was parsed with Triton's model_config.proto (protobuf text_format) and compared",
              "with the manifest's inputs, outputs, dims, data types and batch bound. Triton itself did not run",
              "here: loading the models, the TensorRT plan's compatibility with the server's TensorRT and the",
              "served results are unproven until tritonserver loads this folder."]
    return "\n".join(lines) + "\n"
