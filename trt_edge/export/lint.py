"""What TensorRT on the device will refuse or slow down, found on the laptop without TensorRT.

The facts live in data, one table per TensorRT version (`trt_edge/data/trt_onnx_<version>.json`: the ops
its ONNX parser imports, the ones it refuses, attribute and input restrictions, how it treats INT64, the
newest opset it reads) and one for the Orin DLA (`dla_orin.json`). This module only reads a graph and
applies a table; supporting a new TensorRT release is a new JSON file, not a code branch.

Findings have a severity: `error` (the parser will refuse the model: an op it does not import, a
restriction it enforces), `warning` (it will import but something costs accuracy or speed: INT64
casts, data-dependent shapes, attention that misses the MHA fusion, layers that fall back from the
DLA), `info` (worth knowing).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from trt_edge.errors import TrtEdgeError
from trt_edge.trt_version import TrtVersion

Severity = Literal["error", "warning", "info"]
_TABLE_PREFIX = "trt_onnx_"
_DEFAULT_DOMAINS = ("", "ai.onnx")
_NON_TRT_DOMAINS = ("com.microsoft", "ai.onnx.ml", "com.microsoft.nchwc", "ai.onnx.training")
# Ops allowed between the attention scores and Softmax (mask and scale), and between Softmax and BMM2.
_SCORE_OPS = ("Add", "Sub", "Mul", "Div", "Where", "Cast", "Identity")
_PROB_OPS = ("Cast", "Where", "Dropout", "Identity")
_QKV_PASS = ("Mul", "Div", "Cast", "Identity")


@dataclass
class Finding:
    """One thing the lint found: severity, a stable code, a sentence, and the nodes concerned."""

    severity: Severity
    code: str
    message: str
    nodes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LintResult:
    """All findings for one model and one TensorRT version (and the DLA when asked)."""

    onnx_path: str
    tensorrt: str
    table: str
    dla: bool
    opset: int
    findings: list[Finding] = field(default_factory=list)
    attention: list[dict[str, Any]] = field(default_factory=list)
    dla_fallback: dict[str, int] = field(default_factory=dict)
    op_counts: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> dict[str, Any]:
        """The compact form recorded in stage.json."""
        return {"tensorrt": self.tensorrt, "table": self.table, "dla": self.dla, "errors": len(self.errors),
                "warnings": len(self.warnings), "codes": sorted({f.code for f in self.findings}),
                "attention_blocks": len(self.attention),
                "attention_fusable": sum(1 for a in self.attention if a["matches"])}

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "onnx_path": self.onnx_path, "opset": self.opset,
                "findings": [f.to_dict() for f in self.findings], "attention": self.attention,
                "dla_fallback": self.dla_fallback, "op_counts": self.op_counts}

    def to_text(self) -> str:
        """A human report, errors first."""
        head = f"{self.onnx_path}: TensorRT {self.tensorrt} (table {self.table}){' + DLA' if self.dla else ''}, " \
               f"opset {self.opset}"
        lines = [head]
        order = {"error": 0, "warning": 1, "info": 2}
        for f in sorted(self.findings, key=lambda f: order[f.severity]):
            where = ""
            if f.nodes:
                shown = ", ".join(f.nodes[:3])
                where = f" [{shown}{', ...' if len(f.nodes) > 3 else ''}]"
            lines.append(f"  {f.severity.upper():7s} {f.code}: {f.message}{where}")
        lines.append(f"{len(self.errors)} errors, {len(self.warnings)} warnings")
        return "\n".join(lines)


# --- tables ---------------------------------------------------------------------------------------

def _data_dir() -> Any:
    return resources.files("trt_edge") / "data"


def available_versions() -> list[str]:
    """TensorRT versions with a table, oldest first."""
    names = [p.name for p in _data_dir().iterdir() if p.name.startswith(_TABLE_PREFIX) and p.name.endswith(".json")]
    versions = [n[len(_TABLE_PREFIX):-len(".json")] for n in names]
    return sorted(versions, key=_version_key)


def _version_key(version: str) -> tuple[int, ...]:
    """The parts a table name writes (`11` -> (11,), `10.13` -> (10, 13)), through the kit's version type."""
    return TrtVersion.parse(version).parts


