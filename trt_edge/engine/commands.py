"""CLI commands of this area, mixed into `trt_edge.cli.TrtEdge`.

Keep each method a few lines: build the config, call the library, print a short summary. Import heavy
modules inside the method so `trt-edge --help` stays fast and works without optional libraries.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from trt_edge.guard import writes_output


def _version(value: Any) -> str:
    # The CLI hands version strings over verbatim (cli_util.verbatim_argv: `10.10` stays "10.10"); a float
    # can only come from Python callers, where 10.10 is already 10.1: refuse what cannot be a version.
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        from trt_edge.errors import TrtEdgeError

        raise TrtEdgeError(f"--trt-version takes a version such as 10.3 or 10.13, got {value!r}")
    return str(value)


class EngineCommands:
    """Commands of the engine area: build, triton, run."""

    @writes_output()
    def build(self, onnx: str = "", out: str = "runs/build", config: str = "", precision: str = "",
              trt_version: Any = "", device: str = "", plan: str = "", bundle: bool = False, tokenizer: str = "",
              **overrides: Any) -> None:
        """Build a TensorRT plan (+ manifest), or, without TensorRT, an on-device build bundle.

        Args:
          onnx: an ONNX file, or an export/calibrate/qat stage folder (a calibrate or qat folder brings its
            Q/DQ ONNX, calibration cache and calibration set).
          out: output folder: `model.plan`, `model.plan.json`, `model.layers.json`, `build.log`, or
            `bundle/`; plus `stage.json`.
          config: YAML config (sections `task` and `build`); empty for the defaults.
          precision: fp16, int8-qdq, int8-cache, best, fp8-qdq, typed or fp32 (build.precision).
          trt_version: target TensorRT, e.g. 10.3, 10.13, 8.5, 11.1 (default: from build.jetpack).
          device: target Jetson from the catalog, e.g. agx-orin-64gb, orin-nano-8gb, agx-thor.
          plan: a plan.json from a bundle (what build_on_device.sh passes); the config is then ignored.
          bundle: write the on-device bundle even where TensorRT is installed.
          tokenizer: tokenizer folder to ship with the plan (found next to the ONNX otherwise).
          **overrides: `--build.sparse_weights=true`, or bare build keys: `--dla_core=0`,
            `--batch=[1,8,32]`, `--workspace_mib=2048`.
        """
        from trt_edge.config import load_config
        from trt_edge.engine.stage import run
        from trt_edge.errors import TrtEdgeError

        if not onnx:
            raise TrtEdgeError("build needs --onnx FILE_OR_STAGE_DIR")
        for key, value in (("precision", precision), ("trt_version", trt_version), ("device", device)):
            if value not in ("", None):
                # The target's keys live in the `target:` section, which export and calibrate read too.
                name = key if key == "precision" else f"target.{key}"
                overrides[name] = _version(value) if key == "trt_version" else value
        record = run(load_config(config or None, overrides, "build"), onnx, out, plan_file=plan or None,
                     bundle=bundle, tokenizer=tokenizer or None)
        metrics = record.metrics
        keys = ("built", "tensorrt", "trt_version", "device", "precision", "plan_bytes", "sparse_layers",
                "sparsity_warning", "precisions", "reason", "warnings")
        print(json.dumps({k: metrics[k] for k in keys if k in metrics}, indent=2, default=str))
        if not metrics.get("built"):
            print(f"NO PLAN BUILT: {metrics.get('reason')}. On-device bundle written to "
                  f"{os.path.join(out, 'bundle')}; run build_on_device.sh there on the Jetson.", file=sys.stderr)
        else:
            print(f"plan written to {os.path.join(out, 'model.plan')} (manifest model.plan.json)", file=sys.stderr)

    @writes_output()
    def triton(self, bundle: str = "", out: str = "runs/triton", name: Any = "", max_batch: Any = None) -> None:
        """Write a Triton Inference Server model repository (one folder per model: config.pbtxt, 1/model.plan
        or 1/model.onnx, the preprocessor, labels.txt) from what trt-edge wrote, each config.pbtxt checked with
        Triton's model_config.proto (docs/triton.md). Triton itself is not run.

        Args:
          bundle: an on-device bundle (its engine/ picked up when build_on_device.sh built one), an engine
            folder (model.plan + model.plan.json), or a build, calibrate (the CPU artifact) or export stage
            folder. Every artifact's sha256 is checked against its manifest or stage.json first.
          out: the repository folder: new, empty, or one this command wrote before.
          name: model name prefix (default: the task, e.g. text_classification -> text_classification_trt,
            text_classification_onnx, text_classification_cpu).
          max_batch: max_batch_size of an ONNX Runtime model (default: the plan's profile where the source has
            one, else build.batch's max); a plan's comes from its optimization profile.
        """
        from trt_edge.engine.triton import write_repository
        from trt_edge.errors import TrtEdgeError

        if not bundle:
            raise TrtEdgeError("triton needs --bundle FOLDER (a bundle, an engine folder or a stage folder)")
        batch = _positive_int(max_batch, "max-batch") if max_batch not in (None, "") else None
        record = write_repository(bundle, out, str(name) if name not in ("", None) else None, batch)
        for model in record.metrics["models"]:
            print(json.dumps(model))
        print(f"Triton model repository written to {out} (each config.pbtxt parsed with Triton's "
              "model_config.proto; Triton itself was not run)", file=sys.stderr)

    def run(self, text: Any = "", engine: str = "", onnx: str = "", tokenizer: str = "", max_length: Any = None,
            providers: str = "", allow_host_code: bool = False, cuda_graph: bool = False, text_file: str = "",
            lines: bool = False, image: Any = "", top: Any = None, corpus: str = "", overlay: str = "",
            audio: Any = "", stream: str = "", window: Any = None, hop: Any = 0.25, threshold: Any = 0.5) -> None:
        """Run a TensorRT plan or an ONNX model end to end, printing one JSON line per input: a classifier's
        label and probabilities, or a sentence-embedding model's vector (or, with --top K --corpus FILE,
        the K corpus lines nearest each text, best first, with their cosine).

        Args:
          text: the text to classify or embed, taken verbatim (commas, numbers and quotes included);
            repeat --text for several texts.
          engine: a TensorRT plan (its manifest model.plan.json is checked first).
          onnx: an ONNX model, run with ONNX Runtime (or an export/calibrate stage folder).
          tokenizer: the folder with the model's preprocessor (tokenizer, or preprocessor_config.json for an
            image model); the one that travels with the model is used otherwise.
          max_length: tokens per text after truncation. Defaults to 128 (or the model's positions if fewer).
          providers: ONNX Runtime providers, comma-separated (cpu, cuda, tensorrt). Defaults to cpu.
          allow_host_code: run a plan that embeds host code (version-compatible, serialized plugins).
          cuda_graph: replay the TensorRT enqueue from a CUDA graph.
          text_file: read the text from this UTF-8 file instead (for long input); `-` reads standard input.
          lines: with --text-file, classify (or embed, or search with) each non-empty line as its own text.
          image: a PNG/JPEG file, or a folder of them (its own files, by name), for an image model: a
            classifier prints label and probabilities, a segmenter the share of each class, a detector its
            boxes (label, score, xyxy in the image's pixels) after the threshold and top-k in the model's
            preprocessor_config.json (`trt_edge_postprocessing`).
          overlay: with --image, a folder that gets one PNG per image (same name, .png) with a detector's
            boxes or a segmenter's class mask drawn on it; files already there are never replaced.
          audio: a WAV/FLAC/OGG file, or a folder of them (recursively, by path), for an audio-classification
            model: one line per clip with its label and probability.
          stream: one long recording for an audio-classification model: a window slides over it by --hop
            seconds and each detection (consecutive windows agreeing on a class with probability at least
            --threshold) prints one line with its start and end in seconds, as an always-on spotter would.
          window: --stream window in seconds. Defaults to the clip length the model takes.
          hop: --stream hop in seconds. Defaults to 0.25.
          threshold: --stream: the least probability of a detection. Defaults to 0.5.
          top: with --corpus, a sentence-embedding model prints the K corpus lines nearest each text.
          corpus: a UTF-8 text file, one entry per non-empty line, searched with --top K. Its embeddings
            are computed once and cached in FILE.trt-edge-embeddings/ (keyed by the model's and the file's
            sha256; the kit's cache folder when the corpus folder is read-only).
        """
        from trt_edge.errors import TrtEdgeError
        from trt_edge.runtime.base import Runner
        from trt_edge.tasks.spec import TaskSpec, check_run_input

        images = _image_paths(image)
        clips = _audio_request(audio, stream, window, hop, threshold)
        textual = bool(text_file or text not in ("", None) or lines)
        if images and textual:
            raise TrtEdgeError("give --text (or --text-file) or --image, not both")
        if overlay and not images:
            raise TrtEdgeError("--overlay DIR draws on the --image inputs; give --image FILE or FOLDER")
        if clips is not None and (images or textual):
            raise TrtEdgeError("give --audio/--stream or --text/--image, not both")
        texts = [] if images or clips is not None else run_texts(text, text_file, lines)
        k = _search_top(top, corpus)
        asked = max_length not in (None, "")
        length = _positive_int(max_length, "max-length", minimum=2) if asked else 128
        if bool(engine) == bool(onnx):
            raise TrtEdgeError("run needs exactly one of --engine PLAN or --onnx MODEL")
        runner: Runner
        spec: TaskSpec | None
        batch_size = 32
        if engine:
            from trt_edge.engine.manifest import manifest_path_for, read_manifest
            from trt_edge.runtime.tensorrt import TensorRTRunner
            from trt_edge.tasks.spec import task_for_manifest

            model_file = engine
            manifest = read_manifest(manifest_path_for(engine))
            spec = task_for_manifest(manifest)
            # Stay inside the plan's optimization profile: longer texts are truncated to its max sequence.
            batch_max, seq_max = _profile_limits(manifest, engine)
            batch_size = min(batch_size, batch_max) if batch_max is not None else batch_size
            length = min(length, seq_max) if seq_max is not None else length
            runner = TensorRTRunner(engine, allow_host_code=allow_host_code, cuda_graph=cuda_graph)
        else:
            from trt_edge.engine.onnxinfo import onnx_task
            from trt_edge.engine.stage import resolve_input
            from trt_edge.runtime.ort import OnnxRuntimeRunner

            model_path = resolve_input(onnx)[0]
            model_file = str(model_path)
            spec = onnx_task(model_path)
            runner = OnnxRuntimeRunner(model_path, providers=[p for p in providers.split(",") if p] or None)
        modality = "image" if images else "audio" if clips is not None else "text"
        try:
            if spec is None:  # the model does not say: its preprocessor tells the modality, its I/O the task
                _check_modality(model_file, tokenizer or None, modality)
                if k is not None:
                    from trt_edge.tasks.spec import task_for_io

                    runner.activate()
                    spec = task_for_io([i.name for i in runner.inputs()], [o.name for o in runner.outputs()])
            check_run_input(spec, modality, model_file, search=k is not None)
            if clips is not None:
                _listen(runner, model_file, tokenizer or None, batch_size, clips)
            elif images:
                from trt_edge.runtime.image import ImageClassifier, image_files

                files = image_files(images)
                classifier_i = ImageClassifier.from_model_file(runner, model_file, tokenizer or None, batch_size,
                                                               spec)
                for record in classifier_i.classify(files, overlay or None):
                    print(json.dumps(record))
            elif spec is not None and spec.pooled:
                _embed(runner, model_file, tokenizer or None, length, asked, batch_size, texts, k, corpus)
            else:
                _classify(runner, model_file, tokenizer or None, length, asked, batch_size, texts)
        finally:
            runner.deactivate()


def _audio_request(audio: Any, stream: Any, window: Any, hop: Any, threshold: Any) -> dict[str, Any] | None:
    """`run`'s audio arguments, checked before any model loads: None when neither --audio nor --stream."""
    from trt_edge.errors import TrtEdgeError

    files = [] if audio in ("", None, False) else list(audio) if isinstance(audio, (list, tuple)) else [audio]
    if not files and stream in ("", None, False):
        return None
    if files and stream not in ("", None, False):
        raise TrtEdgeError("give --audio FILE|FOLDER or --stream FILE, not both")
    if not all(isinstance(f, str) and f for f in files) or (stream and not isinstance(stream, str)):
        raise TrtEdgeError("--audio takes a WAV/FLAC/OGG file or a folder of them; --stream one recording")

    def seconds(value: Any, name: str) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TrtEdgeError(f"--{name} {value!r}: give a number of seconds") from None
        if not 0 < number <= 600:
            raise TrtEdgeError(f"--{name} {value!r}: give more than 0 and at most 600 seconds")
        return number

    try:
        least = float(threshold)
    except (TypeError, ValueError):
        raise TrtEdgeError(f"--threshold {threshold!r}: give a probability between 0 and 1") from None
    if not 0 <= least <= 1:
        raise TrtEdgeError(f"--threshold {threshold!r}: give a probability between 0 and 1")
    return {"files": files, "stream": stream or None, "hop": seconds(hop, "hop"), "threshold": least,
            "window": None if window in (None, "") else seconds(window, "window")}


def _listen(runner: Any, model_file: str, extractor: str | None, batch_size: int, request: dict[str, Any]) -> None:
    """`run` for an audio classifier: one JSON line per clip (--audio), or per detection (--stream)."""
    from trt_edge.runtime.audio import AudioClassifier

    classifier = AudioClassifier.from_model_file(runner, model_file, extractor, batch_size)
    if request["stream"] is None:
        for record in classifier.classify(request["files"]):
            print(json.dumps(record))
        return
    for detection in classifier.stream(request["stream"], request["window"], request["hop"], request["threshold"]):
        print(json.dumps({"stream": request["stream"], **detection.to_dict()}))


def _classify(runner: Any, model_file: str, tokenizer: str | None, length: int, asked: bool, batch_size: int,
              texts: list[str]) -> None:
    """`run` for a text classifier: one JSON line (label, probabilities) per text."""
    from trt_edge.runtime.text import TextClassifier

    classifier = TextClassifier.from_model_file(runner, model_file, tokenizer, length, batch_size)
    classifier.max_length = _fit_length(classifier._label_folder, classifier.tokenizer, length, asked)
    for prediction in classifier.classify(texts):
        print(json.dumps(prediction.to_dict()))


def _embed(runner: Any, model_file: str, tokenizer: str | None, length: int, asked: bool, batch_size: int,
           texts: list[str], k: int | None, corpus: str) -> None:
    """`run` for a sentence-embedding model: each text's vector, or (--top K --corpus FILE) the K corpus
    lines nearest it. The corpus is read and --top checked against its size before any inference."""
    from trt_edge.runtime.embedding import TextEmbedder, check_top, read_corpus

    entries = read_corpus(corpus) if k is not None else None
    if entries is not None:
        check_top(k, len(entries))
    embedder = TextEmbedder.from_model_file(runner, model_file, tokenizer, length, batch_size)
    embedder.max_length = _fit_length(embedder.preprocessor_folder, embedder.tokenizer, length, asked)
    if entries is None or k is None:
        for item, vector in zip(texts, embedder.embed(texts), strict=True):
            print(json.dumps({"text": item, "embedding": [round(float(v), 7) for v in vector], "dim": len(vector)}))
        return
    index = embedder.index(entries, progress=sys.stderr.isatty())
    for item, hits in zip(texts, index.search(embedder.embed(texts), k), strict=True):
        print(json.dumps({"text": item, "top": [h.to_dict() for h in hits]}))


def _fit_length(folder: Any, tokenizer: Any, length: int, asked: bool) -> int:
    """The truncation length within the model's positions: a default beyond them is lowered to them, an
    asked one beyond them is refused in one line."""
    from trt_edge.errors import TrtEdgeError
    from trt_edge.guard import model_positions

    positions = model_positions(folder, tokenizer) if folder else None
    if positions is not None and length > positions and not asked:
        return int(positions)
    if positions is not None and length > positions:
        raise TrtEdgeError(f"--max-length {length} is more than the {positions} positions the model has; "
                           "use at most that")
    return length


def _search_top(top: Any, corpus: Any) -> int | None:
    """`--top K` of a corpus search (None when not searching); --top and --corpus go together."""
    from trt_edge.errors import TrtEdgeError

    # `--top 0` is given (and refused below): compare with None and "", not by truth (0 == False)
    has_top = top is not None and not (isinstance(top, str) and not top)
    has_corpus = corpus is not None and not (isinstance(corpus, str) and not corpus)
    if has_top and not has_corpus:
        raise TrtEdgeError("--top K goes with --corpus FILE (the lines to search)")
    if has_corpus and not has_top:
        raise TrtEdgeError("--corpus FILE goes with --top K (how many nearest lines to print)")
    if not has_top:
        return None
    if not isinstance(corpus, str):
        raise TrtEdgeError(f"--corpus takes one text file, got {corpus!r}")
    return _positive_int(top, "top")


def _image_paths(image: Any) -> list[str]:
    """`--image` as a list of paths (Fire gives a string, or a list for `--image=[a,b]`)."""
    from trt_edge.errors import TrtEdgeError

    if image in ("", None, False):
        return []
    items = list(image) if isinstance(image, (list, tuple)) else [image]
    if not items or not all(isinstance(i, str) and i for i in items):
        raise TrtEdgeError("--image takes a PNG/JPEG file or a folder of them")
    return [str(i) for i in items]


def _check_modality(model_file: str, explicit: str | None, asked: str) -> None:
    """Refuse, in one line, text for an image model or images for a text model (before any inference),
    judged by the preprocessor that travels with the model."""
    from trt_edge.tasks.spec import check_run_input, preprocessor_dir, task_for_model_folder

    check_run_input(task_for_model_folder(preprocessor_dir(model_file, explicit)), asked, model_file)


MAX_TEXT_BYTES = 16 << 20


def run_texts(text: Any, text_file: str, lines: bool) -> list[str]:
    """The texts `run` classifies: `--text` verbatim, or `--text-file` (whole, or one per line)."""
    from pathlib import Path

    from trt_edge.errors import TrtEdgeError

    if text_file and text not in ("", None):
        raise TrtEdgeError("give --text or --text-file, not both")
    if text_file:
        from trt_edge.files import read_utf8

        source = sys.stdin.buffer if text_file == "-" else Path(text_file)
        content, _ = read_utf8(source, f"--text-file {text_file}", MAX_TEXT_BYTES)
        texts = [line for line in content.splitlines() if line.strip()] if lines else [content]
        if not texts or not any(t.strip() for t in texts):
            raise TrtEdgeError(f"--text-file {text_file}: no text in it")
        return texts
    if lines:
        raise TrtEdgeError("--lines goes with --text-file")
    if isinstance(text, bool) or text is None:
        raise TrtEdgeError('run needs --text "..." (or --text-file FILE)')
    if isinstance(text, (list, tuple)):  # Python callers may pass several texts
        texts = [t for t in text if isinstance(t, str)]
        if len(texts) != len(text):
            raise TrtEdgeError("run: every text must be a string")
    else:
        texts = [text] if isinstance(text, str) else [str(text)]
    if not texts or not all(t.strip() for t in texts):
        raise TrtEdgeError('run needs a non-empty --text "..." (or --text-file FILE)')
    if any(len(t.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES for t in texts):
        raise TrtEdgeError(f"--text is larger than {MAX_TEXT_BYTES >> 20} MiB; use --text-file")
    return texts


def _positive_int(value: Any, what: str, minimum: int = 1) -> int:
    from trt_edge.errors import TrtEdgeError

    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise TrtEdgeError(f"--{what} takes a whole number, got {value!r}")
    if value < minimum:
        raise TrtEdgeError(f"--{what} must be at least {minimum}, got {value}")
    return int(value)


def _profile_limits(manifest: dict[str, Any], engine: str) -> tuple[int | None, int | None]:
    """(max batch, max sequence) of the plan's first profile (no sequence for an image input), refusing a
    malformed one in one line."""
    from trt_edge.errors import TrtEdgeError

    io = manifest.get("io", [])
    if not isinstance(io, list):
        raise TrtEdgeError(f"{engine}: its manifest's io is not a list; rebuild the engine")
    for tensor in io:
        profile = tensor.get("profile") if isinstance(tensor, dict) else None
        if profile is None:
            continue
        top = profile.get("max") if isinstance(profile, dict) else None
        if (not isinstance(top, list) or not top
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in top)):
            raise TrtEdgeError(f"{engine}: its manifest's profile for {str(tensor.get('name'))[:60]!r} has no valid "
                               "'max' shape; rebuild the engine")
        return (top[0], top[1]) if len(top) == 2 else (top[0], None)
    return None, None

