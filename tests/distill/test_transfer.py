"""The transfer set: unlabelled in-domain texts scored by the teacher, no leakage of gated texts, and the
hard-label ablation given the same number of steps."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from trt_edge.config import RunConfig
from trt_edge.distill.config import DistillConfig, TransferConfig
from trt_edge.distill.losses import UNLABELLED, combined_loss
from trt_edge.distill.stage import ablation_budget, run
from trt_edge.distill.transfer import transfer_texts
from trt_edge.errors import TrtEdgeError
from trt_edge.stage import read_stage
from trt_edge.tasks.config import DataConfig
from trt_edge.tasks.data import load_data


def _csv(path: Path, n: int = 120) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "score"])
        for i in range(n):
            writer.writerow([f"tweet number {i} {'good' if i % 2 else 'bad'}", "pos" if i % 2 else "neg",
                             0.9 if i % 3 else 0.1])
        writer.writerow(["tweet number 5 good", "pos", 0.9])  # a duplicate
    return path


def test_unused_texts_exclude_every_labelled_split(tmp_path: Path) -> None:
    cfg = DataConfig(source=str(_csv(tmp_path / "d.csv")), min_values={"score": 0.5}, max_examples=40,
                     train_size=20, validation_size=10, test_size=10)
    data = load_data(cfg)
    texts, info = transfer_texts(TransferConfig(source="unused"), cfg, data)
    labelled = set(data.train.texts) | set(data.validation.texts) | set(data.test.texts)
    assert not labelled & set(texts)
    assert len(texts) == len(set(texts)) == 120 - 40  # low-score rows count too: no label is needed
    assert info == {"source": "unused", "examples": 80, "available": 80}
    capped, _ = transfer_texts(TransferConfig(source="unused", max_examples=7), cfg, data)
    assert len(capped) == 7 and set(capped) <= set(texts)
    with pytest.raises(TrtEdgeError, match="no column 'body'"):
        transfer_texts(TransferConfig(source=str(tmp_path / "d.csv"), text_column="body"), cfg, data)


def test_unlabelled_rows_take_no_part_in_the_cross_entropy() -> None:
    class Out:
        logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])

    teacher = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    labels = torch.tensor([0, 1, UNLABELLED])
    _, parts = combined_loss(Out(), labels, teacher, alpha=0.5, temperature=2.0)
    expected_ce = torch.nn.functional.cross_entropy(Out.logits[:2], labels[:2])
    assert parts["ce"] == pytest.approx(float(expected_ce))
    none, none_parts = combined_loss(Out(), torch.full((3,), UNLABELLED), teacher, alpha=0.5, temperature=2.0)
    assert none_parts["ce"] == 0.0 and torch.isfinite(none)


def test_ablation_gets_the_distilled_students_steps(tmp_path: Path) -> None:
    data = load_data(DataConfig(source=str(_csv(tmp_path / "d.csv")), train_size=64, validation_size=16,
                                test_size=16))
    plain = DistillConfig()
    assert ablation_budget(plain, data, {"steps": 999}) is plain.train
    with_transfer = DistillConfig(transfer=TransferConfig(source="unused"))
    budget = ablation_budget(with_transfer, data, {"steps": 17})
    assert budget.max_steps == 17 and budget.epochs * -(-64 // budget.batch_size) >= 17


def test_tiny_distill_with_a_transfer_set(tmp_path: Path, tiny_bert_dir: Path, cache_dir: Path,
                                          demo_data_config: DataConfig) -> None:
    data = demo_data_config.replace(max_examples=300, train_size=200, validation_size=50, test_size=50)
    cfg = RunConfig({
        "task": {"max_length": 32, "eval_batch_size": 64, "data": data.to_dict()},
        "distill": {"teacher": str(tiny_bert_dir), "train": {"epochs": 1, "batch_size": 32},
                    "student": {"layers": [1]}, "cache_dir": str(cache_dir), "teacher_finetune": "never",
                    "transfer": {"source": "unused", "max_examples": 160}},
    })
    run(cfg, tmp_path / "distill")
    metrics = read_stage(tmp_path / "distill", "distill")["metrics"]
    assert metrics["transfer"]["examples"] == 160
    assert metrics["distill"]["steps"] == -(-(200 + 160) // 32)  # labelled + transfer examples, one epoch
    assert metrics["hard_label"]["steps"] == metrics["distill"]["steps"]  # the same budget in steps
    assert metrics["ablation_gate"]["n"] == metrics["gate"]["n"] == 50
    assert isinstance(metrics["distillation_pays"], bool)
    preds = np.load(tmp_path / "distill" / "test_predictions.npz", allow_pickle=False)
    assert set(preds.files) == {"labels", "teacher", "student", "hard_label"}


def test_images_unused_by_the_splits_and_a_folder_of_frames(tmp_path: Path) -> None:
    """An image task's transfer set: the source's images no split drew (none equal to a labelled one), or
    every image under a plain folder of frames (no class folders, mixed sizes)."""
    import sys

    from PIL import Image

    from trt_edge.distill.transfer import transfer_images
    from trt_edge.tasks.image_classification import load_data as load_images

    sys.path.insert(0, str(Path(__file__).parents[1] / "tasks"))
    from vision_helpers import write_image_folder

    root = write_image_folder(tmp_path / "images", per_class=12)
    cfg = DataConfig(source=str(root), train_size=12, validation_size=6, test_size=6)
    data = load_images(cfg)
    assert len(data.unused) == 36 - 24
    images, info = transfer_images(TransferConfig(source="unused"), cfg, data)
    labelled = {bytes(x) for s in (data.train, data.validation, data.test) for x in s.examples}
    assert len(images) == 12 and not labelled & {bytes(x) for x in images}
    assert info == {"source": "unused", "examples": 12, "available": 12}
    # A copy of a labelled image among the frames is dropped; sizes may differ; no class folders needed.
    frames = tmp_path / "frames"
    (frames / "day1").mkdir(parents=True)
    Image.fromarray(data.train.examples[0][:, :, 0]).save(frames / "copy.png")
    Image.fromarray(np.full((20, 24, 3), 90, np.uint8)).save(frames / "day1" / "a.jpg")
    Image.fromarray(np.full((16, 16), 7, np.uint8)).save(frames / "day1" / "b.png")
    got, got_info = transfer_images(TransferConfig(source=str(frames)), cfg, data)
    assert len(got) == 2 and got_info["available"] == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrtEdgeError, match="no PNG/JPEG files"):
        transfer_images(TransferConfig(source=str(tmp_path / "empty")), cfg, data)
    with pytest.raises(TrtEdgeError, match="is a folder of PNG/JPEG files"):
        transfer_images(TransferConfig(source=str(frames / "copy.png")), cfg, data)
    everything = DataConfig(source=str(root), train_size=24, validation_size=6, test_size=6)
    with pytest.raises(TrtEdgeError, match="no image left"):
        transfer_images(TransferConfig(source="unused"), everything, load_images(everything))
