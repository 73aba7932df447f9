"""Audio classification (keyword spotting, sound events): labelled clips from a Speech Commands folder, the
model's own feature extractor, batching and prediction in PyTorch.

The feature extractor (`preprocessor_config.json`, loaded with AutoFeatureExtractor) is the preprocessor
artifact and travels with every model file as an image processor does. It decides the input: raw waveform
`input_values` [batch, samples] (wav2vec2, HuBERT: normalised per clip), log-mel `input_values`
[batch, frames, mel] (AST: Kaldi fbank, padded/truncated to its `max_length` frames) or log-mel
`input_features` [batch, mel, frames] (Whisper: padded to its `chunk_length` seconds). Clips are resampled to
its `sampling_rate` first (`audio_data.resample`).

The input length is fixed per model, as an image model's size is: AST's frames and Whisper's chunk come from
their extractors; a waveform extractor states none, so its clip length is `clip_seconds` in its
`preprocessor_config.json` (written with every model built here), else `DEFAULT_CLIP_SECONDS`. Every clip is
padded/cropped to it, so training, the traced export, calibration and `trt-edge run` all see one shape.
Scoring, gates and the distillation loss are the shared classification ones (`classification.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.log import get_logger
from trt_edge.tasks import audio_data
from trt_edge.tasks.adapter import TaskAdapter
from trt_edge.tasks.audio_data import Clip
from trt_edge.tasks.classification import ClassificationOutputs
from trt_edge.tasks.config import DataConfig
from trt_edge.tasks.data import ClassificationData, Split
from trt_edge.tasks.spec import AUDIO_CLASSIFICATION as SPEC
from trt_edge.tasks.spec import TaskSpec

log = get_logger("data")

DEFAULT_CLIP_SECONDS = DataConfig().clip_seconds
# The shortest window any supported extractor analyses: 25 ms (AST's Kaldi fbank frame, Whisper's 400-point
# FFT at 16 kHz, wav2vec2's conv receptive field of 400 samples at 16 kHz). A file shorter holds no frame.
FRAME_SECONDS = 0.025


# --- data -------------------------------------------------------------------------------------------

def load_data(cfg: DataConfig) -> ClassificationData:
    """Clips of `task.data.source`: train/validation/test folders kept as they are (a count size caps a split,
    a fraction keeps it whole), else one folder split by voice (`audio_data.split_by_voice`). The
    `_background_noise_` recordings are mixed into the training clips (seeded); what loading did is recorded
    in `ClassificationData.preparation`."""
    if cfg.source.startswith("demo:"):
        raise TrtEdgeError(f"{cfg.source}: audio classification has no packaged demo data; synthesise spoken "
                           "commands with `trt-edge speech --out DIR` and set task.data.source: DIR")
    path = Path(cfg.source).expanduser()
    if not path.exists():
        raise TrtEdgeError(f"dataset not found: {path} (give a folder with one sub-folder of WAV/FLAC files per class)")
    if not path.is_dir():
        raise TrtEdgeError(f"{path}: an audio-classification task reads a folder of class folders (Speech Commands "
                           "layout), not a file")
    folders = [path / name for name in audio_data.SPLIT_FOLDERS]
    if any(f.is_dir() for f in folders):
        missing = [f.name for f in folders if not f.is_dir()]
        if missing:
            raise TrtEdgeError(f"{path}: has split folders but no {', '.join(missing)}; give all three of "
                               f"{', '.join(audio_data.SPLIT_FOLDERS)}, or class folders to split by voice")
        read = {f.name: audio_data.read_audio_folder(f, cfg.clip_seconds, FRAME_SECONDS) for f in folders}
        sizes = {"train": cfg.train_size, "validation": cfg.validation_size, "test": cfg.test_size}
        picks = {name: list(range(min(len(r.clips), int(sizes[name])) if sizes[name] >= 1 else len(r.clips)))
                 for name, r in read.items()}
        noise = read["train"].noise + audio_data.read_noise(path)  # train/_background_noise_ or the root's
        label_names = sorted(set(read["train"].labels))
        for name in ("validation", "test"):
            unknown = sorted(set(read[name].labels) - set(label_names))
            if unknown:
                raise TrtEdgeError(f"{path / name}: classes {unknown} have no training clips in {path / 'train'}")
        preparation = {name: audio_data.describe(r) for name, r in read.items()}
        parts = {name: ([read[name].clips[i] for i in picks[name]], [read[name].labels[i] for i in picks[name]],
                        [read[name].voices[i] for i in picks[name]]) for name in read}
    else:
        found = audio_data.read_audio_folder(path, cfg.clip_seconds, FRAME_SECONDS)
        noise = found.noise
        label_names = sorted(set(found.labels))
        indices = audio_data.split_by_voice(found.voices, (cfg.train_size, cfg.validation_size, cfg.test_size),
                                            cfg.seed, str(path))
        preparation = {"all": audio_data.describe(found)}
        parts = {name: ([found.clips[i] for i in idx], [found.labels[i] for i in idx], [found.voices[i] for i in idx])
                 for name, idx in indices.items()}
    if len(label_names) < 2:
        raise TrtEdgeError(f"{path}: a classification data set needs at least 2 classes, found {label_names}")
    for name, (clips, _, _) in parts.items():
        if not clips:
            raise TrtEdgeError(f"{path}: the {name} split is empty; give it clips (or more voices)")
    train_voices = set(parts["train"][2]) - {""}
    heard = sorted(train_voices & (set(parts["test"][2]) | set(parts["validation"][2])))
    if heard:
        log.warning("%s: voices %s are in training and in a held-out split; the test then measures known voices",
                    path, heard[:5])
    train_clips = [Clip(np.array(c), c.rate) for c in parts["train"][0]]  # a copy: noise is mixed in place
    mixed = audio_data.mix_noise(train_clips, noise, cfg.seed)
    index = {n: i for i, n in enumerate(label_names)}

    def split(name: str, clips: list[Clip]) -> Split:
        return Split(list(clips), [index[label] for label in parts[name][1]])

    data = ClassificationData(label_names, split("train", train_clips), split("validation", parts["validation"][0]),
                              split("test", parts["test"][0]))
    data.preparation = {"clip_seconds": cfg.clip_seconds, "files": preparation, "noise_mixed_clips": mixed,
                        "voices": {n: len(set(parts[n][2]) - {""}) for n in parts}}
    log.info("data %s: %d classes %s; train %d, validation %d, test %d clips (%s)", path.name, len(label_names),
             label_names, len(data.train), len(data.validation), len(data.test),
             "split by folder" if any(f.is_dir() for f in folders) else "split by voice")
    return data


def read_clips(source: Path) -> list[tuple[Path, Clip]]:
    """(file, clip) of a file, or of every audio file under a folder (`trt-edge run --audio`), each decoded to
    mono at its own rate; a folder with no audio is refused in one line."""
    files = [source] if source.is_file() else audio_data.audio_files(source) if source.is_dir() else []
    if not source.exists():
        raise TrtEdgeError(f"{source}: no such audio file or folder")
    if not files:
        raise TrtEdgeError(f"{source}: no audio (WAV/FLAC/OGG) files in this folder")
    out = []
    for file in files:
        clip, _ = audio_data.decode_audio(file)
        audio_data.check_frame(clip, FRAME_SECONDS, file)
        out.append((file, clip))
    return out


# --- the feature extractor --------------------------------------------------------------------------

def input_name(extractor: Any) -> str:
    """The model input the extractor makes (its first `model_input_names`), which must be one of the spec's."""
    names = list(getattr(extractor, "model_input_names", None) or [])
    if not names or names[0] not in SPEC.input_names:
        raise TrtEdgeError(f"the feature extractor makes {names}, not one of the audio inputs "
                           f"{list(SPEC.input_names)}")
    return str(names[0])


