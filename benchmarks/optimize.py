#!/usr/bin/env python3
"""Size, MACs, latency and accuracy of every optimize mode against the original, measured in one run; then
`--quantize auto` against plain int8 and the hand-written exclusions.

    .venv/bin/python benchmarks/optimize.py [--only levels|auto] [--out benchmarks/results/optimize.json]
        [--auto-out benchmarks/results/optimize_auto.json]

Latency: onnxruntime, 1 thread, batch 1, median over >= 1 s, original and optimized measured in the same
process one after the other. Accuracy: the trained CNN on its held-out set; other models report top-1
agreement with the original on random inputs (they are not trained)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge import pipeline  # noqa: E402
from edge.errors import EdgeError  # noqa: E402
from tests import zoo  # noqa: E402

DEMO = ROOT / "demos" / "kws"
AUTO_LIMIT = 1.0  # --max-accuracy-drop of the auto rows, percentage points

MODES = {
    "lossless": {},
    "prune-weights 0.5": {"prune_weights": 0.5},
    "prune-channels 0.25": {"prune_channels": 0.25},
    "int8 static": {"quantize": "int8"},
    "int8 dynamic": {"quantize": "int8-dynamic"},
    "fp16": {"quantize": "fp16"},
}
MODELS = {
    "cnn (trained)": ("trained-cnn", None),
    "mlp": ("mlp", {"features": (1, 32)}),
    "lstm": ("lstm", {"frames": (1, 12, 20)}),
    "tf-like cnn": ("tf-like", {"input:0": (1, 16, 16, 3)}),
}


def _data(folder: Path, shapes: dict, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    path = folder / f"data{seed}.npz"
    np.savez(path, **{k: rng.standard_normal((n, *s)).astype(np.float32) for k, s in shapes.items()})
    return path


def run(out_json: Path) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for label, (name, shapes) in MODELS.items():
            folder = tmp / name
            src = zoo.BUILDERS[name](folder)
            if shapes is None:
                cal, ev = folder / "calibration.npz", folder / "eval.npz"
            else:
                cal, ev = _data(folder, shapes, 100, 1), _data(folder, shapes, 200, 2)
            for mode, kw in MODES.items():
                if mode == "int8 static" and name == "lstm":
                    continue  # no static int8 for LSTM in onnxruntime: dynamic is the mode for RNNs
                opts = pipeline.Options(model=src, output=folder / f"{mode.replace(' ', '_')}.onnx", eval=ev,
                                        calibration=cal if kw.get("quantize") == "int8" else None, **kw)
                start = time.perf_counter()
                report = pipeline.optimize(opts)
                ev_r = report["evaluation"]
                o, q = ev_r["original"], ev_r["optimized"]
                rows.append({
                    "model": label, "mode": mode, "seconds": round(time.perf_counter() - start, 2),
                    "size_bytes": [o["size_bytes"], q["size_bytes"]],
                    "compressed_bytes": [o["compressed_bytes"], q["compressed_bytes"]],
                    "macs": [o["macs"], q["macs"]],
                    "latency_ms": [o["latency"]["median_ms"], q["latency"]["median_ms"]],
                    "accuracy": [o["accuracy"], q["accuracy"]],
                    "top1_agreement": ev_r["comparison"]["top1_agreement"],
                })
                print(_line(rows[-1]), flush=True)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def _ratio(pair):
    a, b = pair
    return f"{b / a:.2f}×" if a and b is not None else "-"


def _line(r) -> str:
    acc = (f"{r['accuracy'][0]:.1%} → {r['accuracy'][1]:.1%}" if r["accuracy"][0] is not None
           else f"agree {r['top1_agreement']:.1%}" if r["top1_agreement"] is not None else "-")
    return (f"| {r['model']} | {r['mode']} | {_ratio(r['size_bytes'])} | {_ratio(r['compressed_bytes'])} | "
            f"{_ratio(r['macs'])} | {r['latency_ms'][0]:.3f} → {r['latency_ms'][1]:.3f} ms ({_ratio(r['latency_ms'])}) "
            f"| {acc} |")


def _auto_models(tmp: Path) -> dict:
    """label → (model, calibration, eval, hand-written float nodes or None): the zoo's trained and deliberately
    sensitive CNNs, a random-weight MLP, the demo's DS-CNN and its streaming keyword model."""
    found = {}
    for label, name in (("cnn (trained)", "trained-cnn"), ("sensitive cnn", "sensitive-cnn"),
                        ("detector-sized cnn (3.1 M, random)", "detector-cnn")):
        src = zoo.BUILDERS[name](tmp / name)
        hand = [zoo.SENSITIVE_LAYER] if name == "sensitive-cnn" else None
        found[label] = (src, src.parent / "calibration.npz", src.parent / "eval.npz", hand)
    src = zoo.BUILDERS["mlp"](tmp / "mlp")
    found["mlp (random weights)"] = (src, _data(tmp / "mlp", {"features": (1, 32)}, 100, 1),
                                     _data(tmp / "mlp", {"features": (1, 32)}, 400, 2), None)
    model = DEMO / "model"
    hand = json.loads((model / "train_report.json").read_text())["int8_keep_float"]
    found["demo DS-CNN"] = (model / "kws.onnx", model / "calib.npz", model / "heldout.npz", hand)
    stream = ROOT / "build" / "kws-stream"
    if not (stream / "kws_stream.onnx").exists():
        subprocess.run([sys.executable, "-m", "demos.kws.assembly.assemble", "-o", str(stream)], cwd=ROOT, check=True)
    hand = json.loads((stream / "assemble_report.json").read_text())["int8_keep_float"]
    found["demo stream model"] = (stream / "kws_stream.onnx", stream / "calib.npz", stream / "heldout.npz", hand)
    return found


