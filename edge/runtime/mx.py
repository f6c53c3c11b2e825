"""Apache MXNet backend: the model as MXNet symbol (json) + params, run by a bound executor.
No onnx here: the conversion happened at build time."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import numpy as np


class MxSession:
    def __init__(self, prefix: Path, threads: int):
        # before the import: MXNet reads these once; NaiveEngine runs each op inline (fastest at batch 1)
        os.environ.setdefault("MXNET_ENGINE_TYPE", "NaiveEngine")
        os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")
        os.environ["OMP_NUM_THREADS"] = str(threads)
        # gluon.utils imports requests for downloads only; it is not in the bundle
        sys.modules.setdefault("requests", types.ModuleType("requests"))
        if tuple(int(x) for x in np.__version__.split(".")[:2]) >= (1, 24):
            np.bool = bool  # mxnet 1.9.1 still uses np.bool
        import mxnet as mx

        self._mx = mx
        self._sym, self._params, aux = mx.model.load_checkpoint(str(prefix), 0)
        self._params.update(aux)
        self._exe = None

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        exe = self._exe
        if exe is None or any(exe.arg_dict[k].shape != v.shape for k, v in feeds.items()):
            exe = self._sym.simple_bind(self._mx.cpu(), grad_req="null", **{k: v.shape for k, v in feeds.items()})
            for k, v in self._params.items():
                (exe.arg_dict if k in exe.arg_dict else exe.aux_dict)[k][:] = v
            self._exe = exe
        for k, v in feeds.items():
            exe.arg_dict[k][:] = v
        return [o.asnumpy() for o in exe.forward(is_train=False)]


def open_session(model: Path, threads: int) -> MxSession:
    return MxSession(model, threads)
