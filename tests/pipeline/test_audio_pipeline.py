"""`trt-edge pipeline` for `task.type: audio-classification` on tiny random audio classifiers (issue 30): every
stage runs on a Speech Commands folder of generated tones (voices split apart), and the records, gates, exported
graph, bundle, profile and report say what an audio model needs (the extractor's input, clips/s and real-time
factor, the convolutional feature encoder left dense with its reason).

Three families, one module-scoped run each on 0.5 s clips at 16 kHz: wav2vec2 (raw waveform `input_values`
[batch, samples], with the CPU artifact), AST (log-mel `input_values` [batch, frames, mel]) and Whisper's encoder
(`input_features` [batch, mel, frames]). Students keep one of the teacher's two transformer layers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trt_edge.config import RunConfig
from trt_edge.errors import TrtEdgeError
from trt_edge.pipeline.runner import run_pipeline
from trt_edge.stage import STAGE_FILE, read_stage

sys.path.insert(0, str(Path(__file__).parents[1] / "tasks"))
from audio_helpers import CLIP, LABELS, RATE, tone, write_audio_model, write_clip, write_speech_folder

STAGES = ("distill", "prune", "export", "export-teacher", "calibrate", "qat", "build", "profile", "report")
TASK = "audio-classification"
INPUTS = {"wav2vec2": ("input_values", [int(CLIP * RATE)]), "ast": ("input_values", [48, 32]),
          "whisper": ("input_features", [16, 100])}


def _config(data: Path, teacher: Path, cache: Path, cpu: bool) -> dict[str, Any]:
    return {
        "task": {"type": TASK, "eval_batch_size": 16,
                 "data": {"source": str(data), "clip_seconds": CLIP, "test_size": 1, "validation_size": 1}},
        "distill": {"teacher": str(teacher), "teacher_finetune": "always",
                    "teacher_train": {"epochs": 1, "batch_size": 8, "max_steps": 2, "learning_rate": 1e-3},
                    "student": {"layers": [1]}, "train": {"epochs": 1, "batch_size": 8, "max_steps": 2},
                    "ablation": False, "cache_dir": str(cache)},
        "prune": {"train": {"epochs": 1, "batch_size": 8, "max_steps": 2}, "permutation_seconds": 0.2,
                  "cache_dir": str(cache)},
        "export": {"parity_batch_sizes": [1, 3]},
        "calibrate": {"targets": ["tensorrt", "cpu"] if cpu else ["tensorrt"], "data": {"samples": 6},
                      "latency_runs": 2, "gate": {"budget": 100.0, "mixed_precision": False},
                      "cpu": {"runs": 2, "budget": 100.0, "candidates": ["fp32", "dynamic-int8"]}},
        "pipeline": {"gates": {"distill": 100.0, "prune": 100.0, "calibrate": 100.0},
                     "compare_shapes": [[1, 1]], "compare_rounds": 1, "compare_runs": 2},
    }


@pytest.fixture(scope="module", params=("wav2vec2", "ast", "whisper"))
def audio_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(family, finished run folder)."""
    family = str(request.param)
    root = tmp_path_factory.mktemp(f"audio-{family}")
    write_speech_folder(root / "data", voices=5, per_voice=1)
    teacher = write_audio_model(root / "teacher", family)
    raw = _config(root / "data", teacher, root / "cache", cpu=family == "wav2vec2")
    if family == "wav2vec2":  # one family per task trains QAT (the others pass PTQ on with `auto`)
        raw["qat"] = {"when": "always", "train": {"max_steps": 2, "batch_size": 8}}
    results = run_pipeline(RunConfig(raw), root / "run")
    assert [r.name for r in results] == list(STAGES)
    return family, root / "run"


def test_every_stage_records_an_audio_model_and_a_voice_split(audio_run: tuple[str, Path]) -> None:
    from trt_edge.modeling.anatomy import config_value
    from trt_edge.tasks.models import read_model_config

    _, run_dir = audio_run
    for name in STAGES:
        assert (run_dir / name / STAGE_FILE).is_file(), name
        task = (read_stage(run_dir / name).get("config") or {}).get("task")
        if task is not None:
            assert task["type"] == TASK, name
    distill = read_stage(run_dir / "distill")["metrics"]
    assert {"student_accuracy", "student_macro_f1", "teacher_accuracy"} <= set(distill)
    assert distill["data"]["preparation"]["voices"] == {"train": 3, "validation": 1, "test": 1}
    student = read_model_config(run_dir / "distill" / "model")
    teacher = read_model_config(run_dir / "distill" / "teacher")
    assert (config_value(student, "layers"), config_value(teacher, "layers")) == (1, 2)
    for name in ("distill", "prune", "calibrate"):
        gate = read_stage(run_dir / name)["metrics"]["gate"]
        assert gate["n"] == len(LABELS) and "table" in gate, name  # paired on the held-out voice's clips


