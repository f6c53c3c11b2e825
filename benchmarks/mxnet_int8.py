#!/usr/bin/env python3
"""Why `--quantize int8 --backend mxnet` is refused: MXNet's own int8 path (oneDNN, x86) measured on the
keyword model against MXNet float and onnxruntime int8, accuracy on held-out voices and latency.

    .venv/bin/python benchmarks/mxnet_int8.py [--out benchmarks/results/mxnet_int8.json]

Runs the MXNet part in MXNet's build environment (created on first use, like `edge build --backend mxnet`)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge import pipeline, targets  # noqa: E402
from edge.backends import mxnet_rewrites  # noqa: E402
from edge.backends.mxnet import BACKEND  # noqa: E402
from edge.bundle import envs  # noqa: E402

MODEL = ROOT / "demos" / "kws" / "model"
MX = r"""
import json, sys, time, os
os.environ["MXNET_ENGINE_TYPE"] = "NaiveEngine"; os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MXNET_SUBGRAPH_VERBOSE"] = "0"
import numpy as np, mxnet as mx
from mxnet.contrib.onnx import import_model
from mxnet.contrib.quantization import quantize_model_mkldnn
onnx_path, calib_path, eval_path = sys.argv[1:4]
sym, arg, aux = import_model(onnx_path)
calib = np.load(calib_path)["logmel"].astype(np.float32)
calib = calib[:, None] if calib.ndim == 4 else calib
ev = np.load(eval_path); x, y = ev["logmel"], ev["labels"]
x = x[:, None] if x.ndim == 4 else x
def run(s, a, b):
    exe = s.simple_bind(mx.cpu(), grad_req="null", logmel=x[0].shape)
    for k, v in {**a, **b}.items():
        (exe.arg_dict if k in exe.arg_dict else exe.aux_dict)[k][:] = v
    preds, times = [], []
    for _ in range(20):
        exe.forward(is_train=False, logmel=x[0])[0].asnumpy()
    for rep in range(4):
        for i in range(len(x)):
            t = time.perf_counter()
            out = exe.forward(is_train=False, logmel=x[i])[0].asnumpy()
            times.append(time.perf_counter() - t)
            if rep == 0:
                preds.append(int(out.reshape(-1).argmax()))
    return float(np.mean(np.array(preds) == y)), float(np.median(times) * 1e3)
it = mx.io.NDArrayIter(data={"logmel": calib[:, 0]}, batch_size=1)
qsym, qarg, qaux = quantize_model_mkldnn(sym, arg, aux, ctx=mx.cpu(), calib_mode="naive", calib_data=it,
                                         num_calib_examples=len(calib), quantized_dtype="auto",
                                         data_names=("logmel",), label_names=None)
fa, fl = run(sym, arg, aux)
qa, ql = run(qsym, qarg, qaux)
print(json.dumps({"mxnet_float": {"accuracy": fa, "latency_ms": fl}, "mxnet_int8": {"accuracy": qa, "latency_ms": ql}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mxnet_int8.json")
    args = ap.parse_args()
    env = envs.ensure(targets.get("x86_64"), lambda s: print(s, file=sys.stderr), backend=BACKEND)
    with tempfile.TemporaryDirectory() as tmp:
        m = onnx.load(MODEL / "kws.onnx")
        mxnet_rewrites.apply(m, mxnet_rewrites.EXACT + mxnet_rewrites.IMPORTER_ONLY)
        onnx.save(m, Path(tmp) / "kws.mx.onnx")
        r = subprocess.run([str(env.python), "-c", MX, str(Path(tmp) / "kws.mx.onnx"), str(MODEL / "calib.npz"),
                            str(MODEL / "heldout.npz")], capture_output=True, text=True)
        if r.returncode:
            sys.exit(r.stderr[-2000:])
        result = json.loads(r.stdout.splitlines()[-1])
        for kind, opts in (("onnxruntime_float", {}), ("onnxruntime_int8", {
                "quantize": "int8", "calibration": MODEL / "calib.npz",
                "exclude_nodes": ["/features/features.0/features.0.0/Conv"]})):
            rep = pipeline.optimize(pipeline.Options(model=MODEL / "kws.onnx", output=Path(tmp) / f"{kind}.onnx",
                                                     eval=MODEL / "heldout.npz", **opts), lambda s: None)
            ev = rep["evaluation"]["optimized"]
            result[kind] = {"accuracy": ev["accuracy"], "latency_ms": ev["latency"]["median_ms"]}
    print("| model (keyword DS-CNN, 72 held-out clips) | accuracy | latency batch 1, 1 thread |")
    print("|---|---|---|")
    for k, v in result.items():
        print(f"| {k.replace('_', ' ')} | {v['accuracy']:.1%} | {v['latency_ms']:.3f} ms |")
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
