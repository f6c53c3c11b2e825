#!/usr/bin/env python3
"""Size, MACs, latency and accuracy of every optimize mode against the original, measured in one run.

    .venv/bin/python benchmarks/optimize.py [--out benchmarks/results/optimize.json]

Latency: onnxruntime, 1 thread, batch 1, median over >= 1 s, original and optimized measured in the same
process one after the other. Accuracy: the trained CNN on its held-out set; other models report top-1
agreement with the original on random inputs (they are not trained)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge import pipeline  # noqa: E402
from tests import zoo  # noqa: E402

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


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "optimize.json")
    args = ap.parse_args()
    print("| model | mode | size | compressed | MACs | latency (1 thread, median) | accuracy / top-1 agreement |")
    print("|---|---|---|---|---|---|---|")
    run(args.out)
