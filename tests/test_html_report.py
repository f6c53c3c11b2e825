"""The HTML reports (edge/htmlreport): real optimize and build reports rendered and opened in headless chromium,
a search section, hostile strings, and reports missing their optional parts."""

import io
import json
import random
import re
from pathlib import Path

import pytest

from edge.htmlreport import render_build, render_optimize
from tests.browser import chromium
from tests.conftest import ROOT, edge
from tests.zoo import SENSITIVE_LAYER

ARTIFACTS = ROOT / "build" / "test-artifacts"  # screenshots; git-ignored, named in the test log
HOSTILE = "<script>alert(1)</script>"
PHONE = (390, 844)


def report_html(json_path: Path, render) -> Path:
    """The page the CLI wrote beside a JSON report: exactly what render() makes of that report."""
    page = json_path.with_name(json_path.name.removesuffix(".json") + ".html")
    assert page.read_text() == render(json.loads(json_path.read_text()))
    return page


@pytest.fixture(scope="module")
def optimize_json(models, tmp_path_factory) -> Path:
    src = models("trained-cnn")
    out = tmp_path_factory.mktemp("html-opt") / "cnn.int8.onnx"
    edge("optimize", src, "-o", out, "--quantize", "int8", "--calibration", src.parent / "calibration.npz",
         "--eval", src.parent / "eval.npz", "--max-accuracy-drop", "5")
    return out.with_name("cnn.int8.report.json")


@pytest.fixture(scope="module")
def browser():
    with chromium(1280, 900, console_log=True) as driver:
        yield driver


def drawn(png: bytes, min_colours: int = 12, min_ink: float = 0.02) -> bool:
    """An image with content: several colours, and more than a sliver differing from its background."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB").resize((200, 200))
    colours = img.getcolors(maxcolors=1 << 16) or []
    background = max(colours)[0] if colours else 0
    return len(colours) >= min_colours and 1 - background / (200 * 200) >= min_ink


def open_page(driver, page: Path, name: str, charts: int) -> str:
    """Load the page at desktop width and check it as a reader sees it; then at phone width, no sideways scroll.
    Returns the page's text."""
    driver.set_window_size(1280, 900)
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(page.as_uri())
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    figures = driver.find_elements("css selector", "figure.chart svg")
    assert len(figures) == charts, [f.get_attribute("aria-label") for f in figures]
    for svg in figures:
        assert svg.size["width"] > 200 and svg.size["height"] > 100, (svg.get_attribute("aria-label"), svg.size)
        assert drawn(svg.screenshot_as_png), f"{svg.get_attribute('aria-label')}: a blank chart"
    # every <use>, clip path and marker points at an element of the page (ids were made unique per chart)
    dangling = driver.execute_script("""return [...document.querySelectorAll('[href], [*|href], [clip-path]')]
        .map(e => e.getAttribute('href') || e.getAttribute('xlink:href') || e.getAttribute('clip-path'))
        .filter(r => r && r.includes('#'))
        .filter(r => !document.getElementById(r.replace(/^url\\(#|\\)$/g, '').replace(/^#/, ''))).length""")
    assert dangling == 0
    shot = screenshot(driver, f"report-{name}-desktop.png")
    assert drawn(shot, min_colours=40), "a blank page"
    text = driver.find_element("tag name", "body").text
    driver.set_window_size(*PHONE)
    width, viewport = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert viewport <= PHONE[0] and width <= viewport + 3, f"the page scrolls sideways on a phone: {width} > {viewport}"
    screenshot(driver, f"report-{name}-phone.png")
    return text


def screenshot(driver, name: str) -> bytes:
    """The whole page (the window stretched to its height), saved for a person to look at."""
    width, height, frame = driver.execute_script("return [window.innerWidth, document.documentElement.scrollHeight, "
                                                 "window.outerHeight - window.innerHeight]")
    driver.set_window_size(width, min(height + frame, 12000))
    driver.execute_script("window.scrollTo(0, 0)")
    png = driver.get_screenshot_as_png()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / name).write_bytes(png)
    print(f"screenshot: {ARTIFACTS / name}")
    return png