def sampling_rate(extractor: Any) -> int:
    rate = getattr(extractor, "sampling_rate", None)
    if not isinstance(rate, int) or rate <= 0:
        raise TrtEdgeError("the feature extractor states no sampling_rate (preprocessor_config.json)")
    return rate


def clip_samples(extractor: Any) -> int | None:
    """The samples a waveform model takes per clip (`clip_seconds` in its extractor, else the default), or None
    for a spectrogram extractor, which pads or truncates to its own length."""
    if input_name(extractor) != "input_values" or getattr(extractor, "max_length", None) is not None:
        return None
    seconds = float(getattr(extractor, "clip_seconds", None) or DEFAULT_CLIP_SECONDS)
    return round(seconds * sampling_rate(extractor))


def example_seconds(extractor: Any) -> float:
    """The seconds of audio one model input holds: a waveform model's clip, Whisper's chunk (`n_samples`), AST's
    `max_length` frames at its 10 ms shift plus one 25 ms window (Kaldi fbank framing)."""
    rate = sampling_rate(extractor)
    length = clip_samples(extractor)
    if length is not None:
        return length / rate
    n_samples = getattr(extractor, "n_samples", None)
    if isinstance(n_samples, int) and n_samples > 0:
        return n_samples / rate
    frames = int(getattr(extractor, "max_length", 0) or 0)
    return (frames - 1) * 0.010 + FRAME_SECONDS if frames > 0 else DEFAULT_CLIP_SECONDS


def frame_seconds(extractor: Any) -> float:
    """One analysis window of the extractor (Whisper's `n_fft`, else 25 ms)."""
    n_fft = getattr(extractor, "n_fft", None)
    return float(n_fft) / sampling_rate(extractor) if isinstance(n_fft, int) else FRAME_SECONDS


