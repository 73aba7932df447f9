"""Sentence embeddings end to end over any runner: tokenize, run, one vector per text; corpus search.

A `sentence-embedding` model gives the vector itself (its pooling and normalisation are inside the
exported graph), so this module only tokenizes, batches and reads the task's output, then searches by
cosine. The feed is the task adapter's `runtime_feed` (the same text inputs as text classification,
following the runner's declared names and int32/int64), so the same code embeds with ONNX Runtime on a
laptop and with TensorRT on a Jetson.

A corpus (a UTF-8 text file, one entry per non-empty line) is embedded once and its matrix cached beside
it, in `FILE.trt-edge-embeddings/<key>.npy` with `<key>.json`, keyed by the hashes of the model file, the
corpus file, the preprocessor and the truncation length: a changed model or corpus is embedded again, an
unchanged one is read back. Nothing else is written next to the corpus; where its folder is read-only the
cache goes to the kit's cache folder (`$TRT_EDGE_CACHE`, else `~/.cache/trt-edge`) and the log says so.
The matrix is plain `.npy` (no pickle) written atomically, so a reader never sees half of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.files import atomic_write_bytes, atomic_write_json, kit_cache_dir, read_utf8, sha256_file, sha256_json
from trt_edge.log import get_logger
from trt_edge.runtime.base import Runner, logits_in_chunks
from trt_edge.tasks.spec import SENTENCE_EMBEDDING, TaskSpec

SPEC: TaskSpec = SENTENCE_EMBEDDING  # the task this runtime embeds for
CACHE_SUFFIX = ".trt-edge-embeddings"  # `corpus.txt` -> `corpus.txt.trt-edge-embeddings/`
CACHE_KIND = "trt-edge corpus embeddings"
CACHE_SCHEMA = 1
MAX_CORPUS_BYTES = 1 << 30

log = get_logger("run")


@dataclass(frozen=True)
class Corpus:
    """A corpus file's entries (its non-empty lines, in order), their 1-based line numbers in the file,
    and the file's sha256 (what the cache is keyed by)."""

    path: Path
    entries: list[str]
    line_numbers: list[int]
    sha256: str

    def __len__(self) -> int:
        return len(self.entries)


def read_corpus(path: str | os.PathLike[str]) -> Corpus:
    """Read a corpus file, refusing in one line one that is missing, not UTF-8, or has no non-empty line."""
    file = Path(path).expanduser()
    text, raw = read_utf8(file, f"--corpus {path}", MAX_CORPUS_BYTES)
    entries, numbers = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            entries.append(line)
            numbers.append(number)
    if not entries:
        raise TrtEdgeError(f"--corpus {path}: no non-empty line (one line is one entry)")
    return Corpus(file, entries, numbers, hashlib.sha256(raw).hexdigest())


def model_sha256(model_file: str | os.PathLike[str]) -> str:
    """The identity of a model file for the corpus cache: its sha256, combined with its external-data
    files' for an ONNX whose weights lie beside it (a retrained model changes only those)."""
    path = Path(model_file)
    files = [path]
    if path.suffix == ".onnx":
        from trt_edge.engine.onnxinfo import external_data_files

        with contextlib.suppress(TrtEdgeError):  # the runner refuses an unreadable ONNX in its own words
            files += external_data_files(path)
    if len(files) == 1:
        return sha256_file(path)
    return sha256_json([sha256_file(f) for f in files])


def preprocessor_sha256(folder: Path | None, spec: TaskSpec = SPEC) -> str | None:
    """The hash of the preprocessor's own files in `folder` (the vocabulary decides the tokens)."""
    if folder is None:
        return None
    files = sorted(folder / name for name in spec.preprocessor.files if (folder / name).is_file())
    return sha256_json({f.name: sha256_file(f) for f in files})


def cosine_top_k(queries: np.ndarray, matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosines) of the `k` rows of `matrix` nearest each query, best first (ties: lower index
    first). Rows are normalised here, so a model whose graph does not normalise is searched correctly."""
    check_top(k, len(matrix))
    scores = normalise(queries) @ normalise(matrix).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def check_top(k: Any, size: int) -> int:
    """`k` as the number of results to give from a corpus of `size` entries, or a one-line refusal."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise TrtEdgeError(f"--top takes a whole number, got {k!r}")
    if not 1 <= k <= size:
        raise TrtEdgeError(f"--top {k}: the corpus has {size} entr{'y' if size == 1 else 'ies'}; "
                           f"ask for 1 to {size}")
    return k


def normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    out: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return out


@dataclass(frozen=True)
class Hit:
    """One search result: the corpus entry, its line number in the corpus file (1-based; its index in
    a list of strings), and its cosine to the query."""

    text: str
    line: int
    cosine: float

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "line": self.line, "cosine": round(self.cosine, 6)}