def resolve_version(trt: str) -> str:
    """The table for `trt`: the one its version belongs to (`10.3` for 10.3.0, `11` for 11.1), else the
    newest older table of the same major (a conservative reading: `10.13` for 10.16)."""
    want = TrtVersion.parse(trt)
    versions = available_versions()
    exact = [v for v in versions if want.matches(TrtVersion.parse(v))]
    if exact:
        return max(exact, key=lambda v: len(_version_key(v)))
    older = [v for v in versions if TrtVersion.parse(v).major == want.major and TrtVersion.parse(v) <= want]
    if older:
        return older[-1]
    raise TrtEdgeError(f"--trt {trt}: no lint table for this TensorRT version; tables exist for "
                       f"{', '.join(versions)}")


def _is_exact(version: str, trt: str) -> bool:
    return TrtVersion.parse(trt).matches(TrtVersion.parse(version))


@cache
def load_table(version: str) -> dict[str, Any]:
    """The parsed table of one TensorRT version (as named by `resolve_version`)."""
    path = _data_dir() / f"{_TABLE_PREFIX}{version}.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TrtEdgeError(f"no lint table for TensorRT {version}") from exc
    return data


def imports_op(trt: str, op: str) -> bool:
    """Whether TensorRT `trt`'s ONNX parser imports the standard op `op`, per its lint table: the one
    list of what each version imports (the export's `decompose_layernorm: auto` reads it too)."""
    return op in load_table(resolve_version(trt))["supported"]


