"""libtrt_edge (cpp/) held to the Python runtime: this test builds the library with CMake against the
onnxruntime wheel's libonnxruntime (cpp/fetch-onnxruntime.sh), writes the Python side's references (token ids
from the model's own Hugging Face tokenizer, logits from `OnnxRuntimeRunner` + `TextClassifier`, labels printed
by `trt-edge run`) and runs the library's ctest suite over them (cpp/tests/parity.cpp compares):

- token ids identical on 1,000 texts: packaged demo tweets plus Unicode, accents, emoji, CJK, control
  characters, special-token strings and over-long inputs; for WordPiece (the packaged MiniLM's
  tokenizer.json), for a RoBERTa-style byte-level BPE trained on the same texts here, and for an XLM-R-style
  SentencePiece Unigram (tests/cpp/data/unigram-tweets);
- logits within 1e-4 and the same labels on 200 of them (the real 3-layer MiniLM student, exported);
- `classify` on calibrate's CPU artifact gives the label `trt-edge run` prints, on 20 texts;
- on 20 PNG/JPEG images of another size than the model's, through a tiny ViT's preprocessor_config.json
  (bilinear), and on 20 more with a bicubic processor (upscaled and downscaled), pixels within 1e-5;
- `embed` within 1e-4 of the Python `TextEmbedder` (the packaged MiniLM exported as a sentence-embedding model);
- a folder whose model changed after SHA256SUMS was written is refused in one line.

The text model folders are the on-device bundles `trt-edge build` writes without TensorRT.

The build folder is build/cpp-tests in the checkout (gitignored), so a warm run only reconfigures.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).parents[2]
BUILD = ROOT / "build" / "cpp-tests"
TOLERANCE = 1e-4
# An XLM-R-style SentencePiece Unigram tokenizer (2,000 pieces, nmt_nfkc Precompiled normaliser, Metaspace),
# trained with sentencepiece on the packaged demo tweets' training split and converted with `tokenizers`'
# SentencePieceUnigramTokenizer.from_spm, then given XLM-R's specials and template: committed, since
# sentencepiece is not a dependency and no hub is reachable.
UNIGRAM_TOKENIZER = Path(__file__).parent / "data" / "unigram-tweets"
MAX_LENGTH = 128

pytestmark = pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("g++") is None
    or not any(Path(d, "utf8proc.h").is_file() for d in ("/usr/include", "/usr/local/include")),
    reason="needs cmake, g++ and Debian's libutf8proc-dev (.ci/run installs it) to build libtrt_edge")

# Texts the tweets rarely hold: every rule of the BERT normaliser and pre-tokenizer, and their corners.
EXTRA_TEXTS = [
    "Café déjà vu — naïve façade, Ångström, Øresund, Straße, İstanbul, ǅemal, ﬁne ﬂowers",
    "ÉCOLE ÉLÉMENTAIRE À PARIS", "Crème brûlée à la carte", "Zoë's résumé", "São Paulo, Bogotá, Kraków, Łódź",
    "I ❤️ this 😀😀 so much 🥰🫠👍🏽 👨‍👩‍👧‍👦 🇫🇷", "emoji inside words: hap😀py, ok👌ok", "☕️ + 🍰 = ✨",
    "中文字符测试：我喜欢这个！", "日本語のテキストとカタカナ、ひらがな", "한국어 텍스트입니다",
    "mixed 中文 and English 文字",
    "Ελληνικά κείμενα ΣΊΣΥΦΟΣ", "Русский текст с ударе́нием", "עברית ועוד", "العربية مع التشكيل: مَرْحَبًا",
    "हिन्दी पाठ", "ภาษาไทย", "tab\there\nnewline\r\nand\u00a0nbsp\u2003em\u3000ideographic",
    "zero\u200bwidth\u200djoiner\u00adsoft\ufeffbom", "control\x01chars\x7f and \x00 nul and \ufffd replacement",
    "private \ue000 use and \U0010fffd plane", "combining a\u0301 e\u0300 o\u0308 n\u0303 separately",
    "[CLS] literal specials [SEP] and [MASK] [UNK] [PAD] inside text", "[cls] lower [sep]", "[CLS][SEP][MASK]",
    "RoBERTa's specials: <s> a </s> b <mask> c<mask>d   <mask>  <pad><unk>", "it's we're they've I'm we'll he'd 'S",
    "spaces   between  words  ", "  leading and trailing\t\n", "x \n\n y\t\tz",
    "punctuation!!! ??? ... --- ((nested)) {braces} <tags> @user #hashtag $100 50% a&b ~tilde `tick`",
    "quotes “curly” ‘single’ «guillemets» „low“ and ellipsis…", "dashes ‐ ‑ ‒ – — ― and ¡¿ inverted",
    "math ∑∫√∞≈≠ ≤ ≥ ± × ÷ and symbols © ® ™ ° § ¶ † ‡", "numbers 1,234.56 ½ ¼ ① Ⅻ ² ³ ٣ ४",
    "http://example.com/path?q=1&r=2#frag and user@example.org", "CamelCaseWords and snake_case_words",
    "a" * 99, "b" * 100, "c" * 101, "supercalifragilisticexpialidocious" * 4, "",  "   ", "\n\t ",
    "word " * 300, "😀 " * 200, "long-" * 200, "é" * 150, "中" * 200,
]


def texts_for_parity(data_texts: list[str], n: int = 1000) -> list[str]:
    """The demo tweets, then the extra texts, 1,000 in all."""
    texts = list(EXTRA_TEXTS)
    for text in data_texts:
        if len(texts) >= n:
            break
        texts.append(text)
    assert len(texts) == n, f"only {len(texts)} texts"
    return texts


@pytest.fixture(scope="module")
def parity_texts(demo_data_config: Any) -> list[str]:
    from trt_edge.tasks.data import load_data

    data = load_data(demo_data_config)
    return texts_for_parity(data.train.texts + data.validation.texts + data.test.texts)


def _write(path: Path, value: dict[str, Any]) -> Path:
    path.write_text(json.dumps(value, ensure_ascii=False))
    return path


def _bundle(folder: Path, onnx: Path, preprocessor: Path) -> Path:
    """A model folder as a bundle lays it out: model.onnx, preprocessor/, SHA256SUMS over every file."""
    from trt_edge.engine.bundle import write_checksums

    folder.mkdir(parents=True)
    shutil.copy(onnx, folder / "model.onnx")
    pre = folder / "preprocessor"
    pre.mkdir()
    for f in preprocessor.iterdir():
        if f.is_file() and f.suffix in (".json", ".txt"):
            shutil.copy(f, pre / f.name)
    write_checksums(folder)
    return folder


def _trt_edge(args: list[str]) -> str:
    """What `trt-edge ARGS` prints (the CLI's own entry point, in this process)."""
    import contextlib
    import io

    from trt_edge.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(args)
    return out.getvalue()


def _trt_edge_run_labels(args: list[str]) -> list[str]:
    """The labels `trt-edge run ARGS` prints, one JSON line per input."""
    return [json.loads(line)["label"] for line in _trt_edge(["run", *args]).splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory, parity_texts: list[str], minilm_dir: Path,
               minilm_student_dir: Path, student_onnx: Path, demo_data_config: Any) -> Path:
    from trt_edge.config import RunConfig
    from trt_edge.quantize.stage import run as calibrate
    from trt_edge.runtime.ort import OnnxRuntimeRunner
    from trt_edge.runtime.text import TASK, TextClassifier

    data = tmp_path_factory.mktemp("cpp-references")
    tokenizer = TASK.spec.preprocessor.load(minilm_dir)
    enc = [tokenizer(t, truncation=True, max_length=MAX_LENGTH) for t in parity_texts]
    _write(data / "tokens.json", {"tokenizer": str(minilm_dir / "tokenizer.json"), "max_length": MAX_LENGTH,
                                  "texts": parity_texts, "input_ids": [e["input_ids"] for e in enc],
                                  "token_type_ids": [e["token_type_ids"] for e in enc]})

    onnx = student_onnx / "model.onnx" if student_onnx.is_dir() else student_onnx
    source = _bundle(data / "student", onnx, minilm_student_dir)
    # The on-device bundle `trt-edge build` writes without TensorRT (model.onnx, tokenizer/, SHA256SUMS, the
    # build script and plan template): what a Jetson app loads before, or instead of, the engine.
    _trt_edge(["build", "--onnx", str(source / "model.onnx"), "--out", str(data / "build")])
    model = data / "build" / "bundle"
    texts = parity_texts[::5]
    with OnnxRuntimeRunner(model / "model.onnx") as runner:
        classifier = TextClassifier.from_model_file(runner, model / "model.onnx", max_length=MAX_LENGTH)
        logits = classifier.logits(texts)
        labels = [p.label for p in classifier.classify(texts)]
    _write(data / "logits.json", {"model": str(model), "max_length": MAX_LENGTH, "tolerance": TOLERANCE,
                                  "texts": texts, "logits": logits.tolist(), "labels": labels})

    tampered = data / "tampered"
    shutil.copytree(model, tampered)
    with open(tampered / "model.onnx", "r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    _write(data / "refuse.json", {"model": str(tampered), "expect": "(sha256 mismatch): model.onnx"})

    cfg = RunConfig({"task": {"max_length": MAX_LENGTH, "data": demo_data_config.to_dict()},
                     "calibrate": {"targets": ["cpu"], "data": {"samples": 32}, "tokenizer": str(minilm_student_dir),
                                   "cpu": {"runs": 1, "candidates": ["fp32", "dynamic-int8"], "budget": 100.0}}})
    calibrate(cfg, onnx, data / "calibrate")
    cpu_texts = parity_texts[len(EXTRA_TEXTS):len(EXTRA_TEXTS) + 20]
    # One text per call, as the C++ library classifies: a dynamic-int8 winner quantizes its activations with
    # scales taken from the whole batch, so the Python label of a text depends on the texts batched with it.
    cpu_onnx = str(data / "calibrate" / "model.cpu.onnx")
    run_labels = [label for t in cpu_texts for label in _trt_edge_run_labels(["--onnx", cpu_onnx, "--text", t])]
    _write(data / "cpu_labels.json", {"model": str(data / "calibrate"), "max_length": MAX_LENGTH,
                                      "texts": cpu_texts, "labels": run_labels})
    _write(data / "tokens-bpe.json", _bpe_references(data, parity_texts))
    _write(data / "tokens-unigram.json", _token_reference(UNIGRAM_TOKENIZER, parity_texts))
    _image_references(data)
    _audio_references(data)
    _embedding_references(data, minilm_dir, texts[:40])
    return data


# Generated clips: (rate, channels, soundfile subtype, seconds). Every decoder path (PCM 8/16/24/32-bit, float
# 32/64, WAVE_FORMAT_EXTENSIBLE for 6 channels), the resampler up and down (8, 11.025, 22.05, 32, 44.1, 48 kHz
# to 16 kHz), the downmix, and clips shorter and longer than each model's input (padded, cropped, truncated).
AUDIO_CLIPS = [(16000, 1, "PCM_16", 0.5), (8000, 1, "PCM_16", 0.45), (22050, 2, "PCM_24", 0.4),
               (44100, 2, "FLOAT", 0.7), (48000, 6, "PCM_32", 0.5), (11025, 1, "PCM_U8", 0.6),
               (16000, 2, "DOUBLE", 0.3), (32000, 1, "PCM_16", 1.3)]
AUDIO_FAMILIES = ("wav2vec2", "whisper", "ast")
# float32 features: the C++ extractors compute in double and round where Python rounds, so what is left is
# float32 rounding (of the resampled samples, numpy's float32 mean/variance, torch's float32 STFT).
AUDIO_FEATURE_TOLERANCE = 1e-4


def _audio_references(data: Path) -> None:
    """For each tiny random audio classifier (wav2vec2, Whisper, AST) exported to ONNX in a bundle-style folder,
    the clips of AUDIO_CLIPS (tones and noise) written as WAV files: the Python features (`extract`), their ONNX
    logits, and the labels `trt-edge run --audio` prints. Also scipy's resample_poly on noise for each rate pair."""
    from scipy.signal import resample_poly

    from tests.tasks.audio_helpers import LABELS, tone, write_audio_model, write_clip
    from trt_edge.export.exporter import export_onnx
    from trt_edge.runtime.ort import OnnxRuntimeRunner
    from trt_edge.tasks.audio_classification import extract
    from trt_edge.tasks.audio_data import decode_audio, resample_factors
    from trt_edge.tasks.spec import AUDIO_CLASSIFICATION

    rng = np.random.default_rng(0)
    folder = data / "audio-clips"
    files = []
    for i, (rate, channels, subtype, seconds) in enumerate(AUDIO_CLIPS):
        if i % 4 == 3:  # noise, no tone
            samples = (0.3 * rng.standard_normal((int(seconds * rate), channels))).clip(-1, 1).astype(np.float32)
        else:
            samples = tone(LABELS[i % len(LABELS)], seconds, rate, seed=i, channels=channels)
        name = f"{i:02d}-{rate}hz-{channels}ch-{subtype.lower()}.wav"
        files.append(write_clip(folder / name, samples, rate, subtype))
    clips = [decode_audio(f)[0] for f in files]
    for family in AUDIO_FAMILIES:
        source = write_audio_model(data / f"audio-{family}-model", family)
        _spread_head(source, clips)
        export = data / f"audio-{family}-export"
        export.mkdir()
        export_onnx(source, export / "model.onnx", dynamo=False, task=AUDIO_CLASSIFICATION.name)
        model = _bundle(data / f"audio-{family}", export / "model.onnx", source)
        extractor = AUDIO_CLASSIFICATION.preprocessor.load(model / "preprocessor")
        features = [extract(extractor, [clip])[0] for clip in clips]
        with OnnxRuntimeRunner(model / "model.onnx") as runner:
            name = runner.inputs()[0].name
            logits = [runner.infer({name: x[None]})["logits"][0] for x in features]
        run = _trt_edge(["run", "--onnx", str(model / "model.onnx"), "--audio", str(folder)])
        printed = {json.loads(line)["audio"]: json.loads(line)["label"] for line in run.splitlines()
                   if line.startswith("{")}
        _write(data / f"audio_{family}.json", {
            "model": str(model), "files": [str(f) for f in files], "features": [x.ravel().tolist() for x in features],
            "logits": [np.asarray(x).tolist() for x in logits], "labels": [printed[str(f)] for f in files],
            "tolerance": TOLERANCE, "feature_tolerance": AUDIO_FEATURE_TOLERANCE})
    _full_size_extractor_references(data)
    cases = []
    for rate in sorted({r for r, _, _, _ in AUDIO_CLIPS} - {16000}):
        up, down = resample_factors(rate, 16000)
        x = (0.5 * rng.standard_normal(rate // 10)).astype(np.float32)
        y = resample_poly(x.astype(np.float64), up, down).astype(np.float32)
        cases.append({"up": up, "down": down, "x": x.tolist(), "y": y.tolist()})
    _write(data / "resample.json", {"cases": cases, "tolerance": 1e-6})


def _full_size_extractor_references(data: Path) -> None:
    """The extractors at the size real checkpoints use (transformers' defaults: Whisper's 80 mel bins over a 30 s
    chunk, AST's 128 bins over 1024 frames), which the tiny models do not reach: the Python features of a 3 s
    44.1 kHz stereo clip and a 12 s 16 kHz one (longer than AST's 10.24 s: truncated)."""
    from transformers import ASTFeatureExtractor, WhisperFeatureExtractor

    from tests.tasks.audio_helpers import tone, write_clip
    from trt_edge.tasks.audio_classification import extract
    from trt_edge.tasks.audio_data import decode_audio

    files = [write_clip(data / "audio-long" / "a.wav", tone("mid", 3.0, 44100, seed=1, channels=2), 44100, "PCM_16"),
             write_clip(data / "audio-long" / "b.wav", tone("high", 12.0, 16000, seed=2), 16000, "FLOAT")]
    clips = [decode_audio(f)[0] for f in files]
    with warnings.catch_warnings():  # transformers' own default AST bank has an all-zero filter; it says so
        warnings.simplefilter("ignore", UserWarning)
        ast = ASTFeatureExtractor()  # type: ignore[no-untyped-call]
    for name, extractor in (("whisper", WhisperFeatureExtractor()), ("ast", ast)):  # type: ignore[no-untyped-call]
        extractor.save_pretrained(str(data / f"extractor-{name}"))  # type: ignore[no-untyped-call]
        _write(data / f"features_{name}.json", {
            "processor": str(data / f"extractor-{name}" / "preprocessor_config.json"), "files": [str(f) for f in files],
            "features": [extract(extractor, [c])[0].ravel().tolist() for c in clips],
            "feature_tolerance": AUDIO_FEATURE_TOLERANCE})


def _spread_head(folder: Path, clips: list[Any]) -> None:
    """Rescale and centre a random model's classification layer on `clips`: a random tiny audio model gives
    every clip nearly the same logits (the same label), so the label comparison would prove nothing. The last
    linear layer becomes k * (logits - their mean over the clips), k bringing their spread to about 1: the
    labels then differ from clip to clip and follow the features."""
    import torch
    import transformers

    from trt_edge.tasks.audio_classification import extract, input_name
    from trt_edge.tasks.spec import AUDIO_CLASSIFICATION

    model = transformers.AutoModelForAudioClassification.from_pretrained(str(folder)).eval()
    extractor = AUDIO_CLASSIFICATION.preprocessor.load(folder)
    classes = model.config.num_labels
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == classes][-1]
    with torch.no_grad():
        logits = model(**{input_name(extractor): torch.from_numpy(extract(extractor, clips))}).logits
        k = 1.0 / float(logits.std(0).mean())
        head.weight.mul_(k)
        head.bias.copy_(k * (head.bias - logits.mean(0)))
    model.save_pretrained(str(folder), safe_serialization=True)


def _embedding_references(data: Path, minilm_dir: Path, texts: list[str]) -> None:
    """The packaged MiniLM exported as a sentence-embedding model (pooling and normalisation in the graph):
    the Python `TextEmbedder`'s vectors."""
    from trt_edge.export.exporter import export_onnx
    from trt_edge.runtime.embedding import TextEmbedder
    from trt_edge.runtime.ort import OnnxRuntimeRunner
    from trt_edge.tasks.spec import SENTENCE_EMBEDDING

    folder = data / "embed"
    folder.mkdir()
    export_onnx(minilm_dir, folder / "model.onnx", dynamo=False, task=SENTENCE_EMBEDDING.name)
    SENTENCE_EMBEDDING.preprocessor.copy(minilm_dir, folder / "preprocessor")
    with OnnxRuntimeRunner(folder / "model.onnx") as runner:
        vectors = TextEmbedder.from_model_file(runner, folder / "model.onnx", max_length=MAX_LENGTH).embed(texts)
    _write(data / "embed.json", {"model": str(folder), "max_length": MAX_LENGTH, "tolerance": TOLERANCE,
                                 "texts": texts, "vectors": vectors.tolist()})


def _bpe_references(data: Path, texts: list[str]) -> dict[str, Any]:
    """A RoBERTa-style byte-level BPE tokenizer trained here on the texts (no hub: `tokenizers`' trainer),
    saved as a Hugging Face tokenizer folder and loaded back the way the kit loads one; its ids."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=3000, special_tokens=specials,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    folder = data / "bpe-tokenizer"
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                            pad_token="<pad>", mask_token="<mask>").save_pretrained(str(folder))
    return _token_reference(folder, texts)


def _token_reference(folder: Path, texts: list[str]) -> dict[str, Any]:
    """The ids of the Hugging Face tokenizer in `folder`, loaded the way the kit loads one."""
    from trt_edge.runtime.text import TASK

    loaded = TASK.spec.preprocessor.load(folder)
    enc = [loaded(t, truncation=True, max_length=MAX_LENGTH) for t in texts]
    return {"tokenizer": str(folder / "tokenizer.json"), "max_length": MAX_LENGTH, "texts": texts,
            "input_ids": [e["input_ids"] for e in enc],
            "token_type_ids": [e.get("token_type_ids", [0] * len(e["input_ids"])) for e in enc]}


def _image_references(data: Path) -> None:
    """A tiny random ViT (16x16 input, bilinear processor) exported to ONNX, and 20 PNG/JPEG images of 37x29
    pixels (so the processor resizes them), grey and colour; then the same model with a bicubic processor
    on 20 images half upscaled (12x10), half downscaled (64x48). The Python pixels, logits and `trt-edge run`
    labels of each."""
    from PIL import Image as PILImage

    from tests.tasks.vision_helpers import write_image_folder, write_vision_model
    from trt_edge.engine.bundle import write_checksums
    from trt_edge.export.exporter import export_onnx

    vit = write_vision_model(data / "vit-model", "vit")
    export = data / "vit-export"
    export.mkdir()
    export_onnx(vit, export / "model.onnx", dynamo=False, task="image-classification")
    model = _bundle(data / "vit", export / "model.onnx", vit)
    bicubic = data / "vit-bicubic"
    shutil.copytree(model, bicubic)
    config_file = bicubic / "preprocessor" / "preprocessor_config.json"
    config = json.loads(config_file.read_text())
    config["resample"] = 3
    config_file.write_text(json.dumps(config))
    write_checksums(bicubic)

    folder = write_image_folder(data / "images-src", per_class=7, size=37, mode="RGB")
    sources = sorted(folder.rglob("*.png"))[:20]
    for name, bundle, sizes in (("image_labels", model, [(37, 29)] * 20),
                                ("image_labels_bicubic", bicubic, [(12, 10)] * 10 + [(64, 48)] * 10)):
        images: list[Path] = []
        for i, (png, size) in enumerate(zip(sources, sizes, strict=True)):
            img = PILImage.open(png).resize(size)
            if i % 4 == 1:
                img = img.convert("L")  # grey images: repeated to the model's three channels
            target = data / name / (f"{i:02d}.jpg" if i % 3 == 0 else f"{i:02d}.png")
            target.parent.mkdir(exist_ok=True)
            img.save(target)
            images.append(target)
        _write(data / f"{name}.json", _image_reference(bundle, images))


def _image_reference(model: Path, images: list[Path]) -> dict[str, Any]:
    from trt_edge.runtime.ort import OnnxRuntimeRunner
    from trt_edge.tasks.image_classification import decode_image, pixel_values, processor_channels
    from trt_edge.tasks.spec import task_spec

    processor = task_spec("image-classification").preprocessor.load(model / "preprocessor")
    pixels = [pixel_values(processor, [decode_image(f)], processor_channels(processor))[0] for f in images]
    with OnnxRuntimeRunner(model / "model.onnx") as runner:
        logits = [runner.infer({"pixel_values": p[None].astype(np.float32)})["logits"][0] for p in pixels]
    labels = _trt_edge_run_labels(["--onnx", str(model / "model.onnx"), "--image", str(images[0].parent)])
    # 1e-5 after normalisation is well under one grey level (2/255 here): the resize must equal Pillow's.
    return {"model": str(model), "images": [str(f) for f in images],
            "pixel_values": [p.ravel().tolist() for p in pixels], "logits": [np.asarray(x).tolist() for x in logits],
            "labels": labels, "pixel_tolerance": 1e-5}


@pytest.fixture(scope="module")
def ctest(references: Path) -> subprocess.CompletedProcess[str]:
    """Build libtrt_edge and its tests (CMake, 2 jobs) and run ctest over the references."""
    subprocess.run(["bash", str(ROOT / "cpp" / "fetch-onnxruntime.sh"), sys.executable], check=True, cwd=ROOT,
                   capture_output=True, text=True, timeout=600)
    subprocess.run(["cmake", "-S", str(ROOT / "cpp"), "-B", str(BUILD), f"-DTRT_EDGE_TEST_DATA={references}",
                    f"-DONNXRUNTIME_ROOT={ROOT / '.cache' / 'onnxruntime'}", "-DCMAKE_BUILD_TYPE=Release"],
                   check=True, capture_output=True, text=True, timeout=300)
    build = subprocess.run(["cmake", "--build", str(BUILD), "-j", "2"], capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return subprocess.run(["ctest", "--test-dir", str(BUILD), "--output-on-failure", "-V"], capture_output=True,
                          text=True, timeout=600)


def _ctest_output(result: subprocess.CompletedProcess[str], name: str) -> str:
    lines = [line for line in result.stdout.splitlines() if f": {name}" in line or line.startswith(f"{name}")]
    return "\n".join(lines) or result.stdout[-4000:]


@pytest.mark.parametrize("name", ["tokenizer_parity", "bpe_tokenizer_parity", "unigram_tokenizer_parity",
                                  "logits_parity", "cpu_artifact_labels",
                                  "image_labels", "image_labels_bicubic", "embed_parity", "checksum_refusal",
                                  "audio_labels_wav2vec2", "audio_labels_whisper", "audio_labels_ast",
                                  "audio_resample_parity", "audio_features_whisper_full_size",
                                  "audio_features_ast_full_size"])
def test_ctest(ctest: subprocess.CompletedProcess[str], name: str) -> None:
    assert "Test #" in ctest.stdout and name in ctest.stdout, ctest.stdout[-3000:] + ctest.stderr[-2000:]
    passed = [line for line in ctest.stdout.splitlines() if name in line and "Passed" in line]
    assert passed, f"ctest {name} did not pass:\n" + ctest.stdout[-6000:]


def test_the_parity_texts_hold_what_the_issue_asks() -> None:
    """Unicode, accents, emoji and over-long inputs are in the set (and the set is 1,000 texts)."""
    texts = texts_for_parity(["tweet"] * 1000)
    assert len(texts) == 1000
    assert any(any(ord(c) > 0x1F000 for c in t) for t in texts)  # emoji
    assert any("\u0301" in t or "é" in t for t in texts)  # accents
    assert any(len(t.split()) > MAX_LENGTH for t in texts)  # over-long: truncated
    assert any("中" in t for t in texts)


@pytest.fixture(scope="module")
def app(ctest: subprocess.CompletedProcess[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/cpp's trt_edge_app, built with find_package(trt_edge) against libtrt_edge installed with
    `cmake --install` (the library, its headers, its CMake package and the libonnxruntime beside it)."""
    prefix = tmp_path_factory.mktemp("trt-edge-install")
    subprocess.run(["cmake", "--install", str(BUILD), "--prefix", str(prefix)], check=True, capture_output=True,
                   timeout=120)
    build = prefix / "app-build"
    subprocess.run(["cmake", "-S", str(ROOT / "examples" / "cpp"), "-B", str(build), f"-DCMAKE_PREFIX_PATH={prefix}"],
                   check=True, capture_output=True, timeout=120)
    subprocess.run(["cmake", "--build", str(build), "--target", "trt_edge_app"], check=True, capture_output=True,
                   timeout=300)
    return build / "trt_edge_app"


def test_the_example_app_on_the_installed_library(app: Path, references: Path) -> None:
    ref = json.loads((references / "logits.json").read_text())
    texts, labels = ref["texts"][len(EXTRA_TEXTS) // 5:][:3], ref["labels"][len(EXTRA_TEXTS) // 5:][:3]
    out = subprocess.run([str(app), ref["model"], "--backend", "onnxruntime",
                          *[a for t in texts for a in ("--text", t)]], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [line.split("\t")[0] for line in out.stdout.splitlines()] == labels
    refused = subprocess.run([str(app), str(references / "tampered"), "--text", "hi"], capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "(sha256 mismatch): model.onnx" in refused.stderr
    image = json.loads((references / "image_labels_bicubic.json").read_text())
    out = subprocess.run([str(app), image["model"], "--image", image["images"][0]], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.split("\t")[0] == image["labels"][0], out.stderr


def test_the_example_app_classifies_audio(app: Path, references: Path) -> None:
    """`--audio FILE` on the installed library: the labels `trt-edge run --audio` printed (a 44.1 kHz stereo
    float WAV, a 48 kHz 6-channel PCM-32 one, an 8 kHz mono one), for each family."""
    for family in AUDIO_FAMILIES:
        ref = json.loads((references / f"audio_{family}.json").read_text())
        picks = [1, 3, 4]
        out = subprocess.run([str(app), ref["model"], *[a for i in picks for a in ("--audio", ref["files"][i])]],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert [line.split("\t")[0] for line in out.stdout.splitlines()] == [ref["labels"][i] for i in picks]


def _bad_case(name: str, references: Path, tmp: Path) -> tuple[list[str], str]:
    """(app arguments, the text the one-line error must hold) for bad input `name`."""
    student, vit = references / "student", references / "vit"
    if name == "no-folder":
        return [str(tmp / "missing"), "--text", "hi"], "not a folder"
    if name == "no-model":
        (tmp / "m").mkdir()
        shutil.copy(student / "preprocessor" / "tokenizer.json", tmp / "m" / "tokenizer.json")
        return [str(tmp / "m"), "--text", "hi"], "no model.cpu.onnx or model.onnx"
    if name == "no-preprocessor":
        (tmp / "m").mkdir()
        shutil.copy(student / "model.onnx", tmp / "m" / "model.onnx")
        return [str(tmp / "m"), "--text", "hi"], "no tokenizer.json or preprocessor_config.json"
    if name == "wordlevel-tokenizer":
        shutil.copytree(student, tmp / "m")
        (tmp / "m" / "SHA256SUMS").unlink()
        tok = tmp / "m" / "preprocessor" / "tokenizer.json"
        doc = json.loads(tok.read_text())
        doc["model"] = {"type": "WordLevel", "unk_token": "[UNK]", "vocab": {"[UNK]": 0}}
        tok.write_text(json.dumps(doc))
        return [str(tmp / "m"), "--text", "hi"], "tokenizer model WordLevel is not implemented"
    if name == "bad-sums-line":
        shutil.copytree(student, tmp / "m")
        (tmp / "m" / "SHA256SUMS").write_text("not a checksum line\n")
        return [str(tmp / "m"), "--text", "hi"], "not a sha256sum line"
    if name == "swapped-model":  # a model.onnx replaced together with a regenerated SHA256SUMS
        from trt_edge.engine.bundle import write_checksums

        shutil.copytree(references / "build" / "bundle", tmp / "m")
        shutil.copy(vit / "model.onnx", tmp / "m" / "model.onnx")
        write_checksums(tmp / "m")
        return [str(tmp / "m"), "--text", "hi"], "not the model the bundle was made for"
    if name == "not-an-image":
        (tmp / "x.png").write_text("hello")
        return [str(vit), "--image", str(tmp / "x.png")], "not a PNG or JPEG file"
    if name == "truncated-png":
        data = next((references / "image_labels").glob("*.png")).read_bytes()
        (tmp / "t.png").write_bytes(data[: len(data) // 2])
        return [str(vit), "--image", str(tmp / "t.png")], "PNG decoding failed"
    if name == "image-to-text-model":
        return [str(student), "--image", str(next((references / "image_labels").glob("*.png")))], "a text model"
    if name == "text-to-image-model":
        return [str(vit), "--text", "hi"], "an image model"
    audio, clip = references / "audio-wav2vec2", str(next((references / "audio-clips").glob("00-*.wav")))
    if name == "audio-to-text-model":
        return [str(student), "--audio", clip], "a text model: classify a text, not audio"
    if name == "text-to-audio-model":
        return [str(audio), "--text", "hi"], "an audio model: classify audio, not a text"
    if name == "flac-audio":
        (tmp / "x.flac").write_bytes(b"fLaC" + bytes(60))
        return [str(audio), "--audio", str(tmp / "x.flac")], "FLAC/OGG is not decoded by libtrt_edge"
    if name == "not-a-wav":
        (tmp / "x.wav").write_text("hello there, not audio")
        return [str(audio), "--audio", str(tmp / "x.wav")], "not a WAV file"
    if name == "truncated-wav":
        data = Path(clip).read_bytes()
        (tmp / "t.wav").write_bytes(data[: len(data) // 2])
        return [str(audio), "--audio", str(tmp / "t.wav")], "truncated WAV file"
    if name == "too-short-audio":
        from tests.tasks.audio_helpers import write_clip

        write_clip(tmp / "s.wav", np.zeros(100, dtype=np.float32), 16000)
        return [str(audio), "--audio", str(tmp / "s.wav")], "shorter than one model frame"
    if name == "odd-rate-audio":
        from tests.tasks.audio_helpers import write_clip

        write_clip(tmp / "r.wav", np.zeros(4411, dtype=np.float32), 44101)
        return [str(audio), "--audio", str(tmp / "r.wav")], "cannot resample 44101 Hz"
    if name == "unknown-extractor":
        shutil.copytree(audio, tmp / "m")
        (tmp / "m" / "SHA256SUMS").unlink()
        file = tmp / "m" / "preprocessor" / "preprocessor_config.json"
        file.write_text(json.dumps({**json.loads(file.read_text()), "feature_extractor_type": "ClapFeatureExtractor"}))
        return [str(tmp / "m"), "--audio", clip], "feature extractor ClapFeatureExtractor is not implemented"
    if name == "tensorrt-without-tensorrt":
        return [str(student), "--backend", "tensorrt", "--text", "hi"], "no model.plan"
    if name == "unknown-backend":
        return [str(student), "--backend", "cuda", "--text", "hi"], "backend cuda is not one of"
    raise ValueError(name)


@pytest.mark.parametrize("name", ["no-folder", "no-model", "no-preprocessor", "wordlevel-tokenizer", "bad-sums-line",
                                  "swapped-model",
                                  "not-an-image", "truncated-png", "image-to-text-model", "text-to-image-model",
                                  "tensorrt-without-tensorrt", "unknown-backend", "audio-to-text-model",
                                  "text-to-audio-model", "flac-audio", "not-a-wav", "truncated-wav",
                                  "too-short-audio", "odd-rate-audio", "unknown-extractor"])
def test_bad_input_is_one_line_and_exit_2(name: str, app: Path, references: Path, tmp_path: Path) -> None:
    args, expected = _bad_case(name, references, tmp_path)
    out = subprocess.run([str(app), *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ") and expected in out.stderr, out.stderr
