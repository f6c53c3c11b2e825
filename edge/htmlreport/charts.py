"""The reports' charts: matplotlib figures saved as SVG and inlined into the page.

matplotlib is imported inside the functions: the edge CLI starts fast and only pays for it when it writes a
report. No pyplot: a bare Figure has no global state and picks the SVG canvas from savefig's format."""

from __future__ import annotations

import functools
import hashlib
import io
import math
import re

from edge.htmlreport.page import Raw, esc

ORIGINAL, OPTIMIZED = "#8c959f", "#0969da"
MEETS, MISSES, WINNER, REFERENCE, LIMIT = "#1a7f37", "#cf222e", "#bf8700", "#1d2330", "#cf222e"
STATUS_COLOURS = {"applied": OPTIMIZED, "fallback": "#8250df", "skipped": ORIGINAL, "reverted": "#e8590c"}
WIDTH = 5.2  # inches (72 pt each): about 500 px, so text stays legible when a phone shrinks the chart

STYLE = {
    "svg.fonttype": "path",  # glyphs as paths: the page needs no font and looks the same everywhere
    "svg.hashsalt": "edgepack",  # stable ids from one run to the next
    "text.parse_math": False,  # node and file names may hold `$`: text, never mathtext
    "font.size": 10, "axes.titlesize": 11, "axes.titleweight": "bold", "axes.labelsize": 10,
    "axes.spines.top": False, "axes.spines.right": False, "axes.edgecolor": "#9aa1ab",
    "axes.grid": True, "grid.color": "#e6e8ec", "axes.axisbelow": True, "legend.fontsize": 9,
    "legend.frameon": False, "xtick.color": "#3d4450", "ytick.color": "#3d4450",
}


