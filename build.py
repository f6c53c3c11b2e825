#!/usr/bin/env python3
"""A new user's one command.

    python3 build.py          set up .venv, then the main job (optimize the sample model, print the report)
    python3 build.py test     set up .venv with the test extras, then run the whole test suite
                              (extra arguments go to pytest, e.g. `python3 build.py test -k quantize`)

Standard library only: this runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".edgepack-installed"
START = time.monotonic()


def step(message: str) -> None:
    print(f"[{time.monotonic() - START:6.1f}s] {message}", flush=True)


def run(cmd: list[str], **kw) -> None:
    result = subprocess.run(cmd, cwd=ROOT, **kw)
    if result.returncode != 0:
        step(f"failed ({result.returncode}): {' '.join(map(str, cmd))}")
        sys.exit(result.returncode)


def setup(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file must run (and explain) on older Pythons too
        sys.exit(f"edgepack needs Python >= 3.11; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        step(f"creating {VENV.relative_to(ROOT)}")
        run([sys.executable, "-m", "venv", str(VENV)])
    want = extras + ":" + hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    have = STAMP.read_text().split("\n") if STAMP.exists() else []
    if want in have:
        step("environment up to date")
        return
    target = f".[{extras}]" if extras else "."
    step(f"installing edgepack{f'[{extras}]' if extras else ''} and its dependencies into .venv (pip)")
    run([str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-e", target])
    STAMP.write_text("\n".join(have + [want]))
    step("environment ready")


def main_job() -> int:
    sample = ROOT / "build" / "sample"
    step("making the sample model (a small CNN trained here on a synthetic task)")
    run([str(BIN / "python"), "-m", "tests.zoo", "trained-cnn", str(sample)])
    step("edge optimize: lossless pruning + int8 static quantization, evaluated on held-out samples")
    cmd = [str(BIN / "edge"), "optimize", str(sample / "model.onnx"), "-o", str(sample / "model.int8.onnx"),
           "--quantize", "int8", "--calibration", str(sample / "calibration.npz"),
           "--eval", str(sample / "eval.npz"), "--max-accuracy-drop", "2"]
    print("$ " + " ".join(os.path.relpath(c, ROOT) if c.startswith(str(ROOT)) else c for c in cmd), flush=True)
    run(cmd)
    step(f"done: {os.path.relpath(sample / 'model.int8.onnx', ROOT)} and its .report.json")
    return 0


def test_job(args: list[str]) -> int:
    step("running the test suite")
    return subprocess.run([str(BIN / "python"), "-m", "pytest", *args], cwd=ROOT).returncode


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["test"]:
        setup("test")
        sys.exit(test_job(argv[1:]))
    if argv:
        sys.exit(f"usage: python3 build.py [test [pytest args...]]  (unknown: {' '.join(argv)})")
    setup("")
    sys.exit(main_job())
