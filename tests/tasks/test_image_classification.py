"""The image-classification task end to end on tiny random-weight ViT, DeiT and DINOv2 classifiers
(seconds each), and its bad inputs: one line, exit 2, nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trt_edge.config import RunConfig
from trt_edge.errors import TrtEdgeError

sys.path.insert(0, str(Path(__file__).parent))
from vision_helpers import LABELS, write_idx, write_image_folder, write_vision_model


def _config(data: Path) -> RunConfig:
    return RunConfig({"task": {"type": "image-classification",
                               "data": {"source": str(data), "train_size": 0.6, "validation_size": 0.2,
                                        "test_size": 0.2}},
                      "export": {"parity_batch_sizes": [1, 4]}})


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("vision") / "images")


@pytest.mark.parametrize("kind", ["vit", "deit", "dinov2"])
def test_export_with_pixel_values_and_a_dynamic_batch(kind: str, images: Path, tmp_path: Path) -> None:
    import onnx

    from trt_edge.engine.onnxinfo import onnx_inputs
    from trt_edge.engine.plan import profiles_for_inputs
    from trt_edge.export.stage import run
    from trt_edge.runtime.ort import OnnxRuntimeRunner
    from trt_edge.tasks.spec import preprocessor_dir

    model_dir = write_vision_model(tmp_path / kind, kind)
    record = run(_config(images), model_dir, tmp_path / "export")
    onnx_path = tmp_path / "export" / "model.onnx"
    model = onnx.load(str(onnx_path))
    (value,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
    assert value.name == "pixel_values" and dims == ["batch", 3, 16, 16]
    assert record.metrics["max_abs_diff"] <= 1e-4 and record.metrics["argmax_agreement"] == 1.0
    assert (preprocessor_dir(onnx_path) / "preprocessor_config.json").is_file()
    # TensorRT profiles come from the axis names: only the batch varies.
    (profile,) = profiles_for_inputs(onnx_inputs(onnx_path), {"batch": [1, 4, 8], "sequence": [1, 2, 3]})
    assert profile.min == (1, 3, 16, 16) and profile.max == (8, 3, 16, 16)
    with OnnxRuntimeRunner(onnx_path) as runner:
        out = runner.infer({"pixel_values": np.zeros((5, 3, 16, 16), dtype=np.float32)})["logits"]
    assert out.shape == (5, len(LABELS))


@pytest.mark.parametrize("kind", ["vit", "dinov2"])
def test_fused_cpu_candidate_builds_on_a_decomposed_layernorm_export(kind: str, images: Path,
                                                                     tmp_path: Path) -> None:
    """Issue 33 item 4: with `export.decompose_layernorm` (TensorRT 8.5 targets) ONNX Runtime's optimizer
    raised a TypeError on the primitive LayerNorm and the fused CPU candidates were lost. The fused graph
    now builds, holds the fused ops, and matches the exported graph within the fusion's tolerance."""
    from trt_edge.export.stage import run
    from trt_edge.quantize.cpu_target import build_candidates
    from trt_edge.quantize.ort_attention import PARITY_TOLERANCE
    from trt_edge.runtime.ort import OnnxRuntimeRunner

    cfg = _config(images)
    cfg = RunConfig({**cfg.raw, "export": {**cfg.raw["export"], "decompose_layernorm": True}})
    run(cfg, write_vision_model(tmp_path / kind, kind), tmp_path / "export")
    onnx_path = tmp_path / "export" / "model.onnx"
    rng = np.random.default_rng(0)
    feeds = [{"pixel_values": rng.normal(size=(2, 3, 16, 16)).astype(np.float32)} for _ in range(2)]
    built = {c.name: c for c in build_candidates(onnx_path, feeds, tmp_path / "cpu",
                                                 ["fp32", "fused", "fused-dynamic-int8"])}
    fused = built["fused"]
    assert fused.path is not None and fused.error is None, fused.note
    assert "LayerNormalization×5" in fused.note and "Attention×2" in fused.note, fused.note
    assert built["fused-dynamic-int8"].path is not None, built["fused-dynamic-int8"].note
    pixels = {"pixel_values": rng.normal(size=(5, 3, 16, 16)).astype(np.float32)}
    with OnnxRuntimeRunner(onnx_path) as ref, OnnxRuntimeRunner(fused.path) as got:
        want, have = ref.infer(pixels)["logits"], got.infer(pixels)["logits"]
    assert np.max(np.abs(want - have)) <= PARITY_TOLERANCE
    assert (want.argmax(-1) == have.argmax(-1)).all()


