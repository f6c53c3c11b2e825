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
import os
import re
import shutil
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


def cold_start(cmd: list[str], runs: int, env: dict | None = None) -> list[float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
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
    ap.add_argument("--mxnet-boards", default="rpi4", help="aarch64 targets for the MXNet-per-BLAS rows ('' skips)")
    ap.add_argument("--only-mxnet-boards", action="store_true",
                    help="run only the MXNet-per-BLAS rows; they replace those rows in --out, the rest stays")
    args = ap.parse_args()
    if args.only_mxnet_boards:
        kept = [r for r in json.loads(args.out.read_text()) if r.get("part") != "mxnet-boards"] \
            if args.out.exists() else []
        rows = mxnet_board_rows([b for b in args.mxnet_boards.split(",") if b], lambda s: print(s, file=sys.stderr))
        args.out.write_text(json.dumps(kept + rows, indent=2) + "\n")
        return
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
    mx_boards = [b for b in args.mxnet_boards.split(",") if b]
    if mx_boards:
        result += mxnet_board_rows(mx_boards, progress)
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


# Run by the build environment's aarch64 Python under qemu with the counting plugin: the model loaded and run once
# (warm-up), then N more times; the difference between N = COUNT_RUNS and N = 0 is N inferences. One thread each.
COUNT = {"mxnet": """
import os, sys
os.environ.update(MXNET_ENGINE_TYPE="NaiveEngine", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
import numpy as np
import mxnet as mx
prefix, x, n = sys.argv[1], np.load(sys.argv[2]), int(sys.argv[3])
sym, arg, aux = mx.model.load_checkpoint(prefix, 0)
name = sorted(set(sym.list_arguments()) - set(arg))[0]
exe = sym.simple_bind(mx.cpu(), grad_req="null", **{name: x.shape})
for k, v in {**arg, **aux}.items():
    (exe.arg_dict if k in exe.arg_dict else exe.aux_dict)[k][:] = v
exe.arg_dict[name][:] = x
for _ in range(n + 1):
    exe.forward(is_train=False)[0].asnumpy()
""", "onnxruntime": """
import sys
import numpy as np
import onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = options.inter_op_num_threads = 1
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
x, n = np.load(sys.argv[2]), int(sys.argv[3])
for _ in range(n + 1):
    session.run(None, {session.get_inputs()[0].name: x})
"""}
COUNT_RUNS = 20


def plugin(work: Path) -> Path:
    if not shutil.which("qemu-aarch64"):
        raise SystemExit("the instruction counts need Debian's qemu-user (its qemu-aarch64 loads TCG plugins): "
                         "apt-get install -y qemu-user")
    lib = work / "libinsn.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(ROOT / "benchmarks" / "qemu_insn.c")],
                   check=True)
    return lib


def instruction_counts(backend: str, env_path: Path, model: Path, x: Path, lib: Path, work: Path, target) -> dict:
    """aarch64 instructions (qemu's TCG plugin, 1 thread) of a start (Python, the backend's import, loading the
    model and one inference) and of one more inference: the same counts on any machine, unlike emulated time,
    though a board's time per instruction differs between NEON and scalar code."""
    root = env_path / "root"
    python = root / "usr" / "bin" / f"python{target.python}"
    env = {**os.environ, "PYTHONPATH": f"{env_path / 'site'}:{root / 'usr/lib/python3/dist-packages'}",
           "PYTHONNOUSERSITE": "1"}
    counts = []
    for n in (0, COUNT_RUNS):
        out = work / f"count-{n}.txt"
        subprocess.run(["qemu-aarch64", "-L", str(root), "-plugin", f"{lib},out={out}", str(python), "-c",
                        COUNT[backend], str(model), str(x), str(n)], check=True, env=env, capture_output=True)
        counts.append(int(out.read_text()))
    return {"instructions_start": counts[0], "instructions_per_inference": (counts[1] - counts[0]) / COUNT_RUNS}


