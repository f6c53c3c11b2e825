"""The parity gate: run the finished executable on sample inputs and compare with onnxruntime on this
machine running the same optimized model. An executable that fails to start or differs never ships."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import onnx

from edge import evaluate
from edge import model as M
from edge.bundle.proc import run_captured
from edge.errors import VerifyError

TOLERANCE = evaluate.PARITY_RTOL  # same onnxruntime version on both sides
# int8 kernels round differently on another architecture (ARM's requantization against x86's): measured up
# to 1.1e-2 on the keyword model under qemu. Such builds must keep every top-1 class and stay within this.
INT8_CROSS_ARCH_TOLERANCE = 5e-2
TIMEOUT_S = 600


def run_executable(exe: Path, args: list[str], runner: list[str] | None = None, env=None,
                   timeout: int = TIMEOUT_S) -> subprocess.CompletedProcess:
    return run_captured([*(runner or []), str(exe), *args], timeout, env)


def entry_point(built: Path) -> Path:
    """The file to execute: the onefile itself, or NAME/NAME inside an onedir folder."""
    return built / built.name if built.is_dir() else built


def verify(built: Path, model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]], workdir: Path,
           runner: list[str] | None = None, env=None, manifest: dict | None = None, cross_arch: bool = False) -> dict:
    exe = entry_point(built)
    start = time.monotonic()
    info = run_executable(exe, ["--info"], runner, env)
    if info.returncode != 0:
        raise VerifyError(f"the executable failed to start (exit {info.returncode}): {_tail(info.stderr)}")
    if manifest is not None and json.loads(info.stdout)["model"]["sha256"] != manifest["model"]["sha256"]:
        raise VerifyError("the executable reports another model than the one built")
    samples, outputs = workdir / "verify-in.npz", workdir / "verify-out.npz"
    names = sorted(feeds[0])
    np.savez(samples, **{n: np.stack([f[n] for f in feeds]) for n in names})
    t = time.monotonic()
    run = run_executable(exe, ["--samples", str(samples), "--output", str(outputs)], runner, env)
    run_seconds = time.monotonic() - t
    if run.returncode != 0:
        raise VerifyError(f"the executable failed on sample inputs (exit {run.returncode}): {_tail(run.stderr)}")
    output_names = [o.name for o in model.graph.output]
    with np.load(outputs) as z:
        got = [[z[n][i] for n in output_names] for i in range(len(feeds))]
    ref = evaluate.run_all(evaluate.session(model), feeds)
    compared = evaluate.compare(ref, got, output_names)
    diff, agreement = compared["max_rel_diff"], compared["top1_agreement"]
    int8_elsewhere = cross_arch and M.is_quantized(model)
    tolerance = INT8_CROSS_ARCH_TOLERANCE if int8_elsewhere else TOLERANCE
    passed = diff <= tolerance and (not int8_elsewhere or agreement in (None, 1.0))
    result = {"samples": len(feeds), "max_rel_diff": diff, "tolerance": tolerance, "top1_agreement": agreement,
              "rule": "int8 on another architecture: every top-1 class kept" if int8_elsewhere else "same numbers",
              "passed": passed, "run_seconds": round(run_seconds, 2), "seconds": round(time.monotonic() - start, 2)}
    if not passed:
        raise VerifyError(f"the executable's outputs differ from onnxruntime on this machine by {diff:.3g} "
                          f"(allowed {tolerance}; top-1 agreement {agreement}); the executable was removed")
    return result


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"
