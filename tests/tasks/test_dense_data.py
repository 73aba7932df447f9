"""Issue 28's data: the seeded demo scenes, the segmentation and COCO loaders, and their bad-input lines.

The scenes are built from a tiny Fashion-MNIST folder in Debian's layout (`write_fashion_mnist`), so these
tests run without the Debian package; the `trt-edge scenes` command itself is run on the real package
when it is installed. Every bad input is checked through the CLI (`trt-edge check-data`, a subprocess):
one `trt-edge: error:` line naming the file, exit 2, no traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.files import sha256_tree
from trt_edge.tasks.coco import load_detection, read_coco
from trt_edge.tasks.scenes import SceneSettings, make_scene, scene_rng, split_counts, write_scenes
from trt_edge.tasks.segmentation_data import load_segmentation

sys.path.insert(0, str(Path(__file__).parent))
from vision_helpers import write_fashion_mnist, write_png_bomb

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fashion_mnist(tmp_path_factory.mktemp("fmnist"))


def _scenes(folder: Path, kind: str, fmnist: Path, count: int = 10, size: int = 48, seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    write_scenes(folder, kind, count, size, seed, source=fmnist)
    return folder


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trt_edge", *args], capture_output=True, text=True, timeout=300)


def _one_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("trt-edge: error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# --- the generator ----------------------------------------------------------------------------------

def test_scene_masks_and_boxes_agree(fmnist: Path) -> None:
    from trt_edge.tasks.image_classification import fashion_mnist

    garments, labels = fashion_mnist(fmnist)["train"]
    settings = SceneSettings(size=64)
    for i in range(20):
        scene = make_scene(scene_rng(0, "train", i), garments, labels, settings)
        assert scene.image.shape == (64, 64, 3) and scene.image.dtype == np.uint8
        assert scene.boxes.shape[0] >= 1  # every scene has an object to detect
        assert ((scene.mask == 0) == (scene.instances == 0)).all()  # background exactly where no garment is
        for box, category, area, ident in zip(scene.boxes, scene.categories, scene.areas, scene.instance_ids,
                                              strict=True):
            ys, xs = np.nonzero(scene.instances == ident)
            # the box is the tight bound of the garment's *visible* pixels, its area their count
            assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == box.tolist()
            assert area == len(ys) >= settings.box_area_floor()
            assert (scene.mask[ys, xs] == category).all()  # the mask carries the box's class there


def test_scenes_are_deterministic_for_a_seed(tmp_path: Path, fmnist: Path) -> None:
    for kind in ("segmentation", "detection"):
        a = _scenes(tmp_path / f"{kind}-a", kind, fmnist)
        b = _scenes(tmp_path / f"{kind}-b", kind, fmnist)
        c = _scenes(tmp_path / f"{kind}-c", kind, fmnist, seed=1)
        assert sha256_tree(a) == sha256_tree(b)
        assert sha256_tree(a) != sha256_tree(c)
    # the two kinds draw the same scenes for a seed: the same images
    seg, det = tmp_path / "segmentation-a", tmp_path / "detection-a"
    assert (seg / "test/images/test-000000.png").read_bytes() == (det / "test/images/test-000000.png").read_bytes()


def test_written_scenes_load_through_the_user_loaders(tmp_path: Path, fmnist: Path) -> None:
    seg = load_segmentation(_scenes(tmp_path / "seg", "segmentation", fmnist))
    det = load_detection(_scenes(tmp_path / "det", "detection", fmnist))
    assert {k: len(v) for k, v in seg.items()} == split_counts(10) == {k: len(v) for k, v in det.items()}
    assert seg["train"].classes.names[0] == "background" and seg["train"].classes.ignore_index == 255
    assert det["train"].category_ids == list(range(1, 11))
    for split in ("train", "test"):
        for mask, image in zip(seg[split].masks, det[split].images, strict=True):
            assert len(image.boxes) >= 1
            for (x1, y1, x2, y2), category, area in zip(image.boxes, image.categories, image.areas, strict=True):
                inside = mask[int(y1):int(y2), int(x1):int(x2)] == category
                # the box holds its garment's visible pixels (a garment of the same class may add more),
                # and touches them on all four sides
                assert inside.sum() >= area > 0
                assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
    assert det["train"].images[0].image().shape == (48, 48, 3)


@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_scenes_command(tmp_path: Path) -> None:
    out = tmp_path / "scenes"
    result = _cli("scenes", "--out", str(out), "--kind", "detection", "--count", "12", "--size", "64")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["splits"]["test"]["scenes"] == 1 and (out / "test" / "instances.json").is_file()
    first = sha256_tree(out)
    again = _cli("scenes", "--out", str(out), "--kind", "detection", "--count", "12", "--size", "64")
    assert again.returncode == 0, again.stderr  # its own earlier output is replaced, identically
    assert sha256_tree(out) == first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".scenes.")]  # no temporary left


@pytest.mark.parametrize(("args", "needles"), [
    (("--kind", "boxes"), ("--kind 'boxes'",)),
    (("--count", "2"), ("--count 2",)),
    (("--size", "8"), ("--size 8",)),
    (("--seed", "-1"), ("--seed -1",)),
])
def test_scenes_command_refuses_bad_arguments(tmp_path: Path, args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    _one_error(_cli("scenes", "--out", str(tmp_path / "o"), *args), *needles)
    assert not (tmp_path / "o").exists()


def test_scenes_never_replace_a_user_folder(tmp_path: Path) -> None:
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    _one_error(_cli("scenes", "--out", str(user), "--count", "3"), str(user), "did not write")
    assert (user / "notes.txt").read_text() == "keep me"


# --- segmentation bad input -------------------------------------------------------------------------

def _save(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    from PIL import Image

    Image.fromarray(array, mode).save(path)


def _break_segmentation(root: Path, case: str) -> tuple[str, ...]:
    """Spoil one file of a written segmentation set; return what its error line must name."""
    train = root / "train"
    mask = train / "masks" / "train-000001.png"
    if case == "mask size":
        _save(mask, np.zeros((30, 48), dtype=np.uint8))
        return (str(mask), "mask is 48x30", "48x48")
    if case == "class index":
        values = np.zeros((48, 48), dtype=np.uint8)
        values[5, 7] = 11
        _save(mask, values)
        return (str(mask), "class index 11 at pixel (x=7, y=5)", "ignore index 255")
    if case == "image without mask":
        mask.unlink()
        return (str(train / "images" / "train-000001.png"), "no mask")
    if case == "mask without image":
        (train / "images" / "train-000001.png").unlink()
        return (str(mask), "without an image")
    if case == "colour mask":
        _save(mask, np.zeros((48, 48, 3), dtype=np.uint8))
        return (str(mask), "RGB mask")
    if case == "classes.json":
        (root / "classes.json").write_text('{"names": ["background", "background"]}')
        return (str(root / "classes.json"), "listed twice")
    if case == "split classes":
        (train / "classes.json").write_text('{"names": ["background", "garment"]}')
        return (str(train / "classes.json"), "differ")
    if case == "bomb mask":
        write_png_bomb(mask)
        return (str(mask), "decompression bomb")
    raise AssertionError(case)


SEGMENTATION_CASES = ["mask size", "class index", "image without mask", "mask without image", "colour mask",
                      "classes.json", "split classes", "bomb mask"]


@pytest.mark.parametrize("case", SEGMENTATION_CASES)
def test_segmentation_bad_input_is_one_line(tmp_path: Path, fmnist: Path, case: str) -> None:
    root = _scenes(tmp_path / "seg", "segmentation", fmnist)
    assert _cli("check-data", str(root)).returncode == 0
    needles = _break_segmentation(root, case)
    _one_error(_cli("check-data", str(root), "--kind", "segmentation"), *needles)


def test_segmentation_ignore_pixels_and_flat_folders(tmp_path: Path) -> None:
    """A user's flat folder (no splits) with ignore pixels and a palette mask loads; 'all' is its key."""
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "classes.json").write_text(json.dumps({"names": ["floor", "wall"], "ignore_index": 255}))
    _save(tmp_path / "images" / "a.jpg", np.full((6, 8, 3), 90, dtype=np.uint8))
    mask = np.array([[0, 1, 255, 1, 0, 0, 1, 1]] * 6, dtype=np.uint8)
    palette = Image.fromarray(mask, "P")
    palette.putpalette([0, 0, 0, 200, 0, 0] + [255, 255, 255] * 254)
    palette.save(tmp_path / "masks" / "a.png")
    data = load_segmentation(tmp_path)["all"]
    np.testing.assert_array_equal(data.masks[0], mask)  # palette indices, not colours
    assert data.pixel_counts().tolist() == [18, 24]
    assert data.image(0).shape == (6, 8, 3)


