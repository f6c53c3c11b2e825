"""Printed summaries (rich tables) of inspect and optimize results; the JSON goes to files as-is."""

from __future__ import annotations

import shutil

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edge.units import human_bytes

console = Console(highlight=False, width=max(120, shutil.get_terminal_size((120, 24)).columns))


def _count(n) -> str:
    if n is None:
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def _shape(s) -> str:
    return "?" if s is None else escape("[" + ", ".join(str(d) for d in s) + "]")


def print_inspect(info: dict) -> None:
    t = Table(title=f"{info['path']}", show_header=False)
    t.add_row("file size", human_bytes(info["file_bytes"]))
    t.add_row("IR version", str(info["ir_version"]))
    t.add_row("opsets", ", ".join(f"{d} {v}" for d, v in info["opsets"].items()))
    if info["producer"]:
        t.add_row("producer", info["producer"])
    for kind in ("inputs", "outputs"):
        for s in info[kind]:
            t.add_row(kind[:-1], f"{s['name']}: {s['dtype']} {_shape(s['shape'])}")
    t.add_row("nodes", str(info["nodes"]))
    t.add_row("parameters", f"{_count(info['parameters'])} ({info['zero_share']:.1%} zero)")
    t.add_row("MACs", _count(info["macs"]) if info["macs"] is not None else "- (dynamic shapes: see --input-shape)")
    t.add_row("ops", ", ".join(f"{op} {n}" for op, n in info["ops"].items()))
    console.print(t)


def print_mxnet_preflight(check: dict) -> None:
    """The importer's problems in the file (edge.inspect's `backend_check`), which of them the lossless passes
    remove, and what remains."""
    from edge.backends.mxnet_ops import Problem

    def problem(d: dict) -> Problem:
        return Problem(d["node"], d["op"], d["reason"], d["fix"])

    before = check["problems"]
    print(f"MXNet 1.9.1 importer: {len(before)} node(s) need attention" + (":" if before else ""))
    for p in before:
        print(f"  {problem(p)}" + ("  → removed by the lossless passes" if p["removed_by_lossless_passes"] else ""))
    if not before:
        return
    after, stop = check["after_lossless_passes"], check["blocking"]
    shapes = " ".join(f"{k}={','.join(map(str, v))}" for k, v in check["input_shapes"].items())
    where = f"with --input-shape {shapes}" if shapes else "without --input-shape"
    print(f"after the lossless passes of edge optimize / edge build ({where}): {len(after)} remain, "
          f"{len(stop)} block the conversion" + (":" if after else ""))
    for p in after:
        print(f"  {p['node']} ({p['op']}): {p['reason']}" if p in stop else f"  {problem(p)}")
    if check["hint"]:
        print(f"  {check['hint']}")


def _ratio(a, b) -> str:
    if a in (None, 0) or b is None:
        return "-"
    return f"{b / a:.2f}×"


def _channels_pruned(p: dict) -> str:
    return (f"{len(p['pruned'])} layers pruned, {len(p['skipped'])} kept; MACs {_count(p['macs_before'])} → "
            f"{_count(p['macs_after'])}")


def _weights_zeroed(p: dict) -> str:
    return f"{p['zero_share']:.1%} of {_count(p['weights'])} weights zero"


# the first note of a pass's row, from what that pass recorded (passes not named here have only their notes)
PASS_SUMMARIES = {"prune-channels": _channels_pruned, "prune-weights": _weights_zeroed}