def assert_self_contained(page: str) -> None:
    """Nothing fetched (no scripts, links, images, imports), no XML prolog inside, each id once."""
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|@import|url\(\s*['\"]?(?:https?:|//)", page)
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    assert '<meta name="viewport"' in page
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), [i for i in set(ids) if ids.count(i) > 1][:5]


@pytest.mark.slow
def test_optimize_report_page_in_a_browser(optimize_json, browser):
    page = report_html(optimize_json, render_optimize)
    report = json.loads(optimize_json.read_text())
    html = page.read_text()
    assert_self_contained(html)
    text = open_page(browser, page, "optimize", charts=2)
    assert "edge optimize: model.onnx → cnn.int8.onnx" in text
    for expected in ("Summary", "Passes", "quantize-int8", "compressed size", "median latency (1 thread)",
                     "accuracy gate: accuracy drop", "limit 5 pt: passed", report["input"]["sha256"][:16]):
        assert expected in text, expected
    o, q = (report["evaluation"][k]["latency"]["median_ms"] for k in ("original", "optimized"))
    assert ("the optimized model is slower than the original on this machine" in text) == (q > o)


@pytest.mark.slow
def test_a_real_auto_search_in_a_browser(models, tmp_path, browser):
    """`--quantize auto` on the CNN with one fragile layer: its search drawn and tabled as recorded."""
    src = models("sensitive-cnn")
    out = tmp_path / "auto.onnx"
    edge("optimize", src, "-o", out, "--quantize", "auto", "--calibration", src.parent / "calibration.npz",
         "--eval", src.parent / "eval.npz", "--max-accuracy-drop", "1")
    report = json.loads(out.with_name("auto.report.json").read_text())
    page = report_html(out.with_name("auto.report.json"), render_optimize)
    assert_self_contained(page.read_text())
    # summary: 2 charts; the search: accuracy/size, accuracy/latency, sensitivity
    text = open_page(browser, page, "auto", charts=5)
    search = report["searches"][0]
    assert "Search 1: quantize" in text and search["why"] in text
    assert SENSITIVE_LAYER in text  # in the float nodes of candidates and first in the sensitivity table
    highlighted = browser.find_elements("css selector", "#search-1 tr.highlight")
    assert len(highlighted) == 1 and highlighted[0].text.split()[0] == str(search["winner"])


def realistic_search(kind: str = "quantize", basis: str = "accuracy", seed: int = 1) -> dict:
    """A search section as edge/search records one: accuracy rises with size, one candidate failed; `added_db` is
    10·log10 of the relative noise power a node adds (negative, higher: more sensitive)."""
    rnd = random.Random(seed)
    candidates = []
    for i in range(1, 17):
        kept = rnd.random()  # share of the model left in float
        accuracy = min(1.0, 0.9 + 0.1 * kept ** 0.5 + rnd.uniform(-0.01, 0.01))
        candidates.append({
            "id": i, "label": f"int8 {rnd.choice(['minmax', 'entropy', 'percentile'])} float {kept:.0%}",
            "settings": {"calibration_method": "minmax", "exclude_nodes": [f"/conv{j}/Conv" for j in range(i % 3)]},
            "size_bytes": int(50_000 + 130_000 * kept), "latency_ms": 0.03 + 0.02 * rnd.random(),
            "accuracy": accuracy if basis == "accuracy" else None, "top1_agreement": accuracy,
            "drop_pp": (1 - accuracy) * 100, "meets": (1 - accuracy) * 100 <= 2, "pareto": False,
            "seconds": rnd.uniform(0.5, 4), "error": None})
    for c in candidates:
        c["pareto"] = not any(o is not c and o["size_bytes"] <= c["size_bytes"] and o["latency_ms"] <= c["latency_ms"]
                              and o["drop_pp"] <= c["drop_pp"] for o in candidates)
    candidates.append({"id": 17, "label": "int8 entropy", "settings": {"calibration_method": "entropy"},
                       "size_bytes": None, "latency_ms": None, "accuracy": None, "top1_agreement": None,
                       "drop_pp": None, "meets": False, "pareto": False, "seconds": 0.2,
                       "error": "onnxruntime: calibration ran out of memory"})
    winner = min((c for c in candidates if c["meets"]), key=lambda c: c["size_bytes"])
    return {"pass": f"{kind}-auto", "kind": kind, "max_drop_pp": 2.0, "basis": basis,
            "budget": {"seconds": 600.0, "candidates": None},
            "seconds": 48.5, "stopped": "every candidate of the plan was tried (17 of 17)",
            "latency_note": "latency measured on x86_64 here, not on the rpi4 board",
            "reference": {"size_bytes": 178_000, "latency_ms": 0.05, "accuracy": 1.0 if basis == "accuracy" else None},
            "candidates": candidates, "winner": winner["id"], "by_latency": False, "notes": [],
            "why": f"candidate {winner['id']} is the smallest within 2 points of the original",
            "sensitivity": [{"node": f"/layer{i}/Conv", "op": "Conv", "added_db": rnd.uniform(-40, -12),
                             "sqnr_db": rnd.uniform(20, 45)} for i in range(20)]}


def small_report(**changes) -> dict:
    """An optimize report with every part the schema guarantees, small enough to read."""
    metrics = {"size_bytes": 177870, "compressed_bytes": 163673, "parameters": 43748, "zero_share": 0.0,
               "macs": 901376, "latency": {"median_ms": 0.03, "p90_ms": 0.04, "runs": 200}, "accuracy": 0.98}
    report = {
        "edgepack": "0.1.0",
        "input": {"path": "/data/model.onnx", "sha256": "ab" * 32, "opset": 13, "bytes": 177870},
        "output": {"path": "/data/model.int8.onnx", "sha256": "cd" * 32, "bytes": 57235},
        "evaluation": {"data": "/data/eval.npz", "samples": 500, "labels": True, "original": metrics,
                       "optimized": {**metrics, "size_bytes": 57235, "compressed_bytes": 47763, "accuracy": 0.975,
                                     "latency": {"median_ms": 0.02, "p90_ms": 0.03, "runs": 200}},
                       "comparison": {"outputs": {"probs": {"max_abs_diff": 0.004, "mean_abs_diff": 0.001,
                                                            "cosine": 0.99999}}, "top1_agreement": 0.99},
                       "parity": {"samples": "32 data + 8 random samples", "max_rel_diff": 0.004, "tolerance": 1e-4},
                       "drop_pp": 0.5, "drop_basis": "accuracy", "gate": {"max_drop_pp": 2.0, "passed": True}},
        "passes": [{"name": name, "lossless": True, "status": "applied", "seconds": 0.1,
                    "before": {"nodes": 18, "bytes": 177870}, "after": {"nodes": nodes, "bytes": size},
                    "ops_removed": {}, "ops_added": {}, "notes": []}
                   for name, nodes, size in (("onnxoptimizer", 15, 177700), ("quantize-int8", 44, 57235))],
    }
    report.update(changes)
    return report


@pytest.mark.slow
def test_search_section_shows_candidates_on_scatter_charts(browser, tmp_path):
    searches = [realistic_search(), realistic_search("prune-channels", "top-1 agreement", seed=2)]
    searches[1]["sensitivity"] = []
    html = render_optimize(small_report(searches=searches))
    assert_self_contained(html)
    for key in ("search-1-size", "search-1-latency", "search-1-sensitivity", "search-2-size", "search-2-latency"):
        assert f'data-chart="{key}"' in html, key
    assert 'data-chart="search-2-sensitivity"' not in html
    assert html.count('<tr class="highlight">') == 2  # each search's winner
    assert html.count("latency measured on x86_64 here, not on the rpi4 board</figcaption>") == 2
    assert "onnxruntime: calibration ran out of memory" in html and "candidate" in html
    assert "every candidate of the plan was tried (17 of 17)" in html
    page = tmp_path / "search.report.html"
    page.write_text(html)
    text = open_page(browser, page, "search", charts=2 + 3 + 2)
    assert "Search 1: quantize" in text and "Search 2: prune-channels" in text
    assert "top-1 agreement drop ≤ 2 pt" in text


def test_strings_from_the_report_are_escaped():
    hostile_pass = {"name": HOSTILE, "lossless": True, "status": HOSTILE, "seconds": 0.1,
                    "before": {"nodes": 1, "bytes": 10}, "after": {"nodes": 1, "bytes": 10},
                    "ops_removed": {HOSTILE: 1}, "notes": [HOSTILE]}
    search = realistic_search()
    search["candidates"][0].update(label=HOSTILE, settings={HOSTILE: HOSTILE}, error=HOSTILE)
    search["sensitivity"][0].update(node=HOSTILE, op=HOSTILE, added_db=-1.0)
    search["notes"] = [HOSTILE]
    search.update(why=HOSTILE, stopped=HOSTILE, latency_note=HOSTILE, kind=HOSTILE)
    report = small_report(passes=[hostile_pass], searches=[search])
    report["input"]["path"] = f"/models/{HOSTILE}.onnx"
    report["evaluation"]["data"] = HOSTILE
    report["evaluation"]["comparison"]["outputs"] = {HOSTILE: {"error": HOSTILE}}
    build = {"output": f"dist/{HOSTILE}", "format": HOSTILE, "target": {"name": HOSTILE, "glibc_floor": "2.36"},
             "backend": {"name": HOSTILE}, "step_seconds": {HOSTILE: 1.0}, "components": {HOSTILE: 1000},
             "glibc": {"glibc_floor": "2.36", "glibc_needed": "2.34", "too_new": [HOSTILE],
                       "per_file": {HOSTILE: {"glibc": "2.34", "arch": HOSTILE, "needed": [HOSTILE]}}},
             "optimize": report}
    for html in (render_optimize(report), render_build(build)):
        assert HOSTILE not in html and "<script" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_reports_missing_optional_parts_render():
    no_labels = small_report()
    ev = no_labels["evaluation"]
    ev.update(labels=False, drop_basis="top-1 agreement", drop_pp=1.0)
    ev["original"]["accuracy"] = ev["optimized"]["accuracy"] = None
    del ev["gate"]
    html = render_optimize(no_labels)
    assert "top-1 agreement" in html and "no limit set" in html and 'data-chart="compare"' in html
    assert "Search" not in html
    zero_passes = render_optimize(small_report(passes=[], searches=[]))
    assert "no passes ran." in zero_passes and 'data-chart="passes"' not in zero_passes
    no_metrics = small_report()
    no_metrics["evaluation"] = {"data": "8 random samples", "samples": 8, "labels": False}
    assert "accuracy gate: no accuracy" in render_optimize(no_metrics)
    for bare in ({}, {"output": "dist/x"}, {"optimize": {}}, {"glibc": {}, "components": {}, "optimize": no_labels}):
        assert render_build(bare).startswith("<!DOCTYPE html>")
    assert render_optimize({}).startswith("<!DOCTYPE html>")


@pytest.mark.slow
def test_build_report_page_in_a_browser(mlp_exe, browser):
    report_json = mlp_exe.with_name(mlp_exe.name + ".report.json")
    page = report_html(report_json, render_build)
    report = json.loads(report_json.read_text())
    html = page.read_text()
    assert_self_contained(html)
    assert 'data-chart="components"' in html and 'data-chart="glibc"' in html
    text = open_page(browser, page, "build", charts=4)  # components, glibc; the model's passes, original vs optimized
    assert "edge build: mlp" in text
    for expected in ("Executable", "Inside the executable", "ELF files and glibc", "time per step", "PyInstaller",
                     f"the bundle needs glibc {report['glibc']['glibc_needed']}", "edge optimize: model.onnx"):
        assert expected in text, expected
    elf_rows = browser.execute_script("return document.querySelectorAll('#elf tbody tr').length")
    assert elf_rows == report["glibc"]["elf_files"]