# --- detection bad input ----------------------------------------------------------------------------

def _break_detection(root: Path, case: str) -> tuple[str, ...]:
    path = root / "validation" / "instances.json"
    coco = json.loads(path.read_text())
    ann = coco["annotations"][0]
    if case == "unparsable":
        path.write_text(path.read_text()[:-20])
        return (str(path), "not valid COCO JSON")
    if case == "outside":
        ann["bbox"] = [40.0, 40.0, 20.0, 5.0]
        needles: tuple[str, ...] = (str(path), f"annotation {ann['id']}", "outside its image", "48x48")
    elif case == "zero area":
        ann["bbox"] = [4.0, 4.0, 0.0, 7.0]
        needles = (str(path), f"annotation {ann['id']}", "zero-area box")
    elif case == "unknown category":
        ann["category_id"] = 42
        needles = (str(path), "unknown category id 42")
    elif case == "missing image":
        (root / "validation" / "images" / coco["images"][0]["file_name"]).unlink()
        return (str(path), coco["images"][0]["file_name"], "missing from")
    elif case == "unlisted image":
        ann["image_id"] = 999
        needles = (str(path), "image 999", "not listed")
    elif case == "bomb image":
        image = root / "validation" / "images" / coco["images"][0]["file_name"]
        write_png_bomb(image)
        return (str(image), "decompression bomb")
    elif case == "wrong size":
        coco["images"][0]["width"] = 50
        needles = (str(path), "listed 50x48", "file is 48x48")
    else:
        raise AssertionError(case)
    path.write_text(json.dumps(coco))
    return needles


