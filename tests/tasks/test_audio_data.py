"""The audio data layer (issue 30): Speech Commands folders decoded with soundfile, split by voice, resampled,
padded/cropped, downmixed; every bad file refused in one line naming it; the espeak-ng demo generator."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.tasks import audio_data
from trt_edge.tasks.adapter import task_adapter
from trt_edge.tasks.audio_data import Clip
from trt_edge.tasks.config import DataConfig

sys.path.insert(0, str(Path(__file__).parent))
from audio_helpers import CLIP, LABELS, RATE, tone, write_clip, write_speech_folder

TASK = "audio-classification"


def _load(source: Path, **kw: object) -> object:
    return task_adapter(TASK).load_data(DataConfig(source=str(source), clip_seconds=CLIP, **kw))  # type: ignore[arg-type]


def test_a_flat_folder_is_split_by_voice_never_by_file(tmp_path: Path) -> None:
    write_speech_folder(tmp_path / "d", voices=10, per_voice=2)
    data = task_adapter(TASK).load_data(DataConfig(source=str(tmp_path / "d"), clip_seconds=CLIP, test_size=0.2,
                                                   validation_size=0.2))
    assert data.label_names == sorted(LABELS)
    assert all(isinstance(c, Clip) and c.rate == RATE and len(c) == int(CLIP * RATE) for c in data.train.examples)
    voices = data.preparation["voices"]
    assert voices == {"test": 2, "validation": 2, "train": 6}
    # every voice's clips are in one split: counts are multiples of (classes x clips per voice)
    per_voice = len(LABELS) * 2
    sizes = [len(data.split(s)) for s in ("train", "validation", "test")]
    assert sizes == [6 * per_voice, 2 * per_voice, 2 * per_voice]
    assert data.preparation["noise_mixed_clips"] == len(data.train)
    assert "preparation" in data.record() and "preparation" not in data.fingerprint()


def test_training_clips_get_noise_and_the_held_out_ones_do_not(tmp_path: Path) -> None:
    write_speech_folder(tmp_path / "noisy", voices=4, per_voice=1)
    write_speech_folder(tmp_path / "clean", voices=4, per_voice=1, noise=False)
    noisy, clean = _load(tmp_path / "noisy", test_size=1, validation_size=1), \
        _load(tmp_path / "clean", test_size=1, validation_size=1)
    assert noisy.test.sha256() == clean.test.sha256()  # type: ignore[attr-defined]
    assert noisy.train.sha256() != clean.train.sha256()  # type: ignore[attr-defined]


def test_split_folders_keep_their_splits_and_stereo_is_downmixed(tmp_path: Path) -> None:
    for split, voices in (("train", 3), ("validation", 1), ("test", 1)):
        for label in LABELS:
            for v in range(voices):
                write_clip(tmp_path / split / label / f"{split}{v}_nohash_0.wav",
                           tone(label, seconds=0.3, channels=2 if split == "test" else 1, seed=v), 22050)
    data = _load(tmp_path)
    assert [len(data.split(s)) for s in ("train", "validation", "test")] == [9, 3, 3]
    files = data.preparation["files"]
    assert files["test"]["downmixed_to_mono"] == 3 and files["train"]["downmixed_to_mono"] == 0
    assert files["train"]["padded"] == 9 and files["train"]["rates_hz"] == [22050]
    assert all(len(c) == round(CLIP * 22050) for c in data.test.examples)


def test_resampling_keeps_the_duration_and_the_tone() -> None:
    clip = Clip(tone("mid", seconds=0.5, rate=44100), 44100)
    out = audio_data.resample(clip, RATE)
    assert out.rate == RATE and len(out) == RATE // 2
    peak = np.argmax(np.abs(np.fft.rfft(out))) * RATE / len(out)
    assert 850 < peak < 950
    with pytest.raises(TrtEdgeError, match="cannot resample 44101 Hz"):
        audio_data.resample(Clip(np.zeros(441), 44101), RATE)


def test_a_clip_in_the_middle_is_cropped_about_its_centre() -> None:
    assert audio_data.fit_length(np.arange(10.0), 4).tolist() == [3.0, 4.0, 5.0, 6.0]
    assert audio_data.fit_length(np.ones(2), 4).tolist() == [1.0, 1.0, 0.0, 0.0]


def _bad(tmp_path: Path, name: str, content: bytes | None = None, rate: int = RATE,
         samples: np.ndarray | None = None, subtype: str | None = None) -> Path:
    root = tmp_path / "bad"
    write_speech_folder(root, voices=3, per_voice=1, noise=False)
    target = root / "high" / name
    if content is not None:
        target.write_bytes(content)
    else:
        write_clip(target, samples if samples is not None else tone("high"), rate, subtype)
    return target


@pytest.mark.parametrize(("case", "expect"), [
    ("empty", "empty audio file"),
    ("garbage", "not a readable audio file"),
    ("truncated", "truncated WAV file"),
    ("rate", "sample rate 2000 Hz is outside"),
    ("short", "shorter than one model frame"),
    ("nan", "not finite"),
])
def test_bad_files_are_named_in_one_line(tmp_path: Path, case: str, expect: str) -> None:
    if case == "empty":
        target = _bad(tmp_path, "v9_nohash_0.wav", b"")
    elif case == "garbage":
        target = _bad(tmp_path, "v9_nohash_0.flac", b"fLaC" + b"\x00" * 40)
    elif case == "truncated":
        good = write_clip(tmp_path / "good.wav", tone("high"))
        target = _bad(tmp_path, "v9_nohash_0.wav", good.read_bytes()[:5000])
    elif case == "rate":
        target = _bad(tmp_path, "v9_nohash_0.wav", rate=2000, samples=tone("low", rate=2000))
    elif case == "short":
        target = _bad(tmp_path, "v9_nohash_0.wav", samples=tone("high", seconds=0.01))
    else:
        samples = tone("high")
        samples[10] = np.nan
        target = _bad(tmp_path, "v9_nohash_0.wav", samples=samples, subtype="FLOAT")
    with pytest.raises(TrtEdgeError, match=expect) as info:
        _load(target.parent.parent)
    assert str(target) in str(info.value) and "\n" not in str(info.value)


def test_folders_without_audio_or_voices_are_refused(tmp_path: Path) -> None:
    (tmp_path / "texts" / "a").mkdir(parents=True)
    (tmp_path / "texts" / "a" / "x.txt").write_text("hello")
    with pytest.raises(TrtEdgeError, match=r"no audio .* \(it holds \.txt files\)"):
        _load(tmp_path / "texts")
    for label in LABELS:
        write_clip(tmp_path / "anon" / label / "clip1.wav", tone(label))
    with pytest.raises(TrtEdgeError, match="split by voice, never by file"):
        _load(tmp_path / "anon")
    with pytest.raises(TrtEdgeError, match=r"no packaged demo data.*trt-edge speech"):
        task_adapter(TASK).load_data(DataConfig(source="demo:speech"))


def test_check_data_audio_through_the_cli(tmp_path: Path) -> None:
    """`trt-edge check-data --kind audio`: a summary line for a good folder; one error line and exit 2 naming
    the file for a truncated one."""
    from trt_edge.cli import main

    write_speech_folder(tmp_path / "d", voices=3, per_voice=1)
    main(["check-data", str(tmp_path / "d"), "--kind", "audio"])
    good = write_clip(tmp_path / "good.wav", tone("high"))
    (tmp_path / "d" / "high" / "v7_nohash_0.wav").write_bytes(good.read_bytes()[:3000])
    result = subprocess.run([sys.executable, "-m", "trt_edge", "check-data", str(tmp_path / "d"), "--kind", "audio"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "v7_nohash_0.wav: truncated WAV file" in lines[0]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_the_speech_generator_writes_a_voice_disjoint_seeded_folder(tmp_path: Path) -> None:
    from trt_edge.tasks.speech import write_speech

    words = ["yes", "no"]
    first = write_speech(tmp_path / "a", words, voices=5, per_voice=1, seconds=0.6, seed=3)
    write_speech(tmp_path / "b", words, voices=5, per_voice=1, seconds=0.6, seed=3)
    voices = {s: {v.split("=")[0] for v in vs} for s, vs in first["voices"].items()}
    assert not (voices["train"] & voices["test"]) and not (voices["train"] & voices["validation"])
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.wav"))
    assert files_a == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.wav"))
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files_a)
    data = _load(tmp_path / "a")
    assert data.label_names == sorted(words) and data.preparation["noise_mixed_clips"] == len(data.train)
    spoken = np.asarray(data.test.examples[0])
    assert float(np.abs(spoken).max()) > 0.1  # a word, not silence


def test_the_speech_command_says_what_to_install_without_espeak(tmp_path: Path) -> None:
    env_path = str(tmp_path / "empty-bin")
    (tmp_path / "empty-bin").mkdir()
    import os

    env = {**os.environ, "PATH": env_path}
    result = subprocess.run([sys.executable, "-m", "trt_edge", "speech", "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "apt-get install espeak-ng" in line and not (tmp_path / "o").exists()
