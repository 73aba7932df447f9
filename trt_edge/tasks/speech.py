"""Synthetic spoken commands for the audio demo (`trt-edge speech`): command words spoken by Debian's espeak-ng
over many voices (English accents x voice variants x base pitch and speed), each clip jittered in speed and
pitch and mixed with seeded noise, written as a Speech Commands folder split by voice.

Why espeak-ng: it installs offline from Debian (`apt-get install espeak-ng`), needs no model download, and has
dozens of accents and voice variants, enough to hold whole voices out for testing. It is a formant
synthesiser: its speech is clean and regular, so figures on it say the pipeline learns and keeps word
identity across synthetic voices, not how a model does on people (accents, microphones, rooms, children).

Layout written: `train/`, `validation/` and `test/` (voices never shared between them), each with one folder
per word of `VOICE_nohash_N.wav` clips (16 kHz mono, `seconds` long), and `_background_noise_/` recordings
(white, pink and brown noise) that training mixes in. The same seed gives the same files.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.log import get_logger
from trt_edge.tasks.audio_data import NOISE_FOLDER, Clip, fit_length, resample

log = get_logger("data")

ESPEAK = "espeak-ng"
INSTALL_ESPEAK = "apt-get install espeak-ng (Debian/Ubuntu; macOS: brew install espeak-ng)"
DEFAULT_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
# espeak-ng's own English accents (its `gmw` voices; the `mb/` MBROLA voices need a separate package).
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029")
RATE = 16000
SPEED_WPM = (120, 200)  # espeak-ng words per minute: base speed of a voice
PITCH = (25, 75)  # espeak-ng pitch 0-99: base pitch of a voice
JITTER = 0.08  # per clip, speed and pitch vary by up to this fraction around the voice's base
SNR_DB = (10.0, 30.0)  # noise mixed into every clip
_WORD = re.compile(r"^[a-z][a-z' -]{0,31}$")


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an accent, a voice variant, and its base speed and pitch."""

    name: str
    accent: str
    variant: str
    speed: int
    pitch: int

    @property
    def espeak_voice(self) -> str:
        return f"{self.accent}+{self.variant}"


def espeak() -> str:
    """The espeak-ng executable, or the one line saying how to install it (exit 2)."""
    path = shutil.which(ESPEAK)
    if path is None:
        raise TrtEdgeError(f"the speech demo needs espeak-ng, which is not installed: {INSTALL_ESPEAK}")
    return path


# The variants used: espeak-ng's numbered male/female voices and its Klatt-synthesiser voices. The named ones
# also include robots, whispers, croaks and a "Demonic" voice: speech no command set should be judged on.
HUMAN_VARIANT = re.compile(r"^(m\d+|f\d+|klatt\d*)$")


def variants(exe: str) -> list[str]:
    """espeak-ng's human-sounding voice variants (`espeak-ng --voices=variant`, filtered by HUMAN_VARIANT)."""
    out = subprocess.run([exe, "--voices=variant"], capture_output=True, text=True, timeout=60, check=False)
    names = sorted({m.group(1) for m in re.finditer(r"!v/(\S+)", out.stdout) if HUMAN_VARIANT.match(m.group(1))})
    if not names:
        raise TrtEdgeError(f"{exe} lists no voice variants (`{ESPEAK} --voices=variant`); reinstall: {INSTALL_ESPEAK}")
    return names


def check_request(words: list[str], voices: int, per_voice: int, seconds: float) -> None:
    """One-line refusals of a request the generator cannot honour, before espeak-ng runs."""
    if len(words) < 2 or len(set(words)) != len(words):
        raise TrtEdgeError(f"--words: give at least 2 different words, got {words}")
    bad = [w for w in words if not _WORD.match(w)]
    if bad:
        raise TrtEdgeError(f"--words: {bad} are not lowercase English words (a-z, apostrophe, space, hyphen)")
    if voices < 3:
        raise TrtEdgeError(f"--voices {voices}: need at least 3 (train, validation and test each get their own)")
    if per_voice < 1:
        raise TrtEdgeError(f"--per-voice {per_voice}: must be at least 1")
    if not 0.3 <= seconds <= 10:
        raise TrtEdgeError(f"--seconds {seconds}: give 0.3 to 10 seconds per clip")


def make_voices(count: int, variant_names: list[str], rng: np.random.Generator) -> list[Voice]:
    """`count` distinct voices: accents x variants drawn without repeat, each with its own base speed/pitch."""
    combos = [(a, v) for a in ACCENTS for v in variant_names]
    if count > len(combos):
        raise TrtEdgeError(f"--voices {count}: espeak-ng offers {len(combos)} accent/variant voices here")
    chosen = rng.permutation(len(combos))[:count]
    return [Voice(f"v{i:03d}", combos[k][0], combos[k][1], int(rng.integers(*SPEED_WPM)), int(rng.integers(*PITCH)))
            for i, k in enumerate(chosen)]