def styled(draw):
    """Runs a chart function under the report style (rcParams are read when axes and text are made)."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)
    return wrapper


def new_figure(height: float, width: float = WIDTH):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def inline_svg(fig, key: str) -> str:
    """The figure as an <svg> element for an HTML page: no XML prolog, DOCTYPE, metadata or comments, scalable,
    and every id prefixed so that several charts can share one document."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>|<!--.*?-->", "", svg, flags=re.S)
    prefix = "c" + hashlib.sha1((key + svg).encode()).hexdigest()[:8] + "-"
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}\1"', svg)
    svg = re.sub(r'\b((?:xlink:)?href)="#([^"]+)"', rf'\1="#{prefix}\2"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}\1)", svg)
    # the page sizes it (CSS width 100%), the viewBox keeps its proportions; never wider than drawn
    width_pt = float(re.search(r'<svg[^>]*\bwidth="([\d.]+)pt"', svg).group(1))
    svg = re.sub(r'<svg([^>]*?) width="[\d.]+pt" height="[\d.]+pt"',
                 rf'<svg\1 style="max-width:{width_pt * 4 / 3:.0f}px" preserveAspectRatio="xMidYMid meet"', svg,
                 count=1)
    return svg


def figure_html(fig, key: str, title: str, caption: str | None = None) -> Raw:
    """<figure> with the chart (labelled for screen readers by its title) and an optional caption."""
    svg = inline_svg(fig, key).replace("<svg", f'<svg role="img" aria-label="{esc(title)}"', 1)
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return Raw(f'<figure class="chart" data-chart="{esc(key)}">{svg}{cap}</figure>')


def short(name: str, limit: int = 34) -> str:
    """A label that fits beside a bar: a Python extension's ABI tag goes, then the middle of a long name."""
    name = re.sub(r"\.cpython-\d+-[\w-]+?-linux-gnu(?=\.so)", "", name)
    return name if len(name) <= limit else name[:limit // 2 - 1] + "…" + name[-(limit // 2):]


def barh(ax, labels: list[str], values: list[float], start: float, colours, texts: list[str], top_down=True):
    """Horizontal bars from `start`, first label on top (`top_down`; axes sharing y flip once for all); bars sit
    at their index so that labels that shorten to the same text still get a bar each."""
    rows = range(len(labels))
    bars = ax.barh(rows, [v - start for v in values], left=start, color=colours, height=0.65)
    ax.set_yticks(rows, [short(n) for n in labels])
    ax.bar_label(bars, labels=texts, padding=2, fontsize=8)
    if top_down:
        ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    return bars


@styled
def passes_chart(names: list[str], kbytes: list[float], nodes: list[int], statuses: list[str]) -> Raw:
    """Model size and node count after each pass ('input' first), bars coloured by the pass's status."""
    fig = new_figure(0.32 * len(names) + 1.3)
    size_ax, nodes_ax = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
    colours = [STATUS_COLOURS.get(s, ORIGINAL) for s in statuses]
    for ax, values, title, fmt in ((size_ax, kbytes, "size after pass (kB)", "{:.1f}"),
                                   (nodes_ax, nodes, "nodes after pass", "{:.0f}")):
        barh(ax, names, values, 0, colours, [fmt.format(v) for v in values], top_down=ax is size_ax)
        ax.set_title(title, loc="left")
        ax.margins(x=0.25)
    shown = [s for s in STATUS_COLOURS if s in statuses]
    if len(shown) > 1:
        from matplotlib.patches import Patch

        fig.legend([Patch(color=STATUS_COLOURS[s]) for s in shown], shown, loc="outside lower center",
                   ncols=len(shown))
    return figure_html(fig, "passes", "model size and node count after each pass")


@styled
def compare_chart(metric: str | None, metric_values: tuple | None, latency: tuple) -> Raw:
    """Original vs optimized: the accuracy-like metric (fractions, shown in %) and the median latency (ms)."""
    panels = ([(f"{metric} (%)", [v * 100 for v in metric_values], "{:.2f}")] if metric_values else [])
    panels.append(("median latency (ms)", list(latency), "{:.3f}"))
    fig = new_figure(2.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, values, fmt) in zip(axes, panels):
        bars = ax.bar(["original", "optimized"], values, color=[ORIGINAL, OPTIMIZED], width=0.6)
        ax.bar_label(bars, fmt=fmt, padding=2, fontsize=9)
        ax.set_title(title, loc="left", fontsize=10)
        ax.margins(y=0.18)
        ax.grid(axis="x", visible=False)
    return figure_html(fig, "compare", "original versus optimized",
                       "latency: onnxruntime on this machine, 1 thread, batch 1")


@styled
def search_scatter(points: list[dict], reference: dict | None, floor: float | None, xlabel: str, ylabel: str,
                   key: str, title: str, caption: str | None = None) -> Raw:
    """Candidates of a search: points {x, y, meets, pareto, winner, label}; the Pareto front as a step line,
    the winner annotated, the original model as its own marker, the accuracy floor dashed."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(3.6)
    ax = fig.subplots()
    for meets, colour, marker, name in ((True, MEETS, "o", "meets the limit"), (False, MISSES, "X", "misses it")):
        group = [p for p in points if bool(p["meets"]) == meets]
        if group:
            ax.scatter([p["x"] for p in group], [p["y"] for p in group], c=colour, marker=marker, s=36,
                       alpha=0.85, label=name, zorder=3)
    front = pareto_front([p for p in points if p["pareto"]])
    if front:
        ax.step([p["x"] for p in front], [p["y"] for p in front], where="post", color=OPTIMIZED, lw=1.4,
                label="Pareto front", zorder=2)
        ax.scatter([p["x"] for p in front], [p["y"] for p in front], s=90, facecolors="none",
                   edgecolors=OPTIMIZED, lw=1.2, zorder=4)
    if reference:
        ax.scatter([reference["x"]], [reference["y"]], marker="D", s=60, c=REFERENCE, label="original", zorder=5)
    for p in points:
        if p["winner"]:
            ax.scatter([p["x"]], [p["y"]], marker="*", s=320, c=WINNER, edgecolors="#6e4d00", lw=0.8,
                       label="winner", zorder=6)
            annotate_inwards(ax, p, points, f"winner: {short(p['label'], 28)}")
    if floor is not None:
        ax.axhline(floor, color=LIMIT, ls="--", lw=1.1, label=f"floor {floor:.2f}%", zorder=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.margins(x=0.08, y=0.12)
    fig.legend(loc="outside lower center", ncols=3)
    return figure_html(fig, key, title, caption)


def annotate_inwards(ax, point: dict, points: list[dict], text: str) -> None:
    """A label beside the point, on the side towards the middle of the cloud: it stays inside the axes."""
    xs, ys = [p["x"] for p in points], [p["y"] for p in points]
    right = point["x"] <= (min(xs) + max(xs)) / 2
    below = point["y"] >= (min(ys) + max(ys)) / 2
    ax.annotate(text, (point["x"], point["y"]), xytext=(14 if right else -14, -20 if below else 20),
                textcoords="offset points", fontsize=9, color="#6e4d00", ha="left" if right else "right",
                va="top" if below else "bottom", zorder=7,
                arrowprops={"arrowstyle": "-", "color": "#6e4d00", "lw": 0.8},
                bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "#d8c27a", "alpha": 0.9})


def pareto_front(points: list[dict]) -> list[dict]:
    """The points no other one beats on both axes (smaller x, higher y), by x: what a step line can join."""
    best, front = None, []
    for p in sorted(points, key=lambda p: (p["x"], -p["y"])):
        if best is None or p["y"] > best:
            front.append(p)
            best = p["y"]
    return front


@styled
def hbar_chart(labels: list[str], values: list[float], key: str, title: str, xlabel: str, fmt: str,
               colour: str = OPTIMIZED, caption: str | None = None) -> Raw:
    """Horizontal bars in the order given, each labelled with its value. Bars grow from 0, or, when some values
    are negative (decibels), from below the smallest one, so that a longer bar is always a larger value."""
    fig = new_figure(0.3 * len(labels) + 1.2)
    ax = fig.subplots()
    start = math.floor(min(values) / 5) * 5 - 5 if values and min(values) < 0 else 0.0
    barh(ax, labels, values, start, colour, [fmt.format(v) for v in values])
    ax.set_xlabel(xlabel)
    ax.margins(x=0.18)
    return figure_html(fig, key, title, caption)


@styled
def glibc_chart(files: list[str], versions: list[str], floor: str | None, caption: str | None = None) -> Raw:
    """The glibc version each file needs, with the target's floor as a vertical line. Bars start a little below the
    oldest version: versions are not quantities, and from 2.0 every bar would look the same."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    values = [version_value(v) for v in versions]
    limit = version_value(floor) if floor else None
    start = math.floor(min(values + [limit or values[0]])) - 2
    fig = new_figure(0.24 * len(files) + 1.4)
    ax = fig.subplots()
    barh(ax, files, values, start, [MISSES if limit and v > limit else OPTIMIZED for v in values], versions)
    if limit:
        ax.axvline(limit, color=LIMIT, ls="--", lw=1.2, label=f"target allows {floor}")
        fig.legend(loc="outside lower center")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{int(x) // 100}.{int(x) % 100}"))
    ax.set_xlabel("glibc version needed")
    ax.set_xlim(start, max(values + [limit or 0]) + 1.5)
    return figure_html(fig, "glibc", "glibc version needed per file", caption)


def version_value(text: str) -> float:
    """'2.17' → 217, '2.2.5' → 202.5: a number that sorts and spaces versions for an axis."""
    parts = [int(p) for p in re.findall(r"\d+", str(text))[:3]] + [0, 0, 0]
    return parts[0] * 100 + parts[1] + parts[2] / 10
