"""CLI commands of this area, mixed into `trt_edge.cli.TrtEdge`.

Keep each method a few lines: build the config, call the library, print a short summary. Import heavy
modules inside the method so `trt-edge --help` stays fast and works without optional libraries.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _version(value: Any) -> str:
    # Fire reads `--trt-version 10.3` as a float; a float keeps 10.3 and 10.13 but would turn 10.10 into
    # 10.1, so a three-part version (10.10.0) or a quoted one is the safe spelling for such releases.
    return str(value)


class EngineCommands:
    """Commands of the engine area: build, run."""

    def build(self, onnx: str = "", out: str = "runs/build", config: str = "", precision: str = "",
              trt_version: Any = "", device: str = "", plan: str = "", bundle: bool = False, tokenizer: str = "",
              **overrides: Any) -> None:
        """Build a TensorRT plan (+ manifest), or, without TensorRT, an on-device build bundle.

        Args:
          onnx: an ONNX file, or an export/calibrate stage folder (a calibrate folder brings its Q/DQ
            ONNX and calibration cache).
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

    def run(self, text: Any = "", engine: str = "", onnx: str = "", tokenizer: str = "", max_length: int = 128,
            providers: str = "", allow_host_code: bool = False, cuda_graph: bool = False) -> None:
        """Classify text end to end with a TensorRT plan or an ONNX model, printing label and probabilities.

        Args:
          text: the text to classify (a list classifies several).
          engine: a TensorRT plan (its manifest model.plan.json is checked first).
          onnx: an ONNX model, run with ONNX Runtime (or an export/calibrate stage folder).
          tokenizer: the model folder with the tokenizer (found next to the model otherwise).
          max_length: tokens per text after truncation. Defaults to 128.
          providers: ONNX Runtime providers, comma-separated (cpu, cuda, tensorrt). Defaults to cpu.
          allow_host_code: run a plan that embeds host code (version-compatible, serialized plugins).
          cuda_graph: replay the TensorRT enqueue from a CUDA graph.
        """
        from trt_edge.errors import TrtEdgeError
        from trt_edge.runtime.base import Runner
        from trt_edge.runtime.text import TextClassifier

        texts = [str(t) for t in text] if isinstance(text, (list, tuple)) else [str(text)] if text != "" else []
        if not texts:
            raise TrtEdgeError("run needs --text \"...\"")
        if bool(engine) == bool(onnx):
            raise TrtEdgeError("run needs exactly one of --engine PLAN or --onnx MODEL")
        runner: Runner
        batch_size = 32
        if engine:
            from trt_edge.engine.manifest import manifest_path_for, read_manifest
            from trt_edge.runtime.tensorrt import TensorRTRunner

            model_file = engine
            # Stay inside the plan's optimization profile: longer texts are truncated to its max sequence.
            profiles = [t["profile"] for t in read_manifest(manifest_path_for(engine)).get("io", []) if "profile" in t]
            if profiles and len(profiles[0]["max"]) == 2:
                batch_size, max_length = min(batch_size, profiles[0]["max"][0]), min(max_length, profiles[0]["max"][1])
            runner = TensorRTRunner(engine, allow_host_code=allow_host_code, cuda_graph=cuda_graph)
        else:
            from trt_edge.engine.stage import resolve_input
            from trt_edge.runtime.ort import OnnxRuntimeRunner

            model_path = resolve_input(onnx)[0]
            model_file = str(model_path)
            runner = OnnxRuntimeRunner(model_path, providers=[p for p in providers.split(",") if p] or None)
        classifier = TextClassifier.from_model_file(runner, model_file, tokenizer or None, max_length, batch_size)
        for prediction in classifier.classify(texts):
            print(json.dumps(prediction.to_dict()))
