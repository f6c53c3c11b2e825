"""Run by the MXNet build environment's Python (numpy < 2, mxnet 1.9.1, onnx 1.18), never imported by
edgepack itself: convert a rewritten ONNX model to MXNet symbol + params, or run a converted model.

    python mx_convert.py convert MODEL.onnx PREFIX          -> PREFIX-symbol.json, PREFIX-0000.params
    python mx_convert.py run PREFIX FEEDS.npz OUT.npz [--internals]
"""

import json
import os
import sys

os.environ.setdefault("MXNET_ENGINE_TYPE", "NaiveEngine")  # one thread of control: fastest for batch 1
import numpy as np  # noqa: E402

if tuple(int(x) for x in np.__version__.split(".")[:2]) >= (1, 24):  # mxnet 1.9.1 uses np.bool, gone in 1.24
    np.bool = bool
import mxnet as mx  # noqa: E402


def convert(onnx_path, prefix):
    from mxnet.contrib.onnx import import_model

    sym, arg, aux = import_model(onnx_path)
    mx.model.save_checkpoint(prefix, 0, sym, arg, aux)
    data = sorted(set(sym.list_arguments()) - set(arg))
    print(json.dumps({"inputs": data, "outputs": sym.list_outputs(), "mxnet": mx.__version__}))


def run(prefix, feeds_path, out_path, internals=False):
    sym, arg, aux = mx.model.load_checkpoint(prefix, 0)
    feeds = dict(np.load(feeds_path))
    count = len(next(iter(feeds.values())))
    if internals:  # every intermediate output, to find where MXNet first departs from onnxruntime
        inner = sym.get_internals()
        names = [n for n in inner.list_outputs() if n not in arg and n not in aux and n not in feeds]
        sym = mx.sym.Group([inner[n] for n in names])
    else:
        names = sym.list_outputs()
    results = {n: [] for n in names}
    exe = None
    for i in range(count):
        sample = {k: v[i] for k, v in feeds.items()}
        if exe is None or any(exe.arg_dict[k].shape != v.shape for k, v in sample.items()):
            exe = sym.simple_bind(mx.cpu(), grad_req="null", **{k: v.shape for k, v in sample.items()})
            for k, v in {**arg, **aux}.items():
                if k in exe.arg_dict:
                    exe.arg_dict[k][:] = v
                elif k in exe.aux_dict:
                    exe.aux_dict[k][:] = v
        for k, v in sample.items():
            exe.arg_dict[k][:] = v
        for n, o in zip(names, exe.forward(is_train=False)):
            results[n].append(o.asnumpy())
    np.savez(out_path, **{n: np.stack(v) for n, v in results.items()})


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "convert":
        convert(sys.argv[2], sys.argv[3])
    elif cmd == "run":
        run(sys.argv[2], sys.argv[3], sys.argv[4], "--internals" in sys.argv[5:])
    else:
        sys.exit(f"unknown command {cmd}")
