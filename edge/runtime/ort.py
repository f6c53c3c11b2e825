"""onnxruntime backend: the CPU execution provider only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort


class OrtSession:
    def __init__(self, model: Path, threads: int):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self._sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._sess.run(None, feeds)


def open_session(model: Path, threads: int) -> OrtSession:
    return OrtSession(model, threads)


def version() -> str:
    return ort.__version__
