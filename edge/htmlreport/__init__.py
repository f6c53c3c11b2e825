"""One self-contained HTML page per report (OUT.report.html beside OUT.report.json): inline CSS, charts as
inline SVG drawn by matplotlib, nothing fetched from the network, readable on a phone.

    render_optimize(report) -> str   # the dict `edge optimize` writes as OUT.report.json
    render_build(report) -> str      # the dict `edge build` writes as dist/NAME.report.json

Both take reports with optional parts missing (no labels, no searches, no passes, no components) and escape
every string taken from the report."""

from __future__ import annotations

from edge.htmlreport import build, optimize
from edge.htmlreport.page import Raw, dig, document, esc

__all__ = ["render_optimize", "render_build"]


def render_optimize(report: dict) -> str:
    """The full HTML page for an `edge optimize` report."""
    report = report if isinstance(report, dict) else {}
    return document(optimize.title(report), subtitle(report), *optimize.optimize_sections(report))


def render_build(report: dict) -> str:
    """The full HTML page for an `edge build` report, with the optimize report of the model inside it."""
    report = report if isinstance(report, dict) else {}
    inner = report.get("optimize") if isinstance(report.get("optimize"), dict) else None
    parts = build.build_sections(report)
    if inner:
        parts.append(Raw(f"<h2 class=\"part\">{esc(optimize.title(inner))}</h2>"))
        parts += optimize.optimize_sections(inner)
    return document(build.title(report), subtitle(report), *parts)


def subtitle(report: dict) -> str:
    version = dig(report, "edgepack")
    return f"report written by edgepack {version}" if version else "edgepack report"