DETECTION_CASES = ["unparsable", "outside", "zero area", "unknown category", "missing image", "unlisted image",
                   "wrong size", "bomb image"]


@pytest.mark.parametrize("case", DETECTION_CASES)
def test_detection_bad_input_is_one_line(tmp_path: Path, fmnist: Path, case: str) -> None:
    root = _scenes(tmp_path / "det", "detection", fmnist)
    assert _cli("check-data", str(root), "--kind", "detection").returncode == 0
    needles = _break_detection(root, case)
    _one_error(_cli("check-data", str(root), "--kind", "detection"), *needles)


def test_coco_boxes_are_xyxy_with_their_own_ids(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    _save(tmp_path / "images" / "a.png", np.zeros((20, 30), dtype=np.uint8))
    _save(tmp_path / "images" / "b.png", np.zeros((20, 30), dtype=np.uint8))
    coco = {"images": [{"id": 7, "file_name": "a.png", "width": 30, "height": 20},
                       {"id": 9, "file_name": "b.png"}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 5, "bbox": [2, 3, 10, 4]},
                            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [0, 0, 30, 20], "iscrowd": 1}],
            "categories": [{"id": 5, "name": "cup"}, {"id": 3, "name": "table"}]}
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    data = read_coco(tmp_path / "instances.json")
    first, second = data.images
    assert first.boxes.tolist() == [[2, 3, 12, 7], [0, 0, 30, 20]] and first.categories.tolist() == [5, 3]
    assert first.iscrowd.tolist() == [False, True] and first.areas.tolist() == [40, 600]
    assert len(second.boxes) == 0 and (second.width, second.height) == (30, 20)  # size read from the file
    assert data.label_names == ["table", "cup"] and data.label_index() == {3: 0, 5: 1}
    with pytest.raises(TrtEdgeError, match=r"no instances\.json"):
        load_detection(tmp_path / "images")
