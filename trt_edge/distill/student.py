"""Building a student: a subset of the teacher's layers, a separate smaller pretrained model, or a config of the
teacher's family with random weights (`distill.student.config`)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from trt_edge.errors import TrtEdgeError
from trt_edge.modeling.anatomy import layer_list, num_layers, shared_groups
from trt_edge.modeling.quirks import check_layer_subset, set_depth
from trt_edge.modeling.quirks import default_layers as default_layers  # its home is modeling (the preflight asks it)


def student_from_teacher(teacher: Any, layers: list[int] | None) -> tuple[Any, list[int]]:
    """A copy of the teacher keeping only `layers` (embeddings, pooler and head are copied too). A model
    that cannot be cut to a layer subset is refused in one line (`check_layer_subset`)."""
    n = num_layers(teacher)
    keep = list(layers) if layers is not None else default_layers(n)
    if not keep:
        raise TrtEdgeError("distill.student.layers is empty; keep at least one layer")
    bad = [i for i in keep if not 0 <= i < n]
    if bad:
        raise TrtEdgeError(f"distill.student.layers {bad} out of range: the teacher has layers 0..{n - 1}")
    if len(set(keep)) != len(keep) or keep != sorted(keep):
        raise TrtEdgeError(f"distill.student.layers must be increasing and distinct, got {keep}")
    check_layer_subset(teacher.config, keep)
    student = copy.deepcopy(teacher)
    if shared_groups(student.config) == 1:
        # One block applied num_hidden_layers times (ALBERT): every layer is the same weights, so keeping
        # k of them is applying the shared block k times.
        set_depth(student.config, keep, n)
        return student, keep
    parent, name, blocks = layer_list(student)  # found at the teacher's depth, before the config changes
    setattr(parent, name, torch.nn.ModuleList([blocks[i] for i in keep]))
    set_depth(student.config, keep, n)
    for new_index, block in enumerate(getattr(parent, name)):
        for module in block.modules():  # attention modules that remember their index (caching)
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    return student, keep


# Config keys that fix what a model takes in (the preprocessor's output): a config student must agree with the
# teacher on each the teacher's config has, since both see every example through the teacher's preprocessor.
INTERFACE_KEYS = ("model_type", "image_size", "num_channels", "vocab_size", "type_vocab_size", "pad_token_id",
                  "num_mel_bins", "max_length")
# Keys a config student takes from the teacher when it leaves them out (a shorter position table is the
# student's choice, but no default should be shorter than what the teacher was given).
INHERITED_KEYS = ("max_position_embeddings",)


def _value(config: Any, key: str) -> Any:
    value = config.get(key) if isinstance(config, Mapping) else getattr(config, key, None)
    return list(value) if isinstance(value, tuple) else value


def student_config(raw: Mapping[str, Any], teacher_config: Any, label_names: Sequence[str] | None = None
                   ) -> dict[str, Any]:
    """`distill.student.config` completed from the teacher's config (a transformers config or its config.json
    dict): `model_type` and the keys that fix the inputs (`INTERFACE_KEYS`) the student leaves out are the
    teacher's; one that differs, or labels that are not the task's, is refused in one line (the student is
    trained on the teacher's preprocessor outputs and logits, so it must take the same inputs and classes)."""
    out = dict(raw)
    for key in INTERFACE_KEYS:
        theirs = _value(teacher_config, key)
        if theirs is None:
            continue
        if key in out and _value(out, key) != theirs:
            raise TrtEdgeError(f"distill.student.config.{key} is {out[key]!r}, the teacher's is {theirs!r}: a config "
                               "student is the teacher's family and takes the teacher's preprocessor; give a "
                               "folder in distill.student.model for another")
        out[key] = theirs
    for key in INHERITED_KEYS:
        if key not in out and _value(teacher_config, key) is not None:
            out[key] = _value(teacher_config, key)
    if label_names is not None:
        names = list(label_names)
        given = out.get("id2label")
        if out.get("num_labels") not in (None, len(names)) or (
                given is not None and [str(given[k]) for k in sorted(given, key=int)] != names):
            raise TrtEdgeError(f"distill.student.config: its labels ({out.get('num_labels', given)}) are not the "
                               f"task's {len(names)} classes {names}; leave num_labels and id2label out (the "
                               "student takes the task's)")
        for key in ("num_labels", "id2label", "label2id"):
            out.pop(key, None)
    return out


def uniform_layer_map(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """Student layer i learns from teacher layer ceil((i + 1) * T / S) - 1 (the last maps to the last)."""
    return [(i, -(-(i + 1) * teacher_layers // student_layers) - 1) for i in range(student_layers)]


def subset_layer_map(kept: list[int], teacher_layers: int) -> list[tuple[int, int]]:
    """For a student made of teacher layers `kept`: student layer i learns the output of the teacher layer
    just before the next kept one, and the last learns the teacher's last.

    Kept layer i stands in for teacher layers kept[i] .. kept[i+1]-1, so its output should look like what
    that block hands on. Matching it to teacher layer kept[i] instead would pull the student's final
    hidden state towards an inner teacher layer, while the classifier copied from the teacher reads the
    teacher's last one.
    """
    ends = [*kept[1:], teacher_layers]
    return [(i, end - 1) for i, end in enumerate(ends)]


def fit_probe_head(model: Any, tokenizer: Any, texts: list[str], labels: list[int], max_length: int = 64,
                   steps: int = 300, lr: float = 1e-2, seed: int = 0) -> None:
    """Fit `model.classifier` as a linear probe on the frozen pooled features of `texts`, in place.

    A classifier that is right well above chance in seconds, without training the encoder: the stand-in
    for a distilled student in tests and benchmarks that need real predictions but not distillation.
    A linear probe on the pooled output is exactly a BERT classifier's own head (dropout is off in eval);
    in heads with a dense layer first (RoBERTa, MPNet) the last Linear is fitted on the dense layer's output.
    """
    from trt_edge.tasks.text_classification import collate, encode

    # The head's last Linear (BERT: `classifier` itself; RoBERTa/MPNet/DeBERTa: `classifier.out_proj`),
    # fitted on the inputs it really receives, captured by a hook: any family's head, no names assumed.
    head_module = getattr(model, "classifier", None)
    linears = [m for m in head_module.modules() if isinstance(m, torch.nn.Linear)] if head_module is not None else []
    if not linears:
        raise ValueError(f"{type(model).__name__}: no Linear in its classifier head to fit")
    last = linears[-1]
    model.eval()
    enc = encode(tokenizer, texts, max_length)
    feats: list[torch.Tensor] = []
    hook = last.register_forward_pre_hook(lambda _m, args: feats.append(args[0].detach()))
    try:
        with torch.inference_mode():
            for i in range(0, len(enc), 64):
                model(**collate(enc.features[i:i + 64], enc.pad_token_id))
    finally:
        hook.remove()
    x, y = torch.cat(feats).clone(), torch.tensor(labels)
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], int(last.out_features))
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss: Any = torch.nn.functional.cross_entropy(head(x), y)
        loss.backward()  # Tensor.backward is untyped in the stubs
        opt.step()
    with torch.no_grad():
        last.weight.copy_(head.weight)
        last.bias.copy_(head.bias)
