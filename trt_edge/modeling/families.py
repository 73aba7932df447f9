"""The model families trt-edge's tests cover, keyed by `model_type` (what config.json says).

One table, read by the tests (`tests/matrix` runs every `matrix` family through the whole chain and
expects exactly the `refusals` listed here; `tests/modeling` checks each family's `quirks` against what
`quirks.detected` finds on a tiny model), by the generated docs tables (rows in this order), and by
preflight, which warns when a model's `model_type` is not here: such a model may well work (structure
is found by shape, not by name), but no test has shown it.

Reading this module imports nothing heavy (no torch, no transformers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# The columns of the architecture matrix (tests/matrix), by key.
MATRIX_CELLS = ("export", "fuse_trt", "fuse_cpu", "permute", "sparse_2_4", "width", "int8")


@dataclass(frozen=True)
class Family:
    """One covered family.

    model_type (str): config.json's `model_type`.
    name (str): how the docs name it.
    classes (str): the transformers class-name prefix (`{classes}Config`, `{classes}ForSequenceClassification`).
    quirks (tuple[str, ...]): the `quirks.QUIRKS` this family has.
    matrix (bool): run through the whole chain by tests/matrix (the text encoders); the others are covered
        by the task and width tests named in `tests`.
    refusals (Mapping[str, str]): matrix cell -> the reason the kit gives for not doing it (a substring).
    tests (str): where the family is tested.
    notes (str): anything else a user of this family should know.
    """

    model_type: str
    name: str
    classes: str
    quirks: tuple[str, ...] = ()
    matrix: bool = True
    refusals: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    tests: str = "tests/matrix, tests/sparsity/test_width.py"
    notes: str = ""

    def supports(self, cell: str) -> bool:
        """Whether the kit does matrix `cell` for this family (a `matrix` family not refusing it)."""
        return self.matrix and cell not in self.refusals


_ROTARY = "rotary position embedding"
_DISENTANGLED = "content-dependent position scores"
_AUDIO_TESTS = "tests/pipeline/test_audio_pipeline.py"
_VISION_TESTS = "tests/tasks/test_image_classification.py, tests/sparsity/test_width.py"
_SEGMENTATION_TESTS = "tests/tasks/test_semantic_segmentation.py, tests/pipeline/test_segmentation_pipeline.py"
_DETECTION_TESTS = "tests/tasks/test_object_detection.py, tests/pipeline/test_detection_pipeline.py"

FAMILIES: tuple[Family, ...] = (
    Family("bert", "BERT", "Bert"),
    Family("roberta", "RoBERTa", "Roberta"),
    Family("xlm-roberta", "XLM-RoBERTa", "XLMRoberta"),
    Family("distilbert", "DistilBERT", "DistilBert", notes="config names: dim, n_layers, n_heads, hidden_dim"),
    Family("electra", "ELECTRA", "Electra", quirks=("embedding-size",)),
    Family("albert", "ALBERT", "Albert", quirks=("shared-block", "embedding-size"),
           notes="width pruning needs num_hidden_groups: 1"),
    Family("mpnet", "MPNet", "MPNet", notes="a relative position bias shared by every layer: one head set"),
    Family("deberta-v2", "DeBERTa-v2/v3", "DebertaV2",
           refusals=MappingProxyType({"fuse_trt": _DISENTANGLED, "fuse_cpu": _DISENTANGLED}),
           notes="without token types the exporter drops token_type_ids; the export puts it back as an unused input"),
    Family("modernbert", "ModernBERT", "ModernBert", quirks=("layer-types", "rotary"),
           refusals=MappingProxyType({"fuse_trt": _ROTARY, "fuse_cpu": _ROTARY,
                                      "permute": "no Linear pair in the block keeps the model's function"}),
           notes="attention modules carry head_dim, not a head count; opset 18 for the dynamo export"),
    Family("vit", "ViT", "ViT", matrix=False, tests=_VISION_TESTS),
    Family("deit", "DeiT", "DeiT", matrix=False, tests=_VISION_TESTS),
    Family("dinov2", "DINOv2", "Dinov2", quirks=("backbone-stages",), matrix=False, tests=_VISION_TESTS,
           notes="its head reads [CLS] concatenated with the mean of the patch tokens"),
    Family("segformer", "SegFormer", "Segformer", matrix=False, tests=_SEGMENTATION_TESTS,
           notes="semantic segmentation; hierarchical encoder: the student is a separate shallower folder; "
                 "the reduced-key attention of stages with sr_ratio > 1 is left unfused"),
    Family("dpt", "DPT", "DPT", matrix=False, tests=_SEGMENTATION_TESTS,
           notes="semantic segmentation; a layer-subset student keeps the layers its neck reads "
                 "(backbone_out_indices)"),
    Family("yolos", "YOLOS", "Yolos", matrix=False, tests=_DETECTION_TESTS,
           notes="object detection; a plain ViT with detection tokens: layer-subset students, width pruning"),
    Family("detr", "DETR", "Detr", matrix=False, tests=_DETECTION_TESTS,
           notes="object detection; a layer subset cuts the encoder (the decoder stays whole); the decoder's "
                 "cross-attention is left unfused; its zero queries stay out of Q/DQ"),
    Family("wav2vec2", "wav2vec2", "Wav2Vec2", matrix=False, tests=_AUDIO_TESTS,
           notes="audio classification on the raw waveform; the convolutional feature encoder stays dense under "
                 "2:4; a fixed clip length (clip_seconds in the feature extractor)"),
    Family("audio-spectrogram-transformer", "AST", "AST", matrix=False, tests=_AUDIO_TESTS,
           notes="audio classification on log-mel frames (its extractor's max_length); the patch embedding "
                 "stays dense under 2:4"),
    Family("whisper", "Whisper encoder", "Whisper", matrix=False, tests=_AUDIO_TESTS,
           notes="audio classification with WhisperForAudioClassification (the encoder and a head; no decoder); "
                 "the two stem convolutions stay dense under 2:4"),
)
BY_MODEL_TYPE: Mapping[str, Family] = MappingProxyType({f.model_type: f for f in FAMILIES})


def family(model_type: str | None) -> Family | None:
    """The covered family of `model_type`, or None when no test covers it."""
    return BY_MODEL_TYPE.get(model_type) if model_type else None


def uncovered_note(model_type: str | None, what: str) -> str | None:
    """One line for a model whose `model_type` no test covers (None when one does): it may work, since
    the kit finds structure by shape, but nothing has shown it."""
    if family(model_type) is not None:
        return None
    return (f"{what}: model_type {model_type!r} is not a family trt-edge's tests cover "
            f"({', '.join(BY_MODEL_TYPE)}); it may work, but check every stage's parity and gates")


def markdown() -> str:
    """The families table for the docs (docs/export.md holds it between markers; tests/modeling checks it
    is current and rewrites it with `TRT_EDGE_WRITE_DOCS=1`)."""
    lines = ["| model_type | family | quirks | whole chain (tests/matrix) | tested in | notes |", "|---" * 6 + "|"]
    for f in FAMILIES:
        chain = ("yes" + "".join(f"; no {cell}" for cell in f.refusals)) if f.matrix else "no"
        lines.append(f"| {f.model_type} | {f.name} | {', '.join(f.quirks) or '-'} | {chain} | {f.tests} | "
                     f"{f.notes or '-'} |")
    return "\n".join(lines)