def extract(extractor: Any, clips: Sequence[Clip]) -> np.ndarray:
    """The model input for `clips` (float32, batch first): each resampled to the extractor's rate, a waveform
    padded/cropped to `clip_samples`, then the extractor's own features."""
    name, rate, length = input_name(extractor), sampling_rate(extractor), clip_samples(extractor)
    ready = []
    for clip in clips:
        if not isinstance(clip, Clip) or clip.rate <= 0:
            raise TrtEdgeError("audio examples must be decoded clips (trt_edge.tasks.audio_data.Clip)")
        audio_data.check_frame(clip, frame_seconds(extractor), "a clip")
        out = audio_data.resample(clip, rate)
        ready.append(np.asarray(audio_data.fit_length(np.asarray(out), length) if length else out, dtype=np.float32))
    if not ready:
        return np.zeros((0, 1), dtype=np.float32)
    kwargs: dict[str, Any] = {"sampling_rate": rate, "return_tensors": "np"}
    if length:
        kwargs["padding"] = "longest"
    try:
        features = extractor(ready, **kwargs)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise TrtEdgeError(f"the feature extractor cannot prepare these clips ({str(exc).splitlines()[0][:160]})") \
            from exc
    return np.asarray(features[name], dtype=np.float32)


def write_processor_config(folder: Path, model_config: Any, clip_seconds: float = DEFAULT_CLIP_SECONDS) -> None:
    """A feature extractor for a model built from a bare config, from what the config says: Whisper's log-mel
    (`num_mel_bins`, `max_source_positions` * 2 frames of 10 ms), AST's fbank (`num_mel_bins`, `max_length`
    frames), else a 16 kHz waveform extractor normalising each clip, recording `clip_seconds`."""
    from transformers import ASTFeatureExtractor, Wav2Vec2FeatureExtractor, WhisperFeatureExtractor

    kind = getattr(model_config, "model_type", "")
    extractor: Any
    if kind == "whisper":
        frames = int(model_config.max_source_positions) * 2
        if frames % 100:
            raise TrtEdgeError(f"a Whisper config of max_source_positions {model_config.max_source_positions} takes "
                               f"{frames} frames, not whole seconds of 100 frames: set it to a multiple of 50")
        extractor = WhisperFeatureExtractor(  # type: ignore[no-untyped-call]
            feature_size=int(model_config.num_mel_bins), chunk_length=frames // 100)
    elif kind == "audio-spectrogram-transformer":
        extractor = ASTFeatureExtractor(  # type: ignore[no-untyped-call]
            num_mel_bins=int(model_config.num_mel_bins), max_length=int(model_config.max_length))
    else:
        extractor = Wav2Vec2FeatureExtractor(  # type: ignore[no-untyped-call]
            feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False)
        extractor.clip_seconds = float(clip_seconds)
    extractor.save_pretrained(str(folder))


# --- batching and prediction (the adapter interface the stages call) -------------------------------

class Encoded:
    """Prepared clips: `features` hold one {input name: array} per example; lengths all 1 (one shape)."""

    def __init__(self, name: str, values: np.ndarray) -> None:
        self.values = values
        self.features = [{name: values[i]} for i in range(len(values))]
        self.pad_token_id = 0

    def __len__(self) -> int:
        return len(self.features)

    def lengths(self) -> list[int]:
        return [1] * len(self.features)


def encode(extractor: Any, clips: Sequence[Clip], max_length: int = 0) -> Encoded:
    """`max_length` is unused (a clip's length comes from the extractor); kept so every task shares one call."""
    del max_length
    return Encoded(input_name(extractor), extract(extractor, clips))


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if k in SPEC.input_names}


def config_input(model_config: Any) -> tuple[str, tuple[int, ...]]:
    """(input name, shape of one example) a model config implies, for callers with no extractor (the 2:4
    permutation's probe): Whisper's [mel, 2 x positions], AST's [max_length, mel], else a waveform of
    `DEFAULT_CLIP_SECONDS` at 16 kHz."""
    kind = getattr(model_config, "model_type", "")
    if kind == "whisper":
        return "input_features", (int(model_config.num_mel_bins), 2 * int(model_config.max_source_positions))
    if kind == "audio-spectrogram-transformer":
        return "input_values", (int(model_config.max_length), int(model_config.num_mel_bins))
    return "input_values", (round(DEFAULT_CLIP_SECONDS * 16000),)