def test_the_export_takes_the_extractors_input_with_a_dynamic_batch(audio_run: tuple[str, Path]) -> None:
    import onnx

    family, run_dir = audio_run
    model = onnx.load(str(run_dir / "export" / "model.onnx"), load_external_data=False)
    (inp,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    name, fixed = INPUTS[family]
    assert inp.name == name and dims == ["batch", *fixed]
    (out,) = model.graph.output
    assert out.name == "logits" and [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == \
        ["batch", len(LABELS)]
    assert {p.key: p.value for p in model.metadata_props}.get("trt_edge.task") == TASK
    export = read_stage(run_dir / "export")["metrics"]
    assert export["argmax_agreement"] == 1.0 and export["max_abs_diff"] < 1e-3


def test_2_4_prunes_the_transformer_and_leaves_the_convolutions_dense(audio_run: tuple[str, Path]) -> None:
    from trt_edge.sparsity.onnx_check import check_onnx_sparsity

    family, run_dir = audio_run
    prune = read_stage(run_dir / "prune")["metrics"]
    assert prune["sparse_layers"] >= 6  # q, k, v, out, and the feed-forward pair of the kept layer
    assert all(".conv" not in name and "patch" not in name for name in prune["layers"])
    dense = prune["dense_convolutions"]
    expected = {"wav2vec2": "feature_extractor.conv_layers", "ast": "patch_embeddings", "whisper": "encoder.conv1"}
    assert any(expected[family] in name for name in dense) and all("left dense" in why for why in dense.values())
    assert check_onnx_sparsity(run_dir / "export" / "model.onnx").ok
    html = (run_dir / "report" / "report.html").read_text(encoding="utf-8")
    assert "left dense" in html


def test_calibration_bundle_profile_and_report(audio_run: tuple[str, Path]) -> None:
    family, run_dir = audio_run
    calibrate = read_stage(run_dir / "calibrate")
    assert {"onnx", "calibration_cache", "preprocessor"} <= set(calibrate["artifacts"])
    assert calibrate["metrics"]["qdq_pairs"] > 0
    if family == "wav2vec2":
        assert "onnx_cpu" in calibrate["artifacts"]
    extractor = json.loads((run_dir / "build" / "bundle" / "preprocessor" / "preprocessor_config.json").read_text())
    assert extractor["sampling_rate"] == RATE
    comparison = json.loads((run_dir / "profile" / "comparison.json").read_text(encoding="utf-8"))
    (point,) = comparison["shapes"]
    assert comparison["example_seconds"] == pytest.approx(CLIP if family != "whisper" else 1.0, abs=0.02)
    for label, stats in point["latency_ms"].items():  # RTF = audio seconds / compute seconds, from the same median
        assert point["real_time_factor"][label] == pytest.approx(
            comparison["example_seconds"] / (stats["median"] / 1000), rel=0.01)
        assert point["clips_per_s"][label] == pytest.approx(1000 / stats["median"], rel=0.01)
    html = (run_dir / "report" / "report.html").read_text(encoding="utf-8")
    assert "real-time factor" in html and "macro" in html.lower()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trt_edge", "run", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("audio_run", ["wav2vec2"], indirect=True)  # the runtime is the task's: one family
def test_run_audio_prints_one_line_per_clip_and_stream_finds_the_windows(audio_run: tuple[str, Path],
                                                                         tmp_path: Path) -> None:
    """`run --audio FOLDER`: one JSON line per clip, its probabilities summing to 1. `run --stream`: the detections
    are exactly the runs of windows whose top class clears the threshold, each window classified as a clip of its
    own by `run --audio` (the same model, the same extractor)."""
    _, run_dir = audio_run
    onnx = str(run_dir / "export" / "model.onnx")
    folder = run_dir.parent / "data" / "high"
    result = _run("--onnx", onnx, "--audio", str(folder))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert [line["audio"] for line in lines] == sorted(str(f) for f in folder.iterdir())
    for line in lines:
        assert line["label"] in LABELS and sum(line["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert line["probability"] == max(line["probabilities"].values())

    recording = np.concatenate([tone("low", 0.75, seed=1), tone("high", 0.75, seed=2), tone("mid", 0.5, seed=3)])
    write_clip(tmp_path / "long.wav", recording)
    threshold = 1.0 / len(LABELS)  # an untrained model is near uniform: a threshold some windows clear
    result = _run("--onnx", onnx, "--stream", str(tmp_path / "long.wav"), "--window", str(CLIP), "--hop", "0.25",
                  "--threshold", str(threshold))
    assert result.returncode == 0, result.stderr
    detections = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    windows = tmp_path / "windows"
    for i, start in enumerate(np.arange(0, 2.0 - CLIP + 1e-9, 0.25)):
        begin = round(start * RATE)
        write_clip(windows / f"w{i:02d}.wav", recording[begin:begin + int(CLIP * RATE)])
    single = [json.loads(x) for x in _run("--onnx", onnx, "--audio", str(windows)).stdout.splitlines()
              if x.startswith("{")]
    expected: list[dict[str, Any]] = []
    for i, line in enumerate(single):
        if line["probability"] < threshold:
            continue
        start, end = 0.25 * i, 0.25 * i + CLIP
        if expected and expected[-1]["label"] == line["label"] and start <= expected[-1]["end"]:
            expected[-1]["end"] = end
        else:
            expected.append({"label": line["label"], "start": start, "end": end})
    assert [(d["label"], d["start"], d["end"]) for d in detections] == \
        [(e["label"], pytest.approx(e["start"]), pytest.approx(e["end"])) for e in expected]


@pytest.mark.parametrize("audio_run", ["wav2vec2"], indirect=True)
def test_the_profile_command_gives_clips_per_second_and_the_real_time_factor(audio_run: tuple[str, Path],
                                                                               tmp_path: Path) -> None:
    """`trt-edge profile --onnx` with the run's audio task: random inputs at the model's shape, throughput in
    clips/s and the real-time factor (throughput x the seconds one clip holds, from the extractor)."""
    from trt_edge.profile.stage import run

    _, run_dir = audio_run
    raw = {"task": {"type": TASK, "data": {"source": str(run_dir.parent / "data"), "clip_seconds": CLIP}},
           "profile": {"iterations": 20, "warmup": 2, "layers": False, "plots": False, "progress": False,
                       "roofline": False, "power": {"source": "off"}}}
    metrics = run(RunConfig(raw), run_dir / "export" / "model.onnx", tmp_path / "profile").metrics
    (point,) = metrics["points"]
    assert metrics["inputs"] == "random" and point["throughput_ips"] > 0
    assert point["real_time_factor"] == pytest.approx(point["throughput_ips"] * CLIP, rel=0.01)


@pytest.mark.parametrize("audio_run", ["ast"], indirect=True)  # the refusals are the task's: one family
def test_an_audio_model_refuses_text_and_a_text_model_refuses_audio(audio_run: tuple[str, Path],
                                                                     tiny_bert_dir: Path) -> None:
    from trt_edge.tasks.models import load_classifier

    _, run_dir = audio_run
    onnx = str(run_dir / "export" / "model.onnx")
    result = _run("--onnx", onnx, "--text", "hello")
    assert result.returncode == 2 and "audio-classification model: it takes audio" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(TrtEdgeError, match=r"model for audio-classification.*the task is text-classification"):
        load_classifier(run_dir / "distill" / "model", LABELS, task="text-classification")
    with pytest.raises(TrtEdgeError, match=r"text-classification.*the task is audio-classification"):
        load_classifier(tiny_bert_dir, LABELS, task="audio-classification")


def test_a_wav2vec2_head_is_not_taken_for_a_text_head(tmp_path: Path) -> None:
    """wav2vec2's audio head is `Wav2Vec2ForSequenceClassification`, which ends as a text head does: the
    audio task still loads it, the text task refuses it in one line."""
    from trt_edge.tasks.models import load_classifier
    from trt_edge.tasks.spec import task_for_architectures

    folder = write_audio_model(tmp_path / "w2v", "wav2vec2")
    assert task_for_architectures(["Wav2Vec2ForSequenceClassification"]).name == TASK  # type: ignore[union-attr]
    assert task_for_architectures(["BertForSequenceClassification"]).name == "text-classification"  # type: ignore[union-attr]
    assert load_classifier(folder, LABELS, task=TASK).head_trained
    with pytest.raises(TrtEdgeError, match="audio-classification"):
        load_classifier(folder, LABELS, task="text-classification")


@pytest.mark.parametrize("family", ["wav2vec2", "whisper"])
def test_width_pruning_an_audio_model(family: str, tmp_path: Path) -> None:
    """`prune --method width` on an audio transformer: half the heads and neurons removed, recovery on the clips,
    the classification gate, and the exported logits pass parity (the conv stem untouched)."""
    import shutil

    from trt_edge.sparsity.width_stage import run
    from trt_edge.stage import StageRecord

    write_speech_folder(tmp_path / "data", voices=5, per_voice=1, noise=False)
    root = tmp_path / "distilled"
    write_audio_model(root / "model", family)
    shutil.copytree(root / "model", root / "teacher")
    StageRecord(stage="distill", config={}, artifacts={"model": "model", "teacher": "teacher"}).write(root)
    raw = {"task": {"type": TASK, "eval_batch_size": 16,
                    "data": {"source": str(tmp_path / "data"), "clip_seconds": CLIP, "test_size": 1,
                             "validation_size": 1}},
           "width": {"keep_heads": 0.5, "keep_ffn": 0.5, "steps": 1, "calibration_samples": 8,
                     "train": {"epochs": 1, "batch_size": 8, "max_steps": 2, "learning_rate": 1e-3}}}
    m = run(RunConfig(raw), root, tmp_path / "width").metrics
    assert (m["structure"]["heads"], m["structure"]["ffn"]) == (1, m["dense_structure"]["ffn"] // 2)
    assert m["parity_max_abs_diff"] < 1e-4
    assert m["gate"]["n"] == len(LABELS) and "table" in m["gate"]


def test_qat_trains_on_this_task_where_asked(audio_run: tuple[str, Path]) -> None:
    """QAT trains on this task's model where the config asks (tests/pipeline/test_qat_pipeline.py's check)."""
    from .test_qat_pipeline import check_qat_where_asked

    family, run_dir = audio_run
    check_qat_where_asked(run_dir, trained=family == "wav2vec2")
