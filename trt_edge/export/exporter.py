"""A Hugging Face classifier folder to one ONNX file with the kit's contract.

The contract every later stage relies on (calibration, the TensorRT build, the ONNX Runtime runner) is
the task spec's (`trt_edge.tasks.spec`): its input names, dtypes and named dynamic axes (text:
`batch` and `sequence`; images: `batch`), output `logits` [batch, classes] (a sentence-embedding model:
`sentence_embedding` [batch, dim], pooling and normalisation inside the graph), opset >= 17, int64 or int32
integer inputs, one self-contained file unless the weights pass the 2 GB protobuf limit (then
`<name>.data` beside it).

`torch.onnx.export(dynamo=True)` is tried first because it is where PyTorch's exporter is going; the
TorchScript exporter is the fallback for models the dynamo path cannot trace. Both go through the same
post-processing (names, axes, clean-up, checker), so which one ran never changes the contract.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trt_edge.errors import TrtEdgeError
from trt_edge.files import atomic_write_bytes
from trt_edge.log import get_logger
from trt_edge.tasks.spec import TaskSpec, task_spec

log = get_logger("export")

# Protobuf cannot serialise a message over 2 GiB: larger models keep their weights in external data.
EXTERNAL_DATA_THRESHOLD = 2 * 1024**3 - 64 * 1024**2


@dataclass
class ExportInfo:
    """What `export_onnx` wrote and how.

    onnx_path (Path): the written file. exporter (str): `dynamo` or `torchscript`. opset (int): the
    file's default-domain opset. input_names / output_names (list[str]): the graph's I/O.
    input_dtype (str): `int64` or `int32`. onnx_bytes (int): size of the file plus external data.
    external_data (bool): whether weights live in `<name>.data`. label_names (list[str]): the class
    names of the logits, in order (empty for a pooled model: its output is a vector).
    fallback_reason (str | None): why dynamo was not used, when it failed.
    cleanup (dict): what the clean-up did (node counts before and after, the library used).
    """

    onnx_path: Path
    exporter: str
    opset: int
    input_names: list[str]
    output_names: list[str]
    input_dtype: str
    onnx_bytes: int
    external_data: bool
    label_names: list[str]
    fallback_reason: str | None = None
    cleanup: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["onnx_path"] = str(self.onnx_path)
        return data


def folder_label_names(model_dir: Path) -> list[str]:
    """Class names from the folder's `config.json` `id2label`, in index order (the logits' order)."""
    from trt_edge.tasks.models import resolve_model_path

    path = resolve_model_path(str(model_dir))
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise TrtEdgeError(f"{path}/config.json: unreadable ({exc})") from exc
    id2label = config.get("id2label") if isinstance(config, dict) else None
    if not id2label:
        raise TrtEdgeError(f"{path}: config.json has no id2label; this is not a classifier folder "
                           "(distill or fine-tune it first)")
    try:
        return [str(id2label[k]) for k in sorted(id2label, key=int)]
    except (TypeError, ValueError) as exc:
        raise TrtEdgeError(f"{path}/config.json: id2label keys must be integers ({exc})") from exc


def load_for_export(model_dir: str | Path, label_names: list[str] | None = None,
                    trust_remote_code: bool = False, task: str | None = None) -> Any:
    """Load the classifier the way every stage does, refusing a folder without a trained head. A pooled
    task (sentence embeddings) has no head and no label names: its model loads with its pooling."""
    from trt_edge.tasks.models import load_classifier

    if task_spec(task).pooled:
        labels: list[str] = []
    else:
        labels = label_names if label_names is not None else folder_label_names(Path(model_dir))
    loaded = load_classifier(model_dir, labels, trust_remote_code, task_spec(task).name)
    if not loaded.head_trained:
        raise TrtEdgeError(f"{loaded.path}: {loaded.head_note}; export needs a trained classifier "
                           "(run distill or fine-tune first)")
    return loaded


def model_input_names(model: Any, preprocessor: Any, spec: TaskSpec) -> list[str]:
    """The inputs the exported graph takes: the spec's required ones, and its optional ones that the
    preprocessor produces and the model's forward takes."""
    params = inspect.signature(model.forward).parameters
    produced = set(getattr(preprocessor, "model_input_names", None) or spec.required_inputs)
    names = [i.name for i in spec.inputs if not i.optional or (i.name in produced and i.name in params)]
    for name in names:
        if name not in params:
            raise TrtEdgeError(f"the model's forward takes no {name!r}, which a {spec.name} model must take")
    return names