def example_inputs(model_config: Any, names: Sequence[str], int32_inputs: bool, seed: int = 0,
                   preprocessor: Any = None) -> dict[str, Any]:
    """A traced example, batch 2: the extractor's features of seeded noise clips (the model's one input
    shape); without an extractor, seeded normal values of the shape the model config implies. Only the
    model's own input among `names` is returned."""
    import torch

    del int32_inputs
    rng = np.random.default_rng(seed)
    if preprocessor is None:
        name, shape = config_input(model_config)
        values = torch.from_numpy(rng.standard_normal((2, *shape)).astype(np.float32))
    else:
        name, rate = input_name(preprocessor), sampling_rate(preprocessor)
        length = clip_samples(preprocessor) or rate
        clips = [Clip(0.1 * rng.standard_normal(length), rate) for _ in range(2)]
        values = torch.from_numpy(extract(preprocessor, clips))
    return {n: values for n in names if n == name}


def feeds(extractor: Any, clips: Sequence[Clip],
          input_names: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    values = extract(extractor, clips)
    name = input_name(extractor)
    missing = [n for n in input_names if n != name]
    if missing:
        raise TrtEdgeError(f"the feature extractor gives {name!r}, not the model inputs {missing}")
    return {name: values}, np.ones(len(values), dtype=np.int64)


def runtime_feed(extractor: Any, clips: Sequence[Clip], runner_inputs: Sequence[Any],
                 runner_name: str = "the model") -> dict[str, np.ndarray]:
    """What a runner takes for decoded clips: the extractor's features, cast to the declared input's dtype."""
    name = input_name(extractor)
    wanted = {meta.name: meta for meta in runner_inputs}
    if set(wanted) != {name}:
        raise TrtEdgeError(f"{runner_name}: the model wants inputs {sorted(wanted)}, its feature extractor makes "
                           f"{name!r}; is it an audio model? (text takes --text, images --image)")
    return {name: extract(extractor, clips).astype(wanted[name].dtype)}


def preflight_model(folder: Path, preprocessor: Any, trust_remote_code: bool = False) -> str | None:
    """Before any training: the extractor makes one of the audio inputs and states its rate (one-line refusal
    otherwise), and what length every clip will take."""
    del folder, trust_remote_code
    name, rate, length = input_name(preprocessor), sampling_rate(preprocessor), clip_samples(preprocessor)
    if length is not None:
        return f"every clip is fed as {length} samples at {rate} Hz ({name})"
    return None


class AudioClassificationAdapter(ClassificationOutputs):
    """The audio-classification task as a `TaskAdapter` (the module functions above, bound)."""

    spec: TaskSpec = SPEC
    text_examples = False
    builds_from_config = True  # `write_processor_config` writes a feature extractor from the model config

    @property
    def has_sequence_axis(self) -> bool:
        return self.spec.has_sequence_axis

    def load_data(self, cfg: DataConfig) -> ClassificationData:
        return load_data(cfg)

    def display_examples(self, examples: Sequence[Any]) -> list[str] | None:
        return None

    def encode(self, preprocessor: Any, examples: Sequence[Any], max_length: int) -> Encoded:
        return encode(preprocessor, examples, max_length)

    def collate(self, features: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
        from trt_edge.tasks.image_classification import collate

        return collate(features, pad_token_id)

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return model_inputs(batch)

    def predict_logits(self, model: Any, encoded: Any, batch_size: int = 64, device: Any = None) -> np.ndarray:
        from trt_edge.tasks.image_classification import collate
        from trt_edge.tasks.text_classification import predict_logits as predict

        return predict(model, encoded, batch_size, device, collate_fn=collate)

    def example_inputs(self, model_config: Any, names: Sequence[str], int32_inputs: bool, seed: int = 0,
                       preprocessor: Any = None) -> dict[str, Any]:
        return example_inputs(model_config, names, int32_inputs, seed, preprocessor)

    def feeds(self, preprocessor: Any, examples: Sequence[Any], max_length: int,
              input_names: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The extractor's features (lengths all 1); `max_length` is unused (one clip length)."""
        del max_length
        return feeds(preprocessor, examples, input_names)

    def fit_model(self, model: Any, preprocessor: Any, source: str = "the model") -> str | None:
        """Nothing to resize: the extractor fixes the input length the model was configured for."""
        del model, preprocessor, source
        return None

    def preflight_model(self, folder: Path, preprocessor: Any, trust_remote_code: bool = False) -> str | None:
        return preflight_model(folder, preprocessor, trust_remote_code)

    def write_processor_config(self, folder: Path, model_config: Any) -> None:
        write_processor_config(folder, model_config)

    def example_seconds(self, preprocessor: Any) -> float | None:
        return example_seconds(preprocessor)

    def runtime_feed(self, preprocessor: Any, examples: Sequence[Any], runner_inputs: Sequence[Any],
                     max_length: int, source: str = "the model") -> dict[str, np.ndarray]:
        del max_length
        return runtime_feed(preprocessor, examples, runner_inputs, source)


ADAPTER: TaskAdapter = AudioClassificationAdapter()
