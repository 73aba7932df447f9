"""One validation pass before any work: what every stage of a run will need, checked in seconds.

A run that fails in its fifth stage on a setting that could be read from the config (a calibration set
larger than the train split, an unknown build device, a batch profile TensorRT refuses, a teacher folder
without tokenizer files) wastes the minutes of the four stages before it. `preflight` checks all of
that up front, reads nothing heavier than the data file and the tokenizers, and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trt_edge.config import SECTIONS, RunConfig
from trt_edge.errors import TrtEdgeError
from trt_edge.log import get_logger

log = get_logger("preflight")

_DATA_STAGES = ("distill", "prune", "export", "export-teacher", "calibrate")


def preflight(config: RunConfig, stages: Sequence[str], *, data: bool = True) -> dict[str, Any]:
    """Refuse in one line anything the given stages would refuse later; returns what it learned
    (data sizes). Reads the config sections those checks need, the data file and the tokenizers;
    writes nothing. Every section present in the config is validated first (a typo anywhere is cheap to
    refuse now and expensive to find in the last stage). `data=False` skips the data check (a stage that
    takes its task from its input folder's stage.json rather than from this config)."""
    for section in SECTIONS:
        if section in config.raw:
            config.section(section)
    facts: dict[str, Any] = {}
    if data and any(name in _DATA_STAGES for name in stages):
        facts.update(_check_data(config, stages))
    if "distill" in stages:
        _check_models(config)
    if "build" in stages:
        _check_build(config, calibrated="calibrate" in stages)
    if any(name in ("export", "export-teacher") for name in stages):
        _check_export_target(config)
    if "profile" in stages:
        _check_compare_shapes(config)
    note = _sparsity_target_note(config, stages)  # said once everything else passed
    if note:
        log.warning("%s", note)
        facts["notes"] = [note]
    return facts


def _check_data(config: RunConfig, stages: Sequence[str]) -> dict[str, Any]:
    from trt_edge.tasks.adapter import load_task_data

    task = config.section("task")
    data = load_task_data(task)
    sizes = {n: len(data.split(n)) for n in ("train", "validation", "test")}
    if "calibrate" in stages:
        cal = config.section("calibrate").data
        if cal.path is None and sizes[cal.split] < cal.samples:
            raise TrtEdgeError(f"calibrate.data.samples is {cal.samples} but the {cal.split} split of "
                               f"{task.data.source} has {sizes[cal.split]} examples; lower calibrate.data.samples "
                               f"or raise task.data.{cal.split}_size")
    return {"sizes": sizes, "labels": data.label_names}


def _check_models(config: RunConfig) -> None:
    """The teacher (and a separate student) exist, hold safetensors and a real tokenizer, and share it."""
    from trt_edge.guard import check_positions
    from trt_edge.modeling.folder import resolve_model_path
    from trt_edge.tasks.adapter import adapter_for
    from trt_edge.tasks.spec import get_task

    cfg = config.section("distill")
    if not isinstance(cfg.teacher, str):
        return  # a teacher described by a config only: trained from scratch, nothing on disk to check yet
    spec = get_task(config.section("task").type)
    adapter = adapter_for(spec)
    teacher = resolve_model_path(cfg.teacher)
    _warn_uncovered(teacher, "distill.teacher")
    teacher_tok = spec.preprocessor.load(teacher, cfg.trust_remote_code)
    _log_fit(adapter.preflight_model(teacher, teacher_tok, cfg.trust_remote_code))
    if spec.has_sequence_axis:
        check_positions(config.section("task").max_length, teacher, teacher_tok)
    layers = _config_layers(teacher)
    if cfg.student.config is not None:  # a config student: the teacher's family and inputs, nothing to cut
        from pathlib import Path

        from trt_edge.distill.student import student_config
        from trt_edge.guard import load_json

        student_config(cfg.student.config, load_json(Path(teacher) / "config.json", "model config"))
        return
    if not cfg.student.model and cfg.student.layers and layers is not None:
        wrong = [i for i in cfg.student.layers if not 0 <= i < layers]
        if wrong:
            raise TrtEdgeError(f"distill.student.layers {wrong} out of range: the teacher has layers 0..{layers - 1}")
    if not cfg.student.model:  # a layer subset the encoder cannot be cut to (SegFormer, DPT without its taps)
        from pathlib import Path

        from trt_edge.guard import load_json
        from trt_edge.modeling.quirks import check_layer_subset, default_layers

        keep = list(cfg.student.layers) if cfg.student.layers else \
            (default_layers(layers) if layers is not None else None)
        check_layer_subset(load_json(Path(teacher) / "config.json", "model config"), keep)
    if cfg.student.model:
        student = resolve_model_path(cfg.student.model)
        _warn_uncovered(student, "distill.student.model")
        student_tok = spec.preprocessor.load(student, cfg.trust_remote_code)
        _log_fit(adapter.preflight_model(student, student_tok, cfg.trust_remote_code))
        if spec.has_sequence_axis:
            check_positions(config.section("task").max_length, student, student_tok)
        if adapter.text_examples and student_tok.get_vocab() != teacher_tok.get_vocab():
            raise TrtEdgeError(f"{cfg.student.model}: its tokenizer differs from the teacher's ({cfg.teacher}); "
                               "logit distillation needs the same tokenization (use a student of the same family)")


def _warn_uncovered(folder: Any, what: str) -> None:
    """One warning for a model family no test covers (`modeling.families`): said before any training, so
    a user reads it before trusting the result."""
    from trt_edge.log import warn_once
    from trt_edge.modeling.families import uncovered_note
    from trt_edge.modeling.folder import model_type

    note = uncovered_note(model_type(folder), f"{what} {folder}")
    if note:
        warn_once(note, "preflight")


def _log_fit(note: str | None) -> None:
    """What loading will do to a model to fit its preprocessor (an image model's size), said before training."""
    if note:
        log.info("%s", note)


def _check_build(config: RunConfig, *, calibrated: bool) -> None:
    """The build plan the config asks for, made for the task's declared inputs and checked against the
    target TensorRT and device, as the build stage will check it against the real ONNX."""
    from trt_edge.engine.config import effective_build_config
    from trt_edge.engine.plan import BuildPlan, OnnxInput, TrtVersion

    cfg = effective_build_config(config)  # the target applied, as the build stage will apply it
    max_length = int(config.section("task").max_length)
    if cfg.precision == "auto":
        cfg = cfg.replace(precision="int8-qdq" if calibrated else "fp16")
    from trt_edge.tasks.spec import get_task

    # The task's declared inputs; a fixed axis (an image's channels, height, width) is sized at export,
    # so 1 stands in for it: the profile check concerns the named dynamic axes only.
    spec = get_task(config.section("task").type)
    inputs = [OnnxInput(i.name, i.dtype, tuple(a if a in i.dynamic else 1 for a in i.axes)) for i in spec.inputs]
    plan = BuildPlan.from_config(cfg, inputs, max_length)
    if plan.precision == "int8-cache" and calibrated and not plan.calibration_cache:
        plan.calibration_cache = "calibration.cache"  # the calibrate stage writes it (TensorRT <= 10)
    problems, _ = plan.check()
    problems += plan.check_inputs(inputs)
    if problems:
        v = TrtVersion.parse(plan.trt_version)
        raise TrtEdgeError(f"build for TensorRT {v.short}" + (f" on {plan.device}" if plan.device else "")
                           + " would be refused: " + "; ".join(problems))


def _check_export_target(config: RunConfig) -> None:
    """An explicit `export.decompose_layernorm: false` for a TensorRT without the LayerNormalization
    importer is refused now, not after training (the export stage resolves `auto` the same way)."""
    from trt_edge.target import resolve_target

    config.section("export").layernorm_decomposed(resolve_target(config.raw, "export"))


def _sparsity_target_note(config: RunConfig, stages: Sequence[str]) -> str | None:
    """The device's "2:4 brings no TensorRT speed here" note when the run 2:4-prunes or builds for a
    target without sparse tensor cores."""
    if not any(name in ("prune", "build") for name in stages):
        return None
    from trt_edge.devices import no_sparse_speedup_note
    from trt_edge.target import resolve_target

    return no_sparse_speedup_note(resolve_target(config.raw, "build").device)


def _check_compare_shapes(config: RunConfig) -> None:
    """A compared sequence longer than `task.max_length` times a shape the engine never runs (its
    sequence profile ends at max_length) and the report's ratio would not mean the deployed model."""
    from trt_edge.tasks.spec import get_task

    task = config.section("task")
    if not get_task(task.type).has_sequence_axis:
        return  # no sequence axis (images): the sequence of a shape is ignored
    longer = [s for s in config.section("pipeline").shapes(task.max_length) if s[1] > task.max_length]
    if longer:
        raise TrtEdgeError(f"pipeline.compare_shapes {longer} go beyond task.max_length {task.max_length}, where "
                           "the engine never runs; use sequences up to max_length (or leave compare_shapes "
                           "unset to follow it)")


def _config_layers(folder: Any) -> int | None:
    """The layer count config.json states, under any name a family gives it (`modeling.anatomy`)."""
    from pathlib import Path

    from trt_edge.guard import load_json
    from trt_edge.modeling.anatomy import config_value

    return config_value(load_json(Path(folder) / "config.json", "model config"), "layers")