def _wrapper(model: Any, names: list[str], int32_inputs: bool, spec: TaskSpec) -> Any:
    """A module whose positional inputs are the contract's names and whose one output is the spec's
    (`logits`, `sentence_embedding` of a pooled model, a detector's packed `detections`: `model_output`)."""
    import torch

    integer = {i.name for i in spec.inputs if i.dtype.startswith("int")}

    class LogitsOnly(torch.nn.Module):
        """Returns the spec's output tensor only; casts int32 integer inputs to the int64 embeddings need."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x0: Any, x1: Any = None, x2: Any = None) -> Any:
            given = dict(zip(names, (x0, x1, x2), strict=False))
            feeds = {n: (v.to(torch.int64) if int32_inputs and n in integer else v) for n, v in given.items()}
            return spec.model_output(self.inner(**feeds, return_dict=True))

    if len(names) > 3:
        raise RuntimeError(f"the export wrapper takes at most 3 inputs, the spec lists {names}")
    # Trap: eval() on the wrapper too, otherwise a fresh wrapper is in training mode and dropout is
    # traced into the graph.
    return LogitsOnly(model).eval()


def example_inputs(names: list[str], model_config: Any, int32_inputs: bool,
                   spec: TaskSpec, preprocessor: Any = None) -> tuple[Any, ...]:
    """The traced example, made by the task's adapter (token ids with padding; random pixels at the
    input size the preprocessor makes)."""
    from trt_edge.tasks.adapter import adapter_for

    tensors = adapter_for(spec).example_inputs(model_config, names, int32_inputs, preprocessor=preprocessor)
    return tuple(tensors[n] for n in names)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters warn about tracing details we handle (constant mask branches, opset conversion)."""
    import logging

    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _export_dynamo(wrapper: Any, args: tuple[Any, ...], names: list[str], opset: int,
                   spec: TaskSpec) -> Any:
    import onnx
    import torch

    dims = {axis: torch.export.Dim(axis) for axis in spec.dynamic_axes}
    dynamic_shapes = {f"x{k}": {i: dims[a] for i, a in enumerate(spec.input(n).axes_for(args[k].dim()))
                                if a in spec.input(n).dynamic} for k, n in enumerate(names)}
    with _quiet():
        program = torch.onnx.export(wrapper, args, None, dynamo=True, input_names=list(names),
                                    output_names=[spec.output], opset_version=opset,
                                    dynamic_shapes=dynamic_shapes, verbose=False)
    if program is None:
        raise RuntimeError("torch.onnx.export(dynamo=True) returned no program")
    model: onnx.ModelProto = program.model_proto
    return model


def _export_torchscript(wrapper: Any, args: tuple[Any, ...], names: list[str], opset: int, tmp: Path,
                        spec: TaskSpec) -> Any:
    import onnx
    import torch

    axes: dict[str, dict[int, str]] = {n: {i: a for i, a in enumerate(spec.input(n).axes_for(args[k].dim()))
                                           if a in spec.input(n).dynamic} for k, n in enumerate(names)}
    axes[spec.output] = {0: spec.output_axes[0]}
    path = tmp / "torchscript.onnx"
    export_kwargs: dict[str, Any] = {"input_names": list(names), "output_names": [spec.output],
                                     "opset_version": opset, "dynamic_axes": axes, "do_constant_folding": True}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        export_kwargs["dynamo"] = False
    with _quiet(), torch.no_grad():
        torch.onnx.export(wrapper, args, str(path), **export_kwargs)
    return onnx.load(str(path))