def speak(exe: str, voice: Voice, word: str, speed: int, pitch: int) -> Clip:
    """One word by espeak-ng (its WAV on standard output, decoded with soundfile), trimmed of silence."""
    import soundfile as sf

    cmd = [exe, "-v", voice.espeak_voice, "-s", str(speed), "-p", str(pitch), "--stdout", word]
    out = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    if out.returncode != 0 or not out.stdout:
        why = out.stderr.decode(errors="replace").strip()[:120]
        raise TrtEdgeError(f"{ESPEAK} failed for voice {voice.espeak_voice} ({why})")
    samples, rate = sf.read(io.BytesIO(out.stdout), dtype="float32", always_2d=True)
    mono = samples[:, 0]
    loud = np.flatnonzero(np.abs(mono) > 0.02 * max(float(np.abs(mono).max()), 1e-6))
    if loud.size:
        mono = mono[loud[0]:loud[-1] + 1]
    return Clip(mono, int(rate))


def noise(kind: str, length: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink (1/f) or brown (1/f^2) noise of unit peak, shaped in the frequency domain."""
    white = rng.standard_normal(length)
    if kind != "white":
        spectrum = np.fft.rfft(white)
        f = np.arange(len(spectrum), dtype=np.float64)
        f[0] = 1.0
        spectrum /= f ** (0.5 if kind == "pink" else 1.0)
        white = np.fft.irfft(spectrum, n=length)
    return (white / max(float(np.abs(white).max()), 1e-9)).astype(np.float32)


def place(word: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """The word at a random offset inside a clip of `length` samples (cropped about its centre if longer)."""
    if len(word) >= length:
        return fit_length(word, length)
    out = np.zeros(length, dtype=np.float32)
    start = int(rng.integers(0, length - len(word) + 1))
    out[start:start + len(word)] = word
    return out


def split_voices(voices: list[Voice], rng: np.random.Generator) -> dict[str, list[Voice]]:
    """Voices dealt to test (20%), validation (10%) and train, at least one each; never shared."""
    order = [voices[i] for i in rng.permutation(len(voices))]
    n_test = max(1, round(0.2 * len(voices)))
    n_val = max(1, round(0.1 * len(voices)))
    return {"test": order[:n_test], "validation": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}


def write_speech(out: Path, words: list[str], voices: int, per_voice: int, seconds: float,
                 seed: int) -> dict[str, Any]:
    """Write the demo folder into `out` (see the module docstring); returns the summary the command prints."""
    import soundfile as sf

    check_request(words, voices, per_voice, seconds)
    exe = espeak()
    rng = np.random.default_rng(seed)
    people = make_voices(voices, variants(exe), rng)
    length = round(seconds * RATE)
    counts: dict[str, int] = {}
    splits = split_voices(people, rng)
    for split, members in splits.items():
        for voice in members:
            for word in words:
                for n in range(per_voice):
                    speed = round(voice.speed * rng.uniform(1 - JITTER, 1 + JITTER))
                    pitch = int(np.clip(round(voice.pitch * rng.uniform(1 - JITTER, 1 + JITTER)), 0, 99))
                    clip = resample(speak(exe, voice, word, speed, pitch), RATE)
                    samples = place(np.asarray(clip), length, rng)
                    peak = max(float(np.abs(samples).max()), 1e-6)
                    samples = samples * (float(rng.uniform(0.3, 0.9)) / peak)
                    power = float(np.mean(np.square(samples))) or 1e-12
                    hum = noise(str(rng.choice(["white", "pink", "brown"])), length, rng)
                    snr = float(rng.uniform(*SNR_DB))
                    samples = samples + hum * np.sqrt(power / (float(np.mean(np.square(hum))) * 10 ** (snr / 10)))
                    target = out / split / word.replace(" ", "_") / f"{voice.name}_nohash_{n}.wav"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    sf.write(str(target), np.clip(samples, -1, 1).astype(np.float32), RATE, subtype="PCM_16")
            counts[split] = counts.get(split, 0) + len(words) * per_voice
    (out / NOISE_FOLDER).mkdir(parents=True, exist_ok=True)
    for kind in ("white", "pink", "brown"):
        sf.write(str(out / NOISE_FOLDER / f"{kind}_noise.wav"), 0.3 * noise(kind, 10 * RATE, rng), RATE,
                 subtype="PCM_16")
    log.info("speech: %d words x %d voices x %d, %s", len(words), voices, per_voice, counts)
    return {"words": words, "clips": counts, "rate": RATE, "seconds": seconds,
            "voices": {s: [f"{v.name}={v.espeak_voice}" for v in members] for s, members in splits.items()}}
