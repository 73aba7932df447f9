"""Audio data in the layout keyword-spotting data sets use (Speech Commands): decoding, checks, splits by voice.

A data set is a folder with one sub-folder of WAV/FLAC files per class, and optionally a `_background_noise_`
folder of long recordings mixed into the training clips. It is split either by the folders `train/`,
`validation/` and `test/` (each holding the class folders), or by the voice in each file's name, Speech
Commands' `VOICE_nohash_N.wav`: every voice lands in one split, so the test split holds voices training never
heard (a split by file would put one speaker's "yes" in training and the same speaker's other "yes" in test,
and measure memory of a voice, not recognition of the word).

Files are decoded with `soundfile` (libsndfile), downmixed to mono (averaging the channels: the models all
take one channel; the count of files downmixed is recorded), padded with silence or centre-cropped to
`task.data.clip_seconds` at the file's own rate, and kept as `Clip` arrays carrying that rate. The model's
feature extractor (its `sampling_rate`) is known only when a batch is made: `resample` then brings each clip
to it with scipy's polyphase resampler. Every bad input is one `TrtEdgeError` line naming the file, raised
while loading, before any training.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.log import get_logger

log = get_logger("data")

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
NOISE_FOLDER = "_background_noise_"
SPLIT_FOLDERS = ("train", "validation", "test")
VOICE_PATTERN = re.compile(r"^(?P<voice>.+?)_nohash_")
# Rates libsndfile files come in that a polyphase resampler handles: below 4 kHz there is no speech band to
# resample, above 384 kHz no audio interface records; between them the reduced up/down factors must stay
# small (a 44101 Hz file would need a 16000/44101 filter bank of millions of taps).
MIN_RATE, MAX_RATE, MAX_RESAMPLE_FACTOR = 4000, 384_000, 1000
# Training clips get one background-noise excerpt each, at a signal-to-noise ratio drawn in this range (dB).
NOISE_SNR_DB = (5.0, 25.0)
INSTALL_SOUNDFILE = "pip install soundfile"


class Clip(np.ndarray):
    """Mono float32 samples that carry their sampling rate (`rate`, Hz): a numpy array, so the data splits
    hash, slice and save it like an image."""

    rate: int

    def __new__(cls, samples: Any, rate: int) -> Clip:
        obj = np.asarray(samples, dtype=np.float32).reshape(-1).view(cls)
        obj.rate = int(rate)
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        self.rate = int(getattr(obj, "rate", 0) or 0)

    @property
    def seconds(self) -> float:
        return len(self) / self.rate if self.rate else 0.0


@dataclass
class AudioFolder:
    """What reading a data folder found: clips with their class names and voices, noise recordings, and what
    was done to the files (downmixed, padded, cropped)."""

    clips: list[Clip] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    voices: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    noise: list[Clip] = field(default_factory=list)
    downmixed: int = 0
    padded: int = 0
    cropped: int = 0


def _soundfile() -> Any:
    try:
        import soundfile
    except ImportError as exc:  # a core dependency; an install that lost it gets the line that fixes it
        raise TrtEdgeError(f"reading audio needs the soundfile package: {INSTALL_SOUNDFILE}") from exc
    return soundfile


def _wav_truncated(file: Path) -> str | None:
    """Why a RIFF/WAVE file is truncated (its `data` chunk declares more bytes than the file holds), or None.
    libsndfile reads such a file without complaint, returning the frames that are there: a recording cut off
    by a full disk or an interrupted copy would silently train as a shorter clip."""
    try:
        with file.open("rb") as handle:
            head = handle.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = file.stat().st_size
            while True:
                chunk = handle.read(8)
                if len(chunk) < 8:
                    return None
                name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                start = handle.tell()
                if name == b"data":
                    if length != 0xFFFFFFFF and start + length > size:  # 0xFFFFFFFF: a streamed (unknown) size
                        return f"its data chunk declares {length} bytes, the file holds {size - start}"
                    return None
                handle.seek(start + length + (length & 1))
    except OSError:
        return None


def decode_audio(file: Path) -> tuple[Clip, int]:
    """One audio file as a mono `Clip` at its own rate, and its channel count; a one-line error naming the file
    when it is unreadable, empty, truncated, or at a rate outside MIN_RATE..MAX_RATE."""
    sf = _soundfile()
    if file.stat().st_size == 0:
        raise TrtEdgeError(f"{file}: empty audio file (0 bytes)")
    truncated = _wav_truncated(file)
    if truncated:
        raise TrtEdgeError(f"{file}: truncated WAV file ({truncated}); re-record or re-copy it")
    try:
        samples, rate = sf.read(str(file), dtype="float32", always_2d=True)
    except (RuntimeError, ValueError, TypeError, OSError) as exc:  # LibsndfileError is a RuntimeError
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise TrtEdgeError(f"{file}: not a readable audio file ({first})") from exc
    if samples.shape[0] == 0:
        raise TrtEdgeError(f"{file}: empty audio file (no samples)")
    if not np.isfinite(samples).all():
        raise TrtEdgeError(f"{file}: holds samples that are not finite numbers (NaN or infinity)")
    check_rate(int(rate), file)
    channels = int(samples.shape[1])
    mono = samples[:, 0] if channels == 1 else samples.mean(axis=1)
    return Clip(mono, int(rate)), channels


def check_rate(rate: int, file: Path | str) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise TrtEdgeError(f"{file}: sample rate {rate} Hz is outside what trt-edge resamples from "
                           f"({MIN_RATE}..{MAX_RATE} Hz)")


def resample_factors(rate: int, target: int, source: Path | str = "a clip") -> tuple[int, int]:
    """(up, down) of the polyphase resampler from `rate` to `target`, or a one-line refusal when the reduced
    factors are too large to filter (a rate that is not a usual one, e.g. 44101 Hz)."""
    g = math.gcd(int(rate), int(target))
    up, down = int(target) // g, int(rate) // g
    if max(up, down) > MAX_RESAMPLE_FACTOR:
        raise TrtEdgeError(f"{source}: cannot resample {rate} Hz to the feature extractor's {target} Hz (a "
                           f"{up}/{down} polyphase filter); convert the file to a usual rate (8, 16, 22.05, 44.1, "
                           "48 kHz) first")
    return up, down


def resample(clip: Clip, target: int) -> Clip:
    """`clip` at `target` Hz (scipy's polyphase resampler with its Kaiser-window anti-aliasing filter), its
    duration kept to the sample."""
    if clip.rate == target:
        return clip
    from scipy.signal import resample_poly

    up, down = resample_factors(clip.rate, target)
    out = resample_poly(np.asarray(clip, dtype=np.float64), up, down)
    return Clip(fit_length(out.astype(np.float32), round(clip.seconds * target)), target)


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Centre-crop or zero-pad (at the end: the word starts where it starts) to `length` samples."""
    if len(samples) > length:
        start = (len(samples) - length) // 2
        return samples[start:start + length]
    if len(samples) < length:
        return np.pad(samples, (0, length - len(samples)))
    return samples


def check_frame(clip: Clip, frame_seconds: float, source: Path | str) -> None:
    """Refuse a clip shorter than one model frame (the feature extractor's analysis window, or wav2vec2's
    receptive field): it holds no frame the model could see."""
    if clip.seconds < frame_seconds:
        raise TrtEdgeError(f"{source}: {len(clip)} samples ({clip.seconds * 1000:.1f} ms) is shorter than one model "
                           f"frame ({frame_seconds * 1000:.1f} ms)")


def audio_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)


