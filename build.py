#!/usr/bin/env python3
"""A new user's one command.

    python3 build.py          set up .venv, then the main job: build the voice-command executable
                              (dist/voice-commands) from the demo model and run it on a sample recording
    python3 build.py --ds-cnn the same with the DS-CNN alone: no pretrained speech embedding, so no
                              non-commercial file (demos/kws/README.md, "Voices and licences")
    python3 build.py test     set up .venv with the test extras, then run the whole test suite
                              (extra arguments go to pytest, e.g. `python3 build.py test -k quantize`)

Standard library only: this runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import json
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


KWS = ROOT / "demos" / "kws"
SYSTEM_PACKAGES = ["libportaudio2"]  # PortAudio, bundled into the voice-command executable


def system_packages() -> None:
    missing = [p for p in SYSTEM_PACKAGES if "install ok installed" not in subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True).stdout]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"the voice-command app needs {' '.join(missing)}: sudo apt-get install -y {' '.join(missing)}")
    step(f"installing {' '.join(missing)} (apt-get)")
    run(["apt-get", "install", "-y", "-qq", *missing], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def show(cmd: list[str]) -> list[str]:
    print("$ " + " ".join(os.path.relpath(c, ROOT) if c.startswith(str(ROOT)) else c for c in cmd), flush=True)
    return cmd


def main_job(ds_cnn_only: bool) -> int:
    exe = ROOT / "dist" / "voice-commands"
    if ds_cnn_only:
        model, data = KWS / "model" / "kws.onnx", KWS / "model"
        report = data / "train_report.json"
        what = "the DS-CNN keyword model"
    else:
        data = ROOT / "build" / "kws-stream"
        step("assembling the keyword model: DS-CNN + a head on openWakeWord's pretrained speech embedding "
             "(CC BY-NC-SA 4.0: non-commercial use; `python3 build.py --ds-cnn` avoids it)")
        run(show([str(BIN / "python"), str(KWS / "assemble.py"), "-o", str(data)]))
        model, report = data / "kws_stream.onnx", data / "assemble_report.json"
        what = "the keyword model (DS-CNN + speech-embedding head)"
    # int8 everywhere but where export.py / assemble.py measured that float must stay (their reports say why)
    exclude = ",".join(json.loads(report.read_text())["int8_keep_float"])
    step(f"edge optimize: {what} (trained in demos/kws) as int8 against fp32, on held-out voices")
    run(show([str(BIN / "edge"), "optimize", str(model), "-o", str(ROOT / "build" / "kws.int8.onnx"),
              "--quantize", "int8", "--calibration", str(data / "calib.npz"), "--eval", str(data / "heldout.npz"),
              "--exclude-nodes", exclude]))
    step("edge build: the voice-command executable for this machine (first time: a build environment, minutes)")
    run(show([str(BIN / "edge"), "build", str(model), "--app", "voice-commands", "--labels",
              str(data / "labels.json"), "--target", "x86_64", "-o", str(exe), "--eval", str(data / "heldout.npz")]))
    step("running it on a recording (a voice and synthesizer never used in training), in real time")
    print("expected: " + ", ".join(ln.split()[1] for ln in (KWS / "samples" / "commands.txt").read_text().splitlines()
                                   if ln.strip() and not ln.startswith("#")), flush=True)
    run(show([str(exe), "--wav", str(KWS / "samples" / "commands.wav")]))
    step(f"done: {os.path.relpath(exe, ROOT)} ({exe.stat().st_size / 1e6:.1f} MB, report beside it). "
         f"With a microphone: {os.path.relpath(exe, ROOT)} --mic   (--list-devices, --help)")
    return 0


def test_job(args: list[str]) -> int:
    step("running the test suite")
    return subprocess.run([str(BIN / "python"), "-m", "pytest", *args], cwd=ROOT).returncode


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["test"]:
        setup("test")
        sys.exit(test_job(argv[1:]))
    if argv not in ([], ["--ds-cnn"]):
        sys.exit(f"usage: python3 build.py [--ds-cnn | test [pytest args...]]  (unknown: {' '.join(argv)})")
    setup("")
    system_packages()
    sys.exit(main_job(ds_cnn_only=argv == ["--ds-cnn"]))
