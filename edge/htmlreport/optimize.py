"""The sections of an `edge optimize` report: summary, charts, passes (and the searches, in search.py)."""

from __future__ import annotations

from pathlib import Path

from edge.htmlreport import charts
from edge.htmlreport.page import (
    Raw,
    chart_grid,
    dig,
    esc,
    facts,
    fmt_bytes,
    fmt_count,
    fmt_ms,
    fmt_num,
    fmt_ratio,
    fmt_share,
    num,
    para,
    part,
    records,
    section,
    table,
)
from edge.htmlreport.search import search_sections


def optimize_sections(report: dict) -> list[Raw]:
    return [summary_section(report), charts_section(report), passes_section(report), *search_sections(report)]


def title(report: dict) -> str:
    source = Path(str(dig(report, "input", "path", default="model"))).name
    target = Path(str(dig(report, "output", "path", default=""))).name
    return f"edge optimize: {source}" + (f" → {target}" if target else "")


def quality(report: dict) -> tuple[str, float | None, float | None] | None:
    """The accuracy-like figure to compare: (name, original, optimized) as fractions; top-1 agreement with the
    original where there are no labels (the original agrees with itself); None when neither was measured."""
    ev = part(report, "evaluation")
    original, optimized = num(dig(ev, "original", "accuracy")), num(dig(ev, "optimized", "accuracy"))
    if original is not None or optimized is not None:
        return "accuracy", original, optimized
    agreement = num(dig(ev, "comparison", "top1_agreement"))
    return ("top-1 agreement", 1.0, agreement) if agreement is not None else None


def latencies(report: dict) -> tuple[float | None, float | None]:
    ev = part(report, "evaluation")
    return (num(dig(ev, "original", "latency", "median_ms")), num(dig(ev, "optimized", "latency", "median_ms")))


def summary_section(report: dict) -> Raw:
    ev = part(report, "evaluation")
    sha = dig(report, "input", "sha256")
    labels = "with labels" if ev.get("labels") else "no labels: top-1 agreement with the original"
    samples = ev.get("samples")
    data = f"{ev.get('data', '–')} ({samples} samples, {labels})" if samples is not None else ev.get("data")
    parts = [facts([
        ("input", dig(report, "input", "path")),
        ("input size", fmt_bytes(dig(report, "input", "bytes")) if dig(report, "input", "bytes") else None),
        ("opset", dig(report, "input", "opset")),
        ("sha256", f"{sha[:16]}…" if isinstance(sha, str) else None),
        ("output", dig(report, "output", "path")),
        ("output size", fmt_bytes(dig(report, "output", "bytes")) if dig(report, "output", "bytes") else None),
        ("evaluated on", data),
    ])]
    before, after = latencies(report)
    if before is not None and after is not None and after > before:
        parts.append(para(f"⚠ the optimized model is slower than the original on this machine "
                          f"({after:.3f} ms vs {before:.3f} ms)", "warn"))
    parts.append(metrics_table(report))
    parts.append(gate_line(report))
    parts.append(outputs_table(ev))
    return section("Summary", *parts, section_id="summary")


def metrics_table(report: dict) -> Raw:
    ev = part(report, "evaluation")
    o, q = part(ev, "original"), part(ev, "optimized")
    rows = [["file size", fmt_bytes(o.get("size_bytes")), fmt_bytes(q.get("size_bytes")),
             fmt_ratio(o.get("size_bytes"), q.get("size_bytes"))],
            ["compressed size", fmt_bytes(o.get("compressed_bytes")), fmt_bytes(q.get("compressed_bytes")),
             fmt_ratio(o.get("compressed_bytes"), q.get("compressed_bytes"))],
            ["parameters", fmt_count(o.get("parameters")), fmt_count(q.get("parameters")),
             fmt_ratio(o.get("parameters"), q.get("parameters"))],
            ["MACs", fmt_count(o.get("macs")), fmt_count(q.get("macs")), fmt_ratio(o.get("macs"), q.get("macs"))]]
    before, after = latencies(report)
    rows.append(["median latency (1 thread)", fmt_ms(before), fmt_ms(after), fmt_ratio(before, after)])
    measured = quality(report)
    if measured:
        name, a, b = measured
        change = f"{(b - a) * 100:+.2f} pt" if a is not None and b is not None else "–"
        rows.append([name, fmt_share(a), fmt_share(b), change])
    return table(["metric", "original", "optimized", "ratio"], rows, numeric={1, 2, 3})