_ONNX_TYPES = {"int64": 7, "int32": 6, "float32": 1}


def _keep_contract_inputs(model: Any, names: list[str], int32_inputs: bool,
                          spec: TaskSpec) -> None:
    """Put back a contract input the exporter or onnxslim dropped because the model ignores it (DeBERTa-v2
    without token types under TorchScript), as an unused input: every runtime then feeds the same names
    whichever exporter ran. Inputs that are not a subset of the contract, in order, are left for the caller."""
    import onnx

    inits = {t.name for t in model.graph.initializer}
    got = [i.name for i in model.graph.input if i.name not in inits]
    if got == names or [n for n in names if n in got] != got:
        return
    for position, name in enumerate(names):
        if name not in got:
            declared = spec.input(name)
            dtype = "int32" if int32_inputs and declared.dtype.startswith("int") else declared.dtype
            model.graph.input.insert(position, onnx.helper.make_tensor_value_info(
                name, _ONNX_TYPES[dtype], list(declared.axes)))


def _fix_io(model: Any, names: list[str], int32_inputs: bool, num_labels: int,
            spec: TaskSpec) -> None:
    """Make the graph's I/O exactly the spec's: names, dtypes and the named dynamic axes. `num_labels` is the
    output's fixed last dimension (the classes, or the vector's dimension)."""
    _keep_contract_inputs(model, names, int32_inputs, spec)
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    got = [i.name for i in inputs]
    if got != names:
        raise RuntimeError(f"exported inputs are {got}, expected {names}")
    for value in inputs:
        declared = spec.input(value.name)
        dtype = "int32" if int32_inputs and declared.dtype.startswith("int") else declared.dtype
        if value.type.tensor_type.elem_type != _ONNX_TYPES[dtype]:
            raise RuntimeError(f"input {value.name} has ONNX type {value.type.tensor_type.elem_type}, "
                               f"expected {dtype}")
        dims = value.type.tensor_type.shape.dim
        axes = declared.axes_for(len(dims))  # the layout of this rank (AST's input_values vs wav2vec2's)
        if len(dims) != len(axes):
            raise RuntimeError(f"input {value.name} has rank {len(dims)}, expected {len(axes)}")
        for dim, axis in zip(dims, axes, strict=True):
            if axis in declared.dynamic:
                dim.Clear()
                dim.dim_param = axis
            elif not dim.HasField("dim_value"):
                raise RuntimeError(f"input {value.name} axis {axis!r} must have a fixed size")
    outputs = list(model.graph.output)
    if len(outputs) != 1:
        raise RuntimeError(f"exported {len(outputs)} outputs, expected only {spec.output!r}")
    out = outputs[0]
    if out.name != spec.output:
        _rename_value(model.graph, out.name, spec.output)
    shape = out.type.tensor_type.shape
    traced = [int(d.dim_value) if d.HasField("dim_value") else None for d in shape.dim]
    del shape.dim[:]
    shape.dim.add().dim_param = spec.output_axes[0]
    first = 1
    if not spec.packed_outputs:  # axis 1 is the classes (a packed output's are its last axis, traced)
        shape.dim.add().dim_value = num_labels
        first = 2
    # Axes after the classes (a segmenter's output height and width; a detector's queries and columns): the
    # traced size (fixed by the fixed image size), else the spec's axis name.
    for i, axis in enumerate(spec.output_axes[first:], start=first):
        dim = shape.dim.add()
        if i < len(traced) and traced[i]:
            dim.dim_value = traced[i]
        else:
            dim.dim_param = axis


