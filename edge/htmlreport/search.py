"""The search sections of an optimize report (`report["searches"]`): why the winner won, where every candidate
lies against the original on size, latency and accuracy, and which nodes are most sensitive."""

from __future__ import annotations

from edge.htmlreport import charts
from edge.htmlreport.page import (
    Raw,
    chart_grid,
    dig,
    facts,
    fmt_bytes,
    fmt_ms,
    fmt_num,
    num,
    para,
    part,
    records,
    section,
    table,
)

SENSITIVE_NODES = 15
YES, NO = Raw('<span class="ok">✓</span>'), Raw('<span class="bad">✗</span>')


def search_sections(report: dict) -> list[Raw]:
    return [search_section(s, i) for i, s in enumerate(records(report.get("searches")), 1)]


def candidate_quality(c: dict) -> float | None:
    """Accuracy where labels were given, else top-1 agreement with the original, as a fraction."""
    accuracy = num(c.get("accuracy"))
    return accuracy if accuracy is not None else num(c.get("top1_agreement"))


def reference_quality(search: dict) -> float | None:
    """The original's accuracy, or 100 % agreement with itself when the search is judged on agreement."""
    accuracy = num(dig(search, "reference", "accuracy"))
    if accuracy is not None:
        return accuracy
    return 1.0 if search.get("basis") == "top-1 agreement" else None


def search_section(search: dict, index: int) -> Raw:
    kind = search.get("kind", "search")
    budget = part(search, "budget")
    limits = [f"{budget['seconds']:g} s" if num(budget.get("seconds")) else None,
              f"{budget['candidates']} candidates" if num(budget.get("candidates")) else None]
    parts = [para(f"winner: {search.get('why')}") if search.get("why") else para("no candidate won.", "warn"),
             para(f"stopped: {search['stopped']}", "muted") if search.get("stopped") else None,
             facts([("limit", f"{search.get('basis', 'accuracy')} drop ≤ {fmt_num(search.get('max_drop_pp'), 'g')} pt"
                     if search.get("max_drop_pp") is not None else None),
                    ("budget", ", ".join(x for x in limits if x) or "none"),
                    ("winner chosen by", None if search.get("by_latency") is None
                     else "latency, then size" if search["by_latency"] else "size"),
                    ("time", f"{fmt_num(search.get('seconds'), '.1f')} s" if search.get("seconds") is not None
                     else None)]),
             *[para(note, "muted") for note in search.get("notes") or [] if note],
             chart_grid(*search_charts(search, index)),
             Raw("<h3>candidates</h3>"), candidates_table(search),
             sensitivity_part(search, index)]
    step = f" (pass {search['pass']})" if search.get("pass") else ""
    return section(f"Search {index}: {kind}{step}", *parts, section_id=f"search-{index}")


def search_charts(search: dict, index: int) -> list[Raw]:
    """Accuracy vs size and accuracy vs latency, for the candidates that produced metrics."""
    ref, winner = part(search, "reference"), search.get("winner")
    basis = search.get("basis") or "accuracy"
    base = reference_quality(search)
    floor = base * 100 - search["max_drop_pp"] if base is not None and num(search.get("max_drop_pp")) is not None \
        else None
    figures = []
    latency_caption = "; ".join(str(t) for t in (search.get("latency_statistic"), search.get("latency_note")) if t)
    for axis, field, scale, label, caption in (
            ("size", "size_bytes", 1e-3, "size (kB)", None),
            ("latency", "latency_ms", 1.0, "latency (ms)", latency_caption or None)):
        points = [{"x": num(c.get(field)) * scale, "y": candidate_quality(c) * 100, "meets": c.get("meets"),
                   "pareto": c.get("pareto"), "winner": winner is not None and c.get("id") == winner,
                   "label": str(c.get("label", c.get("id")))}
                  for c in records(search.get("candidates"))
                  if not c.get("error") and num(c.get(field)) is not None
                  and candidate_quality(c) is not None]
        reference = {"x": num(ref.get(field)) * scale, "y": base * 100} \
            if num(ref.get(field)) is not None and base is not None else None
        if points:
            figures.append(charts.search_scatter(points, reference, floor, label, f"{basis} (%)",
                                                 f"search-{index}-{axis}", f"{basis} versus {axis}", caption))
    return figures


def settings_text(settings) -> str:
    if not isinstance(settings, dict):
        return "" if settings is None else str(settings)
    def value(v) -> str:
        return (", ".join(map(str, v)) or "none") if isinstance(v, list | tuple) else str(v)

    return "; ".join(f"{k}={value(v)}" for k, v in settings.items())


def candidates_table(search: dict) -> Raw:
    candidates = records(search.get("candidates"))
    if not candidates:
        return para("no candidates were tried.", "muted")
    winner = search.get("winner")
    rows, highlight = [], set()
    for i, c in enumerate(candidates):
        if winner is not None and c.get("id") == winner:
            highlight.add(i)
        measured = candidate_quality(c)
        rows.append([c.get("id", ""), c.get("label", ""), settings_text(c.get("settings")),
                     fmt_bytes(c.get("size_bytes")), fmt_ms(c.get("latency_ms")),
                     "–" if measured is None else f"{measured:.2%}",
                     f"{c['drop_pp']:.2f} pt" if num(c.get("drop_pp")) is not None else "–",
                     YES if c.get("meets") else NO, YES if c.get("pareto") else "",
                     f"{fmt_num(c.get('seconds'), '.1f')} s", c.get("error") or ""])
    headers = ["id", "label", "settings", "size", "latency", search.get("basis") or "accuracy", "drop", "meets",
               "Pareto", "time", "error"]
    note = para("the winner's row is highlighted.", "muted") if highlight else ""
    return Raw(table(headers, rows, numeric={0, 3, 4, 5, 6, 9}, wide={1, 2}, highlight=highlight) + note)


def sensitivity_part(search: dict, index: int) -> Raw:
    """The nodes whose quantization adds the most noise (top by added dB), as a chart and a table."""
    rows = [s for s in records(search.get("sensitivity")) if num(s.get("added_db")) is not None]
    if not rows:
        return Raw("")
    top = sorted(rows, key=lambda s: -s["added_db"])[:SENSITIVE_NODES]
    chart = charts.hbar_chart([f"{s.get('node', '?')} ({s.get('op', '?')})" for s in top],
                              [s["added_db"] for s in top], f"search-{index}-sensitivity",
                              "most sensitive nodes", "noise the node adds (dB, higher: more sensitive)",
                              "{:.1f}")
    body = table(["node", "op", "added dB", "SQNR dB"],
                 [[s.get("node", ""), s.get("op", ""), fmt_num(s.get("added_db"), ".2f"),
                   fmt_num(s.get("sqnr_db"), ".2f")] for s in top], numeric={2, 3})
    return Raw(f"<h3>sensitivity: the {len(top)} nodes with the highest added dB</h3>{chart_grid(chart, body)}")