def board_variant(board: str, blas: str | None, folder: Path) -> None:
    """A copy of the board files with this board's MXNet BLAS set to `blas` (None: as they are)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in (ROOT / "targets").glob("*.toml"):
        text = f.read_text()
        if f.stem == board and blas:
            text = re.sub(r'^blas = ".*"$', f'blas = "{blas}"', text, flags=re.M)
        (folder / f.name).write_text(text)


def board_row(board: str, blas: str | None, name: str, model: Path, sample: np.ndarray, work: Path, lib: Path,
              runs: int, progress) -> dict:
    """One executable for an aarch64 board: onnxruntime (blas None) or MXNet relinked onto `blas`."""
    import onnx

    from edge import backends
    from edge.bundle import prefix as emulation

    x = work / "x.npy"
    np.save(x, sample)
    backend = "mxnet" if blas else "onnxruntime"
    out = work / "dist" / f"{board}-{blas or backend}-{model.stem}"
    t = time.perf_counter()
    report = builder.build(builder.BuildOptions(model=model, output=out, target=board, backend=backend), progress)
    seconds = time.perf_counter() - t
    env_path = Path(report["build_env"]["path"])
    run_env = emulation.run_env(env_path)
    start = statistics.median(cold_start([str(out), str(x)], runs, run_env))
    bench = subprocess.run([str(out), "--input", str(x), "--bench", "20", "--threads", "1", "--json"],
                           capture_output=True, text=True, check=True, env=run_env)
    row = {"part": "mxnet-boards", "target": board, "model": name, "backend": backend, "blas": blas,
           "bytes": report["bytes"], "first_build_s": seconds, "reused_env": report["build_env"]["reused"],
           "emulated_cold_start_s": start, "emulated_latency_median_ms": json.loads(bench.stdout)["median_ms"],
           "components": report["components"]}
    counted = model
    if blas:  # MXNet runs the converted model: convert it again in the same environment
        env = envs.ensure(targets.get(board), progress, backend=backends.get("mxnet"))
        payload = work / f"payload-{board}-{blas}-{model.stem}"
        payload.mkdir()
        feeds = [{report["manifest"]["inputs"][0]["name"]: sample}]
        backends.get("mxnet").package(model, onnx.load(model), payload, env, payload, feeds, progress)
        counted = payload / "model"
        row["debian"] = report["build_env"]["packages"]["relink"]["debian"]
    row.update(instruction_counts(backend, env_path, counted, x, lib, work, targets.get(board)))
    return row


def mxnet_board_rows(boards: list[str], progress, runs: int = 3) -> list[dict]:
    """MXNet executables for aarch64 boards, once per BLAS libmxnet.so can be relinked onto: size, first build
    (empty cache), emulated cold start and latency, and aarch64 instructions per inference; the same board's
    onnxruntime executable first, for the ratios."""
    from edge.backends.mxnet_relink import BLAS

    rows = []
    print("\n| target | model | backend / BLAS | executable | first build | emulated cold start (median of "
          f"{runs}) | emulated latency (median of 20) | aarch64 instructions: start, per inference | ratios vs "
          "onnxruntime (size, start, latency, start and inference instructions) |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lib = plugin(work)
        cnn = zoo.trained_cnn(work / "cnn")
        kws = ROOT / "demos" / "kws" / "model" / "kws.onnx"
        inputs = {"trained CNN": (cnn, np.load(work / "cnn" / "eval.npz")["x"][:1]),
                  "keyword DS-CNN": (kws, np.load(ROOT / "demos/kws/model/heldout.npz")["logmel"][:1])}
        for board in boards:
            base = {}  # per model: the same board's onnxruntime executable, for the ratios
            for blas in (None, *BLAS):
                board_variant(board, blas, work / f"targets-{blas}")
                os.environ.update(EDGEPACK_TARGETS=str(work / f"targets-{blas}"),
                                  EDGEPACK_CACHE=str(work / f"cache-{board}-{blas}"))
                for name, (model, sample) in inputs.items():
                    row = board_row(board, blas, name, model, sample, work, lib, runs, progress)
                    base.setdefault(name, row)
                    row["ratios_vs_onnxruntime"] = {k: row[k] / base[name][k] for k in
                                                    ("bytes", "emulated_cold_start_s", "emulated_latency_median_ms",
                                                     "instructions_start", "instructions_per_inference")}
                    rows.append(row)
                    insns = row["instructions_per_inference"]
                    print(f"| {board} | {name} | {blas or 'onnxruntime'} | {row['bytes'] / 1e6:.1f} MB | "
                          f"{row['first_build_s']:.0f} s | {row['emulated_cold_start_s']:.1f} s | "
                          f"{row['emulated_latency_median_ms']:.2f} ms | "
                          f"{row['instructions_start'] / 1e9:.2f} G, {insns / 1e6:.2f} M | "
                          + ", ".join(f"{v:.2f}×" for v in row["ratios_vs_onnxruntime"].values()) + " |",
                          flush=True)
                for k in ("EDGEPACK_TARGETS", "EDGEPACK_CACHE"):
                    os.environ.pop(k)
    return rows


if __name__ == "__main__":
    main()
