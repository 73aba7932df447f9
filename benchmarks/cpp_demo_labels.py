"""Issue 32: the C++ library's `classify` on the demos' real CPU artifacts against `trt-edge run`.

    python benchmarks/cpp_demo_labels.py --demo runs/demo --vision runs/vision \
        --out benchmarks/out/cpp_demo_labels.json

CI's ctest suite proves the library on models it can build in seconds (the packaged MiniLM cut to 3 layers,
a tiny ViT); this script runs the same library on the artifacts the two demos leave (`configs/demo.yaml`'s
and `configs/vision-demo.yaml`'s `calibrate/model.cpu.onnx`), which take minutes to train: the first `--n`
test texts of the demo's split and the first `--n` Fashion-MNIST test images (written as PNG files, the
form an app reads), each classified by `examples/cpp`'s app on the installed library and by `trt-edge run`
one input per call (a dynamic-int8 artifact quantizes activations with the batch's own ranges, so a label
can depend on the inputs batched with it; the app classifies one at a time).

It builds the library and the app into `--build` (ONNX Runtime from this environment's wheel,
`cpp/fetch-onnxruntime.sh`) unless `--app` names a built `trt_edge_app`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def build_app(build: Path) -> Path:
    """The library, installed into `build/prefix`, and the example app built on it (the README's commands)."""
    prefix = build / "prefix"
    steps = [
        ["bash", "cpp/fetch-onnxruntime.sh", sys.executable],
        ["cmake", "-S", "cpp", "-B", str(build / "cpp"), "-DTRT_EDGE_BUILD_TESTS=OFF", "-DCMAKE_BUILD_TYPE=Release"],
        ["cmake", "--build", str(build / "cpp"), "-j2"],
        ["cmake", "--install", str(build / "cpp"), "--prefix", str(prefix)],
        ["cmake", "-S", "examples/cpp", "-B", str(build / "example"), f"-DCMAKE_PREFIX_PATH={prefix}",
         "-DCMAKE_BUILD_TYPE=Release"],
        ["cmake", "--build", str(build / "example"), "-j2"],
    ]
    for step in steps:
        subprocess.run(step, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return build / "example" / "trt_edge_app"


def run_labels(model: Path, flag: str, values: list[str]) -> list[str]:
    """`trt-edge run` on each input alone: the label it prints."""
    labels = []
    for value in values:
        out = subprocess.run([sys.executable, "-m", "trt_edge", "run", "--onnx", str(model), f"--{flag}", value],
                             check=True, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        labels.append(json.loads(out.stdout.strip().splitlines()[-1])["label"])
    return labels


def app_labels(app: Path, folder: Path, flag: str, values: list[str]) -> list[str]:
    args = [str(app), str(folder)]
    for value in values:
        args += [f"--{flag}", value]
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    return [line.split("\t")[0] for line in out.stdout.splitlines()]


def test_split(config_path: str) -> Any:
    from trt_edge.config import load_config
    from trt_edge.tasks.adapter import adapter_for
    from trt_edge.tasks.spec import get_task

    task = load_config(config_path).section("task")
    return adapter_for(get_task(task.type)).load_data(task.data)


def compare(name: str, run_dir: Path, app: Path, flag: str, values: list[str], gold: list[str]) -> dict[str, Any]:
    model = run_dir / "calibrate" / "model.cpu.onnx"
    python = run_labels(model, flag, values)
    cpp = app_labels(app, run_dir / "calibrate", flag, values)
    same = sum(a == b for a, b in zip(python, cpp, strict=True))
    print(f"{name}: same label {same}/{len(values)}; distinct labels {len(set(python))}; "
          f"right (gold) python {sum(a == g for a, g in zip(python, gold, strict=True))}, "
          f"c++ {sum(a == g for a, g in zip(cpp, gold, strict=True))}", flush=True)
    return {"model": str(model), "inputs": len(values), "same_label": same, "distinct_labels": len(set(python)),
            "python_labels": python, "cpp_labels": cpp, "gold": gold}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default="runs/demo")
    parser.add_argument("--demo-config", default="configs/demo.yaml")
    parser.add_argument("--vision", default="runs/vision")
    parser.add_argument("--vision-config", default="configs/vision-demo.yaml")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--app", default="", help="a built trt_edge_app (else built into --build)")
    parser.add_argument("--build", default=str(ROOT / "build" / "cpp-demo-labels"))
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    app = Path(args.app) if args.app else build_app(Path(args.build))
    result: dict[str, Any] = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or
                              platform.machine(), "command": " ".join(sys.argv),
                              "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                                       capture_output=True, text=True).stdout.strip()}
    text = test_split(args.demo_config)
    names = text.label_names
    texts = list(text.test.texts[: args.n])
    result["text"] = compare("demo texts", Path(args.demo), app, "text", texts,
                             [names[i] for i in text.test.labels[: args.n]])
    vision = test_split(args.vision_config)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, example in enumerate(vision.test.texts[: args.n]):
            path = Path(tmp) / f"test{i:02d}.png"
            Image.fromarray(np.asarray(example, dtype=np.uint8).squeeze()).save(path)  # HxWx1 gray -> HxW
            files.append(str(path))
        result["image"] = compare("vision-demo images", Path(args.vision), app, "image", files,
                                  [vision.label_names[i] for i in vision.test.labels[: args.n]])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
