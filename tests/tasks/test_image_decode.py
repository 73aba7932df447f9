"""Images that cameras and attackers write, for every image loader and `trt-edge run --image` (issue 28's
bad input, for image classification today): a decompression bomb is refused from its header in one line,
exit 2; a 16-bit PNG (depth, thermal, industrial cameras) is scaled, never clipped to white, and gives the
same pixels, so the same prediction, as its 8-bit conversion."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.tasks.image_classification import decode_image, read_image_folder, read_unlabelled_images

sys.path.insert(0, str(Path(__file__).parent))
from vision_helpers import LABELS, write_image_folder, write_png_bomb, write_vision_model


def _pair(folder: Path, seed: int = 0, size: int = 16) -> tuple[Path, Path, np.ndarray]:
    """The same grayscale picture as an 8-bit PNG and as a 16-bit PNG (every value x 257: 255 -> 65535)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    gray = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    Image.fromarray(gray, "L").save(folder / "eight.png")
    wide = Image.fromarray(gray.astype(np.uint16) * 257)
    assert wide.mode.startswith("I;16")
    wide.save(folder / "sixteen.png")
    return folder / "eight.png", folder / "sixteen.png", gray


def test_a_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    eight, sixteen, gray = _pair(tmp_path / "pair")
    from PIL import Image

    with Image.open(sixteen) as img:
        assert img.mode.startswith("I;16")
        clipped = np.asarray(img.convert("L"))
    assert (clipped == 255).mean() > 0.9  # what Pillow's own conversion does: nearly all white
    np.testing.assert_array_equal(decode_image(sixteen)[:, :, 0], gray)
    np.testing.assert_array_equal(decode_image(sixteen), decode_image(eight))


def test_every_image_loader_refuses_a_decompression_bomb_in_one_line(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = write_png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 1000
    with pytest.raises(TrtEdgeError, match=r"40000x40000 is 1,600,000,000 pixels, more than the limit .*"
                                           "TRT_EDGE_MAX_IMAGE_PIXELS"):
        decode_image(bomb)
    folder = write_image_folder(tmp_path / "data", per_class=2)
    (folder / LABELS[0] / "zz-bomb.png").write_bytes(bomb.read_bytes())
    for load in (read_image_folder, read_unlabelled_images):
        with pytest.raises(TrtEdgeError, match=r"zz-bomb\.png: 40000x40000"):
            load(folder)
    # The limit is the user's: lowered, a 16x16 image is refused; raised, the bomb passes the size check
    # (and this one then fails as an image with no pixel data, still in one line).
    monkeypatch.setenv("TRT_EDGE_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(TrtEdgeError, match="16x16 is 256 pixels, more than the limit 100"):
        decode_image(folder / LABELS[1] / "000.png")
    monkeypatch.setenv("TRT_EDGE_MAX_IMAGE_PIXELS", "2_000_000_000")
    with pytest.raises(TrtEdgeError, match="not a readable image"):
        decode_image(bomb)
    monkeypatch.setenv("TRT_EDGE_MAX_IMAGE_PIXELS", "many")
    with pytest.raises(TrtEdgeError, match="not a positive whole number"):
        decode_image(bomb)


def test_pixels_that_cannot_be_scaled_are_refused(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.full((4, 4), 300.0, dtype=np.float32), "F").save(tmp_path / "float.tiff")
    with pytest.raises(TrtEdgeError, match=r"floating-point pixels outside 0\.\.255"):
        decode_image(tmp_path / "float.tiff")
    Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32), "F").save(tmp_path / "unit.tiff")
    assert decode_image(tmp_path / "unit.tiff").max() == 128  # [0, 1] floats scale to 0..255


def test_run_image_gives_a_16_bit_png_the_prediction_of_its_8_bit_twin_and_refuses_awrite_png_bomb(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trt_edge.cli import main
    from trt_edge.config import RunConfig
    from trt_edge.export.stage import run

    images = write_image_folder(tmp_path / "images", per_class=4)
    config = RunConfig({"task": {"type": "image-classification",
                                 "data": {"source": str(images), "train_size": 0.5, "validation_size": 0.25,
                                          "test_size": 0.25}},
                        "export": {"parity_batch_sizes": [1, 2]}})
    run(config, write_vision_model(tmp_path / "vit", "vit"), tmp_path / "export")
    eight, sixteen, _ = _pair(tmp_path / "pair")
    outputs = []
    for file in (eight, sixteen):
        main(["run", "--onnx", str(tmp_path / "export"), "--image", str(file)])
        line = json.loads(capsys.readouterr().out.strip())
        outputs.append({k: v for k, v in line.items() if k != "image"})
    assert outputs[0] == outputs[1]
    with pytest.raises(SystemExit) as info:
        main(["run", "--onnx", str(tmp_path / "export"), "--image", str(write_png_bomb(tmp_path / "bomb.png"))])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "decompression bomb" in err and "Traceback" not in err