def gate_line(report: dict) -> Raw:
    ev = part(report, "evaluation")
    drop, basis, gate = num(ev.get("drop_pp")), ev.get("drop_basis") or "accuracy", ev.get("gate")
    if drop is None:
        return para("accuracy gate: no accuracy or top-1 agreement could be measured (outputs are not class "
                    "scores)", "muted")
    if not isinstance(gate, dict):
        return para(f"accuracy gate: {basis} drop {drop:.2f} pt; no limit set (--max-accuracy-drop)", "muted")
    passed = gate.get("passed")
    verdict = Raw('<span class="ok">passed ✓</span>' if passed else '<span class="bad">failed ✗</span>')
    return Raw(f"<p>accuracy gate: {esc(basis)} drop {drop:.2f} pt, limit "
               f"{fmt_num(gate.get('max_drop_pp'), 'g')} pt: {verdict}</p>")


def outputs_table(ev: dict) -> Raw:
    outputs = part(ev, "comparison", "outputs")
    if not outputs:
        return Raw("")
    rows = [[name, s.get("error") or "", fmt_num(s.get("max_abs_diff")), fmt_num(s.get("mean_abs_diff")),
             fmt_num(s.get("cosine"), ".6f")] for name, s in outputs.items() if isinstance(s, dict)]
    parity = part(ev, "parity")
    note = para(f"parity on {parity.get('samples', '–')}: max relative difference "
                f"{fmt_num(parity.get('max_rel_diff'))} (lossless passes must stay within "
                f"{fmt_num(parity.get('tolerance'), 'g')})", "muted") if parity else ""
    return Raw("<h3>outputs, optimized vs original</h3>"
               + table(["output", "error", "max |Δ|", "mean |Δ|", "cosine"], rows, numeric={2, 3, 4}) + note)


def charts_section(report: dict) -> Raw:
    figures = [passes_figure(records(report.get("passes")))]
    before, after = latencies(report)
    if before is not None and after is not None:
        measured = quality(report)
        pair = measured[1:] if measured and None not in measured[1:] else None
        figures.append(charts.compare_chart(measured[0] if pair else None, pair, (before, after)))
    grid = chart_grid(*figures)
    return section("Charts", grid, section_id="charts") if grid else Raw("")


def passes_figure(passes: list[dict]) -> Raw | None:
    """Size and nodes of the input, then after each pass (those that recorded both)."""
    def measured(p: dict, when: str) -> tuple[float, float] | None:
        size, nodes = num(dig(p, when, "bytes")), num(dig(p, when, "nodes"))
        return None if size is None or nodes is None else (size, nodes)

    rows = [(str(p.get("name", "?")), str(p.get("status", "")), measured(p, "after")) for p in passes]
    rows = [r for r in rows if r[2]]
    if not rows:
        return None
    if passes and measured(passes[0], "before"):
        rows.insert(0, ("input", "input", measured(passes[0], "before")))
    return charts.passes_chart([r[0] for r in rows], [r[2][0] / 1000 for r in rows], [r[2][1] for r in rows],
                               [r[1] for r in rows])


def passes_section(report: dict) -> Raw:
    passes = records(report.get("passes"))
    if not passes:
        return section("Passes", para("no passes ran."), section_id="passes")
    rows = [[p.get("name", "?"), p.get("status", "–"),
             f"{dig(p, 'before', 'nodes', default='–')} → {dig(p, 'after', 'nodes', default='–')}",
             f"{fmt_bytes(dig(p, 'before', 'bytes'))} → {fmt_bytes(dig(p, 'after', 'bytes'))}",
             f"{fmt_num(p.get('seconds'), '.2f')} s", "; ".join(pass_notes(p))] for p in passes]
    return section("Passes", table(["pass", "status", "nodes", "size", "time", "notes"], rows, numeric={2, 3, 4},
                         wide={5}),
                   section_id="passes")


def pass_notes(p: dict) -> list[str]:
    """The pass's own notes, after the ops it removed (as the printed table does)."""
    notes = [str(n) for n in p.get("notes") or []]
    removed = p.get("ops_removed")
    if isinstance(removed, dict) and removed:
        notes.insert(0, "removed " + ", ".join(f"{k}×{v}" for k, v in list(removed.items())[:6]))
    return notes