def _auto_row(label, mode, src, cal, ev, folder, **kw) -> dict:
    output = folder / f"{len(list(folder.iterdir()))}.onnx"
    opts = pipeline.Options(model=src, output=output, calibration=cal, eval=ev, **kw)
    start = time.perf_counter()
    try:
        report = pipeline.optimize(opts)
    except EdgeError as e:
        return {"model": label, "mode": mode, "error": e.message, "seconds": round(time.perf_counter() - start, 1)}
    ev_r = report["evaluation"]
    o, q = ev_r["original"], ev_r["optimized"]
    quant = next(p for p in report["passes"] if p["name"].startswith("quantize"))
    search = report["searches"][0] if report["searches"] else None
    return {
        "model": label, "mode": mode, "seconds": round(time.perf_counter() - start, 1),
        "search_seconds": search["seconds"] if search else None,
        "candidates": len(search["candidates"]) if search else None,
        "float_nodes": quant.get("float_nodes", []), "settings": {k: quant.get(k) for k in (
            "calibration_method", "activations", "per_channel")},
        "size_bytes": [o["size_bytes"], q["size_bytes"]],
        "latency_ms": [o["latency"]["median_ms"], q["latency"]["median_ms"]],
        "accuracy": [o["accuracy"], q["accuracy"]], "top1_agreement": ev_r["comparison"]["top1_agreement"],
        "drop_pp": ev_r["drop_pp"],
    }


def run_auto(out_json: Path) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for label, (src, cal, ev, hand) in _auto_models(tmp).items():
            folder = tmp / "auto" / label.replace(" ", "_")
            folder.mkdir(parents=True)
            modes = {"int8 S8S8": {"quantize": "int8", "activations": "int8"},
                     "int8 (board default)": {"quantize": "int8"}}
            if hand:
                modes["int8, hand-written exclusion"] = {"quantize": "int8", "exclude_nodes": hand}
            modes[f"auto (≤ {AUTO_LIMIT:g} pt)"] = {"quantize": "auto", "max_accuracy_drop": AUTO_LIMIT}
            for mode, kw in modes.items():
                rows.append(_auto_row(label, mode, src, cal, ev, folder, **kw))
                print(_auto_line(rows[-1]), flush=True)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def _auto_line(r) -> str:
    if "error" in r:
        return f"| {r['model']} | {r['mode']} | refused: {r['error']} | | | | | {r['seconds']:.1f} s |"
    acc = (f"{r['accuracy'][0]:.1%} → {r['accuracy'][1]:.1%}" if r["accuracy"][0] is not None
           else f"agree {r['top1_agreement']:.1%}")
    kept = ", ".join(r["float_nodes"]) if len(r["float_nodes"]) <= 3 else f"{len(r['float_nodes'])} nodes"
    search = f"{r['search_seconds']:.1f} s, {r['candidates']} candidates" if r["search_seconds"] is not None else "-"
    s = r["settings"]
    return (f"| {r['model']} | {r['mode']} | {_ratio(r['size_bytes'])} | {r['latency_ms'][0]:.3f} → "
            f"{r['latency_ms'][1]:.3f} ms ({_ratio(r['latency_ms'])}) | {acc} | {kept or 'none'} | "
            f"{s['calibration_method']}, {s['activations']}, {'per-channel' if s['per_channel'] else 'per-tensor'} "
            f"| {search} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("levels", "auto"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "optimize.json")
    ap.add_argument("--auto-out", type=Path, default=ROOT / "benchmarks" / "results" / "optimize_auto.json")
    args = ap.parse_args()
    if args.only != "auto":
        print("| model | mode | size | compressed | MACs | latency (1 thread, median) | accuracy / top-1 agreement |")
        print("|---|---|---|---|---|---|---|")
        run(args.out)
    if args.only != "levels":
        print("\n| model | mode | size | latency (1 thread, median) | accuracy / top-1 agreement | kept in float | "
              "int8 settings | search |")
        print("|---|---|---|---|---|---|---|---|")
        run_auto(args.auto_out)
