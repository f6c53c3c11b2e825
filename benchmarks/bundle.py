#!/usr/bin/env python3
"""Executable size and cold start: the naive PyInstaller baseline against `edge build`, in one run.

    .venv/bin/python benchmarks/bundle.py [--runs 7] [--out benchmarks/results/bundle.json]

(a) naive: `pyinstaller --onefile` on a five-line script importing numpy and onnxruntime (stock wheels),
    the model file beside it; (b) `edge build` onefile and (c) onedir of the same model (trained CNN).
Cold start = wall time of one complete run with one input (process start to exit), median of N runs,
all measured on this machine in this run."""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge import targets  # noqa: E402
from edge.bundle import builder, envs  # noqa: E402
from tests import zoo  # noqa: E402

NAIVE = """import sys
import numpy as np
import onnxruntime as ort
sess = ort.InferenceSession(sys.argv[1])
print(sess.run(None, {sess.get_inputs()[0].name: np.load(sys.argv[2])})[0])
"""


def cold_start(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return times


def naive_build(work: Path, progress) -> Path:
    target = targets.get("x86_64")
    stock = dataclasses.replace(target, name="naive-x86_64",
                                runtime={**target.runtime, "numpy_without_blas": False})
    env = envs.ensure(stock, progress)
    work.mkdir(parents=True, exist_ok=True)
    (work / "naive.py").write_text(NAIVE)
    subprocess.run([str(env.python), "-m", "PyInstaller", "--onefile", "--noconfirm", "--log-level", "WARN",
                    "--distpath", str(work / "dist"), "--workpath", str(work / "build"), "--specpath",
                    str(work / "build"), str(work / "naive.py")], check=True)
    return work / "dist" / "naive"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bundle.json")
    ap.add_argument("--boards", default="rpi4,jetson-orin", help="aarch64 targets to build twice ('' skips)")
    ap.add_argument("--no-mxnet", dest="mxnet", action="store_false", help="skip the onnxruntime-vs-MXNet rows")
    args = ap.parse_args()
    progress = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = zoo.trained_cnn(work / "model")
        x = work / "x.npy"
        np.save(x, np.load(work / "model" / "eval.npz")["x"][:1])
        naive = naive_build(work / "naive", progress)
        rows.append(("naive pyinstaller --onefile", naive.stat().st_size,
                     cold_start([str(naive), str(model), str(x)], args.runs)))
        for onedir in (False, True):
            out = work / "dist" / ("cnn-onedir" if onedir else "cnn")
            builder.build(builder.BuildOptions(model=model, output=out, target="x86_64", onedir=onedir), progress)
            exe = out / out.name if onedir else out
            size = builder.bundle_size(out)
            rows.append((f"edge build {'--onedir' if onedir else '(onefile)'}", size,
                         cold_start([str(exe), str(x)], args.runs)))
    base_size, base_start = rows[0][1], statistics.median(rows[0][2])
    result = []
    print(f"| build | size | size ratio | cold start (median of {args.runs}) | cold start ratio |")
    print("|---|---|---|---|---|")
    for name, size, times in rows:
        med = statistics.median(times)
        result.append({"build": name, "bytes": size, "cold_start_s": times, "cold_start_median_s": med,
                       "size_ratio": size / base_size, "cold_start_ratio": med / base_start})
        print(f"| {name} | {size / 1e6:.1f} MB | {size / base_size:.2f}× | {med:.2f} s | {med / base_start:.2f}× |")
    if args.mxnet:
        result += backend_rows(args.runs, progress)
    boards = [b for b in args.boards.split(",") if b]
    if boards:
        result += board_rows(boards, progress)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


def backend_rows(runs: int, progress) -> list[dict]:
    """The same float models packaged with onnxruntime and with MXNet 1.9.1: size, cold start, latency."""
    rows = []
    print(f"\n| model | backend | executable | cold start (median of {runs}) | latency batch 1, 1 thread "
          "(median of 300) | ratios vs onnxruntime (size, start, latency) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cnn = zoo.trained_cnn(work / "cnn")
        kws = ROOT / "demos" / "kws" / "model" / "kws.onnx"
        inputs = {"cnn": np.load(work / "cnn" / "eval.npz")["x"][:1],
                  "kws": np.load(ROOT / "demos" / "kws" / "model" / "heldout.npz")["logmel"][:1]}
        for name, model in (("trained CNN", cnn), ("keyword DS-CNN", kws)):
            x = work / f"{name[:3]}.npy"
            np.save(x, inputs["cnn" if model == cnn else "kws"])
            base = None
            for backend in ("onnxruntime", "mxnet"):
                out = work / "dist" / f"{model.stem}-{backend}-{len(rows)}"
                builder.build(builder.BuildOptions(model=model, output=out, target="x86_64", backend=backend),
                              progress)
                start = statistics.median(cold_start([str(out), str(x)], runs))
                bench = subprocess.run([str(out), "--input", str(x), "--bench", "300", "--threads", "1", "--json"],
                                       capture_output=True, text=True, check=True)
                lat = json.loads(bench.stdout)["median_ms"]
                row = {"model": name, "backend": backend, "bytes": out.stat().st_size, "cold_start_median_s": start,
                       "latency_median_ms": lat}
                base = base or row
                ratios = (row["bytes"] / base["bytes"], start / base["cold_start_median_s"],
                          lat / base["latency_median_ms"])
                row["ratios_vs_onnxruntime"] = ratios
                rows.append(row)
                print(f"| {name} | {backend} | {row['bytes'] / 1e6:.1f} MB | {start:.2f} s | {lat:.3f} ms | "
                      f"{ratios[0]:.2f}×, {ratios[1]:.2f}×, {ratios[2]:.2f}× |", flush=True)
    return rows


def board_rows(boards: list[str], progress) -> list[dict]:
    """Per aarch64 target: executable size, first build (empty cache) and cached rebuild time."""
    import os

    rows = []
    print("\n| target | executable | glibc needed / allowed | first build | cached rebuild | env creation |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = zoo.trained_cnn(work / "model")
        for board in boards:
            os.environ["EDGEPACK_CACHE"] = str(work / f"cache-{board}")
            times, reports = [], []
            for attempt in ("first", "cached"):
                t = time.perf_counter()
                opts = builder.BuildOptions(model=model, output=work / "dist" / f"{board}-{attempt}", target=board)
                reports.append(builder.build(opts, progress))
                times.append(time.perf_counter() - t)
            report = reports[-1]
            os.environ.pop("EDGEPACK_CACHE")
            g = report["glibc"]
            row = {"target": board, "bytes": report["bytes"], "first_build_s": times[0], "cached_build_s": times[1],
                   "env_creation_s": reports[0]["build_env"]["seconds"], "glibc_needed": g["glibc_needed"],
                   "glibc_floor": g["glibc_floor"], "components": report["components"]}
            rows.append(row)
            print(f"| {board} | {row['bytes'] / 1e6:.1f} MB | {g['glibc_needed']} / {g['glibc_floor']} | "
                  f"{times[0]:.0f} s | {times[1]:.0f} s | {row['env_creation_s']:.0f} s |", flush=True)
    return rows


if __name__ == "__main__":
    main()
