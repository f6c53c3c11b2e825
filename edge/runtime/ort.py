"""onnxruntime backend: the CPU execution provider only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort


def inference_session(model: Path | bytes, threads: int) -> ort.InferenceSession:
    """The session every executable runs, and the host's evaluation and parity gates too (edge/evaluate.py):
    both sides compare the same options and kernels."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), so,
                                providers=["CPUExecutionProvider"])


class OrtSession:
    concurrent = True  # InferenceSession.run may be called from several threads at once (serve mode)

    def __init__(self, model: Path, threads: int):
        self._sess = inference_session(model, threads)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._sess.run(None, feeds)

    def inputs(self) -> list:
        """onnxruntime's NodeArgs (name, shape, type) of the model's inputs."""
        return self._sess.get_inputs()

    def outputs(self) -> list:
        return self._sess.get_outputs()


def open_session(model: Path, threads: int) -> OrtSession:
    return OrtSession(model, threads)


def version() -> str:
    return ort.__version__
