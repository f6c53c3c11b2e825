"""HTML building blocks for the reports: escaping by default, number formats, tables, sections, the page shell.

Every value put into a table or a paragraph is escaped unless it is `Raw` (HTML built here): node names, file
paths and notes come from user models and user folders."""

from __future__ import annotations

import html
import math

from edge.units import human_bytes

# Mobile first: fluid width, tables scroll inside their own wrapper, charts shrink to their column.
CSS = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d2330;
background:#f4f5f7}
main{max-width:1100px;margin:0 auto;padding:12px}
h1{font-size:1.35rem;margin:.4rem 0 .2rem;overflow-wrap:anywhere}
h2{font-size:1.1rem;margin:0 0 .6rem;border-bottom:1px solid #e1e4ea;padding-bottom:.3rem}
h3{font-size:1rem;margin:1rem 0 .4rem}
h2.part{font-size:1.2rem;margin:1.6rem 0 .2rem;border:0}
section{background:#fff;border:1px solid #e1e4ea;border-radius:8px;padding:12px 14px;margin:12px 0}
p{margin:.4rem 0;overflow-wrap:anywhere}
.muted{color:#5b6472;font-size:.9rem}
.warn{background:#fff4e5;border-left:4px solid #e8590c;padding:6px 10px;border-radius:4px}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}
dl.facts{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:2px 12px;margin:.4rem 0}
dl.facts dt{color:#5b6472}dl.facts dd{margin:0;overflow-wrap:anywhere}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%;margin:.4rem 0}
table{border-collapse:collapse;font-size:.9rem;min-width:100%}
th,td{padding:4px 8px;border-bottom:1px solid #eceef2;text-align:left;vertical-align:top}
th{background:#f6f8fa;white-space:nowrap}
td.num,th.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.wide{min-width:11em;overflow-wrap:break-word}
tr.highlight td{background:#fff8c5;font-weight:600}
code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.85em;overflow-wrap:anywhere}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,440px),1fr));gap:12px}
figure.chart{margin:0;min-width:0}
figure.chart svg{display:block;width:100%;height:auto}
figcaption{font-size:.85rem;color:#5b6472;margin-top:2px}
@media (max-width:600px){main{padding:6px}section{padding:10px 8px;margin:8px 0}table{font-size:.8rem}
th,td{padding:3px 5px}}
"""


class Raw(str):
    """HTML made here, inserted as it is (everything else is escaped)."""


def esc(value) -> str:
    if isinstance(value, Raw):
        return value
    return html.escape("" if value is None else str(value))


def dig(data, *keys, default=None):
    """data[k1][k2]…, or `default` where a level is missing, None or not a dict (optional report parts)."""
    for key in keys:
        if not isinstance(data, dict) or data.get(key) is None:
            return default
        data = data[key]
    return data


def part(data, *keys) -> dict:
    """A sub-dict of the report, {} where it is missing or not a dict."""
    found = dig(data, *keys)
    return found if isinstance(found, dict) else {}


def records(value) -> list[dict]:
    """The dicts of a list in the report (passes, candidates, ...); [] for anything else."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def num(value) -> float | None:
    """A finite number from the report, or None for anything else (a missing or malformed metric; Python's json
    writes NaN where a measurement failed)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def fmt_bytes(n) -> str:
    n = num(n)
    return "–" if n is None else human_bytes(n)


def fmt_count(n) -> str:
    n = num(n)
    if n is None:
        return "–"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


def fmt_ms(n) -> str:
    n = num(n)
    return "–" if n is None else f"{n:.3f} ms"


def fmt_share(n) -> str:
    """A fraction 0..1 as a percentage."""
    n = num(n)
    return "–" if n is None else f"{n:.2%}"


def fmt_num(n, spec: str = ".3g") -> str:
    n = num(n)
    return "–" if n is None else format(n, spec)


def fmt_ratio(before, after) -> str:
    before, after = num(before), num(after)
    return "–" if not before or after is None else f"{after / before:.2f}×"


def table(headers: list[str], rows: list[list], numeric: set[int] = frozenset(), wide: set[int] = frozenset(),
          highlight: set[int] = frozenset()) -> Raw:
    """A table in a horizontally scrolling wrapper. Column indexes: `numeric` ones are right-aligned, `wide` ones
    (free text) keep a readable width on a phone, where the table scrolls instead; `highlight`: row indexes."""
    def cls(j: int) -> str:
        names = ["num"] * (j in numeric) + ["wide"] * (j in wide)
        return f' class="{" ".join(names)}"' if names else ""

    head = "".join(f"<th{cls(j)}>{esc(h)}</th>" for j, h in enumerate(headers))
    body = []
    for i, row in enumerate(rows):
        cells = "".join(f"<td{cls(j)}>{esc(c)}</td>" for j, c in enumerate(row))
        body.append(f'<tr class="highlight">{cells}</tr>' if i in highlight else f"<tr>{cells}</tr>")
    return Raw(f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
               f"</table></div>")


def facts(pairs: list[tuple[str, object]]) -> Raw:
    """A definition list of label → value, skipping pairs whose value is None."""
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in pairs if v is not None)
    return Raw(f'<dl class="facts">{items}</dl>')


def para(text, cls: str | None = None) -> Raw:
    return Raw(f'<p class="{cls}">{esc(text)}</p>' if cls else f"<p>{esc(text)}</p>")


def section(title: str, *parts, section_id: str | None = None) -> Raw:
    ident = f' id="{esc(section_id)}"' if section_id else ""
    return Raw(f"<section{ident}><h2>{esc(title)}</h2>{''.join(esc(p) for p in parts if p)}</section>")


def chart_grid(*figures) -> Raw:
    figures = [f for f in figures if f]
    return Raw(f'<div class="charts">{"".join(figures)}</div>') if figures else Raw("")


def document(title: str, subtitle: str, *sections) -> str:
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
            f'<h1>{esc(title)}</h1><p class="muted">{esc(subtitle)}</p>'
            f"{''.join(esc(s) for s in sections if s)}</main></body></html>\n")