def test_grayscale_and_colour_images_meet_the_models_channels(tmp_path: Path) -> None:
    from trt_edge.tasks.config import DataConfig
    from trt_edge.tasks.image_classification import load_data, match_channels

    folder = write_image_folder(tmp_path / "rgb", per_class=4, mode="RGB")
    data = load_data(DataConfig(source=str(folder), train_size=0.5, validation_size=0.25, test_size=0.25))
    assert data.label_names == LABELS and data.train.examples[0].shape == (16, 16, 3)
    gray = match_channels(data.train.examples[0], 1)
    assert gray.shape == (16, 16, 1) and match_channels(gray, 3).shape == (16, 16, 3)


def test_bad_image_data_is_one_line(tmp_path: Path) -> None:
    from trt_edge.tasks.config import DataConfig
    from trt_edge.tasks.image_classification import load_data

    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "b").mkdir()
    with pytest.raises(TrtEdgeError, match="no images"):
        load_data(DataConfig(source=str(empty)))
    truncated = write_image_folder(tmp_path / "trunc", per_class=3)
    victim = next((truncated / LABELS[0]).glob("*.png"))
    victim.write_bytes(victim.read_bytes()[:40])
    with pytest.raises(TrtEdgeError, match="not a readable image"):
        load_data(DataConfig(source=str(truncated)))
    mixed = write_image_folder(tmp_path / "mixed", per_class=3)
    write_image_folder(tmp_path / "big", per_class=1, size=20)
    (tmp_path / "big" / LABELS[0] / "000.png").rename(mixed / LABELS[1] / "zzz.png")
    with pytest.raises(TrtEdgeError, match="one image size"):
        load_data(DataConfig(source=str(mixed)))


def test_wrong_task_wrong_head_missing_processor(images: Path, tiny_bert_dir: Path, tmp_path: Path) -> None:
    from trt_edge.export.stage import run

    with pytest.raises(TrtEdgeError, match="model for text-classification"):
        run(_config(images), tiny_bert_dir, tmp_path / "a")
    no_processor = write_vision_model(tmp_path / "np", "vit", processor=False)
    with pytest.raises(TrtEdgeError, match="no image processor"):
        run(_config(images), no_processor, tmp_path / "b")
    two_classes = write_vision_model(tmp_path / "two", "vit", num_labels=2)
    with pytest.raises(TrtEdgeError, match=r"head|classes"):
        run(_config(images), two_classes, tmp_path / "c")
    # A vision model given a text task (and image folders given to a text task).
    text_cfg = RunConfig({"task": {"data": {"source": str(images)}}})
    with pytest.raises(TrtEdgeError, match="model for image-classification"):
        run(text_cfg, write_vision_model(tmp_path / "v", "vit"), tmp_path / "d")
    from trt_edge.tasks.data import load_data

    with pytest.raises(TrtEdgeError, match="holds images"):
        load_data(text_cfg.section("task").data)
    assert not any((tmp_path / n).exists() for n in "abcd")