def print_optimize(report: dict) -> None:
    passes = Table(title="passes")
    for col in ("pass", "status", "nodes", "size", "time", "notes"):
        passes.add_column(col, overflow="fold")
    for p in report["passes"]:
        b, a = p["before"], p["after"]
        notes = list(p.get("notes", []))
        if p.get("ops_removed"):
            notes.insert(0, "removed " + ", ".join(f"{k}×{v}" for k, v in list(p["ops_removed"].items())[:6]))
        if p["name"] in PASS_SUMMARIES:
            notes.insert(0, PASS_SUMMARIES[p["name"]](p))
        passes.add_row(p["name"], p["status"], f"{b['nodes']} → {a['nodes']}",
                       f"{human_bytes(b['bytes'])} → {human_bytes(a['bytes'])}", f"{p['seconds']:.2f}s",
                       escape("; ".join(notes)))
    console.print(passes)

    ev = report["evaluation"]
    o, q = ev["original"], ev["optimized"]
    t = Table(title=f"evaluation on {ev['data']} ({ev['samples']} samples)")
    for col in ("metric", "original", "optimized", "ratio"):
        t.add_column(col)
    t.add_row("file size", human_bytes(o["size_bytes"]), human_bytes(q["size_bytes"]),
              _ratio(o["size_bytes"], q["size_bytes"]))
    t.add_row("compressed", human_bytes(o["compressed_bytes"]), human_bytes(q["compressed_bytes"]),
              _ratio(o["compressed_bytes"], q["compressed_bytes"]))
    t.add_row("parameters", _count(o["parameters"]), _count(q["parameters"]), _ratio(o["parameters"], q["parameters"]))
    t.add_row("zero weights", f"{o['zero_share']:.1%}", f"{q['zero_share']:.1%}", "")
    t.add_row("MACs", _count(o["macs"]), _count(q["macs"]), _ratio(o["macs"], q["macs"]))
    lo, lq = o["latency"]["median_ms"], q["latency"]["median_ms"]
    t.add_row("latency (median, 1 thread)", f"{lo:.3f} ms", f"{lq:.3f} ms", _ratio(lo, lq))
    if o["accuracy"] is not None:
        t.add_row("accuracy", f"{o['accuracy']:.2%}", f"{q['accuracy']:.2%}",
                  f"{(q['accuracy'] - o['accuracy']) * 100:+.2f} pt")
    c = ev["comparison"]
    if c["top1_agreement"] is not None:
        t.add_row("top-1 agreement", "", f"{c['top1_agreement']:.2%}", "")
    for name, s in c["outputs"].items():
        if "error" in s:
            t.add_row(f"output {name}", "", s["error"], "")
        else:
            t.add_row(f"output {name}", "", f"max |Δ| {s['max_abs_diff']:.3g}, mean {s['mean_abs_diff']:.3g}, "
                                            f"cos {s['cosine']:.6f}", "")
    console.print(t)
    gate = ev.get("gate")
    if gate:
        console.print(f"accuracy gate: {ev['drop_basis']} drop {ev['drop_pp']:.2f} pt "
                      f"≤ {gate['max_drop_pp']} pt: passed")
    for search in report.get("searches", []):
        print_search(search)
    console.print(f"wrote {report['output']['path']} and its .report.json and .report.html")


def print_search(s: dict) -> None:
    t = Table(title=f"{s['kind']} search: {len(s['candidates'])} candidates in {s['seconds']:.0f}s "
                    f"({s['stopped']}); limit {s['max_drop_pp']:g} pt of {s['basis']}")
    for col in ("#", "candidate", "size", "latency", s["basis"], "drop", "meets", "Pareto"):
        t.add_column(col, overflow="fold")
    for c in s["candidates"]:
        winner = c["id"] == s["winner"]
        if c["error"]:
            t.add_row(str(c["id"]), escape(c["label"]), "", "", escape(c["error"]), "", "✗", "")
            continue
        metric = c["accuracy"] if c["accuracy"] is not None else c["top1_agreement"]
        t.add_row(f"{c['id']}{' ★' if winner else ''}", escape(c["label"]), human_bytes(c["size_bytes"]),
                  f"{c['latency_ms']:.3f} ms", f"{metric:.2%}", f"{c['drop_pp']:.2f} pt",
                  "✓" if c["meets"] else "✗", "✓" if c["pareto"] else "", style="bold" if winner else None)
    console.print(t)
    if s.get("latency_note"):
        console.print(s["latency_note"])
    if s["why"]:
        console.print(f"chosen: {escape(s['why'])}")


def print_targets(rows: list[dict]) -> None:
    t = Table(title="targets")
    for col in ("name", "arch", "glibc ≤", "built from", "python", "onnxruntime", "numpy", "threads", "quantize"):
        t.add_column(col, no_wrap=True)
    for r in rows:
        rt = r["runtime"]
        base = f"debian {rt['debian']} (emulated)" if r["base"] == "debian-prefix" else r["base"]
        t.add_row(r["name"], r["arch"], r["glibc_floor"], base, r["python"], rt["onnxruntime"], rt["numpy"],
                  str(r["default_threads"]), r["default_quantize"])
    console.print(t)


def print_target(r: dict) -> None:
    t = Table(title=f"target {r['name']}", show_header=False)
    for k, v in _flat(r):
        t.add_row(k, escape(str(v)))
    console.print(t)


def _flat(table: dict, prefix: str = ""):
    """(dotted key, value) for every leaf of a board file's nested tables."""
    for k, v in table.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v
