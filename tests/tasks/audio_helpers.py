"""Tiny random-weight audio classifiers and Speech Commands folders of generated clips (tones in noise), built in
seconds for the audio tests: no espeak-ng, no hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

LABELS = ["high", "low", "mid"]
RATE = 16000
CLIP = 0.5  # seconds
FAMILIES = ("wav2vec2", "ast", "whisper")
# config.json model_type -> the family name audio_config takes
AUDIO_MODEL_TYPES = {"wav2vec2": "wav2vec2", "audio-spectrogram-transformer": "ast", "whisper": "whisper"}
_FREQ = {"high": 2400.0, "low": 300.0, "mid": 900.0}


def tone(label: str, seconds: float = CLIP, rate: int = RATE, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A tone of the class's frequency (slightly detuned per seed) in noise, [samples] or [samples, channels]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    freq = _FREQ[label] * float(rng.uniform(0.97, 1.03))
    wave = 0.4 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(len(t))
    wave = wave.astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def write_clip(path: Path, samples: np.ndarray, rate: int = RATE, subtype: str | None = None) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, rate, subtype=subtype)
    return path


def write_speech_folder(root: Path, voices: int = 6, per_voice: int = 2, rate: int = RATE, noise: bool = True,
                        labels: list[str] | None = None) -> Path:
    """A Speech Commands folder: LABEL/VOICE_nohash_N.wav for every voice and class, and a background-noise
    recording."""
    for label in labels or LABELS:
        for v in range(voices):
            for n in range(per_voice):
                seed = hash((label, v, n)) % 10_000
                write_clip(root / label / f"voice{v:02d}_nohash_{n}.wav", tone(label, rate=rate, seed=seed), rate)
    if noise:
        rng = np.random.default_rng(1)
        write_clip(root / "_background_noise_" / "white.wav", (0.1 * rng.standard_normal(2 * rate)).astype(np.float32),
                   rate)
    return root


def audio_config(family: str, labels: list[str] | None = None, layers: int = 2) -> Any:
    """A tiny config of `family` (wav2vec2, ast, whisper) for 0.5 s clips at 16 kHz."""
    import transformers

    names = labels or LABELS
    common: dict[str, Any] = {"num_labels": len(names), "id2label": dict(enumerate(names)),
                              "label2id": {n: i for i, n in enumerate(names)}}
    if family == "wav2vec2":
        return transformers.Wav2Vec2Config(
            hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
            conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4), num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2, classifier_proj_size=16, do_stable_layer_norm=False,
            feat_extract_norm="group", mask_time_prob=0.0, layerdrop=0.0, use_weighted_layer_sum=False, **common)
    if family == "ast":
        return transformers.ASTConfig(
            hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64, patch_size=16,
            frequency_stride=10, time_stride=10, max_length=48, num_mel_bins=32, **common)
    if family == "whisper":
        return transformers.WhisperConfig(
            d_model=32, encoder_layers=layers, encoder_attention_heads=2, encoder_ffn_dim=64, decoder_layers=1,
            decoder_attention_heads=2, decoder_ffn_dim=64, num_mel_bins=16, max_source_positions=50,
            classifier_proj_size=16, vocab_size=64, max_target_positions=16, **common)
    raise ValueError(family)


def write_audio_model(folder: Path, family: str, labels: list[str] | None = None, layers: int = 2,
                      clip_seconds: float = CLIP, seed: int = 0) -> Path:
    """A random-weight `AutoModelForAudioClassification` folder with its feature extractor (safetensors)."""
    import torch
    import transformers

    from trt_edge.tasks.audio_classification import write_processor_config

    torch.manual_seed(seed)
    config = audio_config(family, labels, layers)
    model = transformers.AutoModelForAudioClassification.from_config(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True)
    write_processor_config(folder, config, clip_seconds)
    return folder