def test_cli_error_is_one_line_exit_2(images: Path, tiny_bert_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"task": {"type": "image-classification", "data": {"source": str(images)}}}))
    proc = subprocess.run([sys.executable, "-m", "trt_edge", "export", "--config", str(cfg), "--model",
                           str(tiny_bert_dir), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("trt-edge: error:")]
    assert len(errors) == 1 and "model for text-classification" in errors[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["vit", "deit", "dinov2"])
def test_whole_chain_on_a_tiny_model(kind: str, images: Path, tmp_path: Path) -> None:
    """distill -> 2:4 prune -> export -> calibrate (Q/DQ, cache, CPU artifact) -> qat -> bundle -> comparison
    -> report, on a random-weight teacher folder fine-tuned for a few steps."""
    from trt_edge.files import sha256_file
    from trt_edge.pipeline.runner import run_pipeline
    from trt_edge.sparsity.onnx_check import check_onnx_sparsity
    from trt_edge.stage import read_stage

    teacher = write_vision_model(tmp_path / "teacher", kind, channels=1)
    cache = tmp_path / "cache"
    raw = {
        "task": {"type": "image-classification", "eval_batch_size": 16,
                 "data": {"source": str(images), "train_size": 0.6, "validation_size": 0.2, "test_size": 0.2}},
        "distill": {"teacher": str(teacher), "teacher_finetune": "always",
                    "teacher_train": {"epochs": 1, "batch_size": 8, "max_steps": 2, "learning_rate": 1e-3},
                    "student": {"layers": [1]}, "train": {"epochs": 1, "batch_size": 8, "max_steps": 2},
                    "ablation": False, "cache_dir": str(cache)},
        "prune": {"train": {"epochs": 1, "batch_size": 8, "max_steps": 2}, "permutation_seconds": 0.2,
                  "cache_dir": str(cache)},
        "export": {"parity_batch_sizes": [1, 3]},
        "calibrate": {"targets": ["tensorrt", "cpu"], "data": {"samples": 8}, "latency_runs": 2,
                      "gate": {"budget": 100.0, "mixed_precision": False},
                      "cpu": {"runs": 2, "budget": 100.0, "candidates": ["fp32", "dynamic-int8"]}},
        # QAT (issue 31) on images: two fake-quantized steps, re-export as Q/DQ, fp32/PTQ/QAT paired
        "qat": {"when": "always", "train": {"max_steps": 2, "batch_size": 8}, "budget": 100.0},
        "pipeline": {"gates": {"distill": 100.0, "prune": 100.0, "calibrate": 100.0},
                     "compare_shapes": [[1, 1]], "compare_rounds": 1, "compare_runs": 2},
    }
    run_dir = tmp_path / "run"
    run_pipeline(RunConfig(raw), run_dir)
    qat = read_stage(run_dir / "qat")["metrics"]
    assert qat["qat_ran"] and qat["qat_float_layers"] == [] and qat["sparse_pattern_intact"]
    assert read_stage(run_dir / "build")["inputs"]["onnx"] == sha256_file(run_dir / "qat" / "model.int8.onnx")
    prune = read_stage(run_dir / "prune")
    assert prune["metrics"]["sparse_layers"] > 0 and prune["metrics"]["permuted_layers"] > 0
    assert check_onnx_sparsity(run_dir / "export" / "model.onnx").ok
    calibrate = read_stage(run_dir / "calibrate")
    assert {"onnx", "calibration_cache", "onnx_cpu", "preprocessor"} <= set(calibrate["artifacts"])
    assert calibrate["metrics"]["qdq_pairs"] > 0
    assert (run_dir / "build" / "bundle" / "preprocessor" / "preprocessor_config.json").is_file()
    (profile,) = json.loads((run_dir / "build" / "bundle" / "plan.json").read_text())["profiles"]
    assert profile["name"] == "pixel_values" and profile["min"][1:] == profile["max"][1:] == [1, 16, 16]
    assert (run_dir / "report" / "report.html").is_file()


def test_fashion_mnist_reader(tmp_path: Path) -> None:
    """The IDX reader on small files in Debian's layout (the real package is used when installed)."""
    from trt_edge.tasks import image_classification as ic

    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    arrays = ic.fashion_mnist(tmp_path)
    assert arrays["train"][0].shape == (40, 28, 28) and arrays["test"][1].tolist()[:3] == [0, 1, 2]
    raw = (tmp_path / "t10k-labels-idx1-ubyte.gz")
    write_idx(raw, np.arange(5))
    import gzip

    data = gzip.decompress(raw.read_bytes())
    raw.write_bytes(gzip.compress(data[:-2]))
    with pytest.raises(TrtEdgeError, match="truncated"):
        ic.fashion_mnist(tmp_path)
    with pytest.raises(TrtEdgeError, match="apt-get install dataset-fashion-mnist"):
        ic.fashion_mnist(tmp_path / "absent")


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_demo_fashion_mnist_splits() -> None:
    from trt_edge.tasks.config import DataConfig
    from trt_edge.tasks.image_classification import load_data

    data = load_data(DataConfig(source="demo:fashion-mnist", train_size=200, validation_size=50, test_size=100))
    assert len(data.label_names) == 10 and len(data.train) == 200 and len(data.test) == 100
    assert data.test.examples[0].shape == (28, 28, 1)


@pytest.mark.parametrize("kind", ["vit", "deit", "dinov2"])
def test_student_keeps_only_the_chosen_layers(kind: str) -> None:
    """A student from a layer subset really has fewer blocks (DINOv2's backbone stage names follow the
    new depth instead of short-circuiting the cut), and still runs."""
    import torch
    import transformers
    from vision_helpers import vision_config

    from trt_edge.distill.student import student_from_teacher
    from trt_edge.modeling.anatomy import layer_list

    classes = {"vit": "ViTForImageClassification", "deit": "DeiTForImageClassification",
               "dinov2": "Dinov2ForImageClassification"}
    teacher = getattr(transformers, classes[kind])(vision_config(kind)).eval()
    student, keep = student_from_teacher(teacher, [1])
    assert keep == [1]
    assert student.config.num_hidden_layers == 1 and len(layer_list(student)[2]) == 1
    assert len(layer_list(teacher)[2]) == 2  # the teacher is untouched
    pixels = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert student(pixel_values=pixels).logits.shape == (2, len(LABELS))


def test_cli_run_image_classifies_like_pytorch(images: Path, tiny_bert_onnx: Path, tiny_bert_dir: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`trt-edge run --image` on an export: the labels and logits of the PyTorch model on the same images,
    through the image processor that travels with the export; the wrong modality is one line, exit 2."""
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from trt_edge.cli import main
    from trt_edge.export.stage import run
    from trt_edge.tasks.image_classification import decode_image, pixel_values

    model_dir = write_vision_model(tmp_path / "vit", "vit")
    run(_config(images), model_dir, tmp_path / "export")
    files = sorted((images / LABELS[1]).glob("*.png"))
    processor = AutoImageProcessor.from_pretrained(model_dir)
    model = AutoModelForImageClassification.from_pretrained(model_dir).eval()
    pixels = pixel_values(processor, [decode_image(f) for f in files], 3)
    with torch.inference_mode():
        ref = model(pixel_values=torch.from_numpy(pixels)).logits.numpy()
    main(["run", "--onnx", str(tmp_path / "export"), "--image", str(images / LABELS[1])])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["image"] for line in lines] == [str(f) for f in files]
    assert [line["index"] for line in lines] == ref.argmax(-1).tolist()
    assert [line["label"] for line in lines] == [LABELS[i] for i in ref.argmax(-1)]
    probs = np.array([[line["probabilities"][n] for n in LABELS] for line in lines])
    expected = np.exp(ref - ref.max(-1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(-1, keepdims=True), atol=1e-4)

    for argv, message in (
        (["--onnx", str(tmp_path / "export"), "--text", "a shirt"], "takes image, not text; use --image"),
        (["--onnx", str(tiny_bert_onnx), "--tokenizer", str(tiny_bert_dir), "--image", str(files[0])],
         "takes text, not image"),
        (["--onnx", str(tmp_path / "export"), "--image", str(tmp_path / "none.png")], "no such file or folder"),
        (["--onnx", str(tmp_path / "export"), "--image", str(tmp_path)], "no PNG/JPEG files in this folder"),
        (["--onnx", str(tmp_path / "export"), "--image", str(files[0]), "--text", "x"], "not both"),
    ):
        with pytest.raises(SystemExit) as info:
            main(["run", *argv])
        assert info.value.code == 2
        assert message in capsys.readouterr().err


# DINOv2's head concatenates [CLS] with the mean patch token, which hidden pruning refuses: heads and FFN.
@pytest.mark.parametrize(("kind", "keep_hidden"), [("vit", 1.0), ("vit", 0.5), ("deit", 0.5), ("dinov2", 1.0)])
def test_width_stage_prunes_a_vision_transformer_on_images(images: Path, tmp_path: Path, kind: str,
                                                           keep_hidden: float) -> None:
    """`prune --method width` on an image task: importance from the adapter's batches (patches), heads and
    neurons removed for real, recovery on images, and the exported pixel_values model passes parity."""
    import shutil

    import onnx
    from onnx import numpy_helper

    from trt_edge.export.stage import run as export_run
    from trt_edge.sparsity.width_stage import run
    from trt_edge.stage import StageRecord

    root = tmp_path / "distilled"
    write_vision_model(root / "model", kind)  # hidden 32, 2 heads of 16, feed-forward 64 (DINOv2: 128)
    shutil.copytree(root / "model", root / "teacher")
    StageRecord(stage="distill", config={}, artifacts={"model": "model", "teacher": "teacher"}).write(root)
    raw = _config(images).raw
    raw["task"]["eval_batch_size"] = 16
    raw["width"] = {"keep_heads": 0.5, "keep_ffn": 0.5, "keep_hidden": keep_hidden, "steps": 1,
                    "calibration_samples": 16,
                    "train": {"epochs": 1, "batch_size": 8, "max_steps": 2, "learning_rate": 1e-3}}
    config = RunConfig(raw)
    m = run(config, root, tmp_path / "width").metrics
    ffn = m["dense_structure"]["ffn"]  # 64 (intermediate_size); DINOv2 reads mlp_ratio instead: 128
    assert m["dense_structure"]["heads"] == 2 and ffn in (64, 128)
    assert (m["structure"]["heads"], m["structure"]["ffn"]) == (1, ffn // 2)
    assert m["calibration_examples"] == 16 and m["steps"][0]["recovery"]["distilled"]
    assert m["parity_max_abs_diff"] < 1e-4
    model = onnx.load(str(tmp_path / "width" / "model.onnx"))
    assert [i.name for i in model.graph.input] == ["pixel_values"]
    shapes = {tuple(numpy_helper.to_array(i).shape) for i in model.graph.initializer}
    assert not any(ffn in s for s in shapes if len(s) == 2 and 32 in s)  # no full-width feed-forward left
    if keep_hidden == 1.0:
        assert (32, 16) in shapes or (16, 32) in shapes
    else:  # hidden 32 -> 16: patch projection, [CLS], position table, blocks and classifier all narrower
        assert m["structure"]["hidden"] == 16 and m["steps"][0]["hidden_readers"] == ["classifier"]
        matrices = {s for s in shapes if len(s) == 2}
        assert (16, 16) in matrices and (3, 16) in matrices and all(16 in s for s in matrices), matrices
    exported = export_run(config, tmp_path / "width", tmp_path / "export").metrics
    assert exported["max_abs_diff"] < 1e-4 and exported["argmax_agreement"] == 1.0


def test_distill_with_a_transfer_set_of_unused_images(images: Path, tmp_path: Path) -> None:
    """The teacher scores the images no split drew; the student trains on labelled + transfer images and the
    hard-label ablation gets the same number of steps."""
    from trt_edge.distill.stage import run
    from trt_edge.stage import read_stage

    teacher = write_vision_model(tmp_path / "teacher", "vit", channels=1)
    raw = {"task": {"type": "image-classification", "eval_batch_size": 16,
                    "data": {"source": str(images), "train_size": 16, "validation_size": 6, "test_size": 6}},
           "distill": {"teacher": str(teacher), "teacher_finetune": "never", "student": {"layers": [1]},
                       "train": {"epochs": 1, "batch_size": 8}, "cache_dir": str(tmp_path / "cache"),
                       "transfer": {"source": "unused"}}}
    run(RunConfig(raw), tmp_path / "distill")
    m = read_stage(tmp_path / "distill", "distill")["metrics"]
    assert m["transfer"]["examples"] == m["transfer"]["available"] == 36 - 28
    assert m["distill"]["steps"] == -(-(16 + 8) // 8)
    assert m["hard_label"]["steps"] == m["distill"]["steps"]


# A hub DINOv2 says image_size 518 in its config and crops 224 in its processor; the tiny stand-ins say 518
# (37x37 patches of 14) and make 56x56 images (4x4 patches).
CONFIG_SIZE, PATCH, PROCESSOR_SIZE = 518, 14, 56
_CLASSES = {"vit": "ViTForImageClassification", "deit": "DeiTForImageClassification",
            "dinov2": "Dinov2ForImageClassification"}


class _Lines:
    """The kit's log lines while the block runs (its logger does not propagate to pytest's caplog)."""

    def __enter__(self) -> list[str]:
        import logging

        self.lines: list[str] = []
        lines = self.lines

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                lines.append(record.getMessage())

        self.handler = Keep()
        logging.getLogger("trt_edge").addHandler(self.handler)
        return self.lines

    def __exit__(self, *exc: object) -> None:
        import logging

        logging.getLogger("trt_edge").removeHandler(self.handler)


@pytest.mark.parametrize("kind", ["vit", "deit", "dinov2"])
def test_a_model_runs_at_its_processors_size_as_transformers_interpolates(kind: str, tmp_path: Path) -> None:
    """Loaded for any stage, a model whose config size differs from its processor's computes what
    transformers computes at the processor's size (ViT/DeiT with interpolate_pos_encoding=True, DINOv2
    always), takes those pixels without an argument to forward, and says its input size is the processor's
    everywhere it is asked (config, the traced example, a processor written from the config)."""
    import torch
    import transformers

    from trt_edge.tasks import image_classification as ic
    from trt_edge.tasks.models import load_classifier

    folder = write_vision_model(tmp_path / kind, kind, image_size=CONFIG_SIZE, patch_size=PATCH,
                                processor_size=PROCESSOR_SIZE)
    with _Lines() as lines:
        loaded = load_classifier(folder, LABELS, task="image-classification")
    assert any(f"{CONFIG_SIZE}" in line and f"{PROCESSOR_SIZE}x{PROCESSOR_SIZE}" in line for line in lines), lines
    reference = getattr(transformers, _CLASSES[kind]).from_pretrained(folder).eval()
    pixels = torch.randn(3, 3, PROCESSOR_SIZE, PROCESSOR_SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = reference(pixel_values=pixels, interpolate_pos_encoding=True).logits
        got = loaded.model(pixel_values=pixels).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    size = (PROCESSOR_SIZE, PROCESSOR_SIZE)
    assert ic.input_size(loaded.model.config, loaded.preprocessor) == size
    assert ic.input_size(loaded.model.config) == size  # the loaded (and every saved) config agrees
    example = ic.example_inputs(reference.config, ["pixel_values"], False, preprocessor=loaded.preprocessor)
    assert tuple(example["pixel_values"].shape[2:]) == size
    ic.write_processor_config(tmp_path / "fresh", loaded.model.config)
    fresh = transformers.AutoImageProcessor.from_pretrained(tmp_path / "fresh")
    assert ic.processor_size(fresh) == size
    # The saved model reloads with plain transformers at the processor's size.
    loaded.model.save_pretrained(tmp_path / "saved")
    again = getattr(transformers, _CLASSES[kind]).from_pretrained(tmp_path / "saved").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(pixel_values=pixels).logits, want, atol=1e-5, rtol=1e-5)


def test_preflight_names_both_sizes_and_refuses_an_unusable_one(images: Path, tmp_path: Path) -> None:
    """Before any training: a log line with both sizes and what will be done; a processor size that is no
    whole number of patches is refused in one line."""
    from trt_edge.preflight import preflight

    def config(teacher: Path) -> RunConfig:
        raw = _config(images).raw
        raw["distill"] = {"teacher": str(teacher), "student": {"layers": [1]}}
        return RunConfig(raw)

    good = write_vision_model(tmp_path / "good", "dinov2", image_size=CONFIG_SIZE, patch_size=PATCH,
                              processor_size=PROCESSOR_SIZE)
    with _Lines() as lines:
        preflight(config(good), ["distill"])
    said = [line for line in lines if "518" in line]
    assert len(said) == 1 and "56x56" in said[0] and "interpolated" in said[0], lines
    bad = write_vision_model(tmp_path / "bad", "vit", image_size=CONFIG_SIZE, patch_size=PATCH, processor_size=50)
    with pytest.raises(TrtEdgeError, match=r"50x50 images, not a whole number of 14x14 patches"):
        preflight(config(bad), ["distill"])
    same = write_vision_model(tmp_path / "same", "vit")  # config and processor agree: nothing said
    with _Lines() as lines:
        preflight(config(same), ["distill"])
    assert not any("image processor makes" in line for line in lines)


@pytest.mark.parametrize("kind", ["vit", "dinov2"])
def test_whole_chain_at_the_processors_size_in_image_words(kind: str, images: Path, tmp_path: Path) -> None:
    """A teacher whose config says 518 and whose processor makes 56x56 goes through every stage at 56x56
    (both exports, calibration, the bundle's profile), and the run speaks of images: the calibration set
    in image sizes, `preprocessor/` and `preprocessor=True` in the bundle, `b1 56x56` shapes, and the
    two export gates told apart."""
    import onnx

    from trt_edge.pipeline.runner import run_pipeline
    from trt_edge.stage import read_stage

    teacher = write_vision_model(tmp_path / "teacher", kind, image_size=CONFIG_SIZE, patch_size=PATCH,
                                 processor_size=PROCESSOR_SIZE)
    cache = tmp_path / "cache"
    raw = {
        "task": {"type": "image-classification", "eval_batch_size": 16,
                 "data": {"source": str(images), "train_size": 0.6, "validation_size": 0.2, "test_size": 0.2}},
        "distill": {"teacher": str(teacher), "teacher_finetune": "never", "student": {"layers": [1]},
                    "train": {"epochs": 1, "batch_size": 8, "max_steps": 2}, "ablation": False,
                    "cache_dir": str(cache)},
        "prune": {"train": {"epochs": 1, "batch_size": 8, "max_steps": 1}, "permutation_seconds": 0.2,
                  "cache_dir": str(cache)},
        "export": {"parity_batch_sizes": [1, 3]},
        "calibrate": {"targets": ["tensorrt"], "data": {"samples": 8}, "latency_runs": 2,
                      "gate": {"budget": 100.0, "mixed_precision": False}},
        "pipeline": {"gates": {"distill": 100.0, "prune": 100.0, "calibrate": 100.0},
                     "compare_shapes": [[1, 1]], "compare_rounds": 1, "compare_runs": 2},
    }
    run_dir = tmp_path / "run"
    with _Lines() as lines:
        run_pipeline(RunConfig(raw), run_dir)
    for stage in ("export", "export-teacher", "calibrate"):
        model = onnx.load(str(run_dir / stage / read_stage(run_dir / stage)["artifacts"]["onnx"]),
                          load_external_data=False)
        (value,) = model.graph.input
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        assert dims == ["batch", 3, PROCESSOR_SIZE, PROCESSOR_SIZE], (stage, dims)
    student = json.loads((run_dir / "distill" / read_stage(run_dir / "distill")["artifacts"]["model"]
                          / "config.json").read_text())
    assert student["image_size"] == PROCESSOR_SIZE
    bundle = run_dir / "build" / "bundle"
    (profile,) = json.loads((bundle / "plan.json").read_text())["profiles"]
    assert profile["min"][1:] == profile["max"][1:] == [3, PROCESSOR_SIZE, PROCESSOR_SIZE]
    # Item 9: image words.
    calibration = [line for line in lines if line.startswith("calibration set:")]
    assert calibration and all("56x56 images" in line and "lengths" not in line for line in calibration), calibration
    assert (bundle / "preprocessor" / "preprocessor_config.json").is_file() and not (bundle / "tokenizer").exists()
    assert '--tokenizer "$HERE/preprocessor"' in (bundle / "build_on_device.sh").read_text()
    build = read_stage(run_dir / "build")
    assert build["artifacts"]["preprocessor"] == "bundle/preprocessor"
    assert build["metrics"]["preprocessor"] is True and "tokenizer" not in build["metrics"]
    comparison = json.loads((run_dir / "profile" / "comparison.json").read_text())
    assert [p["shape"] for p in comparison["shapes"]] == ["b1 56x56"]
    report = (run_dir / "report" / "report.md").read_text()
    gates = report.split("## Gates")[1].split("\n## ")[0]
    assert "| export (student) |" in gates and "| export (teacher) |" in gates and "| export |" not in gates
    assert "| b1 56x56 |" in report and "b1 s1" not in report and "b1s1" not in report
    assert "preprocessor=True" in report and "tokenizer=True" not in report