def voice_of(file: Path) -> str | None:
    """The voice (speaker) id of a Speech Commands file name, `VOICE_nohash_N.wav`; None when it has none."""
    found = VOICE_PATTERN.match(file.name)
    return found.group("voice") if found else None


def read_audio_folder(path: Path, clip_seconds: float, frame_seconds: float = 0.0) -> AudioFolder:
    """Every clip of a folder of class folders (the `_background_noise_` folder read as noise), decoded, mono,
    padded/cropped to `clip_seconds`. Raises on the first bad file, naming it; and when no class folder holds
    audio (naming what it holds instead)."""
    if not path.is_dir():
        raise TrtEdgeError(f"{path}: an audio-classification data set is a folder with one sub-folder of WAV/FLAC "
                           "files per class")
    out = AudioFolder()
    classes = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != NOISE_FOLDER)
    for folder in classes:
        for file in audio_files(folder):
            clip, channels = decode_audio(file)
            check_frame(clip, frame_seconds, file)
            length = round(clip_seconds * clip.rate)
            out.downmixed += channels > 1
            out.padded += len(clip) < length
            out.cropped += len(clip) > length
            out.clips.append(Clip(fit_length(np.asarray(clip), length), clip.rate))
            out.labels.append(folder.name)
            out.voices.append(voice_of(file) or "")
            out.files.append(file)
    if not out.clips:
        others = sorted({f.suffix.lower() for f in path.rglob("*") if f.is_file()} - {""})
        hint = f" (it holds {', '.join(others[:5])} files)" if others else ""
        raise TrtEdgeError(f"{path}: no audio (WAV/FLAC/OGG) in its class folders{hint}")
    out.noise = read_noise(path)
    return out


