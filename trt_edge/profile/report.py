"""profile.md and profile.html from a profile dict: tables a person reads at a glance, and plots.

Plots (matplotlib, Agg backend, imported lazily): a latency histogram per sweep point with the median
and tail percentiles marked, the slowest layers as bars, and the power trace with the idle window and
the timed windows shaded. The HTML embeds them as base64 PNG (one self-contained file); the Markdown
links the same PNGs under `plots/`.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trt_edge.artifacts import PLOTS, REPORT, REPORT_HTML
from trt_edge.files import atomic_write_bytes, atomic_write_text

_PCTS = (("median", "median", "tab:green"), ("p90", "p90", "tab:orange"), ("p95", "p95", "tab:red"),
         ("p99", "p99", "tab:purple"))


def _plt() -> Any:
    from trt_edge.lazy import lazy_import

    matplotlib = lazy_import("matplotlib")
    matplotlib.use("Agg", force=True)
    return lazy_import("matplotlib.pyplot")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def latency_histogram(runs: list[Mapping[str, Any]], title: str = "") -> bytes | None:
    runs = [r for r in runs if r.get("samples_ms")]
    if not runs:
        return None
    plt = _plt()
    n = min(len(runs), 6)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, run in zip(axes.flat, runs[:n], strict=False):
        samples = run["samples_ms"]
        ax.hist(samples, bins=min(40, max(10, len(samples) // 5)), color="tab:blue", alpha=0.75)
        stats = run.get("latency_ms") or {}
        for key, label, color in _PCTS:
            if key in stats:
                ax.axvline(stats[key], color=color, linestyle="--", linewidth=1.2, label=f"{label} {stats[key]:.2f}")
        ax.set_title(f"batch {run.get('batch')} · seq {run.get('seq')}", fontsize=9)
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("runs")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


def layer_bars(layers: Mapping[str, Any] | None, top: int = 15) -> bytes | None:
    if not layers or not layers.get("layers"):
        return None
    plt = _plt()
    rows = layers["layers"][:top][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.2))
    labels = [_short(r["name"]) + (f" [{r['op']}]" if r.get("op") else "") for r in rows]
    ax.barh(range(len(rows)), [r["mean_ms"] for r in rows], color="tab:blue")
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.set_xlabel("mean time per inference (ms)")
    ax.set_title(f"slowest {len(rows)} layers ({layers.get('source')})", fontsize=9)
    fig.tight_layout()
    return _png(fig)


def power_plot(power: Mapping[str, Any] | None, runs: list[Mapping[str, Any]]) -> bytes | None:
    if not power or not power.get("available") or not power.get("trace"):
        return None
    trace = power["trace"]
    if not trace.get("t"):
        return None
    plt = _plt()
    t0 = trace["t"][0]
    ts = [t - t0 for t in trace["t"]]
    fig, ax = plt.subplots(figsize=(9, 3.4))
    rails = power.get("rails") or list(trace["rails_mw"])
    for name, values in trace["rails_mw"].items():
        width = 2.0 if name in rails else 0.8
        ax.plot(ts, [v / 1e3 for v in values], label=name + (" (summed)" if name in rails else ""), linewidth=width)
    for i, run in enumerate(runs):
        idle = run.get("idle_window")
        if idle:
            ax.axvspan(idle[0] - t0, idle[1] - t0, color="grey", alpha=0.2, label="idle baseline" if i == 0 else None)
        w = run.get("window")
        if w:
            ax.axvspan(w[0] - t0, w[1] - t0, color="tab:orange", alpha=0.18, label="timed window" if i == 0 else None)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("power (W)")
    ax.set_title(f"power ({power.get('source')})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return _png(fig)


def _short(name: str, width: int = 60) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]


def make_plots(profile: Mapping[str, Any], top: int = 15) -> dict[str, bytes]:
    plots: dict[str, bytes | None] = {
        "latency_hist": latency_histogram(profile.get("runs") or [], profile.get("model", {}).get("path", "")),
        "layers": layer_bars(profile.get("layers"), top),
        "power": power_plot(profile.get("power"), profile.get("runs") or []),
    }
    return {k: v for k, v in plots.items() if v}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return out


def markdown(profile: Mapping[str, Any], plot_links: Mapping[str, str] | None = None, top: int = 15) -> str:
    """The report as Markdown; `plot_links` maps plot names to image paths (or data URIs)."""
    links = dict(plot_links or {})
    model = profile.get("model") or {}
    env = profile.get("environment") or {}
    lines = [f"# Profile: {model.get('path', profile.get('source', ''))}", ""]
    lines.append(f"Backend **{model.get('backend', '?')}**" + (f" ({', '.join(model['providers'])})"
                                                                  if model.get("providers") else "")
                 + f"; inputs: {(profile.get('inputs') or {}).get('description', '–')}.")
    if env:
        parts = [f"device {env.get('device_model') or env.get('processor') or env.get('machine')}"]
        if env.get("jetpack") or env.get("l4t"):
            parts.append(f"JetPack {env.get('jetpack') or '?'} (L4T {env.get('l4t') or '?'})")
        if env.get("nvpmodel"):
            parts.append(f"power mode {env['nvpmodel'].get('name')} (id {env['nvpmodel'].get('id')})")
        clocks = env.get("jetson_clocks")
        if clocks:
            parts.append(f"jetson_clocks {'pinned' if clocks.get('clocks_pinned') else 'not pinned'}")
        if env.get("cpu_count"):
            parts.append(f"{env['cpu_count']} CPUs")
        lines.append("Environment: " + ", ".join(parts) + ".")
        for note in env.get("notes") or []:
            lines.append(f"- note: {note}")
    lines += ["", "## Latency", ""]
    runs = profile.get("runs") or []
    header = ["batch", "seq", "runs", "min", "mean", "median", "p90", "p95", "p99", "max", "inferences/s"]
    rows = []
    for r in runs:
        s = r.get("latency_ms") or {}
        rows.append([r.get("batch"), r.get("seq"), r.get("iterations") or s.get("count"), s.get("min"), s.get("mean"),
                     s.get("median"), s.get("p90"), s.get("p95"), s.get("p99"), s.get("max"),
                     r.get("throughput_ips", r.get("throughput_qps"))])
    lines += _table(header, rows)
    lines.append("")
    lines.append("Latency in ms, host wall time around one inference"
                 + (" (trtexec: H2D + GPU compute + D2H)" if profile.get("source") == "trtexec" else "") + ".")
    for r in runs:
        if r.get("shapes"):
            lines.append(f"trtexec shapes: `{r['shapes']}`.")
    dev_rows = [[r.get("batch"), r.get("seq"), *(r["device_ms"].get(k) for k in ("min", "median", "p90", "p99", "max"))]
                for r in runs if r.get("device_ms")]
    if dev_rows:
        lines += ["", "Device (GPU compute) time, ms:", ""]
        lines += _table(["batch", "seq", "min", "median", "p90", "p99", "max"], dev_rows)
    if "latency_hist" in links:
        lines += ["", f"![latency histogram]({links['latency_hist']})"]
    power = profile.get("power") or {}
    lines += ["", "## Power and energy", ""]
    if power.get("available"):
        lines.append(f"Source: {power.get('source')}; rails summed: {power.get('rule')}.")
        keys = ("idle_mw", "active_mw", "mj_per_inference", "total_mj_per_inference", "samples_in_window")
        erows = [[r.get("batch"), r.get("seq"), *(r["energy"].get(k) for k in keys)] for r in runs if r.get("energy")]
        lines += ["", *_table(["batch", "seq", "idle mW", "active mW", "mJ/inference (net of idle)",
                                "mJ/inference (total)", "samples"], erows)]
        for r in runs:
            for note in (r.get("energy") or {}).get("notes", []):
                lines.append(f"- batch {r.get('batch')} seq {r.get('seq')}: {note}")
        if "power" in links:
            lines += ["", f"![power trace]({links['power']})"]
    else:
        lines.append(f"No power measured: {power.get('note', 'not requested')}.")
    layers = profile.get("layers")
    lines += ["", "## Layers", ""]
    if layers and layers.get("layers"):
        lines.append(f"From {layers.get('source')} over {layers.get('runs')} runs"
                     + (f" at batch {layers.get('batch')} seq {layers.get('seq')}" if layers.get("batch") else "")
                     + f"; total {_fmt(layers.get('total_ms'))} ms per inference.")
        lines.append("")
        lrows = [[i + 1, "`" + _short(x["name"]) + "`", x.get("op"), x.get("mean_ms"), x.get("percent")]
                 for i, x in enumerate(layers["layers"][:top])]
        lines += _table(["#", "layer", "op", "mean ms", "%"], lrows)
        if layers.get("by_op_ms"):
            lines += ["", "By operator type (ms): " + ", ".join(f"{k} {v:.3f}" for k, v in
                                                               list(layers["by_op_ms"].items())[:10]) + "."]
        if "layers" in links:
            lines += ["", f"![slowest layers]({links['layers']})"]
    else:
        note = profile.get("layers_note")
        lines.append("No per-layer times" + (f": {note}" if note else "") + ".")
    roof = profile.get("roofline")
    if roof and roof.get("rows"):
        c = roof["costs"]
        lines += ["", "## Roofline estimate (not a measurement)", "",
                  f"GEMM work at batch {c['batch']} seq {c['seq']}: {c['gemm_flops'] / 1e9:.3f} GFLOP, "
                  f"{c['gemm_weight_params'] / 1e6:.2f} M GEMM weights. {roof['note']}", ""]
        rrows = [[r["name"], r["precision"], r["peak_tops"], r["bandwidth_gbs"], r["compute_ms"], r["memory_ms"],
                  r["floor_ms"], r["bound"], ", ".join(r["unverified"]) or "–"] for r in roof["rows"]]
        lines += _table(["device", "precision", "peak TOPS", "GB/s", "compute ms", "memory ms", "floor ms",
                         "bound", "unverified"], rrows)
    elif profile.get("roofline_note"):
        lines += ["", "## Roofline estimate", "", profile["roofline_note"]]
    return "\n".join(lines) + "\n"


def html_page(md_text: str, plots: Mapping[str, bytes]) -> str:
    """A self-contained HTML page: the Markdown's tables as HTML, plots embedded as base64 PNG."""
    uris = {name: "data:image/png;base64," + base64.b64encode(data).decode() for name, data in plots.items()}
    body: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if not table:
            return
        body.append("<table>")
        for i, row in enumerate(table):
            if i == 1:
                continue
            tag = "th" if i == 0 else "td"
            body.append("<tr>" + "".join(f"<{tag}>{_inline(c)}</{tag}>" for c in row) + "</tr>")
        body.append("</table>")
        table.clear()

    for line in md_text.splitlines():
        if line.startswith("|"):
            table.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        flush()
        if line.startswith("!["):
            alt, _, rest = line[2:].partition("](")
            src = rest.rstrip(")")
            key = next((k for k in uris if src.endswith(f"{k}.png")), None)
            body.append(f'<p><img alt="{html.escape(alt)}" src="{uris[key] if key else html.escape(src)}"></p>')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("- "):
            body.append(f"<p>• {_inline(line[2:])}</p>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    flush()
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;"
             "padding:3px 7px;text-align:right}th{background:#f3f3f3}img{max-width:100%}code{font-size:12px}")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>trt-edge profile</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _inline(text: str) -> str:
    out = html.escape(text)
    parts = out.split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def write_reports(profile: Mapping[str, Any], folder: str | Path, plots: bool = True, top: int = 15) -> dict[str, str]:
    """Write profile.md, profile.html and plots/*.png into `folder`; returns their relative paths."""
    root = Path(folder)
    images = make_plots(profile, top) if plots else {}
    links = {}
    for name, data in images.items():
        atomic_write_bytes(root / "plots" / f"{name}.png", data)
        links[name] = f"plots/{name}.png"
    text = markdown(profile, links, top)
    atomic_write_text(root / "profile.md", text)
    atomic_write_text(root / "profile.html", html_page(text, images))
    out = {REPORT: "profile.md", REPORT_HTML: "profile.html"}
    if images:
        out[PLOTS] = "plots"
    return out