@dataclass
class CorpusIndex:
    """A corpus with its embedding matrix (rows in corpus order), ready to search."""

    entries: list[str]
    line_numbers: list[int]
    matrix: np.ndarray
    cache_file: Path | None = None
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.entries)

    def search(self, query_vectors: np.ndarray, k: int) -> list[list[Hit]]:
        """The `k` nearest entries of each query vector, best first."""
        order, scores = cosine_top_k(query_vectors, self.matrix, k)
        return [[Hit(self.entries[i], self.line_numbers[i], float(s)) for i, s in zip(row, cos, strict=True)]
                for row, cos in zip(order, scores, strict=True)]


class TextEmbedder:
    """Embed texts with a runner (active or not: it is activated for the call when needed).

    Args:
      runner: any `Runner` whose outputs include `sentence_embedding` (or a single output).
      tokenizer: a Hugging Face tokenizer.
      max_length: truncation length. Defaults to 128.
      batch_size: texts per inference call (keep it within the engine's batch profile). Defaults to 32.
      model_file: the model file the runner runs; the corpus cache is keyed by its hash (None: no cache).
      preprocessor_folder: where the tokenizer came from; its files are part of the cache key.
    """

    def __init__(self, runner: Runner, tokenizer: Any, max_length: int = 128, batch_size: int = 32,
                 model_file: str | os.PathLike[str] | None = None, preprocessor_folder: Path | None = None) -> None:
        self.runner = runner
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.model_file = Path(model_file) if model_file is not None else None
        self.preprocessor_folder = preprocessor_folder
        self._model_sha: str | None = None

    @classmethod
    def from_model_file(cls, runner: Runner, model_file: str | os.PathLike[str],
                        tokenizer_dir: str | os.PathLike[str] | None = None, max_length: int = 128,
                        batch_size: int = 32) -> TextEmbedder:
        """Find the tokenizer that travels with `model_file` (or `tokenizer_dir`)."""
        from trt_edge.tasks.spec import preprocessor_dir

        folder = preprocessor_dir(model_file, tokenizer_dir)
        return cls(runner, SPEC.preprocessor.load(folder), max_length, batch_size, model_file, folder)

    def _feed(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        from trt_edge.tasks.adapter import adapter_for

        return adapter_for(SPEC).runtime_feed(self.tokenizer, texts, self.runner.inputs(), self.max_length,
                                              self.runner.name)

    def embed(self, texts: Sequence[str], on_chunk: Callable[[int], None] | None = None) -> np.ndarray:
        """One vector per text, in order (float32 [len(texts), dim]), as the model gives it (an exported
        embedding model normalises inside its graph)."""
        if isinstance(texts, str):
            raise TrtEdgeError("embed takes a list of texts, not one string")
        vectors = logits_in_chunks(self.runner, list(texts), self.batch_size, self._feed, SPEC.output,
                                   on_chunk=on_chunk, what="embed")
        if vectors.ndim != 2:
            raise TrtEdgeError(f"{self.runner.name}: output {SPEC.output!r} has shape {list(vectors.shape)}, "
                               "expected [batch, dim]; export the model as a sentence-embedding model")
        return vectors

    # --- corpus --------------------------------------------------------------------------------
    def cache_key(self, corpus: Corpus) -> dict[str, Any]:
        """What the corpus matrix depends on: the model, the corpus, the tokenizer, the truncation."""
        if self.model_file is None:
            raise TrtEdgeError("a cached corpus needs the model file (TextEmbedder.from_model_file)")
        if self._model_sha is None:
            self._model_sha = model_sha256(self.model_file)
        return {"model_sha256": self._model_sha, "corpus_sha256": corpus.sha256,
                "preprocessor_sha256": preprocessor_sha256(self.preprocessor_folder), "max_length": self.max_length}

    def index(self, corpus: Corpus | str | os.PathLike[str] | Sequence[str], cache: bool = True,
              progress: bool = True) -> CorpusIndex:
        """The corpus with its matrix. A corpus file (a path or a `Corpus`) is read back from its cache
        when the model, corpus, tokenizer and length are unchanged, else embedded (with a progress bar)
        and cached; a list of strings is embedded, not cached."""
        if not isinstance(corpus, (Corpus, str, os.PathLike)):
            entries = [str(t) for t in corpus]
            if not entries:
                raise TrtEdgeError("the corpus is empty")
            return CorpusIndex(entries, list(range(1, len(entries) + 1)), self._embed_all(entries, progress))
        corpus = corpus if isinstance(corpus, Corpus) else read_corpus(corpus)
        if not cache:
            return CorpusIndex(corpus.entries, corpus.line_numbers, self._embed_all(corpus.entries, progress))
        key = self.cache_key(corpus)
        name = sha256_json(key)[:24]
        for folder in cache_folders(corpus.path):
            matrix = read_cached(folder, name, key, len(corpus))
            if matrix is not None:
                log.info("read %d corpus embeddings from the cache %s", len(corpus), folder / f"{name}.npy")
                return CorpusIndex(corpus.entries, corpus.line_numbers, matrix, folder / f"{name}.npy", True)
        matrix = self._embed_all(corpus.entries, progress)
        written = write_cache(corpus, name, key, matrix)
        return CorpusIndex(corpus.entries, corpus.line_numbers, matrix, written, False)

    def _embed_all(self, entries: list[str], progress: bool) -> np.ndarray:
        from tqdm.auto import tqdm

        with tqdm(total=len(entries), desc="embedding the corpus", unit="line", disable=not progress,
                  leave=False) as bar:
            return self.embed(entries, on_chunk=bar.update)

    def search(self, queries: Sequence[str], corpus: CorpusIndex | Corpus | str | os.PathLike[str] | Sequence[str],
               k: int) -> list[list[Hit]]:
        """The `k` corpus entries nearest each query by cosine, best first. `corpus` is an index, a corpus
        file (embedded once and cached beside it) or a list of strings."""
        index = corpus if isinstance(corpus, CorpusIndex) else self.index(corpus)
        check_top(k, len(index))
        return index.search(self.embed(queries), k)


# --- the cache on disk --------------------------------------------------------------------------------
def cache_folders(corpus_file: Path) -> list[Path]:
    """Where a corpus's cache may lie, in the order it is looked for: beside the corpus, then the kit's
    cache folder (used when the corpus folder is read-only)."""
    return [beside_folder(corpus_file), kit_cache_dir() / "embeddings"]


def beside_folder(corpus_file: Path) -> Path:
    return corpus_file.parent / (corpus_file.name + CACHE_SUFFIX)


def read_cached(folder: Path, name: str, key: dict[str, Any], count: int) -> np.ndarray | None:
    """The cached matrix when its record matches `key` and its shape the corpus, else None (a stale,
    foreign or damaged entry is embedded again, never trusted)."""
    meta_file, npy_file = folder / f"{name}.json", folder / f"{name}.npy"
    if not (meta_file.is_file() and npy_file.is_file()):
        return None
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        matrix = np.load(npy_file, allow_pickle=False)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        log.warning("the cached corpus embeddings %s are unreadable; embedding the corpus again", npy_file)
        return None
    fits = (isinstance(meta, dict) and meta.get("kind") == CACHE_KIND and meta.get("schema") == CACHE_SCHEMA
            and all(meta.get(k) == v for k, v in key.items()) and meta.get("count") == count
            and matrix.ndim == 2 and matrix.shape == (count, meta.get("dim")) and matrix.dtype == np.float32)
    return matrix if fits else None


def _writable(folder: Path) -> bool:
    """Whether the cache folder can be made or written (tests fake a read-only corpus folder here)."""
    target = folder if folder.exists() else folder.parent
    return os.access(target, os.W_OK)


def write_cache(corpus: Corpus, name: str, key: dict[str, Any], matrix: np.ndarray) -> Path | None:
    """Write the matrix and its record beside the corpus (else in the kit's cache folder, said in the log);
    the `.npy` first, so a record never names a matrix that is not there. Entries of the same folder made
    for another version of the corpus file can never be read again and are removed. Returns the `.npy`."""
    beside, fallback = cache_folders(corpus.path)
    folders = [beside, fallback] if _writable(beside) else [fallback]
    if folders[0] is fallback:
        log.info("the corpus folder %s is read-only: caching its embeddings in %s", corpus.path.parent, fallback)
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(matrix, dtype=np.float32), allow_pickle=False)
    record = {"kind": CACHE_KIND, "schema": CACHE_SCHEMA, **key, "dim": int(matrix.shape[1]),
              "count": int(matrix.shape[0]), "corpus": str(corpus.path)}
    for folder in folders:
        try:
            if folder is beside:
                _remove_stale(folder, corpus.sha256)
            npy = atomic_write_bytes(folder / f"{name}.npy", buffer.getvalue())
            atomic_write_json(folder / f"{name}.json", record)
        except OSError as exc:
            if folder is beside and beside.is_dir() and not any(beside.iterdir()):
                beside.rmdir()
            log.warning("cannot cache the corpus embeddings in %s (%s)%s", folder, exc.strerror or exc,
                        f"; caching them in {fallback}" if folder is beside else "")
            continue
        log.info("cached %d corpus embeddings in %s", len(corpus), npy)
        return npy
    return None


def _remove_stale(folder: Path, corpus_sha: str) -> None:
    """Drop entries of `folder` recorded for another content of the corpus file (it changed since)."""
    if not folder.is_dir():
        return
    for meta_file in folder.glob("*.json"):
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError, RecursionError):
            continue
        if isinstance(meta, dict) and meta.get("kind") == CACHE_KIND and meta.get("corpus_sha256") != corpus_sha:
            meta_file.with_suffix(".npy").unlink(missing_ok=True)
            meta_file.unlink(missing_ok=True)
