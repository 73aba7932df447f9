"""Data sources and splits: table files, class folders, the demo tweets; stable stratified splits."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.tasks.config import DataConfig
from trt_edge.tasks.data import load_data, stratified_order
from trt_edge.tasks.metrics import accuracy, macro_f1


def _csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("body,cat,score\n" + "".join(f'"{t}",{c},{s}\n' for t, c, s in rows), encoding="utf-8")
    return path


def _rows(n: int = 60) -> list[tuple[str, str, str]]:
    labels = ["zeta", "alpha", "mid"]
    return [(f"text number {i}", labels[i % 3] if i % 5 else "alpha", f"{(i % 10) / 10}") for i in range(n)]


def test_csv_columns_filters_and_sorted_labels(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", _rows())
    cfg = DataConfig(source=str(path), text_column="body", label_column="cat", min_values={"score": 0.2},
                     train_size=0.6, validation_size=0.2, test_size=0.2)
    data = load_data(cfg)
    assert data.label_names == ["alpha", "mid", "zeta"]
    total = len(data.train) + len(data.validation) + len(data.test)
    assert total == sum(1 for r in _rows() if float(r[2]) >= 0.2)
    assert set(data.train.texts).isdisjoint(data.test.texts)


def test_splits_are_stable_and_stratified(tmp_path: Path) -> None:
    rows = [(f"t{i}", "a" if i < 300 else "b", "1") for i in range(400)]
    cfg = DataConfig(source=str(_csv(tmp_path / "d.csv", rows)), text_column="body", label_column="cat",
                     train_size=200, validation_size=100, test_size=100, seed=3)
    one, two = load_data(cfg), load_data(cfg)
    assert one.fingerprint() == two.fingerprint()
    for split in (one.train, one.validation, one.test):
        share = Counter(split.labels)[0] / len(split)
        assert abs(share - 0.75) <= 0.02
    other = load_data(cfg.replace(seed=4))
    assert other.test.texts != one.test.texts


def test_stratified_order_prefixes_keep_proportions() -> None:
    labels = ["a"] * 90 + ["b"] * 10
    order = stratified_order(labels, seed=0)
    assert sorted(order) == list(range(100))
    first20 = [labels[i] for i in order[:20]]
    assert first20.count("b") == 2


def test_jsonl_tsv_and_folder_sources(tmp_path: Path) -> None:
    jl = tmp_path / "d.jsonl"
    jl.write_text("\n".join(json.dumps({"t": f"x{i}", "y": i % 2}) for i in range(40)))
    data = load_data(DataConfig(source=str(jl), text_column="t", label_column="y"))
    assert data.label_names == ["0", "1"]
    tsv = tmp_path / "d.tsv"
    tsv.write_text("t\ty\n" + "".join(f"x{i}\t{'pos' if i % 2 else 'neg'}\n" for i in range(40)))
    assert load_data(DataConfig(source=str(tsv), text_column="t", label_column="y")).num_labels == 2
    root = tmp_path / "folder"
    for label in ("cats", "dogs"):
        (root / label).mkdir(parents=True)
        for i in range(20):
            (root / label / f"{i}.txt").write_text(f"{label} story {i}")
    data = load_data(DataConfig(source=str(root)))
    assert data.label_names == ["cats", "dogs"]
    assert all(t.startswith(data.label_names[y]) for t, y in zip(data.train.texts, data.train.labels, strict=True))


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        ([("a", "x", "1")] * 1 + [(f"b{i}", "x", "1") for i in range(20)], {}, "at least 2 classes, found only 'x'"),
        (_rows(), {"label_column": "missing"}, "no column 'missing'"),
        (_rows(), {"train_size": 50, "validation_size": 20, "test_size": 20}, "splits ask for"),
    ],
)
def test_bad_data_is_one_clear_error(tmp_path: Path, rows: list, kwargs: dict, message: str) -> None:
    path = _csv(tmp_path / "d.csv", rows)
    base = {"source": str(path), "text_column": "body", "label_column": "cat"}
    with pytest.raises(TrtEdgeError, match=message):
        load_data(DataConfig(**{**base, **kwargs}))


def test_missing_and_undecodable_sources(tmp_path: Path) -> None:
    with pytest.raises(TrtEdgeError, match="dataset not found"):
        load_data(DataConfig(source=str(tmp_path / "none.csv")))
    bad = tmp_path / "latin.csv"
    bad.write_bytes("text,label\ncaf\xe9,a\nb,b\n".encode("latin-1"))
    with pytest.raises(TrtEdgeError, match=r"not utf-8 text.*task\.data\.encoding"):
        load_data(DataConfig(source=str(bad)))
    with pytest.raises(TrtEdgeError, match="unknown demo data set"):
        load_data(DataConfig(source="demo:nothing"))


def test_demo_tweets_load_with_configured_columns(demo_data_config: DataConfig) -> None:
    data = load_data(demo_data_config)
    assert data.label_names == ["negative", "neutral", "positive"]
    assert (len(data.train), len(data.validation), len(data.test)) == (800, 200, 400)
    assert 0.4 < data.majority_accuracy() < 0.6


def test_metrics_by_hand() -> None:
    pred, gold = [0, 1, 1, 2], [0, 1, 2, 2]
    assert accuracy(pred, gold) == 0.75
    # class 0: F1 1; class 1: tp1 fp1 fn0 -> 2/3; class 2: tp1 fp0 fn1 -> 2/3
    assert macro_f1(pred, gold, 3) == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_mixed_encodings_are_decoded_per_file_and_reported(tmp_path: Path) -> None:
    """One latin-1 file among UTF-8 ones: the error names the file and byte; the per-file fallback reads
    it without garbling the UTF-8 files; errors=replace counts what it replaced."""
    for label, texts in (("pos", ["très bien", "ça va", "naïve joy"]), ("neg", ["mauvais été", "non", "bof"])):
        (tmp_path / "d" / label).mkdir(parents=True)
        for i, text in enumerate(texts):
            (tmp_path / "d" / label / f"{i}.txt").write_text(text, encoding="utf-8")
    (tmp_path / "d" / "neg" / "9.txt").write_bytes("déçu".encode("latin-1"))
    base = {"source": str(tmp_path / "d"), "train_size": 3, "validation_size": 2, "test_size": 2}
    with pytest.raises(TrtEdgeError, match=r"neg/9\.txt: not utf-8 text \(.* at byte 1\)"):
        load_data(DataConfig(**base))
    data = load_data(DataConfig(**base, fallback_encoding="latin-1"))
    every = data.train.texts + data.validation.texts + data.test.texts
    assert "déçu" in every and "très bien" in every and "mauvais été" in every  # nothing garbled
    assert data.decoding.fallback_files == [str(tmp_path / "d" / "neg" / "9.txt")]
    assert data.fingerprint()["decoding"]["fallback_files"]
    replaced = load_data(DataConfig(**base, errors="replace"))
    assert replaced.decoding.replaced_chars == 2 and replaced.decoding.fallback_files == []


@pytest.mark.parametrize(("line", "message"), [
    ('{"text": "a", "label": NaN}', "label is nan"),
    ('{"text": "a", "label": [1, 2]}', "label is a list"),
    ('{"text": ["a"], "label": "x"}', "text is a list"),
    ('{"text": "a", "label": {"k": 1}}', "label is a dict"),
])
def test_nan_and_list_labels_are_refused(tmp_path: Path, line: str, message: str) -> None:
    good = "".join(json.dumps({"text": f"t{i}", "label": "ab"[i % 2]}) + "\n" for i in range(20))
    path = tmp_path / "d.jsonl"
    path.write_text(good + line + "\n", encoding="utf-8")
    with pytest.raises(TrtEdgeError, match=message):
        load_data(DataConfig(source=str(path), train_size=10, validation_size=4, test_size=4))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"train_size": float("nan")}, "train_size: expected a number, got NaN"),
    ({"test_size": float("inf")}, "test_size must be a positive"),
    ({"train_size": 2.5}, "neither a fraction"),
    ({"encoding": "utf-9"}, "not a text encoding"),
    ({"encoding": "rot13"}, "not a text encoding"),
])
def test_bad_sizes_and_encodings_are_refused(kwargs: dict, message: str) -> None:
    from trt_edge.config import RunConfig

    with pytest.raises(TrtEdgeError, match=message):
        RunConfig({"task": {"data": kwargs}}).section("task")


def _folder(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def _articles(n: int = 30) -> dict[str, str]:
    return {f"{'ab'[i % 2]}/{i:02d}.txt": f"article number {i}" for i in range(n)}


def test_dropped_duplicates_are_counted_and_said_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    files = {**_articles(), "a/dup1.txt": "article number 0", "a/dup2.txt": "article number 2"}
    cfg = DataConfig(source=str(_folder(tmp_path / "news", files)), train_size=0.6, validation_size=0.2,
                     test_size=0.2)
    with caplog.at_level("INFO", logger="trt_edge"):
        first, second = load_data(cfg), load_data(cfg)
    assert first.duplicates["duplicates_dropped"] == 2
    assert first.record()["duplicates"]["duplicates_dropped"] == 2
    assert first.fingerprint() == second.fingerprint() and "duplicates" not in first.fingerprint()
    said = [r.getMessage() for r in caplog.records if "repeated texts dropped" in r.getMessage()]
    assert len(said) == 1 and said[0].count("2 repeated texts dropped") == 1
    assert load_data(cfg.replace(drop_duplicates=False)).duplicates["duplicates_dropped"] == 0


def test_a_text_with_two_labels_is_refused_naming_both_files(tmp_path: Path) -> None:
    files = {**_articles(), "b/copy.txt": "article number 0"}  # 00.txt holds it under class a
    cfg = DataConfig(source=str(_folder(tmp_path / "news", files)), train_size=0.6, validation_size=0.2,
                     test_size=0.2)
    with pytest.raises(TrtEdgeError) as err:
        load_data(cfg)
    message = str(err.value)
    assert "a/00.txt" in message and "b/copy.txt" in message and "conflicting_labels" in message
    first = load_data(cfg.replace(conflicting_labels="first"))
    assert first.duplicates == {"duplicates_dropped": 1, "conflicting_texts": 1, "conflicting_dropped": 0}
    dropped = load_data(cfg.replace(conflicting_labels="drop"))
    assert dropped.duplicates["conflicting_dropped"] == 2
    texts = [t for n in ("train", "validation", "test") for t in dropped.split(n).texts]
    assert "article number 0" not in texts


def test_table_rows_with_two_labels_name_both_rows(tmp_path: Path) -> None:
    rows = [*_rows(), ("text number 1", "zeta", "1")]  # line 3 of the file (row 2) says 'alpha'
    cfg = DataConfig(source=str(_csv(tmp_path / "d.csv", rows)), text_column="body", label_column="cat",
                     train_size=0.6, validation_size=0.2, test_size=0.2)
    with pytest.raises(TrtEdgeError, match=r"row 61: the same text as .*row 2 but labelled"):
        load_data(cfg)