@cache
def load_dla_table(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((_data_dir() / name).read_text(encoding="utf-8"))
    return data


# --- graph helpers --------------------------------------------------------------------------------

class _Graph:
    """Producers, consumers, constants and tensor types of a (shape-inferred) ONNX graph."""

    def __init__(self, model: Any) -> None:
        import onnx

        self.model = model
        graph = model.graph
        self.nodes = list(graph.node)
        self.producer: dict[str, Any] = {}
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        for node in self.nodes:
            for out in node.output:
                if out:
                    self.producer[out] = node
            for inp in node.input:
                if inp:
                    self.consumers[inp].append(node)
        self.initializers = {t.name: t for t in graph.initializer}
        self.graph_outputs = {o.name for o in graph.output}
        self.graph_inputs = [i for i in graph.input if i.name not in self.initializers]
        self.types: dict[str, tuple[int, int | None]] = {}
        for value in [*graph.input, *graph.value_info, *graph.output]:
            tt = value.type.tensor_type
            rank = len(tt.shape.dim) if tt.HasField("shape") else None
            self.types[value.name] = (tt.elem_type, rank)
        for t in graph.initializer:
            self.types[t.name] = (t.data_type, len(t.dims))
        self._onnx = onnx

    def is_constant(self, name: str) -> bool:
        if name in self.initializers:
            return True
        node = self.producer.get(name)
        return node is not None and node.op_type in ("Constant", "ConstantOfShape") and all(
            self.is_constant(i) for i in node.input if i)

    def constant_value(self, name: str) -> Any:
        from onnx import numpy_helper

        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
                if attr.name in ("value_float", "value_int"):
                    return self._onnx.helper.get_attribute_value(attr)
                if attr.name in ("value_floats", "value_ints"):
                    return list(self._onnx.helper.get_attribute_value(attr))
        return None

    def rank(self, name: str) -> int | None:
        return self.types.get(name, (0, None))[1]

    def is_used(self, name: str) -> bool:
        return bool(name) and (name in self.graph_outputs or bool(self.consumers.get(name)))


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for attr in node.attribute:
        if attr.name == name:
            value = helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _violates(rule: dict[str, Any], node: Any, g: _Graph) -> bool:
    kind = rule["kind"]
    if kind == "attribute_in":
        return _attr(node, rule["attribute"], rule.get("default")) not in rule["allowed"]
    if kind == "attribute_equals":
        return bool(_attr(node, rule["attribute"], rule.get("default")) != rule["value"])
    if kind == "attribute_absent":
        present = {a.name for a in node.attribute}
        return any(a in present for a in rule["attributes"])
    index = int(rule.get("input", rule.get("output", 0)))
    if kind == "input_constant":
        return len(node.input) > index and bool(node.input[index]) and not g.is_constant(node.input[index])
    if kind == "output_unused":
        return len(node.output) > index and g.is_used(node.output[index])
    if kind == "zero_point_zero":
        if len(node.input) <= index or not node.input[index]:
            return False
        value = g.constant_value(node.input[index])
        if value is None:
            return True
        import numpy as np

        return bool(np.any(np.asarray(value) != 0))
    raise ValueError(f"unknown restriction kind {kind!r} in a lint table")


def _shape_tensors(g: _Graph) -> set[str]:
    """Tensors computed only from shapes and constants (TensorRT folds or evaluates them as shape
    tensors; they are not device layers)."""
    shape: set[str] = set()
    for node in g.nodes:  # graph order is topological
        if node.op_type == "Shape":
            shape.update(o for o in node.output if o)
            continue
        inputs = [i for i in node.input if i]
        live = [i for i in inputs if not g.is_constant(i)]
        if node.op_type == "Constant" or (live and all(i in shape for i in live)):
            shape.update(o for o in node.output if o)
    return shape


# --- the checks -----------------------------------------------------------------------------------

def _check_ops(g: _Graph, table: dict[str, Any], version: str, findings: list[Finding]) -> None:
    supported = set(table["supported"])
    unsupported: dict[str, str] = table["unsupported"]
    uncertain: dict[str, str] = table.get("uncertain", {})
    by_op: dict[tuple[str, str], list[str]] = defaultdict(list)
    for node in g.nodes:
        by_op[(node.domain, node.op_type)].append(node.name or node.output[0])
    for (domain, op), names in sorted(by_op.items()):
        if domain not in _DEFAULT_DOMAINS:
            if domain in _NON_TRT_DOMAINS:
                findings.append(Finding("error", "unsupported-op", f"{domain}.{op} (x{len(names)}) is an ONNX "
                                        "Runtime/ML op the TensorRT parser does not import", names))
            else:
                findings.append(Finding("warning", "custom-op", f"{op} (domain {domain!r}, x{len(names)}) needs a "
                                        "TensorRT plugin of that name loaded before parsing", names))
            continue
        if op in supported:
            continue
        if op in uncertain:
            findings.append(Finding("warning", "uncertain-op", f"{op} (x{len(names)}): {uncertain[op]}", names))
        elif op in unsupported:
            findings.append(Finding("error", "unsupported-op", f"{op} (x{len(names)}): {unsupported[op]}", names))
        else:
            findings.append(Finding("error", "unsupported-op", f"{op} (x{len(names)}) is not in TensorRT {version}'s "
                                    "ONNX operator table", names))


def _check_restrictions(g: _Graph, rules: list[dict[str, Any]], findings: list[Finding], severity: Severity,
                        code: str) -> None:
    hits: dict[str, list[str]] = defaultdict(list)
    for rule in rules:
        for node in g.nodes:
            if node.op_type == rule["op"] and node.domain in _DEFAULT_DOMAINS and _violates(rule, node, g):
                hits[rule["message"]].append(node.name or node.output[0])
    for message, names in hits.items():
        findings.append(Finding(severity, code, f"{message} (x{len(names)})", names))


def _check_int64(g: _Graph, table: dict[str, Any], version: str, findings: list[Finding]) -> None:
    import onnx

    int64 = onnx.TensorProto.INT64
    inputs = [i.name for i in g.graph_inputs if i.type.tensor_type.elem_type == int64]
    inner = sorted(n for n, (t, _) in g.types.items() if t == int64 and n not in inputs)
    if table["int64"] == "cast":
        if inputs:
            findings.append(Finding("warning", "int64", f"INT64 inputs {inputs}: TensorRT {version} casts INT64 to "
                                    "INT32 (values clamped to +-2^31); bind int32 buffers, or export with "
                                    "int32_inputs", inputs))
        if inner:
            findings.append(Finding("warning", "int64", f"{len(inner)} INT64 tensors/initializers inside the graph "
                                    f"will be cast to INT32 by TensorRT {version}", inner))
    elif inputs:
        findings.append(Finding("info", "int64", f"INT64 inputs {inputs}: TensorRT {version} keeps INT64 (bind int64 "
                                "buffers); int32 inputs (export.int32_inputs) are the cheaper contract", inputs))


def _check_opset(opset: int, table: dict[str, Any], version: str, findings: list[Finding]) -> None:
    limit = int(table["opset_max"])
    if opset > limit:
        verified = "" if table.get("opset_max_verified") else " [limit UNVERIFIED]"
        findings.append(Finding("warning", "opset", f"opset {opset} is newer than the {limit} TensorRT {version} "
                                f"documents{verified}; re-export with export.opset={min(limit, 17)}"))


def _check_data_dependent(g: _Graph, table: dict[str, Any], findings: list[Finding]) -> None:
    reasons: dict[str, str] = table.get("data_dependent", {})
    for op, why in reasons.items():
        names = [n.name or n.output[0] for n in g.nodes if n.op_type == op]
        if names:
            findings.append(Finding("warning", "data-dependent-shape", f"{op} (x{len(names)}): {why}; TensorRT "
                                    "needs an output allocator for it and cannot run it on the DLA", names))
    # TopK with a K computed at run time has a data-dependent output length too.
    dyn_topk = [n.name for n in g.nodes if n.op_type == "TopK" and len(n.input) > 1 and not g.is_constant(n.input[1])]
    if dyn_topk:
        findings.append(Finding("warning", "data-dependent-shape", f"TopK with a run-time K (x{len(dyn_topk)})",
                                dyn_topk))


def _walk_up(g: _Graph, name: str, allowed: tuple[str, ...], limit: int = 8) -> tuple[Any, list[Any]]:
    """Follow the non-constant input upwards through `allowed` ops; return (first other node, path)."""
    path: list[Any] = []
    node = g.producer.get(name)
    while node is not None and node.op_type in allowed and len(path) < limit:
        path.append(node)
        live = [i for i in node.input if i and not g.is_constant(i)]
        if node.op_type == "Where":
            live = [node.input[2]] if len(node.input) > 2 and not g.is_constant(node.input[2]) else live[-1:]
        if not live:
            return None, path
        # Prefer the input that leads to a MatMul (the scores) over masks.
        nxt = None
        for cand in live:
            prod = g.producer.get(cand)
            if prod is not None and (prod.op_type == "MatMul" or prod.op_type in allowed):
                nxt = cand
                break
        node = g.producer.get(nxt or live[0])
    return node, path


def _scalar_operand(g: _Graph, node: Any) -> bool:
    """A Mul/Div with a constant scalar operand (an attention scale)."""
    import numpy as np

    if node.op_type not in ("Mul", "Div"):
        return False
    for inp in node.input:
        if inp and g.is_constant(inp):
            value = g.constant_value(inp)
            if value is not None and np.asarray(value).size == 1:
                return True
    return False


def _operand_origin(g: _Graph, name: str) -> tuple[bool, Any]:
    """(pre-scaled?, the first node above the scale/cast chain) for a BMM1 operand."""
    node = g.producer.get(name)
    scaled = False
    steps = 0
    while node is not None and node.op_type in _QKV_PASS and steps < 6:
        scaled = scaled or _scalar_operand(g, node)
        live = [i for i in node.input if i and not g.is_constant(i)]
        if not live:
            break
        node = g.producer.get(live[0])
        steps += 1
    return scaled, node


def _check_attention(g: _Graph, findings: list[Finding]) -> list[dict[str, Any]]:
    """Each Softmax fed by an activation x activation MatMul is an attention block; does it match
    TensorRT's MHA fusion (Q or K scaled before BMM1, [B, N, S, H] layout, Softmax straight into BMM2)?"""
    blocks = []
    for sm in g.nodes:
        if sm.op_type != "Softmax":
            continue
        bmm1, between = _walk_up(g, sm.input[0], _SCORE_OPS)
        if bmm1 is None or bmm1.op_type != "MatMul" or any(g.is_constant(i) for i in bmm1.input):
            continue
        scale_after = [n.name for n in between if _scalar_operand(g, n)]
        q_scaled, q_origin = _operand_origin(g, bmm1.input[0])
        k_scaled, _ = _operand_origin(g, bmm1.input[1])
        ranks = [g.rank(i) for i in bmm1.input]
        perm = list(_attr(q_origin, "perm", [])) if q_origin is not None and q_origin.op_type == "Transpose" else None
        if all(r == 4 for r in ranks if r is not None) and any(r == 4 for r in ranks):
            layout_ok: bool | None = perm in (None, [0, 2, 1, 3])
        elif any(r is not None for r in ranks):
            layout_ok = False
        else:
            layout_ok = None if perm is None else perm == [0, 2, 1, 3]
        # Down: Softmax -> (Cast/Where/Dropout) -> BMM2.
        after: list[str] = []
        node = sm
        bmm2 = None
        for _ in range(6):
            users = g.consumers.get(node.output[0], [])
            guards = [u for u in users if u.op_type == "IsNaN"]  # the exporter's fully-masked-row guard
            users = [u for u in users if u.op_type != "IsNaN"]
            if guards:
                after.append("IsNaN")
            if len(users) != 1:
                break
            user = users[0]
            if user.op_type == "MatMul":
                bmm2 = user
                break
            if user.op_type not in _PROB_OPS:
                break
            after.append(user.op_type)
            node = user
        reasons = []
        if bmm2 is None:
            reasons.append("Softmax does not feed a second MatMul")
        if scale_after:
            reasons.append("the scale is applied to the scores after BMM1, not to Q or K before it")
        elif not (q_scaled or k_scaled):
            reasons.append("no scale on Q or K before BMM1")
        if layout_ok is False:
            reasons.append(f"Q/K are not in [B, N, S, H] layout (ranks {ranks})")
        block = {"softmax": sm.name, "bmm1": bmm1.name, "bmm2": bmm2.name if bmm2 is not None else None,
                 "q_prescaled": q_scaled, "k_prescaled": k_scaled, "scale_after_bmm1": bool(scale_after),
                 "layout_bnsh": layout_ok, "between_softmax_and_bmm2": after, "matches": not reasons,
                 "reasons": reasons}
        blocks.append(block)
    mismatched = [b for b in blocks if not b["matches"]]
    if mismatched:
        reasons = sorted({r for b in mismatched for r in b["reasons"]})
        findings.append(Finding("warning", "mha-fusion", f"{len(mismatched)} of {len(blocks)} attention blocks miss "
                                f"TensorRT's MHA fusion pattern ({'; '.join(reasons)}): they run as separate "
                                "MatMul/Softmax layers", [b["softmax"] for b in mismatched]))
    elif blocks:
        findings.append(Finding("info", "mha-fusion", f"all {len(blocks)} attention blocks match TensorRT's MHA fusion "
                                "pattern (Q/K pre-scaled before BMM1, [B, N, S, H])", [b["softmax"] for b in blocks]))
    extra = [b for b in blocks if b["between_softmax_and_bmm2"]]
    if extra:
        ops = sorted({op for b in extra for op in b["between_softmax_and_bmm2"]})
        findings.append(Finding("info", "mha-fusion", f"{len(extra)} attention blocks have {ops} between Softmax and "
                                "BMM2 (the exporter's guard for fully masked rows); whether TensorRT still fuses "
                                "them is not documented [UNVERIFIED]: check the engine's layer list",
                                [b["softmax"] for b in extra]))
    return blocks


def _check_dla(g: _Graph, table: dict[str, Any], version: str, findings: list[Finding]) -> dict[str, int]:
    name = table.get("dla")
    if not name:
        note = next((n for n in table.get("notes", []) if "DLA" in n), "no DLA target for this release")
        findings.append(Finding("warning", "dla", f"TensorRT {version}: {note}"))
        return {}
    dla = load_dla_table(str(name))
    native = set(dla["native"])
    build_time = set(dla["build_time"])
    shape = _shape_tensors(g)
    fallback: Counter[str] = Counter()
    nodes: list[str] = []
    restricted: dict[str, str] = {}
    for node in g.nodes:
        if node.op_type in build_time or all(o in shape for o in node.output if o):
            continue
        reason = None
        if node.op_type not in native:
            reason = f"{node.op_type} (not DLA-native)"
        else:
            for rule in dla.get("restrictions", []):
                if rule["op"] == node.op_type and _violates(rule, node, g):
                    reason = f"{node.op_type} ({rule['message'].split('(')[0].strip()})"
                    restricted[reason] = rule["message"]
                    break
        if reason:
            fallback[reason] += 1
            nodes.append(node.name or node.output[0])
    layers = sum(1 for n in g.nodes if not (n.op_type in build_time or all(o in shape for o in n.output if o)))
    if fallback:
        top = ", ".join(f"{k} x{v}" for k, v in fallback.most_common())
        findings.append(Finding("warning", "dla", f"{sum(fallback.values())} of {layers} layers cannot run on the DLA "
                                f"and fall back to the GPU (build with GPU_FALLBACK / --allowGPUFallback): {top}",
                                nodes))
    else:
        findings.append(Finding("info", "dla", f"all {layers} layers are DLA-capable (per {name})"))
    findings.append(Finding("info", "dla", "the DLA runs FP16 or INT8 only; build with --fp16 or --int8"))
    return dict(fallback)


def _check_plugin_attention(model: Any, blocks: list[dict[str, Any]], findings: list[Finding]) -> None:
    """Our fused-attention plugin's structural verdict on each block, in the matcher's own words.

    TensorRT's MHA fusion (above) and our plugin accept different shapes: MPNet's relative position bias
    misses the first ("scale after BMM1") and is fused by the second. The reasons come from
    `plugins.onnx_rewrite.find_attention_candidates`, the same code `export --fuse-attention` runs, so
    lint and export never disagree about why a block is not fused; the numeric checks (mask semantics,
    head size) run only at export, on real feeds."""
    from trt_edge.plugins.onnx_rewrite import find_attention_candidates, summarize

    candidates, rejected = find_attention_candidates(model)
    verdict = {c.layer: "" for c in candidates}
    verdict.update({r["layer"]: r["reason"] for r in rejected})
    for block in blocks:
        reason = verdict.get(block["softmax"], "not examined")
        block["plugin_candidate"] = not reason
        block["plugin_reason"] = reason
    if rejected:
        findings.append(Finding("warning", "plugin-fusion", f"{len(rejected)} attention blocks cannot take the fused "
                                f"attention plugin: {summarize(rejected)}", [r["layer"] for r in rejected]))
    if candidates:
        findings.append(Finding("info", "plugin-fusion", f"{len(candidates)} attention blocks match the fused "
                                "attention plugin's pattern (scores + additive terms); `export --fuse-attention` "
                                "checks each numerically", [c.layer for c in candidates]))


def lint_model(model: Any, trt: str = "10.3", dla: bool = False, onnx_path: str = "<model>") -> LintResult:
    """Lint an in-memory ONNX model against TensorRT `trt` (and its DLA when `dla`)."""
    import onnx

    version = resolve_version(trt)
    table = load_table(version)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # shapes are a help, not a requirement: lint the graph as it is
        inferred = model
    g = _Graph(inferred)
    opset = next((int(o.version) for o in model.opset_import if o.domain in _DEFAULT_DOMAINS), 0)
    result = LintResult(onnx_path=onnx_path, tensorrt=str(trt), table=version, dla=dla, opset=opset,
                        op_counts=dict(sorted(Counter(n.op_type for n in g.nodes).items())))
    if any(len(n.attribute) and any(a.type == onnx.AttributeProto.GRAPH for a in n.attribute) for n in g.nodes):
        result.findings.append(Finding("info", "subgraphs", "If/Loop/Scan subgraphs are not linted inside"))
    _check_ops(g, table, version, result.findings)
    _check_restrictions(g, table.get("restrictions", []), result.findings, "error", "restriction")
    _check_opset(opset, table, version, result.findings)
    _check_int64(g, table, version, result.findings)
    _check_data_dependent(g, table, result.findings)
    result.attention = _check_attention(g, result.findings)
    _check_plugin_attention(model, result.attention, result.findings)
    if dla:
        result.dla_fallback = _check_dla(g, table, version, result.findings)
    if not _is_exact(version, trt):
        result.findings.append(Finding("info", "table", f"no table for TensorRT {trt}; used the {version} table"))
    return result


def lint_file(onnx_path: str | Path, trt: str = "10.3", dla: bool = False) -> LintResult:
    """Lint an ONNX file; a file that fails `onnx.checker` is a one-line `TrtEdgeError`."""
    from trt_edge.export.exporter import check_onnx_file

    model = check_onnx_file(onnx_path)
    return lint_model(model, trt, dla, str(onnx_path))
