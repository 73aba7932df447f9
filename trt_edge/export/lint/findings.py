"""What the TensorRT lint reports: findings with a severity, and the result for one model.

Severities: `error` (the parser will refuse the model), `warning` (it will import but something costs
accuracy or speed), `info` (worth knowing).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]


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
