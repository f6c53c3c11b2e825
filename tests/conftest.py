import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests import zoo

ROOT = Path(__file__).resolve().parent.parent

# Tests send Ctrl-C (SIGINT) to builds and to listening executables. A shell that starts a job in the
# background without job control starts it with SIGINT ignored, and children inherit "ignored" across exec:
# a handler here makes every child start with the default disposition instead (measured: with SIGINT
# inherited as ignored, `edge build` finished despite Ctrl-C and the listening app never stopped).
signal.signal(signal.SIGINT, signal.default_int_handler)

# The user's own settings that would point what the tests start elsewhere: a serve token every request would
# lack, their own board files, their sound server instead of the tests' microphone, a systemd service's
# notify socket and watchdog (the suite run from a unit). Tests that want one of these set it themselves.
INHERITED = ("EDGEPACK_SERVE_TOKEN", "EDGEPACK_TARGETS", "NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC",
             "PULSE_SERVER", "PULSE_SINK", "PULSE_SOURCE", "PULSE_RUNTIME_PATH", "PULSE_COOKIE", "PULSE_PROP")
for name in INHERITED:
    os.environ.pop(name, None)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """Build each zoo model once per session: models("trained-cnn") → path of model.onnx."""
    cache = {}

    def get(name: str, *args) -> Path:
        key = (name, *args)
        if key not in cache:
            out = tmp_path_factory.mktemp(name)
            cache[key] = zoo.BUILDERS[name](out, *args)
        return cache[key]

    return get


def edge(*args, check: bool = True, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real command line, as a user would."""
    result = subprocess.run([sys.executable, "-m", "edge", *map(str, args)], capture_output=True, text=True,
                            cwd=ROOT, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"edge {' '.join(map(str, args))} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def run_emulated(exe, x: np.ndarray, tmp_path, env: dict, name: str = "x") -> np.ndarray:
    """`edge run` on samples (one per row of x), under qemu for another architecture; the first output, a row
    per sample."""
    np.savez(tmp_path / "s.npz", **{name: x[:, None]})
    edge("run", exe, "--samples", tmp_path / "s.npz", "--output", tmp_path / "o.npz", env=env, timeout=900)
    with np.load(tmp_path / "o.npz") as z:
        return z[z.files[0]][:, 0]


def run_onnx(path_or_model, feeds: dict) -> list[np.ndarray]:
    """Reference inference, independent of edge's own evaluation code."""
    data = path_or_model.SerializeToString() if isinstance(path_or_model, onnx.ModelProto) else str(path_or_model)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def random_feed(path, shapes: dict, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(a))))


@pytest.fixture(scope="session")
def voice_exe(tmp_path_factory):
    """The voice-command executable built from the committed demo model (shared by the app's test modules)."""
    out = tmp_path_factory.mktemp("voice") / "voice-commands"
    edge("build", ROOT / "demos/kws/model/kws.onnx", "--app", "voice-commands", "--labels",
         ROOT / "demos/kws/model/labels.json", "--target", "x86_64", "-o", out,
         "--eval", ROOT / "demos/kws/model/heldout.npz")
    return out


@pytest.fixture(scope="session")
def stream_model(tmp_path_factory):
    """The demo's streaming model, assembled now (kws_stream.onnx, labels.json, bank.npz, heldout.npz, ...)."""
    work = tmp_path_factory.mktemp("stream")
    # assemble fails unless the graph equals its parts (1e-5) and stepping it equals offline states (1e-4)
    r = subprocess.run([sys.executable, "-m", "demos.kws.assembly.assemble", "-o", work], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return work


@pytest.fixture(scope="session")
def stream_exe(stream_model):
    work = stream_model
    exe = work / "voice-stream"
    edge("build", work / "kws_stream.onnx", "--app", "voice-commands", "--labels", work / "labels.json",
         "--target", "x86_64", "-o", exe, "--eval", work / "heldout.npz")
    return exe


@pytest.fixture(scope="session")
def mlp_exe(models, tmp_path_factory):
    """A bare model executable: features float32[batch, 32] → logits float32[batch, 10]."""
    out = tmp_path_factory.mktemp("mlp-exe") / "mlp"
    edge("build", models("mlp"), "-o", out)
    return out


@pytest.fixture(scope="session")
def rpi4_build(models, tmp_path_factory):
    """Built with an empty cache: environment creation, emulated PyInstaller, emulated verification (shared by
    the aarch64 and the package tests)."""
    cache = tmp_path_factory.mktemp("cache")
    out = tmp_path_factory.mktemp("dist") / "cnn-rpi4"
    src = models("trained-cnn")
    env = {**os.environ, "EDGEPACK_CACHE": str(cache)}
    r = edge("build", src, "--target", "rpi4", "-o", out, "--eval", src.parent / "eval.npz", env=env, timeout=1800)
    return out, env, r.stderr