def read_noise(path: Path) -> list[Clip]:
    """The recordings of `path/_background_noise_` (none when the folder is absent)."""
    folder = path / NOISE_FOLDER
    return [decode_audio(f)[0] for f in audio_files(folder)] if folder.is_dir() else []


def mix_noise(clips: list[Clip], noise: Sequence[Clip], seed: int) -> int:
    """Mix one seeded excerpt of a background recording into each clip, in place, at a signal-to-noise ratio
    drawn from NOISE_SNR_DB (the noise resampled to the clip's rate); returns how many clips got noise."""
    if not noise:
        return 0
    rng = np.random.default_rng(seed)
    by_rate: dict[tuple[int, int], Clip] = {}
    for clip in clips:
        which = int(rng.integers(len(noise)))
        key = (which, clip.rate)
        if key not in by_rate:
            by_rate[key] = resample(noise[which], clip.rate)
        source = np.asarray(by_rate[key])
        if len(source) < len(clip):
            source = np.resize(source, len(clip))  # a short recording repeats
        start = int(rng.integers(len(source) - len(clip) + 1))
        excerpt = source[start:start + len(clip)].astype(np.float64)
        signal_power = float(np.mean(np.square(clip, dtype=np.float64)))
        noise_power = float(np.mean(np.square(excerpt)))
        if noise_power <= 0 or signal_power <= 0:
            continue
        snr = float(rng.uniform(*NOISE_SNR_DB))
        gain = math.sqrt(signal_power / (noise_power * 10 ** (snr / 10)))
        clip[:] = (np.asarray(clip, dtype=np.float64) + gain * excerpt).astype(np.float32)
    return len(clips)


def split_by_voice(voices: Sequence[str], sizes: tuple[float, float, float], seed: int,
                   source: str) -> dict[str, list[int]]:
    """Example indices of train/validation/test with no voice in two splits: the voices are shuffled (seeded)
    and dealt out, test first; a size < 1 is a fraction of the voices, >= 1 a count of voices."""
    names = sorted(set(voices))
    if "" in names:
        raise TrtEdgeError(f"{source}: file names must carry their voice as Speech Commands' VOICE_nohash_N.wav, or "
                           "the folder must hold train/, validation/ and test/ folders: audio is split by voice, "
                           "never by file")
    if len(names) < 3:
        raise TrtEdgeError(f"{source}: {len(names)} voice(s); a split by voice needs at least 3 (one per split)")
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    train, validation, test = sizes

    def count(size: float) -> int:
        return max(1, round(size * len(names)) if size < 1 else int(size))

    n_test, n_val = count(test), count(validation)
    n_train = len(names) - n_test - n_val if train < 1 else min(int(train), len(names) - n_test - n_val)
    if n_train < 1:
        raise TrtEdgeError(f"{source}: {len(names)} voices cannot make {n_test} test + {n_val} validation voices "
                           "and a training split; lower task.data.test_size / validation_size")
    parts = {"test": set(order[:n_test]), "validation": set(order[n_test:n_test + n_val]),
             "train": set(order[n_test + n_val:n_test + n_val + n_train])}
    return {name: [i for i, v in enumerate(voices) if v in chosen] for name, chosen in parts.items()}


def describe(folder: AudioFolder) -> dict[str, Any]:
    """What loading did to the files, for the stage records: rates found, channels downmixed, lengths fixed."""
    rates = sorted({c.rate for c in folder.clips})
    return {"clips": len(folder.clips), "rates_hz": rates, "downmixed_to_mono": folder.downmixed,
            "padded": folder.padded, "cropped": folder.cropped, "noise_recordings": len(folder.noise)}