def _rename_value(graph: Any, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
    for value in graph.output:
        if value.name == old:
            value.name = new


def _drop_opset18_reduce_attributes(model: Any) -> None:
    """The 18 -> 17 converter leaves `noop_with_empty_axes=0` on ReduceMean & co (DINOv2's mean-pooled
    head), an attribute opset 17 does not know; 0 is its default, so dropping it changes nothing."""
    if default_opset(model) >= 18:
        return
    for node in model.graph.node:
        if node.op_type.startswith("Reduce") and node.op_type != "ReduceSum":
            keep = [a for a in node.attribute if not (a.name == "noop_with_empty_axes" and a.i == 0)]
            if len(keep) != len(node.attribute):
                del node.attribute[:]
                node.attribute.extend(keep)


def default_opset(model: Any) -> int:
    """The opset of the default ONNX domain."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise TrtEdgeError("the ONNX model imports no default-domain opset")


def model_bytes(path: Path) -> int:
    """Bytes of an ONNX file plus its external data files, if any."""
    total = path.stat().st_size
    data = path.with_name(path.name + ".data")
    if data.exists():
        total += data.stat().st_size
    return total


def save_model(model: Any, path: Path) -> bool:
    """Save `model` to `path` through a temporary sibling; external data only above 2 GB.

    Returns whether external data was used.
    """
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    size = model.ByteSize()
    external = size > EXTERNAL_DATA_THRESHOLD
    if external:
        # The data file's name is recorded inside the model, so it cannot go through a renamed temporary.
        location = path.name + ".data"
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=location, size_threshold=1024)
        return True
    atomic_write_bytes(path, model.SerializeToString())
    return False


def check_onnx_file(path: str | Path) -> Any:
    """Load and `onnx.checker`-check a file, or say in one line what is wrong with it."""
    import onnx

    p = Path(path)
    if not p.is_file():
        raise TrtEdgeError(f"ONNX file not found: {p}")
    try:
        onnx.checker.check_model(str(p))
        return onnx.load(str(p))
    except (onnx.checker.ValidationError, onnx.onnx_cpp2py_export.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrtEdgeError(f"{p}: fails onnx.checker: {first}") from exc
    except Exception as exc:  # protobuf DecodeError and friends: not an ONNX file at all
        raise TrtEdgeError(f"{p}: not a readable ONNX model ({type(exc).__name__}: {exc})") from exc


def export_onnx(model_dir: Path, onnx_path: Path, *, opset: int = 17, int32_inputs: bool = False,
                dynamo: bool | None = None, simplify: bool = True, label_names: list[str] | None = None,
                trust_remote_code: bool = False, loaded: Any = None,
                decompose_layernorm: bool = False, task: str | None = None) -> ExportInfo:
    """Export the classifier in `model_dir` to `onnx_path` with the kit's ONNX contract.

    Args:
      model_dir (Path): a Hugging Face classifier folder (or `demo:minilm`).
      onnx_path (Path): where the file goes (written through a temporary sibling).
      opset (int): default-domain opset. Defaults to 17.
      int32_inputs (bool): int32 token inputs instead of int64. Defaults to False.
      dynamo (bool | None): True forces the dynamo exporter, False the TorchScript one, None tries
        dynamo and falls back. Defaults to None.
      simplify (bool): run the clean-up (onnxslim, shape inference, stable names). Defaults to True.
      label_names (list[str] | None): class names; defaults to the folder's `id2label`.
      trust_remote_code (bool): passed to transformers. Defaults to False.
      loaded (LoadedClassifier | None): an already loaded classifier (skips loading `model_dir`).
      decompose_layernorm (bool): write LayerNormalization as primitive ops, for TensorRT 8.5 (JetPack 5.1),
        which cannot import it. Defaults to False.
      task (str): the task whose spec gives the inputs and axes. None (the default task): `text-classification`.
    """
    import onnx
    import torch

    from trt_edge.export.cleanup import cleanup_model, stable_node_names

    spec = task_spec(task)
    if loaded is None:
        loaded = load_for_export(model_dir, label_names, trust_remote_code, task)
    model = loaded.model.eval()
    labels = [] if spec.pooled else [str(loaded.model.config.id2label[i]) for i in sorted(loaded.model.config.id2label)]
    names = model_input_names(model, loaded.tokenizer, spec)
    wrapper = _wrapper(model, names, int32_inputs, spec)
    args = example_inputs(names, model.config, int32_inputs, spec, loaded.tokenizer)
    num_labels = _output_dim(wrapper, args) if spec.pooled else len(labels)

    fallback_reason: str | None = None
    exported: Any = None
    exporter = "dynamo"
    with tempfile.TemporaryDirectory(prefix="trt-edge-export-") as tmp_dir:
        if dynamo is not False:
            try:
                # The dynamo exporter has no implementations below opset 18; we convert afterwards.
                exported = _export_dynamo(wrapper, args, names, max(opset, 18), spec)
                _fix_io(exported, names, int32_inputs, num_labels, spec)
            except Exception as exc:
                if dynamo is True:
                    raise TrtEdgeError(f"torch.onnx.export(dynamo=True) failed: {_first_line(exc)}; "
                                       "try exporter=torchscript") from exc
                fallback_reason = _first_line(exc)
                log.warning("dynamo export failed (%s); falling back to the TorchScript exporter", fallback_reason)
                exported = None
        if exported is None:
            exporter = "torchscript"
            try:
                exported = _export_torchscript(wrapper, args, names, opset, Path(tmp_dir), spec)
            except Exception as exc:
                raise TrtEdgeError(f"ONNX export failed with both exporters: {_first_line(exc)}") from exc
            _fix_io(exported, names, int32_inputs, num_labels, spec)

    # Name nodes by module scope now: the version converter below drops the dynamo exporter's metadata.
    stable_node_names(exported.graph)
    if default_opset(exported) != opset:
        from onnx import version_converter

        try:
            exported = version_converter.convert_version(exported, opset)
        except Exception as exc:
            raise TrtEdgeError(f"the {exporter} export (opset {default_opset(exported)}) cannot be converted to "
                               f"opset {opset}: {_first_line(exc)}; use export.opset={default_opset(exported)}"
                               ) from exc
    _drop_opset18_reduce_attributes(exported)
    cleanup_info: dict[str, Any] = {}
    if simplify or decompose_layernorm:
        exported, cleanup_info = cleanup_model(exported, slim=simplify, layernorm=decompose_layernorm)
        _keep_contract_inputs(exported, names, int32_inputs, spec)
    else:
        stable_node_names(exported.graph)  # the version converter may have added unnamed nodes
    meta = {"trt_edge.label_names": json.dumps(labels), "trt_edge.exporter": exporter, "trt_edge.task": spec.name,
            "trt_edge.torch": str(torch.__version__)}
    existing = {p.key for p in exported.metadata_props}
    for key, value in meta.items():
        if key not in existing:
            exported.metadata_props.add(key=key, value=value)
    exported.producer_name = "trt-edge"
    if exported.ByteSize() <= EXTERNAL_DATA_THRESHOLD:
        onnx.checker.check_model(exported)
    external = save_model(exported, Path(onnx_path))
    if external:
        onnx.checker.check_model(str(onnx_path))
    info = ExportInfo(onnx_path=Path(onnx_path), exporter=exporter, opset=default_opset(exported),
                      input_names=names, output_names=[spec.output],
                      input_dtype=_input_dtype(spec, int32_inputs), onnx_bytes=model_bytes(Path(onnx_path)),
                      external_data=external, label_names=labels, fallback_reason=fallback_reason,
                      cleanup=cleanup_info)
    log.info("exported %s with the %s exporter (opset %d, %d bytes)", onnx_path, exporter, info.opset,
             info.onnx_bytes)
    return info


def _output_dim(wrapper: Any, args: tuple[Any, ...]) -> int:
    """The last dimension of the wrapper's output on the traced example (a pooled vector's dimension:
    the hidden size, or the last Dense module's width)."""
    import torch

    with torch.no_grad():
        return int(wrapper(*args).shape[-1])


def _input_dtype(spec: TaskSpec, int32_inputs: bool) -> str:
    dtype = spec.inputs[0].dtype
    return "int32" if int32_inputs and dtype.startswith("int") else dtype


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
